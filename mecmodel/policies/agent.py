"""A trained agent as a scheme: any callable from the centralised observation to the action.

An agent trained anywhere (with the Gymnasium front end of ``mecmodel.rl`` or otherwise) joins the
sweep beside every other scheme through a scheme module of a few lines::

    # my_agent_scheme.py, named in a config's scheme_modules
    from mecmodel.policies.agent import register_agent
    register_agent("ppo", load="my_training.py:load_policy", weights="ppo_k4.zip",
                   description="PPO on the centralised view, trained at K = 4")

``load`` names a function (``"path/to/file.py:function"`` or ``"dotted.module:function"``, or the
function itself) that takes the weights path and returns ``act``: a callable from a batch of
centralised observations, shape (S, 2 K + K n + 1) = [q (K), h (K), beta (K n), q^ser] per seed
(as :class:`mecmodel.rl.OffloadingEnv` gives them, float64), to a batch of actions, shape
(S, K + n) = [p (K) in W, f^ser (n) in cycles/s]; actions outside the box are clipped by the
environment. It is called once per block for all seeds. The weights file's SHA-256 becomes the
scheme's ``version``: a new file reruns the agent's simulations and is recorded in its run files.
The agent sees everything (``information = "centralised"``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..env import Observation
from ..params import ParamError
from .base import PolicyContext, ServerPolicy, WDPolicy


def centralised_observation(obs: Observation) -> np.ndarray:
    """[q (K), h (K), beta (K n), q^ser] per seed, (S, 2 K + K n + 1), float64."""
    S = obs.q.shape[0]
    return np.concatenate([obs.q, obs.h, obs.beta.reshape(S, -1), obs.q_ser[:, None]], axis=1)


def _resolve(load: str | Callable) -> Callable:
    if callable(load):
        return load
    where, _, func = str(load).rpartition(":")
    if not where or not func:
        raise ParamError(f"load: expected 'file.py:function' or 'module:function', got {load!r}")
    if where.endswith(".py"):
        from ..schemes import import_file

        path = Path(where).resolve()
        if not path.is_file():
            raise ParamError(f"load: no such file {str(path)!r}")
        module = import_file(path, "mecmodel_agent_")
    else:
        module = importlib.import_module(where)
    try:
        return getattr(module, func)
    except AttributeError:
        raise ParamError(f"load: {where} has no function {func!r}") from None


class _Joint:
    """One agent call per block, shared by the WD and the server halves of the scheme."""

    def __init__(self, act: Callable[[np.ndarray], np.ndarray], K: int, n: int):
        self.act, self.K, self.n = act, K, n
        self.t: int | None = None
        self.action: np.ndarray | None = None

    def __call__(self, obs: Observation) -> np.ndarray:
        if self.t != obs.t or self.action is None:
            x = centralised_observation(obs)
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


def register_agent(
    name: str, *, load: str | Callable, weights: str, description: str, kind: str = "reference", **options: Any
):
    """Register a trained agent as scheme ``name`` (see the module docstring); returns the Scheme."""
    from ..schemes import register

    path = Path(weights)
    if not path.is_file():
        raise ParamError(f"weights: no such file {str(path.resolve())!r}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    act_cache: dict[str, Callable] = {}

    def make(ctx: PolicyContext) -> _Joint:
        # The WD and the server halves of one run share one agent call per block.
        if "act" not in act_cache:
            act_cache["act"] = _resolve(load)(str(path))
        return _Joint(act_cache["act"], ctx.K, ctx.params.n_slots)

    joint = one_per_run(make)

    source = sys._getframe(1).f_globals.get("__name__", "?")
    return register(
        name,
        wd=lambda: AgentWD(joint),
        server=lambda: AgentServer(joint),
        description=description,
        kind=kind,
        version=f"weights-{digest}",
        source=source,
        **options,
    )
