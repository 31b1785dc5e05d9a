"""Fixed WD rules: the paper's even and random offloading and the never/always-offload references.

None of them learns; each maps what a WD observes to a transmit power.
"""

from __future__ import annotations

import numpy as np

from .. import channel
from ..env import Observation
from .base import PolicyContext, WDPolicy


class ShareOfTask(WDPolicy):
    """Offload a given share of a task's back end: the power (4) needs for it, capped at p_max."""

    def share(self, obs: Observation) -> np.ndarray | float:
        raise NotImplementedError

    def act(self, obs: Observation) -> np.ndarray:
        P = self.ctx.params
        bits = P.zeta * P.task_cycles * np.asarray(self.share(obs))
        return np.minimum(channel.power_for_bits(obs.h, bits, P.bandwidth, P.snr_gap, P.tau), P.p_max)


class EvenShare(ShareOfTask):
    """'Even resource allocation': every WD offloads the same amount, even_fraction x W."""

    def share(self, obs: Observation) -> float:
        return self.ctx.params.even_fraction


class RandomShare(ShareOfTask):
    """'Random offloading': each WD offloads a uniform random share, ignoring the others."""

    CHUNK = 128  # blocks drawn at a time, so the per-seed loop runs once per chunk

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        self.rngs = ctx.rngs("policy")
        self._chunk = None

    def share(self, obs: Observation) -> np.ndarray:
        c, i = divmod(obs.t, self.CHUNK)
        if self._chunk != c:
            self._draws = np.stack([g.random((self.CHUNK, self.ctx.K)) for g in self.rngs], axis=1)
            self._chunk = c
        return self._draws[i]


class FixedPower(WDPolicy):
    """A constant fraction of p_max: 0 never offloads ('local'), 1 offloads all it can ('offload')."""

    def __init__(self, fraction: float):
        self.fraction = fraction

    def act(self, obs: Observation) -> np.ndarray:
        return np.full((self.ctx.S, self.ctx.K), self.fraction * self.ctx.params.p_max)
