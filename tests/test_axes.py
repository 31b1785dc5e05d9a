"""Any parameter is a sweep axis (issue 13): run paths, jobs, aggregates and open_runs.

A model parameter or one a scheme declares, listed in an experiment, becomes an axis from the
config alone: one canonical path component per point (today's four axes keep their paths), a
``--sweep`` argument of the job, a length-1 dim of the run file and a coordinate of the aggregate.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import mecmodel
from mecmodel import config as mecconfig
from mecmodel import paths, sweep
from mecmodel.dataset import write_atomic
from mecmodel.params import make_params
from mecmodel.paths import run_path
from mecmodel.results import aggregate, open_runs

REPO = Path(__file__).resolve().parents[1]
MODEL = f"default-{make_params('default').model_hash()}"
BASE = {"K": [2], "arrival_prob": [0.4], "gamma": [0.9]}


def resolve(**exp) -> dict:
    config = {"seeds": 2, "blocks": 10, "experiments": {"e": {**BASE, "scheme": ["even"], **exp}}}
    return sweep.Sweep(config).experiments["e"]


def wildcards(path: str):
    info = paths.RUN_PATTERN.fullmatch(path.removeprefix("results/runs/")).groupdict()
    return types.SimpleNamespace(**{k: v or "" for k, v in info.items()})


def test_a_model_parameter_is_an_axis_from_the_config_alone():
    exp = resolve(f_ser_max=[1.0e9, 5.0e10], scheme=["even", "proposed"])
    assert exp["sweep"] == {"f_ser_max": [1.0e9, 5.0e10]} and exp["figure"] == "generic"
    # 5e10 is the model's own value: that point is the shared run every experiment uses
    assert sorted(exp["runs"]) == sorted(
        [
            f"results/runs/{MODEL}/K2/lam0.4/gamma0.9/f_ser_max=1000000000/even/s2-b10.nc",
            f"results/runs/{MODEL}/K2/lam0.4/gamma0.9/f_ser_max=1000000000/proposed/s2-b10.nc",
            f"results/runs/{MODEL}/K2/lam0.4/gamma0.9/even/s2-b10.nc",
            f"results/runs/{MODEL}/K2/lam0.4/gamma0.9/proposed/s2-b10.nc",
        ]
    )
    config = {"seeds": 2, "blocks": 10, "experiments": {"e": {**BASE, "scheme": ["even"], "f_ser_max": [1.0e9]}}}
    s = sweep.Sweep(config)
    spec = s.run_specs[s.experiments["e"]["runs"][0]]
    assert spec["sweep"] == ["f_ser_max"] and spec["overrides"]["f_ser_max"] == 1.0e9 and spec["overrides"]["K"] == 2


def test_a_scheme_parameter_is_an_axis_and_other_schemes_run_once():
    exp = resolve(scheme=["dpp", "myopic"], V=[0.1, 1, 10])
    runs = sorted(r.removeprefix(f"results/runs/{MODEL}/K2/lam0.4/gamma0.9/") for r in exp["runs"])
    assert runs == ["V=0.1/dpp/s2-b10.nc", "V=10/dpp/s2-b10.nc", "dpp/s2-b10.nc", "myopic/s2-b10.nc"]


@settings(max_examples=25, deadline=None)
@given(
    order=st.permutations(["f_ser_max", "w4", "scheme"]),
    spell=st.sampled_from([(1.0e9, 2.0e9), (1e9, 2e9), (1000000000, 2000000000.0)]),
)
def test_the_path_is_one_canonical_form_whatever_the_order_and_spelling(order, spell):
    values = {"f_ser_max": list(spell), "w4": [1.0, 20.0], "scheme": ["even"]}
    exp = {**BASE, **{k: values[k] for k in order}, "figure": "convergence"}
    runs = sweep.Sweep({"seeds": 2, "blocks": 10, "experiments": {"e": exp}}).experiments["e"]["runs"]
    assert f"results/runs/{MODEL}/K2/lam0.4/gamma0.9/f_ser_max=1000000000,w4=20/even/s2-b10.nc" in runs
    assert len(runs) == 4
    for path in runs:
        info = paths.parse_run_path(path.removeprefix("results/runs/"))
        point = {k: v for k, v in info.items() if k not in ("model", "seeds", "blocks")}
        assert run_path(info["model"], point, 2, 10) == path  # parse and spell are inverse


def test_the_shipped_experiments_of_four_axes_keep_their_paths():
    """Today's results/ still resumes: a run of an experiment that sweeps nothing else is spelled as before."""
    config = mecconfig.apply_layers(
        mecconfig.read_config_file(REPO / "config" / "config.yaml"), [REPO / "config" / "config.yaml"]
    )
    s = sweep.Sweep(config)
    for name, exp in s.experiments.items():
        if "sweep" in exp:
            continue
        want = {
            f"results/runs/{exp['model']}/K{K}/lam{lam:g}/gamma{g:g}/{sch}/s{exp['seeds']}-b{exp['blocks']}.nc"
            for K, lam, g, sch in itertools.product(exp["K"], exp["arrival_prob"], exp["gamma"], exp["scheme"])
        }
        assert set(exp["runs"]) == want, name


