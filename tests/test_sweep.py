"""mecmodel.sweep, the sweep's logic that the Snakemake rules call: axes and run paths, config
layers, experiment resolution, job arguments and estimates. No Snakemake run here."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest
import yaml
from helpers import REPO, SMOKE, load_config

from mecmodel import config as mecconfig
from mecmodel import paths, schemes, sweep, vocabulary
from mecmodel.params import ParamError, make_params

CONFIG = REPO / "config" / "config.yaml"
PAPER = REPO / "config" / "paper.yaml"


def wildcards(**kw):
    kw.setdefault("extra", "")  # the swept parameters beyond today's axes: none
    return types.SimpleNamespace(**kw)


def tiny(**exp) -> dict:
    base = {"figure": "cost_vs_K", "K": [2, 3], "arrival_prob": [0.4], "gamma": [0.9], "scheme": ["even", "local"]}
    return {"seeds": 2, "blocks": 10, "experiments": {"e": {**base, **exp}}}


def test_every_path_derives_from_one_template():
    rel = vocabulary.RUN
    assert vocabulary.RUN_FILE == f"results/runs/{rel}.nc"
    for axis in vocabulary.AXES:
        assert f"{{{axis}}}" in rel
    point = {"K": 7, "arrival_prob": 0.40, "gamma": 9e-1, "scheme": "even"}
    path = paths.run_path("default-0123456789ab", point, 3, 50)
    assert path == "results/runs/default-0123456789ab/K7/lam0.4/gamma0.9/even/s3-b50.nc"
    assert paths.parse_run_path(path.removeprefix("results/runs/")) == {
        "model": "default-0123456789ab",
        **point,
        "seeds": 3,
        "blocks": 50,
    }
    assert paths.parse_run_path("default-0123456789ab/K7/lam0.4/even/s3-b50.nc") is None
    assert Path("results/runs").joinpath(path.removeprefix("results/runs/")).match(paths.RUN_GLOB)


def test_paper_scenario_is_the_default_config_with_the_paper_preset():
    default, paper = load_config(CONFIG), load_config(PAPER)
    assert paper["preset"] == "paper" and default["preset"] == "default"
    # all but the exact optimum, which a truncated queue grid cannot represent in the overloaded preset
    want = {f"paper_{n}": e for n, e in default["experiments"].items() if n != "optimality_gap"}
    assert paper["experiments"] == want and len(want) == len(default["experiments"]) - 1
    assert {k: v for k, v in paper.items() if k not in ("preset", "experiments")} == {
        k: v for k, v in default.items() if k not in ("preset", "experiments", "scenarios")
    }


def test_layers_nest_override_and_add(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny()))
    (tmp_path / "mid.yaml").write_text(yaml.safe_dump({"extends": "base.yaml", "seeds": 5}))
    top = {"extends": "mid.yaml", "prefix": "x_", "experiments": {"f": tiny()["experiments"]["e"]}}
    (tmp_path / "top.yaml").write_text(yaml.safe_dump(top))
    got = mecconfig.apply_layers(top, [tmp_path / "top.yaml"])
    assert (got["seeds"], got["blocks"]) == (5, 10)
    assert sorted(got["experiments"]) == ["x_e", "x_f"]
    assert "extends" not in got and "prefix" not in got


def test_a_layer_replaces_a_base_experiment_by_name(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny()))
    layer = {"extends": "base.yaml", "experiments": {"e": {**tiny()["experiments"]["e"], "K": [9]}}}
    (tmp_path / "layer.yaml").write_text(yaml.safe_dump(layer))
    got = mecconfig.apply_layers(layer, [tmp_path / "layer.yaml"])
    assert got["experiments"]["e"]["K"] == [9] and list(got["experiments"]) == ["e"]


def test_a_layer_removes_a_base_experiment_with_null(tmp_path):
    base = tiny()
    base["experiments"]["g"] = dict(base["experiments"]["e"])
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    layer = {"extends": "base.yaml", "prefix": "p_", "experiments": {"e": None}}
    (tmp_path / "layer.yaml").write_text(yaml.safe_dump(layer))
    assert list(mecconfig.apply_layers(layer, [tmp_path / "layer.yaml"])["experiments"]) == ["p_g"]


def test_prefix_without_extends_renames():
    got = mecconfig.apply_layers({**tiny(), "prefix": "p_"}, [])
    assert list(got["experiments"]) == ["p_e"] and "prefix" not in got


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "extends itself through a cycle"),
        ({"a.yaml": "extends: a.yaml\n"}, "extends itself through a cycle"),
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "experiments:\n"}, "config: experiments: must be a mapping"),
    ],
)
def test_bad_layers_are_one_error(tmp_path, files, match):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ParamError, match=match):
        mecconfig.apply_layers(yaml.safe_load(files["a.yaml"]), [tmp_path / "a.yaml"])


def test_missing_base_is_one_error(tmp_path):
    (tmp_path / "top.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ParamError, match="config: extends: no such config file .*nowhere.yaml"):
        mecconfig.apply_layers({"extends": "nowhere.yaml"}, [tmp_path / "top.yaml"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("seeds: 2\nseeds: 3\n", "key 'seeds' is given twice"),
        ("__use_yte__: true\nseeds: 2\n", "__use_yte__: YTE templates run Python code"),
    ],
)
def test_config_files_are_read_strictly(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ParamError, match=match):
        mecconfig.read_config_file(path)


def test_smoke_config_resolves_to_its_documented_grid():
    s = sweep.Sweep(load_config(SMOKE))
    exp = s.experiments["cost_vs_K"]
    assert exp["scheme"] == schemes.select("all") and exp["K"] == [2, 4]
    assert len(exp["runs"]) == 2 * len(schemes.select("all"))
    # five distinct points (K, arrival, gamma) of every scheme, a sixth (K = 1) of every scheme and the
    # two exact solvers, dpp at V = 100 (at V = 1, its default, it is the shared point's run; myopic
    # does not declare V and runs once), dpp_central at V = 1 and 100 (named explicitly, not in `all`:
    # no shared point), and 3 schemes at f_ser_max = 1e9 (5e10 is the model's own value: the shared
    # point's runs): a point shared by experiments runs once
    n = len(schemes.select("all"))
    assert len(s.all_runs()) == 5 * n + (n + 2) + 1 + 2 + 3 and len(s.models) == 1


@pytest.mark.parametrize(
    ("scheme", "match"),
    [
        (["even", "greedy"], r"config: experiments\.e\.scheme\[1\]: unknown scheme 'greedy'"),
        ("everything", r"config: experiments\.e\.scheme: must be a list of schemes or one of all, paper, references"),
    ],
)
def test_unknown_schemes_are_refused_with_the_field(scheme, match):
    with pytest.raises(ParamError, match=match):
        sweep.Sweep(tiny(scheme=scheme))


def test_selectors_expand_from_the_registry():
    s = sweep.Sweep(tiny(scheme="paper"))
    assert s.experiments["e"]["scheme"] == ["proposed", "binary", "even", "random"]
    assert sweep.Sweep(tiny(scheme="references")).experiments["e"]["scheme"] == schemes.select("references")


def test_each_run_is_resolved_once_into_the_record_its_job_reads():
    s = sweep.Sweep(tiny(gamma=[1e-5], overrides={"w3": 1e-8}))
    (model,) = s.models
    run = f"results/runs/{model}/K3/lam0.4/gamma1e-05/even/s2-b10.nc"
    assert s.run_specs[run] == {
        "output": run,
        "preset": "default",
        "overrides": {"w3": 1e-8, "K": 3, "arrival_prob": 0.4, "gamma": 1e-5},
        "scheme": "even",
        "scheme_params": {},
        "sweep": [],
        "seeds": 2,
        "blocks": 10,
    }
    assert sorted(s.run_specs) == s.all_runs()
    batch = s.batch_of(run)
    assert json.loads(batch["json"]) == [s.run_specs[r] for r in batch["runs"]]


def test_batches_cover_every_run_once_by_model():
    s = sweep.Sweep(tiny(K=[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], scheme=["even", "local", "dpp"], V=[1, 3, 10]))
    batches = s.batches()
    runs = [r for b in batches for r in b["runs"]]
    assert sorted(runs) == s.all_runs() and len(runs) == len(set(runs))
    for b in batches:
        assert sorted({s.run_specs[r]["scheme"] for r in b["runs"]}) == b["schemes"]
        assert len({r.split("/")[2] for r in b["runs"]}) == 1  # one model
        assert b["id"] in b["name"] and b["name"].startswith(s.run_specs[b["runs"][0]]["output"].split("/")[2])
    assert len(batches) < len(runs) / 3  # most runs share a process
    # content-defined: a new point changes the batch it falls into and no other
    bigger = sweep.Sweep(
        tiny(K=[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], scheme=["even", "local", "dpp"], V=[1, 3, 10])
    )
    new = set(bigger.all_runs()) - set(s.all_runs())
    changed = [b for b in bigger.batches() if b["id"] not in {c["id"] for c in batches}]
    assert changed and all(set(b["runs"]) & new for b in changed)
    assert len(changed) <= len(new)


def test_estimates_grow_with_the_run():
    small = sweep.Sweep(tiny()).batches()[0]
    big = sweep.Sweep({**tiny(K=[300]), "seeds": 20, "blocks": 50_000}).batches()[0]
    assert small["mem_mb"] < big["mem_mb"]
    assert small["runtime"] == 5 < big["runtime"]
    assert sweep.Sweep(tiny()).aggregate_mem_mb(wildcards(experiment="e")) >= 500


def test_too_large_a_run_is_refused_at_parse_time():
    with pytest.raises(ParamError, match=r"config: experiments\.e: K=10000000 with seeds=2 .* GiB"):
        sweep.Sweep(tiny(K=[10_000_000]))


def test_caption_names_references_and_descriptions():
    info = sweep.Sweep(tiny(scheme="all")).caption_params(wildcards(experiment="e"))
    assert info["references"] == schemes.select("references")
    assert info["descriptions"]["even"] == schemes.SCHEMES["even"].description
    assert info["average_from"] == 5 and info["window"] == 2


def test_scheme_modules_register_rerun_on_change_and_reach_the_jobs(tmp_path, monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    mod = tmp_path / "extra.py"
    mod.write_text(
        "from mecmodel.policies.rules import FixedPower\n"
        "from mecmodel.policies.qlearning import Algorithm2\n"
        "from mecmodel.schemes import register\n"
        "register('quarter', wd=lambda: FixedPower(0.25), server=Algorithm2, description='p = p_max / 4')\n"
    )
    other = tmp_path / "other.py"
    other.write_text(mod.read_text().replace("quarter", "half").replace("0.25", "0.5"))
    try:
        plain = sweep.Sweep(tiny(scheme="all"))
        s = sweep.Sweep({**tiny(scheme="all"), "scheme_modules": [str(mod)]})
        assert s.experiments["e"]["scheme"][-1] == "quarter"
        (quarter,) = [b for b in s.batches() if "quarter" in b["schemes"]]
        assert quarter["schemes"] == ["quarter"]  # a module's scheme has batches of its own
        assert f"--scheme-module {mod}" in quarter["modules"]
        # the package's schemes: the same jobs as without the module (no rerun when one is added)
        assert [b for b in s.batches() if b["schemes"] != ["quarter"]] == plain.batches()
        assert s.code_version("quarter") != s.code_version("even") == plain.code_version("even")
        before = s.code_version("quarter")
        both = sweep.Sweep({**tiny(scheme="all"), "scheme_modules": [str(mod), str(other)]})
        assert both.code_version("quarter") == before  # another module does not touch this one's runs
        (quarter,) = [b for b in both.batches() if b["schemes"] == ["quarter"]]
        assert "other.py" not in quarter["modules"]
        mod.write_text(mod.read_text() + "# changed\n")
        assert sweep.Sweep({**tiny(), "scheme_modules": [str(mod)]}).code_version("quarter") != before
    finally:
        for name in [m for m in sys.modules if m.startswith("mecmodel_scheme_")]:
            del sys.modules[name]


def test_a_scheme_module_is_one_module_however_a_config_spells_its_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    monkeypatch.setattr(schemes, "MODULES", {})
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "m.py").write_text(
        "from mecmodel.policies.rules import FixedPower, FullSpeed\n"
        "from mecmodel.schemes import register\n"
        "register('spelled', wd=lambda: FixedPower(0.5), server=FullSpeed, description='p = p_max / 2')\n"
    )
    monkeypatch.chdir(tmp_path)
    try:
        jobs = []
        for spec in ("mods/m.py", "./mods/../mods/m.py", str(tmp_path / "mods" / "m.py")):
            s = sweep.Sweep({**tiny(scheme=["spelled"]), "scheme_modules": [spec]})
            jobs.append([(b["id"], b["modules"], b["version"], b["json"]) for b in s.batches()])
        assert jobs[0] == jobs[1] == jobs[2] and "--scheme-module mods/m.py" in jobs[0][0][1]
        # not tracked by git in the working directory: one line saying the results depend on it
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 3 and all(
            "mods/m.py is not a file git tracks here; the results depend on it" in e for e in err
        )
    finally:
        for name in [m for m in sys.modules if m.startswith("mecmodel_scheme_")]:
            del sys.modules[name]


def test_a_module_git_tracks_gets_no_warning(capsys, monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    monkeypatch.chdir(REPO)
    try:
        sweep.Sweep({**tiny(scheme=["threshold"]), "scheme_modules": ["examples/schemes/threshold.py"]})
    finally:
        for name in [m for m in sys.modules if m.startswith("mecmodel_scheme_")]:
            del sys.modules[name]
    assert "warning" not in capsys.readouterr().err


def test_a_missing_scheme_module_names_the_field():
    with pytest.raises(ParamError, match="config: scheme_modules: cannot import 'no/such/file.py'"):
        sweep.Sweep({**tiny(), "scheme_modules": ["no/such/file.py"]})


def test_schema_errors_lead_with_the_field():
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    schema["properties"]["overrides"] = {"type": "object"}  # the $refs need the file's folder
    schema["$defs"]["experiment"]["allOf"] = []
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors({**tiny(), "blokcs": 3}))
    msg = mecconfig.schema_error_message(errors[0])
    assert msg.startswith("config: blokcs: ") and "did you mean 'blocks'?" in msg


def test_params_used_by_sweep_are_the_preset():
    s = sweep.Sweep(tiny(preset="paper"))
    (model,) = s.models
    assert model == f"paper-{make_params('paper').model_hash()}"


def test_each_experiment_keeps_its_own_name():
    """The resolved experiment records its name, whatever its scheme list (a selector, a mixed list)."""
    s = sweep.Sweep(load_config(SMOKE))
    for name, exp in s.experiments.items():
        assert exp["experiment"] == name


def test_a_batch_job_writes_each_run_as_a_job_of_its_own_would(tmp_path):
    """mecmodel simulate-batch writes every run of a batch, each file the dataset that mecmodel.simulate
    makes of the same run alone (values, coordinates, attributes: the run's identity)."""
    import subprocess

    import xarray as xr

    import mecmodel

    s = sweep.Sweep(tiny(scheme=["even", "dpp"], V=[1, 3], f_ser_max=[1.0e10]))
    for batch in s.batches():
        cmd = [sys.executable, "-m", "mecmodel", "simulate-batch", "--runs", batch["json"], "--progress", "off"]
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert f"{len(batch['runs'])} runs done in" in r.stderr
        for run in batch["runs"]:
            spec = s.run_specs[run]
            alone = mecmodel.simulate(
                scheme=spec["scheme"],
                seeds=spec["seeds"],
                blocks=spec["blocks"],
                overrides=spec["overrides"],
                scheme_params=spec["scheme_params"],
                sweep=spec["sweep"],
            )
            with xr.open_dataset(tmp_path / run) as got:
                xr.testing.assert_identical(got.load(), alone)


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ("[", "--runs: not JSON"),
        ("[]", "--runs: must be a non-empty JSON list of runs"),
        ('[{"output": "a.nc"}]', "--runs[0]: must be an object with the keys output, preset"),
    ],
)
def test_a_bad_batch_is_one_line_and_writes_nothing(tmp_path, runs, message):
    import subprocess

    r = subprocess.run(
        [sys.executable, "-m", "mecmodel", "simulate-batch", "--runs", runs],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.startswith(f"mecmodel: error: {message}") and len(r.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_batch_with_one_bad_run_writes_none(tmp_path):
    import subprocess

    s = sweep.Sweep(tiny())
    specs = json.loads(s.batches()[0]["json"])
    specs.append({**specs[0], "output": "bad.nc", "overrides": {**specs[0]["overrides"], "K": 0}})
    r = subprocess.run(
        [sys.executable, "-m", "mecmodel", "simulate-batch", "--runs", json.dumps(specs)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and f"--runs[{len(specs) - 1}] (bad.nc): K:" in r.stderr
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- scenarios: one plan


def _prepare(path: Path) -> sweep.Sweep:
    return sweep.prepare(mecconfig.read_config_file(path), [path])


def test_the_default_config_and_its_stable_scenario_are_one_plan_with_the_paths_of_each_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # results/ checked here, not in the repository
    both = _prepare(CONFIG)
    default = sweep.Sweep(load_config(CONFIG))
    stable = _prepare(CONFIG.parent / "stable.yaml")
    assert set(both.experiments) == set(default.experiments) | set(stable.experiments)
    assert all(name.startswith("stable_") for name in stable.experiments)
    for name, exp in {**default.experiments, **stable.experiments}.items():
        # the same runs at the same paths, the same resolved experiment (what the aggregate stores)
        assert both.experiments[name]["runs"] == exp["runs"] and both.experiments[name]["json"] == exp["json"]
    assert {both.experiments[n]["preset"] for n in stable.experiments} == {"stable"}
    assert {b["id"] for b in both.batches()} == {b["id"] for b in default.batches()} | {
        b["id"] for b in stable.batches()
    }


def _scenario_files(tmp_path: Path, scenario: dict, listed=("s.yaml",)) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**tiny(), "scenarios": list(listed)}))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"extends": "base.yaml", **scenario}))
    return tmp_path / "base.yaml"


