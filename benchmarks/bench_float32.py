"""Option measured for the throughput issue: Algorithms 1 and 2's learners in float32.

    python benchmarks/bench_float32.py            # K = 10, 100, 1000 with 1 and 10 seeds
    python benchmarks/bench_float32.py --quick

The learners' arrays (feature vectors, weights, actions, the state logits) and their inputs
(reward, reward gradient, next state) are cast to float32 for a run of ``simulate_arrays``
(scheme ``proposed``); queues, energies and costs stay float64 in the environment. It reports
both rates and how far the run moves: the largest relative difference of the per-block cost,
and of the long-run average cost per seed, against float64. Not part of the package.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from mecmodel.params import make_params  # noqa: E402
from mecmodel.policies import qlearning  # noqa: E402
from mecmodel.simulation import simulate_arrays  # noqa: E402

_init, _learn, _observe = qlearning.OnlineQ.__init__, qlearning.OnlineQ.learn, qlearning.OnlineQ.observe


def _init32(self, v, *args, **kwargs):
    _init(self, v, *args, **kwargs)
    for name in ("v_a", "v_s", "a", "w"):
        setattr(self, name, getattr(self, name).astype(np.float32))


def _observe32(self, x):
    return _observe(self, np.asarray(x, dtype=np.float32))


def _learn32(self, t, r, dr_da, x_next):
    f32 = np.float32
    return _learn(self, t, np.asarray(r, f32), np.asarray(dr_da, f32), np.asarray(x_next, f32))


def run(P, seeds, blocks, dtype):
    if dtype == "float32":
        qlearning.OnlineQ.__init__, qlearning.OnlineQ.learn = _init32, _learn32
        qlearning.OnlineQ.observe = _observe32
    try:
        return simulate_arrays(P, "proposed", seeds, blocks)
    finally:
        qlearning.OnlineQ.__init__, qlearning.OnlineQ.learn, qlearning.OnlineQ.observe = _init, _learn, _observe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--K", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 10])
    a = ap.parse_args(argv)
    blocks, repeats = (200, 2) if a.quick else (1000, 3)
    print(f"# numpy {np.__version__}; scheme proposed, up to {blocks} blocks, median of {repeats}")
    print(
        f"{'K':>5} {'seeds':>5} {'float64/s':>10} {'float32/s':>10} {'ratio':>6} {'cost, max rel.':>15} {'avg cost, max rel.':>19}"
    )
    for S in a.seeds:
        for K in a.K:
            P = make_params("default", {"K": K})
            seeds = list(range(S))
            b = max(20, min(blocks, int(2e6 / (K * S))))
            out = {d: run(P, seeds, 20, d) for d in ("float64", "float32")}  # warm-up
            rates = {}
            for d in ("float64", "float32"):
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    out[d] = run(P, seeds, b, d)
                    times.append(time.perf_counter() - t0)
                rates[d] = K * S * b / statistics.median(times)
            x, y = out["float64"]["series"]["cost"], out["float32"]["series"]["cost"]
            ok = np.isfinite(x) & (x != 0)
            cost = float(np.max(np.abs(x[ok] - y[ok]) / np.abs(x[ok])))
            ax, ay = out["float64"]["average_cost"], out["float32"]["average_cost"]
            avg = float(np.max(np.abs(ax - ay) / np.abs(ax)))
            print(
                f"{K:>5} {S:>5} {rates['float64'] / 1e3:>9.1f}k {rates['float32'] / 1e3:>9.1f}k "
                f"{rates['float32'] / rates['float64']:>6.2f} {cost:>15.1e} {avg:>19.1e}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
