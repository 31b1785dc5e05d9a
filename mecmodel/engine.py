"""The compiled engine: the physics, the learners and the built-in policies as per-device loops.

Everything that runs every block is written here once, as plain loops over seeds and devices
compiled by numba, each line tagged with the paper's equation:

* :func:`wd_partition` (one WD): the capacity (3), the partition of note B under the three
  local-service rules and binary offloading, (9c);
* :func:`advance` (every seed of one block): the WDs ((2)-(5)), the server ((6)-(7)), the cost (8),
  the transitions (1) and (6), each agent's own cost term of (24)/(31) with its gradient
  (26)/(33), and the recording of the block;
* :func:`learn_row` (one learner): Algorithms 1 and 2's update, (23)-(28) and (30)-(35), and the
  learned-Q descent of ``proposed_q``;
* :func:`run_blocks` (a chunk of blocks): the whole loop of a built-in scheme, its policies
  (fixed rules, Algorithms 1 and 2, myopic and drift-plus-penalty searches, the Lagrangian
  sub-problem's policy of :mod:`mecmodel.subproblem`) included.

**Batch invariance.** Every value of a seed is computed from that seed's values alone, by the
same sequence of floating-point operations whatever else is in the batch: loops run per row in a
fixed order, no sum runs across rows, nothing is compiled with ``fastmath`` (which would let LLVM
reorder sums, and vectorised code can round differently at other addresses), and every transcendental
is libm's scalar call. So a seed gives the same bits alone, beside other seeds, or after other
points in the same process (``tests/test_engine.py``).

The Python loop of :mod:`mecmodel.simulation` drives :func:`advance` for schemes written in
Python (a scheme module's policies, trained agents, the exact optimum, ``dpp_central``); every
scheme of ``scheme: all`` runs whole chunks of blocks in :func:`run_blocks`. Both give the same
bits for the same scheme.

The kernels of :mod:`mecmodel.subproblem` are compiled into :func:`run_blocks` and into
``mecmodel.bounds``' kernels; numba's cache does not see a change to another file, so after
editing ``subproblem.py`` delete ``mecmodel/__pycache__`` (docs/architecture.md).

Importing this module imports numba; the kernels compile on first use and are cached on disk
(``__pycache__``), so a fresh process pays the compilation once per installation.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .subproblem import best_capacity
from .vocabulary import SERIES

LN2 = math.log(2.0)
RULES = {"head": 0, "mod_w": 1, "single": 2}

# no fastmath: IEEE order, the same bits for every row; numpy's error model: x / 0 is inf or NaN, as in numpy
jit = numba.njit(cache=True, nogil=True, error_model="numpy")

# --- the scalar parameters, in the order of :func:`scalars` -----------------------------------------
W_, LOCAL_MAX, TAU, BW, GAP, ZETA, XI_WD, XI_SER, W1, W2, W3, W4, P_MAX, F_SER_MAX = range(14)

# --- what advance writes per block: the rows of its buffers ---------------------------------------
#: (11, S, K) per WD
WD_ROWS = ("local", "offload", "dlocal_doff", "p_tx", "e_local", "e_offload", "arrivals", "q_next",
           "wd_cost", "wd_cost_grad", "p")  # fmt: skip
#: (4, S, n) per slot
SLOT_ROWS = ("served", "f_eff", "server_cost_grad", "f_ser")
#: (7, S) per seed
SEED_ROWS = ("server_queue", "server_energy", "wd_queue", "wd_energy", "e_server", "q_ser_next", "server_cost")

#: Per-block series and per-WD series: the rows of the records arrays (mecmodel.vocabulary.VARIABLES).
ALG1_TD, ALG2_TD = SERIES.index("alg1_td_error"), SERIES.index("alg2_td_error")
#: Work totals per seed (rows of the work array): arrived, local, server, offloaded, and the
#: local and offloaded work of the averaging window.
WORK = ("arrived", "local", "server", "offloaded", "window_local", "window_offloaded")


def scalars(P, local_max: float) -> np.ndarray:
    """The parameters the kernels read, in their order (the constants above index it)."""
    return np.array(
        [
            P.task_cycles, local_max, P.tau, P.bandwidth, P.snr_gap, P.zeta, P.xi_wd, P.xi_ser,
            P.w1, P.w2, P.w3, P.w4, P.p_max, P.f_ser_max,
        ],
        dtype=np.float64,
    )  # fmt: skip


@jit
def _nmin(a: float, b: float) -> float:
    """np.minimum for scalars: NaN if either is NaN."""
    if a != a or b != b:
        return math.nan
    return a if a < b else b


@jit
def _nmax(a: float, b: float) -> float:
    """np.maximum for scalars: NaN if either is NaN."""
    if a != a or b != b:
        return math.nan
    return a if a > b else b


@jit
def capacity(h: float, p: float, sc) -> float:
    """(3): the back-end cycles power p carries in the offloading slot, floor(tau B log2(1 + h p / Gamma) / zeta)."""
    return np.floor(sc[TAU] * (sc[BW] * math.log1p(h * p / sc[GAP]) / LN2) / sc[ZETA])


@jit
def power_for(h: float, cycles: float, sc) -> float:
    """(4): the least power that sends the back end of ``cycles`` cycles (zeta bits each) in a slot."""
    return sc[GAP] / h * math.expm1(sc[ZETA] * cycles / (sc[TAU] * sc[BW]) * LN2)


@jit
def wd_partition(qk: float, cap: float, sc, rule: int, binary: bool):
    """Note B: one WD's block split into local work and an offloaded back end of at most ``cap``.

    Returns (local, offloaded, uncapped, d local / d offloaded, stuck), as
    :func:`mecmodel.queues.wd_service` for one device (its docstring has the three rules)."""
    W, local_max = sc[W_], sc[LOCAL_MAX]
    busy = qk > 0.0
    tasks = np.ceil(qk / W) - 1.0
    head = qk - W * tasks if busy else 0.0  # the head-of-line task's remaining cycles
    r0 = (head if cap >= head else 0.0) if binary else _nmin(cap, head)
    if rule == 1:  # mod_w: the partitioned task is the furthest one the CPU reaches
        behind = tasks if busy else 0.0
        rw = (W if cap >= W else 0.0) if binary else _nmin(cap, W)
        m = _nmin(_nmax(np.floor((local_max - head + rw) / W), 0.0), behind)
        if m < 1.0:
            loc, off, size = head - r0, r0, head
        else:
            loc, off, size = head + m * W - rw, rw, W
        stuck = busy and loc > local_max
    else:  # head (FIFO up to local_max) or single (the head task alone)
        off, size = r0, head
        loc = head - r0 if rule == 2 else _nmin(qk - r0, local_max)
        stuck = busy and (head - r0) > local_max
    if stuck:  # (9c): the CPU cannot finish the front end; nothing is offloaded
        loc = _nmin(local_max, head)
        off = 0.0
    uncapped = busy and (not stuck) and off == cap and off < size and not binary
    dl = 0.0 if (rule == 0 and loc >= local_max) else -1.0
    return loc, off, uncapped, dl, stuck


@jit
def local_energy(loc: float, n: int, sc) -> float:
    """(2) with the local work spread evenly over the n slots: n tau xi (L / (n tau))^3."""
    f = loc / (n * sc[TAU])
    return n * sc[TAU] * sc[XI_WD] * f**3


@jit
def advance(t, q, h, beta, q_ser, p, f, sc, rule, binary, start, wd, flags, slot, seed, rec, dev, work):  # fmt: skip
    """One block for every seed: the environment step and its recording.

    Inputs: block ``t``, the state (q (S, K), h (S, K), beta (S, K, n), q_ser (S,)) and the commanded
    actions p (S, K) and f (S, n), clipped here to the action box (9b)-(9d) (NaN stays NaN).
    Writes the block's values into ``wd``, ``flags`` (uncapped, stuck), ``slot`` and ``seed`` (rows:
    WD_ROWS, SLOT_ROWS, SEED_ROWS), the records of block t into ``rec`` (len(SERIES), S, T) and
    ``dev`` (4, S, T, K) if it has blocks, and adds the work totals into ``work`` (6, S) (the window
    from block ``start`` on)."""
    S, K = q.shape
    n = f.shape[1]
    W, tau = sc[W_], sc[TAU]
    w1, w2, w3, w4 = sc[W1], sc[W2], sc[W3], sc[W4]
    per_device = dev.shape[2] > 0
    for s in range(S):
        q_sum = 0.0
        q_max = -math.inf
        el_sum = 0.0
        eo_sum = 0.0
        p_sum = 0.0
        loc_sum = 0.0
        off_sum = 0.0
        arr_sum = 0.0
        for k in range(K):
            qk, hk = q[s, k], h[s, k]
            pk = _nmin(_nmax(p[s, k], 0.0), sc[P_MAX])  # (9b): the power box
            cap = capacity(hk, pk, sc)  # (3)
            loc, off, unc, dl, stk = wd_partition(qk, cap, sc, rule, binary)
            ptx = power_for(hk, off, sc) if off > 0.0 else 0.0  # (4): the power actually sent
            el = local_energy(loc, n, sc)  # (2)
            eo = tau * ptx  # (5)
            a = 0.0
            for i in range(n):
                a += beta[s, k, i]
            fl = loc / (n * tau)
            # d cap / d p of (3), for the gradient of (26): tau B (h / Gamma) / ((1 + h p / Gamma) ln 2) / zeta
            dcap = tau * sc[BW] * (hk / sc[GAP]) / ((1.0 + hk * pk / sc[GAP]) * LN2) / sc[ZETA]
            wd[0, s, k] = loc
            wd[1, s, k] = off
            wd[2, s, k] = dl
            wd[3, s, k] = ptx
            wd[4, s, k] = el
            wd[5, s, k] = eo
            wd[6, s, k] = a
            wd[7, s, k] = _nmax(qk - loc - off, 0.0) + a * W  # (1)
            wd[8, s, k] = w3 * qk + w4 * (el + eo)  # r_{k,t} of (24): the WD's own cost term of (8)
            wd[9, s, k] = w4 * sc[P_MAX] * unc * (tau + 3.0 * sc[XI_WD] * fl**2 * dl * dcap)  # d r / d(p / p_max)
            wd[10, s, k] = pk
            flags[0, s, k] = unc
            flags[1, s, k] = stk
            q_sum += qk
            q_max = _nmax(q_max, qk)
            el_sum += el
            eo_sum += eo
            p_sum += ptx
            loc_sum += loc
            off_sum += off
            arr_sum += a
            if per_device:
                dev[0, s, t, k] = qk
                dev[1, s, t, k] = ptx
                dev[2, s, t, k] = fl
                dev[3, s, t, k] = off
        # Server (6)-(7): slot i runs at f_i while work remains (an idle server burns no energy).
        qs = q_ser[s]
        cum = 0.0
        prev = 0.0
        es = 0.0
        sv_sum = 0.0
        fe_sum = 0.0
        for i in range(n):
            fi = _nmin(_nmax(f[s, i], 0.0), sc[F_SER_MAX])  # (9d): the rate box
            slot[3, s, i] = fi
            cum += fi * tau
            done = _nmin(cum, qs)
            sv = done - prev
            prev = done
            fe = sv / tau
            slot[0, s, i] = sv
            slot[1, s, i] = fe
            es += fe**3
            sv_sum += sv
            fe_sum += fe
        es = tau * sc[XI_SER] * es  # (7)
        # Algorithm 2's gradient (33), exact: slots run at f_i until the queue runs dry in a
        # "partial" slot whose rate is the remainder; raising an active f_i moves work out of it.
        fp2 = 0.0
        for i in range(n):
            active = slot[0, s, i] >= slot[3, s, i] * tau - 0.5 and slot[3, s, i] > 0.0
            if not active and slot[0, s, i] > 0.0:
                fp2 += slot[1, s, i] ** 2
        for i in range(n):
            active = slot[0, s, i] >= slot[3, s, i] * tau - 0.5 and slot[3, s, i] > 0.0
            slot[2, s, i] = 3.0 * w2 * tau * sc[XI_SER] * (slot[1, s, i] ** 2 - fp2) * sc[F_SER_MAX] * active
        sq, se, wq, we = w1 * qs, w2 * es, w3 * q_sum, w4 * (el_sum + eo_sum)  # (8), term by term
        seed[0, s] = sq
        seed[1, s] = se
        seed[2, s] = wq
        seed[3, s] = we
        seed[4, s] = es
        seed[5, s] = _nmax(qs - sv_sum, 0.0) + off_sum  # (6)
        seed[6, s] = w1 * qs + w2 * es  # r_t of (31): the server's own cost term of (8)
        # the records of block t
        rec[0, s, t] = sq + se + wq + we
        rec[1, s, t] = sq
        rec[2, s, t] = se
        rec[3, s, t] = wq
        rec[4, s, t] = we
        rec[5, s, t] = q_sum / K
        rec[6, s, t] = q_max
        rec[7, s, t] = qs
        rec[8, s, t] = el_sum
        rec[9, s, t] = eo_sum
        rec[10, s, t] = es
        rec[11, s, t] = p_sum / K
        done_sum = loc_sum + off_sum
        rec[12, s, t] = off_sum / done_sum if done_sum > 0.0 else math.nan
        rec[13, s, t] = fe_sum / n
        work[0, s] += arr_sum * W
        work[1, s] += loc_sum
        work[2, s] += sv_sum
        work[3, s] += off_sum
        if t >= start:
            work[4, s] += loc_sum
            work[5, s] += off_sum


def buffers(S: int, K: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh (wd, flags, slot, seed) buffers for :func:`advance`."""
    return (
        np.empty((len(WD_ROWS), S, K)),
        np.zeros((2, S, K), dtype=np.bool_),
        np.empty((len(SLOT_ROWS), S, n)),
        np.empty((len(SEED_ROWS), S)),
    )


