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
from .vocabulary import POINT_DIMS

# name: (units, long_name)
SERIES = {
    "cost": ("1", "weighted cost per block, c(s_t) of (8)"),
    "cost_server_queue": ("1", "server-queue term w1 q^ser of (8)"),
    "cost_server_energy": ("1", "server-energy term w2 E^ser of (8)"),
    "cost_wd_queue": ("1", "WD-queue term sum_k w3 q^wd_k of (8)"),
    "cost_wd_energy": ("1", "WD-energy term sum_k w4 (E^wd_k + E^off_k) of (8)"),
    "wd_queue_mean": ("cycle", "mean WD queue at the start of the block"),
    "wd_queue_max": ("cycle", "largest WD queue at the start of the block"),
    "server_queue": ("cycle", "server queue at the start of the block"),
    "energy_local": ("J", "local computing energy summed over WDs, (2)"),
    "energy_offload": ("J", "offloading energy summed over WDs, (5)"),
    "energy_server": ("J", "server computing energy, (7)"),
    "tx_power_mean": ("W", "mean transmit power over WDs, (4)"),
    "offloaded_fraction": ("1", "share of the cycles served this block that were offloaded"),
    "server_rate_mean": ("cycle s-1", "mean effective server CPU rate over the block's slots"),
    "alg1_td_error": ("1", "Algorithm 1: |TD error| (24), mean over WDs"),
    "alg1_rel_change": ("1", "Algorithm 1: ||theta_t+1 - theta_t|| / ||theta_t||, mean over WDs"),
    "alg2_td_error": ("1", "Algorithm 2: |TD error| (31)"),
    "alg2_rel_change": ("1", "Algorithm 2: ||eta_t+1 - eta_t|| / ||eta_t||"),
}
#: Per-seed long-run averages (over the last ``average_fraction`` of the blocks, as average_cost):
#: what MEC papers report. Queues in tasks (cycles / W), UDUNITS' "1" with the unit in long_name.
METRICS = {
    "mean_queue_wd": ("1", "time-average WD queue in tasks (cycles / W), mean over WDs"),
    "mean_queue_server": ("1", "time-average server queue in tasks (cycles / W)"),
    "mean_energy_wd": ("J", "average energy per block of one WD, local (2) + offloading (5), mean over WDs"),
    "mean_energy_server": ("J", "average server energy per block, (7)"),
    "mean_energy": ("J", "average energy per block of the whole system, every WD and the server"),
    "offloaded_share": ("1", "share of the cycles the WDs served that were offloaded to the server"),
}
DEVICE = {
    "wd_queue_k": ("cycle", "WD queue at the start of the block"),
    "tx_power_k": ("W", "transmit power, (4)"),
    "local_rate_k": ("cycle s-1", "local CPU rate f^wd (equal in every slot)"),
    "offloaded_k": ("cycle", "back-end cycles offloaded"),
}


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

    sdims = dims_point + ("seed", "block")
    data = {k: (sdims, series(out["series"][k]), {"units": u, "long_name": n}) for k, (u, n) in SERIES.items()}
    for k, (u, n) in DEVICE.items():
        if k in out["device"]:
            data[k] = (sdims + ("wd",), series(out["device"][k]), {"units": u, "long_name": n})
    pdims = dims_point + ("seed",)
    gamma = P.gamma
    data.update(
        {
            "discounted_cost": (
                pdims,
                per_seed(out["discounted_cost"]),
                {"units": "1", "long_name": f"discounted sum cost (9a), sum_t gamma^t c_t over {blocks} blocks"},
            ),
            "average_cost": (
                pdims,
                per_seed(out["average_cost"]),
                {"units": "1", "long_name": f"long-run average cost per block over blocks >= {out['average_from']}"},
            ),
            "latency": (
                pdims,
                per_seed(out["latency"]),
                {"units": "s", "long_name": f"mean task latency by Little's law over blocks >= {out['average_from']}"},
            ),
        }
    )
    for k, (u, n) in METRICS.items():
        data[k] = (
            pdims,
            per_seed(out["metrics"][k]),
            {"units": u, "long_name": f"{n}, blocks >= {out['average_from']}"},
        )
    for k, v in out["work"].items():
        data[f"work_{k}"] = (
            pdims,
            per_seed(v),
            {
                "units": "cycle",
                "long_name": {
                    "arrived": "cycles that arrived over the run",
                    "local": "cycles computed locally at the WDs",
                    "server": "cycles computed at the server",
                    "offloaded": "back-end cycles offloaded to the server",
                    "queued": "cycles still queued at the end (WDs and server)",
                }[k],
            },
        )
    for alg in ("alg1", "alg2"):
        a = out["agents"].get(alg)
        nanv = np.full(len(seeds), np.nan)
        who = "WDs" if alg == "alg1" else "server"
        data[f"{alg}_converged_block_median"] = (
            pdims,
            per_seed(a["converged_block_median"] if a else nanv),
            {
                "units": "1",
                "long_name": f"{'Algorithm 1' if alg == 'alg1' else 'Algorithm 2'}: median block at which the {who} converged (NaN: not converged or not learning)",
            },
        )
        data[f"{alg}_converged_block_max"] = (
            pdims,
            per_seed(a["converged_block_max"] if a else nanv),
            {
                "units": "1",
                "long_name": f"{'Algorithm 1' if alg == 'alg1' else 'Algorithm 2'}: block at which the last of the {who} converged (NaN: not all converged)",
            },
        )
        data[f"{alg}_converged_fraction"] = (
            pdims,
            per_seed(a["converged_fraction"] if a else nanv),
            {"units": "1", "long_name": f"share of the {who} that converged"},
        )
        data[f"{alg}_diverged_block"] = (
            pdims,
            per_seed(a["diverged_block"] if a else np.full(len(seeds), -1), np.int64),
            {"units": "1", "long_name": f"first block at which a learner of the {who} diverged (-1: never)"},
        )
    div = np.zeros(len(seeds), dtype=bool)
    for a in out["agents"].values():
        div |= a["diverged_block"] >= 0
    data["diverged"] = (
        pdims,
        per_seed(div.astype(np.int8), np.int8),
        {
            "units": "1",
            "long_name": "1 where a learner diverged in this seed (its weights were frozen at the last finite values)",
            "flag_values": np.array([0, 1], dtype=np.int8),
            "flag_meanings": "finite diverged",
        },
    )

    coords = {
        "K": ("K", np.array([P.K], dtype=np.int64), {"units": "1", "long_name": "number of WDs"}),
        "arrival_prob": (
            "arrival_prob",
            np.array([P.arrival_prob]),
            {"units": "1", "long_name": "task arrival probability per slot"},
        ),
        "gamma": ("gamma", np.array([gamma]), {"units": "1", "long_name": "discount factor"}),
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


def encoding(ds) -> dict:
    """NetCDF4 encoding: zlib-compressed variables, NaN as the floats' fill value; no fill value on
    coordinates and strings as character arrays (CF 1.10 sections 2.5.1 and 2.2)."""
    enc = {}
    for name, var in ds.data_vars.items():
        enc[name] = {"zlib": True, "complevel": 4}
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
                    var = nc.createVariable(
                        name, values.dtype, dims, zlib=True, complevel=4, shuffle=True, fill_value=fill
                    )
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
