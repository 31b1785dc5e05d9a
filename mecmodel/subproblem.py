"""One WD's block in the Lagrangian sub-problem (docs/model.md, note N): the cost of a back-end
capacity R within one of its segments, that cost's least value, and the capacity the
sub-problem's policy picks.

The lower bound (:mod:`mecmodel.bounds`) tabulates these over queue levels, gains and prices; the
scheme ``lagrangian`` picks each block's capacity with :func:`best_capacity`, inside the compiled
engine's loop (:func:`mecmodel.engine.run_blocks`) or from its policy's ``act``. Compiled kernels
only, so that both can call them: this module sits beside the physics, below the engine. numba's
cache does not see a change here from the kernels that call these: after editing this file,
delete ``mecmodel/__pycache__``.

``c``, a kernel's constants, is ``mecmodel.bounds.WDProblem.consts()``: (w4, xi^wd / (n tau)^2, tau,
Gamma, zeta / (tau B), p_max, the cubic charge of an offloaded cycle).
"""

from __future__ import annotations

import math

import numba

jit = numba.njit(cache=True, nogil=True, error_model="numpy")

STUCK, LINEAR, CONST = 0, 1, 2  # a segment's kind: no offload; offload = R; offload fixed


@jit
def block_cost(R, kind, a, off, hinv, c, price):  # fmt: skip
    """Cost of capacity R in a segment: w4 (E_loc + E_off) + price x offload, and its derivative."""
    w4, xi_n, tau, gap, k, cubic = c[0], c[1], c[2], c[3], c[4], c[6]
    if kind == STUCK:
        return w4 * xi_n * a**3, 0.0
    if kind == CONST:
        tx = tau * gap * hinv * math.expm1(k * off * math.log(2.0)) if off > 0.0 and hinv > 0.0 else 0.0
        return w4 * (xi_n * a**3 + tx) + price * off + cubic * off**3, 0.0
    L = a - R
    # no power at an infinite gain (the lower bound's top bin): 0, not 0 x inf
    tx = tau * gap * hinv * math.expm1(k * R * math.log(2.0)) if R > 0.0 and hinv > 0.0 else 0.0
    dtx = tau * gap * hinv * k * math.log(2.0) * math.exp(k * R * math.log(2.0)) if hinv > 0.0 else 0.0
    f = w4 * (xi_n * L**3 + tx) + price * R + cubic * R**3
    d = w4 * (-3.0 * xi_n * L * L + dtx) + price
    return f, d + 3.0 * cubic * R * R


@jit
def curvature(R, a, hinv, c):  # fmt: skip
    """f''(R) of a LINEAR segment's block cost (positive: the cost is convex in R)."""
    w4, xi_n, tau, gap, k, cubic = c[0], c[1], c[2], c[3], c[4], c[6]
    kl = k * math.log(2.0)
    tx2 = tau * gap * hinv * kl * kl * math.exp(kl * R) if hinv > 0.0 else 0.0
    return w4 * (6.0 * xi_n * (a - R) + tx2) + 6.0 * cubic * R


@jit
def bracket_min(lft, r, fl, dl, fr, dr, a, off, hinv, c, price):  # fmt: skip
    """Narrow [lft, r], f'(lft) < 0 < f'(r), around the convex minimum: Newton steps on f' from r (a
    bisection where a step leaves the bracket); once a step is below the tolerance (a cycle's
    hundredth, or 1e-9 of the width), probe either side of the point to close the bracket on it.
    Returns (lft, f(lft), f'(lft), r, f(r))."""
    stop = max(1e-2, 1e-9 * (r - lft))
    x, dx = r, dr
    for _ in range(100):
        if r - lft <= 2.0 * stop:
            break
        xn = x - dx / curvature(x, a, hinv, c)
        if not lft < xn < r:
            xn = 0.5 * (lft + r)
        if abs(xn - x) < 0.5 * stop:
            for p in (xn - stop, xn + stop):
                if lft < p < r:
                    fp, dp = block_cost(p, LINEAR, a, off, hinv, c, price)
                    if dp < 0.0:
                        lft, fl, dl = p, fp, dp
                    else:
                        r, fr = p, fp
            if r - lft <= 2.0 * stop:
                break
            xn = 0.5 * (lft + r)
        x = xn
        fx, dx = block_cost(x, LINEAR, a, off, hinv, c, price)
        if dx < 0.0:
            lft, fl, dl = x, fx, dx
        else:
            r, fr = x, fx
    return lft, fl, dl, r, fr


@jit
def gain(hv, c):  # fmt: skip
    """(1 / h, the capacity p_max carries at h, cycles): an infinite gain needs no power and carries
    anything, a zero gain carries nothing."""
    if math.isinf(hv):
        return 0.0, math.inf
    if not hv > 0.0:
        return math.inf, 0.0
    return 1.0 / hv, math.log2(1.0 + hv * c[5] / c[3]) / c[4]


@jit
def segment_min(lo, hi, kind, a, off, hinv, cap, c, price):  # fmt: skip
    """A segment's least block cost over R in [lo, min(hi, cap)] (convex in R; the caller checks
    lo <= cap): (a value below the minimum, the value at the returned R, that R). Below the minimum:
    f(R*) >= f(l) + f'(l) (R* - l) >= f(l) + f'(l) (r - l) once f'(l) < 0 <= f'(r)."""
    if kind != LINEAR:
        f, _ = block_cost(lo, kind, a, off, hinv, c, price)
        return f, f, lo
    lft, r = lo, min(hi, cap)
    fl, dl = block_cost(lft, kind, a, off, hinv, c, price)
    if dl >= 0.0:
        return fl, fl, lft
    fr, dr = block_cost(r, kind, a, off, hinv, c, price)
    if dr <= 0.0:
        return fr, fr, r
    lft, fl, dl, r, fr = bracket_min(lft, r, fl, dl, fr, dr, a, off, hinv, c, price)
    best, arg = (fl, lft) if fl <= fr else (fr, r)
    return min(best, fl + dl * (r - lft)), best, arg


@jit
def best_capacity(qk, arrivals, hk, price, J, unit, nx, per_task, gamma, lo, hi, seg_top, kind, a, off, post, c):  # fmt: skip
    """One WD's capacity R in cycles: the least over segments and R of its block cost at the gain
    ``hk`` with the ``price``, plus gamma J(post + arrivals) (the sub-problem's Bellman step; J its
    post-decision values, continued above the grid's top)."""
    x = min(int(math.floor(qk / unit + 0.5)), nx - 1)
    na = int(arrivals)
    hinv, cap = gain(hk, c)
    best, bestR = math.inf, 0.0
    for s in range(lo.shape[1]):
        if not lo[x, s] <= cap:
            continue
        cont = gamma * J[post[x, s] + na * per_task]
        _, f, r = segment_min(lo[x, s], hi[x, s], kind[x, s], a[x, s], off[x, s], hinv, cap, c, price)
        if kind[x, s] == LINEAR:
            # an integer capacity inside the segment: its right end belongs to the next one
            r = max(lo[x, s], min(math.floor(r), seg_top[x, s]))
        if f + cont < best:
            best, bestR = f + cont, r
    return bestR
