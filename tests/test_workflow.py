"""The Snakemake sweep (Snakefile, workflow/, config/, profiles/) and mecmodel.results.

Snakemake runs as ``python -m snakemake -s <repo>/Snakefile --directory <tmp>``, so nothing is
written into the repository. The slow tests share one finished smoke run (the session fixture
``smoke_run`` of conftest.py) and copy it before changing anything.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from helpers import (
    REPO,
    SMOKE,
    job_counts,
    kill,
    load_config,
    ok,
    planned_jobs,
    planned_outputs,
    snakemake,
    start,
    write_config,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import mecmodel
from mecmodel import sweep
from mecmodel.dataset import write_atomic
from mecmodel.params import PRESETS, ParamError, make_params
from mecmodel.paths import RUN_PATTERN
from mecmodel.results import aggregate, canonical_number, find_runs, open_runs, run_path
from mecmodel.schemes import SCHEMES, SELECTORS, select
from mecmodel.schemes import order as schemes_order
from mecmodel.vocabulary import AXES, METRIC_NAMES, POINT_DIMS

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = REPO / "config" / "config.yaml"
PAPER = REPO / "config" / "paper.yaml"
SWEPT = tuple(AXES)
GROUP_SIZE = 4  # group-components of simulate in profiles/slurm


# ----------------------------------------------------------------------------- helpers


def report_text(html: str) -> str:
    """The visible text of a Snakemake report (captions are JSON-escaped HTML inside it)."""
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), html)
    text = re.sub(r"<[^>]+>", "", text.replace('\\"', '"').replace("\\n", " "))
    return re.sub(r"\s+", " ", text)


def points(config: dict, experiment: str | None = None) -> set[tuple]:
    """Distinct runs of a config, worked out here from the documented rules rather than the workflow's code.

    A run is identified by its model (preset and effective overrides), the point and its length;
    grid numbers are compared at 10 significant digits.
    Other swept parameters (config/README.md): a value equal to the model's own, or to the scheme's
    default, is the unswept point; a scheme runs once over a parameter it does not declare.
    """
    out = set()
    names = [experiment] if experiment else list(config["experiments"])
    for name in names:
        exp = config["experiments"][name]
        preset = exp.get("preset", config.get("preset", "default"))
        over = {**config.get("overrides", {}), **exp.get("overrides", {})}
        model = (preset, json.dumps(over, sort_keys=True))
        base = make_params(preset, over).values
        seeds = exp.get("seeds", config.get("seeds", 10))
        blocks = exp.get("blocks", config.get("blocks", 2000))
        extra = {k: v for k, v in exp.items() if k not in sweep.EXPERIMENT_KEYS}
        for K, lam, gamma, scheme, *values in itertools.product(
            exp["K"], exp["arrival_prob"], exp["gamma"], select(exp["scheme"]), *extra.values()
        ):
            declared = SCHEMES[scheme].params
            swept = []
            for k, v in zip(extra, values, strict=True):
                own = base.get(k, declared[k].default if k in declared else None)
                if own is not None and float(v) != float(own):
                    swept.append((k, f"{float(v):.10g}"))
            out.add((model, int(K), f"{lam:.10g}", f"{gamma:.10g}", scheme, tuple(swept), seeds, blocks))
    return out


def grid_size(config: dict) -> int:
    def size(e: dict) -> int:
        extra = [k for k in e if k not in sweep.EXPERIMENT_KEYS]
        return math.prod(len(e[a]) for a in (*SWEPT, *extra)) * len(select(e["scheme"]))

    return sum(size(e) for e in config["experiments"].values())


def run_file(workdir: Path, config: dict, K: int, lam: float, gamma: float, scheme: str) -> Path:
    model = f"{config['preset']}-{make_params(config['preset'], config['overrides']).model_hash()}"
    point = {"K": K, "arrival_prob": lam, "gamma": gamma, "scheme": scheme}
    return workdir / run_path(model, point, config["seeds"], config["blocks"])


# ----------------------------------------------------------------------------- config, schema, DAG


def test_overrides_schema_is_in_sync_with_params():
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    try:
        import overrides_schema
    finally:
        sys.path.pop(0)
    # the generated schemas (overrides, axes, metric) are what the tables make today
    assert overrides_schema.main(["--check"]) == 0, (
        "a generated schema is stale: run python workflow/scripts/overrides_schema.py"
    )
    props = yaml.safe_load(overrides_schema.TARGET.read_text())["properties"]
    assert not set(SWEPT) & set(props), "K, arrival_prob and gamma belong to the grid, not to overrides"


def test_schema_enums_match_the_registries():
    schema = yaml.safe_load(SCHEMA.read_text())
    exp = schema["$defs"]["experiment"]["properties"]
    # the grid axes of mecmodel.sweep, each required of an experiment
    assert set(AXES) <= set(schema["$defs"]["experiment"]["required"]) and set(AXES) <= set(exp)
    # Scheme names are checked against the registry (which scheme modules extend), not an enum:
    # every selector passes the schema and the registry, as does every registered name.
    for spec in (*SELECTORS, list(SCHEMES)):
        _validate(
            {
                "experiments": {
                    "e": {"figure": "convergence", "K": [2], "arrival_prob": [0.4], "gamma": [0.9], "scheme": spec}
                }
            }
        )
    assert schema["properties"]["preset"]["enum"] == list(PRESETS)
    assert exp["preset"]["enum"] == list(PRESETS)
    from mecmodel.plots import FIGURES

    assert exp["figure"]["enum"] == list(FIGURES)
    assert exp["metric"]["$ref"] == "metric.schema.yaml"
    metric = yaml.safe_load((SCHEMA.parent / "metric.schema.yaml").read_text())
    assert metric["enum"] == list(METRIC_NAMES)


@pytest.mark.parametrize("path", [DEFAULT, SMOKE, PAPER], ids=lambda p: p.name)
def test_shipped_configs_are_valid_and_name_the_same_experiments(path):
    from snakemake.utils import validate

    config = load_config(path)
    validate(config, str(SCHEMA))
    prefix = "paper_" if path == PAPER else ""
    paper_figs = ["convergence", "cost_vs_block", "cost_vs_arrival", "cost_vs_K", "cost_vs_gamma"]
    # the paper preset leaves out the exact optimum (config/paper.yaml)
    sweeps = ["cost_vs_V", "tradeoff_V", "cost_vs_server_capacity"]  # parameters swept from the config alone
    ours = sweeps if path == PAPER else ["optimality_gap", *sweeps]
    assert [name.removeprefix(prefix) for name in config["experiments"]] == paper_figs + ours
    figures = {"cost_vs_V": "generic", "tradeoff_V": "tradeoff", "cost_vs_server_capacity": "generic"}
    for name, exp in config["experiments"].items():
        assert exp["figure"] == figures.get(name.removeprefix(prefix), name.removeprefix(prefix))
        if exp["figure"] in paper_figs[1:]:
            assert exp["scheme"] == select("all"), "every figure but Fig. 6 shows the references too"
    if "optimality_gap" in ours:
        assert config["experiments"]["optimality_gap"]["scheme"] == select("all") + ["optimal", "decomposed"]


def test_default_and_paper_configs_reproduce_the_paper_grids():
    default, paper = load_config(DEFAULT), load_config(PAPER)
    assert default["preset"] == "default" and paper["preset"] == "paper"
    # the same grids, under names that keep the two sets of aggregates and figures apart
    # (all but the exact optimum's small instance, which config/paper.yaml removes)
    want = {f"paper_{name}": exp for name, exp in default["experiments"].items() if name != "optimality_gap"}
    assert want == paper["experiments"]
    e = default["experiments"]
    assert (e["convergence"]["K"], e["convergence"]["scheme"]) == ([4], ["proposed"])
    assert e["cost_vs_block"]["K"] == [20]
    assert e["cost_vs_arrival"]["K"] == [50]
    assert np.allclose(e["cost_vs_arrival"]["arrival_prob"], np.arange(1, 10) / 10)
    assert e["cost_vs_K"]["K"] == list(range(10, 101, 10))
    assert e["cost_vs_gamma"]["gamma"] == [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
    assert (default["seeds"], default["blocks"]) == (10, 2000)


def _valid_experiment():
    unit = st.floats(min_value=0.001, max_value=0.999, allow_nan=False)
    return st.fixed_dictionaries(
        {
            "figure": st.sampled_from(
                ["convergence", "cost_vs_block", "cost_vs_arrival", "cost_vs_K", "cost_vs_gamma"]
            ),
            "K": st.lists(st.integers(1, 500), min_size=1, max_size=4, unique=True),
            "arrival_prob": st.lists(unit, min_size=1, max_size=4, unique=True),
            "gamma": st.lists(unit, min_size=1, max_size=4, unique=True),
            "scheme": st.lists(st.sampled_from(select("all")), min_size=1, max_size=6, unique=True),
        },
        optional={
            "seeds": st.integers(1, 50),
            "blocks": st.integers(1, 5000),
            "preset": st.sampled_from(list(PRESETS)),
        },
    )


def _validate(config: dict) -> dict:
    """The schema, then the scheme names against the registry (mecmodel.sweep does both)."""
    from snakemake.utils import validate

    from mecmodel.schemes import select

    validate(config, str(SCHEMA))
    for exp in config["experiments"].values():
        select(exp["scheme"])
    return config


@settings(max_examples=60, deadline=None)
@given(exp=_valid_experiment())
def test_schema_accepts_valid_grids_and_fills_defaults(exp):
    config = _validate({"experiments": {"e": exp}})
    assert (config["preset"], config["seeds"], config["blocks"], config["overrides"]) == ("default", 10, 2000, {})
    # Inherited settings are not filled into the experiment (it inherits the top level's).
    assert set(config["experiments"]["e"]) == set(exp)


@settings(max_examples=60, deadline=None)
@given(
    exp=_valid_experiment(),
    axis=st.sampled_from(POINT_DIMS),
    bad=st.one_of(st.integers(-5, 0), st.floats(1.0, 10.0), st.floats(-10.0, 0.0), st.just("greedy"), st.none()),
)
def test_schema_rejects_bad_grid_values(exp, axis, bad):
    from snakemake.exceptions import WorkflowError

    # JSON schema counts 2.0 as an integer, and the workflow reads it as K = 2.
    assume(not (axis == "K" and isinstance(bad, float) and bad.is_integer() and bad >= 1))
    exp = {**exp, axis: [bad]}
    with pytest.raises((WorkflowError, ParamError)):
        _validate({"experiments": {"e": exp}})


@settings(max_examples=100, deadline=None)
@given(x=st.floats(min_value=1e-12, max_value=1 - 1e-12, allow_nan=False))
def test_canonical_numbers_are_stable_path_components(x):
    text = canonical_number(x)
    assert canonical_number(float(text)) == text  # formatting is idempotent
    assert canonical_number(repr(x)) == text and canonical_number(f"{x:.17f}") == canonical_number(round(x, 17))
    assert "/" not in text and ".." not in text
    assert re.fullmatch(r"[0-9]+(?:\.[0-9]+)?(?:e[-+][0-9]+)?", text)  # the workflow's wildcard constraint


@settings(max_examples=60, deadline=None)
@given(
    K=st.integers(1, 100_000),
    lam=st.floats(1e-9, 0.999999, allow_nan=False),
    gamma=st.floats(1e-9, 0.999999, allow_nan=False),
    scheme=st.sampled_from(list(SCHEMES)),
    seeds=st.integers(1, 1000),
    blocks=st.integers(1, 10**6),
)
def test_run_paths_parse_back(K, lam, gamma, scheme, seeds, blocks):
    point = {"K": K, "arrival_prob": lam, "gamma": gamma, "scheme": scheme}
    path = run_path("default-0123456789ab", point, seeds, blocks, root="results")
    m = RUN_PATTERN.fullmatch(path.removeprefix("results/runs/"))
    assert m is not None
    assert int(m["K"]) == K and m["scheme"] == scheme and (int(m["seeds"]), int(m["blocks"])) == (seeds, blocks)
    assert float(m["arrival_prob"]) == float(canonical_number(lam))
    assert path == run_path("default-0123456789ab", {**point, "arrival_prob": float(m["arrival_prob"])}, seeds, blocks)


@pytest.mark.slow
@pytest.mark.parametrize("path", [DEFAULT, PAPER], ids=lambda p: p.name)
def test_dry_run_builds_the_expected_dag(tmp_path, path):
    # the config and the scenarios it lists (config.yaml: stable.yaml), one plan
    configs = [load_config(path)] + [load_config(path.parent / s) for s in load_config(path).get("scenarios", [])]
    unique = {(c["preset"], *point) for c in configs for point in points(c)}
    # The paper's grids share points (e.g. K=20, 0.4, 0.9 in Figs. 7 and 9 and the gamma sweep).
    assert len(unique) < sum(grid_size(c) for c in configs)
    proc = ok(snakemake(tmp_path, "-n", configfile=path))
    n = sum(len(c["experiments"]) for c in configs)
    batches = [outputs for rule, outputs in planned_jobs(proc) if rule == "simulate"]
    assert job_counts(proc) == {"simulate": len(batches), "aggregate": n, "all": 1}  # an aggregate draws its figure
    runs = [p for outputs in batches for p in outputs]
    assert len(runs) == len(set(runs)) == len(unique)  # each run in exactly one batch
    presets = tuple(f"results/runs/{c['preset']}-" for c in configs)
    assert all(p.startswith(presets) for p in runs) and all(any(p.startswith(x) for p in runs) for x in presets)
    # a batch is runs of one model; several runs share a process
    for outputs in batches:
        assert len({p.split("/")[2] for p in outputs}) == 1
    assert len(batches) <= len(unique) / 4
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_slurm_profile_groups_simulate_jobs(tmp_path):
    n_sim = len(points(load_config(SMOKE)))
    proc = ok(snakemake(tmp_path, "-n", "--workflow-profile", str(REPO / "profiles" / "slurm")))
    text = proc.stdout + proc.stderr
    assert "profiles/slurm" in text
    n_batches = len(sweep.Sweep(load_config(SMOKE)).batches())
    assert n_batches < n_sim
    assert text.count("Group job simulate") == math.ceil(n_batches / GROUP_SIZE)


# ----------------------------------------------------------------------------- the smoke run


@pytest.fixture
def smoke(smoke_run) -> Path:
    """A finished smoke run (every aggregate and figure; conftest.py), shared read-only by the tests below."""
    return smoke_run


def copy_of(smoke: Path, dest: Path) -> Path:
    shutil.copytree(smoke, dest, symlinks=True)  # copy2 keeps mtimes, so the copy is up to date
    return dest


@pytest.mark.slow
def test_smoke_produces_every_aggregate_figure_and_the_report(smoke):
    config = load_config(SMOKE)
    for name in config["experiments"]:
        assert (smoke / "results" / f"{name}.nc").is_file()
        assert (smoke / "results" / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (smoke / "results" / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (smoke / "results" / "logs" / "aggregate" / f"{name}.log").is_file()
        assert (smoke / "results" / "benchmarks" / "aggregate" / f"{name}.tsv").is_file()
    runs = find_runs(smoke / "results")
    assert len(runs) == len(points(config))
    assert not list((smoke / "results").rglob("*.part"))
    ok(snakemake(smoke, "--report", "results/report.html"))
    text = report_text((smoke / "results" / "report.html").read_text())
    model = f"default-{make_params('default').model_hash()}"
    # Each caption states the metric, the blocks, the seeds and the preset actually used.
    for name in config["experiments"]:
        assert f"experiment {name}." in text
    assert f"Mean over {config['seeds']} seeds (0 … {config['seeds'] - 1})" in text
    assert f"t = 0 … {config['blocks'] - 1}" in text
    assert f"Model: preset default without overrides (model {model})" in text
    for var in ("alg1_rel_change", "alg2_td_error", "variable cost", "discounted_cost", "average_cost"):
        assert var in text
    (smoke / "results" / "report.html").unlink()


@pytest.mark.slow
def test_second_run_does_nothing(smoke):
    assert job_counts(ok(snakemake(smoke, "-n"))) == {}


@pytest.mark.slow
def test_aggregates_have_the_documented_layout(smoke):
    config = load_config(SMOKE)
    for name, exp in config["experiments"].items():
        extra = sorted(k for k in exp if k not in sweep.EXPERIMENT_KEYS)
        dims = (*AXES, *extra, "scheme")
        with xr.open_dataset(smoke / "results" / f"{name}.nc") as ds:
            assert tuple(ds["cost"].dims) == (*dims, "seed", "block")
            assert tuple(ds["discounted_cost"].dims) == (*dims, "seed")
            for k in extra:
                assert ds[k].values.tolist() == sorted(float(v) for v in exp[k])
                assert tuple(ds[f"diff_{exp.get('metric', 'average_cost')}"].dims) == (*dims, "seed")
            assert ds["K"].values.tolist() == sorted(exp["K"])
            assert ds["arrival_prob"].values.tolist() == sorted(exp["arrival_prob"])
            assert ds["gamma"].values.tolist() == sorted(exp["gamma"])
            assert ds["scheme"].values.tolist() == schemes_order(select(exp["scheme"]))
            assert ds["seed"].values.tolist() == list(range(config["seeds"]))
            assert ds.sizes["block"] == config["blocks"]
            for name_ in ds.variables:
                if name_ != "scheme":
                    assert "units" in ds[name_].attrs, name_
                assert "long_name" in ds[name_].attrs, name_
            assert ds["cost"].encoding.get("zlib") is True
            stored = json.loads(ds.attrs["experiment_config"])
            assert ds.attrs["experiment"] == name == stored["experiment"]
            assert {k: stored[k] for k in exp if k not in extra} == {k: exp[k] for k in exp if k not in extra}
            assert stored.get("sweep", {}) == {k: [float(v) for v in exp[k]] for k in extra}
            assert (stored["seeds"], stored["blocks"], stored["preset"]) == (
                config["seeds"],
                config["blocks"],
                "default",
            )
            assert ds.attrs["n_runs"] == len(points(config, name))
            assert (ds.attrs["preset"], ds.attrs["blocks"], ds.attrs["n_seeds"]) == (
                "default",
                config["blocks"],
                config["seeds"],
            )
            assert ds.attrs["model_hash"] == make_params("default").model_hash()
            assert ds.attrs["param_epsilon"] == make_params("default").epsilon
            assert "param_K" not in ds.attrs and "params_json" not in ds.attrs and "scheme" not in ds.attrs
            assert np.isfinite(ds["discounted_cost"].values).all()


@pytest.mark.slow
def test_shared_points_are_one_run_in_every_aggregate(smoke):
    """K=3, 0.4, 0.9 belongs to four experiments: all four aggregates hold the same numbers."""
    sel = {"K": 3, "arrival_prob": 0.4, "gamma": 0.9}
    config = load_config(SMOKE)
    with xr.open_dataset(run_file(smoke, config, 3, 0.4, 0.9, "proposed")) as run:
        ref = run["cost"].squeeze(POINT_DIMS, drop=True).load()
    for name in ("convergence", "cost_vs_block", "cost_vs_arrival", "cost_vs_gamma"):
        with xr.open_dataset(smoke / "results" / f"{name}.nc") as ds:
            got = ds["cost"].sel(**sel, scheme="proposed").load()
        np.testing.assert_array_equal(got.values, ref.values)


@pytest.mark.slow
def test_deleting_one_run_reruns_only_its_batch(smoke, tmp_path):
    """The run's batch reruns (the same values in every file it rewrites), and the aggregates that
    read a run of that batch; nothing else."""
    work = copy_of(smoke, tmp_path / "w")
    config = load_config(SMOKE)
    victim = run_file(work, config, 3, 0.4, 0.9, "proposed")
    before = xr.load_dataset(victim)
    victim.unlink()
    proc = ok(snakemake(work, "-n"))
    (batch,) = [outputs for rule, outputs in planned_jobs(proc) if rule == "simulate"]
    assert str(victim.relative_to(work)) in batch
    sw = sweep.Sweep(load_config(SMOKE))
    users = [n for n, e in sw.experiments.items() if set(e["runs"]) & set(batch)]
    assert len(users) > 0
    assert job_counts(proc) == {"simulate": 1, "aggregate": len(users), "all": 1}
    others = {p: xr.load_dataset(work / p) for p in batch if p != str(victim.relative_to(work))}
    ok(snakemake(work))
    xr.testing.assert_identical(xr.load_dataset(victim), before)
    for p, ds in others.items():
        xr.testing.assert_identical(xr.load_dataset(work / p), ds)
    assert job_counts(ok(snakemake(work, "-n"))) == {}


@pytest.mark.slow
def test_changing_one_experiment_reruns_only_its_jobs(smoke, tmp_path):
    work = copy_of(smoke, tmp_path / "w")
    old = load_config(SMOKE)
    new = load_config(SMOKE)
    new["experiments"]["cost_vs_arrival"]["arrival_prob"] = [0.3, 0.4]
    cfg = write_config(tmp_path / "changed.yaml", new)
    fresh = points(new) - points(old)
    assert len(fresh) == len(new["experiments"]["cost_vs_arrival"]["scheme"])
    proc = ok(snakemake(work, "-n", configfile=cfg))
    # Only the batches that hold a new point run, and a neighbour whose bounds a batch's size limit
    # shifted, up to the next content-defined cut (mecmodel.sweep.Sweep.batches); and the aggregates
    # that read one of their runs.
    batches = [outputs for rule, outputs in planned_jobs(proc) if rule == "simulate"]
    order = [r for b in sweep.Sweep(new).batches() for r in b["runs"]]
    cuts = {r for r in order if int(hashlib.sha256(r.encode()).hexdigest()[:8], 16) % sweep.BATCH_RUNS == 0}
    for outputs in batches:
        if any("/lam0.3/" in p for p in outputs):
            continue
        i = order.index(sorted(outputs, key=order.index)[0]) - 1
        while "/lam0.3/" not in order[i]:  # back to a new point, across no content-defined cut
            assert i >= 0 and order[i] not in cuts, outputs
            i -= 1
    assert sum("/lam0.3/" in p for outputs in batches for p in outputs) == len(fresh)
    rerun = {p for outputs in batches for p in outputs}
    sw = sweep.Sweep(new)
    users = {n for n, e in sw.experiments.items() if set(e["runs"]) & rerun}
    assert "cost_vs_arrival" in users
    assert job_counts(proc) == {"simulate": len(batches), "aggregate": len(users), "all": 1}
    planned = planned_outputs(proc)
    assert {p for p in planned if p.startswith("results/") and p.endswith(".nc") and "/runs/" not in p} == {
        f"results/{n}.nc" for n in users
    }


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_same_results(smoke, tmp_path):
    """SIGKILL Snakemake and its jobs mid-sweep; --unlock and a rerun finish with identical aggregates."""
    work = tmp_path / "w"
    work.mkdir()
    proc = start(work)
    try:
        deadline = time.monotonic() + 300
        while len(find_runs(work / "results")) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        kill(proc)  # the sweep's session holds Snakemake and the jobs it started
    assert len(find_runs(work / "results")) < len(points(load_config(SMOKE))), "the sweep finished before the kill"
    ok(snakemake(work, "--unlock"))
    ok(snakemake(work))
    for name in load_config(SMOKE)["experiments"]:
        a = xr.load_dataset(work / "results" / f"{name}.nc")
        b = xr.load_dataset(smoke / "results" / f"{name}.nc")
        xr.testing.assert_identical(a, b)
    assert job_counts(ok(snakemake(work, "-n"))) == {}


@pytest.mark.slow
def test_overrides_reach_the_simulation(tmp_path):
    """Overrides travel as `--set` through the shell: floats like 1e-08, booleans and strings survive."""
    over = {"w3": 2e-08, "freeze_on_convergence": False, "gradient": "printed", "M": 12}
    config = {
        "seeds": 1,
        "blocks": 4,
        "overrides": over,
        "experiments": {
            "tiny": {
                "figure": "cost_vs_K",
                "K": [2],
                "arrival_prob": [0.4],
                "gamma": [0.9],
                "scheme": ["proposed"],
                "overrides": {"M": 7},
            }
        },
    }
    cfg = write_config(tmp_path / "tiny.yaml", config)
    work = tmp_path / "w"
    work.mkdir()
    ok(snakemake(work, "results/tiny.nc", configfile=cfg, cores=1))
    expected = make_params("default", {**over, "M": 7})
    with xr.open_dataset(work / "results" / "tiny.nc") as ds:
        assert ds.attrs["model_hash"] == expected.model_hash()
        assert ds.attrs["param_w3"] == 2e-08 and ds.attrs["param_M"] == 7 and ds.attrs["param_gradient"] == "printed"
        assert ds.attrs["param_freeze_on_convergence"] == 0
        assert json.loads(ds.attrs["experiment_config"])["overrides"] == {**over, "M": 7}
    (run,) = find_runs(work / "results")
    assert run[1]["model"] == f"default-{expected.model_hash()}"


# ----------------------------------------------------------------------------- mecmodel.results


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Eight runs of a 2 x 2 x 1 x 2 grid, written where the workflow would put them."""
    root = tmp_path_factory.mktemp("runs") / "results"
    model = f"default-{make_params('default').model_hash()}"
    paths = []
    for K, lam, scheme in itertools.product((2, 3), (0.2, 0.4), ("local", "proposed")):
        ds = mecmodel.simulate(K=K, arrival_prob=lam, gamma=0.9, scheme=scheme, seeds=2, blocks=6)
        point = {"K": K, "arrival_prob": lam, "gamma": 0.9, "scheme": scheme}
        paths.append(write_atomic(ds, root.parent / run_path(model, point, 2, 6)))
    return root, paths


