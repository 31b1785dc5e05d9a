"""Parametric online Q-learning (section V): Algorithm 1 (WDs) and Algorithm 2 (server).

:class:`Algorithm1` (a WD policy) and :class:`Algorithm2` (a server policy) hold everything of
the two algorithms: feature vectors (23)/(30) and the input scaling of their states, rewards
(24)/(31), TD errors, gradients (26)-(27), (33)-(34), updates (28), (35), step sizes (36), and
the convergence and divergence bookkeeping. Both algorithms have the same form, so one
vectorised learner class, :class:`OnlineQ`, serves both:

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

from ..env import Observation, compiled, stream
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


def row_norm(x: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis; for real x the same bits as ``np.linalg.norm(x, axis=-1)``, less overhead."""
    return np.sqrt(np.add.reduce(x * x, axis=-1))


def td_error(r, gamma, w, phi_now, phi_next):
    """(24)/(31): r + gamma w^T phi(x~_{t+1}) - w^T phi(x~_t)."""
    return r + gamma * np.add.reduce(w * phi_next, axis=-1) - np.add.reduce(w * phi_now, axis=-1)


def gradients(delta, dr_da, gamma, w, v_a, phi_now, phi_next, exact: bool):
    """Gradients of the squared TD error with respect to the action and the weights.

    delta: (B,), dr_da: (B, A), w: (B, M), v_a: (B, M, A) feature weights on the
    action, phi_*: (B, M). Returns (g_a (B, A), g_w (B, M)).

    exact=True differentiates (24)/(31):
        d(d^2)/da = 2 d [dr/da + sum_i w_i v_i,a (gamma phi'_{t+1,i} - phi'_{t,i})]
        d(d^2)/dw = 2 d (gamma phi_{t+1} - phi_t)
    exact=False follows the printed (26)/(33) and (27)/(34):
        d [dr/da - sum_i w_i v_i,a (gamma phi'_{t+1,i} - phi'_{t,i})],  d (gamma phi_{t+1} - phi_t)
    with phi' = phi (1 - phi).
    """
    g_next = gamma * phi_next
    slope = g_next * (1.0 - phi_next) - phi_now * (1.0 - phi_now)  # (B, M)
    s = np.einsum("...m,...ma->...a", w * slope, v_a)
    dphi = g_next - phi_now
    d = delta[..., None]
    if exact:
        return 2.0 * d * (dr_da + s), 2.0 * d * dphi
    return d * (dr_da - s), d * dphi


