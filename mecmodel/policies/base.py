"""The policy interface: a policy acts on what it observes and may learn from each transition.

A scheme pairs one ``WDPolicy`` (every WD's transmit power) with one ``ServerPolicy``
(the server's slot rates). Both are vectorised: one object acts for every seed (and every WD)
at once, on arrays of shape (S, K) or (S,). The loop (``mecmodel.simulation``) calls:

    policy.reset(ctx, obs)            # once, with the first observation
    a = policy.act(obs)               # every block
    policy.update(transition)         # every block, after the environment stepped
    policy.finish()                   # once, after the last block

A policy declares the variables it records in ``Policy.records``.

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
    """What a policy knows before the first block: parameters, sizes and its random streams.

    ``Policy.reset`` receives it; the default keeps it as ``self.ctx``.
    """

    params: Params
    """The run's model parameters (``mecmodel.params.Params``), e.g. ``params.p_max`` in W,
    ``params.n_slots`` (n), ``params.tau`` in s."""
    seeds: tuple[int, ...]
    """The run's seed labels, in the order of axis 0 of every array (S of them)."""
    env: object
    """The ``MECEnv``: use ``rngs``, not the environment's state; a policy that reads it (the drop, the mean
    gains) is centralised."""

    @property
    def S(self) -> int:
        """Number of seeds, the length of axis 0 of every array."""
        return len(self.seeds)

    @property
    def K(self) -> int:
        """Number of WDs, ``params.K``: axis 1 of the per-WD arrays."""
        return self.params.K

    def rngs(self, name: str) -> list[np.random.Generator]:
        """One ``numpy.random.Generator`` per seed of the stream ``name`` (a list of S, in the order of
        ``seeds``): independent of the channel, the arrivals, other streams and other seeds, and the same
        for every scheme. Each call starts the streams afresh: call it once (in ``reset``) and keep the
        list; stack per-seed draws along axis 0."""
        return self.env.rngs(name)


@dataclasses.dataclass(frozen=True)
class Transition:
    """One block seen by a learner: s_t, a_t, the cost terms of (8) and s_{t+1}.

    ``Policy.update`` receives it every block, after the step.
    """

    obs: Observation
    """s_t: the observation the action was taken on."""
    action: Action
    """a_t as applied (``info.action``): ``p`` (S, K) W clipped to [0, p_max], ``f_ser`` (S, n) cycles/s
    clipped to [0, f_ser_max]."""
    costs: CostTerms
    """The four terms of (8), each (S,) in cost units (1); ``costs.total`` is c(s_t)."""
    info: StepInfo
    """Everything the step computed, with each agent's own cost term (``wd_cost`` (S, K), ``server_cost``
    (S,)) and its gradient with respect to the normalised action (``wd_cost_grad``, ``server_cost_grad``)."""
    next_obs: Observation
    """s_{t+1}: the observation of the next block, on which ``act`` is called next."""


class Policy:
    """Base of WD and server policies; fixed rules override ``act`` only.

    ``information`` declares what the policy reads (``docs/schemes.md``): ``"decentralised"``
    (the paper's model, section IV: a WD its own queue, channel and arrivals; the server its
    queue and the WD queues) or ``"centralised"`` (anything in the observation, e.g. an oracle).
    ``mecmodel schemes`` shows it.
    """

    information = "decentralised"
    """``"decentralised"`` (the default) or ``"centralised"``: what the policy reads, as above (a declaration,
    not enforced)."""
    records: tuple[Variable, ...] = ()
    """The variables this policy records (``mecmodel.vocabulary.Variable``: name, units,
    long_name, ``per``). A ``per="block"`` variable is what ``update`` returns under its name
    every block, a ``per="seed"`` one what ``finish`` returns at the end; each value is an
    (S,) array, one number per seed. They land in run files and aggregates with their CF
    attributes. Algorithms 1 and 2 declare the table's ``alg1_*`` / ``alg2_*`` series this way."""

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        """Called once before block 0, with the context and the observation of block 0; the default keeps
        ``ctx`` as ``self.ctx``. An override calls ``super().reset(ctx, obs)`` and sets up its state (its
        random streams from ``ctx.rngs``, arrays sized ``ctx.S`` by ``ctx.K``)."""
        self.ctx = ctx

    def act(self, obs: Observation) -> np.ndarray:
        """The action of this block for every seed, from the observation ``obs``; every policy defines it.

        * a ``WDPolicy`` returns each WD's transmit power p_k: (S, K) in W, in [0, p_max];
        * a ``ServerPolicy`` returns the rate of each slot f^ser_i: (S, n) in cycles/s, in [0, f_ser_max].

        The step clips values outside the box and refuses (``ActionError``, the run stops with a
        ``PolicyError``) a wrong shape, non-numbers or a value that is not finite.
        """
        raise NotImplementedError

    def update(self, tr: Transition) -> dict[str, np.ndarray]:
        """Called every block after the step, with its ``Transition``: learn from it. Returns the values of the
        ``per="block"`` ``records`` of this block, name -> (S,) array (a number is broadcast to every seed);
        the default learns nothing and returns ``{}``."""
        return {}

    def finish(self) -> dict[str, np.ndarray]:
        """Called once after the last block: the values of the ``per="seed"`` ``records``, name -> (S,) array;
        every such variable must be there. The default returns ``{}``."""
        return {}

    def summary(self) -> dict[str, dict[str, np.ndarray]]:
        """Called once after the last block: learner name (``"alg1"`` or ``"alg2"``) -> per-seed convergence
        summary (name -> (S,) array: ``converged_fraction``, ``converged_block_median``,
        ``converged_block_max``, ``diverged_block``), as Algorithms 1 and 2 return them
        (``mecmodel.policies.qlearning``). The default returns ``{}``; a variable of your own goes in
        ``records`` and ``finish`` instead."""
        return {}


class WDPolicy(Policy):
    """Every WD's commanded transmit power p (S, K) in W, in [0, p_max]; it fixes the partition
    through (3)-(4). ``whole_task = True`` offloads a task's back end whole or not at all."""

    whole_task = False
    """Binary offloading: True offloads a task's back end whole or not at all; read every block into
    ``Action.whole_task``."""


class ServerPolicy(Policy):
    """The server's commanded rate in each of the n slots, (S, n) in cycles/s, in [0, f_ser_max].

    The server never runs faster than its queue needs: a slot after the queue runs dry costs no energy.
    """
