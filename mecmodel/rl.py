"""Front ends for reinforcement-learning libraries (``pip install mecmodel[rl]``).

Thin wrappers of :class:`mecmodel.env.MECEnv`; the physics, the random streams and the cost (8)
are the environment's, so a front end driven with a scheme's actions gives the scheme's run
exactly (``tests/test_rl.py``). ``docs/rl.md`` documents spaces, rewards and seeding.

* :func:`parallel_env` (PettingZoo, parallel API): one agent per WD (``wd_0`` ... ``wd_{K-1}``)
  and one for the server (``server``), each observing what the paper's decentralised information
  model lets it see (section IV) and rewarded with minus its own cost term of (8).
* :func:`wd_parallel_env` (PettingZoo): the WDs alone, every agent with the same spaces (for
  parameter sharing); the server follows a registered server policy chosen by name.
* :class:`OffloadingEnv` (Gymnasium, id ``mecmodel/Offloading-v0``): the centralised view, one
  seed; reward minus the whole cost (8).
* :class:`OffloadingVectorEnv` (Gymnasium vector API): the centralised view for several seeds at
  once, natively vectorised (no subprocesses).

By default (``scaled=True``) actions are in [-1, 1] and observations in [0, 1] (:class:`Scaling`);
``scaled=False`` gives the physical view (W, cycles/s, cycles, W^-1). Every reset draws fresh
simulator seeds from the front end's seeded generator, all at least :data:`TRAIN_SEED_MIN`, so
training never sees a seed the sweep evaluates (seeds 0, 1, ...). Every front end pickles and
deep-copies. An episode lasts ``blocks`` decision blocks and is then truncated; nothing terminates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from pettingzoo import ParallelEnv

from . import channel
from .env import Action, MECEnv, StepInfo
from .params import Params, make_params
from .policies.agent import centralised_observation
from .policies.base import PolicyContext, ServerPolicy, Transition
from .policies.qlearning import Algorithm2
from .policies.rules import FullSpeed, MinEnergy

SEED_MAX = 2**63
#: Simulator seeds a front end draws are in [TRAIN_SEED_MIN, 2**63): disjoint from the seeds a sweep
#: evaluates (0 .. seeds - 1, and no sweep runs 2**32 seeds).
TRAIN_SEED_MIN = 2**32


def build_params(
    K: int | None = None, preset: str = "default", overrides: Mapping[str, Any] | None = None, **params: Any
) -> Params:
    """Model parameters from a preset, ``overrides`` and keyword parameters (``mecmodel params``)."""
    over = {**dict(overrides or {}), **params}
    if K is not None:
        over["K"] = K
    return make_params(preset, over)


def _draw_seeds(rng: np.random.Generator, n: int) -> list[int]:
    return [int(s) for s in rng.integers(TRAIN_SEED_MIN, SEED_MAX, size=n)]


class Scaling:
    """The scaled view of the spaces, and its inverse.

    Actions: each component in [-1, 1], ``(a + 1) / 2`` times its bound (p_max for a WD's power,
    f_ser_max for a server slot rate). Observations in [0, 1]: a queue q (cycles) as
    ``q / (q + q_scale)`` with ``q_scale = task_cycles * queue_scale`` (Algorithm 1's own queue
    scale), a gain h (W^-1) as ``h / (h + h_scale)`` with ``h_scale`` the mean gain at half the cell
    radius without shadowing, arrivals (0 or 1) as they are. Both maps are monotone and invertible.
    """

    def __init__(self, P: Params):
        self.p_max, self.f_ser_max = float(P.p_max), float(P.f_ser_max)
        #: cycles: a queue of q_scale cycles is observed as 0.5
        self.q_scale = float(P.task_cycles * P.queue_scale)
        #: W^-1: a gain of h_scale is observed as 0.5
        self.h_scale = float(
            channel.large_scale_gain(
                np.array(P.cell_radius / 2), np.array(0.0), P.pathloss_a, P.pathloss_b, 0.0, P.noise_dbw
            )
        )

    @staticmethod
    def _squash(x: np.ndarray, c: float) -> np.ndarray:
        return x / (x + c)

    @staticmethod
    def _unit(a: np.ndarray) -> np.ndarray:
        return (np.clip(a, -1.0, 1.0) + 1.0) / 2.0

    def power(self, a: np.ndarray) -> np.ndarray:
        """Scaled WD actions in [-1, 1] -> powers in W."""
        return self._unit(a) * self.p_max

    def rates(self, a: np.ndarray) -> np.ndarray:
        """Scaled server actions in [-1, 1] -> slot rates in cycles/s."""
        return self._unit(a) * self.f_ser_max

    def queues(self, q: np.ndarray) -> np.ndarray:
        return self._squash(q, self.q_scale)

    def gains(self, h: np.ndarray) -> np.ndarray:
        return self._squash(h, self.h_scale)

    def centralised(self, x: np.ndarray, K: int, n: int) -> np.ndarray:
        """A batch of centralised observations [q (K), h (K), beta (K n), q^ser], scaled."""
        out = np.array(x, dtype=np.float64)
        out[:, :K] = self.queues(out[:, :K])
        out[:, K : 2 * K] = self.gains(out[:, K : 2 * K])
        out[:, -1] = self.queues(out[:, -1])
        return out


def _finite(values: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{what}: component {int(bad[0])} is {values.flat[bad[0]]}; an action must be finite")


def _as_array(action: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected numbers of shape {shape}, got {type(action).__name__}") from None
    if a.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {a.shape}")
    _finite(a, what)
    return a


class _Centralised:
    """Spaces, observations and actions shared by the centralised single and vector environments."""

    render_mode = None

    def _setup(self, P: Params, blocks: int, scaled: bool) -> None:
        self.P, self.blocks, self.scaled = P, int(blocks), bool(scaled)
        self.scaling = Scaling(P)
        K, n = P.K, P.n_slots
        d = 2 * K + K * n + 1
        if self.scaled:
            self.single_observation_space = spaces.Box(0.0, 1.0, (d,), np.float64)
            self.single_action_space = spaces.Box(-1.0, 1.0, (K + n,), np.float64)
        else:
            self.single_observation_space = spaces.Box(np.zeros(d), np.full(d, np.inf), dtype=np.float64)
            self.single_action_space = spaces.Box(
                np.zeros(K + n), np.concatenate([np.full(K, P.p_max), np.full(n, P.f_ser_max)]), dtype=np.float64
            )
        self.mec: MECEnv | None = None
        self.last_info: StepInfo | None = None
        self._done = False

    def _flat(self, obs) -> np.ndarray:
        x = centralised_observation(obs)
        return self.scaling.centralised(x, self.P.K, self.P.n_slots) if self.scaled else x

    def _action(self, a: np.ndarray) -> Action:
        K = self.P.K
        p, f = a[:, :K], a[:, K:]
        if self.scaled:
            p, f = self.scaling.power(p), self.scaling.rates(f)
        return Action(p, f)

    def _check_running(self) -> None:
        if self.mec is None:
            raise ResetNeeded("step() before reset(): call reset() first")
        if self._done:
            raise ResetNeeded(f"the episode was truncated after {self.blocks} blocks: call reset() first")


class OffloadingEnv(_Centralised, gymnasium.Env):
    """The centralised view for one seed: observation [q, h, beta, q_ser], action [p (K), f_ser (n)],
    reward minus the cost (8) of the block.

    ``reset(seed=s)`` seeds the front end's generator; every reset draws a fresh simulator seed from
    it (at least :data:`TRAIN_SEED_MIN`). ``reset(options={"simulator_seed": k})`` runs seed k of the
    simulator instead (the same drop, fading and arrivals as seed k of every scheme's run)."""

    metadata = {"render_modes": []}

    def __init__(
        self, blocks: int = 2000, params: Params | None = None, scaled: bool = True, render_mode=None, **kwargs: Any
    ):
        self._setup(params if params is not None else build_params(**kwargs), blocks, scaled)
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        s = (options or {}).get("simulator_seed")
        s = int(s) if s is not None else _draw_seeds(self.np_random, 1)[0]
        self.mec = MECEnv(self.P, [s])
        self._done = False
        return self._flat(self.mec.reset())[0], {"seed": s}

    def step(self, action):
        self._check_running()
        a = _as_array(action, self.action_space.shape, "action")
        obs, terms, info = self.mec.step(self._action(a[None, :]))
        self.last_info = info
        self._done = obs.t >= self.blocks
        return self._flat(obs)[0], -float(terms.total[0]), False, self._done, {}


class OffloadingVectorEnv(_Centralised, gymnasium.vector.VectorEnv):
    """The centralised view for ``num_envs`` seeds in one :class:`MECEnv` (vectorised, no
    subprocesses). Every sub-environment truncates at the same block and is reset on the next step
    (``autoreset_mode`` next-step) with fresh simulator seeds from the front end's generator (seeded
    by ``reset(seed=s)``); ``reset(options={"simulator_seeds": [...]})`` runs given seeds."""

    metadata = {"render_modes": [], "autoreset_mode": gymnasium.vector.AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int,
        blocks: int = 2000,
        params: Params | None = None,
        scaled: bool = True,
        render_mode=None,
        **kwargs: Any,
    ):
        self.num_envs = int(num_envs)
        self._setup(params if params is not None else build_params(**kwargs), blocks, scaled)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._needs_reset = False
        self._seeds: list[int] | None = None

    def _start(self, seeds: Sequence[int]):
        self._seeds = [int(s) for s in seeds]
        self.mec = MECEnv(self.P, self._seeds)
        self._needs_reset = self._done = False
        return self._flat(self.mec.reset()), {"seed": np.array(self._seeds)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = gymnasium.utils.seeding.np_random(seed)
        given = (options or {}).get("simulator_seeds")
        if given is not None and len(given) != self.num_envs:
            raise ValueError(f"options.simulator_seeds: expected {self.num_envs} seeds, got {len(given)}")
        return self._start(given if given is not None else _draw_seeds(self.np_random, self.num_envs))

    def step(self, actions):
        n = self.num_envs
        if self.mec is None:
            raise ResetNeeded("step() before reset(): call reset() first")
        a = _as_array(actions, self.action_space.shape, "actions")
        if self._needs_reset:  # next-step autoreset: a new episode on fresh seeds
            obs, info = self._start(_draw_seeds(self.np_random, n))
            return obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), info
        obs, terms, info = self.mec.step(self._action(a))
        self.last_info = info
        done = obs.t >= self.blocks
        self._needs_reset = done
        return self._flat(obs), -terms.total, np.zeros(n, bool), np.full(n, done), {}


#: Server policies :func:`wd_parallel_env` accepts by rule name (any scheme name gives its server policy).
SERVER_RULES = {"full": FullSpeed, "min_energy": MinEnergy, "algorithm2": Algorithm2}


def _server_policy(name: str) -> ServerPolicy:
    from . import schemes

    if name in SERVER_RULES:
        return SERVER_RULES[name]()
    if name in schemes.SCHEMES:
        return schemes.get_scheme(name).policies()[1]
    raise ValueError(
        f"server: {name!r} is neither a server rule ({', '.join(SERVER_RULES)}) nor a registered scheme "
        f"({', '.join(schemes.SCHEMES)})"
    )


class OffloadingParallelEnv(ParallelEnv):
    """PettingZoo parallel environment: agents ``wd_0`` ... ``wd_{K-1}`` and ``server``.

    ``wd_k`` observes [q_k, h_k, beta_k,1..n] and acts with its power p_k; its reward is
    -(w3 q_k + w4 (E^wd_k + E^off_k)). ``server`` observes [q^ser, q_1..q_K] and acts with its n
    slot rates; its reward is -(w1 q^ser + w2 E^ser). The rewards add up to minus the cost (8).
    Spaces are scaled (:class:`Scaling`) unless ``scaled=False``. ``reset(seed=s)`` seeds the front
    end's generator, from which every reset draws a fresh simulator seed;
    ``reset(options={"simulator_seed": k})`` runs seed k of the simulator.
    """

    metadata = {"name": "mecmodel_offloading_v0", "render_modes": [], "is_parallelizable": True}
    render_mode = None

    def __init__(
        self, blocks: int = 2000, params: Params | None = None, scaled: bool = True, render_mode=None, **kwargs: Any
    ):
        self.P = params if params is not None else build_params(**kwargs)
        self.blocks, self.scaled = int(blocks), bool(scaled)
        self.scaling = Scaling(self.P)
        K, n = self.P.K, self.P.n_slots
        self.possible_agents = [f"wd_{k}" for k in range(K)] + ["server"]
        self.agents: list[str] = []
        high = 1.0 if self.scaled else np.inf
        self._obs_spaces = {f"wd_{k}": spaces.Box(0.0, high, (n + 2,), np.float64) for k in range(K)}
        self._obs_spaces["server"] = spaces.Box(0.0, high, (K + 1,), np.float64)
        low, p_hi, f_hi = (-1.0, 1.0, 1.0) if self.scaled else (0.0, self.P.p_max, self.P.f_ser_max)
        self._act_spaces = {f"wd_{k}": spaces.Box(low, p_hi, (1,), np.float64) for k in range(K)}
        self._act_spaces["server"] = spaces.Box(low, f_hi, (n,), np.float64)
        self.mec: MECEnv | None = None
        self.last_info: StepInfo | None = None
        self._rng = np.random.default_rng()
        self._started = False

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self._act_spaces[agent]

    def _observe(self, obs) -> dict[str, np.ndarray]:
        q, h, beta, q_ser = obs.q[0], obs.h[0], obs.beta[0], obs.q_ser[0]
        if self.scaled:
            q, h, q_ser = self.scaling.queues(q), self.scaling.gains(h), self.scaling.queues(q_ser)
        out = {f"wd_{k}": np.concatenate([[q[k], h[k]], beta[k]]) for k in range(self.P.K)}
        out["server"] = np.concatenate([[q_ser], q])
        return {a: out[a] for a in self.possible_agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            for i, agent in enumerate(self.possible_agents):
                self._act_spaces[agent].seed(seed + i)
        s = (options or {}).get("simulator_seed")
        s = int(s) if s is not None else _draw_seeds(self._rng, 1)[0]
        self.mec = MECEnv(self.P, [s])
        self.agents = list(self.possible_agents)
        self._started = True
        obs = self.mec.reset()
        self._reset_server(s, obs)
        return self._observe(obs), {a: {"seed": s} for a in self.agents}

    def _reset_server(self, seed: int, obs) -> None:
        """Hook of the WD-only view: its server policy starts the episode."""

    def _actions(self, actions: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
        if not self._started:
            raise ResetNeeded("step() before reset(): call reset() first")
        if not self.agents:
            raise ResetNeeded(f"the episode was truncated after {self.blocks} blocks: call reset() first")
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions: expected a dict agent -> action, got {type(actions).__name__}")
        missing = [a for a in self.agents if a not in actions]
        unknown = [str(a) for a in actions if a not in self.agents]
        problems = ([f"missing for {', '.join(missing)}"] if missing else []) + (
            [f"unknown agents {', '.join(unknown)}"] if unknown else []
        )
        if problems:
            raise ValueError(f"actions: {'; '.join(problems)} (the agents are {', '.join(self.agents)})")
        K = self.P.K
        p = np.array([[_as_array(actions[f"wd_{k}"], (1,), f"agent wd_{k}")[0] for k in range(K)]])
        f = None
        if "server" in self.agents:
            f = _as_array(actions["server"], (self.P.n_slots,), "agent server")[None, :]
        if self.scaled:
            p = self.scaling.power(p)
            f = None if f is None else self.scaling.rates(f)
        return p, f

    def step(self, actions: Mapping[str, Any]):
        p, f = self._actions(actions)
        before = self.mec.obs
        if f is None:
            f = self._server_act(before)
        obs, terms, info = self.mec.step(Action(p, f))
        self.last_info = info
        self._server_update(Transition(before, info.action, terms, info, obs))
        rewards = {f"wd_{k}": -float(info.wd_cost[0, k]) for k in range(self.P.K)}
        rewards["server"] = -float(info.server_cost[0])
        done = obs.t >= self.blocks
        agents = self.agents
        observations = self._observe(obs)
        if done:
            self.agents = []
        return (
            {a: observations[a] for a in agents},
            {a: rewards[a] for a in agents},
            {a: False for a in agents},
            {a: bool(done) for a in agents},
            {a: {} for a in agents},
        )

    def _server_act(self, obs) -> np.ndarray:
        raise ValueError("actions: missing for server")

    def _server_update(self, tr: Transition) -> None:
        """Hook of the WD-only view: its server policy learns (Algorithm 2 does)."""


class WDsParallelEnv(OffloadingParallelEnv):
    """The WDs alone (agents ``wd_0`` ... ``wd_{K-1}``, all with the same spaces: parameter sharing
    works, e.g. SuperSuit's ``pettingzoo_env_to_vec_env_v1``); the server acts with ``server``, a
    rule of :data:`SERVER_RULES` or the server policy of a registered scheme, reset every episode
    and updated every block (so ``algorithm2`` learns online, as in the paper)."""

    metadata = {"name": "mecmodel_offloading_wds_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, blocks: int = 2000, params: Params | None = None, server: str = "min_energy", **kwargs):
        super().__init__(blocks, params, **kwargs)
        self.server_name = server
        self.server_policy = _server_policy(server)
        self.possible_agents = [a for a in self.possible_agents if a != "server"]

    def _reset_server(self, seed: int, obs) -> None:
        self.server_policy = _server_policy(self.server_name)  # a fresh learner per episode
        self.server_policy.reset(PolicyContext(self.P, (seed,), self.mec), obs)

    def _server_act(self, obs) -> np.ndarray:
        return self.server_policy.act(obs)

    def _server_update(self, tr: Transition) -> None:
        self.server_policy.update(tr)


def parallel_env(blocks: int = 2000, **kwargs: Any) -> OffloadingParallelEnv:
    """The PettingZoo parallel environment (the ecosystem's module-level constructor)."""
    return OffloadingParallelEnv(blocks=blocks, **kwargs)


def wd_parallel_env(blocks: int = 2000, server: str = "min_energy", **kwargs: Any) -> WDsParallelEnv:
    """The WDs alone as a PettingZoo parallel environment, the server following ``server``."""
    return WDsParallelEnv(blocks=blocks, server=server, **kwargs)


gymnasium.register(id="mecmodel/Offloading-v0", entry_point="mecmodel.rl:OffloadingEnv")
