"""Front ends for reinforcement-learning libraries (``pip install mecmodel[rl]``).

Thin wrappers of :class:`mecmodel.env.MECEnv`; the physics, the random streams and the cost (8)
are the environment's, so a front end driven with a scheme's actions gives the scheme's run
exactly (``tests/test_rl.py``). ``docs/rl.md`` documents spaces, rewards and seeding.

* :func:`parallel_env` (PettingZoo, parallel API): one agent per WD (``wd_0`` ... ``wd_{K-1}``)
  and one for the server (``server``), each observing what the paper's decentralised information
  model lets it see (section IV) and rewarded with minus its own cost term of (8).
* :class:`OffloadingEnv` (Gymnasium, id ``mecmodel/Offloading-v0``): the centralised view, one
  seed; reward minus the whole cost (8).
* :class:`OffloadingVectorEnv` (Gymnasium vector API): the centralised view for several seeds at
  once, natively vectorised (no subprocesses).

Observations and actions are float64 (the environment's own precision). An episode lasts
``blocks`` decision blocks and is then truncated; nothing terminates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from .env import Action, MECEnv, StepInfo
from .params import Params, make_params
from .policies.agent import centralised_observation

SEED_MAX = 2**63


def build_params(
    K: int | None = None, preset: str = "default", overrides: Mapping[str, Any] | None = None, **params: Any
) -> Params:
    """Model parameters from a preset, ``overrides`` and keyword parameters (``mecmodel params``)."""
    over = {**dict(overrides or {}), **params}
    if K is not None:
        over["K"] = K
    return make_params(preset, over)


def _seed_from(rng: np.random.Generator) -> int:
    return int(rng.integers(SEED_MAX))


class _Centralised:
    """Spaces and flattening shared by the centralised single and vector environments."""

    def _spaces(self, P: Params) -> None:
        K, n = P.K, P.n_slots
        d = 2 * K + K * n + 1
        low = np.zeros(d)
        self.single_observation_space = spaces.Box(low, np.full(d, np.inf), dtype=np.float64)
        self.single_action_space = spaces.Box(
            np.zeros(K + n), np.concatenate([np.full(K, P.p_max), np.full(n, P.f_ser_max)]), dtype=np.float64
        )

    def _flat(self, obs) -> np.ndarray:
        return centralised_observation(obs)

    def _action(self, a: np.ndarray) -> Action:
        K = self.P.K
        a = np.asarray(a, dtype=np.float64).reshape(-1, K + self.P.n_slots)
        return Action(a[:, :K], a[:, K:])


class OffloadingEnv(_Centralised, gymnasium.Env):
    """The centralised view for one seed: observation [q, h, beta, q_ser], action [p (K), f_ser (n)],
    reward minus the cost (8) of the block. ``reset(seed=s)`` runs seed s of the simulator."""

    metadata = {"render_modes": []}

    def __init__(self, blocks: int = 2000, params: Params | None = None, **kwargs: Any):
        self.P = params if params is not None else build_params(**kwargs)
        self.blocks = int(blocks)
        self._spaces(self.P)
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space
        self.mec: MECEnv | None = None
        self.last_info: StepInfo | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        s = seed if seed is not None else _seed_from(self.np_random)
        self.mec = MECEnv(self.P, [s])
        obs = self.mec.reset()
        return self._flat(obs)[0], {"seed": s}

    def step(self, action):
        obs, terms, info = self.mec.step(self._action(action))
        self.last_info = info
        truncated = obs.t >= self.blocks
        return self._flat(obs)[0], -float(terms.total[0]), False, truncated, {}


class OffloadingVectorEnv(_Centralised, gymnasium.vector.VectorEnv):
    """The centralised view for ``num_envs`` seeds in one :class:`MECEnv` (vectorised, no
    subprocesses). ``reset(seed=s)`` runs seeds s, s + 1, ..., s + num_envs - 1, the Gymnasium
    convention; every sub-environment truncates at the same block and is reset on the next step
    (``autoreset_mode`` next-step)."""

    metadata = {"render_modes": [], "autoreset_mode": gymnasium.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, blocks: int = 2000, params: Params | None = None, **kwargs: Any):
        self.P = params if params is not None else build_params(**kwargs)
        self.num_envs, self.blocks = int(num_envs), int(blocks)
        self._spaces(self.P)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.mec: MECEnv | None = None
        self.last_info: StepInfo | None = None
        self._needs_reset = False
        self._seeds: list[int] | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = gymnasium.utils.seeding.np_random(seed)
            base = int(seed)
        else:
            base = _seed_from(self.np_random)
        self._seeds = [base + i for i in range(self.num_envs)]
        self.mec = MECEnv(self.P, self._seeds)
        self._needs_reset = False
        return self._flat(self.mec.reset()), {"seed": np.array(self._seeds)}

    def step(self, actions):
        n = self.num_envs
        if self._needs_reset:  # next-step autoreset: the same seeds again, a new episode
            self.mec = MECEnv(self.P, self._seeds)
            self._needs_reset = False
            return self._flat(self.mec.reset()), np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), {}
        obs, terms, info = self.mec.step(self._action(actions))
        self.last_info = info
        done = obs.t >= self.blocks
        self._needs_reset = done
        return self._flat(obs), -terms.total, np.zeros(n, bool), np.full(n, done), {}


class OffloadingParallelEnv(ParallelEnv):
    """PettingZoo parallel environment: agents ``wd_0`` ... ``wd_{K-1}`` and ``server``.

    ``wd_k`` observes [q_k, h_k, beta_k,1..n] and acts with its power p_k in [0, p_max]; its
    reward is -(w3 q_k + w4 (E^wd_k + E^off_k)). ``server`` observes [q^ser, q_1..q_K] and acts
    with its n slot rates in [0, f_ser_max]; its reward is -(w1 q^ser + w2 E^ser). The rewards add
    up to minus the cost (8). ``reset(seed=s)`` runs seed s of the simulator.
    """

    metadata = {"name": "mecmodel_offloading_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, blocks: int = 2000, params: Params | None = None, **kwargs: Any):
        self.P = params if params is not None else build_params(**kwargs)
        self.blocks = int(blocks)
        K, n = self.P.K, self.P.n_slots
        self.possible_agents = [f"wd_{k}" for k in range(K)] + ["server"]
        self.agents: list[str] = []
        inf = np.inf
        self._obs_spaces = {f"wd_{k}": spaces.Box(0.0, inf, (n + 2,), np.float64) for k in range(K)}
        self._obs_spaces["server"] = spaces.Box(0.0, inf, (K + 1,), np.float64)
        self._act_spaces = {f"wd_{k}": spaces.Box(0.0, self.P.p_max, (1,), np.float64) for k in range(K)}
        self._act_spaces["server"] = spaces.Box(0.0, self.P.f_ser_max, (n,), np.float64)
        self.mec: MECEnv | None = None
        self.last_info: StepInfo | None = None
        self._rng = np.random.default_rng()

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self._act_spaces[agent]

    def _observe(self, obs) -> dict[str, np.ndarray]:
        out = {f"wd_{k}": np.concatenate([[obs.q[0, k], obs.h[0, k]], obs.beta[0, k]]) for k in range(self.P.K)}
        out["server"] = np.concatenate([[obs.q_ser[0]], obs.q[0]])
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            for agent in self.possible_agents:
                self._act_spaces[agent].seed(seed)
        s = seed if seed is not None else _seed_from(self._rng)
        self.mec = MECEnv(self.P, [s])
        self.agents = list(self.possible_agents)
        obs = self.mec.reset()
        return self._observe(obs), {a: {"seed": s} for a in self.agents}

    def step(self, actions: Mapping[str, np.ndarray]):
        K = self.P.K
        p = np.array([[np.asarray(actions[f"wd_{k}"], dtype=np.float64).reshape(-1)[0] for k in range(K)]])
        f = np.asarray(actions["server"], dtype=np.float64).reshape(1, -1)
        obs, terms, info = self.mec.step(Action(p, f))
        self.last_info = info
        rewards = {f"wd_{k}": -float(info.wd_cost[0, k]) for k in range(K)}
        rewards["server"] = -float(info.server_cost[0])
        done = obs.t >= self.blocks
        agents = self.agents
        observations = self._observe(obs)
        if done:
            self.agents = []
        return (
            observations,
            rewards,
            {a: False for a in agents},
            {a: bool(done) for a in agents},
            {a: {} for a in agents},
        )


def parallel_env(blocks: int = 2000, **kwargs: Any) -> OffloadingParallelEnv:
    """The PettingZoo parallel environment (the ecosystem's module-level constructor)."""
    return OffloadingParallelEnv(blocks=blocks, **kwargs)


gymnasium.register(id="mecmodel/Offloading-v0", entry_point="mecmodel.rl:OffloadingEnv")
