"""The myopic greedy rules of mecmodel.policies.myopic: each agent's choice minimises its own
one-block cost, checked against plain loops and a brute-force search."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import drive

from mecmodel import channel, queues
from mecmodel.env import MECEnv, Observation
from mecmodel.params import make_params
from mecmodel.policies import PolicyContext
from mecmodel.policies.myopic import (
    CentralDriftPlusPenaltyWD,
    DriftPlusPenaltyServer,
    DriftPlusPenaltyWD,
    MyopicServer,
    MyopicWD,
)


def _ctx(P, S):
    env = MECEnv(P, list(range(S)))
    return PolicyContext(P, tuple(range(S)), env)


def _obs(P, q, h, q_ser):
    q, h = np.asarray(q, float), np.asarray(h, float)
    return Observation(0, q, h, np.zeros((*q.shape, P.n_slots)), np.asarray(q_ser, float))


def _choose(pol, P, q, h):
    """A WD rule's powers for queues q and gains h (seeds x WDs), and its candidate powers."""
    obs = _obs(P, q, h, np.zeros(len(q)))
    pol.reset(_ctx(P, len(q)), obs)
    return pol.act(obs), pol.candidates(h)


def _served_and_energy(P, q, h, p):
    """One WD at one power, scalar by scalar: (cycles served locally and offloaded, energy (2) + (5))."""
    cap = channel.bits_per_slot(h, p, P.bandwidth, P.snr_gap, P.tau) / P.zeta
    local_max = np.floor(P.n_slots * P.tau * P.f_wd_max)
    svc = queues.wd_service(np.array([q]), np.array([cap]), P.task_cycles, local_max, P.local_service)
    loc, off = float(svc.local[0]), float(svc.offload[0])
    p_tx = float(channel.power_for_bits(h, P.zeta * off, P.bandwidth, P.snr_gap, P.tau)) if off > 0 else 0.0
    return loc + off, float(queues.local_energy(loc, P.n_slots, P.tau, P.xi_wd)) + P.tau * p_tx


def _one_cost(P, q, h, p, reading):
    """The myopic objective of one WD at one power."""
    served, e = _served_and_energy(P, q, h, p)
    return P.w3 * ((q - served) if reading == "end" else q) + P.w4 * e


@pytest.mark.parametrize("reading", ["end", "start"])
@pytest.mark.parametrize("rule", ["mod_w", "head"])
def test_wd_choice_is_the_grid_minimum(reading, rule):
    P = make_params("default", {"K": 4, "local_service": rule, "w3": 1e-7})
    rng = np.random.default_rng(1)
    q = rng.integers(0, 5, (3, 4)) * P.task_cycles + rng.integers(0, 10**8, (3, 4))
    h = 10 ** rng.uniform(1, 6, (3, 4))  # the default drop's gains over noise: about 1 to 1e8 W^-1
    p, cands = _choose(MyopicWD(reading, grid=33), P, q, h)
    assert cands.shape == (3, 4, 34) and np.all(np.diff(cands, axis=-1) >= 0)
    assert p.shape == (3, 4) and ((p >= 0) & (p <= P.p_max)).all()
    for s in range(3):
        for k in range(4):
            costs = [_one_cost(P, q[s, k], h[s, k], g, reading) for g in cands[s, k]]
            chosen = _one_cost(P, q[s, k], h[s, k], p[s, k], reading)
            assert chosen == pytest.approx(min(costs), rel=1e-12, abs=1e-15)
            # the chosen candidate; its power (4) from libm's expm1 in the engine, numpy's here
            assert p[s, k] == pytest.approx(cands[s, k][int(np.argmin(costs))], rel=1e-14, abs=0)


def test_wd_start_reading_minimises_energy_alone():
    P = make_params("default", {"K": 5})
    rng = np.random.default_rng(3)
    q = rng.integers(1, 4, (2, 5)) * P.task_cycles
    h = 10 ** rng.uniform(1, 6, (2, 5))
    p, cands = _choose(MyopicWD("start", grid=33), P, q, h)
    for s in range(2):
        for k in range(5):
            energy = [(_one_cost(P, q[s, k], h[s, k], g, "start") - P.w3 * q[s, k]) / P.w4 for g in cands[s, k]]
            mine = (_one_cost(P, q[s, k], h[s, k], p[s, k], "start") - P.w3 * q[s, k]) / P.w4
            assert mine == pytest.approx(min(energy), rel=1e-9, abs=1e-15)


