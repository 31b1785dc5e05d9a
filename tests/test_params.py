"""Bad parameters are refused with one clear message naming the field and its allowed range,
through the Python API and through the command line (exit 2, one line, no output file)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import mecmodel
from mecmodel.params import FIELDS, ParamError, make_params


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    field: str
    api: dict[str, Any]  # keyword arguments of mecmodel.simulate
    cli: list[str]  # arguments of `mecmodel simulate`
    expect: str  # what the message must say besides the field (the allowed range, or the hint)
    cli_expect: bool = True  # the CLI message carries `expect` too (not where argv parsing fails first)

    @property
    def overrides(self) -> dict[str, Any] | None:
        """The same bad value as a make_params override, when it is a model parameter."""
        if set(self.api) <= {"K", "arrival_prob", "gamma"}:
            return dict(self.api)
        if set(self.api) == {"overrides"}:
            return dict(self.api["overrides"])
        return None


CASES = [
    Case("K=0", "K", {"K": 0}, ["--K", "0"], "an integer in [1,"),
    Case("K=1.5", "K", {"K": 1.5}, ["--K", "1.5"], "an integer in [1,", cli_expect=False),
    Case("K=a", "K", {"K": "a"}, ["--K", "a"], "an integer in [1,", cli_expect=False),
    Case("lambda=0", "arrival_prob", {"arrival_prob": 0}, ["--arrival-prob", "0"], "a number in (0, 1)"),
    Case("lambda=1", "arrival_prob", {"arrival_prob": 1}, ["--arrival-prob", "1"], "a number in (0, 1)"),
    Case("lambda=1.2", "arrival_prob", {"arrival_prob": 1.2}, ["--arrival-prob", "1.2"], "a number in (0, 1)"),
    Case("gamma=1", "gamma", {"gamma": 1.0}, ["--gamma", "1"], "a number in (0, 1)"),
    Case("gamma=0", "gamma", {"gamma": 0.0}, ["--gamma", "0"], "a number in (0, 1)"),
    Case("p_max<0", "p_max", {"overrides": {"p_max": -0.1}}, ["--set", "p_max=-0.1"], "a number in (0, 100]"),
    Case("M=0", "M", {"overrides": {"M": 0}}, ["--set", "M=0"], "an integer in [1, 10000]"),
    Case(
        "alpha_decay=0.5",
        "alpha_decay",
        {"overrides": {"alpha_decay": 0.5}},
        ["--set", "alpha_decay=0.5"],
        "a number in (0.5, 1]",
    ),
    Case(
        "unknown key",
        "arival_prob",
        {"overrides": {"arival_prob": 0.3}},
        ["--set", "arival_prob=0.3"],
        "did you mean 'arrival_prob'",
    ),
    Case("bool for float", "w1", {"overrides": {"w1": True}}, ["--set", "w1=true"], "a number in [0, inf)"),
    Case("nan", "tau", {"overrides": {"tau": math.nan}}, ["--set", "tau=.nan"], "a number in (0, 3600]"),
    Case("nan gamma", "gamma", {"gamma": math.nan}, ["--gamma", "nan"], "a number in (0, 1)"),
    Case("inf", "p_max", {"overrides": {"p_max": math.inf}}, ["--set", "p_max=.inf"], "a number in (0, 100]"),
    Case("preset", "preset", {"preset": "papr"}, ["--preset", "papr"], "'default', 'paper'"),
    Case("scheme", "scheme", {"scheme": "proposd"}, ["--scheme", "proposd"], "proposed"),
    Case("blocks=0", "blocks", {"blocks": 0}, ["--blocks", "0"], ">= 1"),
    Case("seeds=0", "seeds", {"seeds": 0}, ["--seeds", "0"], ">= 1"),
]
IDS = [c.id for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_simulate_rejects(case: Case) -> None:
    kwargs = {"seeds": 1, "blocks": 2, **case.api}
    with pytest.raises(ParamError) as err:
        mecmodel.simulate(**kwargs)
    msg = str(err.value)
    assert msg.startswith(f"{case.field}: "), msg
    assert case.expect in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.overrides is not None or c.field == "preset"],
    ids=[c.id for c in CASES if c.overrides is not None or c.field == "preset"],
)
def test_make_params_rejects(case: Case) -> None:
    preset = case.api.get("preset", "default")
    with pytest.raises(ParamError) as err:
        make_params(preset, case.overrides)
    msg = str(err.value)
    assert msg.startswith(f"{case.field}: ") and case.expect in msg, msg


def test_every_field_names_itself_and_its_range() -> None:
    """A value below each bounded field's range is refused with the field's own name and range text."""
    for f in FIELDS:
        if f.choices is not None:
            bad: Any = "no-such-choice"
        elif f.kind is bool:
            bad = 1
        elif f.lo is not None:
            bad = f.lo - 1 if f.kind is int else (f.lo if f.lo_open else f.lo - abs(f.lo) - 1.0)
        else:
            bad = "text"
        with pytest.raises(ParamError) as err:
            make_params("default", {f.name: bad})
        assert str(err.value).startswith(f"{f.name}: must be {f.range_text()}"), str(err.value)


def test_min_distance_must_be_below_radius() -> None:
    with pytest.raises(ParamError, match=r"^min_distance: .*cell_radius"):
        make_params("default", {"min_distance": 300.0})


def test_defaults_are_valid_and_typed() -> None:
    for preset in ("default", "paper"):
        P = make_params(preset)
        for f in FIELDS:
            v = P.values[f.name]
            assert f.check(v) == v
            assert isinstance(v, f.kind) and (f.kind is bool or not isinstance(v, bool)), f.name
    assert make_params("default", {"K": 4.0}).K == 4 and isinstance(make_params("default", {"K": 4.0}).K, int)


# --------------------------------------------------------------------------- the command line


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mecmodel", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_rejects(case: Case, tmp_path: Path) -> None:
    r = _cli(["simulate", "--seeds", "1", "--blocks", "2", *case.cli, "-o", "out.nc"], tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"mecmodel: error: {case.field}: "), lines[0]
    if case.cli_expect:
        assert case.expect in lines[0], lines[0]
    assert r.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no output, no half-written temporary file


def test_cli_writes_a_run(tmp_path: Path) -> None:
    import xarray as xr

    r = _cli(["simulate", "--K", "2", "--seeds", "0,5", "--blocks", "4", "--scheme", "even", "-o", "run.nc"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["run.nc"]
    with xr.open_dataset(tmp_path / "run.nc") as ds:
        assert ds.sizes["seed"] == 2 and ds.sizes["block"] == 4 and ds.scheme.item() == "even"
        assert ds.seed.values.tolist() == [0, 5]
