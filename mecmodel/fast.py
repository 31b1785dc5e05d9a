"""The optional compiled engine (``engine: numba``; ``pip install 'mecmodel[fast]'``).

Numba kernels replace the numpy code that runs every block, a few calls instead of about 200
small numpy calls:

* :func:`env_step` (kernel ``_env_step``): the physics of :meth:`mecmodel.env.MECEnv.step`:
  partition (3)-(4) by :func:`mecmodel.queues.wd_service`'s rules, local computing (2),
  offloading (5), the server (6)-(7), the cost (8), the transitions (1) and (6), and the learners'
  knowledge of the environment (each agent's own cost term of (24)/(31) and its gradient
  (26)/(33)).
* :func:`learn`: :meth:`mecmodel.policies.qlearning.OnlineQ.learn` as ``_logits`` (the logits of
  the features (23)/(30)), numpy's vectorised exp, and ``_update`` (TD error (24)/(31), gradients
  (26)-(27)/(33)-(34), updates (28)/(35), the stopping and divergence bookkeeping).

The equations are the numpy path's, element by element; what differs is the order of sums, libm's
log1p and expm1 for numpy's, and the sigmoid written 1 / (1 + exp(-z)) for (1 + tanh(z / 2)) / 2,
so a run agrees with the default engine to 1e-9 relative per value over tens of blocks and is not
the same bits (``tests/test_fast.py``; ``docs/model.md`` note M). The engine is a model parameter,
so its runs have their own model id and never mix with the default's.

Importing this module imports numba; the kernels compile on first use and are cached on disk.
"""

from __future__ import annotations

import math

import numpy as np

try:
    import numba
except ImportError as err:  # pragma: no cover - depends on the environment
    from .params import ParamError

    raise ParamError("engine: 'numba' needs numba; install it with pip install 'mecmodel[fast]'") from err

LN2 = math.log(2.0)
RULES = {"head": 0, "mod_w": 1, "single": 2}


@numba.njit(cache=True, nogil=True)
def _nmin(a: float, b: float) -> float:
    """np.minimum for scalars: NaN if either is NaN."""
    if a != a or b != b:
        return math.nan
    return a if a < b else b


@numba.njit(cache=True, nogil=True)
def _nmax(a: float, b: float) -> float:
    if a != a or b != b:
        return math.nan
    return a if a > b else b


