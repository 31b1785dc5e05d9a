"""The Lagrangian lower bound (mecmodel.bounds; docs/model.md, note N): its pieces against plain
loops, its monotonicity and concavity, and the bound below the exact optimum and below every
scheme's simulated cost."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mecmodel
from mecmodel import bounds, channel, optimum, queues
from mecmodel.env import MECEnv
from mecmodel.params import ParamError, make_params
from mecmodel.schemes import select
from mecmodel.statistics import mean_ci

TINY = bounds.BoundGrid(wd_tasks=3, fading_bins=6, gains_per_decade=4, mu_points=4)


def block_cost(P, x, R, h, price):
    """A capacity R's block cost by the simulator's own functions: w4 (E_loc + E_off) + price O,
    the post-decision queue, inf above p_max."""
    W = P.task_cycles
    local_max = math.floor(P.n_slots * P.tau * P.f_wd_max)
    svc = queues.wd_service(np.array(x), np.array(float(R)), W, local_max, P.local_service)
    off = float(svc.offload)
    p = float(channel.power_for_bits(np.array(h), P.zeta * off, P.bandwidth, P.snr_gap, P.tau)) if off > 0 else 0.0
    cap = P.tau * P.bandwidth * math.log2(1 + h * P.p_max / P.snr_gap) / P.zeta if np.isfinite(h) else math.inf
    if R > cap:
        return math.inf, None
    e = float(queues.local_energy(svc.local, P.n_slots, P.tau, P.xi_wd)) + P.tau * p
    return P.w4 * e + price * off, x - float(svc.local) - off


@pytest.mark.parametrize(
    "preset, f_wd_max",
    [("default", None), ("stable", None), ("paper", None), ("default", 0.8e9), ("default", 0.4e9)],
)
def test_segments_against_a_dense_search_over_capacities(preset, f_wd_max):
    """Every queue level and every capacity of a fine grid, each segment's ends and R = W among them:
    the capacity lies in exactly one segment, its outcome is that segment's post-decision queue, it
    costs no less than the segment's lower value, and some capacity nearly attains the least one.
    f_wd_max = 0.8e9 (n tau f^wd_max = 2W) puts a break point at R = W exactly: offloading a whole
    task lets the CPU reach one task further, an outcome of its own."""
    P = make_params(preset, {"K": 1, **({"f_wd_max": f_wd_max} if f_wd_max else {})})
    prob = bounds.WDProblem(P, TINY)
    W, u = P.task_cycles, prob.unit
    gains = np.array([3e3, 1e5])
    price = float(bounds.price(P, bounds.mu_saturation(P) * 0.01))
    e = prob.energies(gains, price)  # (G, nx, nh, ns) at the bins' upper edges
    for xi in range(prob.nx):
        x = xi * u
        ends = prob.seg_top[xi][prob.seg_top[xi] >= 0]
        lows = prob.seg_lo[xi][np.isfinite(prob.seg_lo[xi])]
        Rs = np.unique(np.r_[np.floor(np.linspace(0.0, W, 81)), lows, lows + 1, ends, ends - 1, W])
        Rs = Rs[(Rs >= 0) & (Rs <= W)]
        for gi, g in enumerate(gains):
            for j in (0, prob.nh - 2):
                h = g * prob.fade_hi[j]
                best = math.inf
                for R in Rs:
                    c, post = block_cost(P, x, R, h, price)
                    if not np.isfinite(c):
                        continue
                    best = min(best, c)
                    seg = [s for s in range(prob.nseg) if prob.seg_lo[xi, s] <= R <= prob.seg_top[xi, s]]
                    assert len(seg) == 1, (xi, R, seg)
                    assert prob.seg_post[xi, seg[0]] * u == post, (xi, R)
                    assert e[gi, xi, j, seg[0]] <= c * (1 + 1e-12) + 1e-15
                lower = e[gi, xi, j].min()
                assert lower <= best * (1 + 1e-12) + 1e-15
                assert best - lower <= 0.02 * best + 1e-12  # the grid of capacities comes close


def test_value_iteration_against_plain_loops():
    """The compiled value iteration equals a Bellman iteration written as plain loops over queue,
    arrivals, fading bin and segment, with the queue-only tail above the top."""
    P = make_params("default").replace(K=1, arrival_prob=0.5)
    prob = bounds.WDProblem(P, TINY)
    gains = np.array([1e4, 1e6])
    e = prob.energies(gains, float(bounds.price(P, 1e-9)))
    J, _ = prob.solve(e)
    for gi in range(len(gains)):
        ref = np.zeros(len(prob.tail))
        ref[prob.nx :] = prob.tail[prob.nx :]
        for _ in range(3000):
            new = ref.copy()
            for x in range(prob.nx):
                total = 0.0
                for a in range(prob.na):
                    for j in range(prob.nh):
                        best = min(
                            e[gi, x, j, s] + P.gamma * ref[prob.seg_post[x, s] + a * prob.per_task]
                            for s in range(prob.nseg)
                        )
                        total += prob.pa[a] * prob.ph[j] * (P.w3 * x * prob.unit + best)
                new[x] = total
            done = np.max(np.abs(new - ref)) < 1e-12 * np.max(np.abs(new))
            ref = new
            if done:
                break
        np.testing.assert_allclose(J[gi], ref[: prob.nx], rtol=1e-6)
        assert np.all(J[gi] <= ref[: prob.nx] * (1 + 1e-12))  # from below


def test_tail_is_below_what_any_queue_costs():
    """Above the grid, the queue-only bound: q_t >= q - t s_max + arrivals (s_max the most a block
    removes), so E q_t >= max(q + t (lambda n W - s_max), 0); and it is a subsolution: one block at
    the fastest removal plus gamma times the tail after it is at least the tail (costs only add)."""
    P = make_params("default").replace(K=1, arrival_prob=0.9)
    prob = bounds.WDProblem(P, TINY)
    W = P.task_cycles
    drift = P.arrival_prob * P.n_slots * W - prob.s_max_wd
    x = (len(prob.tail) - 1) * prob.unit
    t = np.arange(10000)
    assert prob.tail[-1] == pytest.approx(np.sum(P.gamma**t * P.w3 * np.maximum(x + t * drift, 0)))
    assert prob.s_max_wd == math.floor(P.n_slots * P.tau * P.f_wd_max) + W
    for x in np.arange(prob.nx, len(prob.tail)) * prob.unit:
        after = [
            np.sum(P.gamma**t * P.w3 * np.maximum(x - prob.s_max_wd + a * W + t * drift, 0)) for a in range(prob.na)
        ]
        tail_x = np.sum(P.gamma**t * P.w3 * np.maximum(x + t * drift, 0))
        assert tail_x <= P.w3 * x + P.gamma * np.dot(prob.pa, after) * (1 + 1e-12)


def test_values_rise_with_the_price_and_fall_with_the_gain():
    P = make_params("default").replace(K=1)
    t = bounds.tabulate(P, 10.0 ** np.arange(2.0, 6.5, 0.5), TINY)
    assert np.all(np.diff(t.V, axis=0) >= -1e-9 * t.V[1:])
    assert np.all(np.diff(t.V, axis=1) <= 1e-9 * t.V[:, 1:])


@settings(max_examples=60, deadline=None)
@given(
    mu=st.floats(0, 1e-6, allow_nan=False),
    frac=st.floats(0, 1),
    f_ser=st.sampled_from([1e9, 5e9, 5e10]),
)
def test_the_tangent_is_below_the_server_energy(mu, frac, f_ser):
    """w2 E(s) >= mu s - phi*(mu) for every s the server can serve in a block, and phi* is attained."""
    P = make_params("default").replace(f_ser_max=f_ser)
    S_max = P.n_slots * P.tau * P.f_ser_max
    s = frac * S_max
    energy = P.w2 * P.xi_ser * s**3 / (P.n_slots * P.tau) ** 2
    conj = float(bounds.server_conjugate(P, mu))
    assert energy >= mu * s - conj - 1e-12 * max(1.0, abs(conj))
    grid = np.linspace(0, S_max, 20001)
    assert conj >= np.max(mu * grid - P.w2 * P.xi_ser * grid**3 / (P.n_slots * P.tau) ** 2) - 1e-12 * max(1, conj)


def test_price_is_served_at_once_or_never():
    P = make_params("default")
    sat = bounds.mu_saturation(P)
    for mu in (0.0, 0.3 * sat, sat, 3 * sat):
        # a cycle waiting j >= 0 blocks, then served, or never: the cheapest of these
        costs = [sum(P.gamma ** (1 + i) * P.w1 for i in range(j + 1)) + P.gamma ** (1 + j) * mu for j in range(400)] + [
            P.gamma * P.w1 / (1 - P.gamma)
        ]
        assert float(bounds.price(P, mu)) == pytest.approx(min(costs), rel=1e-9)


def test_lower_bound_is_concave_in_the_price_and_the_grid_maximum_is_near_the_true_one():
    P = make_params("default").replace(K=30)
    gains = MECEnv(P, [0, 1]).mean_gain
    grid = bounds.BoundGrid(mu_points=24, tol=1e-11)  # values to 1e-11: their differences are the function's
    b = bounds.lower_bound(P, gains, grid)
    t = b.table
    lb = t.V[:, b.gain_index].sum(-1) - bounds.server_conjugate(P, t.mus)[:, None] / (1 - P.gamma)  # (M, S)
    slopes = np.diff(lb, axis=0) / np.diff(t.mus)[:, None]
    assert np.all(np.diff(slopes, axis=0) <= 1e-6 * np.abs(slopes[1:]).max())  # concave
    finer = bounds.lower_bound(P, gains, bounds.BoundGrid(mu_points=72))
    assert np.all(finer.lower_bound - b.lower_bound <= 1e-3 * b.lower_bound)


def test_gains_round_up_onto_the_lattice():
    g = np.array([1e-3, 0.5, 1.0, 7.3e4, 10.0 ** (3 / 12)])
    i = bounds.gain_exponents(g, 12)
    assert np.all(10.0 ** (i / 12) >= g) and np.all(10.0 ** ((i - 1) / 12) < g)
    with pytest.raises(ParamError, match="mean gain"):
        bounds.gain_exponents(np.array([0.0]), 12)


def test_head_rule_is_refused_in_one_line():
    P = make_params("default").replace(local_service="head")
    with pytest.raises(ParamError, match="local_service"):
        bounds.point_bound(P, [0])


@pytest.mark.parametrize("preset", ["default", "stable"])
@pytest.mark.parametrize("lam", [0.2, 0.4])
def test_bound_is_below_the_exact_optimum_at_K_1(preset, lam):
    """At K = 1 value iteration's optimum of the discretised joint model (server queue, energy and
    all) is above the bound on each seed's drop, to the solver's stated accuracy (its iteration
    stops within ``Grid.tol`` of the optimum, from below: where nothing is offloaded the two agree
    to that accuracy)."""
    P = make_params(preset).replace(K=1, arrival_prob=lam)
    gains = MECEnv(P, [0, 1, 2]).mean_gain
    b = bounds.lower_bound(P, gains)
    for s in range(3):
        m = optimum.model_for(P, gains[s])
        v = optimum.solve(m, P.gamma).start_value()
        assert b.lower_bound[s] <= v + m.grid.tol


@pytest.mark.slow
@pytest.mark.parametrize("K", [2, 20])
def test_bound_is_below_every_schemes_simulated_cost(K):
    """Paired per seed (the bound at each seed's drop), the mean of J - LB over 16 seeds is not
    below zero for any scheme: the upper end of its 99% interval is >= 0."""
    schemes = select("all") + (["optimal"] if K <= 2 else [])
    P = make_params("default").replace(K=K)
    seeds = list(range(16))
    lb = bounds.point_bound(P, seeds).lower_bound
    for scheme in schemes:
        ds = mecmodel.simulate(K=K, scheme=scheme, seeds=seeds, blocks=250)
        diff = ds.discounted_cost.squeeze().values - lb
        mean, lo, hi, n = mean_ci(diff, level=0.99)
        assert hi >= 0, (scheme, float(mean), float(lo), float(hi))


def test_lagrangian_powers_are_in_bounds_and_keep_work():
    ds = mecmodel.simulate(K=5, scheme="lagrangian", seeds=3, blocks=120, per_device=True)
    P = make_params("default")
    p = ds.tx_power.values if "tx_power" in ds else ds.tx_power_mean.values
    assert np.all(p >= 0) and np.all(p <= P.p_max)
    w = ds
    np.testing.assert_array_equal(
        w.work_arrived.values, w.work_local.values + w.work_server.values + w.work_queued.values
    )


def test_upper_bound_iteration_against_plain_loops():
    """The upper bound's per-WD values: from above, the same fixed point as plain loops over the
    pessimistic block costs (each bin at its lower gain, integer capacities), the tail above the
    top continuing locally."""
    P = make_params("default").replace(K=1, arrival_prob=0.5)
    prob = bounds.WDProblem(P, TINY)
    gains = np.array([1e4, 1e6])
    cubic = P.gamma * P.w2 * P.xi_ser / (P.n_slots * P.tau) ** 2
    e = prob.energies(gains, P.gamma * P.w1, optimistic=False, cubic=cubic)
    tail = prob.tail_above()
    J, _ = prob.solve(e, np.broadcast_to(tail[: prob.nx], (2, prob.nx)), tail=tail, lower=False)
    for gi in range(len(gains)):
        ref = tail.copy()
        for _ in range(3000):
            new = ref.copy()
            for x in range(prob.nx):
                new[x] = sum(
                    prob.pa[a]
                    * prob.ph[j]
                    * (
                        P.w3 * x * prob.unit
                        + min(
                            e[gi, x, j, s] + P.gamma * ref[prob.seg_post[x, s] + a * prob.per_task]
                            for s in range(prob.nseg)
                        )
                    )
                    for a in range(prob.na)
                    for j in range(prob.nh)
                )
            done = np.max(np.abs(new - ref)) < 1e-12 * np.max(np.abs(new))
            ref = new
            if done:
                break
        np.testing.assert_allclose(J[gi], ref[: prob.nx], rtol=1e-5)
        assert np.all(J[gi] >= ref[: prob.nx] * (1 - 1e-12))  # from above


@pytest.mark.parametrize("preset", ["default", "stable"])
def test_the_upper_tail_is_a_supersolution_of_computing_locally(preset):
    """Computing locally from a queue q removes at least min(q, s) cycles a block: one block's cost
    (the queue, the most local energy) plus gamma times the tail after it is at most the tail."""
    P = make_params(preset).replace(K=1, arrival_prob=0.7)
    prob = bounds.WDProblem(P, TINY)
    W = P.task_cycles
    s = max(prob.local_max - W, 0.0)
    e_max = P.w4 * P.xi_wd * prob.local_max**3 / (P.n_slots * P.tau) ** 2
    tail = prob.tail_above()
    X = np.arange(len(tail) - prob.na * prob.per_task) * prob.unit
    for i, x in enumerate(X):
        nxt = [int(round((max(x - s, 0.0) + a * W) / prob.unit)) for a in range(prob.na)]
        one = P.w3 * x + e_max + P.gamma * sum(prob.pa[a] * tail[j] for a, j in enumerate(nxt))
        assert one <= tail[i] * (1 + 1e-9)


@pytest.mark.parametrize(
    "preset, K, lam, gamma",
    [("default", 1, 0.4, 0.9), ("default", 5, 0.9, 0.9), ("default", 20, 0.4, 0.99), ("stable", 10, 0.6, 0.9)],
)
def test_the_optimum_is_bracketed(preset, K, lam, gamma):
    P = make_params(preset).replace(K=K, arrival_prob=lam, gamma=gamma)
    gains = MECEnv(P, [0, 1, 2]).mean_gain
    lb, ub = bounds.lower_bound(P, gains).lower_bound, bounds.upper_bound(P, gains)
    assert np.all(lb <= ub)


def test_upper_bound_needs_a_server_that_clears_K_tasks():
    P = make_params("default").replace(K=5, f_ser_max=1e9)
    with pytest.raises(ParamError, match="K W <= n tau f_ser_max"):
        bounds.upper_bound(P, MECEnv(P, [0]).mean_gain)


@pytest.mark.parametrize("lam, f_wd_max", [(0.1, 1e9), (0.4, 1e9), (0.4, 0.8e9)])
def test_many_seeds_at_K_1_land_inside_the_bracket(lam, f_wd_max):
    """At K = 1 a run is cheap, so 3000 seeds pin the expected (9a): paired per seed, the mean of
    J - LB of schemes lagrangian and offload_min_energy is not below 0 (the upper end of its 99%
    interval is >= 0), and lagrangian's J - UB not above 0 (the lower end <= 0): the lower bound
    holds where a sample can test it, and the bound's policy does no worse than the upper bound's,
    within the noise of 3000 sample paths. f_wd_max = 0.8e9 puts a break point at R = W (a whole
    task offloaded lets the CPU finish one more), which the bound once missed."""
    over = {"f_wd_max": f_wd_max}
    P = make_params("default", {"K": 1, "arrival_prob": lam, **over})
    seeds = list(range(20000, 23000))
    gains = MECEnv(P, seeds).mean_gain
    lb, ub = bounds.lower_bound(P, gains).lower_bound, bounds.upper_bound(P, gains)
    J = {
        scheme: mecmodel.simulate(K=1, arrival_prob=lam, scheme=scheme, seeds=seeds, blocks=300, overrides=over)
        .discounted_cost.squeeze()
        .values
        for scheme in ("lagrangian", "offload_min_energy")  # the second offloads whole tasks when it can
    }
    for scheme, cost in J.items():
        _, _, hi, _ = mean_ci(cost - lb, level=0.99)
        assert hi >= 0, scheme
    _, lo, _, _ = mean_ci(J["lagrangian"] - ub, level=0.99)
    assert lo <= 0


@settings(max_examples=25, deadline=None)
@given(
    per_task=st.sampled_from([1, 2, 4, 5, 10]),
    local_tasks=st.integers(1, 30),
    rule=st.sampled_from(["mod_w", "single"]),
)
def test_segments_cover_every_capacity_for_any_cpu(per_task, local_tasks, rule):
    """For any n tau f^wd_max on the queue grid (local_tasks / per_task tasks, below or above W, a
    whole number of tasks or not) and either rule the bound supports: at every queue level, every
    capacity at the segments' ends, R = W and on a grid lies in exactly one segment, whose
    post-decision queue is the simulator's."""
    W = 2e8
    f_wd_max = local_tasks * (W / per_task) / 0.5  # n tau = 0.5 s
    P = make_params("default", {"K": 1, "f_wd_max": f_wd_max, "local_service": rule})
    prob = bounds.WDProblem(P, bounds.BoundGrid(wd_tasks=4, fading_bins=6))
    local_max = math.floor(P.n_slots * P.tau * P.f_wd_max)
    for xi in range(prob.nx):
        x = xi * prob.unit
        ends = np.r_[prob.seg_lo[xi][np.isfinite(prob.seg_lo[xi])], prob.seg_top[xi][prob.seg_top[xi] >= 0]]
        for R in np.unique(np.r_[ends, ends + 1, ends - 1, np.floor(np.linspace(0, W, 41))]):
            if not 0 <= R <= W:
                continue
            svc = queues.wd_service(np.array(x), np.array(R), W, local_max, rule)
            seg = [s for s in range(prob.nseg) if prob.seg_lo[xi, s] <= R <= prob.seg_top[xi, s]]
            assert len(seg) == 1, (xi, R)
            assert prob.seg_post[xi, seg[0]] * prob.unit == x - float(svc.local) - float(svc.offload), (xi, R)


def test_the_cli_prints_the_bracket_per_seed(capsys):
    from mecmodel import cli

    assert cli.main(["bounds", "--K", "3", "--seeds", "4,7", "--arrival-prob", "0.3"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split("\t") for line in out if line[:1].isdigit()]
    P = make_params("default").replace(K=3, arrival_prob=0.3)
    gains = MECEnv(P, [4, 7]).mean_gain
    lb, ub = bounds.lower_bound(P, gains).lower_bound, bounds.upper_bound(P, gains)
    assert [int(r[0]) for r in rows] == [4, 7]
    np.testing.assert_allclose([float(r[1]) for r in rows], lb, rtol=1e-5)
    np.testing.assert_allclose([float(r[2]) for r in rows], ub, rtol=1e-5)
    assert cli.main(["bounds", "--K", "3", "--seeds", "2", "--set", "local_service=head"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "local_service" in err[0]
