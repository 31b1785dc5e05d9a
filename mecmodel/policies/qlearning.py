"""Parametric online Q-learning (section V): Algorithm 1 (WDs) and Algorithm 2 (server).

``Algorithm1`` (a WD policy) and ``Algorithm2`` (a server policy) hold everything of
the two algorithms: feature vectors (23)/(30) and the input scaling of their states, rewards
(24)/(31), TD errors, gradients (26)-(27), (33)-(34), updates (28), (35), step sizes (36), and
the convergence and divergence bookkeeping. Both algorithms have the same form, so one
vectorised learner class, ``OnlineQ``, serves both:

* action-value (22)/(29): Q(x~) = w^T phi(x~), x~ = [action; state];
* features (23)/(30): phi_i(x~) = 1 / (1 + exp(-v_i^T x~)) with fixed random v_i;
* TD error (24)/(31): d = r_t + gamma Q([a_t; s_{t+1}]) - Q([a_t; s_t]);
* gradient steps on d^2 for the action (26)/(33) and the weights (27)/(34), then the
  projected updates (28)/(35);
* step sizes alpha_t = alpha0 / (1 + t / t0)^kappa with kappa in (0.5, 1], so that
  sum alpha = inf and sum alpha^2 < inf, conditions (36).

For Algorithm 1 the batch is (seed, WD) and the action is p_k / p_max (one entry); for
Algorithm 2 the batch is (seed,) and the action is f^ser_i / f^ser_max (n entries).
Actions are learned in these normalised units so one step size suits both.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from .. import engine
from ..env import Observation, stream
from ..vocabulary import VARIABLE_BY_NAME
from .base import PolicyContext, ServerPolicy, Transition, WDPolicy

if TYPE_CHECKING:
    from ..params import Params


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), written with tanh so it never overflows or warns."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def step_size(t: int | np.ndarray, alpha0: float, t0: float, kappa: float) -> np.ndarray:
    """Step size at block t; satisfies (36) for kappa in (0.5, 1]."""
    if isinstance(t, int):  # the learners' case, once per block: plain floats, the same bits
        return alpha0 / (1.0 + float(t) / t0) ** kappa
    return alpha0 / (1.0 + np.asarray(t, dtype=float) / t0) ** kappa


class OnlineQ:
    """A batch of independent parametric online Q-learners sharing one form.

    v: (B..., M, A + D) fixed feature vectors (mu for WDs, nu for the server), the
    first A columns multiplying the normalised action, the rest the state features. The update
    runs in the compiled engine (``mecmodel.engine.learn_row``, one learner at a time, so a
    learner's bits do not depend on the batch); the arrays below are updated in place.
    """

    def __init__(
        self,
        v: np.ndarray,
        n_action: int,
        action0: np.ndarray,
        w0: float,
        gamma: float,
        alpha0: float,
        t0: float,
        kappa: float,
        epsilon: float,
        patience: int,
        freeze: bool,
        limit: float,
        exact: bool,
        descent: bool = False,
    ):
        self.v_a = np.ascontiguousarray(v[..., :n_action], dtype=np.float64)
        self.v_s = np.ascontiguousarray(v[..., n_action:], dtype=np.float64)
        batch = v.shape[:-2]
        self.a = np.array(np.broadcast_to(action0, batch + (n_action,)), dtype=float)
        self.w = np.full(v.shape[:-1], float(w0))
        self.gamma, self.alpha0, self.t0, self.kappa = gamma, alpha0, t0, kappa
        self.epsilon, self.patience, self.freeze, self.limit, self.exact = epsilon, patience, freeze, limit, exact
        self.descent = descent  # proposed_q: the action descends the learned Q (policies.actor_critic)
        self.streak = np.zeros(batch, dtype=np.int64)
        self.converged_at = np.full(batch, -1, dtype=np.int64)
        self.diverged_at = np.full(batch, -1, dtype=np.int64)
        self.frozen = np.zeros(batch, dtype=bool)
        self._limit = min(float(limit), sys.float_info.max)  # a finite bound: an infinite norm is bad
        self._zs_now = np.zeros(v.shape[:-1])
        # the last update's sigmoid arguments and values (engine.learn_row reuses one whose argument recurs)
        self._memo = np.full(v.shape[:-2] + (2, v.shape[-2]), np.nan)

    @classmethod
    def from_params(cls, v: np.ndarray, n_action: int, action0: np.ndarray, P: Params) -> OnlineQ:
        """A learner with the step sizes, stopping rule and gradient form of parameters ``P``."""
        return cls(
            v,
            n_action,
            action0,
            P.theta_init,
            P.gamma,
            P.alpha0,
            P.alpha_t0,
            P.alpha_decay,
            P.epsilon,
            P.patience,
            P.freeze_on_convergence,
            P.divergence_limit,
            P.gradient == "exact",
        )

    @property
    def live(self) -> np.ndarray:
        """Learners neither frozen nor diverged."""
        return ~self.frozen & (self.diverged_at < 0)

    def hyper(self) -> tuple:
        """The hyperparameters as ``mecmodel.engine.learn_row`` reads them (fixed types)."""
        return (
            float(self.alpha0), float(self.t0), float(self.kappa), float(self.gamma), bool(self.exact),
            float(self.epsilon), int(self.patience), bool(self.freeze), float(self._limit), bool(self.descent),
        )  # fmt: skip

    def flat(self) -> tuple:
        """The arrays the engine updates, flattened to one row per learner (views: updated in place).

        Order: v_s transposed (B, D, M), v_a (B, M, A), w (B, M), a (B, A), state logits (B, M),
        the sigmoids' memo (B, 2, M), streak, converged_at, diverged_at, frozen (B,)."""
        M = self.w.shape[-1]
        B = self.w.size // M
        for name in ("v_a", "w", "a", "_zs_now", "_memo", "streak", "converged_at", "diverged_at", "frozen"):
            arr = getattr(self, name)
            if not (arr.flags.c_contiguous and arr.flags.writeable):
                setattr(self, name, np.array(arr))
        cached = self.__dict__.get("_v_sT")
        if cached is None or cached[0] is not self.v_s:  # the feature vectors are fixed: transposed once
            self._v_sT = cached = (self.v_s, np.ascontiguousarray(self.v_s.reshape(B, M, -1).transpose(0, 2, 1)))
        return (
            cached[1], self.v_a.reshape(B, M, -1), self.w.reshape(B, M), self.a.reshape(B, -1),
            self._zs_now.reshape(B, M), self._memo.reshape(B, 2, M), self.streak.reshape(B), self.converged_at.reshape(B),
            self.diverged_at.reshape(B), self.frozen.reshape(B),
        )  # fmt: skip

    def state_logits(self, x: np.ndarray) -> np.ndarray:
        """v_s . x for state features x (B..., D) -> (B..., M)."""
        zs = np.empty(self.w.shape)
        M = zs.shape[-1]
        engine.observe_batch(self.flat()[0], _rows(x, self.v_s.shape[:-2] + self.v_s.shape[-1:]), zs.reshape(-1, M))
        return zs

    def observe(self, x: np.ndarray) -> None:
        """Record the state features of the current block."""
        self._zs_now = self.state_logits(x)

    def learn(self, t: int, r: np.ndarray, dr_da: np.ndarray, x_next: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One update (28)/(35) after block t; returns (|TD error|, relative change), batch-shaped."""
        v_s, v_a, w, a, zs, memo, streak, conv, div, frozen = self.flat()
        batch = self.w.shape[:-1]
        td, rel = engine.learn_batch(
            int(t), self.hyper(), v_s, v_a, w, a, zs, memo,
            _rows(x_next, batch + self.v_s.shape[-1:]), _rows(r, batch).reshape(-1),
            _rows(dr_da, batch + self.a.shape[-1:]), streak, conv, div, frozen,
        )  # fmt: skip
        return td.reshape(batch), rel.reshape(batch)

    def summary(self, S: int) -> dict[str, np.ndarray]:
        """Per seed: share of the batch converged, median and last convergence block, first divergence."""
        conv = self.converged_at.reshape(S, -1).astype(float)
        conv[conv < 0] = np.nan
        div = self.diverged_at.reshape(S, -1)
        never = np.iinfo(np.int64).max
        return {
            "converged_fraction": np.isfinite(conv).mean(axis=1),
            "converged_block_median": _row_nanmedian(conv),
            "converged_block_max": np.where(
                np.isfinite(conv).all(axis=1), np.nanmax(np.nan_to_num(conv, nan=-1), axis=1), np.nan
            ),
            "diverged_block": np.where((div >= 0).any(axis=1), np.where(div >= 0, div, never).min(axis=1), -1),
        }


def _rows(x, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a C-contiguous float64 array of ``shape`` (broadcast if need be), rows flattened."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape != shape:
        x = np.broadcast_to(x, shape)
    x = np.ascontiguousarray(x)
    return x.reshape((-1,) + shape[len(shape) - 1 :]) if len(shape) > 1 else x.reshape(-1)


def _row_nanmedian(a: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a).any(axis=1)
    out = np.full(a.shape[0], np.nan)
    if ok.any():
        out[ok] = np.nanmedian(a[ok], axis=1)
    return out


def feature_vectors(ctx: PolicyContext, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """(S, *shape) fixed random feature vectors of (23)/(30), N(0, feature_std^2 / dim) entries."""
    P = ctx.params
    v = np.stack([stream(s, name).standard_normal(shape) for s in ctx.seeds])
    return v * (P.feature_std / np.sqrt(shape[-1]))


class Algorithm1(WDPolicy):
    """Algorithm 1 at every WD: p_k learned by (28a) from the squared TD error of (24).

    State of WD k (input to the features (23)): [q_k / (W queue_scale), log10(h_k) / 10,
    beta_k,1..n]; the action is p_k / p_max. ``whole_task`` gives the paper's binary offloading.
    """

    records = (VARIABLE_BY_NAME["alg1_td_error"], VARIABLE_BY_NAME["alg1_rel_change"])

    def __init__(self, whole_task: bool = False):
        self.whole_task = whole_task

    def state(self, obs: Observation) -> np.ndarray:
        """(S, K, n + 2) every WD's state vector (``mecmodel.engine.wd_state``)."""
        qscale = 1.0 / (self.P.task_cycles * self.P.queue_scale)
        return engine.wd_states(obs.q, obs.h, obs.beta, qscale)

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        P = self.P = ctx.params
        mu = feature_vectors(ctx, "wd_features", (P.K, P.M, P.n_slots + 3))
        self.agent = OnlineQ.from_params(mu, 1, np.array([P.p_init]), P)
        self.agent.observe(self.state(obs))

    def act(self, obs: Observation) -> np.ndarray:
        return self.agent.a[..., 0] * self.P.p_max

    def update(self, tr: Transition) -> dict[str, np.ndarray]:
        P = self.P
        if P.gradient == "exact":
            dr = tr.info.wd_cost_grad
        else:
            dr = np.full((self.ctx.S, P.K), P.w4 * P.tau * P.p_max)  # (26) as printed
        td, rel = self.agent.learn(tr.obs.t, tr.info.wd_cost, dr[..., None], self.state(tr.next_obs))
        return {"alg1_td_error": engine.row_means(td), "alg1_rel_change": engine.row_means(rel)}

    def summary(self) -> dict[str, dict[str, np.ndarray]]:
        return {"alg1": self.agent.summary(self.ctx.S)}


class Algorithm2(ServerPolicy):
    """Algorithm 2 at the server: the n slot rates learned by (35a) from the squared TD error of (31).

    State (input to the features (30)): [q^ser, q_1..q_K] / (W queue_scale); the action is
    f^ser / f^ser_max.
    """

    records = (VARIABLE_BY_NAME["alg2_td_error"], VARIABLE_BY_NAME["alg2_rel_change"])

    def state(self, obs: Observation) -> np.ndarray:
        """(S, K + 1) the server's state vector (``mecmodel.engine.server_state``)."""
        qscale = 1.0 / (self.P.task_cycles * self.P.queue_scale)
        return engine.server_states(np.asarray(obs.q_ser, dtype=float), np.asarray(obs.q, dtype=float), qscale)

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        P = self.P = ctx.params
        nu = feature_vectors(ctx, "server_features", (P.M, P.n_slots + P.K + 1))
        self.agent = OnlineQ.from_params(nu, P.n_slots, np.full(P.n_slots, P.f_ser_init), P)
        self.agent.observe(self.state(obs))

    def act(self, obs: Observation) -> np.ndarray:
        return self.agent.a * self.P.f_ser_max

    def update(self, tr: Transition) -> dict[str, np.ndarray]:
        P = self.P
        if P.gradient == "exact":
            dr = tr.info.server_cost_grad
        else:
            dr = 3.0 * P.w2 * P.tau * P.xi_ser * tr.action.f_ser**2 * P.f_ser_max  # (33) as printed
        td, rel = self.agent.learn(tr.obs.t, tr.info.server_cost, dr, self.state(tr.next_obs))
        return {"alg2_td_error": td, "alg2_rel_change": rel}

    def summary(self) -> dict[str, dict[str, np.ndarray]]:
        return {"alg2": self.agent.summary(self.ctx.S)}
