"""The exact optimum (mecmodel.optimum): a closed form, Bellman optimality by plain loops, exact
policy evaluation, joint <= decomposed, and the policy in the simulator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mecmodel import optimum, sweep
from mecmodel.env import Action, MECEnv, Observation
from mecmodel.params import ParamError, make_params
from mecmodel.simulation import simulate_arrays

TINY = optimum.Grid(per_task=2, wd_tasks=2, server_tasks=2, channel_levels=2, tol=1e-9)


def test_closed_form_one_queue_deterministic_arrivals():
    """One task arrives every block, no power can offload (p_max tiny), the CPU computes a whole task
    per block: the queue is 0 then W for ever, so V(0) = gamma / (1 - gamma) (w3 W + w4 E(W))."""
    P = make_params("default", {"K": 1, "p_max": 1e-30, "gamma": 0.8})
    pmf = np.zeros(P.n_slots + 1)
    pmf[1] = 1.0
    m = optimum.Model(P, optimum.Grid(tol=1e-10), np.array([100.0]), pmf)
    sol = optimum.solve(m, P.gamma)
    W, n, tau = P.task_cycles, P.n_slots, P.tau
    per_block = P.w3 * W + P.w4 * n * tau * P.xi_wd * (W / (n * tau)) ** 3
    assert sol.start_value() == pytest.approx(P.gamma / (1 - P.gamma) * per_block, rel=1e-9)
    assert np.all(sol.wd_action == 0)  # nothing else is feasible


def _explicit(m: optimum.Model, gamma: float, V: np.ndarray):
    """Bellman operator by plain loops over states, actions and outcomes, and the greedy policy's
    transition matrix and cost (an independent reading of the model's arrays)."""
    K, per = m.K, m.grid.per_task
    wd_states = list(itertools.product(range(m.nx), range(m.na), range(m.nh)))
    joint_states = list(itertools.product(wd_states, repeat=K))
    outcome_p = {(a, h): m.arrival_pmf[a] / m.nh for a in range(m.na) for h in range(m.nh)}
    N = len(joint_states) * m.ny

    def index(ws, y):
        flat = 0
        for x, a, h in ws:
            flat = flat * m.nw + np.ravel_multi_index((x, a, h), (m.nx, m.na, m.nh))
        return flat * m.ny + y

    TV = np.empty(N)
    P_pi, c_pi = np.zeros((N, N)), np.empty(N)
    for ws in joint_states:
        for y in range(m.ny):
            base = m.P.w1 * y * m.unit + sum(m.P.w3 * x * m.unit for x, _, _ in ws)
            best, best_row, best_cost = np.inf, None, None
            for cs in itertools.product(range(m.nc), repeat=K):
                e = sum(m.wd_energy_cost[k][ws[k][0], ws[k][2], cs[k]] for k in range(K))
                post = [min(x - m.served[x, c] + a * per, m.nx - 1) for (x, a, _), c in zip(ws, cs, strict=True)]
                off = sum(m.off[x, c] for (x, _, _), c in zip(ws, cs, strict=True))
                for s in range(y + 1):
                    y2 = min(y - s + off, m.ny - 1)
                    row = np.zeros(N)
                    for outs in itertools.product(outcome_p, repeat=K):
                        prob = np.prod([outcome_p[o] for o in outs])
                        row[index([(x2, a2, h2) for x2, (a2, h2) in zip(post, outs, strict=True)], y2)] += prob
                    total = base + e + m.server_energy_cost[s] + gamma * row @ V
                    if total < best - 1e-12:
                        best, best_row, best_cost = total, row, base + e + m.server_energy_cost[s]
            i = index(ws, y)
            TV[i], P_pi[i], c_pi[i] = best, best_row, best_cost
    return TV, P_pi, c_pi


@pytest.mark.parametrize("K", [1, 2])
def test_value_iteration_is_bellman_optimal_and_its_policy_attains_it(K):
    P = make_params("default", {"K": K, "arrival_prob": 0.4, "gamma": 0.9, "n_slots": 3 - K, "tau": 0.5 / (3 - K)})
    m = optimum.Model(P, TINY, np.array([50.0, 5.0])[:K], optimum.arrival_pmf(P))
    sol = optimum.solve(m, P.gamma)
    V = sol.V.reshape(-1)
    TV, P_pi, c_pi = _explicit(m, P.gamma, V)
    np.testing.assert_allclose(TV, V, rtol=0, atol=1e-7)  # V = T V: Bellman optimality (12)
    V_pi = np.linalg.solve(np.eye(len(V)) - P.gamma * P_pi, c_pi)  # the greedy policy, evaluated exactly
    np.testing.assert_allclose(V_pi, V, rtol=0, atol=1e-6)
    # the policy the solver returns (what the simulator runs), evaluated exactly, attains V too
    P_sol, c_sol = _solution_policy(m, sol)
    V_sol = np.linalg.solve(np.eye(len(V)) - P.gamma * P_sol, c_sol)
    np.testing.assert_allclose(V_sol, V, rtol=0, atol=1e-6)
    # and start_value is the expectation of V over the first block's arrivals and channels
    w = {(a, h): m.arrival_pmf[a] / m.nh for a in range(m.na) for h in range(m.nh)}
    want = sum(
        np.prod([w[o] for o in outs]) * V[_index(m, [(0, a, h) for a, h in outs], 0)]
        for outs in itertools.product(w, repeat=K)
    )
    assert sol.start_value() == pytest.approx(want, rel=1e-12)


def _index(m: optimum.Model, ws, y: int) -> int:
    flat = 0
    for x, a, h in ws:
        flat = flat * m.nw + int(np.ravel_multi_index((x, a, h), (m.nx, m.na, m.nh)))
    return flat * m.ny + y


def _solution_policy(m: optimum.Model, sol: optimum.Solution):
    """Transition matrix and cost of the solver's own arrays (wd_action, server_action), by loops."""
    K, per = m.K, m.grid.per_task
    wd_states = list(itertools.product(range(m.nx), range(m.na), range(m.nh)))
    outcome_p = {(a, h): m.arrival_pmf[a] / m.nh for a in range(m.na) for h in range(m.nh)}
    N = len(wd_states) ** K * m.ny
    P_pi, c_pi = np.zeros((N, N)), np.empty(N)
    for ws in itertools.product(wd_states, repeat=K):
        for y in range(m.ny):
            i = _index(m, ws, y)
            cs = np.unravel_index(int(sol.wd_action.reshape(-1, m.ny)[i // m.ny, y]), (m.nc,) * K)
            post = [min(x - m.served[x, c] + a * per, m.nx - 1) for (x, a, _), c in zip(ws, cs, strict=True)]
            off = sum(int(m.off[x, c]) for (x, _, _), c in zip(ws, cs, strict=True))
            xp = int(np.ravel_multi_index(tuple(post), (m.nx,) * K))
            s_units = int(sol.server_action[xp, off, y])
            assert 0 <= s_units <= y
            c_pi[i] = (
                m.P.w1 * y * m.unit
                + sum(m.P.w3 * x * m.unit + m.wd_energy_cost[k][x, h, cs[k]] for k, (x, _, h) in enumerate(ws))
                + m.server_energy_cost[s_units]
            )
            y2 = min(y - s_units + off, m.ny - 1)
            for outs in itertools.product(outcome_p, repeat=K):
                prob = np.prod([outcome_p[o] for o in outs])
                P_pi[i, _index(m, [(x2, a2, h2) for x2, (a2, h2) in zip(post, outs, strict=True)], y2)] += prob
    return P_pi, c_pi


@pytest.mark.parametrize("K", [1, 2])
def test_the_model_is_the_simulator_on_its_grid(K):
    """From grid states at the bins' median gains, one MECEnv.step with the optimal policy's action
    gives exactly the model's next queues and cost (8): the discretised model is the simulator's."""
    from mecmodel.policies.base import PolicyContext

    P = make_params("default", {"K": K, "n_slots": 3, "tau": 0.1})
    env = MECEnv(P, [7])
    env.reset()
    grid = optimum.Grid.for_K(K)
    shared = optimum._Shared(PolicyContext(P, (7,), env), grid, True)
    m = shared.solutions[0].model
    rng = np.random.default_rng(K)
    checked = 0
    for _ in range(150):
        x = rng.integers(0, m.nx - 1, K)
        a = rng.integers(0, m.na, K)
        hb = rng.integers(0, m.nh, K)
        y = int(rng.integers(0, m.ny - 1))
        h = m.mean_gain * m.fade[hb]
        beta = (np.arange(P.n_slots)[None, :] < a[:, None]).astype(float)
        obs = Observation(0, (x * m.unit)[None], h[None], beta[None], np.array([y * m.unit]))
        shared.t = -1
        joint = shared(obs)
        env.obs = obs
        nxt, costs, info = env.step(Action(joint[:, :K], joint[:, K:]))
        c, left = shared.choices[0]
        # at the bin's median gain the choice is the solution's own (or one of equal value)
        sol = shared.solutions[0]
        w = np.ravel_multi_index((x, a, hb), (m.nx, m.na, m.nh))
        table = np.unravel_index(int(sol.wd_action[int(np.ravel_multi_index(tuple(w), (m.nw,) * K)), y]), (m.nc,) * K)
        (q_chosen, xp), (q_table, _) = (_q_value(sol, x, a, hb, y, np.asarray(cs)) for cs in (c, table))
        assert q_chosen == pytest.approx(q_table, rel=1e-12, abs=1e-12)
        assert y - left == sol.server_action[xp, int(m.off[x, c].sum()), y]
        # the model's transition (1), (6) ...
        raw = x - m.served[x, c] + a * m.grid.per_task
        if np.any(raw > m.nx - 1) or left + m.off[x, c].sum() > m.ny - 1:
            continue  # the model truncates at its top level (work dropped); the simulator does not
        want_q = raw
        np.testing.assert_allclose(nxt.q[0], want_q * m.unit, rtol=0, atol=1e-3)
        np.testing.assert_allclose(info.service.offload[0], m.off[x, c] * m.unit, rtol=0, atol=1e-3)
        np.testing.assert_allclose(nxt.q_ser[0], (left + m.off[x, c].sum()) * m.unit, rtol=0, atol=1e-3)
        # ... and its cost (8), the WDs' energy at the bin's gain included
        e_wd = sum(m.wd_energy_cost[k][x[k], hb[k], c[k]] for k in range(K))
        cost = P.w1 * y * m.unit + m.server_energy_cost[y - left] + P.w3 * x.sum() * m.unit + e_wd
        assert costs.total[0] == pytest.approx(cost, rel=1e-9)
        checked += 1
    assert checked >= 100


def _q_value(sol: optimum.Solution, x, a, hb, y: int, cs: np.ndarray) -> tuple[float, int]:
    """The Bellman step's value of WD capacities cs in a grid state, and the post-decision index."""
    m = sol.model
    post = np.minimum(x - m.served[x, cs] + a * m.grid.per_task, m.nx - 1)
    xp = int(np.ravel_multi_index(tuple(post), (m.nx,) * m.K))
    e = sum(m.wd_energy_cost[k][x[k], hb[k], cs[k]] for k in range(m.K))
    return e + sol.G[xp, int(m.off[x, cs].sum()), y], xp


@pytest.mark.parametrize("K", [1, 2])
def test_without_server_costs_the_decomposition_is_optimal(K):
    """With w1 = w2 = 0 the server's cost vanishes and (9) separates into the WDs' sub-problems:
    Theorem 1 holds, so the decomposition (which solves each WD alone) equals the joint optimum."""
    P = make_params("default", {"K": K, "n_slots": 2, "tau": 0.25, "w1": 0.0, "w2": 0.0})
    grid = optimum.Grid(per_task=2, wd_tasks=3, server_tasks=3, channel_levels=2, tol=1e-9)
    m = optimum.Model(P, grid, np.array([80.0, 20.0])[:K], optimum.arrival_pmf(P))
    np.testing.assert_allclose(optimum.decomposed(m, P.gamma).V, optimum.solve(m, P.gamma).V, rtol=0, atol=1e-7)


@pytest.mark.parametrize("K", [1, 2])
def test_joint_optimum_is_no_worse_than_the_decomposition(K):
    P = make_params("default", {"K": K, "n_slots": 2, "tau": 0.25})
    grid = optimum.Grid(per_task=2, wd_tasks=3, server_tasks=3, channel_levels=2, tol=1e-7)
    m = optimum.Model(P, grid, np.array([80.0, 20.0])[:K], optimum.arrival_pmf(P))
    joint, dec = optimum.solve(m, P.gamma), optimum.decomposed(m, P.gamma)
    assert np.all(joint.V <= dec.V + 1e-6)
    assert dec.start_value() >= joint.start_value() - 1e-6


def test_optimal_scheme_is_for_small_K_only():
    with pytest.raises(ParamError, match=r"K <= 2.*K = 3"):
        simulate_arrays(make_params("default", {"K": 3}), "optimal", 1, 2)
    exp = {"figure": "cost_vs_K", "K": [1, 20], "arrival_prob": [0.4], "gamma": [0.9], "scheme": ["optimal"]}
    with pytest.raises(ParamError, match=r"experiments.e.scheme: scheme 'optimal' runs for K <= 2 only, got K = 20"):
        sweep.Sweep({"experiments": {"e": exp}})


def test_grid_must_align_with_the_local_work():
    # f_wd_max cannot finish a task's front end: the WD computes n tau f_wd_max = 1.55e8 cycles,
    # not a multiple of the unit W / 4 = 5e7
    P = make_params("default", {"K": 1, "f_wd_max": 3.1e8})
    with pytest.raises(ParamError, match="per_task"):
        optimum.model_for(P, [10.0])


@pytest.mark.parametrize(("scheme", "K"), [("optimal", 1), ("decomposed", 2)])
def test_optimal_policy_in_the_simulator_keeps_the_invariants(scheme, K):
    P = make_params("default", {"K": K})
    out = simulate_arrays(P, scheme, [3], 40, per_device=True)
    work = out["work"]
    np.testing.assert_allclose(work["local"] + work["server"] + work["queued"], work["arrived"], rtol=1e-12, atol=1e-6)
    assert np.all(out["series"]["server_queue"] >= 0)
    assert np.all(np.isfinite(out["discounted_cost"]))


@pytest.mark.slow
def test_simulated_cost_of_the_optimum_matches_its_value():
    """The optimal policy run in the ordinary simulator: its discounted cost (9a), averaged over
    seeds, agrees with value iteration's expected cost from empty queues within the seeds' 99%
    interval (the simulator's channel is continuous, the model's binned: a discretisation error
    would show here)."""
    P = make_params("default", {"K": 1})
    seeds = list(range(24))
    out = simulate_arrays(P, "optimal", seeds, 150)
    gains = MECEnv(P, seeds).mean_gain
    vi = np.array([optimum.solve(optimum.model_for(P, gains[s]), P.gamma).start_value() for s in range(len(seeds))])
    diff = out["discounted_cost"] - vi
    half = 2.81 * diff.std(ddof=1) / np.sqrt(len(diff))
    assert abs(diff.mean()) <= half


def test_leaving_the_solver_grid_is_reported(caplog):
    """A far WD (it cannot offload) at lambda = 0.6 gets 3 tasks per block against the 2 it computes:
    its queue grows past the solver's top level, and the run says so."""
    P = make_params("default", {"K": 1, "arrival_prob": 0.6, "pathloss_a": 120.0})
    with caplog.at_level("WARNING", logger="mecmodel"):
        simulate_arrays(P, "optimal", [0], 200)
    assert "left the queue grid of the exact solver" in caplog.text
