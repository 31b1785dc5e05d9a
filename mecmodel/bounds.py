"""A Lagrangian lower bound on the cost (9a) of every policy, at any K, and the policy it yields.

The WDs are coupled only through the server (docs/model.md, note N). Split the server queue into
one virtual queue per WD (the queue charge w1 q^ser of (8) is linear, so it splits exactly) and
bound the server's energy (7) below by a tangent: for the work s served in a block, equal slot
rates cost least, w2 E(s) = w2 xi^ser s^3 / (n tau)^2, and with the capacity s <= S_max =
n tau f^ser_max folded into it as an indicator, for every price mu >= 0

    w2 E(s) >= mu s - phi*(mu),   phi*(mu) = max_{0 <= s <= S_max} (mu s - w2 E(s))   (conjugate).

The problem then separates into K single-WD problems. In each, a cycle offloaded in block t joins
its virtual queue at t + 1 (6), is charged w1 every block it waits and mu when served, so it is
served at once or never: its price is pi(mu) = min(gamma (w1 + mu), gamma w1 / (1 - gamma)), and
the virtual queue leaves the state. WD k's problem has the state (q_k, arrivals, h_k) and the cost
w3 q_k + w4 E_k + pi(mu) O_k, and

    LB(mu) = sum_k V_k(mu) - phi*(mu) / (1 - gamma)

is below the expected discounted cost from empty queues of every policy (concave in mu: a
minimum of affine functions plus a concave term), so ``lower_bound`` maximises it over mu.

*A bound, not an estimate*: every discretisation errs towards a lower value.

* The WD's action is the back-end capacity R in cycles, continuous in [0, W] (the simulator's
  capacity is an integer number of cycles: a subset). Under the local-service rules ``mod_w`` and
  ``single`` (note B) the cycles a block removes from the queue take finitely many values, one per
  interval of R (``segments``), so the queue stays on a grid of ``unit`` cycles exactly; within
  an interval the block's cost is convex in R and its minimum is bracketed by bisection and
  taken at its lower tangent bound.
* The fading gain mean_gain x Exp(1) is cut into bins, each priced at its *upper* edge (the
  block's cost falls as the gain rises, and its feasible capacities grow); the top bin is
  [edge, infinity): offloading costs no power there.
* Queues above the grid's top continue with a valid lower bound of their value, the queue charge
  alone with the most a block can remove: sum_t gamma^t w3 max(q - t s_max, 0).
* Value iteration starts below the optimum (zero, or a solution at a lower price or a higher gain,
  which are lower values) and the Bellman operator is monotone, so every iterate is below it.
* A WD's gain is rounded *up* to a grid of gains shared by a point's seeds (values fall with the
  gain); mu runs over a grid: any mu gives a bound, the grid's best is quoted.

The bound is on the infinite-horizon (9a); a run of T blocks misses the tail gamma^T (...), below
1e-8 of the cost at the lengths the sweeps run (docs/model.md, note N).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence

import numba
import numpy as np

from . import engine, queues
from .env import MECEnv, Observation
from .optimum import arrival_pmf
from .params import ParamError, Params
from .policies.base import PolicyContext, WDPolicy
from .subproblem import CONST, LINEAR, STUCK, block_cost, gain, segment_min

log = logging.getLogger("mecmodel")


@dataclasses.dataclass(frozen=True)
class BoundGrid:
    """The bound's discretisation: the finer, the tighter (never invalid)."""

    wd_tasks: int = 40  # top WD queue level, tasks, plus what an overloaded queue grows within the horizon
    max_levels: int = 401  # at most this many queue levels (a fine unit lowers the top)
    fading_bins: int = 24
    gains_per_decade: int = 12  # lattice 10^(i / gains_per_decade) a WD's mean gain is rounded up to
    mu_points: int = 16  # prices below mu_sat, log-spaced, and 0
    mu_span: float = 1e-5  # the smallest positive price, as a fraction of mu_sat
    tol: float = 1e-6  # value iteration's stop: sup-norm step, relative to the value
    max_iter: int = 20000


