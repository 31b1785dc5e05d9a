"""``mecmodel simulate`` writes its run file with netCDF4 alone (no xarray import, most of a job's
start-up): the file reads back identical to the one xarray writes of the same run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from mecmodel.dataset import build_dataset, dataset_parts, write_atomic, write_parts
from mecmodel.params import make_params
from mecmodel.simulation import simulate_arrays

CASES = [
    ("proposed", None, (), False),
    ("binary", None, (), True),  # per-device series: the wd dim
    ("dpp", {"V": 10.0}, ("V", "f_ser_max"), False),  # a scheme parameter and a model parameter swept
    ("even_min_energy", None, ("shadowing_db",), True),  # a swept parameter in dB
]


@pytest.mark.parametrize(("scheme", "scheme_params", "sweep", "per_device"), CASES)
def test_netcdf4_file_reads_back_as_xarrays(tmp_path, scheme, scheme_params, sweep, per_device):
    P = make_params("default", {"K": 3, "f_ser_max": 2e10, "shadowing_db": 4.0, "divergence_limit": 1e3})
    out = simulate_arrays(P, scheme, [0, 5], 30, per_device=per_device, scheme_params=scheme_params)
    run = {"scheme": scheme, "seeds": [0, 5], "blocks": 30}
    by_xarray = write_atomic(build_dataset(out, P, scheme, 30, run, sweep), tmp_path / "a.nc")
    by_netcdf4 = write_parts(dataset_parts(out, P, scheme, 30, run, sweep), tmp_path / "b.nc")
    with xr.open_dataset(by_xarray) as a, xr.open_dataset(by_netcdf4) as b:
        xr.testing.assert_identical(a.load(), b.load())
        for name in a.variables:
            assert a[name].dtype == b[name].dtype, name
            ea, eb = a[name].encoding, b[name].encoding
            for key in ("dtype", "zlib", "complevel", "shuffle", "chunksizes", "contiguous"):
                assert ea.get(key) == eb.get(key), (name, key)
            fa, fb = ea.get("_FillValue"), eb.get("_FillValue")
            assert (fa is None) == (fb is None) and (fa is None or np.isnan(fa) == np.isnan(fb)), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc", "b.nc"]  # no temporary left


def test_simulate_command_does_not_import_xarray(tmp_path):
    out = tmp_path / "r.nc"
    code = (
        "import sys; from mecmodel.cli import main; "
        f"rc = main(['simulate', '--K', '2', '--seeds', '2', '--blocks', '5', '--progress', 'off', '-o', {str(out)!r}]); "
        "print(rc, 'xarray' in sys.modules, 'pandas' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "False", "False"]
    with xr.open_dataset(out) as ds:
        assert ds.sizes["seed"] == 2 and ds.attrs["Conventions"] == "CF-1.10"
