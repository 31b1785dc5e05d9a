"""Write the reference runs that prove the environment/policies redesign kept every scheme bit-identical.

Run once, at commit 6390733 (before the redesign), from the repository root:

    python tests/data/make_reference.py

Every case is written as the float64 arrays of ``simulate_arrays`` before the float32 cast of
the dataset (``<case>.npz``); the six schemes' base cases also as the NetCDF dataset that
``mecmodel.simulate`` returns (``<case>.nc``, 260 kB each, so only those). ``tests/test_reference.py`` recomputes every case with the current code
and asserts both are equal bit for bit. Never regenerate these files to make that test pass:
they are the evidence of what the code computed before the change.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: case name -> keyword arguments of mecmodel.simulate (per_device everywhere: the per-WD series too)
CASES: dict[str, dict] = {
    **{
        s: dict(K=3, arrival_prob=0.4, gamma=0.9, scheme=s, seeds=[0, 7], blocks=80)
        for s in ("proposed", "binary", "even", "random", "local", "offload")
    },
    "proposed_printed": dict(
        K=3, arrival_prob=0.4, gamma=0.9, scheme="proposed", seeds=[1, 2], blocks=80, overrides={"gradient": "printed"}
    ),
    "binary_head": dict(
        K=4, arrival_prob=0.5, gamma=0.8, scheme="binary", seeds=[3], blocks=80, overrides={"local_service": "head"}
    ),
    "random_single": dict(
        K=3,
        arrival_prob=0.3,
        gamma=0.95,
        scheme="random",
        seeds=[0, 1],
        blocks=200,
        overrides={"local_service": "single"},
    ),
    # Long enough, with a loose tolerance, that learners converge and freeze.
    "proposed_converge": dict(
        K=4, arrival_prob=0.3, gamma=0.9, scheme="proposed", seeds=[0, 1], blocks=400, overrides={"epsilon": 0.02}
    ),
    # A weight-norm limit the learners cross: the divergence bookkeeping.
    "proposed_diverge": dict(
        K=3,
        arrival_prob=0.4,
        gamma=0.9,
        scheme="proposed",
        seeds=[0, 1],
        blocks=80,
        overrides={"divergence_limit": 5.6},
    ),
    "even_paper": dict(K=2, arrival_prob=0.4, gamma=0.9, scheme="even", seeds=[0, 1], blocks=60, preset="paper"),
    "offload_k20": dict(K=20, arrival_prob=0.4, gamma=0.9, scheme="offload", seeds=[5], blocks=300),
}

DATASETS = ("proposed", "binary", "even", "random", "local", "offload")


def arrays(kwargs: dict) -> dict[str, np.ndarray]:
    """simulate_arrays' float64 output, flattened to named arrays."""
    from mecmodel.params import make_params
    from mecmodel.simulation import simulate_arrays

    over = dict(kwargs.get("overrides", {}))
    for k in ("K", "arrival_prob", "gamma"):
        over[k] = kwargs[k]
    P = make_params(kwargs.get("preset", "default"), over)
    out = simulate_arrays(P, kwargs["scheme"], kwargs["seeds"], kwargs["blocks"], per_device=True)
    flat = {f"series/{k}": v for k, v in out["series"].items()}
    flat.update({f"device/{k}": v for k, v in out["device"].items()})
    flat.update({f"work/{k}": v for k, v in out["work"].items()})
    for alg, d in out["agents"].items():
        flat.update({f"agents/{alg}/{k}": v for k, v in d.items()})
    for k in ("discounted_cost", "average_cost", "latency", "mean_gain", "distance"):
        flat[k] = out[k]
    return flat


def main() -> int:
    import mecmodel
    from mecmodel.dataset import write_atomic

    for name, kw in CASES.items():
        ds = mecmodel.simulate(**kw, per_device=True)
        if name in DATASETS:
            write_atomic(ds, HERE / f"{name}.nc")
        np.savez_compressed(HERE / f"{name}.npz", **arrays(kw))
        print(name, "diverged seeds:", int(ds["diverged"].sum()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
