"""Bad input, table-driven, through the three doors: the sweep's config file, the command line
and the model parameters of the Python API.

Each bad input is refused before any work starts, with a non-zero exit and one message that
names the field and what it allows; nothing is written. The config cases are one table
(:data:`CONFIG_CASES`): every case is refused by what the Snakefile runs at parse time, in this
process, and the cases Snakemake itself reads (plus one per kind of check) through a real
Snakemake run. Cases already in test_params.py (CLI and API) are not repeated here. Property
tests: random valid parameters never crash the simulator, random invalid ones always raise
ParamError and nothing else.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
import yaml
from helpers import LOCKED, SMOKE, experiment, load_config, output, snakemake, write_config
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mecmodel
from mecmodel import cli
from mecmodel.params import FIELD_BY_NAME, FIELDS, ParamError, make_params
from mecmodel.schemes import SCHEMES

# A file the injected code would create; every case checks it never appears.
PWNED = "pwned-by-config"
INJECT = f"__import__('os').system('touch {PWNED}')"


def tiny(**top: Any) -> dict:
    """A valid one-point config; cases change one thing in it."""
    return {"seeds": 2, "blocks": 20, **top, "experiments": {"e": experiment("convergence")}}


def with_exp(**change: Any) -> dict:
    config = tiny()
    config["experiments"]["e"].update(change)
    return config


# ----------------------------------------------------------------------------- the config file (Snakemake)


@dataclasses.dataclass(frozen=True)
class ConfigCase:
    """One bad config. Every case whose file YAML can read is refused in-process by
    ``mecmodel.sweep.prepare`` (what the Snakefile runs at parse time); the cases marked
    ``snakemake`` (Snakemake's own loader and command line, and one case per kind of check, to
    show the message reaches the user) also through a real Snakemake run."""

    id: str
    content: str | bytes | dict  # the config file (a dict is dumped as YAML)
    expect: tuple[str, ...]  # all in the message; the first exactly once
    args: tuple[str, ...] = ()
    snakemake: bool = False


def smoke_with(change: Callable[[dict], Any]) -> dict:
    """The smoke config with one change."""
    config = load_config(SMOKE)
    change(config)
    return config


def exps(name: str, **update: Any) -> Callable[[dict], Any]:
    return lambda c: c["experiments"][name].update(update)


CONFIG_CASES = [
    ConfigCase("empty file", "", ("Config file must be given as JSON or YAML with keys at top level",), snakemake=True),
    ConfigCase(
        "not YAML", "experiments: [unclosed\n  e: : x\n", ("Config file is not valid JSON or YAML",), snakemake=True
    ),
    ConfigCase(
        "top level is a list",
        "- seeds\n- 2\n",
        ("Config file must be given as JSON or YAML with keys at top level",),
        snakemake=True,
    ),
    ConfigCase(
        "python tag",
        f"seeds: !!python/object/apply:os.system ['touch {PWNED}']\n"
        + yaml.safe_dump({"experiments": tiny()["experiments"]}),
        ("Config file is not valid JSON or YAML",),
        snakemake=True,
    ),
    ConfigCase(
        "repeated key",
        "seeds: 2\nblocks: 20\nseeds: 3\n" + yaml.safe_dump({"experiments": tiny()["experiments"]}),
        ("key 'seeds' is given twice (lines 1 and 3)",),
        snakemake=True,
    ),
    ConfigCase(
        "YTE template",
        "__use_yte__: true\nseeds: 2\n" + yaml.safe_dump({"experiments": tiny()["experiments"]}),
        ("__use_yte__: YTE templates run Python code",),
        snakemake=True,
    ),
    ConfigCase(
        "typo at top level",
        tiny(blokcs=20),
        ("config: blokcs: ", "did you mean 'blocks'?", "Allowed keys: preset, overrides, seeds, blocks, experiments"),
        snakemake=True,
    ),
    ConfigCase(
        "typo in an experiment",
        {**tiny(), "experiments": {"e": {**experiment("convergence"), "schemes": ["even"]}}},
        ("config: experiments.e.schemes: ", "did you mean 'scheme'?", "Allowed keys: figure, metric, reference, K,"),
    ),
    ConfigCase(
        "typo in overrides", tiny(overrides={"alpha": 0.1}), ("config: overrides.alpha: ", "did you mean 'alpha0'?")
    ),
    ConfigCase("seeds not a number", tiny(seeds="ten"), ("config: seeds: 'ten' is not of type 'integer'",)),
    ConfigCase(
        "number YAML reads as text",
        tiny(overrides={"w3": "1e-8"}),
        ("config: overrides.w3: '1e-8' is not of type 'number'", "write the number with a dot"),
    ),
    ConfigCase("blocks zero", tiny(blocks=0), ("config: blocks: 0 is less than the minimum of 1",)),
    ConfigCase("M zero", tiny(overrides={"M": 0}), ("config: overrides.M: 0 is less than the minimum of 1",)),
    ConfigCase(
        "negative power",
        tiny(overrides={"p_max": -0.2}),
        ("config: overrides.p_max: -0.2 is less than or equal to the minimum of 0",),
        snakemake=True,
    ),
    ConfigCase(
        "negative rate in an experiment",
        with_exp(overrides={"f_ser_max": -5e10}),
        ("config: experiments.e.overrides.f_ser_max: -50000000000.0 is less than or equal to the minimum of 0",),
    ),
    ConfigCase(
        "unknown preset", tiny(preset="papr"), ("config: preset: 'papr' is not one of ['default', 'paper', 'stable']",)
    ),
    # A swept parameter (issue 13): checked against its own field, by the generated schema or the
    # scheme's declaration, with the same one line naming it.
    ConfigCase(
        "swept model parameter out of range",
        with_exp(f_ser_max=[1.0e9, -5.0]),
        ("config: experiments.e.f_ser_max[1]: -5.0 is less than or equal to the minimum of 0",),
        snakemake=True,
    ),
    ConfigCase(
        "swept integer parameter not an integer",
        with_exp(M=[10, 2.5]),
        ("config: experiments.e.M[1]: 2.5 is not of type 'integer'",),
    ),
    ConfigCase(
        "swept scheme parameter out of range",
        with_exp(scheme=["dpp", "even"], V=[1.0, -1.0]),
        ("config: experiments.e.V[1]: must be a number in (0, 1e+12], got -1.0",),
        snakemake=True,
    ),
    ConfigCase(
        "swept parameter no scheme declares",
        with_exp(V=[1.0, 10.0]),
        ("config: experiments.e.V: not a model parameter", "(they declare: none)"),
    ),
    ConfigCase(
        "typo in a swept parameter",
        with_exp(f_ser_mx=[1.0e9]),
        ("config: experiments.e.f_ser_mx: not a model parameter", "did you mean 'f_ser_max'?"),
    ),
    ConfigCase(
        "swept and overridden",
        with_exp(f_ser_max=[1.0e9], overrides={"f_ser_max": 2.0e9}),
        ("config: experiments.e.f_ser_max: f_ser_max is both swept here and set in overrides; keep one of them",),
    ),
    ConfigCase(
        "a swept axis written as one value",
        with_exp(f_ser_max=1.0e9),
        ("config: experiments.e.f_ser_max: 1000000000.0 is not of type 'array'",),
    ),
    ConfigCase(
        "generic figure with three swept axes",
        with_exp(figure="generic", K=[2, 3], arrival_prob=[0.3, 0.4], f_ser_max=[1.0e9, 2.0e9]),
        (
            "config: experiments.e: figure generic draws at most 2 swept axes, but K, arrival_prob, f_ser_max each "
            "have several values",
        ),
    ),
    ConfigCase(
        "tradeoff figure with two swept axes",
        with_exp(figure="tradeoff", K=[2, 3], f_ser_max=[1.0e9, 2.0e9]),
        ("config: experiments.e: figure tradeoff draws at most 1 swept axis, but K, f_ser_max each have several",),
    ),
    ConfigCase(
        "reference not among the schemes",
        with_exp(reference="even"),
        ("config: experiments.e.reference: must be one of the experiment's schemes (proposed), got 'even'",),
    ),
    ConfigCase(
        "unknown figure",
        with_exp(figure="fig6"),
        ("config: experiments.e.figure: 'fig6' is not one of ['convergence',",),
    ),
    ConfigCase(
        "scheme is code",
        with_exp(scheme=[INJECT]),
        (
            "config: experiments.e.scheme[0]: unknown scheme",
            "registered: proposed, binary, even, random, local, offload",
        ),
        snakemake=True,
    ),
    ConfigCase(
        "experiment name escapes results/",
        {**tiny(), "experiments": {"../../outside": experiment("convergence")}},
        ("config: experiments: '../../outside' does not match",),
    ),
    ConfigCase(
        "absurd K",
        with_exp(K=[10_000_000]),
        ("config: experiments.e: K=10000000 with seeds=2 and blocks=20 needs about", "GiB allowed"),
        snakemake=True,
    ),
    ConfigCase(
        "bad --config value",
        tiny(),
        ("config: seeds: 'abc' is not of type 'integer'",),
        ("--config", "seeds=abc"),
        snakemake=True,
    ),
    # Each a one-field change of the smoke config.
    ConfigCase("K zero", smoke_with(exps("cost_vs_K", K=[0, 2])), ("config: experiments.cost_vs_K.K[0]: ",)),
    ConfigCase("K negative", smoke_with(exps("convergence", K=[-3])), ("config: experiments.convergence.K[0]: ",)),
    ConfigCase(
        "K not integer", smoke_with(exps("convergence", K=[2.5])), ("config: experiments.convergence.K[0]: 2.5",)
    ),
    ConfigCase(
        "arrival 1",
        smoke_with(exps("cost_vs_arrival", arrival_prob=[0.2, 1.0])),
        ("config: experiments.cost_vs_arrival.arrival_prob[1]: 1.0 is greater than or equal to the maximum of 1",),
    ),
    ConfigCase(
        "arrival 0",
        smoke_with(exps("cost_vs_arrival", arrival_prob=[0])),
        ("config: experiments.cost_vs_arrival.arrival_prob[0]: 0 is less than or equal to the minimum of 0",),
    ),
    ConfigCase(
        "gamma 1", smoke_with(exps("cost_vs_gamma", gamma=[0.9, 1])), ("config: experiments.cost_vs_gamma.gamma[1]: ",)
    ),
    ConfigCase(
        "gamma negative",
        smoke_with(exps("cost_vs_block", gamma=[-0.5])),
        ("config: experiments.cost_vs_block.gamma[0]: ",),
    ),
    ConfigCase(
        "unknown scheme",
        smoke_with(exps("cost_vs_K", scheme=["proposed", "greedy"])),
        ("config: experiments.cost_vs_K.scheme[1]: unknown scheme 'greedy'",),
    ),
    ConfigCase(
        "unknown selector",
        smoke_with(exps("cost_vs_K", scheme="everything")),
        ("config: experiments.cost_vs_K.scheme: must be a list of schemes or one of all, paper, references",),
    ),
    ConfigCase(
        "missing scheme module",
        smoke_with(lambda c: c.update(scheme_modules=["no/such/schemes.py"])),
        ("config: scheme_modules: cannot import 'no/such/schemes.py'",),
        snakemake=True,
    ),
    ConfigCase(
        "missing field",
        smoke_with(lambda c: c["experiments"]["cost_vs_K"].pop("gamma")),
        ("config: experiments.cost_vs_K: 'gamma' is a required property",),
    ),
    ConfigCase(
        "unknown key",
        smoke_with(exps("cost_vs_K", colour="red")),
        ("config: experiments.cost_vs_K.colour: ", "'colour' was unexpected"),
    ),
    ConfigCase(
        "duplicate value",
        smoke_with(exps("cost_vs_K", K=[2, 2])),
        ("config: experiments.cost_vs_K.K: [2, 2] has non-unique elements",),
    ),
    ConfigCase(
        "same at 10 digits",
        smoke_with(exps("cost_vs_arrival", arrival_prob=[0.3, 0.1 + 0.2])),
        ("config: experiments.cost_vs_arrival.arrival_prob: ", "repeats a value at 10 significant digits"),
    ),
    ConfigCase(
        "override range",
        smoke_with(lambda c: c.update(overrides={"tau": -1})),
        ("config: overrides.tau: -1 is less than or equal to the minimum of 0",),
    ),
    ConfigCase(
        "override unknown",
        smoke_with(exps("convergence", overrides={"taus": 1})),
        ("config: experiments.convergence.overrides.taus: ", "did you mean 'tau'?"),
    ),
    ConfigCase(
        "override swept",
        smoke_with(lambda c: c.update(overrides={"K": 3})),
        ("config: overrides.K: ", "K is swept by each experiment's grid, not set in overrides"),
    ),
    ConfigCase(
        "override cross-field",
        smoke_with(lambda c: c.update(overrides={"min_distance": 500.0})),
        ("config: experiments.convergence: min_distance",),
    ),
    ConfigCase(
        "seeds zero", smoke_with(lambda c: c.update(seeds=0)), ("config: seeds: 0 is less than the minimum of 1",)
    ),
    ConfigCase(
        "base of a layer missing",
        {"extends": "no-such-base.yaml", "prefix": "x_"},
        ("config: extends: no such config file", "no-such-base.yaml"),
        snakemake=True,
    ),
]


def _write(case: ConfigCase, root: Path) -> Path:
    cfg = root / "bad.yaml"
    if isinstance(case.content, dict):
        write_config(cfg, case.content)
    elif isinstance(case.content, bytes):
        cfg.write_bytes(case.content)
    else:
        cfg.write_text(case.content)
    return cfg


def _yaml_readable(case: ConfigCase) -> bool:
    if case.args:
        return False
    try:
        return isinstance(yaml.safe_load(case.content) if not isinstance(case.content, dict) else case.content, dict)
    except yaml.YAMLError:
        return False


IN_PROCESS = [c for c in CONFIG_CASES if _yaml_readable(c)]
THROUGH_SNAKEMAKE = [c for c in CONFIG_CASES if c.snakemake]


@pytest.mark.parametrize("case", IN_PROCESS, ids=[c.id for c in IN_PROCESS])
def test_bad_config_is_refused_at_parse_time(case: ConfigCase, tmp_path: Path, monkeypatch) -> None:
    """What the Snakefile runs when it reads a config (mecmodel.sweep.prepare), in this process."""
    from mecmodel import sweep

    cfg = _write(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load(cfg.read_text())  # Snakemake's loader has read the file
    with pytest.raises(ParamError) as err:
        sweep.prepare(config, [cfg])
    text = str(err.value)
    assert "\n" not in text
    for part in case.expect:
        assert part in text, text
    assert text.count(case.expect[0]) == 1, text
    assert not (tmp_path / PWNED).exists()


def _refuse(case: ConfigCase, root: Path) -> tuple[subprocess.CompletedProcess, Path]:
    cfg = _write(case, root)
    work = root / "work"
    work.mkdir()
    # A real run, not a dry run: refusing "before any job starts" means nothing under results/.
    return snakemake(work, *case.args, configfile=cfg, cores=1), work


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every config case run at once: each Snakemake mostly waits (start-up), so they overlap well."""
    roots = {case.id: tmp_path_factory.mktemp("bad") for case in THROUGH_SNAKEMAKE}
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        futures = {case.id: pool.submit(_refuse, case, roots[case.id]) for case in THROUGH_SNAKEMAKE}
        return {key: future.result() for key, future in futures.items()}


