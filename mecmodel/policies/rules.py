"""Fixed rules: the paper's even and random offloading, the never/always-offload references, and
two fixed server rules (full speed, minimum energy) that any WD policy can pair with.

None of them learns; each maps what its agent observes to an action (section IV: a WD its own
queue and channel, the server its queue).
"""

from __future__ import annotations

import numpy as np

from .. import engine
from ..env import Observation
from .base import PolicyContext, ServerPolicy, WDPolicy


class ShareOfTask(WDPolicy):
    """Offload a given share of a task's back end: the power (4) needs for it, capped at p_max.

    A subclass defines ``share``; ``act`` turns it into powers.
    """

    def share(self, obs: Observation) -> np.ndarray | float:
        """The share of a task each WD offloads (1, normally in [0, 1]): of W cycles, so ``share`` W zeta bits.
        A number (every WD and seed) or an array that broadcasts to (S, K); a subclass defines it."""
        raise NotImplementedError

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        """Keep ``ctx`` and the parameters (4) reads, as the compiled engine reads them."""
        super().reset(ctx, obs)
        P = ctx.params
        self._sc = engine.scalars(P, float(np.floor(P.n_slots * P.tau * P.f_wd_max)))  # as the engine reads them

    def act(self, obs: Observation) -> np.ndarray:
        """(S, K) W: each WD's power (4) for its ``share``, min((Gamma / h) (2^(share W zeta / (tau B)) - 1),
        p_max) (``mecmodel.engine.share_power``, the compiled loop's own code). The step offloads at most the
        back end the partitioned task has left."""
        h = np.asarray(obs.h, dtype=np.float64)
        share = np.ascontiguousarray(np.broadcast_to(np.asarray(self.share(obs), dtype=np.float64), h.shape))
        return engine.share_powers(h, share, self._sc)


class EvenShare(ShareOfTask):
    """'Even resource allocation': every WD offloads the same amount, even_fraction x W."""

    def share(self, obs: Observation) -> float:
        """``even_fraction`` (a number, the same for every WD and seed)."""
        return self.ctx.params.even_fraction


class RandomShare(ShareOfTask):
    """'Random offloading': each WD offloads a uniform random share, ignoring the others."""

    CHUNK = 128
    """Blocks drawn at a time, so the per-seed loop runs once per chunk."""

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        """Also take one generator per seed of the ``policy`` stream (``ctx.rngs("policy")``)."""
        super().reset(ctx, obs)
        self.rngs = ctx.rngs("policy")
        self._chunk = None

    def share(self, obs: Observation) -> np.ndarray:
        """(S, K) 1: uniform draws in [0, 1), new every block, from each seed's ``policy`` stream."""
        c, i = divmod(obs.t, self.CHUNK)
        if self._chunk != c:
            self._draws = np.stack([g.random((self.CHUNK, self.ctx.K)) for g in self.rngs], axis=1)
            self._chunk = c
        return self._draws[i]


class FixedPower(WDPolicy):
    """A constant fraction of p_max: 0 never offloads ('local'), 1 offloads all it can ('offload').

    ``fraction`` (1) is the share of p_max, in [0, 1].
    """

    def __init__(self, fraction: float):
        self.fraction = fraction

    def act(self, obs: Observation) -> np.ndarray:
        """(S, K) W: ``fraction`` p_max for every WD and seed."""
        return np.full((self.ctx.S, self.ctx.K), self.fraction * self.ctx.params.p_max)


def equal_rates(q_ser: np.ndarray, best: np.ndarray | float, P) -> np.ndarray:
    """(S, n): the same rate in every slot, min(best, f_ser_max, the rate that clears q^ser).

    The clearing rate is rounded up to ceil(q / n) + 1 cycles per slot, so that a queue the block
    can clear ends at exactly 0 (float rounding never leaves a sliver); an empty queue idles.

    ``q_ser`` (S,) cycles; ``best`` a cap on the rate in cycles/s, a number or (S,); ``P`` the parameters
    (``n_slots``, ``tau``, ``f_ser_max``). Returns (S, n) cycles/s.
    """
    clear = np.where(q_ser > 0, (np.ceil(q_ser / P.n_slots) + 1.0) / P.tau, 0.0)
    f = np.minimum(np.minimum(best, P.f_ser_max), clear)
    return np.repeat(np.broadcast_to(f, q_ser.shape)[:, None], P.n_slots, axis=1)


class FullSpeed(ServerPolicy):
    """Fixed server rule 'full': every slot at f_ser_max (the server never runs faster than its
    queue needs, so an emptied queue idles the remaining slots at no energy)."""

    def act(self, obs: Observation) -> np.ndarray:
        """(S, n) cycles/s: f_ser_max in every slot and seed."""
        P = self.ctx.params
        return np.full((self.ctx.S, P.n_slots), P.f_ser_max)


class MinEnergy(ServerPolicy):
    """Fixed server rule 'min_energy': work-conserving at the least energy (7).

    The same rate in every slot, just enough to clear the queue q^ser within the block when
    f_ser_max can, else f_ser_max. For a given amount of work the convex energy sum_i tau xi f_i^3
    is least with equal rates. The rate is rounded up to ceil(q / n) + 1 cycles per slot, so that
    a queue the block can clear ends at exactly 0 (float rounding never leaves a sliver): the
    slots serve that much until the queue is empty, which costs O(n / q) more energy than an exact
    equal split. Capped at f_ser_max, a slot serves f_ser_max tau cycles, as under FullSpeed.
    """

    def act(self, obs: Observation) -> np.ndarray:
        """(S, n) cycles/s: ``equal_rates`` of ``obs.q_ser`` with no cap but f_ser_max."""
        return equal_rates(obs.q_ser, np.inf, self.ctx.params)