def test_simulate_cli_makes_the_swept_parameter_a_dimension(tmp_path):
    out = tmp_path / "r.nc"
    cmd = [sys.executable, "-m", "mecmodel", "simulate", "--K", "2", "--scheme", "dpp", "--seeds", "2"]
    cmd += ["--blocks", "20", "--sweep", "V=10.0", "--sweep", "f_ser_max=1.0e+9", "--progress", "off", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with xr.open_dataset(out) as ds:
        assert ds["average_cost"].dims == ("K", "arrival_prob", "gamma", "V", "f_ser_max", "scheme", "seed")
        assert ds["V"].item() == 10.0 and ds["f_ser_max"].item() == 1e9
        assert json.loads(ds.attrs["scheme_params_json"]) == {"V": 10.0}
        same = mecmodel.simulate(
            K=2, scheme="dpp", seeds=2, blocks=20, scheme_params={"V": 10.0}, overrides={"f_ser_max": 1e9}
        )
        np.testing.assert_array_equal(ds["cost"].values.ravel(), same["cost"].values.ravel())
    bad = subprocess.run([*cmd[:-2], "--sweep", "V=-1", "-o", str(tmp_path / "x.nc")], capture_output=True, text=True)
    assert bad.returncode != 0 and "V: must be a number in (0, 1e+12], got -1" in bad.stderr
    assert not (tmp_path / "x.nc").exists()


@pytest.fixture(scope="module")
def v_sweep(tmp_path_factory):
    """dpp at V = 1 (its default: the unswept run), 10 and 100; even, which has no V."""
    root = tmp_path_factory.mktemp("axes")
    kw = {"K": 2, "arrival_prob": 0.4, "gamma": 0.9, "seeds": 3, "blocks": 30}
    paths = []
    for scheme, V in (("dpp", 1.0), ("dpp", 10.0), ("dpp", 100.0), ("even", None)):
        point = {"K": 2, "arrival_prob": 0.4, "gamma": 0.9, "scheme": scheme}
        if V is None or V == 1.0:
            ds = mecmodel.simulate(scheme=scheme, **kw)
        else:
            ds = mecmodel.simulate(scheme=scheme, scheme_params={"V": V}, sweep=["V"], **kw)
            point["V"] = V
        paths.append(write_atomic(ds, run_path(MODEL, point, 3, 30, str(root))))
    return root, paths


def test_the_aggregate_fills_the_axis_and_pairs_by_seed(v_sweep):
    root, paths = v_sweep
    cfg = json.dumps({"sweep": {"V": [1.0, 10.0, 100.0]}, "reference": "even"})
    with xr.open_dataset(aggregate(paths, root / "agg.nc", experiment="v", config_json=cfg)) as ds:
        assert ds["V"].values.tolist() == [1.0, 10.0, 100.0] and ds["V"].attrs["units"] == "1"
        assert ds["average_cost"].dims == ("K", "arrival_prob", "gamma", "V", "scheme", "seed")
        with xr.open_dataset(paths[0]) as base:  # dpp's own run is its V = 1 point
            np.testing.assert_array_equal(ds["cost"].sel(scheme="dpp", V=1.0).values, base["cost"].values[..., 0, :, :])
        even = ds["average_cost"].sel(scheme="even")
        assert (even == even.isel(V=0)).all()  # even has no V: its one run along the whole axis
        diff = ds["diff_average_cost"]
        np.testing.assert_array_equal(diff.sel(scheme="dpp"), ds["average_cost"].sel(scheme="dpp") - even)
        assert (diff.sel(scheme="even") == 0).all() and ds.attrs["reference_scheme"] == "even"
        assert ds["diff_average_cost"].attrs["units"] == "1" and "minus the reference" in diff.attrs["long_name"]


def test_open_runs_carries_every_swept_parameter(v_sweep):
    root, _ = v_sweep
    ds = open_runs(root)
    assert ds.indexes["run"].names == ["model", "K", "arrival_prob", "gamma", "scheme", "V"]
    assert ds.indexes["run"].is_unique
    assert sorted(ds.sel(scheme="dpp")["V"].values.tolist()) == [1.0, 10.0, 100.0]
    assert np.isnan(ds.sel(scheme="even")["V"].values).all()  # even has no V
    assert ds.sel(V=100.0)["scheme"].values.tolist() == ["dpp"]
