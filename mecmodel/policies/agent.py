"""The policies of a trained agent: any callable from the centralised observation to the action.

``AgentWD`` and ``AgentServer`` are the two halves of one joint policy that calls the
agent once per block for all seeds (``one_per_run`` shares it between them). The agent is
called with a batch of centralised observations, shape (S, 2 K + K n + 1) = [q (K), h (K),
beta (K n), q^ser] per seed (as ``mecmodel.rl.OffloadingEnv`` gives them, float64), and
returns a batch of actions, shape (S, K + n) = [p (K) in W, f^ser (n) in cycles/s]; actions outside
the box are clipped by the environment. An ``act`` with an ``observation_shape`` attribute (the
shape it was trained on) is refused, with one line naming both shapes, in a run that gives another. It sees everything (``information = "centralised"``).
``mecmodel.agents.register_agent`` makes a trained agent a scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..env import Observation
from .base import PolicyContext, ServerPolicy, WDPolicy


def centralised_observation(obs: Observation) -> np.ndarray:
    """[q (K), h (K), beta (K n), q^ser] per seed, (S, 2 K + K n + 1), float64."""
    S = obs.q.shape[0]
    return np.concatenate([obs.q, obs.h, obs.beta.reshape(S, -1), obs.q_ser[:, None]], axis=1)


class _Joint:
    """One agent call per block, shared by the WD and the server halves of the scheme."""

    def __init__(self, act: Callable[[np.ndarray], np.ndarray], K: int, n: int):
        self.act, self.K, self.n = act, K, n
        self.t: int | None = None
        self.action: np.ndarray | None = None

    def __call__(self, obs: Observation) -> np.ndarray:
        if self.t != obs.t or self.action is None:
            x = centralised_observation(obs)
            trained = getattr(self.act, "observation_shape", None)
            if trained is not None and tuple(trained) != x.shape[1:]:
                raise ValueError(
                    f"agent: trained on observations of shape {tuple(trained)}, this run gives {x.shape[1:]} "
                    f"(K = {self.K}, n = {self.n}: 2 K + K n + 1 values)"
                )
            a = np.asarray(self.act(x), dtype=np.float64)
            if a.shape != (x.shape[0], self.K + self.n):
                raise ValueError(
                    f"agent: returned an action of shape {a.shape}, expected {(x.shape[0], self.K + self.n)}"
                )
            self.t, self.action = obs.t, a
        return self.action


def one_per_run(make: Callable[[PolicyContext], Any]) -> Callable[[PolicyContext], Any]:
    """``make(ctx)`` once per run: the WD and the server halves of a joint scheme (reset with the
    same context) get the same object; a new run drops the previous one."""
    made: dict[int, Any] = {}

    def get(ctx: PolicyContext) -> Any:
        key = id(ctx)
        if key not in made:
            made.clear()
            made[key] = make(ctx)
        return made[key]

    return get


class _AgentHalf:
    """The WD or the server half of a joint scheme: its slice of the joint action (S, K + n),
    which ``joint(ctx)`` gives per run as a callable of the observation."""

    information = "centralised"

    def __init__(self, joint: Callable[[PolicyContext], _Joint]):
        self._make = joint

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        self.ctx = ctx
        self.joint = self._make(ctx)


class AgentWD(_AgentHalf, WDPolicy):
    def act(self, obs: Observation) -> np.ndarray:
        return self.joint(obs)[:, : self.ctx.K]


class AgentServer(_AgentHalf, ServerPolicy):
    def act(self, obs: Observation) -> np.ndarray:
        return self.joint(obs)[:, self.ctx.K :]
