"""Evaluate saved PPO agents (train_ppo.py) on the sweep's evaluation seeds, paired by seed.

    .venv-rl/bin/python examples/rl/evaluate.py results/rl/ppo_K1.zip results/rl/ppo_K1_replay.zip \\
        --K 1 --reference optimal --also even proposed

Each agent becomes a scheme (`mecmodel.agents.register_agent` with train_ppo's `load_policy`),
runs on seeds 0..seeds-1 at the given point beside the other schemes named, and the table gives the
discounted cost (9a) per scheme (mean over seeds, 95% t-interval) and its paired difference from
the reference scheme on the same seeds (common random numbers).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="saved agents (.zip)")
    ap.add_argument("--K", type=int, default=1)
    ap.add_argument("--arrival-prob", type=float, default=0.4)
    ap.add_argument("--gamma", type=float, default=0.9)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--blocks", type=int, default=2000)
    ap.add_argument("--also", nargs="*", default=["even", "proposed"], help="other schemes to run beside")
    ap.add_argument("--reference", default="even", help="the scheme every other is paired with")
    a = ap.parse_args()

    import mecmodel
    from mecmodel.agents import register_agent
    from mecmodel.statistics import mean_ci

    here = Path(__file__).resolve().parent
    names = []
    for w in a.weights:
        name = Path(w).stem
        register_agent(name, load=f"{here / 'train_ppo.py'}:load_policy", weights=w, description=f"PPO {w}")
        names.append(name)
    costs = {}
    for scheme in dict.fromkeys([*names, *a.also, a.reference]):
        ds = mecmodel.simulate(
            K=a.K, arrival_prob=a.arrival_prob, gamma=a.gamma, scheme=scheme, seeds=a.seeds, blocks=a.blocks
        )
        costs[scheme] = ds["discounted_cost"].values.reshape(-1)
    ref = costs[a.reference]
    print(f"K = {a.K}, lambda = {a.arrival_prob}, gamma = {a.gamma}, seeds 0..{a.seeds - 1}, {a.blocks} blocks")
    print(f"{'scheme':24s} {'discounted cost (9a)':>22s} {'minus ' + a.reference + ', paired':>26s}")
    for scheme, c in costs.items():
        m, lo, hi, _ = mean_ci(c)
        d, dlo, dhi, _ = mean_ci(c - ref)
        pair = "" if scheme == a.reference else f"{d:10.2f} +- {dhi - d:6.2f}"
        print(f"{scheme:24s} {m:12.2f} +- {hi - m:6.2f} {pair:>26s}")
    assert all(np.isfinite(c).all() for c in costs.values())


if __name__ == "__main__":
    main()
