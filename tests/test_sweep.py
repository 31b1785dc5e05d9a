"""mecmodel.sweep, the sweep's logic that the Snakemake rules call: axes and run paths, config
layers, experiment resolution, job arguments and estimates. No Snakemake run here."""

from __future__ import annotations

import shlex
import sys
import types
from pathlib import Path

import pytest
import yaml
from helpers import REPO, SMOKE, load_config

from mecmodel import schemes, sweep
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
    rel = sweep.RUN
    assert sweep.RUN_FILE == f"results/runs/{rel}.nc"
    assert sweep.RUN_LOG == f"results/logs/simulate/{rel}.log"
    assert sweep.RUN_BENCHMARK == f"results/benchmarks/simulate/{rel}.tsv"
    for axis in sweep.AXES:
        assert f"{{{axis}}}" in rel
    point = {"K": 7, "arrival_prob": 0.40, "gamma": 9e-1, "scheme": "even"}
    path = sweep.run_path("default-0123456789ab", point, 3, 50)
    assert path == "results/runs/default-0123456789ab/K7/lam0.4/gamma0.9/even/s3-b50.nc"
    assert sweep.parse_run_path(path.removeprefix("results/runs/")) == {
        "model": "default-0123456789ab",
        **point,
        "seeds": 3,
        "blocks": 50,
    }
    assert sweep.parse_run_path("default-0123456789ab/K7/lam0.4/even/s3-b50.nc") is None
    assert Path("results/runs").joinpath(path.removeprefix("results/runs/")).match(sweep.RUN_GLOB)


def test_paper_scenario_is_the_default_config_with_the_paper_preset():
    default, paper = load_config(CONFIG), load_config(PAPER)
    assert paper["preset"] == "paper" and default["preset"] == "default"
    # all but the exact optimum, which a truncated queue grid cannot represent in the overloaded preset
    want = {f"paper_{n}": e for n, e in default["experiments"].items() if n != "optimality_gap"}
    assert paper["experiments"] == want and len(want) == len(default["experiments"]) - 1
    assert {k: v for k, v in paper.items() if k not in ("preset", "experiments")} == {
        k: v for k, v in default.items() if k not in ("preset", "experiments")
    }


def test_layers_nest_override_and_add(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny()))
    (tmp_path / "mid.yaml").write_text(yaml.safe_dump({"extends": "base.yaml", "seeds": 5}))
    top = {"extends": "mid.yaml", "prefix": "x_", "experiments": {"f": tiny()["experiments"]["e"]}}
    (tmp_path / "top.yaml").write_text(yaml.safe_dump(top))
    got = sweep.apply_layers(top, [tmp_path / "top.yaml"])
    assert (got["seeds"], got["blocks"]) == (5, 10)
    assert sorted(got["experiments"]) == ["x_e", "x_f"]
    assert "extends" not in got and "prefix" not in got


def test_a_layer_replaces_a_base_experiment_by_name(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny()))
    layer = {"extends": "base.yaml", "experiments": {"e": {**tiny()["experiments"]["e"], "K": [9]}}}
    (tmp_path / "layer.yaml").write_text(yaml.safe_dump(layer))
    got = sweep.apply_layers(layer, [tmp_path / "layer.yaml"])
    assert got["experiments"]["e"]["K"] == [9] and list(got["experiments"]) == ["e"]


def test_a_layer_removes_a_base_experiment_with_null(tmp_path):
    base = tiny()
    base["experiments"]["g"] = dict(base["experiments"]["e"])
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    layer = {"extends": "base.yaml", "prefix": "p_", "experiments": {"e": None}}
    (tmp_path / "layer.yaml").write_text(yaml.safe_dump(layer))
    assert list(sweep.apply_layers(layer, [tmp_path / "layer.yaml"])["experiments"]) == ["p_g"]


def test_prefix_without_extends_renames():
    got = sweep.apply_layers({**tiny(), "prefix": "p_"}, [])
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
        sweep.apply_layers(yaml.safe_load(files["a.yaml"]), [tmp_path / "a.yaml"])


