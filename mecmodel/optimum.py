"""The exact optimum of a discretised model for one or two WDs, by value iteration.

Problem (9): minimise E[sum_t gamma^t c(s_t)] with the cost (8), the queue transitions (1) and (6)
and the partition (3)-(4) of note B, over *joint* policies that see the whole state. Discretised:

* queues on a grid of ``unit = W / per_task`` cycles: WD queues up to ``wd_tasks`` tasks, the
  server queue up to ``server_tasks`` tasks; work beyond the top level is dropped (truncation:
  the simulator's queues show whether the optimal policy comes near it; docs/model.md, note J);
* arrivals per block by their binomial law (n slots, probability lambda each); the WD sees this
  block's arrivals before it acts (they join its queue at the end of the block, (1));
* each WD's channel gain on ``channel_levels`` equiprobable bins of the fading law: the gain is
  mean_gain x Exp(1) (note on fading), bin j represented by its median;
* WD actions: the back-end capacity c x unit, c = 0..per_task, i.e. how much of the partitioned
  task's back end the power (4) carries (the power itself follows (4); infeasible above p_max);
  the local work then follows the local-service rule, exactly as in the simulator
  (:func:`mecmodel.queues.wd_service`);
* server actions: s x unit cycles served this block at equal slot rates (the cheapest way,
  convexity of (7)), s <= its queue and <= n tau f_ser_max.

Value iteration on V(x, a, h, y) (WD queues x, arrivals a, channel bins h, server queue y) with
the post-decision value J(x', y') = E_{a', h'} V(x', a', h', y'):

    V = w1 y + sum_k w3 x_k + min_c [ sum_k w4 E_k(x_k, c_k, h_k)
                                      + min_s ( w2 E^ser(s) + gamma J(x', y - s + sum_k O_k) ) ]

stopped when ||V_{i+1} - V_i||_inf <= tol (1 - gamma) / (2 gamma), so the greedy policy's value
is within ``tol`` of the optimum of the discretised model (Puterman, Thm. 6.3.1).

:func:`decomposed` solves Theorem 1's decomposition instead: each WD's own sub-MDP (16) (cost
w3 q_k + w4 E_k, its own state) and the server's best response to those WD policies ((14), with
the joint state), and evaluates the pair on the joint problem: the joint optimum minus it tests
Theorem 1 numerically. :func:`policies` runs a solution in the ordinary
simulator (scheme ``optimal``), one solve per seed (each seed has its own user drop).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence

import numba
import numpy as np

from . import channel, queues
from .env import Observation
from .params import ParamError, Params
from .policies.agent import AgentServer, AgentWD, one_per_run
from .policies.base import PolicyContext, ServerPolicy, WDPolicy

MAX_K = 2
log = logging.getLogger("mecmodel")


@dataclasses.dataclass(frozen=True)
class Grid:
    """The discretisation (defaults: K = 1 fine, K = 2 coarser so that it fits in minutes)."""

    per_task: int = 4  # queue levels per task: unit = W / per_task
    wd_tasks: int = 16  # top WD queue level, tasks
    server_tasks: int = 16  # top server queue level, tasks
    channel_levels: int = 8
    tol: float = 1e-4  # distance of the greedy policy's value to the optimum, cost units
    max_iter: int = 5000

    def stop(self, gamma: float) -> float:
        """Sup-norm step below which the greedy policy is within ``tol`` of the optimum."""
        return self.tol * (1.0 - gamma) / (2.0 * gamma)

    @classmethod
    def for_K(cls, K: int) -> Grid:
        return cls() if K == 1 else cls(per_task=2, wd_tasks=8, server_tasks=12, channel_levels=3)


@dataclasses.dataclass
class Model:
    """The discretised model's arrays for one user drop (K mean gains)."""

    P: Params
    grid: Grid
    mean_gain: np.ndarray  # (K,)
    arrival_pmf: np.ndarray  # (n + 1,) tasks per block

    def __post_init__(self) -> None:
        P, g, K = self.P, self.grid, len(self.mean_gain)
        if not 1 <= K <= MAX_K:
            raise ParamError(f"K: the exact optimum is solved for 1 <= K <= {MAX_K}, got {K}")
        W, n, tau = P.task_cycles, P.n_slots, P.tau
        self.K, self.unit = K, W / g.per_task
        self.nx, self.ny = g.wd_tasks * g.per_task + 1, g.server_tasks * g.per_task + 1
        self.na, self.nh, self.nc = n + 1, g.channel_levels, g.per_task + 1
        local_max = math.floor(n * tau * P.f_wd_max)
        # Channel bins: equiprobable quantiles of Exp(1); bin j's median represents it.
        j = np.arange(self.nh)
        self.edges = -np.log1p(-np.arange(1, self.nh) / self.nh)  # inner bin edges of Exp(1)
        self.fade = -np.log1p(-(j + 0.5) / self.nh)
        # Per WD and local state (x, a, h) and action c: post-decision queue, offload, energy.
        x = np.arange(self.nx)[:, None]
        cap = np.arange(self.nc)[None, :] * self.unit
        svc = queues.wd_service(x * self.unit, cap, W, local_max, P.local_service, False)
        served = (svc.local + svc.offload) / self.unit
        off = svc.offload / self.unit
        if not (np.allclose(served, np.round(served)) and np.allclose(off, np.round(off))):
            raise ParamError(
                f"optimum: the local work n tau f_wd_max = {local_max:g} cycles is not a multiple of the "
                f"queue unit W / per_task = {self.unit:g}; choose per_task so that it is"
            )
        self.served = np.round(served).astype(int)  # (nx, nc)
        self.off = np.round(off).astype(int)  # (nx, nc)
        e_loc = queues.local_energy(svc.local, n, tau, P.xi_wd)  # (nx, nc)
        self.e_loc = e_loc
        self.combos = np.array(list(itertools.product(range(self.nc), repeat=K)), dtype=int)  # joint actions
        h = self.mean_gain[:, None] * self.fade[None, :]  # (K, nh)
        with np.errstate(over="ignore"):
            p = channel.power_for_bits(
                h[:, None, :, None], P.zeta * svc.offload[None, :, None, :], P.bandwidth, P.snr_gap, tau
            )  # (K, nx, nh, nc)
        p = np.where(svc.offload[None, :, None, :] > 0, p, 0.0)
        energy = e_loc[None, :, None, :] + queues.offload_energy(p, tau)
        # A WD's cost of (x, h, c): w4 E, inf where the power (4) would exceed p_max.
        self.wd_energy_cost = np.where(p <= P.p_max, P.w4 * energy, np.inf)  # (K, nx, nh, nc)
        # Server: s units served at equal rates, energy (7) = n tau xi (s unit / (n tau))^3.
        s = np.arange(self.ny)
        self.s_max = min(self.ny - 1, math.floor(n * tau * P.f_ser_max / self.unit))
        self.server_energy_cost = np.where(
            s <= self.s_max,
            P.w2 * queues.server_energy(np.full((1, n), 1.0) * (s[:, None] * self.unit / (n * tau)), tau, P.xi_ser),
            np.inf,
        )

    # --- joint indexing: a WD's local state w = (x, a, h) flattened; K WDs' states in row-major order
    @property
    def nw(self) -> int:
        return self.nx * self.na * self.nh

    def joint(self, wd_policy: np.ndarray | None = None):
        """Arrays over (joint WD state, joint WD action): base queue cost, energy cost, flattened
        post-decision WD queues and total offload. ``wd_policy`` (K, nw) fixes each WD's action."""
        per_wd = []
        for k in range(self.K):  # K <= 2: a loop over at most two devices while building the model
            qcost, ecost, post, off = self.wd_arrays(k)
            if wd_policy is not None:
                c = wd_policy[k][:, None]
                post, ecost, off = (np.take_along_axis(v, c, axis=1) for v in (post, ecost, off))
            per_wd.append((qcost, ecost, post, off))
        qcost, ecost, post, off = per_wd[0]
        for qcost2, ecost2, post2, off2 in per_wd[1:]:
            post = (post[:, None, :, None] * self.nx + post2[None, :, None, :]).reshape(len(post) * len(post2), -1)
            ecost = (ecost[:, None, :, None] + ecost2[None, :, None, :]).reshape(post.shape)
            off = (off[:, None, :, None] + off2[None, :, None, :]).reshape(post.shape)
            qcost = (qcost[:, None] + qcost2[None, :]).reshape(-1)
        return qcost, ecost, post, off

    def wd_arrays(self, k: int):
        """WD k alone over (its local state w = (x, a, h), action c): queue cost w3 q (nw,), energy
        cost w4 E (nw, nc), post-decision queue (nw, nc) and offload (nw, nc), in units."""
        xi, ai, hi = np.unravel_index(np.arange(self.nw), (self.nx, self.na, self.nh))
        post = np.minimum(xi[:, None] - self.served[xi] + ai[:, None] * self.grid.per_task, self.nx - 1)
        return self.P.w3 * xi * self.unit, self.wd_energy_cost[k][xi, hi], post, self.off[xi]

    def expectation_weights(self) -> np.ndarray:
        """(nw,) probability of each WD local state's (a, h) given x (summing to 1 over a, h)."""
        w = self.arrival_pmf[:, None] * np.full(self.nh, 1.0 / self.nh)[None, :]
        return np.broadcast_to(w, (self.nx, self.na, self.nh)).reshape(-1)


