"""mecmodel: sequential DNN task offloading in multiuser MEC, with decentralized
parametric online Q-learning and the paper's baselines.

Where each equation lives:
    (1), (2), (5)-(8)   mecmodel/queues.py
    (3), (4)            mecmodel/channel.py
    (22)-(36)           mecmodel/agents.py (both algorithms share one form)
    schemes             mecmodel/schemes.py
    the loop            mecmodel/simulation.py
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "simulate", "make_params", "ParamError", "SCHEMES"]


def __getattr__(name: str):
    # Light import: `mecmodel --help` and `mecmodel params` need neither numpy nor xarray.
    if name in ("make_params", "ParamError", "Params"):
        from . import params

        return getattr(params, name)
    if name == "SCHEMES":
        from .schemes import SCHEMES

        return SCHEMES
    raise AttributeError(name)


def simulate(
    *,
    K: int | None = None,
    arrival_prob: float | None = None,
    gamma: float | None = None,
    scheme: str = "proposed",
    seeds: int | Sequence[int] = 10,
    blocks: int = 2000,
    preset: str = "default",
    overrides: Mapping[str, Any] | None = None,
    per_device: bool = False,
    progress: bool = False,
):
    """Simulate one operating point for several seeds and return an ``xarray.Dataset``.

    ``K``, ``arrival_prob`` and ``gamma`` override the preset's values; any other model
    parameter goes in ``overrides`` (see ``mecmodel params``). ``seeds`` is a count
    (seeds 0..n-1) or a list of seed values.
    """
    from .dataset import build_dataset
    from .params import ParamError, make_params
    from .simulation import seed_list, simulate_arrays

    if overrides is not None and not isinstance(overrides, Mapping):
        raise ParamError(f"overrides: must be a mapping of parameter: value, got {type(overrides).__name__}")
    over = dict(overrides or {})
    for key, val in (("K", K), ("arrival_prob", arrival_prob), ("gamma", gamma)):
        if val is not None:
            over[key] = val
    P = make_params(preset, over)
    out = simulate_arrays(P, scheme, seeds, blocks, per_device=per_device, progress=progress)
    run = {"scheme": scheme, "seeds": seed_list(seeds), "blocks": blocks, "per_device": per_device}
    return build_dataset(out, P, scheme, blocks, run)