# --- the learners: Algorithms 1 and 2 (section V) ------------------------------------------------------


@jit
def step_size(t: int, alpha0: float, t0: float, kappa: float) -> float:
    """(36): alpha_t = alpha0 / (1 + t / t0)^kappa, kappa in (0.5, 1]."""
    return alpha0 / (1.0 + float(t) / t0) ** kappa


@jit
def sigmoid(z: float) -> float:
    """(23)/(30): 1 / (1 + exp(-z)); exp overflows to inf for very negative z, and 1 / inf = 0."""
    return 1.0 / (1.0 + math.exp(-z))


@jit
def learn_row(b, t, hp, v_sT, v_a, w, a, zs, memo, x_next, r, dr_da, streak, conv, div, frozen, tmp):  # fmt: skip
    """One learner's update after block t: (23)-(28) for a WD, (30)-(35) for the server.

    ``hp`` = (alpha0, t0, kappa, gamma, exact, epsilon, patience, freeze, limit, descent);
    v_sT (B, D, M) the state part of the fixed feature vectors, transposed (so that the logits
    accumulate over the features in SIMD lanes, each in the same order), v_a (B, M, A) their
    action part, w (B, M) the weights, a (B, A) the normalised action, zs (B, M) the state logits
    v_s . s_t (replaced by those of s_{t+1}), memo (B, 2, M) the last update's sigmoid arguments and
    values at [a_t; s_{t+1}] (NaN arguments before the first), x_next (D,) the state features of s_{t+1}, r the
    reward (24)/(31), dr_da (A,) its gradient, tmp a (7, max(M, A)) scratch. ``descent`` replaces
    the action step (28a)/(35a) by the descent of the learned Q (``proposed_q``, not the paper's:
    mecmodel.policies.actor_critic). Returns (|TD error| (NaN if not finite), relative change of
    the weights)."""
    alpha0, t0, kappa, gamma, exact, epsilon, patience, freeze, limit, descent = hp
    D, M = v_sT.shape[1], v_sT.shape[2]
    A = v_a.shape[2]
    alpha = step_size(t, alpha0, t0, kappa)
    z_next, za, phi_now, phi_next, w_new, slope, a_new = tmp[0], tmp[1], tmp[2], tmp[3], tmp[4], tmp[5], tmp[6]
    for m in range(M):
        z_next[m] = 0.0
        za[m] = 0.0
    for d in range(D):  # v_s . s_{t+1}, every feature's sum in the order d = 0..D-1
        xd = x_next[d]
        for m in range(M):
            z_next[m] += v_sT[b, d, m] * xd
    for k in range(A):  # v_a . a_t
        ak = a[b, k]
        for m in range(M):
            za[m] += v_a[b, m, k] * ak
    q_now = 0.0
    q_next = 0.0
    for m in range(M):
        # (23)/(30) at [a_t; s_t]. Where the action did not move (clipped at 0 or 1, frozen) the
        # argument is the last update's at [a_{t-1}; s_t]: its sigmoid is reused, the same bits.
        arg_now = zs[b, m] + za[m]
        phi_now[m] = memo[b, 1, m] if arg_now == memo[b, 0, m] else sigmoid(arg_now)
        arg_next = z_next[m] + za[m]
        phi_next[m] = sigmoid(arg_next)  # at [a_t; s_{t+1}]
        memo[b, 0, m] = arg_next
        memo[b, 1, m] = phi_next[m]
        q_now += w[b, m] * phi_now[m]  # (22)/(29)
        q_next += w[b, m] * phi_next[m]
    delta = r + gamma * q_next - q_now  # (24)/(31)
    live = (not frozen[b]) and div[b] < 0
    # (26)/(33), then (28a)/(35a) projected on [0, 1]; exact = the derivative of (24), else as printed
    for m in range(M):
        slope[m] = w[b, m] * (gamma * phi_next[m] * (1.0 - phi_next[m]) - phi_now[m] * (1.0 - phi_now[m]))
    nan_a = False
    for k in range(A):
        s = 0.0
        for m in range(M):
            s += slope[m] * v_a[b, m, k]
        g_a = 2.0 * delta * (dr_da[k] + s) if exact else delta * (dr_da[k] - s)
        a_new[k] = _nmin(_nmax(a[b, k] - alpha * g_a, 0.0), 1.0)
        nan_a = nan_a or a_new[k] != a_new[k]
    two = 2.0 if exact else 1.0
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
    # A learner goes bad when its weight norm leaves [0, limit], its action is NaN or its TD
    # error is not finite; then it keeps its parameters and stops learning (divergence).
    bad = not (math.sqrt(nw2) <= limit) or nan_a or not math.isfinite(delta)
    if live and bad:
        div[b] = t
    if live and not bad:
        for m in range(M):
            w[b, m] = w_new[m]
        if descent:
            # a <- clip(a - alpha dQ([a; s_{t+1}], w_{t+1}) / da, 0, 1): dQ/da_c = sum_j w_j phi_j (1 - phi_j) v_jc
            for m in range(M):
                ph = phi_next[m]  # the sigmoid at [a_t; s_{t+1}]
                slope[m] = w[b, m] * ph * (1.0 - ph)
            finite = True
            for k in range(A):
                g = 0.0
                for m in range(M):
                    g += slope[m] * v_a[b, m, k]
                a_new[k] = _nmin(_nmax(a[b, k] - alpha * g, 0.0), 1.0)
                finite = finite and math.isfinite(a_new[k])
            if finite:
                for k in range(A):
                    a[b, k] = a_new[k]
        else:
            for k in range(A):
                a[b, k] = a_new[k]
        streak[b] = streak[b] + 1 if rel <= epsilon else 0
        if streak[b] >= patience and conv[b] < 0:
            conv[b] = t
            if freeze:
                frozen[b] = True
    else:
        rel = 0.0
    for m in range(M):
        zs[b, m] = z_next[m]
    return (abs(delta) if math.isfinite(delta) else math.nan), rel