def arrival_pmf(P: Params) -> np.ndarray:
    """Binomial(n, lambda): tasks arriving at a WD in one block (Bernoulli per slot)."""
    n, lam = P.n_slots, P.arrival_prob
    return np.array([math.comb(n, a) * lam**a * (1 - lam) ** (n - a) for a in range(n + 1)])


@dataclasses.dataclass
class Solution:
    """A solved model: values, the greedy policy, and how the solve went."""

    model: Model
    V: np.ndarray  # (nw^K, ny) optimal (or evaluated) value of every state, cost units
    wd_action: np.ndarray  # (nw^K, ny) joint WD action index (row-major over WDs)
    server_action: np.ndarray  # (nx^K, max offload + 1, ny) units served given x', offload, y
    iterations: int
    seconds: float
    residual: float
    G: np.ndarray | None = None  # (nx^K, n_off, ny) the post-WD-action value (server step included)
    joint: bool = True  # False: the WDs' actions were fixed (the decomposition)

    @property
    def states(self) -> int:
        return self.V.size

    @property
    def actions(self) -> int:
        m = self.model
        return m.nc**m.K * m.ny

    def start_value(self) -> float:
        """Expected discounted cost (9a) from empty queues, over the first block's arrivals and channel."""
        m = self.model
        w = m.expectation_weights().reshape(m.nx, -1)[0]  # x = 0: weights over (a, h)
        V0 = self.V[:, 0].reshape((m.nx, m.na * m.nh) * m.K)
        idx = (0, slice(None)) * m.K
        block = V0[idx]
        for _ in range(m.K):
            block = np.tensordot(block, w, axes=([0], [0]))
        return float(block)


