"""Simulation output as an xarray Dataset with CF-style metadata, and atomic NetCDF I/O.

Each run's Dataset has dims ``(K, arrival_prob, gamma, scheme, seed, block)`` where the
first four have length one, so files of a sweep combine with ``xr.combine_by_coords``
or ``xr.open_mfdataset`` with no glue code; ``ds.squeeze()`` gives scalar coords.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_paths
from .params import FIELD_BY_NAME, Params, stable_hash
from .version import package_version
from .vocabulary import POINT_DIMS, VARIABLES

#: Field units UDUNITS does not know: a coordinate of such a field gets units "1" and the unit in its long_name.
NOT_UDUNITS = ("dB", "task", "block")


def axis_attrs(name: str, scheme: str) -> dict[str, str]:
    """CF attrs of a swept parameter's coordinate: a model parameter's or a scheme parameter's."""
    from .schemes import SCHEMES

    declared = [SCHEMES[scheme]] if scheme in SCHEMES else []
    declared += list(SCHEMES.values())  # a scheme without it shares the axis of one that has it
    spec = FIELD_BY_NAME.get(name) or next((s.params[name] for s in declared if name in s.params), None)
    if spec is None:
        return {"units": "1", "long_name": f"swept parameter {name}"}
    if spec.unit in NOT_UDUNITS:
        return {"units": "1", "long_name": f"{spec.doc} [{spec.unit}]"}
    return {"units": spec.unit, "long_name": spec.doc}


def point_dims(sweep: Sequence[str] = ()) -> tuple[str, ...]:
    """A run's length-1 dims: K, arrival_prob, gamma, the other swept parameters by name, scheme."""
    return (*POINT_DIMS[:-1], *sorted(sweep), POINT_DIMS[-1])


def _per_seed_values(out: dict, n_seeds: int) -> dict[str, Any]:
    """The per-seed variables of :data:`mecmodel.vocabulary.VARIABLES` from a run's summaries."""
    values = {name: out[name] for name in ("discounted_cost", "average_cost", "latency")}
    values.update(out["metrics"])
    values.update({f"work_{k}": v for k, v in out["work"].items()})
    nan, never = np.full(n_seeds, np.nan), np.full(n_seeds, -1)
    diverged = np.zeros(n_seeds, dtype=bool)
    for alg in ("alg1", "alg2"):
        summary = out["agents"].get(alg)
        for key in ("converged_block_median", "converged_block_max", "converged_fraction", "diverged_block"):
            values[f"{alg}_{key}"] = summary[key] if summary else (never if key == "diverged_block" else nan)
        if summary:
            diverged |= summary["diverged_block"] >= 0
    values["diverged"] = diverged.astype(np.int8)
    return values