class OnlineQ:
    """A batch of independent parametric online Q-learners sharing one form.

    v: (B..., M, A + D) fixed feature vectors (mu for WDs, nu for the server), the
    first A columns multiplying the normalised action, the rest the state features.
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
        engine: str = "numpy",
    ):
        self.v_a = np.ascontiguousarray(v[..., :n_action])
        self.v_s = np.ascontiguousarray(v[..., n_action:])
        batch = v.shape[:-2]
        self.a = np.array(np.broadcast_to(action0, batch + (n_action,)), dtype=float)
        self.w = np.full(v.shape[:-1], float(w0))
        self.gamma, self.alpha0, self.t0, self.kappa = gamma, alpha0, t0, kappa
        self.epsilon, self.patience, self.freeze, self.limit, self.exact = epsilon, patience, freeze, limit, exact
        self.streak = np.zeros(batch, dtype=np.int64)
        self.converged_at = np.full(batch, -1, dtype=np.int64)
        self.diverged_at = np.full(batch, -1, dtype=np.int64)
        self.frozen = np.zeros(batch, dtype=bool)
        self.live = np.ones(batch, dtype=bool)  # neither frozen nor diverged
        self._limit = min(float(limit), sys.float_info.max)  # a finite bound: an infinite norm is bad
        self._zs_now: np.ndarray | None = None
        self._fast = compiled(engine)  # engine numba: the same update through mecmodel.fast's kernels

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
            P.engine,
        )

    def state_logits(self, x: np.ndarray) -> np.ndarray:
        """v_s . x for state features x (B..., D) -> (B..., M)."""
        return np.einsum("...md,...d->...m", self.v_s, x)

    def observe(self, x: np.ndarray) -> None:
        """Record the state features of the current block."""
        self._zs_now = np.ascontiguousarray(self.state_logits(x))

    def learn(self, t: int, r: np.ndarray, dr_da: np.ndarray, x_next: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One update (28)/(35) after block t; returns (|TD error|, relative change)."""
        if self._fast is not None:
            return self._fast.learn(self, t, float(step_size(t, self.alpha0, self.t0, self.kappa)), r, dr_da, x_next)
        zs_next = self.state_logits(x_next)
        za = np.einsum("...ma,...a->...m", self.v_a, self.a)
        phi_now = sigmoid(self._zs_now + za)
        phi_next = sigmoid(zs_next + za)
        delta = td_error(r, self.gamma, self.w, phi_now, phi_next)
        g_a, g_w = gradients(delta, dr_da, self.gamma, self.w, self.v_a, phi_now, phi_next, self.exact)
        alpha = float(step_size(t, self.alpha0, self.t0, self.kappa))
        w_new = self.w - alpha * g_w  # (28b)/(35b)
        a_new = np.minimum(np.maximum(self.a - alpha * g_a, 0.0), 1.0)  # (28a)/(35a), projected on [0, max]
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = row_norm(w_new - self.w) / row_norm(self.w)
        # A learner goes bad when its weight norm leaves [0, limit] (NaN included: NaN <= limit is
        # false), its action is NaN (the projection keeps every other value in [0, 1]) or its TD
        # error is not finite; a live one is neither frozen nor diverged.
        bad = ~(row_norm(w_new) <= self._limit) | ~np.isfinite(delta)
        if a_new.shape[-1] == 1:
            bad |= np.isnan(a_new[..., 0])
        else:
            bad |= np.isnan(a_new).any(axis=-1)
        if self.live.all() and not bad.any():  # the usual case: every learner steps
            self.w, self.a = w_new, a_new
            # (rel <= epsilon) is false for NaN, so a NaN change restarts the streak, as before.
            self.streak = np.where(rel <= self.epsilon, self.streak + 1, 0)
            if self.streak.max() >= self.patience:
                self._converge(t, self.live)
        else:
            live = self.live
            self.diverged_at[live & bad] = t
            ok = live & ~bad
            self.w = np.where(ok[..., None], w_new, self.w)
            self.a = np.where(ok[..., None], a_new, self.a)
            rel = np.where(ok, rel, 0.0)
            self.streak = np.where(ok & (rel <= self.epsilon), self.streak + 1, np.where(ok, 0, self.streak))
            self._converge(t, ok)
            self.live = ~self.frozen & (self.diverged_at < 0)
        self._zs_now = zs_next
        return np.abs(np.where(np.isfinite(delta), delta, np.nan)), rel

    def _converge(self, t: int, ok: np.ndarray) -> None:
        """Mark learners whose streak reached ``patience`` as converged at t (and freeze them)."""
        done = ok & (self.streak >= self.patience) & (self.converged_at < 0)
        if done.any():
            self.converged_at[done] = t
            if self.freeze:
                self.frozen |= done
                self.live = ~self.frozen & (self.diverged_at < 0)

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

    _compiled_state = None  # mecmodel.fast.wd_state under engine numba (set in reset)

    def __init__(self, whole_task: bool = False):
        self.whole_task = whole_task

    def state(self, obs: Observation) -> np.ndarray:
        qscale = 1.0 / (self.P.task_cycles * self.P.queue_scale)
        if self._compiled_state is not None:  # engine numba: the same vector from one compiled call
            return self._compiled_state(obs.q, obs.h, obs.beta, qscale)
        return np.concatenate([(obs.q * qscale)[..., None], (np.log10(obs.h) * 0.1)[..., None], obs.beta], axis=-1)

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        P = self.P = ctx.params
        self._compiled_state = getattr(compiled(P.engine), "wd_state", None)
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
        return {"alg1_td_error": td.sum(axis=1) / P.K, "alg1_rel_change": rel.sum(axis=1) / P.K}

    def summary(self) -> dict[str, dict[str, np.ndarray]]:
        return {"alg1": self.agent.summary(self.ctx.S)}


class Algorithm2(ServerPolicy):
    """Algorithm 2 at the server: the n slot rates learned by (35a) from the squared TD error of (31).

    State (input to the features (30)): [q^ser, q_1..q_K] / (W queue_scale); the action is
    f^ser / f^ser_max.
    """

    _compiled_state = None  # mecmodel.fast.server_state under engine numba (set in reset)

    def state(self, obs: Observation) -> np.ndarray:
        qscale = 1.0 / (self.P.task_cycles * self.P.queue_scale)
        if self._compiled_state is not None:  # engine numba: the same vector from one compiled call
            return self._compiled_state(obs.q_ser, obs.q, qscale)
        return np.concatenate([(obs.q_ser * qscale)[:, None], obs.q * qscale], axis=-1)

    def reset(self, ctx: PolicyContext, obs: Observation) -> None:
        super().reset(ctx, obs)
        P = self.P = ctx.params
        self._compiled_state = getattr(compiled(P.engine), "server_state", None)
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