def test_every_config_case_is_checked() -> None:
    assert {c.id for c in IN_PROCESS} | {c.id for c in THROUGH_SNAKEMAKE} == {c.id for c in CONFIG_CASES}
    assert len({c.id for c in CONFIG_CASES}) == len(CONFIG_CASES)


@pytest.mark.slow
@pytest.mark.parametrize("case", THROUGH_SNAKEMAKE, ids=[c.id for c in THROUGH_SNAKEMAKE])
def test_bad_config_is_refused_before_any_job(case: ConfigCase, refused) -> None:
    proc, work = refused[case.id]
    text = output(proc)
    assert proc.returncode != 0
    for part in case.expect:
        assert part in text, text[-2000:]
    assert text.count(case.expect[0]) == 1, text[-2000:]
    assert "Traceback (most recent call last)" not in text, text[-2000:]
    assert LOCKED not in text
    assert not (work / "results").exists()
    assert not (work / PWNED).exists() and not (work.parent / PWNED).exists()


# ----------------------------------------------------------------------------- the command line


@dataclasses.dataclass(frozen=True)
class CliCase:
    id: str
    argv: list[str]
    field: str  # the message starts "mecmodel: error: <field>: "
    expect: str  # and says this
    files: dict[str, str | bytes] = dataclasses.field(default_factory=dict)  # inputs written first