def _unit(P: Params, exact: bool = True) -> tuple[float, float]:
    """(queue unit in cycles, local_max): the grid every post-decision queue stays on; ``exact=False``
    (the policy) settles for a grid the queues round to when no unit divides both W and local_max."""
    W = P.task_cycles
    local_max = math.floor(P.n_slots * P.tau * P.f_wd_max)
    if exact and P.local_service not in ("mod_w", "single"):
        raise ParamError(
            f"local_service: the lower bound is derived for 'mod_w' and 'single' (the work a block removes takes "
            f"finitely many values), got {P.local_service!r}"
        )
    if local_max >= W:
        return W, float(local_max)  # a stuck WD computes its head task's rest: whole tasks only
    for per_task in range(1, 1001):
        u = W / per_task
        if abs(local_max / u - round(local_max / u)) < 1e-9 * (local_max / u):
            return u, float(local_max)
    if exact:
        raise ParamError(f"f_wd_max: n tau f_wd_max = {local_max:g} cycles has no common unit with W = {W:g}")
    return W / min(1000, max(1, round(W / max(local_max, 1.0)))), float(local_max)


@dataclasses.dataclass
class WDProblem:
    """A WD's problem without its gain and price: queue grid, arrivals, fading bins, segments."""

    P: Params
    grid: BoundGrid
    exact: bool = True  # False: queues rounded onto the grid (the policy's use, not the bound's)

    def __post_init__(self) -> None:
        P, g = self.P, self.grid
        W = P.task_cycles
        self.unit, self.local_max = _unit(P, self.exact)
        self.per_task = int(round(W / self.unit))
        # An overloaded queue grows by lambda n - n tau f^wd_max / W tasks a block at least; the grid
        # reaches as far as it grows while gamma^t > 1e-3, so the tails below barely matter.
        growth = max(P.arrival_prob * P.n_slots - self.local_max / W, 0.0)
        tasks = g.wd_tasks + math.ceil(growth * math.log(1e-3) / math.log(P.gamma))
        self.nx = min(tasks * self.per_task, max(2, (g.max_levels - 1) // self.per_task) * self.per_task) + 1
        n = P.n_slots
        self.na = n + 1
        self.pa = arrival_pmf(P)
        # Fading bins of Exp(1): equiprobable, the top one split further (it is priced at infinity).
        nb = g.fading_bins
        probs = np.r_[np.full(nb - 4, 1.0 / (nb - 3)), np.array([0.5, 0.25, 0.125, 0.125]) / (nb - 3)]
        cum = np.cumsum(probs)[:-1]
        self.fade_lo = np.r_[0.0, -np.log1p(-cum)]
        self.fade_hi = np.r_[-np.log1p(-cum), np.inf]
        self.ph = probs
        self.nh = nb
        self.s_max_wd = self.local_max + W  # the most a block removes from a WD queue
        with np.errstate(all="ignore"):
            c = self.consts()
        if not (np.all(np.isfinite(c)) and np.all(c[1:5] > 0)):
            raise ParamError(
                "bound: tau, bandwidth or xi_wd put the block cost beyond floating point (xi_wd / (n tau)^2, "
                "zeta / (tau B) must be finite numbers > 0)"
            )
        self._segments()
        # Extended post-decision values: indices above the top continue with the queue-only bound.
        top = self.nx + n * self.per_task
        X = np.arange(top) * self.unit
        t = np.arange(0, 100000)
        weight = P.gamma**t * P.w3
        # q_t >= q - t s_max + arrivals, and E max(., 0) >= max(E ., 0) (Jensen)
        drift = P.arrival_prob * n * W - self.s_max_wd
        self.tail = np.zeros(top)
        for i in range(self.nx, top):
            self.tail[i] = np.sum(weight * np.maximum(X[i] + t * drift, 0.0))

    def _segments(self) -> None:
        """Per queue level, the intervals of R on which the block's outcome is one formula.

        Each interval [lo, hi) holds its left end (the partition at a break point is the next
        task's); the last one ends at W, which it holds unless the outcome at R = W itself differs
        (a break point at W: offloading a whole task lets the CPU reach one task further), and then
        R = W is a point segment of its own. ``seg_top`` is the largest integer capacity of each."""
        P, W, u = self.P, self.P.task_cycles, self.unit

        def outcome(x: float, R: float) -> tuple[int, float, float, float, int]:
            svc = queues.wd_service(np.array(x), np.array(R), W, self.local_max, P.local_service)
            local, off, stuck = float(svc.local), float(svc.offload), bool(svc.stuck)
            post = (x - local - off) / u
            if self.exact and abs(post - round(post)) > 1e-6:
                raise ParamError("bound: a post-decision queue left the unit grid (an internal error)")
            kind = STUCK if stuck else (LINEAR if off == math.floor(R) else CONST)
            post = min(max(int(round(post)), 0), self.nx - 1)
            return kind, (local + off if kind == LINEAR else local), off, local, post

        rows = []
        for xi in range(self.nx):
            x = xi * u
            if xi == 0:
                rows.append([(0.0, W, STUCK, 0.0, 0.0, 0, W)])
                continue
            head = float(queues.head_remaining(np.array(x), W))
            behind = math.ceil(x / W) - 1
            pts = {0.0, W, head, head - self.local_max}
            pts |= {j * W + head - self.local_max for j in range(1, behind + 2)}
            pts = sorted(p for p in pts if 0.0 <= p <= W)
            segs = []
            for lo, hi in zip(pts[:-1], pts[1:], strict=True):
                if hi - lo < 2.0:  # an interval's inside must hold an integer capacity to classify it
                    if self.exact:
                        raise ParamError(
                            f"bound: W = {W:g} cycles is too small for the queue grid (intervals below 2 cycles)"
                        )
                    continue
                kind, a, off, _, post = outcome(x, math.floor(0.5 * (lo + hi)))
                segs.append([lo, hi, kind, a, off, post, hi - 1.0])
            segs[-1][6] = W
            kind, a, off, local, post = outcome(x, W)
            lo, _, k0, a0, off0, post0, _ = segs[-1]
            local0 = a0 - W if k0 == LINEAR else a0
            off0 = W if k0 == LINEAR else off0
            if (kind, post) != (k0, post0) or abs(local - local0) > 0.5 or abs(off - off0) > 0.5:
                segs[-1][6] = W - 1.0
                segs.append([W, W, kind, a, off, post, W])
            rows.append([tuple(sg) for sg in segs])
        self.nseg = max(len(r) for r in rows)
        shape = (self.nx, self.nseg)
        self.seg_lo, self.seg_hi, self.seg_top = np.full(shape, np.inf), np.full(shape, np.inf), np.full(shape, -1.0)
        self.seg_kind, self.seg_post = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        self.seg_a, self.seg_off = np.zeros(shape), np.zeros(shape)  # a: served (LINEAR) or local (else)
        for xi, segs in enumerate(rows):
            for j, (lo, hi, kind, a, off, post, top) in enumerate(segs):
                self.seg_lo[xi, j], self.seg_hi[xi, j], self.seg_kind[xi, j] = lo, hi, kind
                self.seg_a[xi, j], self.seg_off[xi, j], self.seg_post[xi, j] = a, off, post
                self.seg_top[xi, j] = top

    def consts(self, cubic: float = 0.0) -> np.ndarray:
        """The block cost's constants; ``cubic`` charges c O^3 for the O cycles offloaded."""
        P = self.P
        nt = np.float64(P.n_slots * P.tau)  # numpy: an extreme slot gives inf, not ZeroDivisionError
        return np.array(
            [P.w4, P.xi_wd / nt**2, P.tau, P.snr_gap, P.zeta / (np.float64(P.tau) * P.bandwidth), P.p_max, cubic]
        )

    def energies(self, gains: np.ndarray, price: float, optimistic: bool = True, cubic: float = 0.0) -> np.ndarray:
        """(G, nx, nh, nseg): each segment's block cost w4 E + price O (+ cubic O^3): at each bin's upper
        gain, below the least over capacities (``optimistic``), or at its lower gain, the least over
        the integer capacities that gain carries (a policy's cost); inf where infeasible."""
        fade = self.fade_hi if optimistic else self.fade_lo
        h = np.asarray(gains, dtype=float)[:, None] * fade[None, :]
        c = self.consts(cubic)
        out, _ = _segment_costs(
            h, price, self.seg_lo, self.seg_hi, self.seg_top, self.seg_kind, self.seg_a, self.seg_off, c, optimistic
        )
        return out

    def tail_above(self) -> np.ndarray:
        """What a queue above the top costs at most: the WD computes locally from then on, which
        removes at least min(q, s) cycles a block (s = n tau f^wd_max - W under mod_w: every task
        before the partitioned one is finished; 0 under single), so q_t <= max(q - t s, 0) + the
        arrivals since, and its post-decision value is at most
        sum_t gamma^t (w3 (max(q - t s, 0) + t lambda n W) + w4 E^wd_max) (an upper bound)."""
        P = self.P
        g, W = P.gamma, P.task_cycles
        s = max(self.local_max - W, 0.0) if P.local_service == "mod_w" else 0.0
        X = np.arange(len(self.tail)) * self.unit
        e_max = P.w4 * P.xi_wd * self.local_max**3 / (P.n_slots * P.tau) ** 2
        t = np.arange(int(np.ceil(np.log(1e-17) / np.log(g))) + 1)
        disc = g**t
        rest = disc[-1] * g / (1 - g)  # the horizon's remainder, charged at its end's level and growth
        out = np.empty(len(X))
        for i, x in enumerate(X):
            q = np.maximum(x - t * s, 0.0) + t * P.arrival_prob * P.n_slots * W
            out[i] = np.sum(disc * P.w3 * q) + rest * P.w3 * (q[-1] + P.arrival_prob * P.n_slots * W / (1 - g))
        return out + e_max / (1 - g)

    def solve(
        self, e: np.ndarray, J0: np.ndarray | None = None, tail: np.ndarray | None = None, lower: bool = True
    ) -> tuple[np.ndarray, int]:
        """Value iteration on the post-decision values J (G, nx), from ``J0`` (below the optimum when
        ``lower``, above it otherwise) or 0, the queues above the top continuing with ``tail``."""
        P, g = self.P, self.grid
        G = e.shape[0]
        J = np.zeros((G, self.nx)) if J0 is None else np.array(J0, dtype=float)
        qcost = P.w3 * np.arange(self.nx) * self.unit
        tail = self.tail if tail is None else tail
        return _value_iteration(
            e, self.seg_post, self.pa, self.ph, qcost, P.gamma, self.per_task, tail, J, g.tol, g.max_iter, lower
        )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _segment_costs(h, price, lo, hi, seg_top, kind, a, off, c, lower):  # fmt: skip
    """Per gain h (G, nh) and segment: the least cost over R in [lo, min(hi, R_cap(h))] and its R.
    ``lower``: return a value below the minimum (the bisection's tangent bound), else the value
    at the returned R (a policy's cost)."""
    G, nh = h.shape
    nx, ns = lo.shape
    out = np.full((G, nx, nh, ns), np.inf)
    arg = np.zeros((G, nx, nh, ns))
    for gi in range(G):
        for j in range(nh):
            hinv, cap = gain(h[gi, j], c)
            for x in range(nx):
                for s in range(ns):
                    if lo[x, s] <= cap:
                        below, at, arg[gi, x, j, s] = segment_min(
                            lo[x, s], hi[x, s], kind[x, s], a[x, s], off[x, s], hinv, cap, c, price
                        )
                        out[gi, x, j, s] = below if lower else at
                if not lower:  # a policy's cost: the best integer capacity (the segment's right end is the next's)
                    for s in range(ns):
                        if kind[x, s] != LINEAR or not math.isfinite(out[gi, x, j, s]):
                            continue
                        top = math.floor(min(seg_top[x, s], cap))
                        low = math.ceil(lo[x, s])
                        best = math.inf
                        for cand in (math.floor(arg[gi, x, j, s]), math.ceil(arg[gi, x, j, s])):
                            rc = min(max(cand, low), top)
                            if low <= top:
                                fc, _ = block_cost(rc, LINEAR, a[x, s], off[x, s], hinv, c, price)
                                if fc < best:
                                    best, arg[gi, x, j, s] = fc, rc
                        out[gi, x, j, s] = best
    return out, arg


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _value_iteration(e, post, pa, ph, qcost, gamma, per_task, tail, J, tol, max_iter, lower):  # fmt: skip
    """J(x) = sum_{a,h} pa ph [w3 x + min_seg (e(x,h,seg) + gamma J(post(x,seg) + a))], per gain, in
    place (Gauss-Seidel: monotone, so iterates from a lower start stay below the fixed point).
    Gains are ascending; with ``lower`` each starts from the larger of its own start and the
    solution at the next higher gain (a lower value: offloading only gets cheaper); else from its
    own start (above the fixed point, so the iterates fall towards it). Returns (J (G, nx), most
    iterations)."""
    G, nx, nh, ns = e.shape
    na = pa.shape[0]
    top = tail.shape[0]
    Jx = np.empty(top)
    et = np.empty((nx, ns, nh))
    best = np.empty(nh)
    most = 0
    for i in range(nx, top):
        Jx[i] = tail[i]
    for gi in range(G - 1, -1, -1):
        for x in range(nx):
            Jx[x] = max(J[gi, x], J[gi + 1, x]) if lower and gi + 1 < G else J[gi, x]
            # bins innermost: each bin's minimum over the segments, in the segments' order, runs in
            # its own SIMD lane (no reduction across lanes: the same values as one bin at a time)
            for s in range(ns):
                for j in range(nh):
                    et[x, s, j] = e[gi, x, j, s]
        it = 0
        while it < max_iter:
            it += 1
            step = 0.0
            scale = 0.0
            for x in range(nx):
                acc = 0.0
                for a in range(na):
                    for j in range(nh):
                        best[j] = math.inf
                    for s in range(ns):
                        cont = gamma * Jx[post[x, s] + a * per_task]
                        for j in range(nh):
                            v = et[x, s, j] + cont
                            best[j] = v if v < best[j] else best[j]
                    inner = 0.0
                    for j in range(nh):
                        inner += ph[j] * best[j]
                    acc += pa[a] * inner
                v = qcost[x] + acc
                step = max(step, abs(v - Jx[x]))
                scale = max(scale, abs(v))
                Jx[x] = v
            if step <= tol * (1.0 + scale):
                break
        most = max(most, it)
        for x in range(nx):
            J[gi, x] = Jx[x]
    return J, most


def price(P: Params, mu: np.ndarray | float) -> np.ndarray:
    """pi(mu): what a cycle offloaded this block costs its virtual queue, served at once or never."""
    return np.minimum(P.gamma * (P.w1 + np.asarray(mu, dtype=float)), P.gamma * P.w1 / (1.0 - P.gamma))


def mu_saturation(P: Params) -> float:
    """Above gamma w1 / (1 - gamma) a virtual queue never serves: the price, so V_k, stops rising."""
    return P.gamma * P.w1 / (1.0 - P.gamma)


def server_conjugate(P: Params, mu: np.ndarray | float) -> np.ndarray:
    """phi*(mu) = max_{0 <= s <= S_max} mu s - w2 xi s^3 / (n tau)^2 (equal rates: (7) at its least)."""
    mu = np.asarray(mu, dtype=float)
    S_max = P.n_slots * P.tau * P.f_ser_max
    a = P.w2 * P.xi_ser / (P.n_slots * P.tau) ** 2
    s = np.minimum(S_max, np.sqrt(mu / (3.0 * a))) if a > 0 else np.full_like(mu, S_max)
    return mu * s - a * s**3


@dataclasses.dataclass
class Table:
    """V_k(mu, g): a WD's optimal value from an empty queue, on a grid of prices and mean gains."""

    problem: WDProblem
    mus: np.ndarray  # (M,) ascending, from 0
    gains: np.ndarray  # (G,) ascending
    V: np.ndarray  # (M, G)
    J: np.ndarray  # (M, G, nx) post-decision values (for the policy)
    seconds: float
    iterations: int


def gain_exponents(mean_gain: np.ndarray, per_decade: int) -> np.ndarray:
    """Each gain rounded *up* onto the lattice 10^(i / per_decade): the integers i (values fall with
    the gain, so the rounded gain's value is below the WD's own)."""
    g = np.asarray(mean_gain, dtype=float)
    if not np.all(np.isfinite(g) & (g > 0)):
        raise ParamError("bound: every mean gain must be a finite number > 0")
    i = np.ceil(np.log10(g) * per_decade).astype(np.int64)
    i += 10.0 ** (i / per_decade) < g  # floating point: never below the gain
    return i


def tabulate(P: Params, gains: np.ndarray, grid: BoundGrid | None = None, exact: bool = True) -> Table:
    """V_k(mu, g) over ``gains`` (ascending) and the price grid, each solve started from a lower one."""
    grid = grid or BoundGrid()
    t0 = time.perf_counter()
    prob = WDProblem(P, grid, exact)
    sat = mu_saturation(P)
    mus = np.r_[0.0, sat * np.geomspace(grid.mu_span, 1.0, grid.mu_points)]
    gains = np.asarray(gains, dtype=float)
    J = np.zeros((len(mus), len(gains), prob.nx))
    most = 0
    for i, mu in enumerate(mus):
        e = prob.energies(gains, float(price(P, mu)))
        # V rises with the price: the previous price's values start below this one's
        J[i], it = prob.solve(e, J[i - 1] if i else None)
        most = max(most, it)
    V = J[:, :, 0]
    return Table(prob, mus, gains, V, J, time.perf_counter() - t0, most)


@dataclasses.dataclass
class Bound:
    """The Lagrangian lower bound of one point, per seed."""

    lower_bound: np.ndarray  # (S,) cost units
    mu: np.ndarray  # (S,) the best price on the grid, per cycle
    table: Table
    gain_index: np.ndarray  # (S, K) each WD's gain, rounded up onto the table's grid


def evaluate(P: Params, table: Table, gain_index: np.ndarray) -> Bound:
    """LB per seed: max over the table's prices of sum_k V_k(mu) - phi*(mu) / (1 - gamma)."""
    gi = np.atleast_2d(gain_index)
    total = table.V[:, gi].sum(axis=-1)  # (M, S)
    lb = total - server_conjugate(P, table.mus)[:, None] / (1.0 - P.gamma)
    best = np.argmax(lb, axis=0)
    return Bound(lb[best, np.arange(gi.shape[0])], table.mus[best], table, gi)


def _table_key(P: Params) -> str:
    """What a WD's problem depends on: everything but K, the drop and the server's energy (7)."""
    skip = {"K", "f_ser_max", "w2", "xi_ser"}
    return json.dumps({k: v for k, v in P.to_dict().items() if k not in skip}, sort_keys=True)


def lower_bounds(
    points: Sequence[tuple[Params, np.ndarray]], grid: BoundGrid | None = None, exact: bool = True
) -> list[Bound]:
    """The bound of each (parameters, (S, K) mean gains) point; points whose WD problem is the same
    (they differ in K, the drop or the server's energy) share one table over their gains."""
    grid = grid or BoundGrid()
    exps = [gain_exponents(g, grid.gains_per_decade) for _, g in points]
    groups: dict[str, list[int]] = {}
    for i, (P, _) in enumerate(points):
        groups.setdefault(_table_key(P), []).append(i)
    out: list[Bound | None] = [None] * len(points)
    for members in groups.values():
        # only the lattice points some WD rounds up to (ascending): a few for a small K
        used = np.unique(np.concatenate([exps[i].ravel() for i in members]))
        table = tabulate(points[members[0]][0], 10.0 ** (used / grid.gains_per_decade), grid, exact)
        for i in members:
            out[i] = evaluate(points[i][0], table, np.searchsorted(used, exps[i]))
    return out  # type: ignore[return-value]


def lower_bound(P: Params, mean_gain: np.ndarray, grid: BoundGrid | None = None, exact: bool = True) -> Bound:
    """The bound for (S, K) mean gains (one per seed); ``exact=False`` rounds queues onto a grid where
    no unit keeps them on one (a policy's tables, no longer a bound)."""
    return lower_bounds([(P, np.atleast_2d(np.asarray(mean_gain, dtype=float)))], grid, exact)[0]


def upper_bound(P: Params, mean_gain: np.ndarray, grid: BoundGrid | None = None) -> np.ndarray:
    """V_up per seed of (S, K) mean gains: the exact value, on a pessimistic discretisation, of a
    policy the system can run, so above the optimum of (9): each WD acts by the optimal policy of
    its own problem priced at each fading bin's *lower* gain (integer capacities that gain carries),
    its gain rounded *down* onto the lattice, the server clears its queue every block at equal
    rates. The offloads O_k of a block then cost gamma (w1 sum O_k + w2 xi (sum O_k)^3 / (n tau)^2)
    <= gamma sum_k (w1 O_k + K^2 w2 xi O_k^3 / (n tau)^2) (power means), exact at K = 1; a queue above
    the grid's top continues locally at f^wd_max (``WDProblem.tail_above``); value iteration starts
    above the values and falls. Needs K W <= n tau f^ser_max (the server can clear every block)."""
    grid = grid or BoundGrid()
    mean_gain = np.atleast_2d(np.asarray(mean_gain, dtype=float))
    K = mean_gain.shape[1]
    if K * P.task_cycles > P.n_slots * P.tau * P.f_ser_max:
        raise ParamError(f"K: the upper bound needs K W <= n tau f_ser_max (the server clears every block), K = {K}")
    prob = WDProblem(P, grid)
    i = gain_exponents(mean_gain, grid.gains_per_decade)  # rounded up, checked; then down:
    i -= 10.0 ** (i / grid.gains_per_decade) > mean_gain  # a lower gain costs more
    used = np.unique(i)
    gains = 10.0 ** (used / grid.gains_per_decade)
    cubic = P.gamma * P.w2 * P.xi_ser * K**2 / (P.n_slots * P.tau) ** 2
    e = prob.energies(gains, P.gamma * P.w1, optimistic=False, cubic=cubic)
    tail = prob.tail_above()
    J, _ = prob.solve(e, np.broadcast_to(tail[: prob.nx], (len(gains), prob.nx)), tail=tail, lower=False)
    return J[:, 0][np.searchsorted(used, i)].sum(axis=-1)


def point_bound(P: Params, seeds: Sequence[int], grid: BoundGrid | None = None) -> Bound:
    """The bound at a point: the seeds' user drops as the simulator draws them."""
    return lower_bound(P, MECEnv(P, list(seeds)).mean_gain, grid)


# --- the decentralised policy the bound yields ----------------------------------------------------


class LagrangianWD(WDPolicy):
    """Scheme ``lagrangian``: each WD acts by its own sub-problem's optimal policy at the bound's best
    price (note N): its queue, this block's arrivals and its channel gain only, the price of a
    cycle it offloads pi(mu*). The price and each WD's post-decision values J_k are set once, at
    reset, from the drop (a planning step: ``lower_bound``); the block's capacity then minimises
    w4 E_k + pi O_k + gamma J_k(q') at the gain observed, and the power is (4) of it. Where no
    table can be built (parameters beyond its floating point), every WD computes locally, and a
    warning says so."""

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        P = ctx.params
        try:
            b = lower_bound(P, ctx.env.mean_gain)
        except ParamError:  # no exact queue grid (local_service 'head', or no common unit): round onto one
            try:
                b = lower_bound(P, ctx.env.mean_gain, exact=False)
            except ParamError as e:  # parameters beyond the tables' floating point: offload nothing
                log.warning("lagrangian: no sub-problem tables (%s); every WD computes locally", e)
                self.table = None
                return
        t = b.table
        m_idx = np.searchsorted(t.mus, b.mu)
        self.bound = b
        self.price = price(P, b.mu)  # (S,)
        prob = t.problem
        # (S, K, nx + n per_task): each WD's post-decision values, continued above the top
        J = t.J[m_idx[:, None], b.gain_index]
        Jx = np.concatenate([J, np.broadcast_to(prob.tail[prob.nx :], J.shape[:2] + (len(prob.tail) - prob.nx,))], -1)
        # What the engine's kernels read (engine.run_blocks' ``table``; None: no tables), every array
        # C-contiguous so that one compiled variant serves all
        segments = (prob.seg_lo, prob.seg_hi, prob.seg_top, prob.seg_kind, prob.seg_a, prob.seg_off, prob.seg_post)
        self.table = (
            np.ascontiguousarray(self.price, dtype=float),
            np.ascontiguousarray(Jx),
            float(prob.unit),
            int(prob.nx),
            int(prob.per_task),
            float(P.gamma),
            *(np.ascontiguousarray(x) for x in segments),
            np.ascontiguousarray(prob.consts()),
        )

    def act(self, obs: Observation) -> np.ndarray:
        if self.table is None:
            return np.zeros((self.ctx.S, self.ctx.K))
        q, beta, h = (np.ascontiguousarray(x, dtype=float) for x in (obs.q, obs.beta, obs.h))
        return engine.table_powers(q, beta, h, self.table, self.ctx.env.scalars)
