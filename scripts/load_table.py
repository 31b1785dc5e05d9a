"""Offered load against capacity for each figure's grid (the table in docs/model.md).

python scripts/load_table.py [--preset default|paper]
"""

from __future__ import annotations

import argparse
import math

from mecmodel.params import make_params

GRIDS = {
    "Fig. 6 (convergence)": [(4, 0.4)],
    "Fig. 7 (cost vs block)": [(20, 0.4)],
    "Fig. 8 (cost vs arrival)": [(50, lam / 10) for lam in range(1, 10)],
    "Fig. 9 (cost vs K)": [(k, 0.4) for k in range(10, 101, 10)],
}


def row(preset: str, K: int, lam: float) -> str:
    P = make_params(preset, {"K": K, "arrival_prob": lam})
    W, block = P.task_cycles, P.n_slots * P.tau
    arrive = lam * P.n_slots  # tasks per WD per block
    local = P.f_wd_max * block / W  # tasks per WD per block the CPU can compute
    if P.local_service == "mod_w":
        local_only, best = math.floor(local), math.floor(local + 1)  # whole tasks; + one back end
    elif P.local_service == "single":
        local_only, best = min(local, 1.0), 1.0
    else:
        local_only, best = local, local + 1
    server = P.f_ser_max * block / W  # tasks per block
    need_server = max(0.0, K * (arrive - local_only))
    if arrive < local_only:
        verdict = "stable locally"
    elif arrive < best:
        verdict = "needs offloading" + (" (critical locally)" if arrive == local_only else "")
    else:
        verdict = "overloaded for every scheme"
    if need_server > server:
        verdict = "server overloaded"
    return (
        f"| {K} | {lam:g} | {arrive:.2g} | {local_only:.3g} | {best:.3g} | {need_server:.3g} | {server:.3g} "
        f"| {arrive * K * W / block:.3g} | {verdict} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    a = ap.parse_args()
    print(
        "| K | lambda | arrivals (tasks/WD/block) | local-only service | best with offloading | "
        "server work needed (tasks/block) | server capacity (tasks/block) | offered load (cycles/s) | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, pts in GRIDS.items():
        print(f"| **{name}** | | | | | | | | |")
        for K, lam in pts:
            print(row(a.preset, K, lam))


if __name__ == "__main__":
    main()