def test_aggregate_combines_a_grid(tiny_runs, tmp_path):
    root, paths = tiny_runs
    out = aggregate(paths, tmp_path / "agg.nc", experiment="e", config_json='{"K": [2, 3]}')
    ds = xr.load_dataset(out)
    assert dict(ds.sizes) == {"K": 2, "arrival_prob": 2, "gamma": 1, "scheme": 2, "seed": 2, "block": 6}
    assert ds["scheme"].values.tolist() == ["proposed", "local"]  # registry order, full names
    assert json.loads(ds.attrs["experiment_config"]) == {"K": [2, 3]}
    for p in paths:
        with xr.open_dataset(p) as run:
            pt = {d: run[d].item() for d in POINT_DIMS}
            np.testing.assert_array_equal(ds["cost"].sel(**pt).values, run["cost"].squeeze(POINT_DIMS).values)
    assert not list(tmp_path.glob("*.part"))


def test_open_mfdataset_combines_run_files_without_glue(tiny_runs):
    """The README's query: every run file of a grid, combined by their coordinates."""
    root, paths = tiny_runs
    with xr.open_mfdataset(
        str(root / "runs" / "*" / "K*" / "lam*" / "gamma*" / "*" / "*.nc"),
        combine="by_coords",
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="drop_conflicts",
    ) as ds:
        assert dict(ds.sizes) == {"K": 2, "arrival_prob": 2, "gamma": 1, "scheme": 2, "seed": 2, "block": 6}
        with xr.open_dataset(paths[-1]) as run:
            pt = {d: run[d].item() for d in POINT_DIMS}
            np.testing.assert_array_equal(ds["cost"].sel(**pt).values, run["cost"].squeeze(POINT_DIMS).values)
        assert ds["cost"].attrs["units"] == run["cost"].attrs["units"]