def test_wd_start_reading_is_energy_alone_and_end_offloads_more():
    """With a heavy queue weight, the end reading offloads (its queue falls), the start reading
    only saves energy, so it never offloads more."""
    P = make_params("default", {"K": 6, "w3": 1e-6})
    q = np.full((1, 6), 3 * P.task_cycles)
    h = np.full((1, 6), 1e12)
    p = {}
    for reading in ("end", "start"):
        pol = MyopicWD(reading)
        pol.reset(_ctx(P, 1), _obs(P, q, h, [0.0]))
        p[reading] = pol.act(_obs(P, q, h, [0.0]))
    assert (p["end"] >= p["start"]).all() and (p["end"] > 0).all()


def test_server_rate_is_the_one_block_optimum():
    P = make_params("default", {"K": 2, "w1": 1e-8, "w2": 1.0})
    q_ser = np.array([0.0, 1e8, 1e10, 1e12])
    pol = MyopicServer()
    pol.reset(_ctx(P, 4), _obs(P, np.zeros((4, 2)), np.ones((4, 2)), q_ser))
    f = pol.act(_obs(P, np.zeros((4, 2)), np.ones((4, 2)), q_ser))
    assert f.shape == (4, P.n_slots) and (f == f[:, :1]).all()
    # brute force over equal rates: w1 (q - served) + w2 E
    grid = np.linspace(0, P.f_ser_max, 20001)
    for i, q in enumerate(q_ser):
        served, f_eff = queues.server_service(np.full(grid.size, q), np.repeat(grid[:, None], P.n_slots, 1), P.tau)
        cost = P.w1 * (q - served.sum(1)) + P.w2 * queues.server_energy(f_eff, P.tau, P.xi_ser)
        s, fe = queues.server_service(np.array([q]), f[i : i + 1], P.tau)
        mine = P.w1 * (q - s.sum()) + P.w2 * queues.server_energy(fe, P.tau, P.xi_ser)[0]
        assert mine <= cost.min() + 1e-9 * max(1.0, abs(cost.min())) + 1e-6
    assert f[0, 0] == 0  # nothing to serve
    assert f[-1, 0] == pytest.approx(np.sqrt(P.w1 / (3 * P.w2 * P.xi_ser)))  # a long queue: f*
    assert (f <= P.f_ser_max).all()


def test_server_start_reading_idles_and_bad_reading_is_refused():
    P = make_params("default", {"K": 2})
    pol = MyopicServer("start")
    obs = _obs(P, np.zeros((1, 2)), np.ones((1, 2)), [1e12])
    pol.reset(_ctx(P, 1), obs)
    assert (pol.act(obs) == 0).all()
    with pytest.raises(ValueError, match="reading: must be one of end, start"):
        MyopicWD("later")


def test_myopic_pair_runs_and_conserves_work():
    P = make_params("default", {"K": 5, "arrival_prob": 0.5})
    arrived, done, obs = drive(P, MyopicWD(), MyopicServer(), blocks=50)
    np.testing.assert_array_equal(arrived, done + obs.q.sum(axis=1) + obs.q_ser)


def _dpp_cost(P, q, h, p, V):
    """The DPP objective of one WD at one power."""
    served, e = _served_and_energy(P, q, h, p)
    W = P.task_cycles
    return V * P.w4 * e - (q / W) * (served / W)


