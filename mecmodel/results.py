"""Reading and combining simulation runs written by the workflow.

The workflow writes one NetCDF file per parameter point at a canonical path, the template
``mecmodel.vocabulary.RUN`` below ``<root>/runs`` (``{model}`` is ``{preset}-{model_hash}``).

* ``aggregate`` combines the runs of one experiment (a full Cartesian grid of a single
  model) into one dense, compressed dataset with dims ``(K, arrival_prob, gamma, scheme,
  seed, block)``.
* ``open_runs`` opens every finished run under ``results/runs``, also of a partial
  sweep, stacked along one ``run`` dimension indexed by ``(model, K, arrival_prob, gamma,
  scheme)``. Runs of different models (preset or overrides) stay apart through the
  ``model`` level; ``.unstack("run")`` gives a dense grid with NaN where no run exists.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .params import ParamError, stable_hash
from .paths import RUN_GLOB, canonical_number, parse_run_path, run_path
from .statistics import default_reference, paired_differences
from .vocabulary import AXES, METRIC_NAMES, POINT_DIMS

__all__ = ["aggregate", "canonical_number", "find_runs", "open_runs", "run_path"]
RUN_LEVELS = ("model",) + POINT_DIMS


def _load(path: str | os.PathLike):
    import xarray as xr

    if not Path(path).is_file():
        raise ParamError(f"inputs: no such file: {os.fspath(path)!r}")
    # Load fully and close at once, so no handle stays open on a file the workflow may rewrite.
    try:
        with xr.open_dataset(path) as d:
            ds = d.load()
    except (OSError, ValueError) as e:
        reason = " ".join(str(e).split())  # xarray's messages span lines; ours is one
        raise ParamError(f"inputs: cannot read {os.fspath(path)!r} as NetCDF ({reason})") from None
    # The on-disk encoding (string width, chunk sizes) of one run must not shape a combined file:
    # a run whose scheme is 'local' would otherwise truncate 'proposed' to 5 characters.
    for var in ds.variables.values():
        var.encoding = {}
    return ds


#: Dims that are neither a swept point's nor these are the other swept parameters (``run``: open_runs').
OWN_DIMS = ("seed", "block", "wd", "run")


def swept_dims(ds) -> list[str]:
    """The swept parameters of a run or aggregate besides K, arrival_prob, gamma and scheme."""
    return sorted(d for d in ds.dims if d not in POINT_DIMS and d not in OWN_DIMS)


def _model_params(ds, swept: Iterable[str] = ()) -> dict[str, Any]:
    params = json.loads(ds.attrs["params_json"])
    skip = {*AXES, *swept}
    return {k: v for k, v in params.items() if k not in skip}


def _tidy_attrs(ds, swept: Iterable[str] = ()) -> None:
    """Drop the per-point attrs a combined dataset must not carry (they are coordinates)."""
    for name in (*AXES, *swept):
        ds.attrs.pop(f"param_{name}", None)
        ds.attrs.pop(f"param_{name}_units", None)
    for name in (
        "scheme",
        "config_hash",
        "params_json",
        "scheme_params_json",
        "model_hash",
        "history",
        "scheme_module",
        "scheme_module_sha256",
        "scheme_version",
    ):
        ds.attrs.pop(name, None)


def _run_params(ds) -> dict[str, Any]:
    """Every model parameter of a run: its params_json, with the fields that leave it at their
    default (``Field.silent_default``, e.g. ``engine``) filled in."""
    from .params import FIELDS

    return {**{f.name: f.default for f in FIELDS if f.silent_default}, **json.loads(ds.attrs["params_json"])}


def _own_value(ds, name: str) -> Any:
    """A run's value of a parameter it was not swept over: the model's, or its scheme's (None: the
    scheme has no such parameter)."""
    params = _run_params(ds)
    if name in params:
        return params[name]
    return json.loads(ds.attrs.get("scheme_params_json", "{}")).get(name)


def _fill_swept(runs: list, swept: list[str]) -> list:
    """Give every run each swept dim: a run at the model's (or its scheme's default) value, whose path
    does not spell it, gets that value; a scheme without the parameter is repeated along the axis."""
    from .dataset import axis_attrs, point_dims

    values = {}
    for name in swept:
        found = {v.item() for ds in runs if name in ds.dims for v in ds[name].values}
        found |= {v for ds in runs if name not in ds.dims and (v := _own_value(ds, name)) is not None}
        values[name] = sorted(found)
    out = []
    for ds in runs:
        scheme = str(ds["scheme"].values[0])
        for name in swept:
            if name in ds.dims:
                continue
            own = _own_value(ds, name)
            vals = values[name] if own is None else [own]
            ds = ds.expand_dims({name: len(vals)}).assign_coords({name: (name, vals, axis_attrs(name, scheme))})
        out.append(ds.transpose(*point_dims(swept), ...))
    return out


def _fill_own_variables(runs: list) -> list:
    """A variable a scheme's policy declares (``Policy.records``) is in that scheme's runs only;
    the other runs get it as NaN, with its attributes, so that every run has the same variables
    and they combine by coordinates."""
    import numpy as np

    template = {}
    for ds in runs:
        for name, var in ds.data_vars.items():
            template.setdefault(name, var)
    out = []
    for ds in runs:
        missing = {
            name: (var.dims, np.full([ds.sizes[d] for d in var.dims], np.nan), var.attrs)
            for name, var in template.items()
            if name not in ds and all(d in ds.dims for d in var.dims)
        }
        out.append(ds.assign(missing) if missing else ds)
    return out


def _registry_params() -> list:
    from .schemes import SCHEMES

    return [s.params for s in SCHEMES.values()]


def with_bounds(ds, params: dict[str, Any], preset: str, swept: Sequence[str] = ()):
    """``ds`` with the optimum of (9) bracketed at each of its points and seeds (mecmodel.bounds,
    docs/model.md note N): the Lagrangian lower bound, its best price, an upper bound (the exact
    value of a policy the system can run; NaN where the server cannot clear K tasks a block), and
    each scheme's relative gap to the lower bound. Unchanged, with a log line, where the bound is
    not derived (local_service 'head', or no queue unit)."""
    import itertools
    import logging

    import numpy as np
    import xarray as xr

    from .bounds import lower_bounds, upper_bound
    from .env import MECEnv
    from .params import FIELD_BY_NAME, make_params
    from .vocabulary import BOUND_VARIABLES

    dims = [d for d in (*AXES, *swept) if d in FIELD_BY_NAME and d in ds.dims]
    seeds = [int(s) for s in ds["seed"].values]
    points = []
    try:
        for values in itertools.product(*(ds[d].values for d in dims)):
            point = {d: v.item() if hasattr(v, "item") else v for d, v in zip(dims, values, strict=True)}
            P = make_params(preset, {**params, **point})
            points.append((P, MECEnv(P, seeds).mean_gain))
        found = lower_bounds(points)
    except ParamError as e:
        logging.getLogger("mecmodel").warning("aggregate: no bounds on the optimum (%s)", e)
        return ds
    ups = []
    for P, gains in points:
        try:
            ups.append(upper_bound(P, gains))
        except ParamError:
            ups.append(np.full(len(seeds), np.nan))
    shape = (*(ds.sizes[d] for d in dims), len(seeds))
    attrs = {v.name: v.cf_attrs() for v in BOUND_VARIABLES}
    coords = {**{d: ds[d] for d in dims}, "seed": ds["seed"]}
    for name, values in (
        ("lower_bound", [b.lower_bound for b in found]),
        ("bound_price", [b.mu for b in found]),
        ("upper_bound", ups),
    ):
        ds[name] = xr.DataArray(np.reshape(values, shape), coords=coords, dims=(*dims, "seed"), attrs=attrs[name])
    gap = (ds["discounted_cost"] - ds["lower_bound"]) / ds["lower_bound"]
    ds["bound_gap"] = gap.transpose(*ds["discounted_cost"].dims).assign_attrs(attrs["bound_gap"])
    return ds


def _scheme_order(ds):
    from .schemes import order

    return ds.reindex(scheme=order(ds["scheme"].values))


def aggregate(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    experiment: str | None = None,
    config_json: str | None = None,
) -> Path:
    """Combine the run files of one experiment into one zlib-compressed NetCDF file.

    The runs must come from one model (same preset and parameters apart from K,
    arrival_prob and gamma) with the same seeds and blocks, and must form a full grid
    over ``(K, arrival_prob, gamma, scheme)``; anything else raises ``ParamError``
    before a file is written. The output has dims ``(K, arrival_prob, gamma, scheme,
    seed, block)``, schemes in registry order, the runs' common attrs, and
    ``experiment``, ``experiment_config`` (the JSON text given), ``model_params_json``
    and ``n_runs``. The file is replaced atomically.
    """
    import xarray as xr

    from .dataset import write_atomic

    paths = list(dict.fromkeys(os.fspath(p) for p in inputs))
    if not paths:
        raise ParamError("inputs: need at least one run file")
    config = None
    if config_json is not None:
        try:
            config = json.loads(config_json)
        except json.JSONDecodeError as e:
            raise ParamError(f"config_json: not valid JSON ({e.msg} at position {e.pos})") from None
    runs = [_load(p) for p in paths]
    swept = sorted({d for ds in runs for d in swept_dims(ds)} | set((config or {}).get("sweep", {})))

    first = runs[0]
    ref = {
        "preset": first.attrs.get("preset"),
        "blocks": first.sizes["block"],
        "seeds": [int(s) for s in first["seed"].values],
    }
    ref_params = _model_params(first, swept)
    for path, ds in zip(paths, runs, strict=True):
        if any(name not in ds for name in METRIC_NAMES):
            raise ParamError(
                f"inputs: {path} was made by mecmodel {ds.attrs.get('mecmodel_version', '?')}, before runs stored "
                f"{', '.join(METRIC_NAMES)}; run it again (the workflow does: the version is a parameter of every run)"
            )
        got = {
            "preset": ds.attrs.get("preset"),
            "blocks": ds.sizes["block"],
            "seeds": [int(s) for s in ds["seed"].values],
        }
        for key in ref:
            if got[key] != ref[key]:
                raise ParamError(
                    f"inputs: {path} has {key} {got[key]!r} but {paths[0]} has {ref[key]!r}; "
                    "an experiment combines runs of one model, seeds and blocks"
                )
        if _model_params(ds, swept) != ref_params:
            raise ParamError(f"inputs: {path} was made with other model parameters than {paths[0]}")
    grid_dims = (*POINT_DIMS, *swept)
    filled = _fill_own_variables(_fill_swept(runs, swept))

    try:
        combined = xr.combine_by_coords(
            filled,
            data_vars="all",
            coords="different",
            compat="no_conflicts",
            join="exact",
            combine_attrs="drop_conflicts",
        )
    except ValueError as e:
        raise ParamError(f"inputs: the runs do not form a grid over {', '.join(grid_dims)} ({e})") from None
    n_points = 1
    for dim in grid_dims:
        n_points *= combined.sizes[dim]
    covered = sum(math.prod(ds.sizes[d] for d in grid_dims) for ds in filled)
    if n_points != covered:
        raise ParamError(f"inputs: {len(runs)} runs do not fill the {n_points}-point grid over {', '.join(grid_dims)}")

    combined = _scheme_order(combined)
    combined = with_bounds(combined, _run_params(first), str(first.attrs.get("preset")), swept)
    _tidy_attrs(combined, swept)
    combined = paired_differences(combined, (config or {}).get("reference") or default_reference(combined))
    if experiment is not None:
        combined.attrs["experiment"] = experiment
    if config is not None:
        combined.attrs["experiment_config"] = json.dumps(config, sort_keys=True)
    combined.attrs["model_params_json"] = json.dumps(ref_params, sort_keys=True)
    # The model of the run paths (<preset>-<model_hash>): the experiment's preset and overrides,
    # swept model parameters at their base values; from the config when given.
    from .params import FIELD_BY_NAME

    if config is not None and "model" in config:
        combined.attrs["model_hash"] = str(config["model"]).rsplit("-", 1)[-1]
    elif not any(name in FIELD_BY_NAME for name in swept):
        combined.attrs["model_hash"] = stable_hash(ref_params)
    combined.attrs["n_runs"] = len(runs)
    from .version import package_version

    combined.attrs["history"] = (
        f"mecmodel {package_version()} aggregate: experiment {experiment or '-'}, {len(runs)} run files"
    )
    return write_atomic(combined, output)


def find_runs(root: str | os.PathLike = "results") -> list[tuple[Path, dict[str, Any]]]:
    """Every finished run file under ``<root>/runs`` with the point parsed from its path.

    Temporaries of an unfinished write (``*.part``) and files off the canonical layout
    are skipped.
    """
    base = Path(root) / "runs"
    found = []
    for path in sorted(base.glob(RUN_GLOB)):
        info = parse_run_path(path.relative_to(base).as_posix())
        if info is not None:
            found.append((path, info))
    return found


def _wanted(value: Any, want: Any) -> bool:
    if want is None:
        return True
    options = list(want) if isinstance(want, Iterable) and not isinstance(want, str) else [want]
    if isinstance(value, float):
        return canonical_number(value) in {canonical_number(o) for o in options}
    return value in options


def open_runs(
    root: str | os.PathLike = "results",
    *,
    model: str | Sequence[str] | None = None,
    seeds: int | None = None,
    blocks: int | None = None,
    **sel: Any,
):
    """Open every finished run under ``<root>/runs`` as one Dataset along a ``run`` dimension.

    ``run`` is indexed by a MultiIndex with levels ``model`` (``{preset}-{model_hash}``),
    ``K``, ``arrival_prob``, ``gamma`` and ``scheme``, so ``ds.sel(K=20, scheme="proposed")``
    selects on them and ``ds.unstack("run")`` gives the dense grid (NaN where no run
    exists). ``model``, ``K``, ``arrival_prob``, ``gamma`` and ``scheme`` keywords take a
    value or a list and filter files before opening them. Runs of different lengths
    (seeds or blocks) are never mixed: when several are present, choose one with
    ``seeds=`` and ``blocks=``. Per-model settings are kept as coords along ``run``:
    ``preset`` and ``model_params_json``.
    """
    import xarray as xr

    from .params import FIELD_BY_NAME

    unknown = set(sel) - set(POINT_DIMS) - set(FIELD_BY_NAME) - {p for s in _registry_params() for p in s}
    if unknown:
        raise TypeError(
            f"open_runs: unknown selector(s) {sorted(unknown)}; use model, seeds, blocks, {', '.join(POINT_DIMS)}"
        )
    filters = {"model": model, "seeds": seeds, "blocks": blocks, **sel}
    found = [(p, info) for p, info in find_runs(root) if all(_wanted(info.get(k), v) for k, v in filters.items())]
    if not found:
        raise FileNotFoundError(f"no finished run files under {Path(root) / 'runs'} match {filters}")
    lengths: dict[tuple[int, int], int] = {}
    for _, info in found:
        key = (info["seeds"], info["blocks"])
        lengths[key] = lengths.get(key, 0) + 1
    if len(lengths) > 1:
        listing = ", ".join(f"seeds={s} blocks={b} ({n} runs)" for (s, b), n in sorted(lengths.items()))
        raise ValueError(
            f"open_runs: runs of different lengths are present: {listing}; pass seeds= and blocks= to choose one"
        )

    # Swept parameters besides the four axes, in any run found: a level of the index each. A run
    # that did not sweep one holds its value all the same (the model's, or the scheme's default);
    # NaN where the scheme has no such parameter.
    extra = sorted({k for _, info in found for k in info if k not in (*RUN_LEVELS, "seeds", "blocks")})
    pieces = []
    for path, info in found:
        ds = _load(path)
        ds = ds.squeeze([d for d in (*POINT_DIMS, *swept_dims(ds)) if d in ds.dims], drop=False)
        params = _run_params(ds)
        own = json.loads(ds.attrs.get("scheme_params_json", "{}"))
        params_json = json.dumps(_model_params(ds, extra), sort_keys=True)
        _tidy_attrs(ds, extra)
        values = {k: info.get(k, params.get(k, own.get(k, float("nan")))) for k in extra}
        ds = ds.assign_coords(
            model=info["model"], preset=ds.attrs.get("preset", ""), model_params_json=params_json, **values
        )
        pieces.append(ds)
    combined = xr.concat(
        pieces,
        dim="run",
        data_vars="all",
        coords="all",
        compat="equals",
        join="exact",
        combine_attrs="drop_conflicts",
    )
    for name in ("model", "preset", "model_params_json"):
        combined[name].attrs["long_name"] = {
            "model": "model id: preset and hash of the model parameters (all but K, arrival_prob, gamma)",
            "preset": "parameter preset of the model",
            "model_params_json": "model parameters (all but K, arrival_prob, gamma) as JSON",
        }[name]
    return combined.set_index(run=[*RUN_LEVELS, *extra])
