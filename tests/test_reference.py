"""Reference runs made before the compiled engine, against the oracle (bits) and the engine (close).

``tests/data`` holds runs made by ``tests/data/make_reference.py`` with the numpy engine before
the environment/policies redesign: the float64 arrays of ``simulate_arrays`` for 13 cases (every
scheme, both gradient forms, the three local-service rules, the paper preset, convergence with
freezing, divergence) and the six schemes' datasets. The chain of evidence:

* the numpy oracle of ``tests/oracle.py`` recomputes every case bit for bit (it is that code);
* the compiled engine agrees with it to ``RTOL`` on the cases short enough that no threshold
  flips (``tests/test_engine.py`` does so for every scheme and option at 60 blocks), and the
  datasets have the same structure, attributes and values to the same tolerance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import oracle
import pytest
import xarray as xr

import mecmodel
import mecmodel.dataset
from mecmodel.params import make_params

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
from make_reference import CASES, DATASETS, arrays  # noqa: E402

RTOL = 1e-9
#: Cases whose horizon a threshold crossing outlasts (tests/test_engine.py's tolerance holds).
SHORT = [c for c in sorted(CASES) if CASES[c]["blocks"] <= 80]


def _oracle_arrays(kwargs: dict) -> dict[str, np.ndarray]:
    """:func:`make_reference.arrays` computed by the numpy oracle."""
    over = dict(kwargs.get("overrides", {}))
    for k in ("K", "arrival_prob", "gamma"):
        over[k] = kwargs[k]
    P = make_params(kwargs.get("preset", "default"), over)
    out = oracle.simulate_arrays(P, kwargs["scheme"], kwargs["seeds"], kwargs["blocks"], per_device=True)
    flat = {f"series/{k}": v for k, v in out["series"].items()}
    flat.update({f"device/{k}": v for k, v in out["device"].items()})
    flat.update({f"work/{k}": v for k, v in out["work"].items()})
    for alg, d in out["agents"].items():
        flat.update({f"agents/{alg}/{k}": v for k, v in d.items()})
    for k in ("discounted_cost", "average_cost", "latency"):
        flat[k] = out[k]
    return flat


@pytest.mark.parametrize("case", sorted(CASES))
def test_oracle_is_bit_identical_to_the_references(case):
    ref = np.load(DATA / f"{case}.npz")
    got = _oracle_arrays(CASES[case])
    assert sorted(got) == sorted(set(ref.files) - {"mean_gain", "distance"})
    for key in got:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=f"{case}: {key}", strict=True)


@pytest.mark.parametrize("case", SHORT)
def test_engine_agrees_with_the_references(case):
    ref = np.load(DATA / f"{case}.npz")
    got = arrays(CASES[case])
    assert sorted(got) == sorted(ref.files)
    for key in ref.files:
        x, y = ref[key], got[key]
        assert x.shape == y.shape and x.dtype == y.dtype, key
        if x.dtype.kind == "f":
            finite = np.abs(x[np.isfinite(x)])
            atol = RTOL * (finite.max() if finite.size else 0.0)
            np.testing.assert_allclose(y, x, rtol=RTOL, atol=atol, equal_nan=True, err_msg=f"{case}: {key}")
        else:
            np.testing.assert_array_equal(y, x, err_msg=f"{case}: {key}")


#: What the datasets gained since the reference files were made, and nothing else may change.
#: Issue 13 (CF-clean datasets, the field's metrics): counts of blocks had units "block", which
#: UDUNITS does not know, now "1"; a deterministic ``history`` attribute; new per-seed metrics.
UNITS_BLOCK_TO_1 = tuple(
    f"{alg}_{name}"
    for alg in ("alg1", "alg2")
    for name in ("converged_block_median", "converged_block_max", "diverged_block")
)
ADDED_VARIABLES = (
    "mean_queue_wd",
    "mean_queue_server",
    "mean_energy_wd",
    "mean_energy_server",
    "mean_energy",
    "offloaded_share",
)
ADDED_ATTRS = ("history", "scheme_params_json")


@pytest.mark.parametrize("case", DATASETS)
def test_dataset_is_identical(case):
    with xr.open_dataset(DATA / f"{case}.nc") as ref:
        ref = ref.load()
    got = mecmodel.simulate(**CASES[case], per_device=True)
    for name in ("mecmodel_version", "source"):  # the version may move on; nothing else may
        ref.attrs.pop(name), got.attrs.pop(name)
    for name in UNITS_BLOCK_TO_1:
        assert ref[name].attrs["units"] == "block"
        ref[name].attrs["units"] = "1"
    assert set(got.data_vars) - set(ref.data_vars) == set(ADDED_VARIABLES)
    assert set(got.attrs) - set(ref.attrs) == set(ADDED_ATTRS)
    got = got.drop_vars(ADDED_VARIABLES)
    for name in ADDED_ATTRS:
        got.attrs.pop(name)
    # the same structure and attributes, the values to the engine's tolerance (float32 in the file)
    xr.testing.assert_allclose(got, ref, rtol=1e-6)
    for name in [None, *ref.variables]:
        a, b = (got.attrs, ref.attrs) if name is None else (got[name].attrs, ref[name].attrs)
        assert sorted(a) == sorted(b), name
        for key in b:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}.{key}")
        assert name is None or ref[name].dtype.kind not in "fiub" or got[name].dtype == ref[name].dtype, name
