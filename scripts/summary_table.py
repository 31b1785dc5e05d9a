"""The 'What it shows' table of docs/model.md, from the workflow's aggregates.

    python scripts/summary_table.py results/cost_vs_block.nc results/convergence.nc

Mean over seeds with a 95% Student-t interval (half-width shown after +-).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import xarray as xr

from mecmodel.sweep import AXES

# Two-sided 95% Student-t quantiles by degrees of freedom (1.96 beyond the table).
T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    19: 2.093,
    24: 2.064,
    29: 2.045,
}


def ci(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return "n/a"
    if v.size == 1:
        return f"{v[0]:.4g}"
    t = T95.get(v.size - 1, 1.96 if v.size > 30 else T95[max(k for k in T95 if k <= v.size - 1)])
    half = t * v.std(ddof=1) / math.sqrt(v.size)
    return f"{v.mean():.4g} ± {half:.2g}"


def conv(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    n = values.size
    if v.size == 0:
        return f"not converged (0/{n})"
    return f"{np.median(v):.0f} ({v.size}/{n} seeds)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cost_vs_block")
    ap.add_argument("convergence", nargs="?")
    a = ap.parse_args()
    with xr.open_dataset(a.cost_vs_block) as d:
        ds = d.load().squeeze(list(AXES))
    print(
        f"K = {int(ds.K)}, arrival {float(ds.arrival_prob):g}, gamma {float(ds.gamma):g}, "
        f"{ds.sizes['seed']} seeds, {ds.sizes['block']} blocks, preset {ds.attrs.get('preset', '?')}.\n"
    )
    print(
        "| scheme | discounted cost (9a) | long-run average cost per block | latency (s) | Alg. 1 converged at (median block) | Alg. 2 converged at (median block) | diverged seeds |"
    )
    print("|---|---|---|---|---|---|---|")
    for s in ds.scheme.values:
        x = ds.sel(scheme=s)
        a1, a2 = (
            "does not learn"
            if not np.isfinite(x[f"{alg}_td_error"].values).any()
            else conv(x[f"{alg}_converged_block_median"].values)
            for alg in ("alg1", "alg2")
        )
        print(
            f"| {s} | {ci(x.discounted_cost.values)} | {ci(x.average_cost.values)} | {ci(x.latency.values)} "
            f"| {a1} | {a2} | {int(x.diverged.sum())} |"
        )
    if a.convergence:
        with xr.open_dataset(a.convergence) as d:
            c = d.load().squeeze()
        print(
            f"\nFig. 6 point (K = {int(c.K)}, proposed, {c.sizes['seed']} seeds): Algorithm 1 median "
            f"{conv(c.alg1_converged_block_median.values)}; Algorithm 2 {conv(c.alg2_converged_block_median.values)}."
        )


if __name__ == "__main__":
    main()
