"""The policy interface: a policy acts on what it observes and may learn from each transition.

A scheme pairs one :class:`WDPolicy` (every WD's transmit power) with one :class:`ServerPolicy`
(the server's slot rates). Both are vectorised: one object acts for every seed (and every WD)
at once, on arrays of shape (S, K) or (S,). The loop (:mod:`mecmodel.simulation`) calls::

    policy.reset(ctx, obs)            # once, with the first observation
    a = policy.act(obs)               # every block
    policy.update(transition)         # every block, after the environment stepped
    policy.finish()                   # once, after the last block

A policy declares the variables it records in :attr:`Policy.records`.

``docs/schemes.md`` is the guide for scheme authors.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..env import Action, Observation, StepInfo
from ..params import Params
from ..queues import CostTerms
from ..vocabulary import Variable


@dataclasses.dataclass(frozen=True)
class PolicyContext:
    """What a policy knows before the first block: parameters, sizes and its random streams."""

    params: Params
    seeds: tuple[int, ...]
    env: object  # the MECEnv; use :meth:`rngs`, not the environment's state

    @property
    def S(self) -> int:
        return len(self.seeds)

    @property
    def K(self) -> int:
        return self.params.K

    def rngs(self, name: str) -> list[np.random.Generator]:
        """One generator per seed of the stream ``name``: independent of the channel, the
        arrivals, other streams and other seeds, and the same for every scheme."""
        return self.env.rngs(name)


@dataclasses.dataclass(frozen=True)
class Transition:
    """One block seen by a learner: s_t, a_t, the cost terms of (8) and s_{t+1}."""

    obs: Observation
    action: Action
    costs: CostTerms
    info: StepInfo
    next_obs: Observation


class Policy:
    """Base of WD and server policies; fixed rules override :meth:`act` only.

    ``information`` declares what the policy reads (``docs/schemes.md``): ``"decentralised"``
    (the paper's model, section IV: a WD its own queue, channel and arrivals; the server its
    queue and the WD queues) or ``"centralised"`` (anything in the observation, e.g. an oracle).
    ``mecmodel schemes`` shows it.
    """

    information = "decentralised"
    #: The variables this policy records (:class:`mecmodel.vocabulary.Variable`: name, units,
    #: long_name, ``per``). A ``per="block"`` variable is what :meth:`update` returns under its name
    #: every block, a ``per="seed"`` one what :meth:`finish` returns at the end; each value is an
    #: (S,) array, one number per seed. They land in run files and aggregates with their CF
    #: attributes. Algorithms 1 and 2 declare the table's ``alg1_*`` / ``alg2_*`` series this way.
    records: tuple[Variable, ...] = ()

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        """Called once before block 0; the default keeps ``ctx`` as ``self.ctx``."""
        self.ctx = ctx

    def act(self, obs: Observation) -> np.ndarray:
        raise NotImplementedError

    def update(self, tr: Transition) -> dict[str, np.ndarray]:
        """Learn from one block; return the values of the ``per="block"`` :attr:`records` (name -> (S,))."""
        return {}

    def finish(self) -> dict[str, np.ndarray]:
        """After the last block: the values of the ``per="seed"`` :attr:`records` (name -> (S,))."""
        return {}

    def summary(self) -> dict[str, dict[str, np.ndarray]]:
        """At the end of the run: learner name -> per-seed convergence summary (see qlearning)."""
        return {}


class WDPolicy(Policy):
    """Every WD's commanded transmit power p (S, K) in W, in [0, p_max]; it fixes the partition
    through (3)-(4). ``whole_task = True`` offloads a task's back end whole or not at all."""

    whole_task = False


class ServerPolicy(Policy):
    """The server's commanded rate in each of the n slots, (S, n) in cycles/s, in [0, f_ser_max]."""
