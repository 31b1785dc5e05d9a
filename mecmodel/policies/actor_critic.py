"""Learned-Q descent: Algorithms 1 and 2 with an actor-critic action step. NOT the paper's algorithm.

This is an extension of ours (scheme ``proposed_q``), not section V of the paper; ``proposed``
stays exactly the paper's reading (``mecmodel.policies.qlearning``, ``docs/model.md`` note F).

What is the same as Algorithms 1 and 2: the state scaling, the fixed random sigmoid features
(23)/(30), the linear critic Q = w^T phi of (22)/(29), its TD error (24)/(31), its weight step
(27)/(34) -> (28b)/(35b), the step sizes (36), the stopping rule and the divergence guard. They
run through ``OnlineQ.learn <mecmodel.policies.qlearning.OnlineQ.learn>`` unchanged, so the
critic update is bit for bit the paper's for the same transition.

What differs is the action step only. The paper's (28a)/(35a) descends the squared TD error
d(delta^2)/da: it makes the Bellman residual small, and nothing in it pushes the action toward
lower cost except through the residual (note F). Here the action follows the learned critic
downhill, the policy-improvement (actor-critic, deterministic policy gradient) reading. The
costs are minimised, so Q is a cost-to-go and the step *descends* it:

    a_{t+1} = clip( a_t - alpha_t dQ([a; s_{t+1}], w_{t+1}) / da |_{a = a_t}, 0, 1 )

in the normalised action a (p_k / p_max for a WD, f^ser_i / f^ser_max for the server), with
alpha_t the same step size (36) as the critic's. The derivative of the features (23)/(30)
with respect to the action, with z_j = v_j^T x~ and phi' = phi (1 - phi):

    dQ/da_c = sum_j w_j phi_j (1 - phi_j) v_{j,c}       (v_{j,c}: feature weight on action entry c)

The step uses the critic just updated (w_{t+1}) at the state the new action will be taken in
(s_{t+1}, the next observation; it is the agent's own, so the rule stays decentralised). The
action is a parameter, not a function of the state (as in the paper), so this is a stochastic
gradient step on E_s[Q(s, a)] with the sampled state s_{t+1}.
"""

from __future__ import annotations

import numpy as np

from ..env import Observation
from .base import PolicyContext
from .qlearning import Algorithm1, Algorithm2, OnlineQ, sigmoid


class CriticDescentQ(OnlineQ):
    """``OnlineQ`` whose action step descends the learned Q instead of the squared TD error.

    Not the paper's algorithm: the critic ((24)/(31), (27)/(34), (28b)/(35b), (36), stopping
    rule) is ``OnlineQ.learn`` itself; only the action step (28a)/(35a) is replaced by
    a <- clip(a - alpha_t dQ/da, 0, 1) (module docstring).
    """

    @classmethod
    def adopt(cls, agent: OnlineQ) -> CriticDescentQ:
        """This learner with exactly ``agent``'s state (features, weights, action, bookkeeping).

        Algorithms 1 and 2 build an ``OnlineQ`` in ``reset``; adopting it keeps their
        features, initial parameters and random streams without repeating their code.
        """
        new = cls.__new__(cls)
        new.__dict__.update(agent.__dict__)
        new.descent = True
        return new

    def logits(self, x: np.ndarray, a: np.ndarray) -> np.ndarray:
        """v_j^T x~ of (23)/(30) with x~ = [a; x]: (B..., M) for state features x (B..., D), action a (B..., A)."""
        return self.state_logits(x) + np.einsum("...ma,...a->...m", self.v_a, a)

    def q_value(self, x: np.ndarray, a: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """Q(x~) = w^T phi(x~), (22)/(29), with the features (23)/(30); (B...,). ``w`` defaults to the learner's."""
        w = self.w if w is None else w
        return np.sum(w * sigmoid(self.logits(x, a)), axis=-1)

    def dq_da(self, x: np.ndarray, a: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """dQ/da of (22)/(29) with the sigmoid features (23)/(30), analytically; (B..., A).

        dphi_j/da_c = phi_j (1 - phi_j) v_{j,c} (d sigmoid(z)/dz = sigmoid (1 - sigmoid), and
        dz_j/da_c = v_{j,c}), so dQ/da_c = sum_j w_j phi_j (1 - phi_j) v_{j,c}.
        """
        return self._dq_da_logits(self.logits(x, a), w)

    def _dq_da_logits(self, z: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        w = self.w if w is None else w
        phi = sigmoid(z)
        return np.einsum("...m,...ma->...a", w * phi * (1.0 - phi), self.v_a)

    # learn is OnlineQ.learn with ``descent`` set: the compiled update (mecmodel.engine.learn_row)
    # takes the critic step, then, for a learner whose update was accepted (neither frozen nor
    # diverged), a <- clip(a - alpha_t dQ([a_t; s_{t+1}], w_{t+1}) / da, 0, 1), kept only if finite.


def _adopt(policy: Algorithm1 | Algorithm2) -> None:
    policy.agent = CriticDescentQ.adopt(policy.agent)


class CriticDescentWD(Algorithm1):
    """Algorithm 1's critic at every WD, with the action p_k / p_max descending the learned Q.

    NOT the paper's Algorithm 1: the critic ((22)-(24), (27), (28b), (36)) is Algorithm 1's,
    unchanged; the step (28a) on d(delta^2)/dp is replaced by
    p^_{t+1} = clip(p^_t - alpha_t dQ([p^; s_{t+1}], theta_{t+1})/dp^ |_{p^ = p^_t}, 0, 1),
    dQ/dp^ = sum_i theta_i phi_i (1 - phi_i) mu_{i,1} (features (23)). See ``CriticDescentQ``.
    """

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        _adopt(self)


class CriticDescentServer(Algorithm2):
    """Algorithm 2's critic at the server, with the slot rates f^ser / f^ser_max descending the learned Q.

    NOT the paper's Algorithm 2: the critic ((29)-(31), (34), (35b), (36)) is Algorithm 2's,
    unchanged; the step (35a) on d(rho^2)/df^ser_i is replaced by
    f^_{t+1,i} = clip(f^_{t,i} - alpha_t dQ([f^; q_{t+1}], eta_{t+1})/df^_i |_{f^ = f^_t}, 0, 1),
    dQ/df^_i = sum_j eta_j phi_j (1 - phi_j) nu_{j,i} (features (30)). See ``CriticDescentQ``.
    """

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        _adopt(self)