@pytest.mark.parametrize("V", [0.1, 3.0, 100.0])
def test_dpp_wd_choice_is_the_grid_minimum(V):
    P = make_params("default", {"K": 4})
    rng = np.random.default_rng(2)
    q = rng.integers(0, 6, (2, 4)) * P.task_cycles + rng.integers(0, 10**8, (2, 4))
    h = 10 ** rng.uniform(1, 6, (2, 4))
    p, cands = _choose(DriftPlusPenaltyWD(V, grid=33), P, q, h)
    for s in range(2):
        for k in range(4):
            costs = [_dpp_cost(P, q[s, k], h[s, k], g, V) for g in cands[s, k]]
            # the chosen candidate; its power (4) from libm's expm1 in the engine, numpy's here
            assert p[s, k] == pytest.approx(cands[s, k][int(np.argmin(costs))], rel=1e-14, abs=0)
    assert len({float(x) for x in p.ravel()}) > 2, "interior choices, not only on or off"


def _offloaded(P, q, h, p):
    cap = channel.bits_per_slot(h, p, P.bandwidth, P.snr_gap, P.tau) / P.zeta
    local_max = np.floor(P.n_slots * P.tau * P.f_wd_max)
    return float(
        queues.wd_service(np.array([q]), np.array([cap]), P.task_cycles, local_max, P.local_service).offload[0]
    )


@pytest.mark.parametrize("V", [0.1, 3.0])
def test_central_dpp_wd_weighs_the_server_queue_its_offload_fills(V):
    """The standard (centralised) form: the objective of the per-agent DPP plus (q^ser / W) O_k / W,
    checked candidate by candidate with scalar loops; a full server queue makes the WDs offload less."""
    P = make_params("default", {"K": 4})
    rng = np.random.default_rng(3)
    W = P.task_cycles
    q = rng.integers(1, 6, (2, 4)) * W + rng.integers(0, 10**8, (2, 4))
    h = 10 ** rng.uniform(3, 6, (2, 4))
    q_ser = np.array([0.0, 40 * W])
    pol = CentralDriftPlusPenaltyWD(V, grid=33)
    obs = _obs(P, q, h, q_ser)
    pol.reset(_ctx(P, 2), obs)
    p, cands = pol.act(obs), pol.candidates(h)
    for s in range(2):
        for k in range(4):
            costs = [
                _dpp_cost(P, q[s, k], h[s, k], g, V) + (q_ser[s] / W) * _offloaded(P, q[s, k], h[s, k], g) / W
                for g in cands[s, k]
            ]
            assert p[s, k] == pytest.approx(cands[s, k][int(np.argmin(costs))], rel=1e-14, abs=0)
    # with an empty server queue it is the per-agent rule; with a full one it offloads less
    own, _ = _choose(DriftPlusPenaltyWD(V, grid=33), P, q, h)
    np.testing.assert_allclose(p[0], own[0], rtol=1e-14)
    off = [[_offloaded(P, q[s, k], h[s, k], p[s, k]) for k in range(4)] for s in range(2)]
    off_own = [_offloaded(P, q[1, k], h[1, k], own[1, k]) for k in range(4)]
    assert sum(off[1]) < sum(off_own)
    assert CentralDriftPlusPenaltyWD.information == "centralised"


def test_dpp_server_rate_is_the_per_block_optimum_and_falls_with_V():
    P = make_params("default", {"K": 2})
    W = P.task_cycles
    q_ser = np.array([0.0, 3 * W, 40 * W, 1000 * W])  # at 1000 tasks f* < f_ser_max for V = 100
    obs = _obs(P, np.zeros((4, 2)), np.ones((4, 2)), q_ser)
    rates = {}
    for V in (0.1, 1.0, 100.0):
        pol = DriftPlusPenaltyServer(V)
        pol.reset(_ctx(P, 4), obs)
        f = pol.act(obs)
        rates[V] = f[:, 0]
        grid = np.linspace(0, P.f_ser_max, 20001)
        for i, q in enumerate(q_ser):
            fs = np.repeat(grid[:, None], P.n_slots, 1)
            served, f_eff = queues.server_service(np.full(grid.size, q), fs, P.tau)
            obj = V * P.w2 * queues.server_energy(f_eff, P.tau, P.xi_ser) - (q / W) * served.sum(1) / W
            s, fe = queues.server_service(np.array([q]), f[i : i + 1], P.tau)
            mine = V * P.w2 * queues.server_energy(fe, P.tau, P.xi_ser)[0] - (q / W) * s.sum() / W
            assert mine <= obj.min() + 1e-9 * max(1.0, abs(obj.min())) + 1e-9
    assert rates[0.1][0] == rates[1.0][0] == 0  # an empty queue idles
    assert (rates[0.1][1:] >= rates[1.0][1:]).all() and (rates[1.0][1:] >= rates[100.0][1:]).all()
    f_star = np.sqrt(1000 / (3 * 100.0 * P.w2 * P.xi_ser * W))  # f* for q = 1000 W and V = 100
    assert f_star < P.f_ser_max and rates[100.0][3] == pytest.approx(f_star)
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="V: must be a finite number > 0"):
            DriftPlusPenaltyServer(bad)
        with pytest.raises(ValueError, match="V: must be a finite number > 0"):
            DriftPlusPenaltyWD(bad)
    tiny = DriftPlusPenaltyServer(1e-300)  # no underflow to 0/0
    tiny.reset(_ctx(P, 4), obs)
    assert np.isfinite(tiny.act(obs)).all()