def test_a_scenario_runs_with_its_own_settings_and_does_not_follow_its_bases_scenarios(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = _prepare(_scenario_files(tmp_path, {"prefix": "s_", "preset": "stable", "seeds": 3}))
    assert sorted(plan.experiments) == ["e", "s_e"]
    assert (plan.experiments["s_e"]["preset"], plan.experiments["s_e"]["seeds"]) == ("stable", 3)
    assert (plan.experiments["e"]["preset"], plan.experiments["e"]["seeds"]) == ("default", 2)
    # the scenario alone: its base's scenarios are not inherited, so it is one experiment
    assert sorted(_prepare(tmp_path / "s.yaml").experiments) == ["s_e"]


@pytest.mark.parametrize(
    "scenario, listed, message",
    [
        (
            {"preset": "stable"},
            ("s.yaml",),
            "config: scenarios[0]: experiments.e: an experiment of that name is already in the plan",
        ),
        ({"prefix": "s_"}, ("nowhere.yaml",), "config: scenarios[0]: no such config file"),
        ({"prefix": "s_", "seeds": 0}, ("s.yaml",), "config: scenarios[0] (s.yaml): seeds: 0 is less than the minimum"),
    ],
)
def test_a_bad_scenario_is_one_line_naming_it(tmp_path, monkeypatch, scenario, listed, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamError, match=re.escape(message)) as err:
        _prepare(_scenario_files(tmp_path, scenario, listed))
    assert "\n" not in str(err.value)


def test_scenario_paths_are_relative_to_the_file_that_lists_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text(yaml.safe_dump({**tiny(), "scenarios": ["scen.yaml"]}))
    (tmp_path / "sub" / "scen.yaml").write_text(yaml.safe_dump({"extends": "base.yaml", "prefix": "s_"}))
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump({"seeds": 3}))
    files = [tmp_path / "sub" / "base.yaml", tmp_path / "extra.yaml"]
    config = {**mecconfig.read_config_file(files[0]), **mecconfig.read_config_file(files[1])}
    assert sorted(sweep.prepare(config, files).experiments) == ["e", "s_e"]
