"""Reading and combining simulation runs written by the workflow.

The workflow writes one NetCDF file per parameter point at a canonical path, the template
:data:`mecmodel.sweep.RUN` below ``<root>/runs`` (``{model}`` is ``{preset}-{model_hash}``).

* :func:`aggregate` combines the runs of one experiment (a full Cartesian grid of a single
  model) into one dense, compressed dataset with dims ``(K, arrival_prob, gamma, scheme,
  seed, block)``.
* :func:`open_runs` opens every finished run under ``results/runs``, also of a partial
  sweep, stacked along one ``run`` dimension indexed by ``(model, K, arrival_prob, gamma,
  scheme)``. Runs of different models (preset or overrides) stay apart through the
  ``model`` level; ``.unstack("run")`` gives a dense grid with NaN where no run exists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .params import ParamError
from .sweep import AXES, POINT_DIMS, RUN_GLOB, canonical_number, parse_run_path, run_path

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


def _model_params(ds) -> dict[str, Any]:
    params = json.loads(ds.attrs["params_json"])
    return {k: v for k, v in params.items() if k not in AXES}


def _tidy_attrs(ds) -> None:
    """Drop the per-point attrs a combined dataset must not carry (they are coordinates)."""
    for name in AXES:
        ds.attrs.pop(f"param_{name}", None)
        ds.attrs.pop(f"param_{name}_units", None)
    for name in ("scheme", "config_hash", "params_json", "scheme_module", "scheme_module_sha256", "scheme_version"):
        ds.attrs.pop(name, None)


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
    over ``(K, arrival_prob, gamma, scheme)``; anything else raises :class:`ParamError`
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

    first = runs[0]
    ref = {
        "model_hash": first.attrs.get("model_hash"),
        "preset": first.attrs.get("preset"),
        "blocks": first.sizes["block"],
        "seeds": [int(s) for s in first["seed"].values],
    }
    ref_params = _model_params(first)
    for path, ds in zip(paths, runs, strict=True):
        got = {
            "model_hash": ds.attrs.get("model_hash"),
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
        if _model_params(ds) != ref_params:
            raise ParamError(f"inputs: {path} was made with other model parameters than {paths[0]}")

    try:
        combined = xr.combine_by_coords(
            runs,
            data_vars="all",
            coords="different",
            compat="no_conflicts",
            join="exact",
            combine_attrs="drop_conflicts",
        )
    except ValueError as e:
        raise ParamError(f"inputs: the runs do not form a grid over {', '.join(POINT_DIMS)} ({e})") from None
    n_points = 1
    for dim in POINT_DIMS:
        n_points *= combined.sizes[dim]
    if n_points != len(runs):
        raise ParamError(f"inputs: {len(runs)} runs do not fill the {n_points}-point grid over {', '.join(POINT_DIMS)}")

    combined = _scheme_order(combined)
    _tidy_attrs(combined)
    if experiment is not None:
        combined.attrs["experiment"] = experiment
    if config is not None:
        combined.attrs["experiment_config"] = json.dumps(config, sort_keys=True)
    combined.attrs["model_params_json"] = json.dumps(ref_params, sort_keys=True)
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

    unknown = set(sel) - set(POINT_DIMS)
    if unknown:
        raise TypeError(
            f"open_runs: unknown selector(s) {sorted(unknown)}; use model, seeds, blocks, {', '.join(POINT_DIMS)}"
        )
    filters = {"model": model, "seeds": seeds, "blocks": blocks, **sel}
    found = [(p, info) for p, info in find_runs(root) if all(_wanted(info[k], v) for k, v in filters.items())]
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

    pieces = []
    for path, info in found:
        ds = _load(path).squeeze(POINT_DIMS, drop=False)
        params_json = json.dumps(_model_params(ds), sort_keys=True)
        _tidy_attrs(ds)
        ds = ds.assign_coords(model=info["model"], preset=ds.attrs.get("preset", ""), model_params_json=params_json)
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
    return combined.set_index(run=list(RUN_LEVELS))
