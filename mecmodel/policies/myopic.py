"""One-block rules: myopic greedy and Lyapunov drift-plus-penalty (DPP).

Myopic: each agent minimises its own cost term of (8) for this block alone.

No look-ahead and no learning; the simplest sanity reference (issue 10, not the paper's). The
paper's cost (8) charges the queues at the *start* of block t, which no action of block t can
change, so read literally ("start") a myopic WD minimises its energy alone and a myopic server
idles for ever. The default reading ("end") charges the queue the block leaves behind instead,
the post-decision state, which is what a one-step greedy rule trades energy against:

* WD k:  min over p of  w3 (q_k - L_k(p) - O_k(p)) + w4 (E^wd_k(L_k) + E^off_k(O_k)),
  with the partition L, O of (3)-(4) and note B, evaluated for the powers that carry a back end
  of 0, W/32, ..., W cycles and p_max (vectorised over seed, WD and candidate); arrivals are the
  same for every p and left out. The WD does not see the server's backlog, so it never weighs it.
* server: min over f of  w1 (q^ser - sum_i f_i tau) + w2 sum_i tau xi f_i^3.  For a given total
  equal rates are cheapest (convexity), and per slot d/df (-w1 f tau + w2 tau xi f^3) = 0 gives
  f* = sqrt(w1 / (3 w2 xi^ser)); the rule runs every slot at min(f*, f_ser_max, the rate that
  clears q^ser in the block).

Each agent reads only its own state (section IV): the WD its queue and channel, the server its
queue. DPP (``DriftPlusPenaltyWD``, ``DriftPlusPenaltyServer``) weighs V times the
same cost against the drift of the agent's own queue instead. ``docs/model.md`` (note I) has
the derivations.
"""

from __future__ import annotations

import numpy as np

from .. import channel, engine, queues
from ..env import Observation
from .base import PolicyContext, ServerPolicy, WDPolicy
from .rules import equal_rates

READINGS = ("end", "start")


def _check(reading: str) -> str:
    if reading not in READINGS:
        raise ValueError(f"reading: must be one of {', '.join(READINGS)}, got {reading!r}")
    return reading