@numba.njit(cache=True, nogil=True)
def _env_step(q, h, p, f, q_ser, beta, sc, rule, binary):  # fmt: skip
    """One block for every seed and WD; ``sc`` holds the scalar parameters (see :func:`env_step`)."""
    S, K = q.shape
    n = f.shape[1]
    W, local_max, tau, bw, gap, zeta = sc[0], sc[1], sc[2], sc[3], sc[4], sc[5]
    xi_wd, xi_ser, w1, w2, w3, w4, p_max, f_ser_max = sc[6], sc[7], sc[8], sc[9], sc[10], sc[11], sc[12], sc[13]
    # Four arrays (one boxing each on return): per WD, per WD flags, per slot, per seed.
    wd = np.empty((11, S, K))
    local, off, dlocal, p_tx, e_loc, e_off, arrivals, q_next, wd_cost, wd_grad, p_app = (
        wd[0], wd[1], wd[2], wd[3], wd[4], wd[5], wd[6], wd[7], wd[8], wd[9], wd[10]
    )  # fmt: skip
    flags = np.zeros((2, S, K), dtype=np.bool_)
    uncapped, stuck = flags[0], flags[1]
    slot = np.empty((4, S, n))
    served, f_eff, s_grad, f_app = slot[0], slot[1], slot[2], slot[3]
    seed = np.empty((7, S))
    terms, e_ser, q_ser_next, server_cost = seed[0:4], seed[4], seed[5], seed[6]
    for s in range(S):
        q_sum = 0.0
        e_sum = 0.0
        off_sum = 0.0
        for k in range(K):
            # the action space is a box: commands are clipped to [0, p_max] (NaN stays NaN)
            qk, hk, pk = q[s, k], h[s, k], _nmin(_nmax(p[s, k], 0.0), p_max)
            p_app[s, k] = pk
            # (3): the back-end cycles the commanded power can carry in the offloading slot
            cap = np.floor(tau * (bw * math.log1p(hk * pk / gap) / LN2) / zeta)
            busy = qk > 0.0
            tasks = np.ceil(qk / W) - 1.0
            head = qk - W * tasks if busy else 0.0
            r0 = (head if cap >= head else 0.0) if binary else _nmin(cap, head)
            if rule == 1:  # mod_w
                behind = tasks if busy else 0.0
                rw = (W if cap >= W else 0.0) if binary else _nmin(cap, W)
                m = _nmin(_nmax(np.floor((local_max - head + rw) / W), 0.0), behind)
                if m < 1.0:
                    loc, o, size = head - r0, r0, head
                else:
                    loc, o, size = head + m * W - rw, rw, W
                stk = busy and loc > local_max
            else:
                o, size = r0, head
                loc = head - r0 if rule == 2 else _nmin(qk - r0, local_max)
                stk = busy and (head - r0) > local_max
            if stk:
                loc = _nmin(local_max, head)
                o = 0.0
            stuck[s, k] = stk
            unc = busy and (not stk) and o == cap and o < size and not binary
            uncapped[s, k] = unc
            dl = 0.0 if (rule == 0 and loc >= local_max) else -1.0
            dlocal[s, k] = dl
            local[s, k] = loc
            off[s, k] = o
            # (4): the least power that sends the offloaded back end; (2), (5): energies
            ptx = gap / hk * math.expm1(zeta * o / (tau * bw) * LN2) if o > 0.0 else 0.0
            p_tx[s, k] = ptx
            fl = loc / (n * tau)
            el = n * tau * xi_wd * fl**3
            eo = tau * ptx
            e_loc[s, k] = el
            e_off[s, k] = eo
            a = 0.0
            for i in range(beta.shape[2]):
                a += beta[s, k, i]
            arrivals[s, k] = a
            q_next[s, k] = _nmax(qk - loc - o, 0.0) + a * W  # (1)
            wd_cost[s, k] = w3 * qk + w4 * (el + eo)  # r_{k,t} of (24)
            dcap = tau * bw * (hk / gap) / ((1.0 + hk * pk / gap) * LN2) / zeta
            wd_grad[s, k] = w4 * p_max * unc * (tau + 3.0 * xi_wd * fl**2 * dl * dcap)
            q_sum += qk
            e_sum += el + eo
            off_sum += o
        # Server (6)-(7): slot i runs at f_i while work remains.
        qs = q_ser[s]
        cum = 0.0
        prev = 0.0
        es = 0.0
        sv_sum = 0.0
        for i in range(n):
            f_app[s, i] = _nmin(_nmax(f[s, i], 0.0), f_ser_max)  # clipped to [0, f_ser_max]
        for i in range(n):
            cum += f_app[s, i] * tau
            done = _nmin(cum, qs)
            sv = done - prev
            prev = done
            served[s, i] = sv
            fe = sv / tau
            f_eff[s, i] = fe
            es += fe**3
            sv_sum += sv
        es = tau * xi_ser * es
        e_ser[s] = es
        fp2 = 0.0
        for i in range(n):
            active = served[s, i] >= f_app[s, i] * tau - 0.5 and f_app[s, i] > 0.0
            if not active and served[s, i] > 0.0:
                fp2 += f_eff[s, i] ** 2
        for i in range(n):
            active = served[s, i] >= f_app[s, i] * tau - 0.5 and f_app[s, i] > 0.0
            s_grad[s, i] = 3.0 * w2 * tau * xi_ser * (f_eff[s, i] ** 2 - fp2) * f_ser_max * active
        terms[0, s] = w1 * qs
        terms[1, s] = w2 * es
        terms[2, s] = w3 * q_sum
        terms[3, s] = w4 * e_sum
        q_ser_next[s] = _nmax(qs - sv_sum, 0.0) + off_sum  # (6)
        server_cost[s] = w1 * qs + w2 * es  # r_t of (31)
    return wd, flags, slot, seed


def scalars(P, local_max: float) -> np.ndarray:
    """The parameters :func:`env_step` reads, in the kernel's order."""
    return np.array(
        [
            P.task_cycles, local_max, P.tau, P.bandwidth, P.snr_gap, P.zeta, P.xi_wd, P.xi_ser,
            P.w1, P.w2, P.w3, P.w4, P.p_max, P.f_ser_max,
        ],
        dtype=np.float64,
    )  # fmt: skip


def env_step(sc: np.ndarray, rule: str, q, h, p, f, q_ser, beta, binary: bool) -> tuple:
    """The compiled block of :meth:`MECEnv.step` (``sc`` from :func:`scalars`); it clips the actions.

    Returns (wd, flags, slot, seed): wd (11, S, K) = local, offloaded, d local / d offloaded,
    transmitted power, E^wd, E^off, arrivals, next queue, own cost, its gradient, the power as
    applied; flags (2, S, K) = uncapped, stuck; slot (4, S, n) = served, effective rate, the
    server's cost gradient, the rate as applied; seed
    (7, S) = the four cost terms (8), E^ser, next server queue, the server's own cost.
    """
    return _env_step(q, h, p, f, q_ser, beta, sc, RULES[rule], binary)


