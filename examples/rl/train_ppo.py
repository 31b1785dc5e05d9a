"""Train a PPO agent (Stable-Baselines3) on the centralised view and save it; its `load_policy`
turns the saved file into the callable `mecmodel.agents.register_agent` wraps.

Not part of the package or of CI (torch and stable-baselines3 are heavy); see docs/rl.md:

    python -m venv .venv-rl && .venv-rl/bin/pip install -e ".[rl]" torch==2.13.0 stable-baselines3
    .venv-rl/bin/python examples/rl/train_ppo.py --K 4 --steps 100000   # -> results/rl/ppo_K4.zip

Training uses seeds 1000 and up (other user drops than the evaluation seeds 0..9), episodes of
`--blocks` blocks, 4 environments, observations as log10(1 + x) (queues in cycles and channel
gains span orders of magnitude), actions in [-1, 1] rescaled to [0, p_max] and [0, f_ser_max],
rewards normalised during training only. Nothing was tuned to make it win.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

TRAIN_SEED0 = 1000


def _squash(obs: np.ndarray) -> np.ndarray:
    return np.log10(1.0 + np.maximum(obs, 0.0)).astype(np.float32)


def _make_env(K: int, blocks: int, seed: int):
    import gymnasium as gym

    from mecmodel.rl import OffloadingEnv

    class Wrapped(gym.Wrapper):
        """log10(1 + x) observations, [-1, 1] actions, a fresh drop (seed) every episode."""

        def __init__(self):
            env = OffloadingEnv(blocks=blocks, K=K)
            super().__init__(env)
            high = env.action_space.high
            self.scale = high
            self.action_space = gym.spaces.Box(-1.0, 1.0, high.shape, np.float32)
            d = env.observation_space.shape[0]
            self.observation_space = gym.spaces.Box(0.0, np.inf, (d,), np.float32)
            self.next_seed = seed

        def reset(self, *, seed=None, options=None):
            obs, info = self.env.reset(seed=self.next_seed)
            self.next_seed += 4  # four environments interleave their seeds
            return _squash(obs), info

        def step(self, action):
            a = (np.clip(action, -1.0, 1.0) + 1.0) / 2.0 * self.scale
            obs, r, term, trunc, info = self.env.step(a)
            return _squash(obs), r, term, trunc, info

    return Wrapped()


def load_policy(weights: str):
    """The saved agent as a callable: a batch of centralised observations -> a batch of actions."""
    from stable_baselines3 import PPO

    model = PPO.load(weights, device="cpu")
    high = None

    def act(obs: np.ndarray) -> np.ndarray:
        nonlocal high
        if high is None:
            from mecmodel.params import make_params

            K = (obs.shape[1] - 1) // 7  # 2K + 5K + 1 with the default n = 5 slots
            P = make_params("default", {"K": K})
            high = np.concatenate([np.full(K, P.p_max), np.full(P.n_slots, P.f_ser_max)])
        a, _ = model.predict(_squash(obs), deterministic=True)
        return (np.clip(a, -1.0, 1.0) + 1.0) / 2.0 * high

    return act


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--blocks", type=int, default=200, help="blocks per training episode")
    ap.add_argument("--out", default="results/rl")
    a = ap.parse_args()
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(2)
    venv = DummyVecEnv([lambda i=i: _make_env(a.K, a.blocks, TRAIN_SEED0 + i) for i in range(4)])
    venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=0.9)
    model = PPO("MlpPolicy", venv, gamma=0.9, seed=0, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=a.steps)
    out = Path(a.out) / f"ppo_K{a.K}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    print(f"trained K={a.K} for {a.steps} steps in {time.perf_counter() - t0:.0f} s -> {out}")


if __name__ == "__main__":
    main()
