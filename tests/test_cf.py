"""Run files and aggregates pass the CF checker that the NetCDF community uses.

compliance-checker (IOOS) with the CF suite that the files' ``Conventions`` attribute names
reports no errors and no warnings: every check scores full points and no check raised.
"""

from __future__ import annotations

import json

import pytest
import xarray as xr
from compliance_checker.runner import CheckSuite, ComplianceChecker

import mecmodel
from mecmodel.dataset import write_atomic
from mecmodel.results import aggregate
from mecmodel.sweep import run_path


def cf_report(path, tmp_path) -> tuple[list[str], dict]:
    """Every message of the checker's suite named by the file's Conventions, and the raw report."""
    with xr.open_dataset(path) as ds:
        conventions = ds.attrs["Conventions"]
    assert conventions.startswith("CF-")
    suite = "cf:" + conventions.removeprefix("CF-")
    CheckSuite().load_all_available_checkers()
    out = tmp_path / f"{path.stem}.json"
    passed, raised = ComplianceChecker.run_checker(
        str(path), [suite], 0, "normal", output_filename=str(out), output_format="json"
    )
    (report,) = json.loads(out.read_text()).values()
    msgs = [
        f"{pri}: {check['name']}: {msg}"
        for pri in ("high_priorities", "medium_priorities", "low_priorities")
        for check in report[pri]
        for msg in check["msgs"]
    ]
    if raised:  # a check that raised (e.g. on a string coordinate variable) is printed, not scored
        msgs.append("a check of the suite raised an exception")
    assert passed or msgs
    return msgs, report


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cf")
    paths = []
    for K in (2, 3):
        for scheme in ("proposed", "even", "dpp"):
            ds = mecmodel.simulate(K=K, arrival_prob=0.4, gamma=0.9, scheme=scheme, seeds=2, blocks=40)
            point = {"K": K, "arrival_prob": 0.4, "gamma": 0.9, "scheme": scheme}
            paths.append(write_atomic(ds, run_path(f"default-{ds.attrs['model_hash']}", point, 2, 40, str(root))))
    return root, paths


def test_a_run_file_is_cf_clean(runs, tmp_path):
    _, paths = runs
    msgs, report = cf_report(paths[0], tmp_path)
    assert msgs == []
    assert report["scored_points"] == report["possible_points"] > 0


def test_an_aggregate_is_cf_clean(runs, tmp_path):
    root, paths = runs
    agg = aggregate(paths, root / "agg.nc", experiment="e")
    msgs, report = cf_report(agg, tmp_path)
    assert msgs == []
    assert report["scored_points"] == report["possible_points"] > 0


def test_every_variable_has_units_and_long_name(runs):
    root, paths = runs
    agg = aggregate(paths, root / "agg2.nc", experiment="e")
    for path in (paths[0], agg):
        with xr.open_dataset(path) as ds:
            for name, var in ds.variables.items():
                assert var.attrs.get("long_name"), f"{path.name}: {name} has no long_name"
                if name != "scheme":  # a label: CF gives strings no units
                    assert "units" in var.attrs, f"{path.name}: {name} has no units"
            assert ds.attrs["history"]
