"""The environment/policies redesign kept every scheme bit-identical.

``tests/data`` holds runs made by ``tests/data/make_reference.py`` with the code before the
redesign (commit 6390733): the float64 arrays of ``simulate_arrays`` for 13 cases (every scheme,
both gradient forms, the three local-service rules, the paper preset, convergence with freezing,
divergence) and the six schemes' datasets. Each is recomputed here and compared bit for bit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import mecmodel
import mecmodel.dataset

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
from make_reference import CASES, DATASETS, arrays  # noqa: E402


@pytest.mark.parametrize("case", sorted(CASES))
def test_arrays_are_bit_identical(case):
    ref = np.load(DATA / f"{case}.npz")
    got = arrays(CASES[case])
    assert sorted(got) == sorted(ref.files)
    for key in ref.files:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=f"{case}: {key}", strict=True)


#: What the datasets gained since the reference files were made, and nothing else may change.
#: Issue 13 (CF-clean datasets, the field's metrics): counts of blocks had units "block", which
#: UDUNITS does not know, now "1"; a deterministic ``history`` attribute; new per-seed metrics.
UNITS_BLOCK_TO_1 = tuple(
    f"{alg}_{name}"
    for alg in ("alg1", "alg2")
    for name in ("converged_block_median", "converged_block_max", "diverged_block")
)
ADDED_VARIABLES = tuple(mecmodel.dataset.METRICS)
ADDED_ATTRS = ("history", "scheme_params_json")
#: Issue 11: the ``engine`` field (numpy or the compiled numba; at its default it is not in
#: params_json nor the hashes, so the runs keep their ids) has its param_ attributes.
ADDED_ATTRS += ("param_engine", "param_engine_units")


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
    xr.testing.assert_identical(got, ref)