class MyopicWD(WDPolicy):
    """Every WD picks, from ``grid`` + 1 candidate powers, the one that minimises its own cost of
    this block (see the module docstring for the two readings). The candidates are the powers (4)
    that carry a back end of c = 0, W / (grid - 1), ..., W cycles (half a cycle more, so that the
    floor in (3) keeps c), each capped at p_max, and p_max itself: the service depends on the
    power only through that capacity, and a capacity above W serves no more than W."""

    def __init__(self, reading: str = "end", grid: int = 33):
        self.reading = _check(reading)
        if int(grid) < 2:
            raise ValueError(f"grid: must be an integer >= 2, got {grid!r}")
        self.grid = int(grid)

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        P = ctx.params
        self.back_ends = P.task_cycles * np.arange(1, self.grid) / (self.grid - 1)  # c > 0
        self.local_max = np.floor(P.n_slots * P.tau * P.f_wd_max)
        self._sc = engine.scalars(P, float(self.local_max))  # the parameters as the engine reads them

    def candidates(self, h: np.ndarray) -> np.ndarray:
        """(..., grid + 1) candidate powers of WDs with gains h, ascending: 0, the capped powers of
        the back ends, p_max."""
        P = self.ctx.params
        with np.errstate(over="ignore"):
            p = channel.power_for_bits(h[..., None], P.zeta * (self.back_ends + 0.5), P.bandwidth, P.snr_gap, P.tau)
        zero = np.zeros(h.shape + (1,))
        return np.concatenate([zero, np.minimum(p, P.p_max), zero + P.p_max], axis=-1)

    def service(self, q: np.ndarray, h: np.ndarray, p: np.ndarray) -> tuple[queues.WDService, np.ndarray]:
        """The partition (3)-(4), note B, of WDs with queues q and gains h commanding powers p
        (broadcast), and its energy (2) + (5) in J."""
        P = self.ctx.params
        cap = channel.bits_per_slot(h, p, P.bandwidth, P.snr_gap, P.tau) / P.zeta
        svc = queues.wd_service(q, cap, P.task_cycles, self.local_max, P.local_service, self.whole_task)
        with np.errstate(invalid="ignore", divide="ignore"):
            p_tx = np.where(
                svc.offload > 0,
                channel.power_for_bits(h, P.zeta * svc.offload, P.bandwidth, P.snr_gap, P.tau),
                0.0,
            )
        energy = queues.local_energy(svc.local, P.n_slots, P.tau, P.xi_wd) + queues.offload_energy(p_tx, P.tau)
        return svc, energy

    def block_cost(self, q: np.ndarray, h: np.ndarray, p: np.ndarray) -> np.ndarray:
        """This block's own cost of WDs with queues q and gains h commanding powers p (broadcast)."""
        svc, energy = self.service(q, h, p)
        return self.objective(q, svc.local + svc.offload, energy)

    def objective(self, q: np.ndarray, served: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """What the rule minimises, given the cycles it serves (locally and offloaded) and its energy."""
        P = self.ctx.params
        left = q - served if self.reading == "end" else q
        return P.w3 * left + P.w4 * energy

    #: V of drift-plus-penalty's objective; 0: the myopic own cost
    _V = 0.0

    def act(self, obs: Observation) -> np.ndarray:
        """The candidate of least ``block_cost`` (the lowest power among equal costs), searched
        per WD in the compiled engine (``mecmodel.engine.myopic_power``); a subclass that
        redefines the candidates or the objective is searched over its own, here."""
        own = type(self)
        if (
            own.candidates is not MyopicWD.candidates
            or own.block_cost is not MyopicWD.block_cost
            or (own.objective not in (MyopicWD.objective, DriftPlusPenaltyWD.objective))
        ):
            powers = self.candidates(obs.h)  # (S, K, grid + 1)
            cost = self.block_cost(obs.q[..., None], obs.h[..., None], powers)
            best = np.argmin(cost, axis=-1)[..., None]  # the lowest power among equal costs
            return np.take_along_axis(powers, best, axis=-1)[..., 0]
        P = self.ctx.params
        sc = self._sc
        reading = int(self.reading == "start")
        q, h = np.asarray(obs.q, dtype=float), np.asarray(obs.h, dtype=float)
        rule = engine.RULES[P.local_service]
        return engine.myopic_powers(q, h, sc, rule, P.n_slots, self.grid, self._V, reading, bool(self.whole_task))


class MyopicServer(ServerPolicy):
    """The server's one-block greedy rate (closed form, see the module docstring)."""

    def __init__(self, reading: str = "end"):
        self.reading = _check(reading)

    def best_rate(self) -> float:
        """f* = sqrt(w1 / (3 w2 xi^ser)), or 0 where this block's own cost gains nothing from serving."""
        P = self.ctx.params
        if self.reading == "start" or P.w1 == 0:
            return 0.0
        with np.errstate(divide="ignore", over="ignore"):  # w2 xi may underflow to 0: f* = inf
            return float(np.sqrt(np.float64(P.w1) / (3.0 * P.w2 * P.xi_ser)))

    def act(self, obs: Observation) -> np.ndarray:
        return equal_rates(obs.q_ser, self.best_rate(), self.ctx.params)


class DriftPlusPenaltyWD(MyopicWD):
    """Lyapunov drift-plus-penalty at every WD (Neely; as in LyDROO): per block,

        min_p  V w4 E_k(p) - (q_k / W) (L_k(p) + O_k(p)) / W,

    V times the WD's own cost term of this block (its queue term is fixed) plus the part of the
    drift of L = q_k^2 / (2 W^2) that the action moves (queues in tasks). The same grid search as
    ``MyopicWD``; ``V`` > 0 trades energy (large V) against queue (small V)."""

    def __init__(self, V: float, grid: int = 33):
        if not (V > 0 and np.isfinite(V)):
            raise ValueError(f"V: must be a finite number > 0, got {V!r}")
        super().__init__("end", grid)
        self.V = self._V = float(V)

    def objective(self, q: np.ndarray, served: np.ndarray, energy: np.ndarray) -> np.ndarray:
        P = self.ctx.params
        W = P.task_cycles
        return self.V * P.w4 * energy - (q / W) * (served / W)


class CentralDriftPlusPenaltyWD(DriftPlusPenaltyWD):
    """Drift-plus-penalty in its standard, centralised form (Neely; LyDROO): the drift of every
    queue, the server's included. A WD's offload joins the server queue, so per block

        min_p  V w4 E_k(p) - (q_k / W) (L_k(p) + O_k(p)) / W + (q^ser / W) O_k(p) / W,

    which needs the server queue: ``information = "centralised"`` (the paper's WDs do not see it).
    The same grid search as ``MyopicWD``, in numpy (the compiled search has no server term)."""

    information = "centralised"

    def act(self, obs: Observation) -> np.ndarray:
        self._q_ser = np.asarray(obs.q_ser, dtype=float)[:, None, None]  # (S, 1, 1) against (S, K, grid + 1)
        return super().act(obs)

    def block_cost(self, q: np.ndarray, h: np.ndarray, p: np.ndarray) -> np.ndarray:
        svc, energy = self.service(q, h, p)
        W = self.ctx.params.task_cycles
        return self.objective(q, svc.local + svc.offload, energy) + (self._q_ser / W) * (svc.offload / W)


class DriftPlusPenaltyServer(ServerPolicy):
    """Lyapunov drift-plus-penalty at the server: per block,

        min_f  V w2 sum_i tau xi f_i^3 - (q^ser / W) (sum_i f_i tau) / W,

    which separates by slot: f* = sqrt(q^ser / (3 V w2 xi^ser W^2)), run in every slot, capped at
    f_ser_max and at the rate that clears q^ser (serving beyond the queue lowers no drift)."""

    def __init__(self, V: float):
        if not (V > 0 and np.isfinite(V)):
            raise ValueError(f"V: must be a finite number > 0, got {V!r}")
        self.V = float(V)

    def act(self, obs: Observation) -> np.ndarray:
        P = self.ctx.params
        W = P.task_cycles
        # sqrt(q / 3) / (sqrt(w2) sqrt(xi) W sqrt(V)): square roots first, so that no product of
        # tiny weights underflows to 0 (an empty queue serves nothing, whatever the weights)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            den = np.sqrt(P.w2) * np.sqrt(P.xi_ser) * W * np.sqrt(self.V)
            best = np.where(obs.q_ser > 0, np.sqrt(obs.q_ser / 3.0) / den, 0.0)
        return equal_rates(obs.q_ser, best, P)