@pytest.mark.parametrize("rule", ["myopic", "dpp"])
def test_server_rates_respect_f_ser_max_below_f_star(rule):
    """With f_ser_max below the unconstrained optimum, the rate is f_ser_max, never above."""
    P = make_params("default", {"K": 2, "f_ser_max": 1e9})  # f* is 1.8e10 (myopic) at the defaults
    W = P.task_cycles
    obs = _obs(P, np.zeros((2, 2)), np.ones((2, 2)), [100 * W, 1000 * W])
    pol = MyopicServer() if rule == "myopic" else DriftPlusPenaltyServer(0.01)
    pol.reset(_ctx(P, 2), obs)
    f = pol.act(obs)
    assert (f == P.f_ser_max).all()


@pytest.mark.parametrize("rule", ["end", "start", "dpp"])
def test_objective_is_the_documented_formula_at_every_power(rule):
    """The vectorised objective equals the scalar formula at every candidate, chosen or not (so a
    wrong weight cannot hide behind a choice that happens not to move)."""
    P = make_params("default", {"K": 3, "w3": 3e-8})
    rng = np.random.default_rng(4)
    q = rng.integers(0, 5, (2, 3)) * P.task_cycles + rng.integers(0, 10**8, (2, 3))
    h = 10 ** rng.uniform(0, 7, (2, 3))
    pol = DriftPlusPenaltyWD(2.5, grid=17) if rule == "dpp" else MyopicWD(rule, grid=17)
    pol.reset(_ctx(P, 2), _obs(P, q, h, np.zeros(2)))
    cands = pol.candidates(h)
    got = pol.block_cost(q[..., None], h[..., None], cands)
    for s in range(2):
        for k in range(3):
            for j, g in enumerate(cands[s, k]):
                want = (
                    _dpp_cost(P, q[s, k], h[s, k], g, 2.5) if rule == "dpp" else _one_cost(P, q[s, k], h[s, k], g, rule)
                )
                assert got[s, k, j] == pytest.approx(want, rel=1e-12, abs=1e-14)


def test_candidates_carry_exactly_their_back_ends():
    """Each candidate power below p_max carries c = j W / 32 back-end cycles through (3), no fewer
    (the floor of the capacity) and no more than half a cycle over."""
    P = make_params("default", {"K": 5})
    h = 10 ** np.random.default_rng(5).uniform(0, 8, (3, 5))
    pol = MyopicWD(grid=33)
    pol.reset(_ctx(P, 3), _obs(P, np.zeros((3, 5)), h, np.zeros(3)))
    cands = pol.candidates(h)
    cap = np.floor(channel.bits_per_slot(h[..., None], cands, P.bandwidth, P.snr_gap, P.tau) / P.zeta)
    want = np.concatenate([[0.0], P.task_cycles * np.arange(1, 33) / 32])
    inner = cands[..., :-1] < P.p_max
    np.testing.assert_array_equal(cap[..., :-1][inner], np.broadcast_to(want, inner.shape)[inner])
    assert inner.any() and (~inner).any()  # both carried and capped candidates occur
