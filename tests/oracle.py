"""The numpy engine of mecmodel 0.2, kept in the tests as an independent oracle of the compiled one.

The product runs one engine (:mod:`mecmodel.engine`: per-device loops compiled by numba). This
module is the vectorised numpy code that was the reference before it, written over whole arrays
with numpy's own reductions and transcendental functions: the environment's step (3)-(8), (1),
(6), the reward gradients (26), (33), Algorithms 1 and 2's update (23)-(28), (30)-(35), the
learned-Q descent of ``proposed_q`` and the loop with its recording. :func:`simulate_arrays` runs
a scheme on it; ``tests/test_engine.py`` checks that the engine agrees with it to a stated
tolerance on every scheme and option (the two differ in the order of sums and in libm against
numpy's SIMD functions, so not bit for bit).
"""

from __future__ import annotations

import numpy as np

from mecmodel import channel, queues
from mecmodel.env import Action, MECEnv, _observation
from mecmodel.policies.actor_critic import CriticDescentQ
from mecmodel.policies.base import PolicyContext, Transition
from mecmodel.policies.qlearning import OnlineQ
from mecmodel.schemes import get_scheme
from mecmodel.simulation import DEVICE, LEARNER_SERIES, SERIES


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def row_norm(x):
    return np.sqrt(np.add.reduce(x * x, axis=-1))


def step(env: MECEnv, action: Action):
    """One block of the numpy engine: (next observation, cost terms, info dict)."""
    P, o = env.P, env.obs
    action = Action(
        np.minimum(np.maximum(action.p, 0.0), P.p_max),
        np.minimum(np.maximum(action.f_ser, 0.0), P.f_ser_max),
        bool(action.whole_task),
    )
    n, W, tau = P.n_slots, P.task_cycles, P.tau
    q, h, q_ser = o.q, o.h, o.q_ser
    cap = channel.bits_per_slot(h, action.p, P.bandwidth, P.snr_gap, tau) / P.zeta
    svc = queues.wd_service(q, cap, W, env.local_max, P.local_service, action.whole_task)
    p_tx = np.where(svc.offload > 0, channel.power_for_bits(h, P.zeta * svc.offload, P.bandwidth, P.snr_gap, tau), 0.0)
    e_loc = queues.local_energy(svc.local, n, tau, P.xi_wd)
    e_off = queues.offload_energy(p_tx, tau)
    served, f_eff = queues.server_service(q_ser, action.f_ser, tau)
    e_ser = queues.server_energy(f_eff, tau, P.xi_ser)
    terms = queues.cost_terms(q_ser, e_ser, q, e_loc + e_off, P.w1, P.w2, P.w3, P.w4)
    arrivals = o.beta.sum(axis=-1)
    # the learners' knowledge: own cost terms and their exact gradients (26), (33)
    dcap = channel.dbits_dp(h, action.p, P.bandwidth, P.snr_gap, tau) / P.zeta
    f_loc = svc.local / (n * tau)
    wd_grad = P.w4 * P.p_max * svc.uncapped * (tau + 3.0 * P.xi_wd * f_loc**2 * svc.dlocal_doff * dcap)
    active = (served >= action.f_ser * tau - 0.5) & (action.f_ser > 0)
    partial = ~active & (served > 0)
    f_p2 = np.sum(np.where(partial, f_eff**2, 0.0), axis=-1, keepdims=True)
    s_grad = 3.0 * P.w2 * tau * P.xi_ser * (f_eff**2 - f_p2) * P.f_ser_max * active
    info = dict(
        P=P, obs=o, action=action, service=svc, p_tx=p_tx, e_local=e_loc, e_offload=e_off, served=served,
        f_eff=f_eff, e_server=e_ser, arrivals=arrivals,
        wd_cost=P.w3 * q + P.w4 * (e_loc + e_off), server_cost=P.w1 * q_ser + P.w2 * e_ser,
        wd_cost_grad=wd_grad, server_cost_grad=s_grad,
    )  # fmt: skip
    q_next = queues.wd_queue_next(q, svc, arrivals, W)
    q_ser_next = queues.server_queue_next(q_ser, served, svc.offload)
    h_next, beta_next = env.exo.at(o.t + 1)
    env.obs = _observation(o.t + 1, q_next, h_next, beta_next, q_ser_next)
    return env.obs, terms, info


