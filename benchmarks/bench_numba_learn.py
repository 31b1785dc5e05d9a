"""Option measured for the throughput issue: Algorithms 1 and 2's update as one fused numba kernel.

    pip install numba
    python benchmarks/bench_numba_learn.py            # K = 10, 100, 1000 with 1 and 10 seeds
    python benchmarks/bench_numba_learn.py --quick

For each size it runs ``simulate_arrays`` (scheme ``proposed``) twice in the same process, once
with numpy's ``OnlineQ.learn`` and once with :func:`learn` patched in, a compiled loop over the
batch of learners that computes (23)-(28) and (30)-(35) as the numpy path does but sums in
another order; it reports both rates and the largest relative difference of the per-block cost
and TD errors. It is not part of the package: measured, it does not pay (benchmarks/README.md).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import math  # noqa: E402
import sys  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from mecmodel.policies import qlearning  # noqa: E402
from mecmodel.simulation import simulate_arrays  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_variants import compare, max_rel_diff  # noqa: E402


def _kernel(alpha, gamma, exact, epsilon, patience, freeze, limit, t, v_s, v_a, zs_now, x_next, a, w, r, dr_da,
            streak, converged_at, diverged_at, frozen, td_out, rel_out):  # fmt: skip
    B, M, D = v_s.shape
    A = v_a.shape[2]
    phi_now = np.empty(M)
    phi_next = np.empty(M)
    zs_next = np.empty(M)
    w_new = np.empty(M)
    a_new = np.empty(A)
    two = 2.0 if exact else 1.0
    for b in range(B):
        q_now = 0.0
        q_next = 0.0
        for m in range(M):
            z = 0.0
            for d in range(D):
                z += v_s[b, m, d] * x_next[b, d]
            zs_next[m] = z
            za = 0.0
            for k in range(A):
                za += v_a[b, m, k] * a[b, k]
            phi_now[m] = 0.5 * (1.0 + math.tanh(0.5 * (zs_now[b, m] + za)))  # (23)/(30)
            phi_next[m] = 0.5 * (1.0 + math.tanh(0.5 * (z + za)))
            q_now += w[b, m] * phi_now[m]
            q_next += w[b, m] * phi_next[m]
        delta = r[b] + gamma * q_next - q_now  # (24)/(31)
        finite_a = True
        for k in range(A):  # (26)/(33), then (28a)/(35a) projected on [0, 1]
            s = 0.0
            for m in range(M):
                slope = gamma * phi_next[m] * (1.0 - phi_next[m]) - phi_now[m] * (1.0 - phi_now[m])
                s += w[b, m] * slope * v_a[b, m, k]
            g_a = two * delta * (dr_da[b, k] + s) if exact else delta * (dr_da[b, k] - s)
            x = a[b, k] - alpha * g_a
            if x < 0.0:
                x = 0.0
            elif x > 1.0:
                x = 1.0
            a_new[k] = x
            finite_a = finite_a and math.isfinite(x)
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
        else:
            rel = math.nan if dw2 == 0.0 or math.isnan(dw2) else math.inf
        new_norm = math.sqrt(nw2)
        bad = not (math.isfinite(new_norm) and finite_a and math.isfinite(delta)) or new_norm > limit
        live = (not frozen[b]) and diverged_at[b] < 0
        if live and bad:
            diverged_at[b] = t
        ok = live and not bad
        if ok:
            for m in range(M):
                w[b, m] = w_new[m]
            for k in range(A):
                a[b, k] = a_new[k]
            if rel <= epsilon:
                streak[b] += 1
            else:
                streak[b] = 0
            if streak[b] >= patience and converged_at[b] < 0:
                converged_at[b] = t
                if freeze:
                    frozen[b] = True
        else:
            rel = 0.0
        for m in range(M):
            zs_now[b, m] = zs_next[m]
        td_out[b] = abs(delta) if math.isfinite(delta) else math.nan
        rel_out[b] = rel


def learn(q, t: int, alpha: float, r: np.ndarray, dr_da: np.ndarray, x_next: np.ndarray):
    """:meth:`OnlineQ.learn` for learner batch ``q`` through the fused kernel; updates ``q`` in place."""
    batch = q.w.shape[:-1]
    B = int(np.prod(batch, dtype=np.int64))
    M, A, D = q.w.shape[-1], q.a.shape[-1], q.v_s.shape[-1]
    flat = {}
    for name in ("w", "a", "_zs_now", "streak", "converged_at", "diverged_at", "frozen"):
        arr = getattr(q, name)
        if not arr.flags.c_contiguous or not arr.flags.writeable:
            arr = np.array(arr)
            setattr(q, name, arr)
        flat[name] = arr.reshape(B, -1) if name in ("w", "a", "_zs_now") else arr.reshape(B)
    td = np.empty(batch)
    rel = np.empty(batch)
    kernel()(
        float(alpha),
        float(q.gamma),
        bool(q.exact),
        float(q.epsilon),
        int(q.patience),
        bool(q.freeze),
        float(q.limit),
        int(t),
        q.v_s.reshape(B, M, D),
        q.v_a.reshape(B, M, A),
        flat["_zs_now"],
        np.ascontiguousarray(np.broadcast_to(x_next, batch + (D,)), dtype=float).reshape(B, D),
        flat["a"],
        flat["w"],
        np.ascontiguousarray(np.broadcast_to(r, batch), dtype=float).reshape(B),
        np.ascontiguousarray(np.broadcast_to(dr_da, batch + (A,)), dtype=float).reshape(B, A),
        flat["streak"],
        flat["converged_at"],
        flat["diverged_at"],
        flat["frozen"],
        td.reshape(B),
        rel.reshape(B),
    )
    return td, rel


_compiled = numba.njit(cache=False, nogil=True)(_kernel)


def kernel():
    return _compiled


_numpy_learn = qlearning.OnlineQ.learn


def _numba_learn(self, t, r, dr_da, x_next):
    if self._zs_now is None:
        return _numpy_learn(self, t, r, dr_da, x_next)
    alpha = float(qlearning.step_size(t, self.alpha0, self.t0, self.kappa))
    return learn(self, t, alpha, r, dr_da, x_next)


def run(P, seeds, blocks, backend):
    qlearning.OnlineQ.learn = _numba_learn if backend == "numba" else _numpy_learn
    try:
        return simulate_arrays(P, "proposed", seeds, blocks)
    finally:
        qlearning.OnlineQ.learn = _numpy_learn


def _series_diff(x: dict, y: dict) -> float:
    return max(max_rel_diff(x["series"][k], y["series"][k]) for k in ("cost", "alg1_td_error", "alg2_td_error"))


def main(argv=None) -> int:
    print(f"# numba {numba.__version__}")
    return compare(__doc__.splitlines()[0], run, ("numpy", "numba"), {"max rel. diff": _series_diff}, argv)


if __name__ == "__main__":
    sys.exit(main())
