"""A Markdown table of an aggregate: every scheme (and every value of a swept axis), its costs, the
metrics MEC papers report, and its paired difference from the experiment's reference scheme.

    python scripts/summary_table.py results/cost_vs_block.nc [results/convergence.nc]
    python scripts/summary_table.py results/cost_vs_server_capacity.nc

Mean over seeds with a 95% Student-t interval (half-width after ±, mecmodel.statistics.mean_ci). The
"paired" column is the mean of the per-seed differences from the reference scheme (the schemes of a
point share their random draws), whose interval is the one that says whether a scheme is lower.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import xarray as xr

from mecmodel.statistics import default_reference, mean_ci, paired_differences


def ci(values: np.ndarray, digits: str = ".4g") -> str:
    mean, lo, hi, n = mean_ci(np.asarray(values, dtype=float).ravel())
    if n == 0:
        return "n/a"
    if n == 1:
        return format(float(mean), digits)
    return f"{float(mean):{digits}} ± {float(hi - mean):.2g}"


def conv(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    n = values.size
    if v.size == 0:
        return f"not converged (0/{n})"
    return f"{np.median(v):.0f} ({v.size}/{n} seeds)"


def table(ds: xr.Dataset) -> list[str]:
    """Rows per scheme and per value of every point dim with several values."""
    if "diff_average_cost" not in ds:  # combined by hand, not by mecmodel aggregate
        ds = paired_differences(ds, str(ds.attrs.get("reference_scheme") or default_reference(ds)))
    swept = [d for d in ds.dims if d not in ("scheme", "seed", "block", "wd") and ds.sizes[d] > 1]
    fixed = [d for d in ds.dims if d not in ("scheme", "seed", "block", "wd") and ds.sizes[d] == 1]
    ref = ds.attrs.get("reference_scheme", "")
    bounded = int("bound_gap" in ds)
    point = ", ".join(f"{d} = {ds[d].values[0]:g}" for d in fixed)
    out = [
        f"{point}; {ds.sizes['seed']} seeds, {ds.sizes['block']} blocks, preset {ds.attrs.get('preset', '?')}; "
        f"paired: minus {ref} on the same seed.",
        "",
        "| "
        + " | ".join(
            [
                *swept,
                "scheme",
                "discounted cost (9a)",
                "average cost per block",
                f"paired Δ average cost vs {ref}",
                "delay (s)",
                "energy per block (J)",
                "offloaded share",
                "diverged seeds",
                *(["gap to the lower bound (%)"] if bounded else []),
            ]
        )
        + " |",
        "|" + "---|" * (len(swept) + 8 + bounded),
    ]
    ds = ds.squeeze(fixed)
    for values in itertools.product(*(ds[d].values for d in swept)):
        x = ds.sel(dict(zip(swept, values, strict=True)))
        for s in x.scheme.values:
            y = x.sel(scheme=s)
            paired = "0 (reference)" if s == ref else ci(y["diff_average_cost"].values)
            cells = [*(f"{v:g}" for v in values), str(s), ci(y.discounted_cost.values), ci(y.average_cost.values)]
            cells += [paired, ci(y.latency.values)]
            cells += [
                ci(y[v].values, f) if v in y else "n/a" for v, f in (("mean_energy", ".4g"), ("offloaded_share", ".3f"))
            ]
            cells.append(str(int(y.diverged.sum())))
            if bounded:
                cells.append(ci(100.0 * y.bound_gap.values, ".3g"))
            out.append("| " + " | ".join(cells) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("aggregate")
    ap.add_argument("convergence", nargs="?")
    a = ap.parse_args()
    with xr.open_dataset(a.aggregate) as d:
        print("\n".join(table(d.load())))
    if a.convergence:
        with xr.open_dataset(a.convergence) as d:
            c = d.load().squeeze()
        print(
            f"\nFig. 6 point (K = {int(c.K)}, proposed, {c.sizes['seed']} seeds): Algorithm 1 median "
            f"{conv(c.alg1_converged_block_median.values)}; Algorithm 2 {conv(c.alg2_converged_block_median.values)}."
        )


if __name__ == "__main__":
    main()
