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
from mecmodel.paths import run_path
from mecmodel.results import aggregate


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
    model = f"default-{mecmodel.make_params('default').model_hash()}"
    for K in (2, 3):
        for scheme in ("proposed", "even", "dpp"):
            ds = mecmodel.simulate(K=K, arrival_prob=0.4, gamma=0.9, scheme=scheme, seeds=2, blocks=40)
            point = {"K": K, "arrival_prob": 0.4, "gamma": 0.9, "scheme": scheme}
            paths.append(write_atomic(ds, run_path(model, point, 2, 40, str(root))))
        # a swept parameter of a scheme (dpp's V), a coordinate of the run and of the aggregate
        ds = mecmodel.simulate(
            K=K, arrival_prob=0.4, gamma=0.9, scheme="dpp", seeds=2, blocks=40, scheme_params={"V": 10.0}, sweep=["V"]
        )
        point = {"K": K, "arrival_prob": 0.4, "gamma": 0.9, "scheme": "dpp", "V": 10.0}
        paths.append(write_atomic(ds, run_path(model, point, 2, 40, str(root))))
    return root, paths


def test_a_run_with_a_swept_model_parameter_in_db_is_cf_clean(tmp_path):
    ds = mecmodel.simulate(K=2, seeds=2, blocks=20, overrides={"shadowing_db": 4.0}, sweep=["shadowing_db"])
    assert ds["shadowing_db"].attrs["units"] == "1" and "[dB]" in ds["shadowing_db"].attrs["long_name"]
    msgs, _ = cf_report(write_atomic(ds, tmp_path / "db.nc"), tmp_path)
    assert msgs == []


def test_every_parameter_unit_is_udunits_or_mapped():
    """A swept parameter's coordinate takes the field's unit: UDUNITS must know it, or it is mapped to 1."""
    from cf_units import Unit

    from mecmodel.dataset import NOT_UDUNITS
    from mecmodel.params import FIELDS
    from mecmodel.schemes import SCHEMES

    units = {f.unit for f in FIELDS} | {f.unit for s in SCHEMES.values() for f in s.params.values()}
    for unit in sorted(units - set(NOT_UDUNITS)):
        Unit(unit)  # raises ValueError for a unit UDUNITS does not know
    for unit in NOT_UDUNITS:
        with pytest.raises(ValueError):
            Unit(unit)


def test_a_run_file_is_cf_clean(runs, tmp_path):
    _, paths = runs
    msgs, report = cf_report(paths[0], tmp_path)
    assert msgs == []
    assert report["scored_points"] == report["possible_points"] > 0


def test_an_aggregate_is_cf_clean(runs, tmp_path):
    root, paths = runs
    agg = aggregate(paths, root / "agg.nc", experiment="e")
    with xr.open_dataset(agg) as ds:
        assert ds["V"].values.tolist() == [1.0, 10.0] and "diff_average_cost" in ds
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
