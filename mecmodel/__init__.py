"""mecmodel: sequential DNN task offloading in multiuser MEC, with decentralized
parametric online Q-learning and the paper's baselines.

Where each equation lives:
    (1), (2), (5)-(8)   mecmodel/queues.py (pure functions of arrays)
    (3), (4)            mecmodel/channel.py
    the environment     mecmodel/env.py (state, action, one block's step, random streams)
    (1)-(8), (22)-(36)  mecmodel/engine.py, compiled: the block, the learners' update, the
                        built-in policies, a built-in scheme's whole loop (what every run executes)
    (22)-(36)           mecmodel/policies/qlearning.py (Algorithms 1 and 2: features, states, interface)
    fixed rules         mecmodel/policies/rules.py; the interface in mecmodel/policies/base.py
    schemes             mecmodel/schemes.py (the registry)
    the loop            mecmodel/simulation.py
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__version__: str  # from the installed package metadata (pyproject.toml), read on first use

__all__ = ["__version__", "simulate", "simulate_params", "make_params", "ParamError", "SCHEMES"]


def __getattr__(name: str):
    if name == "__version__":
        from .version import package_version

        return package_version()
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
    scheme_params: Mapping[str, Any] | None = None,
    sweep: Sequence[str] = (),
):
    """Simulate one operating point for several seeds and return an ``xarray.Dataset``.

    ``K``, ``arrival_prob`` and ``gamma`` override the preset's values; any other model
    parameter goes in ``overrides`` (see ``mecmodel params``). ``seeds`` is a count
    (seeds 0..n-1) or a list of seed values. ``scheme_params`` sets the parameters the scheme
    declares (``mecmodel schemes``, e.g. dpp's V); the names in ``sweep`` (model or scheme
    parameters) become length-1 dimensions with a coordinate, as the axes of a sweep.
    """
    from .params import ParamError, make_params

    if overrides is not None and not isinstance(overrides, Mapping):
        raise ParamError(f"overrides: must be a mapping of parameter: value, got {type(overrides).__name__}")
    over = dict(overrides or {})
    for key, val in (("K", K), ("arrival_prob", arrival_prob), ("gamma", gamma)):
        if val is not None:
            over[key] = val
    P = make_params(preset, over)
    return simulate_params(
        P,
        scheme=scheme,
        seeds=seeds,
        blocks=blocks,
        per_device=per_device,
        progress=progress,
        scheme_params=scheme_params,
        sweep=sweep,
    )


def simulate_params(P, **options: Any):
    """``simulate`` for parameters already built with ``make_params``; ``options`` are
    ``simulate_parts``' (scheme, seeds, blocks, per_device, progress, scheme_params, sweep)."""
    import xarray as xr

    return xr.Dataset(*simulate_parts(P, **options))


def simulate_parts(
    P,
    *,
    scheme: str = "proposed",
    seeds: int | Sequence[int] = 10,
    blocks: int = 2000,
    per_device: bool = False,
    progress: bool = False,
    scheme_params: Mapping[str, Any] | None = None,
    sweep: Sequence[str] = (),
) -> tuple[dict, dict, dict]:
    """``simulate_params`` up to the Dataset: its variables, coordinates and attributes as plain
    numpy (``mecmodel.dataset.dataset_parts``), which ``mecmodel simulate`` writes without
    importing xarray (``mecmodel.dataset.write_parts``)."""
    from .dataset import dataset_parts
    from .params import ParamError
    from .schemes import get_scheme
    from .simulation import simulate_arrays

    declared = get_scheme(scheme).params
    for name in sweep:
        if name not in P.values and name not in declared:
            raise ParamError(f"sweep: {name!r} is neither a model parameter nor a parameter of scheme {scheme!r}")
        if name in ("K", "arrival_prob", "gamma"):
            raise ParamError(f"sweep: {name} is always a dimension of a run; list the others")
    out = simulate_arrays(
        P, scheme, seeds, blocks, per_device=per_device, progress=progress, scheme_params=scheme_params
    )
    run = {"scheme": scheme, "seeds": out["seeds"], "blocks": blocks, "per_device": per_device}
    # Only when used, so that the hashes of runs made before these options existed stay the same.
    if out["scheme_params"]:
        run["scheme_params"] = out["scheme_params"]
    if sweep:
        run["sweep"] = sorted(sweep)
    return dataset_parts(out, P, scheme, blocks, run, sweep)