def test_command_line_jobs_do_not_import_dask(tmp_path):
    """dask is installed for open_mfdataset, but a sweep's jobs must not pay its import."""
    pytest.importorskip("dask")
    code = (
        "import atexit, sys, mecmodel.cli\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules if m.startswith('dask') and sys.modules[m])))\n"
        "mecmodel.cli.run()\n"
    )
    out = tmp_path / "r.nc"
    args = ["simulate", "--K", "2", "--seeds", "1", "--blocks", "2", "--progress", "off", "-o", str(out)]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    xr.testing.assert_identical(xr.load_dataset(out).drop_attrs(), mecmodel_simulate_small().drop_attrs())


def mecmodel_simulate_small() -> xr.Dataset:
    return mecmodel.simulate(K=2, seeds=1, blocks=2)


def test_aggregate_rejects_mixed_models_and_holes(tiny_runs, tmp_path):
    root, paths = tiny_runs
    other = mecmodel.simulate(K=2, arrival_prob=0.6, gamma=0.9, scheme="local", seeds=2, blocks=6, overrides={"M": 5})
    odd = write_atomic(other, tmp_path / "odd.nc")
    with pytest.raises(ParamError, match="inputs: .*other model parameters"):
        aggregate([*paths, odd], tmp_path / "x.nc")
    with pytest.raises(ParamError, match="inputs: "):
        aggregate(paths[:-1], tmp_path / "x.nc")  # one point of the grid missing
    with pytest.raises(ParamError, match="config_json"):
        aggregate(paths, tmp_path / "x.nc", config_json="{not json")
    assert not (tmp_path / "x.nc").exists()


