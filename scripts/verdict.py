"""The verdict tables of docs/results.md and docs/model.md, from one preset's aggregates.

    python scripts/verdict.py [--results results] [--prefix stable_]

Prints (1) every scheme's discounted cost (9a) with its 95% Student-t interval at the Fig. 7
point, at Fig. 8's lightest and heaviest points, at Fig. 9's largest K, and its gap to the exact
optimum on the small instance (K = 1, paired by seed), with the Lagrangian lower bound's row
(mecmodel.bounds) where the aggregates hold it; (2) each scheme's gap to that bound at the same
points, (J - LB) / LB paired by seed; (3) which of the paper's claims hold on this preset's grids,
counted over every point of Figs. 7-9.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr

from mecmodel import schemes
from mecmodel.statistics import mean_ci

PAPER = ("proposed", "binary", "even", "random")


def fmt(v: np.ndarray, unit: str = "") -> str:
    mean, _, hi, _ = mean_ci(v)
    m, h = float(mean), float(hi - mean)
    if not np.isfinite(m):
        return "n/a"
    spec = ".0f" if abs(m) >= 100 else ".3g"
    return f"{m:{spec}} ± {h:{spec}}{unit}" if np.isfinite(h) else f"{m:{spec}}{unit}"


def load(path: Path) -> xr.Dataset | None:
    if not path.is_file():
        return None
    with xr.open_dataset(path) as ds:
        names = ["discounted_cost", "average_cost", *(v for v in ("lower_bound", "bound_gap") if v in ds)]
        return ds[names].load()


def point(ds: xr.Dataset, **sel) -> xr.Dataset:
    return ds.sel(**sel).squeeze(drop=True) if ds is not None else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--prefix", default="")
    a = ap.parse_args()
    root, pre = Path(a.results), a.prefix
    fig7, fig8, fig9 = (load(root / f"{pre}{n}.nc") for n in ("cost_vs_block", "cost_vs_arrival", "cost_vs_K"))
    gap = load(root / f"{pre}optimality_gap.nc")
    lam8 = fig8["arrival_prob"].values
    k9 = fig9["K"].values
    cols = [
        ("Fig. 7: K = 20, λ = 0.4", point(fig7, K=20, arrival_prob=0.4, gamma=0.9)),
        (f"Fig. 8: K = 50, λ = {lam8.min():g}", point(fig8, arrival_prob=lam8.min(), gamma=0.9)),
        (f"Fig. 8: K = 50, λ = {lam8.max():g}", point(fig8, arrival_prob=lam8.max(), gamma=0.9)),
        (f"Fig. 9: K = {k9.max()}, λ = 0.4", point(fig9, K=k9.max(), gamma=0.9)),
    ]
    gap_pt = None
    if gap is not None and "optimal" in gap["scheme"].values:
        g = gap.sel(gamma=0.9).squeeze("K", drop=True)
        opt = g["discounted_cost"].sel(scheme="optimal")
        gap_pt = 100 * (g["discounted_cost"] - opt) / opt  # (arrival_prob, scheme, seed)
    names = schemes.order(
        set(fig7["scheme"].values.tolist()) | set(gap["scheme"].values.tolist() if gap is not None else [])
    )
    head = ["scheme", *(c for c, _ in cols)]
    if gap_pt is not None:
        head += [f"gap to optimum, K = 1, λ = {lam:g}" for lam in gap_pt["arrival_prob"].values]
    print(f"Discounted cost (9a), mean ± 95% t-interval over seeds; preset of {root / (pre + 'cost_vs_block.nc')}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for s in names:
        row = [s]
        for _, ds in cols:
            row.append(fmt(ds["discounted_cost"].sel(scheme=s).values) if s in ds["scheme"].values else "")
        if gap_pt is not None:
            for lam in gap_pt["arrival_prob"].values:
                has = s in gap_pt["scheme"].values
                row.append(fmt(gap_pt.sel(scheme=s, arrival_prob=lam).values, " %") if has else "")
        print("| " + " | ".join(row) + " |")
    if all("lower_bound" in ds for _, ds in cols):
        row = ["**lower bound (every policy)**"] + [f"**{fmt(ds['lower_bound'].values)}**" for _, ds in cols]
        if gap_pt is not None:
            row += [""] * gap_pt.sizes["arrival_prob"]
        print("| " + " | ".join(row) + " |")
        print("\nGap to the lower bound, (J - LB) / LB in %, paired by seed (mean ± 95% t-interval)\n")
        print("| " + " | ".join(["scheme", *(c for c, _ in cols)]) + " |")
        print("|" + "---|" * (len(cols) + 1))
        for s in names:
            if s not in fig7["scheme"].values:
                continue
            row = [s] + [
                fmt(100 * ds["bound_gap"].sel(scheme=s).values, " %") if s in ds["scheme"].values else ""
                for _, ds in cols
            ]
            print("| " + " | ".join(row) + " |")

    # The paper's claims, over every point of Figs. 7-9 (discounted cost and long-run average).
    pts = [(fig7, "K", 20)] + [(fig8, "arrival_prob", v) for v in lam8] + [(fig9, "K", v) for v in k9]
    print("\n| claim | discounted cost (9a) | long-run average |\n|---|---|---|")
    for claim in (
        "proposed lowest of the paper's four",
        "proposed lowest of all",
        "random worst of the paper's four",
        "binary below even",
    ):
        cells = []
        for var in ("discounted_cost", "average_cost"):
            hold = 0
            for ds, dim, v in pts:
                m = ds[var].sel({dim: v}).sel(gamma=0.9).squeeze(drop=True).mean("seed")
                paper = m.sel(scheme=[s for s in PAPER if s in m["scheme"].values])
                if claim == "proposed lowest of the paper's four":
                    hold += paper.idxmin("scheme").item() == "proposed"
                elif claim == "proposed lowest of all":
                    hold += m.idxmin("scheme").item() == "proposed"
                elif claim == "random worst of the paper's four":
                    hold += paper.idxmax("scheme").item() == "random"
                else:
                    hold += bool(m.sel(scheme="binary") < m.sel(scheme="even"))
            cells.append(f"{hold} of {len(pts)} points")
        print(f"| {claim} | {cells[0]} | {cells[1]} |")
    for ds, dim, label in ((fig8, "arrival_prob", "arrival probability (Fig. 8)"), (fig9, "K", "K (Fig. 9)")):
        cells = []
        for var in ("discounted_cost", "average_cost"):
            m = ds[var].sel(gamma=0.9).squeeze(drop=True).mean("seed").transpose("scheme", dim)
            rising = [str(s) for s in m["scheme"].values if np.all(np.diff(m.sel(scheme=s).values) > 0)]
            cells.append(f"{len(rising)} of {m.sizes['scheme']} schemes")
        print(f"| cost rises with {label} at every step | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