def build_dataset(out: dict, P: Params, scheme: str, blocks: int, run: dict[str, Any], sweep: Sequence[str] = ()):
    """Assemble the Dataset from :func:`mecmodel.simulation.simulate_arrays` output.

    ``sweep`` names parameters besides K, arrival_prob and gamma (model parameters or the
    scheme's) that become length-1 dimensions with a coordinate, as a sweep's axes.
    """
    import xarray as xr

    data, coords, attrs = dataset_parts(out, P, scheme, blocks, run, sweep)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def dataset_parts(
    out: dict, P: Params, scheme: str, blocks: int, run: dict[str, Any], sweep: Sequence[str] = ()
) -> tuple[dict, dict, dict]:
    """The run's variables, coordinates (name: (dims, array, attrs)) and attributes, in plain numpy:
    what :func:`build_dataset` makes a Dataset of and :func:`write_parts` writes without xarray."""
    seeds = np.asarray(out["seeds"], dtype=np.int64)
    dims_point = point_dims(sweep)
    lead = (1,) * len(dims_point)

    def series(a):
        return np.asarray(a, dtype=np.float32).reshape(lead + a.shape)

    def per_seed(a, dtype=np.float64):
        return np.asarray(a, dtype=dtype).reshape(lead + a.shape)

    dims = {
        "block": dims_point + ("seed", "block"),
        "wd": dims_point + ("seed", "block", "wd"),
        "seed": dims_point + ("seed",),
    }
    context = {"blocks": blocks, "average_from": out["average_from"]}
    values = _per_seed_values(out, len(seeds))
    data = {}
    for var in VARIABLES:
        if var.per == "block":
            array = series(out["series"][var.name])
        elif var.per == "wd":
            if var.name not in out["device"]:
                continue
            array = series(out["device"][var.name])
        else:
            array = per_seed(values[var.name], np.dtype(var.dtype))
        attrs = var.cf_attrs(**context)
        if "flag_values" in attrs:
            attrs["flag_values"] = np.array(attrs["flag_values"], dtype=var.dtype)
        data[var.name] = (dims[var.per], array, attrs)
    # the variables the scheme's policies declare (Policy.records), after the table's
    for name, (var, values) in out.get("records", {}).items():
        array = series(values) if var.per == "block" else per_seed(values)
        data[name] = (dims[var.per], array, {"units": var.units, "long_name": var.long_name, **var.attrs})

    coords = {
        "K": ("K", np.array([P.K], dtype=np.int64), {"units": "1", "long_name": "number of WDs"}),
        "arrival_prob": (
            "arrival_prob",
            np.array([P.arrival_prob]),
            {"units": "1", "long_name": "task arrival probability per slot"},
        ),
        "gamma": ("gamma", np.array([P.gamma]), {"units": "1", "long_name": "discount factor"}),
        **{
            name: (
                name,
                np.array([P.values[name] if name in P.values else out["scheme_params"][name]]),
                axis_attrs(name, scheme),
            )
            for name in sorted(sweep)
        },
        "scheme": ("scheme", np.array([scheme], dtype=object), {"long_name": "offloading scheme"}),
        "seed": ("seed", seeds, {"units": "1", "long_name": "random seed"}),
        "block": ("block", np.arange(blocks, dtype=np.int64), {"units": "1", "long_name": "decision block index t"}),
    }
    if out["device"]:
        coords["wd"] = ("wd", np.arange(P.K, dtype=np.int64), {"units": "1", "long_name": "WD index k"})
    attrs = {
        "title": "mecmodel simulation of sequential DNN task offloading",
        "Conventions": "CF-1.10",
        # No time stamp: the same config and seeds give an identical file.
        "history": f"mecmodel {package_version()} simulate: preset {P.preset}, scheme {scheme}, "
        f"seeds {', '.join(map(str, seeds))}, {blocks} blocks",
        "source": f"mecmodel {package_version()}",
        "mecmodel_version": package_version(),
        "preset": P.preset,
        "scheme": scheme,
        "blocks": blocks,
        "n_seeds": len(seeds),
        "per_device": int(bool(out["device"])),
        "model_hash": P.model_hash(),
        "config_hash": stable_hash({"params": P.to_dict(), **run}),
        "params_json": json.dumps(P.to_dict(), sort_keys=True),
        "scheme_params_json": json.dumps(out["scheme_params"], sort_keys=True),
    }
    from .schemes import get_scheme, module_digest, module_of

    spec = module_of(scheme)
    if spec is not None:  # a scheme of a scheme module: which code made the run
        attrs["scheme_module"] = spec
        attrs["scheme_module_sha256"] = module_digest(spec)
        if get_scheme(scheme).version:
            attrs["scheme_version"] = get_scheme(scheme).version
    for k, v in P.values.items():  # every field, the engine too (params_json holds what identifies the model)
        attrs[f"param_{k}"] = int(v) if isinstance(v, bool) else v
    for k, f in FIELD_BY_NAME.items():
        attrs[f"param_{k}_units"] = f.unit
    return data, coords, attrs