def test_missing_base_is_one_error(tmp_path):
    (tmp_path / "top.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ParamError, match="config: extends: no such config file .*nowhere.yaml"):
        sweep.apply_layers({"extends": "nowhere.yaml"}, [tmp_path / "top.yaml"])


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
        sweep.read_config_file(path)


def test_smoke_config_resolves_to_its_documented_grid():
    s = sweep.Sweep(load_config(SMOKE))
    exp = s.experiments["cost_vs_K"]
    assert exp["scheme"] == schemes.select("all") and exp["K"] == [2, 4]
    assert len(exp["runs"]) == 2 * len(schemes.select("all"))
    # five distinct points (K, arrival, gamma) of every scheme, a sixth (K = 1) of every scheme and the
    # two exact solvers, dpp at V = 100 (at V = 1, its default, it is the shared point's run; myopic
    # does not declare V and runs once), and 3 schemes at f_ser_max = 1e9 (5e10 is the model's own
    # value: the shared point's runs): a point shared by experiments runs once
    n = len(schemes.select("all"))
    assert len(s.all_runs()) == 5 * n + (n + 2) + 1 + 3 and len(s.models) == 1


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


def test_simulate_args_build_the_run_and_refuse_other_paths():
    s = sweep.Sweep(tiny(gamma=[1e-5], overrides={"w3": 1e-8}))
    (model,) = s.models
    wc = wildcards(model=model, K="3", arrival_prob="0.4", gamma="1e-05", scheme="even", seeds="2", blocks="10")
    args = shlex.split(s.simulate_args(wc))
    assert args[:2] == ["--preset", "default"]
    sets = dict(a.split("=", 1) for a in args[args.index("--set") :: 1] if "=" in a)
    assert sets == {"w3": "1.0e-08", "K": "3", "arrival_prob": "0.4", "gamma": "1.0e-05"}
    assert yaml.safe_load(sets["gamma"]) == 1e-5  # read back as a number, not as text
    with pytest.raises(ParamError, match="arrival_prob: run paths spell numbers canonically, '0.4' rather than '0.40'"):
        s.simulate_args(wildcards(**{**vars(wc), "arrival_prob": "0.40"}))
    with pytest.raises(ParamError, match="is not used by any experiment"):
        s.simulate_args(wildcards(**{**vars(wc), "model": "default-000000000000"}))


def test_estimates_grow_with_the_run():
    s = sweep.Sweep(tiny())
    (model,) = s.models
    small = wildcards(model=model, K="2", seeds="2", blocks="10")
    big = wildcards(model=model, K="2000", seeds="20", blocks="100000")
    assert s.simulate_mem_mb(small) < s.simulate_mem_mb(big)
    assert sweep.Sweep.simulate_runtime(small) == 5 < sweep.Sweep.simulate_runtime(big)
    assert s.aggregate_mem_mb(wildcards(experiment="e")) >= 500


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
        (model,) = s.models
        wc = wildcards(model=model, K="2", arrival_prob="0.4", gamma="0.9", scheme="quarter", seeds="2", blocks="10")
        even = wildcards(**{**vars(wc), "scheme": "even"})
        assert f"--scheme-module {mod}" in s.simulate_args(wc)
        # the package's schemes: the same job as without the module (no rerun when one is added)
        assert (s.simulate_args(even), s.code_version(even)) == (plain.simulate_args(even), plain.code_version(even))
        assert s.code_version(wc) != s.code_version(even)
        before = s.code_version(wc)
        both = sweep.Sweep({**tiny(scheme="all"), "scheme_modules": [str(mod), str(other)]})
        assert both.code_version(wc) == before  # another module does not touch this one's runs
        assert "other.py" not in both.simulate_args(wc)
        mod.write_text(mod.read_text() + "# changed\n")
        assert sweep.Sweep({**tiny(), "scheme_modules": [str(mod)]}).code_version(wc) != before
    finally:
        for name in [m for m in sys.modules if m.startswith("mecmodel_scheme_")]:
            del sys.modules[name]


def test_a_missing_scheme_module_names_the_field():
    with pytest.raises(ParamError, match="config: scheme_modules: cannot import 'no/such/file.py'"):
        sweep.Sweep({**tiny(), "scheme_modules": ["no/such/file.py"]})


def test_schema_errors_lead_with_the_field():
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    schema["properties"]["overrides"] = {"type": "object"}  # the $refs need the file's folder
    schema["$defs"]["experiment"]["allOf"] = []
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors({**tiny(), "blokcs": 3}))
    msg = sweep.schema_error_message(errors[0])
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