@numba.njit(cache=True, nogil=True)
def wd_state(q, h, beta, qscale):  # fmt: skip
    """Algorithm 1's state of every WD: [q_k qscale, log10(h_k) / 10, beta_k,1..n], (S, K, n + 2)."""
    S, K, n = beta.shape
    x = np.empty((S, K, n + 2))
    for s in range(S):
        for k in range(K):
            x[s, k, 0] = q[s, k] * qscale
            x[s, k, 1] = math.log10(h[s, k]) * 0.1
            for i in range(n):
                x[s, k, 2 + i] = beta[s, k, i]
    return x


@numba.njit(cache=True, nogil=True)
def server_state(q_ser, q, qscale):  # fmt: skip
    """Algorithm 2's state: [q^ser, q_1..q_K] qscale, (S, K + 1)."""
    S, K = q.shape
    x = np.empty((S, K + 1))
    for s in range(S):
        x[s, 0] = q_ser[s] * qscale
        for k in range(K):
            x[s, 1 + k] = q[s, k] * qscale
    return x


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _logits(v_sT, v_a, zs_now, x_next, a, zs_next, e):  # fmt: skip
    """zs_next = v_s . x_{t+1}; e = minus the logits of (23)/(30) at [a_t; s_t] and [a_t; s_{t+1}].

    ``v_sT`` is v_s as (B, D, M), so the inner loop runs over the features (SIMD). Returns whether
    some entry of e exceeds 709, where exp overflows (to inf: the feature is 0)."""
    B, D, M = v_sT.shape
    A = v_a.shape[2]
    big = 0.0
    z = np.empty(M)
    za = np.empty(M)
    for b in range(B):
        z[:] = 0.0
        for d in range(D):
            xd = x_next[b, d]
            for m in range(M):
                z[m] += v_sT[b, d, m] * xd
        za[:] = 0.0
        for k in range(A):
            ak = a[b, k]
            for m in range(M):
                za[m] += v_a[b, m, k] * ak
        for m in range(M):
            zs_next[b, m] = z[m]
            e0 = -(zs_now[b, m] + za[m])
            e1 = -(z[m] + za[m])
            e[0, b, m] = e0
            e[1, b, m] = e1
            big = max(big, e0, e1)
    return big > 709.0


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _update(alpha, gamma, exact, epsilon, patience, freeze, limit, t, v_a, e, a, w, r, dr_da,
            streak, converged_at, diverged_at, frozen, out):  # fmt: skip
    """(23)-(28) / (30)-(35) for every learner, from e = exp(-logits) (numpy's vectorised exp)."""
    B, M, A = v_a.shape
    phi_now = np.empty(M)
    phi_next = np.empty(M)
    w_new = np.empty(M)
    a_new = np.empty(A)
    two = 2.0 if exact else 1.0
    for b in range(B):
        q_now = 0.0
        q_next = 0.0
        for m in range(M):
            # (23)/(30): 1 / (1 + exp(-z)); exp overflows to inf for very negative z, 1 / inf = 0
            phi_now[m] = 1.0 / (1.0 + e[0, b, m])
            phi_next[m] = 1.0 / (1.0 + e[1, b, m])
            q_now += w[b, m] * phi_now[m]
            q_next += w[b, m] * phi_next[m]
        delta = r[b] + gamma * q_next - q_now  # (24)/(31)
        nan_a = False
        for k in range(A):  # (26)/(33), then (28a)/(35a) projected on [0, 1]
            s = 0.0
            for m in range(M):
                slope = gamma * phi_next[m] * (1.0 - phi_next[m]) - phi_now[m] * (1.0 - phi_now[m])
                s += w[b, m] * slope * v_a[b, m, k]
            g_a = 2.0 * delta * (dr_da[b, k] + s) if exact else delta * (dr_da[b, k] - s)
            a_new[k] = _nmin(_nmax(a[b, k] - alpha * g_a, 0.0), 1.0)
            nan_a = nan_a or a_new[k] != a_new[k]
        dw2 = 0.0
        w2 = 0.0
        nw2 = 0.0
        for m in range(M):  # (27)/(34), then (28b)/(35b)
            wn = w[b, m] - alpha * (two * delta * (gamma * phi_next[m] - phi_now[m]))
            w_new[m] = wn
            dw2 += (wn - w[b, m]) ** 2
            w2 += w[b, m] ** 2
            nw2 += wn * wn
        if w2 > 0.0:
            rel = math.sqrt(dw2) / math.sqrt(w2)
        elif dw2 > 0.0:
            rel = math.inf
        else:
            rel = math.nan
        bad = not (math.sqrt(nw2) <= limit) or nan_a or not math.isfinite(delta)
        live = (not frozen[b]) and diverged_at[b] < 0
        if live and bad:
            diverged_at[b] = t
        if live and not bad:
            for m in range(M):
                w[b, m] = w_new[m]
            for k in range(A):
                a[b, k] = a_new[k]
            streak[b] = streak[b] + 1 if rel <= epsilon else 0
            if streak[b] >= patience and converged_at[b] < 0:
                converged_at[b] = t
                if freeze:
                    frozen[b] = True
        else:
            rel = 0.0
        out[0, b] = abs(delta) if math.isfinite(delta) else math.nan  # |TD error|
        out[1, b] = rel  # relative change of the weights


