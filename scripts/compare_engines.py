"""Compare two aggregates of the same experiments made with different engines or versions (or any
two runs of the same model): are their per-seed average costs the same distribution?

    python scripts/compare_engines.py results_numpy/ results/      # every *.nc aggregate in both
    python scripts/compare_engines.py a/cost_vs_K.nc b/cost_vs_K.nc

For every aggregate, scheme and point, on the shared seeds: the mean average cost of each side,
the mean of the per-seed differences (b - a, paired: the two sides share every random draw) with
its 95% Student-t interval, and whether that interval holds 0. A run of the compiled engine
follows a run of the numpy engine of mecmodel 0.2 to the last bits for a while and then separates
(docs/model.md, note M), so the question is whether the difference of means is within the seeds'
spread, not whether runs match. A cell whose seeds barely vary (a rule with no learner on its
path) can have an interval that excludes 0 around a difference of rounding size: such cells are
counted apart (``--rounding``, relative to the mean).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from mecmodel.statistics import mean_ci

POINT = ("K", "arrival_prob", "gamma")


def compare(a: xr.Dataset, b: xr.Dataset, metric: str = "average_cost") -> list[dict]:
    """One row per scheme and point cell present in both: means, paired difference and its interval."""
    a, b = xr.align(a[metric], b[metric], join="inner")
    if set(a.dims) != set(b.dims):
        raise ValueError(f"{metric}: dims {a.dims} and {b.dims} differ")
    b = b.transpose(*a.dims)
    rows = []
    cells = [d for d in a.dims if d != "seed"]
    stacked_a = a.stack(cell=cells) if cells else a.expand_dims(cell=[0])
    stacked_b = b.stack(cell=cells) if cells else b.expand_dims(cell=[0])
    for i in range(stacked_a.sizes["cell"]):
        x, y = stacked_a.isel(cell=i).values, stacked_b.isel(cell=i).values
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 2:
            continue
        diff = y[ok] - x[ok]
        mean, lo, hi, n = mean_ci(diff)
        label = stacked_a["cell"].values[i] if cells else ()
        rows.append(
            {
                "cell": dict(zip(cells, np.atleast_1d(label).tolist() if cells else [], strict=False)),
                "a": float(np.mean(x[ok])),
                "b": float(np.mean(y[ok])),
                "diff": float(mean),
                "lo": float(lo),
                "hi": float(hi),
                "n": int(n),
                "identical": bool(np.array_equal(x[ok], y[ok])),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="an aggregate, or a folder of aggregates (*.nc)")
    ap.add_argument("b", type=Path, help="the same for the other side")
    ap.add_argument("--metric", default="average_cost")
    ap.add_argument("--rounding", type=float, default=1e-6, help="a relative difference below this is rounding")
    args = ap.parse_args(argv)
    if args.a.is_dir() != args.b.is_dir():
        ap.error("a and b must both be files or both folders")
    pairs = (
        [(p, args.b / p.name) for p in sorted(args.a.glob("*.nc")) if (args.b / p.name).exists()]
        if args.a.is_dir()
        else [(args.a, args.b)]
    )
    if not pairs:
        ap.error("no aggregate is in both")
    total = holds = same = rounding = 0
    worst = (0.0, "")
    for pa, pb in pairs:
        with xr.open_dataset(pa) as da, xr.open_dataset(pb) as db:
            if args.metric not in da or args.metric not in db:
                continue
            try:
                rows = compare(da.load(), db.load(), args.metric)
            except ValueError as err:
                print(f"{pa.name}: skipped ({err})")
                continue
            for r in rows:
                total += 1
                within = r["lo"] <= 0.0 <= r["hi"]
                holds += within
                same += r["identical"]
                rel = abs(r["diff"]) / max(abs(r["a"]), 1e-300)
                rounding += (not within) and rel < args.rounding
                if rel > worst[0]:
                    worst = (rel, f"{pa.name} {r['cell']}: {r['a']:.4g} vs {r['b']:.4g}")
    print(f"{len(pairs)} aggregates, {total} scheme-point cells of {args.metric} on the shared seeds:")
    print(f"  identical on every seed: {same}")
    print(f"  paired 95% interval of the difference holds 0: {holds} ({holds / max(total, 1):.0%})")
    print(f"  interval excludes 0, difference below {args.rounding:g} of the mean (rounding): {rounding}")
    print(f"  interval excludes 0, larger difference: {total - holds - rounding}")
    print(f"  largest relative difference of the means: {worst[0]:.2%} ({worst[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
