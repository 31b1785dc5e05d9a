"""A trained agent as a scheme, beside the registry (:mod:`mecmodel.schemes`).

An agent trained anywhere (with the Gymnasium front end of ``mecmodel.rl`` or otherwise) joins the
sweep beside every other scheme through a scheme module of a few lines::

    # my_agent_scheme.py, named in a config's scheme_modules
    from mecmodel.agents import register_agent
    register_agent("ppo", load="my_training.py:load_policy", weights="ppo_k4.zip",
                   description="PPO on the centralised view, trained at K = 4")

``load`` names a function (``"path/to/file.py:function"`` or ``"dotted.module:function"``, or the
function itself) that takes the weights path (and, if it has a ``params`` parameter, the run's
``mecmodel.params.Params``: preset, overrides, K, n) and returns ``act``, the callable of
``mecmodel.policies.agent``: a batch of centralised observations to a batch of actions. It is
called once per block for all seeds. The weights file's SHA-256 becomes the scheme's ``version``:
a new file reruns the agent's simulations and is recorded in its run files.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .loading import import_file
from .params import ParamError, stable_hash
from .policies.agent import AgentServer, AgentWD, _Joint, one_per_run
from .policies.base import PolicyContext
from .schemes import register


def _resolve(load: str | Callable) -> Callable:
    if callable(load):
        return load
    where, _, func = str(load).rpartition(":")
    if not where or not func:
        raise ParamError(f"load: expected 'file.py:function' or 'module:function', got {load!r}")
    if where.endswith(".py"):
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


def register_agent(
    name: str, *, load: str | Callable, weights: str, description: str, kind: str = "reference", **options: Any
):
    """Register a trained agent as scheme ``name`` (see the module docstring); returns the Scheme."""
    path = Path(weights)
    if not path.is_file():
        raise ParamError(f"weights: no such file {str(path.resolve())!r}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    act_cache: dict[str, Callable] = {}

    def make(ctx: PolicyContext) -> _Joint:
        # The WD and the server halves of one run share one agent call per block; a loader that
        # takes the run's parameters is called once per set of parameter values (each grid point
        # of a batch), one that does not once in all.
        loader = _resolve(load)
        with_params = "params" in inspect.signature(loader).parameters
        key = stable_hash(ctx.params.values) if with_params else ""
        if key not in act_cache:
            act_cache[key] = loader(str(path), params=ctx.params) if with_params else loader(str(path))
        return _Joint(act_cache[key], ctx.K, ctx.params.n_slots)

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
