"""A trained agent joins the sweep without a core edit: a scheme module of a few lines wraps any
callable (observation -> action) loaded from a module and a weights file."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from mecmodel import schemes, sweep
from mecmodel.params import ParamError, PolicyError, make_params
from mecmodel.simulation import simulate_arrays

TRAINING = textwrap.dedent(
    '''
    """A stand-in for a trained agent: a linear map whose weights live in a .npy file."""
    import numpy as np

    def load_policy(weights):
        w = np.load(weights)  # [share of p_max, share of f_ser_max]

        def act(obs):  # (S, 2K + Kn + 1) -> (S, K + n)
            S = obs.shape[0]
            K = (obs.shape[1] - 1) // 7  # n = 5 slots
            p = np.full((S, K), w[0] * 0.2)
            f = np.full((S, 5), w[1] * 5e10) * (obs[:, -1:] > 0)
            return np.concatenate([p, f], axis=1)

        return act
    '''
)


@pytest.fixture
def agent_files(tmp_path, monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    monkeypatch.setattr(schemes, "MODULES", dict(schemes.MODULES))
    (tmp_path / "training.py").write_text(TRAINING)
    np.save(tmp_path / "weights.npy", np.array([0.5, 0.3]))
    module = tmp_path / "agent_scheme.py"
    module.write_text(
        "from mecmodel.agents import register_agent\n"
        f"register_agent('linear_agent', load={str(tmp_path / 'training.py:load_policy')!r},\n"
        f"               weights={str(tmp_path / 'weights.npy')!r}, description='a linear stand-in')\n"
    )
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith(("mecmodel_scheme_", "mecmodel_agent_"))]:
        del sys.modules[name]


def test_agent_runs_as_a_scheme_and_is_versioned_by_its_weights(agent_files):
    schemes.load_modules([str(agent_files / "agent_scheme.py")])
    s = schemes.get_scheme("linear_agent")
    assert s.version.startswith("weights-") and s.wd().information == "centralised"
    P = make_params("default", {"K": 3})
    out = simulate_arrays(P, "linear_agent", [0, 1], 40, per_device=True)
    assert out["device"]["tx_power_k"].max() <= 0.5 * P.p_max * (1 + 1e-12)  # the agent's command caps it
    ref = simulate_arrays(P, "offload", [0, 1], 40)  # the same streams: a different policy, other costs
    assert not np.array_equal(out["series"]["cost"], ref["series"]["cost"])
    w = out["work"]
    np.testing.assert_array_equal(w["arrived"], w["local"] + w["server"] + w["queued"])
    # the sweep passes the module to the agent's jobs and reruns them when the weights change
    cfg = {
        "seeds": 2,
        "blocks": 10,
        "scheme_modules": [str(agent_files / "agent_scheme.py")],
        "experiments": {"e": {"figure": "cost_vs_K", "K": [2], "arrival_prob": [0.4], "gamma": [0.9], "scheme": "all"}},
    }
    sw = sweep.Sweep(cfg)
    assert sw.experiments["e"]["scheme"][-1] == "linear_agent"
    (batch,) = [b for b in sw.batches() if b["schemes"] == ["linear_agent"]]
    assert "agent_scheme.py" in batch["modules"]
    before = sw.code_version("linear_agent")
    np.save(agent_files / "weights.npy", np.array([0.6, 0.3]))
    for name in [m for m in sys.modules if m.startswith("mecmodel_scheme_")]:
        del sys.modules[name]
    assert sweep.Sweep(cfg).code_version("linear_agent") != before


def test_agent_run_file_records_the_weights(agent_files):
    out = agent_files / "run.nc"
    cmd = [sys.executable, "-m", "mecmodel", "simulate", "--scheme-module", str(agent_files / "agent_scheme.py")]
    r = subprocess.run(
        [*cmd, "--scheme", "linear_agent", "--K", "2", "--seeds", "2", "--blocks", "20", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(out) as ds:
        assert ds.attrs["scheme_version"].startswith("weights-")


def test_agent_errors_are_one_line(agent_files, tmp_path):
    from mecmodel.agents import register_agent

    with pytest.raises(ParamError, match="weights: no such file"):
        register_agent("x1", load="a.py:f", weights=str(tmp_path / "none.npy"), description="d")
    bad = register_agent(
        "x2",
        load=lambda w: lambda obs: np.zeros((obs.shape[0], 1)),
        weights=str(agent_files / "weights.npy"),
        description="d",
    )
    assert bad.name == "x2"
    with pytest.raises(
        PolicyError,
        match=r"scheme x2: the WD policy's AgentWD.act raised at block 0: ValueError: agent: returned an action "
        r"of shape \(1, 1\), expected \(1, 7\)",
    ):
        simulate_arrays(make_params("default", {"K": 2}), "x2", [0], 3)


def test_a_loader_gets_the_runs_parameters_and_an_agent_trained_on_other_shapes_is_one_line(agent_files):
    from mecmodel.agents import register_agent

    seen = []

    def load(weights, params):
        seen.append((params.K, params.n_slots, params.preset))

        def act(obs):
            return np.zeros((obs.shape[0], params.K + params.n_slots))

        act.observation_shape = (2 * 1 + 1 * 5 + 1,)  # trained at K = 1, n = 5
        return act

    register_agent("trained_k1", load=load, weights=str(agent_files / "weights.npy"), description="d")
    simulate_arrays(make_params("paper", {"K": 1}), "trained_k1", [0], 3)
    assert seen == [(1, 5, "paper")]
    with pytest.raises(PolicyError) as err:
        simulate_arrays(make_params("default", {"K": 2, "n_slots": 4}), "trained_k1", [0], 3)
    assert str(err.value) == (
        "scheme trained_k1: the WD policy's AgentWD.act raised at block 0: ValueError: agent: trained on "
        "observations of shape (8,), this run gives (13,) (K = 2, n = 4: 2 K + K n + 1 values)"
    )
    assert seen[-1] == (2, 4, "default")
