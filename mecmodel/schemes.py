"""The schemes: one registry, each a small pair of policies on the shared simulator.

A scheme is a WD policy (which transmit power p_k each WD commands, which fixes its
task partition through (3)-(4)) and a server policy (the server CPU rates f^ser).
Section VI's schemes and two references the paper lacks:

========== ================================================ =====================
scheme     WDs                                              server
========== ================================================ =====================
proposed   Algorithm 1, partial offloading                  Algorithm 2
binary     Algorithm 1, whole-task offloading               Algorithm 2
even       every WD offloads the same share of a task       Algorithm 2
random     each WD offloads a uniformly random share        Algorithm 2
local      never offload (p = 0)                            Algorithm 2 (idle)
offload    p = p_max: as much as the channel carries        Algorithm 2
========== ================================================ =====================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from . import channel


@dataclasses.dataclass
class Context:
    """What a policy may see: parameters, sizes, its own random stream, feature vectors."""

    params: object
    S: int
    K: int
    rngs: list  # one policy stream per seed (independent of channels, arrivals and other seeds)
    mu: np.ndarray  # (S, K, M, n + 3) WD feature vectors
    nu: np.ndarray  # (S, M, n + K + 1) server feature vectors


class WDPolicy:
    """Base: a WD policy commands a transmit power p (W) per (seed, WD) each block."""

    learns = False
    binary = False

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx

    def power(self, t: int, h: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class LearnedPower(WDPolicy):
    """Algorithm 1 at every WD: p is learned by (28a) from the squared TD error (24)."""

    learns = True

    def __init__(self, binary: bool = False):
        self.binary = binary

    def setup(self, ctx: Context) -> None:
        from .agents import OnlineQ

        super().setup(ctx)
        P = ctx.params
        self.agent = OnlineQ.from_params(ctx.mu, 1, np.array([P.p_init]), P)

    def power(self, t: int, h: np.ndarray) -> np.ndarray:
        return self.agent.a[..., 0] * self.ctx.params.p_max


class ShareOfTask(WDPolicy):
    """Offload a given share of a task's back end: the power (4) needs, capped at p_max."""

    def share(self, t: int) -> np.ndarray | float:
        raise NotImplementedError

    def power(self, t: int, h: np.ndarray) -> np.ndarray:
        P = self.ctx.params
        bits = P.zeta * P.task_cycles * np.asarray(self.share(t))
        return np.minimum(channel.power_for_bits(h, bits, P.bandwidth, P.snr_gap, P.tau), P.p_max)


class EvenShare(ShareOfTask):
    """'Even resource allocation': every WD offloads the same amount, even_fraction x W."""

    def share(self, t: int) -> float:
        return self.ctx.params.even_fraction


class RandomShare(ShareOfTask):
    """'Random offloading': each WD offloads a uniform random share, ignoring the others."""

    CHUNK = 128  # blocks drawn at a time, so the per-seed loop runs once per chunk

    def share(self, t: int) -> np.ndarray:
        c, i = divmod(t, self.CHUNK)
        if getattr(self, "_chunk", None) != c:
            self._draws = np.stack([g.random((self.CHUNK, self.ctx.K)) for g in self.ctx.rngs], axis=1)
            self._chunk = c
        return self._draws[i]


class FixedPower(WDPolicy):
    """A constant fraction of p_max: 0 never offloads ('local'), 1 offloads all it can."""

    def __init__(self, fraction: float):
        self.fraction = fraction

    def power(self, t: int, h: np.ndarray) -> np.ndarray:
        return np.full((self.ctx.S, self.ctx.K), self.fraction * self.ctx.params.p_max)


class LearnedRate:
    """Algorithm 2 at the server: f^ser (n slot rates) learned by (35a) from (31)."""

    learns = True

    def setup(self, ctx: Context) -> None:
        from .agents import OnlineQ

        self.ctx = ctx
        P = ctx.params
        self.agent = OnlineQ.from_params(ctx.nu, P.n_slots, np.full(P.n_slots, P.f_ser_init), P)

    def rates(self, t: int) -> np.ndarray:
        return self.agent.a * self.ctx.params.f_ser_max


@dataclasses.dataclass(frozen=True)
class Scheme:
    name: str
    description: str
    wd: Callable[[], WDPolicy]
    server: Callable[[], LearnedRate]
    in_paper: bool


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme(
            "proposed",
            "Algorithms 1 and 2: learned power, partial offloading",
            lambda: LearnedPower(False),
            LearnedRate,
            True,
        ),
        Scheme(
            "binary",
            "Algorithm 1 with whole-task offloading; Algorithm 2",
            lambda: LearnedPower(True),
            LearnedRate,
            True,
        ),
        Scheme("even", "every WD offloads the same share of a task; Algorithm 2", EvenShare, LearnedRate, True),
        Scheme("random", "each WD offloads a uniform random share; Algorithm 2", RandomShare, LearnedRate, True),
        Scheme("local", "reference: never offload; Algorithm 2", lambda: FixedPower(0.0), LearnedRate, False),
        Scheme(
            "offload",
            "reference: p = p_max, offload all the channel carries; Algorithm 2",
            lambda: FixedPower(1.0),
            LearnedRate,
            False,
        ),
    )
}
PAPER_SCHEMES = tuple(n for n, s in SCHEMES.items() if s.in_paper)


def get_scheme(name: str) -> Scheme:
    try:
        return SCHEMES[name]
    except KeyError:
        from .params import ParamError

        raise ParamError(f"scheme: must be one of {', '.join(SCHEMES)}, got {name!r}") from None