def scratch(M: int, A: int) -> np.ndarray:
    """The scratch :func:`learn_row` needs."""
    return np.empty((7, max(M, A)))


@jit
def state_logits(v_sT, x, zs, b):
    """zs[b] = v_s[b] . x: the state part of the logits of (23)/(30), summed as learn_row sums it."""
    D, M = v_sT.shape[1], v_sT.shape[2]
    for m in range(M):
        zs[b, m] = 0.0
    for d in range(D):
        xd = x[d]
        for m in range(M):
            zs[b, m] += v_sT[b, d, m] * xd


@jit
def wd_state(q, h, beta, qscale, s, k, x):
    """Algorithm 1's state of WD k of seed s (input of (23)): [q_k qscale, log10(h_k) / 10, beta_k,1..n]."""
    x[0] = q[s, k] * qscale
    x[1] = math.log10(h[s, k]) * 0.1
    for i in range(beta.shape[2]):
        x[2 + i] = beta[s, k, i]


@jit
def server_state(q_ser, q, qscale, s, x):
    """Algorithm 2's state of seed s (input of (30)): [q^ser, q_1..q_K] qscale."""
    x[0] = q_ser[s] * qscale
    for k in range(q.shape[1]):
        x[1 + k] = q[s, k] * qscale


@jit
def learn_wds(t, hp, qscale, q_next, h_next, beta_next, r, dr, v_sT, v_a, w, a, zs, memo, streak, conv, div, frozen, td, rel):  # fmt: skip
    """Algorithm 1 at every WD of every seed (learner b = s K + k); td, rel (S,) get the WD means."""
    S, K = q_next.shape
    x = np.empty(v_sT.shape[1])
    tmp = np.empty((7, max(v_sT.shape[2], v_a.shape[2])))
    dr_da = np.empty(1)
    for s in range(S):
        td_sum = 0.0
        rel_sum = 0.0
        for k in range(K):
            wd_state(q_next, h_next, beta_next, qscale, s, k, x)
            dr_da[0] = dr[s, k]
            d, c = learn_row(
                s * K + k, t, hp, v_sT, v_a, w, a, zs, memo, x, r[s, k], dr_da, streak, conv, div, frozen, tmp
            )
            td_sum += d
            rel_sum += c
        td[s] = td_sum / K
        rel[s] = rel_sum / K


