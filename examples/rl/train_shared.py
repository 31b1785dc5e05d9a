"""Train one PPO policy shared by every WD (parameter sharing) on the WDs-only PettingZoo view,
through SuperSuit's recipe; the server follows a fixed rule.

Not part of the package or of CI (torch and stable-baselines3 are heavy); see docs/rl.md:

    .venv-rl/bin/pip install supersuit
    .venv-rl/bin/python examples/rl/train_shared.py --K 10 --steps 100000 --server min_energy

Prints the training speed and the shared policy's mean return per WD and block on evaluation
episodes (simulator seeds 0..4, the sweep's), before and after training.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def evaluate(policy, K: int, blocks: int, server: str, seeds=range(5)) -> float:
    """Mean reward per WD and block of ``policy`` (a batch of WD observations -> actions)."""
    from mecmodel import rl

    env = rl.wd_parallel_env(K=K, blocks=blocks, server=server)
    total, count = 0.0, 0
    for s in seeds:
        obs, _ = env.reset(options={"simulator_seed": s})
        while env.agents:
            names = list(obs)
            actions = policy(np.stack([obs[a] for a in names]))
            obs, rewards, *_ = env.step({a: actions[i] for i, a in enumerate(names)})
            total += sum(rewards.values())
            count += len(rewards)
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100_000, help="agent-steps (WD decisions) of training")
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--server", default="min_energy", help="the server's rule or a scheme's name")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("MECMODEL_TORCH_THREADS", "1")))
    a = ap.parse_args()
    import supersuit as ss
    import torch
    from stable_baselines3 import PPO

    from mecmodel import rl

    torch.set_num_threads(a.threads)
    env = rl.wd_parallel_env(K=a.K, blocks=a.blocks, server=a.server)
    venv = ss.pettingzoo_env_to_vec_env_v1(env)
    venv = ss.concat_vec_envs_v1(venv, 4, num_cpus=0, base_class="stable_baselines3")
    # The 4 copies are pickled clones of one environment, generator included: seed them apart
    # (copy i with seed i, through SuperSuit's own reset), or every copy replays the same episodes.
    # SB3 would seed through env.seed(), which SuperSuit's ConcatVecEnv lacks: seed the libraries
    # here and give PPO no seed of its own.
    venv.venv.reset(seed=0)
    from stable_baselines3.common.utils import set_random_seed

    set_random_seed(0)
    model = PPO("MlpPolicy", venv, gamma=0.9, device="cpu", verbose=0)

    def policy(obs):
        return model.predict(obs, deterministic=True)[0]

    before = evaluate(policy, a.K, a.blocks, a.server)
    t0 = time.perf_counter()
    model.learn(total_timesteps=a.steps)
    wall = time.perf_counter() - t0
    after = evaluate(policy, a.K, a.blocks, a.server)
    print(f"K = {a.K}, server {a.server}: {a.steps} agent-steps in {wall:.0f} s ({a.steps / wall:.0f} agent-steps/s)")
    print(f"mean reward per WD and block on seeds 0..4: {before:.4f} before training, {after:.4f} after")


if __name__ == "__main__":
    main()