def _rows(x: np.ndarray, shape: tuple[int, ...], rows: int) -> np.ndarray:
    """``x`` as a (rows, -1) array, broadcast to ``shape`` first if need be (the kernels take any
    layout and dtype; an exact shape, the usual case, costs one reshape)."""
    x = np.asarray(x)
    if x.shape != shape:
        x = np.ascontiguousarray(np.broadcast_to(x, shape), dtype=np.float64)
    return x.reshape(rows, -1)


def _plan(q) -> list:
    """Flat views of learner batch ``q``'s arrays and the kernels' buffers, made once per batch.

    The kernels update the weights and bookkeeping in place, and the state logits of s_t and
    s_{t+1} live in two buffers that swap every call, so the views stay valid while those arrays
    are the learner's (checked by identity on every call)."""
    plan = q.__dict__.get("_fast_plan")
    if plan is None or plan[0] is not q._zs_now or plan[1] is not q.w:
        batch = q.streak.shape
        M, A, D = q.w.shape[-1], q.a.shape[-1], q.v_s.shape[-1]
        B = q.w.size // M
        q._zs_now = np.array(q._zs_now, dtype=np.float64)
        for name in ("w", "streak", "converged_at", "diverged_at", "frozen"):
            arr = getattr(q, name)
            if not (arr.flags.c_contiguous and arr.flags.writeable):
                setattr(q, name, np.array(arr))
        z_other = np.empty_like(q._zs_now)
        plan = q._fast_plan = [
            q._zs_now, q.w, batch, B, batch + (D,), batch + (A,),
            # v_s as (B, D, M): the logits' inner loop then runs over the features (SIMD)
            np.ascontiguousarray(q.v_s.reshape(B, M, D).transpose(0, 2, 1)), q.v_a.reshape(B, M, A),
            q.w.reshape(B, M), q.streak.reshape(B), q.converged_at.reshape(B), q.diverged_at.reshape(B),
            q.frozen.reshape(B), np.empty((2, B, M)),
            q._zs_now.reshape(B, M), z_other, z_other.reshape(B, M),
        ]  # fmt: skip
    return plan


def learn(q, t: int, alpha: float, r: np.ndarray, dr_da: np.ndarray, x_next: np.ndarray):
    """:meth:`OnlineQ.learn` through the compiled kernels; updates learner batch ``q`` in place."""
    plan = _plan(q)
    (zs_now, _, batch, B, x_shape, a_shape, v_sT, v_a, w, streak, conv, div, frozen, e, z_now, zs_next, z_next) = plan
    # The action gets a new array, as on the numpy path (a caller may hold the old one: proposed_q
    # does); the weights are updated in place.
    a = q.a = np.array(q.a, dtype=np.float64)
    a2 = a.reshape(B, -1)
    # numpy's exp is vectorised (SIMD); numba's is a scalar call per element.
    if _logits(v_sT, v_a, z_now, _rows(x_next, x_shape, B), a2, z_next, e):
        with np.errstate(over="ignore"):  # exp(-z) = inf where z < -709: the feature is 0, as it should be
            np.exp(e, out=e)
    else:
        np.exp(e, out=e)
    out = np.empty((2, B))
    _update(
        alpha, q.gamma, q.exact, q.epsilon, q.patience, q.freeze, q._limit, t, v_a, e, a2, w,
        _rows(r, batch, B).reshape(B), _rows(dr_da, a_shape, B),
        streak, conv, div, frozen, out,
    )  # fmt: skip
    # s_{t+1}'s logits are the next call's s_t: swap the buffers instead of copying.
    q._zs_now, plan[0], plan[14], plan[15], plan[16] = zs_next, zs_next, z_next, zs_now, z_now
    return out[0].reshape(batch), out[1].reshape(batch)  # (q.live, the numpy path's cache, is not read here)
