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


@pytest.mark.parametrize("case", DATASETS)
def test_dataset_is_identical(case):
    with xr.open_dataset(DATA / f"{case}.nc") as ref:
        ref = ref.load()
    got = mecmodel.simulate(**CASES[case], per_device=True)
    for name in ("mecmodel_version", "source"):  # the version may move on; nothing else may
        ref.attrs.pop(name), got.attrs.pop(name)
    xr.testing.assert_identical(got, ref)