def _post_value(m: Model, V: np.ndarray) -> np.ndarray:
    """J(x', y') = E_{a, h} V(x', a, h, y'): (nx^K, ny)."""
    w = m.expectation_weights().reshape(m.nx, m.na * m.nh)
    Vr = V.reshape((m.nx, m.na * m.nh) * m.K + (m.ny,))
    if m.K == 1:
        J = np.einsum("xb,xby->xy", w, Vr)
    else:
        J = np.einsum("xb,zc,xbzcy->xzy", w, w, Vr)
    return J.reshape(m.nx**m.K, m.ny)


def _server_step(m: Model, J: np.ndarray, gamma: float, arg: bool = False):
    """G(x', O, y) = min_{s <= y} w2 E^ser(s) + gamma J(x', min(y - s + O, top)), as (nx^K, n_off, ny)
    (with ``arg``, also the minimising s). Written over the queue left, u = y - s, so that the
    minimum is a min-plus convolution of two dense arrays (no gather)."""
    n_off = (m.nc - 1) * m.K + 1
    u = np.arange(m.ny)
    left = gamma * J[:, np.minimum(u[None, :] + np.arange(n_off)[:, None], m.ny - 1)]  # (nx^K, n_off, u)
    y = np.arange(m.ny)[:, None]
    serve = np.where(u[None, :] <= y, m.server_energy_cost[np.maximum(y - u[None, :], 0)], np.inf)  # (y, u)
    cost = left[:, :, None, :] + serve[None, None, :, :]
    if not arg:
        return cost.min(axis=-1)
    best_u = np.argmin(cost, axis=-1)
    return np.take_along_axis(cost, best_u[..., None], axis=-1)[..., 0], np.arange(m.ny) - best_u


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _server_min(J, gamma, serve, n_off):  # fmt: skip
    """:func:`_server_step`'s G without its (nx^K, n_off, ny, ny) temporary: the same sums and minima
    over u = y - s ascending (the queue left; u > y costs inf), so the same bits; ``serve`` (ny,) is
    w2 E^ser(s), inf above the capacity."""
    X, ny = J.shape
    G = np.empty((X, n_off, ny))
    for x in range(X):
        for o in range(n_off):
            g = G[x, o]
            for y in range(ny):
                g[y] = math.inf
            for u in range(ny):
                left = gamma * J[x, min(u + o, ny - 1)]
                for y in range(u, ny):
                    c = left + serve[y - u]
                    if c < g[y]:
                        g[y] = c
    return G


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _wd_min(base, G, ecost, rows):  # fmt: skip
    """base + min over the WD actions (ascending) of :func:`_wd_step`, without its (N, A, ny) temporary."""
    N, A = ecost.shape
    ny = base.shape[1]
    Gf = G.reshape(-1, ny)
    out = np.empty((N, ny))
    best = np.empty(ny)
    for i in range(N):
        for y in range(ny):
            best[y] = math.inf
        for a in range(A):
            e = ecost[i, a]
            row = Gf[rows[i, a]]
            for y in range(ny):
                c = e + row[y]
                if c < best[y]:
                    best[y] = c
        for y in range(ny):
            out[i, y] = base[i, y] + best[y]
    return out


