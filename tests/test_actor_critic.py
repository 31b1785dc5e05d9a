"""Learned-Q descent (mecmodel.policies.actor_critic), the extension that is NOT the paper's:
dQ/da against finite differences, the critic bit-identical to Algorithms 1 and 2, the action
step descending the learned Q, and a short simulation."""

from __future__ import annotations

import numpy as np
import pytest

from mecmodel import schemes
from mecmodel.env import Action, MECEnv, Observation
from mecmodel.params import make_params
from mecmodel.policies import PolicyContext, Transition
from mecmodel.policies.actor_critic import CriticDescentQ, CriticDescentServer, CriticDescentWD
from mecmodel.policies.qlearning import Algorithm1, Algorithm2, OnlineQ, step_size
from mecmodel.simulation import simulate_arrays

STATE = ("w", "a", "streak", "converged_at", "diverged_at", "frozen", "_zs_now")


def _setup(overrides=None, seeds=(0, 1), K=3):
    P = make_params("default", {"K": K, **(overrides or {})})
    env = MECEnv(P, list(seeds))
    obs = env.reset()
    return P, env, obs, PolicyContext(P, tuple(seeds), env)


def _random_obs(rng: np.random.Generator, P, S: int) -> Observation:
    """Random states over the range the learners meet: queues up to 30 tasks, gains over 8 decades."""
    W, K, n = P.task_cycles, P.K, P.n_slots
    return Observation(
        t=int(rng.integers(0, 1000)),
        q=rng.uniform(0, 30, (S, K)) * W,
        h=10.0 ** rng.uniform(0, 8, (S, K)),
        beta=(rng.random((S, K, n)) < 0.4).astype(float),
        q_ser=rng.uniform(0, 60, S) * W,
    )


def _logistic(z):
    return 1.0 / (1.0 + np.exp(-z))


# --------------------------------------------------------------------------- (a) dQ/da vs finite differences


@pytest.mark.parametrize("cls", [CriticDescentWD, CriticDescentServer])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dq_da_matches_finite_differences(cls, seed):
    P, _, obs, ctx = _setup(seeds=(seed, seed + 7), K=4)
    policy = cls()
    policy.reset(ctx, obs)
    ag = policy.agent
    assert isinstance(ag, CriticDescentQ)
    rng = np.random.default_rng(100 + seed)
    ag.w = rng.normal(0.0, 3.0, ag.w.shape)  # random critic parameters
    x = policy.state(_random_obs(rng, P, ctx.S))
    a = rng.uniform(0.0, 1.0, ag.a.shape)
    g = ag.dq_da(x, a)
    assert g.shape == a.shape and np.isfinite(g).all()

    h = 1e-5
    fd = np.empty_like(g)
    for c in range(a.shape[-1]):
        e = np.zeros_like(a)
        e[..., c] = h
        fd[..., c] = (ag.q_value(x, a + e) - ag.q_value(x, a - e)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9 * np.abs(g).max())

    # and the formula written out with the plain logistic: dQ/da_c = sum_j w_j phi_j (1 - phi_j) v_{j,c}
    v = np.concatenate([ag.v_a, ag.v_s], axis=-1)
    phi = _logistic(np.einsum("...md,...d->...m", v, np.concatenate([a, x], axis=-1)))
    plain = np.einsum("...m,...ma->...a", ag.w * phi * (1 - phi), v[..., : a.shape[-1]])
    np.testing.assert_allclose(g, plain, rtol=1e-12, atol=1e-14 * np.abs(g).max())
    np.testing.assert_allclose(ag.q_value(x, a), np.sum(ag.w * phi, axis=-1), rtol=1e-13)


# --------------------------------------------------------------------------- (b) the critic is the paper's


