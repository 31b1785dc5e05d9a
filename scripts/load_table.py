"""Offered load against capacity for each figure's grid (the table in docs/model.md).

python scripts/load_table.py [--preset default|paper|stable]

:func:`load` gives one point's numbers and verdict; tests/test_stable_preset.py imports it.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from mecmodel.params import PRESETS, make_params

GRIDS = {
    "Fig. 6 (convergence)": [(4, 0.4)],
    "Fig. 7 (cost vs block)": [(20, 0.4)],
    "Fig. 8 (cost vs arrival)": [(50, lam / 10) for lam in range(1, 10)],
    "Fig. 9 (cost vs K)": [(k, 0.4) for k in range(10, 101, 10)],
}

#: Verdicts under which a queue can stay bounded; every other verdict says "overloaded".
STABLE = ("stable locally", "needs offloading", "needs offloading (critical locally)")


def load(preset: str, K: int, lam: float, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Offered load and capacities at one point, in tasks of W per block of n tau, and the verdict."""
    P = make_params(preset, {**(overrides or {}), "K": K, "arrival_prob": lam})
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
    return {
        "K": K,
        "lambda": lam,
        "arrivals": arrive,
        "local_only": local_only,
        "best": best,
        "need_server": need_server,
        "server": server,
        "offered": arrive * K * W / block,  # cycles/s
        "verdict": verdict,
    }


def row(preset: str, K: int, lam: float) -> str:
    d = load(preset, K, lam)
    return (
        f"| {K} | {lam:g} | {d['arrivals']:.2g} | {d['local_only']:.3g} | {d['best']:.3g} | {d['need_server']:.3g} "
        f"| {d['server']:.3g} | {d['offered']:.3g} | {d['verdict']} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", choices=PRESETS)
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