@jit
def learn_server(t, hp, qscale, q_ser_next, q_next, r, dr, v_sT, v_a, w, a, zs, memo, streak, conv, div, frozen, td, rel):  # fmt: skip
    """Algorithm 2 at the server of every seed (learner b = s); td, rel (S,)."""
    S = q_next.shape[0]
    x = np.empty(v_sT.shape[1])
    tmp = np.empty((7, max(v_sT.shape[2], v_a.shape[2])))
    for s in range(S):
        server_state(q_ser_next, q_next, qscale, s, x)
        td[s], rel[s] = learn_row(s, t, hp, v_sT, v_a, w, a, zs, memo, x, r[s], dr[s], streak, conv, div, frozen, tmp)


# --- the built-in policies ---------------------------------------------------------------------------

#: WD policies compiled into run_blocks, by code (mecmodel.simulation.compiled_plan maps the Python classes).
WD_FIXED, WD_SHARE, WD_RANDOM, WD_ALG1, WD_MYOPIC, WD_DPP, WD_TABLE = range(7)
#: Server policies compiled into run_blocks: every slot at f_ser_max, equal rates up to a best rate
#: (MinEnergy, MyopicServer), Algorithm 2, drift-plus-penalty.
SRV_FULL, SRV_RATE, SRV_ALG2, SRV_DPP = range(4)


