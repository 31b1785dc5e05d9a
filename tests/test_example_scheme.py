"""The worked example of docs/schemes.md, examples/schemes/threshold.py: it loads as a scheme
module, obeys its rule, the fixed server rate and work conservation, respects the decentralised
information model, and the guide shows exactly its code."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from mecmodel import cli, schemes
from mecmodel.env import MECEnv, Observation
from mecmodel.params import make_params
from mecmodel.policies import PolicyContext
from mecmodel.simulation import simulate_arrays

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "schemes" / "threshold.py"
GUIDE = ROOT / "docs" / "schemes.md"


@pytest.fixture
def example(monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))  # leave the registry as it was
    schemes.load_modules([str(EXAMPLE)])
    yield schemes.SCHEMES["threshold"]
    for name in [m for m in sys.modules if m.startswith("mecmodel_scheme_")]:
        del sys.modules[name]


def test_registered_as_a_decentralised_reference(example, capsys):
    assert example.kind == "reference" and not example.in_paper
    assert example.source.startswith("mecmodel_scheme_")
    assert example.style["color"] == "0.45" and example.style["marker"] == "*"
    assert schemes.select("all")[-1] == "threshold" and "threshold" in schemes.select("references")
    assert "threshold" not in schemes.select("paper")
    assert example.wd().information == example.server().information == "decentralised"
    assert cli.main(["schemes", "--scheme-module", str(EXAMPLE)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("threshold ")]
    assert len(line) == 1 and line[0].split()[1:3] == ["reference", "decentralised"]


@pytest.mark.parametrize("K", [3, 4])
def test_threshold_rule_fixed_server_and_work_conservation(example, K):
    # a slow server (2.5 tasks per block) so that its queue sometimes exceeds what it can serve
    P = make_params("default", {"K": K, "arrival_prob": 0.5, "f_ser_max": 1e9})
    threshold = sys.modules[example.source].THRESHOLD * P.task_cycles
    out = simulate_arrays(P, "threshold", [0, 7], 100, per_device=True)
    q, p_tx, off = out["device"]["wd_queue_k"], out["device"]["tx_power_k"], out["device"]["offloaded_k"]
    below = q <= threshold
    assert below.any() and (~below).any()  # both branches of the rule are exercised
    assert (p_tx[below] == 0).all() and (off[below] == 0).all()  # below the threshold: nothing sent
    # ... and the CPU clears the whole queue within the block (up to 2.5 W cycles, whole tasks)
    local = out["device"]["local_rate_k"] * (P.n_slots * P.tau)
    np.testing.assert_allclose(local[below], q[below], rtol=1e-12)
    assert (p_tx[~below] > 0).any() and (p_tx <= P.p_max * (1 + 1e-12)).all()
    # (6) with the fixed rate: the server runs n slots at f_ser_max while work remains
    qs = out["series"]["server_queue"]
    capacity = P.n_slots * P.tau * P.f_ser_max
    assert (qs > capacity).any() and ((qs > 0) & (qs < capacity)).any()  # both sides of [.]^+
    np.testing.assert_array_equal(qs[:, 1:], np.maximum(qs[:, :-1] - capacity, 0) + off.sum(axis=-1)[:, :-1])
    np.testing.assert_array_equal(out["series"]["server_rate_mean"] <= P.f_ser_max, True)
    # every cycle that arrived was computed once, locally or at the server, or is still queued
    w = out["work"]
    np.testing.assert_array_equal(w["arrived"], w["local"] + w["server"] + w["queued"])
    assert (w["server"] > 0).all()
    assert (q >= 0).all() and (qs >= 0).all()
    # nothing learns: no learner series, no convergence summaries
    assert np.isnan(out["series"]["alg1_td_error"]).all() and np.isnan(out["series"]["alg2_td_error"]).all()
    assert out["agents"] == {}


def test_each_wd_acts_on_its_own_row_only(example):
    """WD k's power does not change when every other WD's queue, gain and arrivals (and the
    server queue) change: it reads its own row of q, h, beta only (section IV)."""
    P = make_params("default", {"K": 5})
    env = MECEnv(P, [1, 2])
    obs = env.reset()
    wd = example.wd()
    wd.reset(PolicyContext(P, (1, 2), env), obs)
    rng = np.random.default_rng(0)
    W = P.task_cycles

    def draw():
        q = np.floor(rng.uniform(0, 5, obs.q.shape)) * W  # 0..4 tasks: both sides of the threshold
        h = obs.h * rng.uniform(0.01, 100, obs.h.shape)  # gains either side of the p_max cap
        return q, h, (rng.random(obs.beta.shape) < 0.5).astype(float)

    q, h, beta = draw()
    base = wd.act(Observation(obs.t, q, h, beta, obs.q_ser))
    assert (base == 0).any() and (base == P.p_max).any() and ((base > 0) & (base < P.p_max)).any()
    for k in range(P.K):
        q2, h2, beta2 = draw()
        q2[:, k], h2[:, k], beta2[:, k] = q[:, k], h[:, k], beta[:, k]
        other = wd.act(Observation(obs.t, q2, h2, beta2, obs.q_ser + 1e9))
        np.testing.assert_array_equal(other[:, k], base[:, k])


def test_the_guide_shows_the_file_verbatim():
    text = GUIDE.read_text()
    m = re.search(r"<!-- example:start -->\n```python\n(.*?)```\n<!-- example:end -->", text, re.S)
    assert m, "docs/schemes.md: no ```python block between <!-- example:start --> and <!-- example:end -->"
    assert m.group(1) == EXAMPLE.read_text(), "docs/schemes.md: the example differs from examples/schemes/threshold.py"
    assert text.count("<!-- example:start -->") == 1
