"""A scheme's bad action or failing code stops the run with one line, writes nothing (issue 22).

Every case is a scheme module of a few lines; each goes through the Python API, the command line
and, for two of them, a Snakemake sweep; the RL front end refuses a bad action likewise.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import job_env, snakemake, write_config

import mecmodel
from mecmodel import schemes
from mecmodel.env import ActionError, MECEnv
from mecmodel.params import PolicyError, make_params

HEADER = """
import numpy as np
from mecmodel.policies.base import ServerPolicy, WDPolicy
from mecmodel.policies.rules import FullSpeed, MinEnergy
from mecmodel.schemes import register

class Half(WDPolicy):
    def act(self, obs):
        return np.full(obs.q.shape, 0.1)
"""

#: name: (the policies' code, register's wd and server, the one line a user sees)
CASES = {
    "nan_power": (
        """
        class Bad(WDPolicy):
            def act(self, obs):
                p = np.full(obs.q.shape, 0.1)
                if obs.t >= 3:
                    p[:, 1] = np.nan
                return p
        """,
        "Bad, FullSpeed",
        "scheme nan_power: the WD policy returned transmit power p = nan for WD 1, seed 0, block 3: "
        "an action must be finite",
    ),
    "inf_rate": (
        """
        class Bad(ServerPolicy):
            def act(self, obs):
                return np.full((obs.q.shape[0], obs.beta.shape[2]), np.inf)
        """,
        "Half, Bad",
        "scheme inf_rate: the server policy returned server rate f_ser = inf for the server (slot 0), seed 0, "
        "block 0: an action must be finite",
    ),
    "wrong_shape": (
        """
        class Bad(WDPolicy):
            def act(self, obs):
                return np.zeros((obs.q.shape[0], obs.q.shape[1] + 1))
        """,
        "Bad, FullSpeed",
        "scheme wrong_shape: the WD policy returned transmit power p of shape (2, 4), expected (2, 3) "
        "(seeds, WDs) (block 0)",
    ),
    "not_numbers": (
        """
        class Bad(WDPolicy):
            def act(self, obs):
                return "full"
        """,
        "Bad, FullSpeed",
        "scheme not_numbers: the WD policy returned transmit power p of type str, not numbers (block 0)",
    ),
    "raises_in_act": (
        """
        class Bad(WDPolicy):
            def act(self, obs):
                if obs.t == 2:
                    return 1 / 0
                return np.zeros(obs.q.shape)
        """,
        "Bad, FullSpeed",
        "scheme raises_in_act: the WD policy's Bad.act raised at block 2: ZeroDivisionError: division by zero",
    ),
    "raises_in_update": (
        """
        class Bad(MinEnergy):
            def update(self, tr):
                return {}["missing"]
        """,
        "Half, Bad",
        "scheme raises_in_update: the server policy's Bad.update raised at block 0: KeyError: 'missing'",
    ),
}


def module(tmp_path: Path, name: str) -> Path:
    code, factories, _ = CASES[name]
    wd, server = (f.strip() for f in factories.split(","))
    path = tmp_path / f"{name}.py"
    path.write_text(
        HEADER
        + textwrap.dedent(code)
        + f"\nregister({name!r}, wd={wd}, server={server}, description='misbehaves on purpose')\n"
    )
    return path


@pytest.fixture
def clean_registry():
    before = dict(schemes.SCHEMES)
    yield
    schemes.SCHEMES.clear()
    schemes.SCHEMES.update(before)


@pytest.mark.parametrize("name", CASES)
def test_the_python_api_raises_one_line(tmp_path, clean_registry, name):
    schemes.load_modules([str(module(tmp_path, name))], "test")
    with pytest.raises(PolicyError) as err:
        mecmodel.simulate(K=3, scheme=name, seeds=2, blocks=6)
    assert str(err.value) == CASES[name][2]


@pytest.mark.parametrize("name", CASES)
def test_the_command_line_prints_one_line_exits_1_and_writes_nothing(tmp_path, name):
    out = tmp_path / "run.nc"
    cmd = [sys.executable, "-m", "mecmodel", "simulate", "--scheme-module", str(module(tmp_path, name))]
    cmd += ["--scheme", name, "--K", "3", "--seeds", "2", "--blocks", "6", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=job_env())
    assert proc.returncode == 1
    assert proc.stderr == f"mecmodel: error: {CASES[name][2]}\n"
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / f"{name}.py"]
    # --debug: the policy's own traceback first, the same line last
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, env=job_env())
    assert debug.returncode == 1 and debug.stderr.endswith(f"mecmodel: error: {CASES[name][2]}\n")
    if name.startswith("raises"):
        assert "Traceback (most recent call last)" in debug.stderr and f"{name}.py" in debug.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_sweep_stops_with_the_line_in_the_jobs_log_and_writes_no_run_and_no_aggregate(tmp_path):
    names = ["nan_power", "raises_in_act"]
    mods = [str(module(tmp_path, n)) for n in names]
    exp = {"K": [3], "arrival_prob": [0.4], "gamma": [0.9], "scheme": [*names, "even"]}
    cfg = write_config(
        tmp_path / "bad.yaml", {"seeds": 2, "blocks": 6, "scheme_modules": mods, "experiments": {"e": exp}}
    )
    proc = snakemake(tmp_path, "--keep-going", configfile=cfg)
    assert proc.returncode != 0
    runs = sorted(p.relative_to(tmp_path / "results" / "runs").parts[-2] for p in tmp_path.glob("results/runs/**/*.nc"))
    assert runs == ["even"], "the bad schemes' jobs leave no run file"
    assert not (tmp_path / "results" / "e.nc").exists() and not list(tmp_path.glob("results/figures/*"))
    logs = {p.read_text() for p in tmp_path.glob("results/logs/simulate/**/*.log")}
    for name in names:
        log = next(text for text in logs if f"scheme {name}:" in text)
        assert log.rstrip().endswith(f"mecmodel: error: {CASES[name][2]}")
    assert any("Traceback" in text and "ZeroDivisionError" in text for text in logs), "the traceback is in the log"


def test_the_environment_refuses_a_bad_action_as_the_rl_front_ends_step_it():
    env = MECEnv(make_params("default", {"K": 2}), 1)
    obs = env.reset()
    good = np.zeros((1, 2)), np.zeros((1, env.P.n_slots))
    with pytest.raises(ActionError, match=r"transmit power p = inf for WD 0, seed 0, block 0"):
        env.step(mecmodel.env.Action(np.full((1, 2), np.inf), good[1]))
    with pytest.raises(ActionError, match=r"server rate f_ser = nan for the server \(slot 1\)"):
        f = good[1].copy()
        f[0, 1] = np.nan
        env.step(mecmodel.env.Action(good[0], f))
    assert env.obs is obs, "a refused action leaves the state as it was"
    env.step(mecmodel.env.Action(*good))