@jit
def grid_expm1(sc, grid):
    """expm1 of (4)'s exponent for the back ends c_j + 1/2 floored, j = 0..grid - 1 (the capacities of
    :func:`myopic_power`'s uncapped candidates): p = (Gamma / h) expm1(...) at any gain h."""
    W = sc[W_]
    out = np.empty(grid)
    for j in range(grid):
        cap = np.floor(W * j / (grid - 1) + 0.5)
        out[j] = math.expm1(sc[ZETA] * cap / (sc[TAU] * sc[BW]) * LN2)
    return out


@jit
def share_power(hk, share, sc):
    """(4) for a share of a task's back end, capped at p_max: the power of EvenShare and RandomShare."""
    bits = sc[ZETA] * sc[W_] * share
    return _nmin(sc[GAP] / hk * math.expm1(bits / (sc[TAU] * sc[BW]) * LN2), sc[P_MAX])


@jit
def share_powers(h, share, sc):
    """:func:`share_power` of every WD: h and share (S, K)."""
    S, K = h.shape
    p = np.empty((S, K))
    for s in range(S):
        for k in range(K):
            p[s, k] = share_power(h[s, k], share[s, k], sc)
    return p


@jit
def myopic_power(qk, hk, sc, rule, n, grid, V, reading, e_grid, binary):
    """The power of a one-block search at one WD (MyopicWD, DriftPlusPenaltyWD).

    Candidates, ascending: 0; the powers (4) that carry back ends of c_j = W j / (grid - 1),
    j = 1..grid - 1, half a cycle more (so that the floor of (3) keeps c_j: the capacity of c_j's
    power is c_j + 1/2 floored), capped at p_max; and p_max. Objective: with V > 0
    drift-plus-penalty, V w4 E - (q / W)(served / W); else the myopic own cost w3 (q - served) + w4 E
    (``reading`` 1: w3 q, the queue at the start of the block). The first least cost wins, so a
    capped candidate ends the search (every later one is p_max itself). ``e_grid`` is
    :func:`grid_expm1`: where a candidate offloads its whole capacity, the power it sends is
    (Gamma / h) e_grid[j], the bits of :func:`power_for` without its expm1."""
    W = sc[W_]
    if qk == 0.0:  # nothing to serve: every candidate costs the same, and the first is p = 0
        return 0.0
    # (3) at p_max, before the floor: a back end needs more than p_max where c + 1/2 exceeds it
    c_max = sc[TAU] * (sc[BW] * math.log1p(hk * sc[P_MAX] / sc[GAP]) / LN2) / sc[ZETA]
    g_h = sc[GAP] / hk
    best_j = 0
    best = math.inf
    for j in range(grid + 1):
        capped = j == grid
        if j == 0:
            cap = 0.0
        elif not capped:
            c = W * j / (grid - 1)
            capped = c + 0.5 >= c_max
            cap = np.floor(c + 0.5)
        if capped:
            cap = np.floor(c_max)
        loc, off, unc, dl, stk = wd_partition(qk, cap, sc, rule, binary)
        if off <= 0.0:
            ptx = 0.0
        elif off == cap and not capped:
            ptx = g_h * e_grid[j]  # (4) at the candidate's own capacity
        else:
            ptx = power_for(hk, off, sc)
        energy = local_energy(loc, n, sc) + sc[TAU] * ptx
        served = loc + off
        if V > 0.0:
            cost = V * sc[W4] * energy - (qk / W) * (served / W)
        else:
            cost = sc[W3] * (qk if reading == 1 else qk - served) + sc[W4] * energy
        if cost != cost:  # np.argmin's rule: the first NaN is the minimum
            best_j = j
            break
        if cost < best:
            best = cost
            best_j = j if not capped else grid
        if capped:
            break
    if best_j == 0:
        return 0.0
    if best_j == grid:
        return sc[P_MAX]
    return _nmin(power_for(hk, W * best_j / (grid - 1) + 0.5, sc), sc[P_MAX])


