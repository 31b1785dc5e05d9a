"""Section V: sigmoid features, TD gradients (exact vs printed vs finite differences), the
simulator's dr/da for both algorithms, and the step-size conditions (36)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecmodel import channel, queues, simulation
from mecmodel.env import MECEnv
from mecmodel.params import ParamError, make_params
from mecmodel.policies import qlearning as agents

# --------------------------------------------------------------------------- sigmoid (23), (30)


@pytest.mark.filterwarnings("error")
def test_sigmoid_never_overflows() -> None:
    z = np.array([-np.inf, -1e308, -1e300, -1e5, -710.0, -50.0, -1.0, 0.0, 1.0, 50.0, 710.0, 1e5, 1e300, 1e308, np.inf])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        s = agents.sigmoid(z)
        s_neg = agents.sigmoid(-z)
    assert np.all(np.isfinite(s))
    assert np.all((s >= 0) & (s <= 1))
    assert np.all(np.diff(s) >= 0)
    assert s[0] == 0.0 and s[-1] == 1.0
    assert s[7] == 0.5
    np.testing.assert_allclose(s_neg, 1.0 - s, atol=1e-15)


def test_sigmoid_matches_logistic() -> None:
    z = np.linspace(-30, 30, 601)
    np.testing.assert_allclose(agents.sigmoid(z), 1.0 / (1.0 + np.exp(-z)), rtol=0, atol=4.5e-16)  # two ulps near 1


# --------------------------------------------------------------------------- gradients (26)-(27), (33)-(34)


# The documented formulas, written over whole arrays (the engine computes them per learner in
# mecmodel.engine.learn_row; test_online_q_takes_the_projected_gradient_step checks its step).
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


def _logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class _Problem:
    """A random batch of TD errors delta(a, w) with a smooth per-block cost r(a)."""

    def __init__(self, seed: int, gamma: float, A: int, B: int = 3, M: int = 6, D: int = 4):
        rng = np.random.default_rng(seed)
        self.A, self.gamma = A, gamma
        self.v = rng.normal(0.0, 1.5, (B, M, A + D))
        self.w = rng.normal(0.0, 2.0, (B, M))
        self.x_now, self.x_next = rng.normal(size=(B, D)), rng.normal(size=(B, D))
        self.a = rng.uniform(0.1, 0.9, (B, A))
        self.c = rng.normal(size=(B, A))

    def r(self, a: np.ndarray) -> np.ndarray:
        return np.sum(self.c * np.sin(3.0 * a) + a**2, axis=-1)

    def dr(self, a: np.ndarray) -> np.ndarray:
        return 3.0 * self.c * np.cos(3.0 * a) + 2.0 * a

    def phis(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        va, vs = self.v[..., : self.A], self.v[..., self.A :]
        za = np.einsum("bma,ba->bm", va, a)
        return _logistic(np.einsum("bmd,bd->bm", vs, self.x_now) + za), _logistic(
            np.einsum("bmd,bd->bm", vs, self.x_next) + za
        )

    def delta(self, a: np.ndarray, w: np.ndarray) -> np.ndarray:
        now, nxt = self.phis(a)
        return self.r(a) + self.gamma * np.sum(w * nxt, axis=-1) - np.sum(w * now, axis=-1)

    def fd(self, h: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
        """Central differences of delta^2 in each action entry and each weight."""
        ga, gw = np.zeros_like(self.a), np.zeros_like(self.w)
        for j in range(self.a.shape[1]):
            e = np.zeros_like(self.a)
            e[:, j] = h
            ga[:, j] = (self.delta(self.a + e, self.w) ** 2 - self.delta(self.a - e, self.w) ** 2) / (2 * h)
        for m in range(self.w.shape[1]):
            e = np.zeros_like(self.w)
            e[:, m] = h
            gw[:, m] = (self.delta(self.a, self.w + e) ** 2 - self.delta(self.a, self.w - e) ** 2) / (2 * h)
        return ga, gw

    def grads(self, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        now, nxt = self.phis(self.a)
        d = self.delta(self.a, self.w)
        return gradients(d, self.dr(self.a), self.gamma, self.w, self.v[..., : self.A], now, nxt, exact)

    def feature_term(self) -> np.ndarray:
        """sum_i w_i v_i,a (gamma phi'_{t+1,i} - phi'_{t,i}), by explicit loops."""
        now, nxt = self.phis(self.a)
        B, M = self.w.shape
        s = np.zeros_like(self.a)
        for b in range(B):
            for j in range(self.A):
                for i in range(M):
                    slope = self.gamma * nxt[b, i] * (1 - nxt[b, i]) - now[b, i] * (1 - now[b, i])
                    s[b, j] += self.w[b, i] * self.v[b, i, j] * slope
        return s


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gamma=st.floats(0.05, 0.999), A=st.integers(1, 3))
def test_exact_gradients_match_finite_differences(seed: int, gamma: float, A: int) -> None:
    pb = _Problem(seed, gamma, A)
    ga, gw = pb.grads(exact=True)
    fa, fw = pb.fd()
    scale = 1.0 + np.abs(pb.delta(pb.a, pb.w)).max() * (1.0 + np.abs(pb.dr(pb.a)).max() + np.abs(pb.w).sum())
    np.testing.assert_allclose(ga, fa, rtol=1e-6, atol=1e-7 * scale)
    np.testing.assert_allclose(gw, fw, rtol=1e-6, atol=1e-7 * scale)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gamma=st.floats(0.05, 0.999), A=st.integers(1, 3))
def test_printed_gradients_are_the_documented_formulas(seed: int, gamma: float, A: int) -> None:
    """(26)/(33) as printed: delta [dr/da - S]; (27)/(34): delta (gamma phi_{t+1} - phi_t)."""
    pb = _Problem(seed, gamma, A)
    pa, pw = pb.grads(exact=False)
    ea, ew = pb.grads(exact=True)
    d = pb.delta(pb.a, pb.w)[:, None]
    S = pb.feature_term()
    now, nxt = pb.phis(pb.a)
    np.testing.assert_allclose(pa, d * (pb.dr(pb.a) - S), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pw, d * (gamma * nxt - now), rtol=1e-12, atol=1e-14)
    # exact = 2 x printed for the weights; for the action the factor 2 and the sign of the sum term
    np.testing.assert_allclose(ew, 2.0 * pw, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ea / 2.0 - d * pb.dr(pb.a), d * S, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pa - d * pb.dr(pb.a), -d * S, rtol=1e-9, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t=st.integers(0, 5000), A=st.integers(1, 3))
def test_online_q_takes_the_projected_gradient_step(seed: int, t: int, A: int) -> None:
    """(28)/(35): w <- w - alpha_t d(delta^2)/dw, a <- clip(a - alpha_t d(delta^2)/da, 0, 1)."""
    pb = _Problem(seed, 0.9, A)
    alpha0, t0, kappa = 0.05, 50.0, 0.75
    ag = agents.OnlineQ(pb.v, A, np.full(A, 0.5), 1.0, pb.gamma, alpha0, t0, kappa, 1e-3, 10, False, 1e300, True)
    ag.w = pb.w.copy()
    ag.a = pb.a.copy()
    ag.observe(pb.x_now)
    ag.learn(t, pb.r(pb.a), pb.dr(pb.a), pb.x_next)
    fa, fw = pb.fd()
    alpha = alpha0 / (1.0 + t / t0) ** kappa
    np.testing.assert_allclose(ag.w, pb.w - alpha * fw, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ag.a, np.clip(pb.a - alpha * fa, 0.0, 1.0), rtol=1e-7, atol=1e-8)


class _PlainQ:
    """Reference learner: (23), (24)/(31), the gradients, (28)/(35) and the stopping and divergence
    rules of docs/model.md written out directly over the whole batch, for comparison with OnlineQ."""

    def __init__(self, v, A, a0, w0, gamma, alpha0, t0, kappa, eps, patience, freeze, limit, exact):
        self.va, self.vs = v[..., :A], v[..., A:]
        batch = v.shape[:-2]
        self.a = np.array(np.broadcast_to(a0, batch + (A,)), dtype=float)
        self.w = np.full(v.shape[:-1], float(w0))
        self.gamma, self.alpha = gamma, lambda t: alpha0 / (1.0 + t / t0) ** kappa
        self.eps, self.patience, self.freeze, self.limit, self.exact = eps, patience, freeze, limit, exact
        self.streak = np.zeros(batch, dtype=int)
        self.converged_at = np.full(batch, -1)
        self.diverged_at = np.full(batch, -1)
        self.frozen = np.zeros(batch, dtype=bool)

    def observe(self, x):
        self.zs = np.einsum("...md,...d->...m", self.vs, x)

    def learn(self, t, r, dr, x_next):
        zn = np.einsum("...md,...d->...m", self.vs, x_next)
        za = np.einsum("...ma,...a->...m", self.va, self.a)
        pn, px = _logistic(self.zs + za), _logistic(zn + za)
        g = self.gamma
        d = r + g * (self.w * px).sum(-1) - (self.w * pn).sum(-1)
        S = np.einsum("...m,...ma->...a", self.w * (g * px * (1 - px) - pn * (1 - pn)), self.va)
        k = 2.0 if self.exact else 1.0
        ga = k * d[..., None] * (dr + S if self.exact else dr - S)
        gw = k * d[..., None] * (g * px - pn)
        w_new = self.w - self.alpha(t) * gw
        a_new = np.clip(self.a - self.alpha(t) * ga, 0.0, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.linalg.norm(w_new - self.w, axis=-1) / np.linalg.norm(self.w, axis=-1)
        norm = np.linalg.norm(w_new, axis=-1)
        bad = ~(np.isfinite(norm) & np.isfinite(a_new).all(-1) & np.isfinite(d)) | (norm > self.limit)
        live = ~self.frozen & (self.diverged_at < 0)
        self.diverged_at[live & bad] = t
        ok = live & ~bad
        self.w = np.where(ok[..., None], w_new, self.w)
        self.a = np.where(ok[..., None], a_new, self.a)
        rel = np.where(ok, rel, 0.0)
        self.streak = np.where(ok & (rel <= self.eps), self.streak + 1, np.where(ok, 0, self.streak))
        done = ok & (self.streak >= self.patience) & (self.converged_at < 0)
        self.converged_at[done] = t
        if self.freeze:
            self.frozen |= done
        self.zs = zn
        return np.abs(np.where(np.isfinite(d), d, np.nan)), rel


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("shape", [(2, 700, 30, 1, 7), (900, 30, 5, 9)], ids=["wd", "server"])
def test_online_q_trajectory_matches_plain_update(shape: tuple, exact: bool) -> None:
    """Many blocks of OnlineQ against the plain formulas: enough learners to span several of its
    chunks, and a run in which learners converge and freeze, and a few diverge, as it goes."""
    rng = np.random.default_rng(1)
    *batch, M, A, D = shape
    batch = tuple(batch)
    v = rng.normal(0.0, 2.0 / np.sqrt(A + D), batch + (M, A + D))
    args = (v, A, np.full(A, 0.5), 1.0, 0.9, 0.05, 50.0, 0.75, 2e-2, 3, True, 50.0, exact)
    ours, ref = agents.OnlineQ(*args), _PlainQ(*args)
    x = rng.normal(size=batch + (D,))
    ours.observe(x)
    ref.observe(x)
    scale = np.exp(rng.normal(0.0, 2.5, batch))  # a spread of cost scales: some learners settle, some blow up
    frozen_seen = []
    for t in range(200):
        x = rng.normal(size=batch + (D,))
        r, dr = rng.normal(size=batch) * scale, rng.normal(size=batch + (A,))
        td, rel = ours.learn(t, r, dr, x)
        td_ref, rel_ref = ref.learn(t, r, dr, x)
        np.testing.assert_allclose(td, td_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rel, rel_ref, rtol=1e-9, atol=1e-14)
        frozen_seen.append(ref.frozen.mean())
    np.testing.assert_allclose(ours.w, ref.w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.a, ref.a, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(ours.converged_at, ref.converged_at)
    np.testing.assert_array_equal(ours.diverged_at, ref.diverged_at)
    # the run did exercise frozen and diverged learners alongside live ones
    assert (ref.diverged_at >= 0).any()
    assert max(frozen_seen) > 0.3 and min(frozen_seen) < 0.1


@pytest.mark.parametrize("descent", [False, True], ids=["alg1", "descent"])
def test_reused_sigmoids_change_no_bit(descent: bool) -> None:
    """learn_row reuses the last update's sigmoid where its argument recurs (an action clipped at 0
    or 1, or frozen): against a twin whose memo is wiped before every update (every sigmoid
    computed afresh), every array is the same bit for bit, over a run where many actions stick."""
    rng = np.random.default_rng(7)
    batch, M, A, D = (3, 40), 30, 1, 7
    v = rng.normal(0.0, 2.0 / np.sqrt(A + D), batch + (M, A + D))
    args = (v, A, np.full(A, 0.5), 1.0, 0.9, 0.5, 50.0, 0.75, 1e-3, 5, True, 1e6, True, descent)
    ours, fresh = agents.OnlineQ(*args), agents.OnlineQ(*args)
    x = rng.normal(size=batch + (D,))
    ours.observe(x)
    fresh.observe(x)
    stuck = 0
    for t in range(300):
        x = rng.normal(size=batch + (D,))
        r, dr = rng.normal(size=batch) * 5.0, rng.normal(size=batch + (A,)) * 5.0
        before = ours.a.copy()
        fresh._memo[...] = np.nan
        np.testing.assert_array_equal(ours.learn(t, r, dr, x), fresh.learn(t, r, dr, x))
        stuck += int((ours.a == before).all(axis=-1).sum())
    for name in ("w", "a", "_zs_now", "streak", "converged_at", "diverged_at", "frozen"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(fresh, name))
    assert stuck > 0.2 * 300 * 120  # the reuse was exercised: many updates left an action where it was


# --------------------------------------------------------------------------- the simulator's dr/da

_LAM = 2.0**16  # cycles are scaled by this so floor() of the capacity errs by < 2e-5 of a cycle


class _Spy:
    """Records, block by block, what the environment's step saw and applied and what the learners
    were fed (the Python loop, which steps the environment from outside: ``python_loop=True``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.bits, self.wd, self.ser, self.learn_wd, self.learn_ser = [], [], [], [], []
        orig_step = MECEnv.step
        orig_learn = agents.OnlineQ.learn

        def step(env, action):
            out = orig_step(env, action)
            info, P = out[2], env.P
            self.bits.append((np.array(info.obs.h), np.array(info.action.p)))
            rule, binary = P.local_service, bool(info.action.whole_task)
            self.wd.append((np.array(info.obs.q), P.task_cycles, env.local_max, rule, binary, info.service))
            self.ser.append((np.array(info.obs.q_ser), np.array(info.action.f_ser)))
            return out

        def learn(ag, t, r, dr_da, x_next):
            (self.learn_wd if ag.v_a.ndim == 4 else self.learn_ser).append(np.array(dr_da))
            return orig_learn(ag, t, r, dr_da, x_next)

        monkeypatch.setattr(MECEnv, "step", step)
        monkeypatch.setattr(agents.OnlineQ, "learn", learn)
        self.orig_bits, self.orig_wd, self.orig_ser = channel.bits_per_slot, queues.wd_service, queues.server_service


def _simulate(scheme: str, K: int, seeds: list[int], blocks: int, over: dict) -> None:
    P = make_params("default", {**over, "K": K})
    simulation.simulate_arrays(P, scheme, seeds, blocks, python_loop=True)


def _wd_energy(spy: _Spy, P, h, p, q, W, local_max, rule, binary):
    """w4 (E_loc + E_off) of one block as a function of the commanded power, capacity not floored."""
    cap = spy.orig_bits(h, p, P.bandwidth, P.snr_gap, P.tau) / P.zeta
    assert np.all(q * _LAM < 2.0**53)
    svc = spy.orig_wd(q * _LAM, cap * _LAM, W * _LAM, local_max * _LAM, rule, binary)
    local, off = svc.local / _LAM, svc.offload / _LAM
    p_tx = np.where(off > 0, channel.power_for_bits(h, P.zeta * off, P.bandwidth, P.snr_gap, P.tau), 0.0)
    e_loc = queues.local_energy(local, P.n_slots, P.tau, P.xi_wd)
    return P.w4 * (e_loc + queues.offload_energy(p_tx, P.tau))


@pytest.mark.parametrize("rule", ["mod_w", "head", "single"])
@pytest.mark.parametrize("scheme", ["proposed", "binary"])
def test_simulator_wd_dr_dp_matches_finite_difference(monkeypatch, rule: str, scheme: str) -> None:
    """dr/dp^ the simulator feeds Algorithm 1 equals d/dp^ of r = w3 q + w4 (E_loc + E_off)."""
    over = {"local_service": rule, "zeta": 1e-2, "gradient": "exact"}
    P = make_params("default", {**over, "K": 6})
    spy = _Spy(monkeypatch)
    _simulate(scheme, 6, [0, 1], 40, over)
    assert len(spy.learn_wd) == len(spy.wd) == len(spy.bits) == 40
    checked = nonzero = busy_cpu = 0
    for (h, p), (q, W, local_max, r_, b_, svc), dr in zip(spy.bits, spy.wd, spy.learn_wd, strict=True):
        assert (r_, b_) == (rule, scheme == "binary")
        dp = 1e-6 * P.p_max
        with np.errstate(invalid="ignore"):  # p - dp < 0 where p ~ 0: NaN there, excluded by `smooth`
            e = [_wd_energy(spy, P, h, p + k * dp, q, W, local_max, rule, b_) for k in (-1, 0, 1)]
        left, right = (e[1] - e[0]) / dp, (e[2] - e[1]) / dp
        fd = (e[2] - e[0]) / (2 * dp) * P.p_max
        # curvature alone makes the one-sided slopes differ by ~dp / p; a kink by O(1)
        tol = 1e-3 * np.maximum(np.abs(left), np.abs(right)) * P.p_max + 1e-12
        smooth = (p > 2 * dp) & (np.abs(left - right) * P.p_max <= tol)  # no kink inside [p - dp, p + dp]
        np.testing.assert_allclose(dr[..., 0][smooth], fd[smooth], rtol=1e-4, atol=1e-9)
        checked += int(smooth.sum())
        nonzero += int((smooth & (np.abs(fd) > 1e-6)).sum())
        busy_cpu += int((smooth & svc.uncapped & (svc.dlocal_doff == 0)).sum())
    assert checked >= 300
    if scheme == "proposed":
        assert nonzero >= 200  # the offload tracks p often enough that this is a real check
        if rule == "head":
            assert busy_cpu >= 50  # and the CPU-stays-busy branch (dL/dR = 0) is exercised


def test_simulator_printed_gradient_terms(monkeypatch) -> None:
    """gradient=printed: dr/dp = w4 tau (26) and dr/df_i = 3 w2 tau xi f_i^2 at the commanded rate (33)."""
    P = make_params("default", {"gradient": "printed", "K": 3})
    spy = _Spy(monkeypatch)
    _simulate("proposed", 3, [0], 10, {"gradient": "printed"})
    for dr in spy.learn_wd:
        np.testing.assert_allclose(dr, P.w4 * P.tau * P.p_max, rtol=1e-15)
    for (_, f), dr in zip(spy.ser, spy.learn_ser, strict=True):
        np.testing.assert_allclose(dr, 3 * P.w2 * P.tau * P.xi_ser * f**2 * P.f_ser_max, rtol=1e-15)


def _server_fd(spy: _Spy, P, q_ser: np.ndarray, f: np.ndarray):
    """Central and one-sided differences of r = w1 q + w2 E_ser in each slot rate, in units of f_ser_max."""
    df = 1e-7 * P.f_ser_max

    def r(ff):
        return P.w2 * queues.server_energy(spy.orig_ser(q_ser, ff, P.tau)[1], P.tau, P.xi_ser)

    n = f.shape[-1]
    c, lr = np.zeros_like(f), np.zeros_like(f)
    r0 = r(f)
    for i in range(n):
        e = np.zeros_like(f)
        e[:, i] = df
        rp, rm = r(f + e), r(f - e)
        c[:, i] = (rp - rm) / (2 * df) * P.f_ser_max
        lr[:, i] = np.abs((rp - r0) - (r0 - rm)) / df * P.f_ser_max
    return c, lr


def _server_cases(monkeypatch, **over):
    over = {"gradient": "exact", **over}
    P = make_params("default", {"K": 6, **over})
    spy = _Spy(monkeypatch)
    _simulate("proposed", 6, [0, 1, 2], 40, over)
    out = []
    for (q_ser, f), dr in zip(spy.ser, spy.learn_ser, strict=True):
        served, _ = spy.orig_ser(q_ser, f, P.tau)
        # a slot the queue runs dry in: served some, but less than the commanded f tau
        partial = ((served > 0.5) & (served < f * P.tau - 0.5)).any(axis=-1)
        fd, kink = _server_fd(spy, P, q_ser, f)
        # curvature alone makes the one-sided slopes differ by ~2e-7 f_max / f; a kink by O(1)
        smooth = (kink <= 1e-3 * np.abs(fd) + 1e-15) & (f > 1e-6 * P.f_ser_max)
        out.append((partial, smooth, dr, fd))
    return out


def test_simulator_server_dr_df_when_the_queue_outlasts_the_block(monkeypatch) -> None:
    checked = 0
    # a slow server (2 GHz at most) so that the queue outlasts the block
    for partial, smooth, dr, fd in _server_cases(monkeypatch, f_ser_max=2e9):
        sel = smooth & ~partial[:, None]
        # the central difference's own rounding: eps |r| / (df / f_max) ~ 1e-16 x 1e-2 / 2e-7, about
        # 1e-11 (1e-9 of the largest slope), which a slope of 1e-6 feels at 1e-5
        np.testing.assert_allclose(dr[sel], fd[sel], rtol=1e-5, atol=1e-8 * np.abs(fd).max())
        checked += int((sel & (np.abs(fd) > 0)).sum())
    assert checked >= 20


def test_simulator_server_dr_df_when_the_queue_runs_dry(monkeypatch) -> None:
    # Default preset: the queue runs dry inside most blocks, so raising a busy slot's rate moves
    # work out of the partial slot (the cross term of docs/model.md).
    checked = 0
    for partial, smooth, dr, fd in _server_cases(monkeypatch):
        sel = smooth & partial[:, None]
        np.testing.assert_allclose(dr[sel], fd[sel], rtol=1e-5, atol=1e-15)
        checked += int((sel & (np.abs(fd) > 0)).sum())
    assert checked >= 5  # non-vacuous: 10 such (slot, block) entries at this seed set


# --------------------------------------------------------------------------- step sizes (36)


def test_step_size_hand_values() -> None:
    assert agents.step_size(0, 0.02, 50.0, 0.75) == pytest.approx(0.02)
    assert agents.step_size(50, 0.02, 50.0, 0.75) == pytest.approx(0.02 / 2**0.75)
    assert agents.step_size(150, 0.02, 50.0, 1.0) == pytest.approx(0.005)
    np.testing.assert_allclose(agents.step_size(np.arange(3), 1.0, 1.0, 1.0), [1.0, 0.5, 1.0 / 3.0])


def _block_sum(N: int, alpha0: float, t0: float, kappa: float, power: int = 1) -> float:
    t = np.arange(N, 2 * N)
    return float(np.sum(agents.step_size(t, alpha0, t0, kappa) ** power))


@pytest.mark.parametrize("kappa", [0.51, 0.6, 0.75, 0.9, 1.0])
def test_step_sizes_satisfy_36(kappa: float) -> None:
    alpha0, t0 = 0.02, 50.0
    Ns = [int(t0) * 2**k for k in range(14)]  # 50 ... 409600
    sums = [_block_sum(N, alpha0, t0, kappa) for N in Ns]
    # sum alpha = inf: every doubling block [N, 2N) adds at least N alpha_2N >= alpha0 t0 / 3 (N >= t0),
    # and for kappa < 1 these blocks grow without bound
    assert min(sums) >= alpha0 * t0 / 3
    if kappa < 1:
        assert all(b > a for a, b in itertools.pairwise(sums))
    # sum alpha^2 < inf: the doubling blocks of alpha^2 shrink geometrically, their ratio falling
    # to 2^(1 - 2 kappa) < 1
    sq = [_block_sum(N, alpha0, t0, kappa, 2) for N in Ns]
    ratios = np.array([b / a for a, b in itertools.pairwise(sq)])
    limit = 2 ** (1 - 2 * kappa)
    assert np.all(np.diff(ratios) < 0)
    assert np.all(ratios[-5:] < 1.0)
    assert abs(ratios[-1] - limit) < 0.1 * (1 - limit)
    # and the partial sum stays below the integral bound alpha0^2 (1 + t0 / (2 kappa - 1))
    total = agents.step_size(np.arange(Ns[-1] * 2), alpha0, t0, kappa) ** 2
    assert total.sum() <= alpha0**2 * (1 + t0 / (2 * kappa - 1))


@pytest.mark.parametrize("bad", [0.5, 0.3, 0.0, -1.0, 1.01, 2.0])
def test_params_reject_step_decay_outside_36(bad: float) -> None:
    with pytest.raises(ParamError, match=r"alpha_decay: .*\(0\.5, 1\]"):
        make_params("default", {"alpha_decay": bad})


def test_params_accept_step_decay_inside_36() -> None:
    assert make_params("default", {"alpha_decay": 1.0}).alpha_decay == 1.0
    assert make_params("default", {"alpha_decay": 0.5000001}).alpha_decay == 0.5000001
    assert 0.5 < make_params().alpha_decay <= 1.0 and 0.5 < make_params("paper").alpha_decay <= 1.0
