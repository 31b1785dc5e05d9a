"""The RL front ends' overhead: a step through each front end against MECEnv.step itself.

    python benchmarks/bench_rl.py [--K 10] [--steps 4000]

Every front end steps the same model with a constant action (scaled ones with its scaled
equivalent) for ``steps`` blocks on one seed (the vector environment: on 8 seeds, counted per
seed-step), after a warm-up; the table gives microseconds per step and the ratio to
``MECEnv.step`` measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _time(step, steps: int, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, time.perf_counter() - t0)
    return best / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--steps", type=int, default=4000)
    a = ap.parse_args()
    from mecmodel import rl
    from mecmodel.env import Action, MECEnv
    from mecmodel.params import make_params

    P = make_params("default", {"K": a.K})
    K, n, big = P.K, P.n_slots, 10**9  # episodes longer than the measurement: no reset inside
    mec = MECEnv(P, [0])
    mec.reset()
    act = Action(np.full((1, K), 0.5 * P.p_max), np.full((1, n), 0.5 * P.f_ser_max))
    rows = {"MECEnv.step (1 seed)": _time(lambda: mec.step(act), a.steps)}
    for scaled in (True, False):
        env = rl.OffloadingEnv(blocks=big, params=P, scaled=scaled)
        env.reset(seed=0)
        x = np.zeros(K + n) if scaled else np.concatenate([act.p[0], act.f_ser[0]])
        rows[f"OffloadingEnv.step, scaled={scaled}"] = _time(lambda env=env, x=x: env.step(x), a.steps)
    venv = rl.OffloadingVectorEnv(8, blocks=big, params=P)
    venv.reset(seed=0)
    rows["OffloadingVectorEnv.step, per seed (8 seeds)"] = _time(lambda: venv.step(np.zeros((8, K + n))), a.steps) / 8
    par = rl.parallel_env(blocks=big, params=P)
    par.reset(seed=0)
    acts = {agent: np.zeros(par.action_space(agent).shape) for agent in par.possible_agents}
    rows["parallel_env.step (K + 1 agents)"] = _time(lambda: par.step(acts), a.steps)
    wds = rl.wd_parallel_env(blocks=big, params=P, server="min_energy")
    wds.reset(seed=0)
    acts = {agent: np.zeros(1) for agent in wds.possible_agents}
    rows["wd_parallel_env.step (K agents, min_energy server)"] = _time(lambda: wds.step(acts), a.steps)
    base = rows["MECEnv.step (1 seed)"]
    print(f"K = {K}, n = {n}, {a.steps} steps, best of 3")
    print(f"{'step':52s} {'us':>8s} {'x MECEnv.step':>14s}")
    for name, sec in rows.items():
        print(f"{name:52s} {sec * 1e6:8.1f} {sec / base:14.2f}")


if __name__ == "__main__":
    main()