@jit
def myopic_powers(q, h, sc, rule, n, grid, V, reading, binary):
    """:func:`myopic_power` of every WD of every seed, (S, K)."""
    S, K = q.shape
    p = np.empty((S, K))
    e_grid = grid_expm1(sc, grid)
    for s in range(S):
        for k in range(K):
            p[s, k] = myopic_power(q[s, k], h[s, k], sc, rule, n, grid, V, reading, e_grid, binary)
    return p


@jit
def table_power(qk, beta_k, hk, s, k, table, sc):
    """The power of the Lagrangian sub-problem's policy at WD k of seed s (scheme ``lagrangian``,
    docs/model.md note N): the capacity R of :func:`mecmodel.subproblem.best_capacity` given its
    queue, this block's arrivals ``beta_k`` (n,) and gain, then (4) for the back end of R cycles and
    half a cycle more (so that the floor of (3) keeps R), capped at p_max. ``table``: see
    :func:`run_blocks`."""
    arrivals = 0.0
    for j in range(beta_k.shape[0]):
        arrivals += beta_k[j]
    price, J, unit, nx, per_task, gamma, lo, hi, top, kind, a, off, post, c = table
    R = best_capacity(qk, arrivals, hk, price[s], J[s, k], unit, nx, per_task, gamma, lo, hi, top, kind, a, off, post, c)  # fmt: skip
    return _nmin(power_for(hk, R + 0.5, sc), sc[P_MAX]) if R > 0.0 else 0.0