SIM = ["simulate", "--K", "2", "--seeds", "1", "--blocks", "3"]

CLI_CASES = [
    CliCase("config empty", [*SIM, "--config", "o.yaml", "-o", "r.nc"], "config", "is empty", {"o.yaml": ""}),
    CliCase(
        "config not YAML",
        [*SIM, "--config", "o.yaml", "-o", "r.nc"],
        "config",
        "is not valid YAML at line 2",
        {"o.yaml": "M: 3\n  tau: [1\n"},
    ),
    CliCase(
        "config binary",
        [*SIM, "--config", "o.yaml", "-o", "r.nc"],
        "config",
        "is not UTF-8 text",
        {"o.yaml": b"\x89PNG\x00\xff\xfe"},
    ),
    CliCase(
        "config a list",
        [*SIM, "--config", "o.yaml", "-o", "r.nc"],
        "config",
        "must hold a mapping of parameter: value, got list",
        {"o.yaml": "- M\n- 3\n"},
    ),
    CliCase(
        "config python tag",
        [*SIM, "--config", "o.yaml", "-o", "r.nc"],
        "config",
        "is not valid YAML at line 1 (ConstructorError)",
        {"o.yaml": f"M: !!python/object/apply:os.system ['touch {PWNED}']\n"},
    ),
    CliCase(
        "config repeated key",
        [*SIM, "--config", "o.yaml", "-o", "r.nc"],
        "config",
        "key 'M' is given twice",
        {"o.yaml": "M: 3\ntau: 0.1\nM: 4\n"},
    ),
    CliCase(
        "config typo",
        [*SIM, "--config", "o.yaml", "-o", "r.nc"],
        "alpha",
        "unknown parameter (did you mean 'alpha0'?)",
        {"o.yaml": "alpha: 0.1\n"},
    ),
    CliCase(
        "config missing",
        [*SIM, "--config", "nowhere.yaml", "-o", "r.nc"],
        "config",
        "cannot read nowhere.yaml: No such file",
    ),
    CliCase("set without =", [*SIM, "--set", "M", "-o", "r.nc"], "--set", "expected NAME=VALUE, got 'M'"),
    CliCase("set without a name", [*SIM, "--set", "=3", "-o", "r.nc"], "--set", "expected NAME=VALUE, got '=3'"),
    CliCase(
        "absurd step size",
        [*SIM, "--set", "alpha0=1e6", "-o", "r.nc"],
        "alpha0",
        "must be a number in (0, 10], got 1000000.0",
    ),
    CliCase(
        "integer field given 2.5",
        [*SIM, "--set", "n_slots=2.5", "-o", "r.nc"],
        "n_slots",
        "must be an integer in [1, 1000]",
    ),
    CliCase(
        "negative rate", [*SIM, "--set", "f_ser_max=-1", "-o", "r.nc"], "f_ser_max", "must be a number in (0, 1e+15]"
    ),
    CliCase(
        "negative bandwidth",
        [*SIM, "--set", "bandwidth=-1e6", "-o", "r.nc"],
        "bandwidth",
        "must be a number in (0, 1e+12]",
    ),
    CliCase("tolerance above 1", [*SIM, "--set", "epsilon=1.5", "-o", "r.nc"], "epsilon", "must be a number in (0, 1]"),
    CliCase(
        "share above 1",
        [*SIM, "--set", "even_fraction=1.5", "-o", "r.nc"],
        "even_fraction",
        "must be a number in [0, 1]",
    ),
    CliCase(
        "python tag in --set",
        [*SIM, "--set", f"w1=!!python/object/apply:os.system ['touch {PWNED}']", "-o", "r.nc"],
        "w1",
        "must be a number in [0, inf)",
    ),
    CliCase(
        "scheme is code",
        [*SIM, "--scheme", INJECT, "-o", "r.nc"],
        "scheme",
        "must be one of proposed, binary, even, random, local, offload",
    ),
    CliCase(
        "choice is code",
        [*SIM, "--set", f"gradient={INJECT}", "-o", "r.nc"],
        "gradient",
        "must be one of 'exact', 'printed'",
    ),
    CliCase("preset empty", [*SIM, "--preset", "", "-o", "r.nc"], "preset", "must be one of 'default', 'paper'"),
    CliCase(
        "seeds repeated",
        [*SIM[:-4], "--seeds", "1,1", "--blocks", "3", "-o", "r.nc"],
        "seeds",
        "must be distinct integers >= 0",
    ),
    CliCase(
        "seeds not numbers",
        [*SIM[:-4], "--seeds", "1,x", "--blocks", "3", "-o", "r.nc"],
        "seeds",
        "must be an integer, got 'x'",
    ),
    CliCase(
        "blocks not integer", [*SIM[:-2], "--blocks", "10.5", "-o", "r.nc"], "blocks", "must be an integer, got '10.5'"
    ),
    CliCase(
        "absurd K", ["simulate", "--K", "10000000", "--seeds", "2", "--blocks", "3", "-o", "r.nc"], "K", "needs about"
    ),
    CliCase("absurd blocks", [*SIM[:-2], "--blocks", "1000000000", "-o", "r.nc"], "K", "1000000000 blocks needs about"),
    CliCase("output not NetCDF", [*SIM, "-o", "r.txt"], "output", "must end in .nc"),
    CliCase(
        "aggregate of a text file",
        ["aggregate", "x.nc", "-o", "agg.nc"],
        "inputs",
        "cannot read 'x.nc' as NetCDF",
        {"x.nc": "not netcdf\n"},
    ),
    CliCase(
        "aggregate of nothing", ["aggregate", "missing.nc", "-o", "agg.nc"], "inputs", "no such file: 'missing.nc'"
    ),
    CliCase(
        "plot an unknown figure",
        ["plot", "fig6", "a.nc", "--png", "f.png", "--pdf", "f.pdf"],
        "figure",
        "must be one of convergence, cost_vs_block",
    ),
    CliCase(
        "plot to a wrong suffix",
        ["plot", "convergence", "a.nc", "--png", "f.jpg", "--pdf", "f.pdf"],
        "png",
        "must end in .png",
    ),
    CliCase(
        "plot a text file",
        ["plot", "convergence", "a.nc", "--png", "f.png", "--pdf", "f.pdf"],
        "input",
        "cannot read 'a.nc' as NetCDF",
        {"a.nc": "text"},
    ),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_bad_command_line_is_refused(case: CliCase, tmp_path: Path, monkeypatch, capsys) -> None:
    for name, content in case.files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.chdir(tmp_path)
    code = cli.main(case.argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mecmodel: error: {case.field}: "), lines[0]
    assert case.expect in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(case.files)  # no output, no temporary


PEAK = """
import resource, sys
from mecmodel.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
sys.exit(code)
"""


@pytest.mark.slow
def test_absurd_size_is_refused_before_allocating(tmp_path: Path) -> None:
    """K = 10^7 is refused from the memory estimate: the process never grows past a few hundred MiB."""
    argv = ["simulate", "--K", "10000000", "--seeds", "10", "--blocks", "2000", "-o", "r.nc"]
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert line.startswith("mecmodel: error: K: a run with K=10000000, 10 seeds, 2000 blocks needs about"), line
    need_gib = float(line.split("needs about ")[1].split(" GiB")[0])
    peak_mib = int(proc.stdout) / 1024
    assert need_gib > 100
    assert peak_mib < 500, f"the refused run peaked at {peak_mib:.0f} MiB"
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- the Python API


def test_overrides_must_be_a_mapping() -> None:
    with pytest.raises(ParamError, match=r"^overrides: must be a mapping of parameter: value, got list$"):
        make_params("default", [("M", 3)])
    with pytest.raises(ParamError, match=r"^overrides: must be a mapping of parameter: value, got list$"):
        mecmodel.simulate(K=2, seeds=1, blocks=2, overrides=[("M", 3)])


@pytest.mark.parametrize(
    "seeds",
    [
        0,
        -3,
        [],
        [-1],
        [2, 2],
        "abc",
        2.5,
        None,
        True,
        [2**70],
        [1.5],
    ],
    ids=repr,
)
def test_bad_seeds_raise_param_error(seeds: Any) -> None:
    with pytest.raises(ParamError, match=r"^seeds: "):
        mecmodel.simulate(K=2, seeds=seeds, blocks=2)


@pytest.mark.parametrize("blocks", [0, -1, 2.0, "3", None, True, 10**12], ids=repr)
def test_bad_blocks_raise_param_error(blocks: Any) -> None:
    with pytest.raises(ParamError, match=r"^(blocks|K): "):
        mecmodel.simulate(K=2, seeds=1, blocks=blocks)


# ----------------------------------------------------------------------------- properties

# Sizes capped so that one example runs in milliseconds; every other field covers its whole range.
SIZE_CAP = {"K": 4, "M": 6, "n_slots": 6}
HUGE = 1e300


def _valid(f) -> st.SearchStrategy:
    if f.choices is not None:
        return st.sampled_from(f.choices)
    if f.kind is bool:
        return st.booleans()
    if f.kind is int:
        return st.integers(int(f.lo), int(min(f.hi, SIZE_CAP.get(f.name, f.hi))))
    lo = -HUGE if f.lo is None else f.lo
    hi = HUGE if f.hi is None else f.hi
    return st.floats(lo, hi, exclude_min=f.lo_open, exclude_max=f.hi_open, allow_nan=False, allow_infinity=False)


@st.composite
def valid_params(draw) -> dict:
    names = draw(st.lists(st.sampled_from([f.name for f in FIELDS]), unique=True))
    over = {name: draw(_valid(FIELD_BY_NAME[name])) for name in names}
    # The one cross-field rule: min_distance < cell_radius.
    radius = over.get("cell_radius", make_params().cell_radius)
    if over.get("min_distance", make_params().min_distance) >= radius:
        over["min_distance"] = max(FIELD_BY_NAME["min_distance"].lo, radius / 2)
        over["cell_radius"] = max(radius, 2 * over["min_distance"])
    return over


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    over=valid_params(),
    # every scheme but the exact solvers, which solve a discretised model only for small K and
    # grid-aligned parameters and say so (tests/test_optimum.py)
    scheme=st.sampled_from([n for n, s in SCHEMES.items() if s.max_K is None]),
    seeds=st.integers(1, 2),
    blocks=st.integers(1, 6),
)
def test_valid_params_never_crash_the_simulator(over: dict, scheme: str, seeds: int, blocks: int) -> None:
    """Any value inside every field's documented range runs to a well-formed dataset.

    Extreme values may overflow to inf (a weight of 1e300 times a queue), but no cost or work
    total is NaN, and the divergence flags agree with each other.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow at the edges of the ranges is expected
        ds = mecmodel.simulate(scheme=scheme, seeds=seeds, blocks=blocks, overrides=over)
    assert dict(ds.sizes) == {"K": 1, "arrival_prob": 1, "gamma": 1, "scheme": 1, "seed": seeds, "block": blocks}
    for name in ("cost", "work_arrived", "work_local", "work_server", "work_offloaded", "work_queued"):
        assert not ds[name].isnull().any(), name
    # A weight near 1e300 can overflow a block's cost to inf; the summaries may then be inf, never NaN.
    for name in ("discounted_cost", "average_cost"):
        assert not ds[name].isnull().any(), name
    either = (ds["alg1_diverged_block"] >= 0) | (ds["alg2_diverged_block"] >= 0)
    xr.testing.assert_equal(ds["diverged"].astype(bool), either)


def _bad_values(f) -> st.SearchStrategy:
    """Values outside the field's type or range."""
    wrong_type = st.one_of(
        st.none(),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    )
    if f.choices is not None:
        return st.one_of(wrong_type.filter(lambda v: v not in f.choices), st.integers(), st.booleans())
    if f.kind is bool:
        return st.one_of(wrong_type, st.integers(), st.floats(), st.sampled_from(["true", "yes", "1"]))
    bad = [wrong_type, st.booleans(), st.sampled_from([math.nan, math.inf, -math.inf])]
    if f.kind is int:
        bad.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: not v.is_integer()))
    if f.lo is not None:
        below = st.floats(max_value=f.lo, exclude_max=not f.lo_open, allow_nan=False, allow_infinity=False)
        bad.append(below.map(int) if f.kind is int else below)
        if f.kind is int:
            bad.append(st.integers(max_value=int(f.lo) - 1))
    if f.hi is not None:
        above = st.floats(min_value=f.hi, exclude_min=not f.hi_open, allow_nan=False, allow_infinity=False)
        bad.append(above.map(lambda v: int(v) + 1) if f.kind is int else above)
    return st.one_of(*bad)