def _wd_step(m: Model, G: np.ndarray, ecost: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Q(state, c) for every server queue y: energy + G(post(c), off(c), y), as (N, A, ny).

    ``rows`` = post * n_off + off indexes G's contiguous rows of ny values (a fast gather)."""
    return ecost[:, :, None] + G.reshape(-1, m.ny)[rows]


def solve(m: Model, gamma: float, wd_policy: np.ndarray | None = None, V0: np.ndarray | None = None) -> Solution:
    """Value iteration; with ``wd_policy`` (K, nw) the WDs' actions are fixed and only the server's optimised."""
    P, g = m.P, m.grid
    t0 = time.perf_counter()
    qcost, ecost, post, off = m.joint(wd_policy)  # (N,), (N, A), (N, A), (N, A)
    y = np.arange(m.ny)
    base = qcost[:, None] + P.w1 * y[None, :] * m.unit  # (N, ny)
    V = np.zeros_like(base) if V0 is None else V0.copy()
    stop = g.stop(gamma)
    residual, it = np.inf, 0
    rows = np.ascontiguousarray(post * ((m.nc - 1) * m.K + 1) + off)
    n_off = (m.nc - 1) * m.K + 1
    ecost_c = np.ascontiguousarray(ecost, dtype=np.float64)
    while it < g.max_iter:
        it += 1
        # _server_step and _wd_step's minimum, compiled (the same bits)
        G = _server_min(np.ascontiguousarray(_post_value(m, V)), float(gamma), m.server_energy_cost, n_off)
        V_new = _wd_min(base, G, ecost_c, rows)
        residual = float(np.max(np.abs(V_new - V)))
        V = V_new
        if not np.isfinite(residual):
            raise ParamError("optimum: a state has no feasible action (every power above p_max)")
        if residual <= stop:
            break
    G, s_best = _server_step(m, _post_value(m, V), gamma, arg=True)
    c_best = np.argmin(_wd_step(m, G, ecost, rows), axis=1)
    if wd_policy is not None:  # the fixed joint action, as an index into the joint action grid
        c_best = np.zeros_like(c_best) + _joint_index(m, wd_policy)[:, None]
    if residual > stop:
        log.warning(
            "optimum: value iteration stopped after %d iterations with residual %.3g above %.3g (gamma %g); "
            "raise Grid.max_iter",
            it,
            residual,
            stop,
            gamma,
        )
    return Solution(m, V, c_best, s_best, it, time.perf_counter() - t0, residual, G, wd_policy is None)


def _joint_index(m: Model, wd_policy: np.ndarray) -> np.ndarray:
    """Joint action index of fixed per-WD actions, over joint WD states (row-major)."""
    idx = wd_policy[0]
    for k in range(1, m.K):
        idx = (idx[:, None] * m.nc + wd_policy[k][None, :]).reshape(-1)
    return idx


def wd_subproblem(m: Model, k: int, gamma: float) -> np.ndarray:
    """WD k's own sub-MDP (16): state (x, a, h), cost w3 q + w4 E; returns its greedy action (nw,)."""
    g = m.grid
    base, ecost, post, _ = m.wd_arrays(k)
    w = m.expectation_weights().reshape(m.nx, -1)
    V = np.zeros(m.nw)
    stop = g.stop(gamma)
    for _ in range(g.max_iter):
        J = np.einsum("xb,xb->x", w, V.reshape(m.nx, -1))
        V_new = base + np.min(ecost + gamma * J[post], axis=-1)
        done = np.max(np.abs(V_new - V)) <= stop
        V = V_new
        if done:
            break
    else:
        log.warning("optimum: WD %d's sub-problem did not converge in %d iterations (gamma %g)", k, g.max_iter, gamma)
    J = np.einsum("xb,xb->x", w, V.reshape(m.nx, -1))
    return np.argmin(ecost + gamma * J[post], axis=-1)


def decomposed(m: Model, gamma: float) -> Solution:
    """Theorem 1's decomposition: each WD solves (16) alone, the server best-responds (14); the
    returned values are the pair's cost on the joint problem (9)."""
    wd = np.stack([wd_subproblem(m, k, gamma) for k in range(m.K)])
    return solve(m, gamma, wd_policy=wd)


def model_for(P: Params, mean_gain: Sequence[float], grid: Grid | None = None) -> Model:
    return Model(P, grid or Grid.for_K(P.K), np.asarray(mean_gain, dtype=float), arrival_pmf(P))


# --- running a solution in the simulator ------------------------------------------------------------


class _Shared:
    """One solve per seed, shared by the scheme's WD and server policies; decides once per block."""

    def __init__(self, ctx: PolicyContext, grid: Grid | None, joint: bool):
        P = ctx.params
        if P.K > MAX_K:
            raise ParamError(f"K: scheme 'optimal' solves the exact problem for K <= {MAX_K}, got K = {P.K}")
        mean_gain = ctx.env.mean_gain  # (S, K): the optimum knows the model, drop included
        self.solutions = []
        for s in range(ctx.S):
            m = model_for(P, mean_gain[s], grid)
            self.solutions.append(solve(m, P.gamma) if joint else decomposed(m, P.gamma))
        self.t = -1
        self.warned: set[int] = set()

    def __call__(self, obs: Observation) -> np.ndarray:
        """The joint action (S, K + n) = [p, f^ser] of this block, decided once per block."""
        if obs.t != self.t:
            self.t = obs.t
            self.action = np.concatenate(self._decide(obs), axis=1)
        return self.action

    def _check_grid(self, m: Model, seed: int, q: np.ndarray, q_ser: float) -> None:
        """Warn once per seed when a queue leaves the solver's grid: from there on the policy acts
        as at the top level, and is no longer the optimum of the model it runs in."""
        if seed not in self.warned and (np.any(q > (m.nx - 1) * m.unit) or q_ser > (m.ny - 1) * m.unit):
            self.warned.add(seed)
            log.warning(
                "optimal: seed index %d left the queue grid of the exact solver (top %g WD tasks, %g server "
                "tasks) at block %d; its policy is not optimal beyond (docs/model.md, note J)",
                seed,
                m.grid.wd_tasks,
                m.grid.server_tasks,
                self.t,
            )

    def _decide(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """Each seed's actions from its solution, at the gains actually observed.

        The model priced each channel bin at its median. At the observed gain the joint policy
        re-chooses the WD capacities by the same Bellman step, min_c sum_k w4 E_k(c_k, h_k) +
        G(post(c), off(c), y), over the capacities that gain can carry below p_max (so no power is
        ever clipped and the offload stays on the grid); ``decomposed`` keeps its WDs' own choice,
        lowered to the largest feasible capacity. The server then leaves the queue (y - s) units
        that its policy chose, so work off the grid is served too. Compiled per seed
        (:func:`_decide_seed`)."""
        ps, fs = [], []
        self.choices = []  # per seed: (WD capacities in units, units the server leaves), for tests
        beta = obs.beta.sum(axis=-1)
        for s, sol in enumerate(self.solutions):
            m = sol.model
            P = m.P
            self._check_grid(m, s, obs.q[s], float(obs.q_ser[s]))
            G = sol.G if sol.joint else np.zeros((1, 1, 1))
            wd_action = np.zeros((1, 1), dtype=np.int64) if sol.joint else sol.wd_action
            p, f, c, left = _decide_seed(
                np.asarray(obs.q[s], dtype=np.float64), np.asarray(beta[s], dtype=np.float64),
                np.asarray(obs.h[s], dtype=np.float64), float(obs.q_ser[s]), m.unit, m.nx, m.na, m.nh, m.nc, m.ny,
                m.grid.per_task, m.served, m.off, m.e_loc, G, sol.server_action, wd_action, m.edges, m.mean_gain,
                sol.joint, P.zeta, P.tau, P.bandwidth, P.snr_gap, P.p_max, P.w4, P.n_slots,
            )  # fmt: skip
            self.choices.append((c, int(left)))
            ps.append(p)
            fs.append(np.full(P.n_slots, f))
        return np.array(ps), np.array(fs)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rint(v: float) -> float:
    """np.rint for a scalar: to the nearest integer, ties to even."""
    r = math.floor(v)
    d = v - r
    if d > 0.5 or (d == 0.5 and r % 2 == 1):
        return r + 1.0
    return r


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _decide_seed(q, arrivals, h, q_ser, unit, nx, na, nh, nc, ny, per_task, served, off, e_loc, G, server_action,
                 wd_action, edges, mean_gain, joint, zeta, tau, bw, gap, p_max, w4, n):  # fmt: skip
    """One seed's block of :meth:`_Shared._decide`: (WD powers (K,), the server's slot rate, the WD
    capacities in units (K,), the units the server leaves)."""
    K = q.shape[0]
    ln2 = math.log(2.0)
    x = np.empty(K, dtype=np.int64)
    a = np.empty(K, dtype=np.int64)
    for k in range(K):
        x[k] = int(min(_rint(q[k] / unit), nx - 1))
        a[k] = int(min(arrivals[k], na - 1))
    y = int(min(_rint(q_ser / unit), ny - 1))
    # (K, nc): the power each capacity needs at the observed gain (4), and the WD's energy cost
    p_cmd = np.empty((K, nc))
    energy = np.empty((K, nc))
    for k in range(K):
        for j in range(nc):
            p_cmd[k, j] = gap / h[k] * math.expm1(zeta * (j * unit + 0.5) / (tau * bw) * ln2)
            o = off[x[k], j] * unit
            p_tx = gap / h[k] * math.expm1(zeta * o / (tau * bw) * ln2) if o > 0.0 else 0.0
            feasible = j == 0 or p_cmd[k, j] <= p_max
            energy[k, j] = w4 * (e_loc[x[k], j] + tau * p_tx) if feasible else math.inf
    c = np.zeros(K, dtype=np.int64)
    if joint:
        best = math.inf
        A = nc**K
        for i in range(A):  # joint capacities, row-major over the WDs
            total = 0.0
            xp = 0
            off_tot = 0
            rest = i
            ck = np.empty(K, dtype=np.int64)
            for k in range(K - 1, -1, -1):
                ck[k] = rest % nc
                rest //= nc
            for k in range(K):
                total += energy[k, ck[k]]
                xp = xp * nx + min(x[k] - served[x[k], ck[k]] + a[k] * per_task, nx - 1)
                off_tot += off[x[k], ck[k]]
            total += G[xp, off_tot, y]
            if total < best:
                best = total
                for k in range(K):
                    c[k] = ck[k]
    else:
        widx = 0
        for k in range(K):
            v = h[k] / mean_gain[k]
            hb = 0
            while hb < edges.shape[0] and edges[hb] < v:  # np.searchsorted, side "left"
                hb += 1
            widx = widx * (nx * na * nh) + (x[k] * na + a[k]) * nh + hb
        rest = wd_action[widx, y]
        for k in range(K - 1, -1, -1):
            c[k] = rest % nc
            rest //= nc
        for k in range(K):  # lowered to the largest capacity the gain carries below p_max
            while c[k] > 0 and not p_cmd[k, c[k]] <= p_max:
                c[k] -= 1
    xp = 0
    off_tot = 0
    for k in range(K):
        xp = xp * nx + min(x[k] - served[x[k], c[k]] + a[k] * per_task, nx - 1)
        off_tot += off[x[k], c[k]]
    left = y - server_action[xp, off_tot, y]  # units the server leaves
    serve = max(q_ser - left * unit, 0.0)
    p = np.empty(K)
    for k in range(K):
        p[k] = p_cmd[k, c[k]] if c[k] > 0 else 0.0
    return p, math.ceil(serve / n) / tau, c, left


def policies(joint: bool = True, grid: Grid | None = None) -> tuple[Callable[[], WDPolicy], Callable[[], ServerPolicy]]:
    """The WD and server policy factories of scheme ``optimal`` (``joint=False``: ``decomposed``):
    the two halves of one per-run :class:`_Shared` (centralised: it knows every queue and channel)."""
    per_run = one_per_run(lambda ctx: _Shared(ctx, grid, joint))
    return (lambda: AgentWD(per_run)), (lambda: AgentServer(per_run))