def _copy_state(src: OnlineQ, dst: OnlineQ) -> None:
    for name in STATE:
        setattr(dst, name, np.array(getattr(src, name), copy=True))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"gradient": "printed"},
        {"epsilon": 0.01, "patience": 2},  # agents converge and freeze, at different blocks
        {"divergence_limit": 6.0},  # ||w_0|| = sqrt(30): agents diverge and are frozen
    ],
    ids=["default", "printed", "freeze", "diverge"],
)
def test_critic_update_is_bit_identical_to_algorithms_1_and_2(overrides):
    """Same state, same transition: weights, TD errors, relative changes and the convergence
    bookkeeping are the paper's bit for bit; only the action differs."""
    P, env, obs, ctx = _setup(overrides)
    paper = {"wd": Algorithm1(), "server": Algorithm2()}
    ours = {"wd": CriticDescentWD(), "server": CriticDescentServer()}
    for p in (*paper.values(), *ours.values()):
        p.reset(ctx, obs)
    for k in paper:  # same features, initial parameters and action after reset
        for name in ("v_a", "v_s", *STATE):
            np.testing.assert_array_equal(getattr(ours[k].agent, name), getattr(paper[k].agent, name), strict=True)
    moved = {k: False for k in paper}
    for _ in range(40):
        action = Action(paper["wd"].act(obs), paper["server"].act(obs))
        next_obs, terms, info = env.step(action)
        tr = Transition(obs, info.action, terms, info, next_obs)
        for k in paper:
            _copy_state(paper[k].agent, ours[k].agent)
            a_before = paper[k].agent.a.copy()
            live = ~paper[k].agent.frozen & (paper[k].agent.diverged_at < 0)
            d_paper, d_ours = paper[k].update(tr), ours[k].update(tr)
            assert d_paper.keys() == d_ours.keys()
            for name in d_paper:
                np.testing.assert_array_equal(d_ours[name], d_paper[name], strict=True)
            for name in STATE:
                if name != "a":
                    np.testing.assert_array_equal(
                        getattr(ours[k].agent, name), getattr(paper[k].agent, name), strict=True
                    )
            # an agent that did not take the step (frozen, diverged) keeps its action in both
            still = ~(live & (paper[k].agent.diverged_at < 0))
            np.testing.assert_array_equal(ours[k].agent.a[still], a_before[still])
            moved[k] |= bool((ours[k].agent.a != paper[k].agent.a).any())
        obs = next_obs
    assert all(moved.values())  # the action step is really another one


# --------------------------------------------------------------------------- (c) the step descends the learned Q


@pytest.mark.parametrize("key", ["wd", "server"])
def test_action_step_descends_the_learned_q(key):
    P, env, obs, ctx = _setup({"alpha0": 1e-3, "freeze_on_convergence": False}, seeds=(3, 4), K=4)
    policies = {"wd": CriticDescentWD(), "server": CriticDescentServer()}
    for p in policies.values():
        p.reset(ctx, obs)
    pol = policies[key]
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(30):
        action = Action(policies["wd"].act(obs), policies["server"].act(obs))
        next_obs, terms, info = env.step(action)
        tr = Transition(obs, info.action, terms, info, next_obs)
        ag = pol.agent
        ag.a = rng.uniform(0.1, 0.9, ag.a.shape)  # an interior action, so the step is not clipped
        a_old = ag.a.copy()
        for p in policies.values():
            p.update(tr)
        x_next = pol.state(next_obs)
        g = ag.dq_da(x_next, a_old)  # the updated critic w_{t+1} at s_{t+1}
        alpha = float(step_size(obs.t, P.alpha0, P.alpha_t0, P.alpha_decay))
        inside = ((ag.a > 0) & (ag.a < 1)).all(axis=-1)
        assert inside.all()
        np.testing.assert_allclose(ag.a, a_old - alpha * g, rtol=0, atol=1e-15)
        q_old, q_new = ag.q_value(x_next, a_old), ag.q_value(x_next, ag.a)
        sq = np.sum(g * g, axis=-1)
        big = sq > 1e-8
        assert (q_new[big] < q_old[big]).all()
        # first order: Q falls by alpha |dQ/da|^2
        np.testing.assert_allclose((q_old - q_new)[big], alpha * sq[big], rtol=0.05)
        checked += int(big.sum())
        obs = next_obs
    assert checked > 0


# --------------------------------------------------------------------------- (d) a short simulation


@pytest.fixture
def proposed_q_test(monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))  # leave the registry as it was
    schemes.register(
        "proposed_q_test",
        wd=CriticDescentWD,
        server=CriticDescentServer,
        description="test only: Algorithms 1 and 2's critics, actions descend the learned Q (not the paper's)",
    )
    yield "proposed_q_test"
    schemes.SCHEMES.pop("proposed_q_test", None)


def test_short_simulation(proposed_q_test):
    P = make_params("default", {"K": 3})
    out = simulate_arrays(P, proposed_q_test, 2, 50, per_device=True)
    s, d = out["series"], out["device"]
    assert np.isfinite(s["cost"]).all() and np.isfinite(out["discounted_cost"]).all()
    assert (s["server_queue"] >= 0).all() and (d["wd_queue_k"] >= 0).all()
    assert ((d["tx_power_k"] >= 0) & (d["tx_power_k"] <= P.p_max)).all()
    assert ((s["server_rate_mean"] >= 0) & (s["server_rate_mean"] <= P.f_ser_max)).all()
    for name in ("alg1_td_error", "alg1_rel_change", "alg2_td_error", "alg2_rel_change"):
        assert np.isfinite(s[name]).all(), name
    for learner in ("alg1", "alg2"):
        assert (out["agents"][learner]["diverged_block"] == -1).all()
    w = out["work"]
    np.testing.assert_allclose(w["arrived"], w["local"] + w["server"] + w["queued"], rtol=1e-12)
    # another scheme than proposed: same environment, other actions
    ref = simulate_arrays(P, "proposed", 2, 50)
    assert not np.array_equal(ref["series"]["tx_power_mean"], s["tx_power_mean"])