NAME = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=14)
POINT = [FIELD_BY_NAME[k] for k in ("K", "arrival_prob", "gamma")]


@st.composite
def invalid_params(draw, fields=FIELDS, unknown: bool = True) -> tuple[str, dict]:
    """(the field at fault, overrides with exactly one bad entry among valid ones)."""
    over = draw(valid_params())
    if unknown and draw(st.integers(0, 9)) == 0:
        key = draw(NAME.filter(lambda k: k not in FIELD_BY_NAME))  # a typo of a name
        return key, {**over, key: draw(st.integers())}
    f = draw(st.sampled_from(fields))
    return f.name, {**over, f.name: draw(_bad_values(f))}


@settings(max_examples=400, deadline=None)
@given(bad=invalid_params())
def test_invalid_params_always_raise_param_error(bad: tuple[str, dict]) -> None:
    field, over = bad
    with pytest.raises(ParamError) as err:
        make_params("default", over)
    msg = str(err.value)
    assert msg.startswith(f"{field}: "), msg
    assert "\n" not in msg
    if field in FIELD_BY_NAME:
        assert FIELD_BY_NAME[field].range_text() in msg, msg


@settings(max_examples=60, deadline=None)
@given(bad=invalid_params(POINT, unknown=False))
def test_invalid_point_through_simulate_raises_param_error(bad: tuple[str, dict]) -> None:
    field, over = bad
    assume(over[field] is not None)  # simulate(K=None) means the preset's K
    point = {k: over.pop(k) for k in ("K", "arrival_prob", "gamma") if k in over}
    with pytest.raises(ParamError, match=rf"^{field}: "):
        mecmodel.simulate(**point, seeds=1, blocks=2, overrides=over)