def test_open_runs_reads_partial_sweeps_and_filters(tiny_runs, tmp_path):
    root, paths = tiny_runs
    work = tmp_path / "results"
    shutil.copytree(root, work)
    victim = work.parent / paths[0].relative_to(root.parent)
    victim.unlink()
    (victim.parent / f".{victim.name}.abc.part").write_bytes(b"half a file")  # an interrupted write
    ds = open_runs(work)
    assert ds.sizes["run"] == len(paths) - 1
    assert set(ds.indexes["run"].names) == {"model", *POINT_DIMS}
    sub = open_runs(work, K=3, scheme="proposed", arrival_prob=[0.40])
    assert sub.sizes["run"] == 1
    assert sub["K"].values.tolist() == [3] and sub["scheme"].values.tolist() == ["proposed"]
    dense = ds.unstack("run")
    assert np.isnan(dense["cost"].sel(K=2, arrival_prob=0.2, scheme="local").values).all()


def test_open_runs_keeps_models_apart_and_refuses_mixed_lengths(tiny_runs, tmp_path):
    root, paths = tiny_runs
    work = tmp_path / "results"
    shutil.copytree(root, work)
    over = {"M": 5}
    model = f"default-{make_params('default', over).model_hash()}"
    ds = mecmodel.simulate(K=2, arrival_prob=0.2, gamma=0.9, scheme="local", seeds=2, blocks=6, overrides=over)
    point = {"K": 2, "arrival_prob": 0.2, "gamma": 0.9, "scheme": "local"}
    write_atomic(ds, work.parent / run_path(model, point, 2, 6))
    both = open_runs(work)
    assert len(set(both["model"].values.tolist())) == 2
    assert both.sel(model=model).sizes["run"] == 1
    longer = mecmodel.simulate(K=2, arrival_prob=0.2, gamma=0.9, scheme="local", seeds=2, blocks=7)
    write_atomic(longer, work.parent / run_path(paths[0].parts[-6], point, 2, 7))
    with pytest.raises(ValueError, match="different lengths"):
        open_runs(work)
    assert open_runs(work, blocks=7).sizes["run"] == 1
    with pytest.raises(FileNotFoundError):
        open_runs(work, K=99)