@jit
def table_powers(q, beta, h, table, sc):
    """:func:`table_power` of every WD of every seed, (S, K)."""
    S, K = q.shape
    p = np.empty((S, K))
    for s in range(S):
        for k in range(K):
            p[s, k] = table_power(q[s, k], beta[s, k], h[s, k], s, k, table, sc)
    return p


@jit
def equal_rate(qs, best, sc, n):
    """The rule of :func:`mecmodel.policies.rules.equal_rates`: min(best, f_ser_max, the rate that
    clears q^ser, rounded up to ceil(q / n) + 1 cycles per slot), the same in every slot."""
    clear = (np.ceil(qs / n) + 1.0) / sc[TAU] if qs > 0.0 else 0.0
    return _nmin(_nmin(best, sc[F_SER_MAX]), clear)


@jit
def run_blocks(t0, t1, h, beta, h_after, beta_after, draws, q, q_ser, sc, rule, binary, start, wd_code, wd_par, srv_code, srv_par,
               qscale, printed, hp1, l1, hp2, l2, table, rec, dev, work):  # fmt: skip
    """Blocks t0 .. t1 - 1 of a built-in scheme: act, :func:`advance`, learn, for every seed.

    h (CHUNK, S, K) and beta (CHUNK, S, K, n) are the whole chunk of gains and arrivals whose first
    row is block t0 (t1 - t0 <= CHUNK), h_after and beta_after the next chunk: its first row is the
    learners' next state after a full chunk's last block. ``draws`` (t1 - t0, S, K) the random shares (scheme random);
    q and q_ser are the state at t0, updated in place. ``wd_par``: (fraction of p_max | share of W,
    grid, V, reading); ``srv_par``: (best rate | V). l1, l2: the learners' arrays (v_s, v_a, w, a,
    zs, memo, streak, conv, div, frozen) of Algorithms 1 and 2 (empty when unused). ``table``: the
    sub-problem's policy (WD_TABLE; when unused, empty arrays of the same types, as
    ``mecmodel.simulation`` passes them): each seed's price (S,), each
    WD's post-decision values (S, K, L), then the arguments of
    :func:`mecmodel.subproblem.best_capacity` from ``unit`` on."""
    S, K = q.shape
    n = beta.shape[3]
    wd = np.empty((11, S, K))
    flags = np.zeros((2, S, K), dtype=np.bool_)
    slot = np.empty((4, S, n))
    seed = np.empty((7, S))
    p = np.empty((S, K))
    f = np.empty((S, n))
    td = np.empty(S)
    rel = np.empty(S)
    dr1 = np.empty((S, K))
    dr2 = np.empty((S, n))
    grid = int(wd_par[1])
    e_grid = grid_expm1(sc, max(grid, 2))
    for t in range(t0, t1):
        i = t - t0
        ht, bt = h[i], beta[i]
        # WD actions
        for s in range(S):
            for k in range(K):
                if wd_code == WD_FIXED:
                    p[s, k] = wd_par[0] * sc[P_MAX]
                elif wd_code == WD_SHARE or wd_code == WD_RANDOM:
                    p[s, k] = share_power(ht[s, k], wd_par[0] if wd_code == WD_SHARE else draws[i, s, k], sc)
                elif wd_code == WD_ALG1:
                    p[s, k] = l1[3][s * K + k, 0] * sc[P_MAX]
                elif wd_code == WD_TABLE:
                    p[s, k] = table_power(q[s, k], bt[s, k], ht[s, k], s, k, table, sc)
                else:
                    V = wd_par[2] if wd_code == WD_DPP else 0.0
                    p[s, k] = myopic_power(q[s, k], ht[s, k], sc, rule, n, grid, V, int(wd_par[3]), e_grid, binary)
        # server actions
        for s in range(S):
            if srv_code == SRV_ALG2:
                for j in range(n):
                    f[s, j] = l2[3][s, j] * sc[F_SER_MAX]
            elif srv_code == SRV_FULL:
                for j in range(n):
                    f[s, j] = sc[F_SER_MAX]
            else:
                qs = q_ser[s]
                if srv_code == SRV_DPP:
                    # sqrt(q / 3) / (sqrt(w2) sqrt(xi) W sqrt(V)): square roots first, so that no
                    # product of tiny weights underflows to 0
                    den = math.sqrt(sc[W2]) * math.sqrt(sc[XI_SER]) * sc[W_] * math.sqrt(srv_par[0])
                    best = math.sqrt(qs / 3.0) / den if qs > 0.0 else 0.0
                else:
                    best = srv_par[0]
                fs = equal_rate(qs, best, sc, n)
                for j in range(n):
                    f[s, j] = fs
        advance(t, q, ht, bt, q_ser, p, f, sc, rule, binary, start, wd, flags, slot, seed, rec, dev, work)
        q_next, q_ser_next = wd[7], seed[5]
        # learning: (24)-(28) at the WDs, (31)-(35) at the server
        if wd_code == WD_ALG1:
            for s in range(S):
                for k in range(K):
                    dr1[s, k] = sc[W4] * sc[TAU] * sc[P_MAX] if printed else wd[9, s, k]  # (26) as printed
            if i + 1 < h.shape[0]:
                h_next, beta_next = h[i + 1], beta[i + 1]
            else:
                h_next, beta_next = h_after[0], beta_after[0]
            learn_wds(t, hp1, qscale, q_next, h_next, beta_next, wd[8], dr1, *l1, td, rel)
            for s in range(S):
                rec[ALG1_TD, s, t] = td[s]
                rec[ALG1_TD + 1, s, t] = rel[s]
        if srv_code == SRV_ALG2:
            for s in range(S):
                for j in range(n):
                    fj = slot[3, s, j]
                    dr2[s, j] = (
                        3.0 * sc[W2] * sc[TAU] * sc[XI_SER] * fj**2 * sc[F_SER_MAX] if printed else slot[2, s, j]
                    )
            learn_server(t, hp2, qscale, q_ser_next, q_next, seed[6], dr2, *l2, td, rel)
            for s in range(S):
                rec[ALG2_TD, s, t] = td[s]
                rec[ALG2_TD + 1, s, t] = rel[s]
        for s in range(S):
            q_ser[s] = q_ser_next[s]
            for k in range(K):
                q[s, k] = q_next[s, k]


