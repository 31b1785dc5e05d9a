"""A first look at the reference rules of mecmodel/policies (not yet registered schemes).

Registers, in this process only, the pairings of the fixed server rules, the myopic rules and
drift-plus-penalty for a few V, runs them beside the registered schemes at one operating point
and prints each scheme's discounted cost (9a) and long-run average cost with 95% t-intervals:

    python scripts/first_look_references.py [--K 20] [--seeds 10] [--blocks 2000]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from mecmodel import schemes
from mecmodel.params import make_params
from mecmodel.policies.myopic import DriftPlusPenaltyServer, DriftPlusPenaltyWD, MyopicServer, MyopicWD
from mecmodel.policies.rules import EvenShare, FixedPower, MinEnergy
from mecmodel.simulation import simulate_arrays


def ci(x: np.ndarray) -> str:
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return f"{x.mean():.0f} ± {half:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--blocks", type=int, default=2000)
    a = ap.parse_args()
    extra = {
        "even_min_energy": (EvenShare, MinEnergy),
        "offload_min_energy": (lambda: FixedPower(1.0), MinEnergy),
        "myopic": (MyopicWD, MyopicServer),
        **{
            "dpp_V" + f"{V:g}".replace(".", "p"): (
                lambda V=V: DriftPlusPenaltyWD(V),
                lambda V=V: DriftPlusPenaltyServer(V),
            )
            for V in (0.1, 1, 10)
        },
    }
    for name, (wd, server) in extra.items():
        schemes.register(name, wd=wd, server=server, description=name)
    P = make_params("default", {"K": a.K})
    print(
        f"K = {a.K}, arrival {P.arrival_prob:g}, gamma {P.gamma:g}, {a.seeds} seeds, {a.blocks} blocks, preset default\n"
    )
    print("| scheme | discounted cost (9a) | long-run average cost per block |\n|---|---|---|")
    for name in schemes.SCHEMES:
        out = simulate_arrays(P, name, a.seeds, a.blocks)
        print(f"| {name} | {ci(out['discounted_cost'])} | {ci(out['average_cost'])} |")


if __name__ == "__main__":
    main()