class _Info:
    def __init__(self, d):
        self.__dict__.update(d)


def learn(q: OnlineQ, t: int, r, dr_da, x_next):
    """OnlineQ.learn of the numpy engine (and CriticDescentQ's action step when q.descent)."""
    a_old = q.a
    live0 = ~q.frozen & (q.diverged_at < 0)
    zs_next = np.einsum("...md,...d->...m", q.v_s, x_next)
    za = np.einsum("...ma,...a->...m", q.v_a, q.a)
    phi_now = sigmoid(q._zs_now + za)
    phi_next = sigmoid(zs_next + za)
    delta = r + q.gamma * np.add.reduce(q.w * phi_next, axis=-1) - np.add.reduce(q.w * phi_now, axis=-1)
    g_next = q.gamma * phi_next
    slope = g_next * (1.0 - phi_next) - phi_now * (1.0 - phi_now)
    s = np.einsum("...m,...ma->...a", q.w * slope, q.v_a)
    dphi = g_next - phi_now
    d = delta[..., None]
    g_a, g_w = (2.0 * d * (dr_da + s), 2.0 * d * dphi) if q.exact else (d * (dr_da - s), d * dphi)
    alpha = q.alpha0 / (1.0 + float(t) / q.t0) ** q.kappa
    w_new = q.w - alpha * g_w
    a_new = np.minimum(np.maximum(q.a - alpha * g_a, 0.0), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = row_norm(w_new - q.w) / row_norm(q.w)
    bad = ~(row_norm(w_new) <= q._limit) | ~np.isfinite(delta) | np.isnan(a_new).any(axis=-1)
    q.diverged_at[live0 & bad] = t
    ok = live0 & ~bad
    q.w = np.where(ok[..., None], w_new, q.w)
    q.a = np.where(ok[..., None], a_new, q.a)
    rel = np.where(ok, rel, 0.0)
    q.streak = np.where(ok & (rel <= q.epsilon), q.streak + 1, np.where(ok, 0, q.streak))
    done = ok & (q.streak >= q.patience) & (q.converged_at < 0)
    q.converged_at[done] = t
    if q.freeze:
        q.frozen |= done
    q._zs_now = zs_next
    if q.descent:
        z = zs_next + np.einsum("...ma,...a->...m", q.v_a, a_old)
        phi = sigmoid(z)
        g = np.einsum("...m,...ma->...a", q.w * phi * (1.0 - phi), q.v_a)
        a_desc = np.clip(a_old - alpha * g, 0.0, 1.0)
        take = ok & np.isfinite(a_desc).all(axis=-1)
        q.a = np.where(take[..., None], a_desc, a_old)
    return np.abs(np.where(np.isfinite(delta), delta, np.nan)), rel


def _numpy_learner(policy) -> None:
    """Make a policy's OnlineQ learn and observe with the numpy code above."""
    agent = getattr(policy, "agent", None)
    if not isinstance(agent, OnlineQ):
        return
    P = policy.P
    qscale = 1.0 / (P.task_cycles * P.queue_scale)
    agent.learn = lambda t, r, dr, x: learn(agent, t, r, dr, x)
    if hasattr(policy, "whole_task"):  # Algorithm 1
        policy.state = lambda obs: np.concatenate(
            [(obs.q * qscale)[..., None], (np.log10(obs.h) * 0.1)[..., None], obs.beta], axis=-1
        )
    else:
        policy.state = lambda obs: np.concatenate([(obs.q_ser * qscale)[:, None], obs.q * qscale], axis=-1)
    agent._zs_now = np.einsum("...md,...d->...m", agent.v_s, policy.state(policy.ctx.env.obs))
    assert isinstance(agent, CriticDescentQ) == agent.descent


def simulate_arrays(P, scheme: str, seeds, blocks: int, per_device: bool = False) -> dict:
    """The numpy engine's run: per-block series, per-device series, summaries and work totals."""
    sch = get_scheme(scheme)
    env = MECEnv(P, seeds)
    obs = env.reset()
    S, K, n, W, tau = env.S, P.K, P.n_slots, P.task_cycles, P.tau
    ctx = PolicyContext(P, tuple(env.seeds), env)
    wd, server = sch.policies({})
    wd.reset(ctx, obs)
    server.reset(ctx, obs)
    _numpy_learner(wd)
    _numpy_learner(server)
    rec = {k: np.full((S, blocks), np.nan) for k in SERIES}
    dev = {k: np.zeros((S, blocks, K)) for k in DEVICE} if per_device else {}
    work = {k: np.zeros(S) for k in ("arrived", "local", "server", "offloaded")}
    start = blocks - max(1, int(round(P.average_fraction * blocks)))
    window = {k: np.zeros(S) for k in ("local", "offloaded")}
    for t in range(blocks):
        action = Action(wd.act(obs), server.act(obs), wd.whole_task)
        next_obs, terms, d = step(env, action)
        info = _Info(d)
        svc = info.service
        rec["cost"][:, t] = terms.total
        rec["cost_server_queue"][:, t], rec["cost_server_energy"][:, t] = terms.server_queue, terms.server_energy
        rec["cost_wd_queue"][:, t], rec["cost_wd_energy"][:, t] = terms.wd_queue, terms.wd_energy
        rec["wd_queue_mean"][:, t] = obs.q.mean(axis=1)
        rec["wd_queue_max"][:, t] = obs.q.max(axis=1)
        rec["server_queue"][:, t] = obs.q_ser
        rec["energy_local"][:, t] = info.e_local.sum(axis=1)
        rec["energy_offload"][:, t] = info.e_offload.sum(axis=1)
        rec["energy_server"][:, t] = info.e_server
        rec["tx_power_mean"][:, t] = info.p_tx.mean(axis=1)
        loc, off = svc.local.sum(axis=1), svc.offload.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rec["offloaded_fraction"][:, t] = np.where(loc + off > 0, off / (loc + off), np.nan)
        rec["server_rate_mean"][:, t] = info.f_eff.mean(axis=1)
        work["arrived"] += info.arrivals.sum(axis=1) * W
        work["local"] += loc
        work["server"] += info.served.sum(axis=1)
        work["offloaded"] += off
        if t >= start:
            window["local"] += loc
            window["offloaded"] += off
        if per_device:
            dev["wd_queue_k"][:, t] = obs.q
            dev["tx_power_k"][:, t] = info.p_tx
            dev["local_rate_k"][:, t] = svc.local / (n * tau)
            dev["offloaded_k"][:, t] = svc.offload
        tr = Transition(obs, info.action, terms, info, next_obs)
        for policy in (wd, server):
            for name, value in policy.update(tr).items():
                assert name in LEARNER_SERIES
                rec[name][:, t] = value
        obs = next_obs
    gammas = P.gamma ** np.arange(blocks, dtype=float)
    in_system = (rec["wd_queue_mean"][:, start:] * K + rec["server_queue"][:, start:]) / W
    energy_wd = (rec["energy_local"][:, start:] + rec["energy_offload"][:, start:]) / K
    served = window["local"] + window["offloaded"]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(served > 0, window["offloaded"] / served, np.nan)
    return {
        "series": rec,
        "device": dev,
        "discounted_cost": np.where(gammas > 0, rec["cost"] * gammas, 0.0).sum(axis=1),
        "average_cost": rec["cost"][:, start:].mean(axis=1),
        "latency": in_system.mean(axis=1) / (K * P.arrival_prob / tau),
        "metrics": {
            "mean_queue_wd": rec["wd_queue_mean"][:, start:].mean(axis=1) / W,
            "mean_queue_server": rec["server_queue"][:, start:].mean(axis=1) / W,
            "mean_energy_wd": energy_wd.mean(axis=1),
            "mean_energy_server": rec["energy_server"][:, start:].mean(axis=1),
            "mean_energy": (energy_wd * K + rec["energy_server"][:, start:]).mean(axis=1),
            "offloaded_share": share,
        },
        "work": {**work, "queued": obs.q.sum(axis=1) + obs.q_ser},
        "agents": {**server.summary(), **wd.summary()},
    }
