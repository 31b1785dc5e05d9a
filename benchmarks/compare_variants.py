"""The loop shared by the scripts that measure an option against the default simulator
(bench_float32.py; bench_numba_learn.py until the numba engine replaced it): for each size, both
variants' rates on one core and how far the option moves the run."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from mecmodel.params import make_params


def max_rel_diff(x: np.ndarray, y: np.ndarray) -> float:
    """Largest |y - x| / |x| over the finite, non-zero entries of x (0 if there are none)."""
    ok = np.isfinite(x) & (x != 0)
    return float(np.max(np.abs(x[ok] - y[ok]) / np.abs(x[ok]))) if ok.any() else 0.0


def compare(
    description: str,
    run: Callable[[object, list[int], int, str], dict],
    variants: tuple[str, str],
    diffs: dict[str, Callable[[dict, dict], float]],
    argv: list[str] | None = None,
) -> int:
    """Command line, timing and table: ``run(P, seeds, blocks, variant)`` returns simulate_arrays'
    output; each of ``diffs`` maps (default's output, option's output) to a number for the table."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="200 blocks, 2 repeats")
    ap.add_argument("--K", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 10])
    a = ap.parse_args(argv)
    blocks, repeats = (200, 2) if a.quick else (1000, 3)
    base, option = variants
    print(f"# numpy {np.__version__}; scheme proposed, up to {blocks} blocks, median of {repeats}")
    print(
        f"{'K':>5} {'seeds':>5} {base + '/s':>10} {option + '/s':>10} {'ratio':>6} "
        + " ".join(f"{name:>19}" for name in diffs)
    )
    for S in a.seeds:
        for K in a.K:
            P = make_params("default", {"K": K})
            seeds = list(range(S))
            b = max(20, min(blocks, int(2e6 / (K * S))))
            out = {v: run(P, seeds, 20, v) for v in variants}  # warm-up (and compilation)
            rates = {}
            for v in variants:
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    out[v] = run(P, seeds, b, v)
                    times.append(time.perf_counter() - t0)
                rates[v] = K * S * b / statistics.median(times)
            cells = " ".join(f"{f(out[base], out[option]):>19.1e}" for f in diffs.values())
            print(
                f"{K:>5} {S:>5} {rates[base] / 1e3:>9.1f}k {rates[option] / 1e3:>9.1f}k "
                f"{rates[option] / rates[base]:>6.2f} {cells}",
                flush=True,
            )
    return 0