@jit
def summaries(cost, gammas, start, out):
    """Per seed, sequentially: (9a) sum_t gamma^t c_t (0 where gamma^t underflowed), and the mean
    cost over blocks >= start; cost (S, T), out (2, S)."""
    S, T = cost.shape
    for s in range(S):
        disc = 0.0
        avg = 0.0
        for t in range(T):
            c = cost[s, t]
            disc += c * gammas[t] if gammas[t] > 0.0 else 0.0
            if t >= start:
                avg += c
        out[0, s] = disc
        out[1, s] = avg / (T - start)


@jit
def window_mean(x, start):
    """Per row, the mean of x[s, start:] summed in order (S,)."""
    S, T = x.shape
    out = np.empty(S)
    for s in range(S):
        acc = 0.0
        for t in range(start, T):
            acc += x[s, t]
        out[s] = acc / (T - start)
    return out


# --- batch entry points for the Python loop (mecmodel.policies.qlearning) --------------------------------


@jit
def learn_batch(t, hp, v_s, v_a, w, a, zs, memo, x_next, r, dr_da, streak, conv, div, frozen):  # fmt: skip
    """:func:`learn_row` for every learner b of a batch: x_next (B, D), r (B,), dr_da (B, A).
    Returns (|TD error|, relative change), (B,) each."""
    B = w.shape[0]
    tmp = np.empty((7, max(w.shape[1], a.shape[1])))
    td = np.empty(B)
    rel = np.empty(B)
    for b in range(B):
        td[b], rel[b] = learn_row(
            b, t, hp, v_s, v_a, w, a, zs, memo, x_next[b], r[b], dr_da[b], streak, conv, div, frozen, tmp
        )
    return td, rel


@jit
def observe_batch(v_sT, x, zs):
    """zs[b] = v_s[b] . x[b] for every learner: x (B, D), v_sT (B, D, M)."""
    for b in range(zs.shape[0]):
        state_logits(v_sT, x[b], zs, b)


@jit
def wd_states(q, h, beta, qscale):
    """Algorithm 1's states of every WD, (S, K, n + 2)."""
    S, K, n = beta.shape
    x = np.empty((S, K, n + 2))
    for s in range(S):
        for k in range(K):
            wd_state(q, h, beta, qscale, s, k, x[s, k])
    return x


@jit
def server_states(q_ser, q, qscale):
    """Algorithm 2's states, (S, K + 1)."""
    S, K = q.shape
    x = np.empty((S, K + 1))
    for s in range(S):
        server_state(q_ser, q, qscale, s, x[s])
    return x


@jit
def row_means(x):
    """Per row, the mean over the last axis summed in order, as learn_wds takes it: (S, K) -> (S,)."""
    S, K = x.shape
    out = np.empty(S)
    for s in range(S):
        acc = 0.0
        for k in range(K):
            acc += x[s, k]
        out[s] = acc / K
    return out
