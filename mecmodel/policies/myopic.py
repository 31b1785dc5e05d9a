"""Myopic greedy rules: each agent minimises its own cost term of (8) for this block alone.

No look-ahead and no learning; the simplest sanity reference (issue 10, not the paper's). The
paper's cost (8) charges the queues at the *start* of block t, which no action of block t can
change, so read literally ("start") a myopic WD minimises its energy alone and a myopic server
idles for ever. The default reading ("end") charges the queue the block leaves behind instead,
the post-decision state, which is what a one-step greedy rule trades energy against:

* WD k:  min over p of  w3 (q_k - L_k(p) - O_k(p)) + w4 (E^wd_k(L_k) + E^off_k(O_k)),
  with the partition L, O of (3)-(4) and note B, evaluated for a grid of powers in [0, p_max]
  (vectorised over seed, WD and grid point); arrivals are the same for every p and left out.
* server: min over f of  w1 (q^ser - sum_i f_i tau) + w2 sum_i tau xi f_i^3.  For a given total
  equal rates are cheapest (convexity), and per slot d/df (-w1 f tau + w2 tau xi f^3) = 0 gives
  f* = sqrt(w1 / (3 w2 xi^ser)); the rule runs every slot at min(f*, f_ser_max, the rate that
  clears q^ser in the block).

Each agent reads only its own state (section IV): the WD its queue and channel, the server its
queue. ``docs/model.md`` ("Myopic rules") has the derivation.
"""

from __future__ import annotations

import numpy as np

from .. import channel, queues
from ..env import Observation
from .base import PolicyContext, ServerPolicy, WDPolicy

READINGS = ("end", "start")


def _check(reading: str) -> str:
    if reading not in READINGS:
        raise ValueError(f"reading: must be one of {', '.join(READINGS)}, got {reading!r}")
    return reading


class MyopicWD(WDPolicy):
    """Every WD picks, from ``grid`` powers evenly spaced in [0, p_max], the one that minimises its
    own cost of this block (see the module docstring for the two readings)."""

    def __init__(self, reading: str = "end", grid: int = 129):
        self.reading = _check(reading)
        self.grid = int(grid)

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        P = ctx.params
        self.powers = np.linspace(0.0, P.p_max, self.grid)
        self.local_max = np.floor(P.n_slots * P.tau * P.f_wd_max)

    def block_cost(self, q: np.ndarray, h: np.ndarray, p: np.ndarray) -> np.ndarray:
        """This block's own cost of WDs with queues q and gains h commanding powers p (broadcast)."""
        P = self.ctx.params
        cap = channel.bits_per_slot(h, p, P.bandwidth, P.snr_gap, P.tau) / P.zeta
        svc = queues.wd_service(q, cap, P.task_cycles, self.local_max, P.local_service, self.whole_task)
        with np.errstate(invalid="ignore"):
            p_tx = np.where(
                svc.offload > 0,
                channel.power_for_bits(h, P.zeta * svc.offload, P.bandwidth, P.snr_gap, P.tau),
                0.0,
            )
        energy = queues.local_energy(svc.local, P.n_slots, P.tau, P.xi_wd) + queues.offload_energy(p_tx, P.tau)
        left = q - svc.local - svc.offload if self.reading == "end" else q
        return P.w3 * left + P.w4 * energy

    def act(self, obs: Observation) -> np.ndarray:
        cost = self.block_cost(obs.q[..., None], obs.h[..., None], self.powers)  # (S, K, grid)
        return self.powers[np.argmin(cost, axis=-1)]  # the lowest power among equal costs


class MyopicServer(ServerPolicy):
    """The server's one-block greedy rate (closed form, see the module docstring)."""

    def __init__(self, reading: str = "end"):
        self.reading = _check(reading)

    def act(self, obs: Observation) -> np.ndarray:
        P = self.ctx.params
        if self.reading == "start" or P.w1 == 0:
            f = np.zeros_like(obs.q_ser)  # nothing this block's own cost gains from serving
        else:
            best = np.inf if P.w2 == 0 else np.sqrt(P.w1 / (3.0 * P.w2 * P.xi_ser))
            clear = (np.ceil(obs.q_ser / P.n_slots) + 1.0) / P.tau  # as MinEnergy: whole cycles
            f = np.minimum(np.minimum(best, P.f_ser_max), np.where(obs.q_ser > 0, clear, 0.0))
        return np.repeat(f[:, None], P.n_slots, axis=1)
