"""Train a PPO agent (Stable-Baselines3) on the centralised view and save it; its `load_policy`
turns the saved file into the callable `mecmodel.agents.register_agent` wraps.

Not part of the package or of CI (torch and stable-baselines3 are heavy); see docs/rl.md:

    python -m venv .venv-rl && .venv-rl/bin/pip install -e ".[rl]" stable-baselines3
    .venv-rl/bin/python examples/rl/train_ppo.py --K 4 --steps 100000   # -> results/rl/ppo_K4.zip

The environment is `mecmodel.rl.OffloadingEnv` with its defaults: actions in [-1, 1], observations
in [0, 1] (`mecmodel.rl.Scaling`), a fresh simulator seed every episode (all >= 2**32, so never one
the sweep evaluates); `--replay` instead replays the same seed in each environment, episode after
episode (what this example did before, for comparison). Episodes of `--blocks` blocks, 4
environments, rewards normalised during training only. Nothing was tuned to make it win.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def _params(preset: str, sets: list[str], K: int):
    from mecmodel.params import load_yaml, make_params

    over = {}
    for item in sets:
        name, _, value = item.partition("=")
        over[name] = load_yaml(value, f"--set {name}")
    return make_params(preset, {**over, "K": K})


def _make_env(P, blocks: int, seed: int, replay: bool):
    import gymnasium as gym

    from mecmodel.rl import TRAIN_SEED_MIN, OffloadingEnv

    class Replay(gym.Wrapper):
        """Every episode on the same simulator seed (the old behaviour, for comparison)."""

        def reset(self, *, seed=None, options=None):
            return self.env.reset(seed=seed, options={"simulator_seed": TRAIN_SEED_MIN + self.fixed})

    env = OffloadingEnv(blocks=blocks, params=P)
    if replay:
        env = Replay(env)
        env.fixed = seed
    return env


def load_policy(weights: str, params):
    """The saved agent as a callable for a run with ``params``: a batch of centralised observations
    (physical units) -> a batch of actions (W, cycles/s). Refuses, in one line, a run whose
    observations have another shape than those the agent was trained on."""
    from stable_baselines3 import PPO

    from mecmodel.rl import Scaling

    model = PPO.load(weights, device="cpu")
    K, n = params.K, params.n_slots
    scaling = Scaling(params)

    def act(obs: np.ndarray) -> np.ndarray:
        a, _ = model.predict(scaling.centralised(obs, K, n), deterministic=True)
        a = np.atleast_2d(a)
        return np.concatenate([scaling.power(a[:, :K]), scaling.rates(a[:, K:])], axis=1)

    act.observation_shape = tuple(model.observation_space.shape)  # checked by mecmodel before the first call
    return act


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a model parameter (repeatable)")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--blocks", type=int, default=200, help="blocks per training episode")
    ap.add_argument("--replay", action="store_true", help="replay one seed per environment (the old behaviour)")
    ap.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("MECMODEL_TORCH_THREADS", "1")),
        help="torch threads (default: $MECMODEL_TORCH_THREADS, else 1 per process)",
    )
    ap.add_argument("--out", default="results/rl")
    ap.add_argument("--name", default=None, help="file name (default ppo_K<K>)")
    a = ap.parse_args()
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(a.threads)
    P = _params(a.preset, a.set, a.K)
    venv = DummyVecEnv([lambda i=i: _make_env(P, a.blocks, i, a.replay) for i in range(4)])
    venv.seed(0)
    venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=P.gamma)
    model = PPO("MlpPolicy", venv, gamma=P.gamma, seed=0, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=a.steps)
    wall = time.perf_counter() - t0
    out = Path(a.out) / f"{a.name or f'ppo_K{a.K}'}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    out.with_suffix(".json").write_text(json.dumps({"preset": P.preset, "params": P.to_dict()}, indent=1))
    print(f"trained K={a.K} for {a.steps} steps in {wall:.0f} s ({a.steps / wall:.0f} steps/s) -> {out}")


if __name__ == "__main__":
    main()