#: How every data variable is compressed. zlib level 1 (4 until mecmodel 0.3's faster sweep) with
#: the byte shuffle: a run's float32 series (noise, mostly) are about 3 % larger than at level 4,
#: written in about half the time.
COMPRESSION = {"zlib": True, "complevel": 1, "shuffle": True}


def encoding(ds) -> dict:
    """NetCDF4 encoding: compressed variables (:data:`COMPRESSION`), NaN as the floats' fill value; no
    fill value on coordinates and strings as character arrays (CF 1.10 sections 2.5.1 and 2.2)."""
    enc = {}
    for name, var in ds.data_vars.items():
        enc[name] = dict(COMPRESSION)
        if var.dtype.kind == "f":
            enc[name]["_FillValue"] = np.nan
    for name, var in ds.coords.items():
        enc[name] = {"_FillValue": None}
        if var.dtype.kind in "OU":
            enc[name]["dtype"] = "S1"
    return enc


def write_parts(parts: tuple[dict, dict, dict], path: str | os.PathLike) -> Path:
    """Write :func:`dataset_parts` to NetCDF at ``path`` with netCDF4 alone, atomically.

    The file reads back (``xr.open_dataset``) identical to what :func:`write_atomic` writes of
    :func:`build_dataset` (``tests/test_dataset_io.py``): the same dims, dtypes, attributes,
    compression and fill values, strings as character arrays. ``mecmodel simulate`` writes its
    run file this way: importing xarray (and pandas) is most of a job's start-up.
    """
    import netCDF4

    data, coords, attrs = parts
    path = Path(path)
    with atomic_paths(path) as (tmp,):
        try:
            with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
                for name, (_, values, _) in coords.items():  # a coordinate is named after its dim
                    nc.createDimension(name, len(values))
                for name, (_, values, vattrs) in coords.items():
                    values = np.asarray(values)
                    if values.dtype.kind in "OU":  # a string coordinate, as xarray writes it
                        text = [str(v).encode("utf-8") for v in values]
                        width = max(1, *(len(t) for t in text))
                        char_dim = f"string{width}"
                        if char_dim not in nc.dimensions:
                            nc.createDimension(char_dim, width)
                        var = nc.createVariable(name, "S1", (name, char_dim), fill_value=False)
                        var._Encoding = "utf-8"
                        var.setncatts(vattrs)
                        var[:] = netCDF4.stringtochar(np.array(text, dtype=f"S{width}"))
                    else:
                        var = nc.createVariable(name, values.dtype, (name,), fill_value=False)
                        var.setncatts(vattrs)
                        var[:] = values
                for name, (dims, values, vattrs) in data.items():
                    values = np.asarray(values)
                    fill = values.dtype.type(np.nan) if values.dtype.kind == "f" else None
                    var = nc.createVariable(name, values.dtype, dims, fill_value=fill, **COMPRESSION)
                    var.set_auto_maskandscale(False)
                    var.setncatts(vattrs)
                    var[:] = values
                nc.setncatts(attrs)
        except RuntimeError as e:
            raise _write_error(e, path) from None
    return path


def write_atomic(ds, path: str | os.PathLike) -> Path:
    """Write ``ds`` to NetCDF at ``path`` so that the final path only ever holds a complete file.

    The file is written under a temporary name in the same folder, flushed to disk and
    renamed over ``path``; on any error the temporary file is removed. A failed write
    (disk full, file size limit) raises :class:`OSError` naming ``path``.
    """
    path = Path(path)
    with atomic_paths(path) as (tmp,):
        try:
            ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding(ds))
        except RuntimeError as e:
            raise _write_error(e, path) from None
    return path


def _write_error(e: RuntimeError, path: Path) -> OSError:
    """The netCDF/HDF5 library reports a failed write(2) only as "NetCDF: HDF error": name the file."""
    return OSError(errno.EIO, f"the NetCDF library could not write the file ({e}); is the disk full?", str(path))
