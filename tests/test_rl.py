"""The RL front ends (mecmodel.rl): the libraries' own API checks, and the same physics as the
simulator, provably: driven with a registered scheme's actions, each gives that scheme's run."""

from __future__ import annotations

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")
pettingzoo = pytest.importorskip("pettingzoo")

from mecmodel import rl, schemes  # noqa: E402
from mecmodel.env import Action  # noqa: E402
from mecmodel.params import make_params  # noqa: E402
from mecmodel.policies import PolicyContext, Transition  # noqa: E402
from mecmodel.simulation import simulate_arrays  # noqa: E402


def test_parallel_env_passes_the_pettingzoo_api_test():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(rl.parallel_env(K=3, blocks=40), num_cycles=60)


def test_gymnasium_env_passes_check_env_and_is_registered():
    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make("mecmodel/Offloading-v0", K=2, blocks=30)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=4)
    assert env.observation_space.contains(obs) and info["seed"] >= rl.TRAIN_SEED_MIN
    assert env.reset(options={"simulator_seed": 4})[1]["seed"] == 4


def _drive(front, scheme: str, seeds: list[int], blocks: int, P) -> np.ndarray:
    """Run ``scheme``'s policies on the front end's own MECEnv, stepping through the front end;
    returns the front end's rewards, (seeds, blocks)."""
    sch = schemes.get_scheme(scheme)
    wd, server = sch.wd(), sch.server()
    mec = front.mec
    obs = mec.obs
    ctx = PolicyContext(P, tuple(seeds), mec)
    wd.reset(ctx, obs)
    server.reset(ctx, obs)
    rewards = []
    for _ in range(blocks):
        p, f = wd.act(obs), server.act(obs)
        r = front_step(front, p, f, P)
        info = front.last_info
        nxt = mec.obs
        tr = Transition(obs, info.action, None, info, nxt)
        wd.update(tr)
        server.update(tr)
        rewards.append(r)
        obs = nxt
    return np.stack(rewards, axis=-1)


def front_step(front, p, f, P):
    if isinstance(front, rl.OffloadingParallelEnv):
        actions = {f"wd_{k}": p[0, k : k + 1] for k in range(P.K)}
        actions["server"] = f[0]
        _, rewards, *_ = front.step(actions)
        return np.array([sum(rewards.values())])
    if isinstance(front, rl.OffloadingVectorEnv):
        _, r, *_ = front.step(np.concatenate([p, f], axis=1))
        return r
    _, r, *_ = front.step(np.concatenate([p[0], f[0]]))
    return np.array([r])


@pytest.mark.parametrize("scheme", ["proposed", "random", "even"])
@pytest.mark.parametrize("kind", ["parallel", "gym", "vector"])
def test_front_ends_give_the_schemes_run(kind, scheme):
    P = make_params("default", {"K": 3})
    blocks = 40
    if kind == "vector":  # the physical view (scaled=False), on the seeds the scheme's run uses
        front, seeds = rl.OffloadingVectorEnv(2, blocks=blocks, params=P, scaled=False), [5, 6]
        front.reset(options={"simulator_seeds": seeds})
    else:
        cls = rl.OffloadingParallelEnv if kind == "parallel" else rl.OffloadingEnv
        front, seeds = cls(blocks, params=P, scaled=False), [5]
        front.reset(options={"simulator_seed": 5})
    got = _drive(front, scheme, seeds, blocks, P)
    ref = simulate_arrays(P, scheme, seeds, blocks)["series"]["cost"]
    if kind == "parallel":  # the agents' rewards add up to minus (8), summed in another order
        np.testing.assert_allclose(-got, ref, rtol=1e-12)
    else:
        np.testing.assert_array_equal(-got, ref)


def test_vector_env_truncates_together_and_autoresets_on_fresh_seeds():
    env = rl.OffloadingVectorEnv(3, blocks=4, K=2)
    obs, info = env.reset(seed=10)
    assert obs.shape == (3, env.single_observation_space.shape[0]) and len(set(info["seed"])) == 3
    a = np.zeros((3, env.single_action_space.shape[0]))
    for t in range(4):
        obs, r, term, trunc, _ = env.step(a)
        assert not term.any() and trunc.all() == (t == 3)
    obs2, r, term, trunc, info2 = env.step(a)  # next-step autoreset: new seeds, a new episode
    assert not set(info2["seed"]) & set(info["seed"]) and (r == 0).all()
    assert min(info2["seed"]) >= rl.TRAIN_SEED_MIN
    # reproducible from the first reset's seed: the same episodes in the same order
    again = rl.OffloadingVectorEnv(3, blocks=4, K=2)
    assert list(again.reset(seed=10)[1]["seed"]) == list(info["seed"])
    for _ in range(5):
        last = again.step(a)
    assert list(last[4]["seed"]) == list(info2["seed"]) and np.array_equal(last[0], obs2)


def test_parallel_rewards_are_each_agents_own_cost_term():
    env = rl.parallel_env(K=2, blocks=10, scaled=False)
    env.reset(seed=1)
    P = env.P
    actions = {"wd_0": np.array([P.p_max]), "wd_1": np.array([0.0]), "server": np.full(P.n_slots, P.f_ser_max)}
    for _ in range(3):
        _, rewards, *_ = env.step(actions)
    info = env.last_info
    assert rewards["wd_0"] == -(P.w3 * info.obs.q[0, 0] + P.w4 * (info.e_local[0, 0] + info.e_offload[0, 0]))
    assert rewards["server"] == -(P.w1 * info.obs.q_ser[0] + P.w2 * info.e_server[0])
    assert isinstance(info.action, Action)


# ----------------------------------------------------------------------------- issue 23: RL stacks

import copy  # noqa: E402
import pickle  # noqa: E402

FRONTS = {
    "gym": lambda **kw: rl.OffloadingEnv(blocks=6, K=2, **kw),
    "vector": lambda **kw: rl.OffloadingVectorEnv(2, blocks=6, K=2, **kw),
    "parallel": lambda **kw: rl.parallel_env(K=2, blocks=6, **kw),
    "wds": lambda **kw: rl.wd_parallel_env(K=2, blocks=6, server="algorithm2", **kw),
}


def _sample(env, kind):
    if kind in ("parallel", "wds"):
        return {a: env.action_space(a).sample() for a in env.agents}
    return env.action_space.sample()


@pytest.mark.parametrize("kind", FRONTS)
def test_every_front_end_pickles_and_deep_copies_mid_episode(kind):
    env = FRONTS[kind]()
    env.reset(seed=3)
    if kind in ("parallel", "wds"):
        for a in env.possible_agents:
            env.action_space(a).seed(0)
    else:
        env.action_space.seed(0)
    env.step(_sample(env, kind))
    copies = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    action = _sample(env, kind)
    want = env.step(action)
    for other in copies:
        got = other.step(action)
        for w, g in zip(want, got, strict=True):  # observations, rewards, flags: equal
            if isinstance(w, dict):
                assert w.keys() == g.keys()
                for key in w:
                    np.testing.assert_array_equal(np.asarray(w[key], dtype=object), np.asarray(g[key], dtype=object))
            else:
                np.testing.assert_array_equal(w, g)


def test_params_pickle_and_deep_copy_equal():
    P = make_params("stable", {"K": 7, "f_ser_max": 2.0e10})
    for Q in (pickle.loads(pickle.dumps(P)), copy.deepcopy(P)):
        assert Q == P and Q.K == 7 and Q.f_ser_max == 2.0e10 and Q.values == P.values


def _make_env(P):
    return lambda: rl.OffloadingEnv(blocks=5, params=P)


def test_subprocess_vector_env_over_a_closure_with_params_runs():
    """Gymnasium's AsyncVectorEnv pickles each env function into a spawned worker, as
    Stable-Baselines3's SubprocVecEnv does (cloudpickle): a closure over ``params=`` must survive."""
    P = make_params("default", {"K": 2})
    venv = gymnasium.vector.AsyncVectorEnv([_make_env(P), _make_env(P)], context="spawn")
    try:
        obs, info = venv.reset(seed=1)
        assert obs.shape == (2, 2 * 2 + 2 * 5 + 1) and len(set(info["seed"])) == 2
        for _ in range(7):  # through a truncation and autoreset
            obs, r, term, trunc, _ = venv.step(venv.action_space.sample())
        assert np.isfinite(obs).all() and ((obs >= 0) & (obs <= 1)).all()
    finally:
        venv.close()


def test_the_wd_view_passes_the_api_test_and_shares_one_space():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(rl.wd_parallel_env(K=3, blocks=20), num_cycles=30)
    env = rl.wd_parallel_env(K=3, blocks=20, server="dpp")
    assert env.possible_agents == ["wd_0", "wd_1", "wd_2"] and env.render_mode is None
    first = env.possible_agents[0]
    assert all(
        env.observation_space(a) == env.observation_space(first) and env.action_space(a) == env.action_space(first)
        for a in env.possible_agents
    )
    with pytest.raises(ValueError, match="server: 'fastest' is neither a server rule"):
        rl.wd_parallel_env(K=2, server="fastest")


def test_supersuits_parameter_sharing_recipe_runs_on_the_wd_view():
    ss = pytest.importorskip("supersuit")
    env = ss.normalize_obs_v0(rl.wd_parallel_env(K=4, blocks=8, server="min_energy"))  # finite boxes
    venv = ss.pettingzoo_env_to_vec_env_v1(env)
    venv = ss.concat_vec_envs_v1(venv, 2, num_cpus=2, base_class="gymnasium")  # workers: pickled envs
    obs, info = venv.reset(seed=0)
    assert obs.shape == (2 * 4, 5 + 2)  # 2 copies x 4 WDs, each [q, h, beta_1..5]
    # the copies are pickled clones: seeded apart by the reset, they run different episodes
    # (with workers, info is one list of (agent index, info) pairs per copy)
    assert len({agent_info["seed"] for copy_info in info for _, agent_info in copy_info}) == 2
    for _ in range(10):
        obs, rew, term, trunc, _ = venv.step(np.stack([venv.action_space.sample() for _ in range(8)]))
        assert np.isfinite(obs).all() and np.isfinite(rew).all()
    venv.close()


def test_scaled_actions_map_to_the_physical_box_and_observations_to_the_unit_box():
    P = make_params("default", {"K": 2})
    scaled, raw = rl.OffloadingEnv(blocks=5, params=P), rl.OffloadingEnv(blocks=5, params=P, scaled=False)
    o1, _ = scaled.reset(options={"simulator_seed": 3})
    o2, _ = raw.reset(options={"simulator_seed": 3})
    s = scaled.scaling
    assert s.q_scale == P.task_cycles * P.queue_scale and s.h_scale > 0
    np.testing.assert_allclose(o1[2:4], o2[2:4] / (o2[2:4] + s.h_scale))  # gains squashed
    a = np.array([-1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    physical = np.concatenate([[0.0, P.p_max], np.full(5, 0.5 * P.f_ser_max)])
    physical[-1] = P.f_ser_max
    for _ in range(4):
        o1, r1, *_ = scaled.step(a)
        o2, r2, *_ = raw.step(physical)
        assert r1 == r2 and ((o1 >= 0) & (o1 <= 1)).all()
    np.testing.assert_allclose(o1[:2], o2[:2] / (o2[:2] + s.q_scale))


BAD_CALLS = [
    ("gym", "before reset", lambda env: env.step(np.zeros(7)), gymnasium.error.ResetNeeded, "step() before reset()"),
    ("gym", "NaN power", lambda env: (env.reset(), env.step(np.r_[np.nan, np.zeros(6)])), ValueError, "action: component 0 is nan"),
    ("gym", "wrong shape", lambda env: (env.reset(), env.step(np.zeros(6))), ValueError, "action: expected shape (7,), got (6,)"),
    ("gym", "after truncation", lambda env: (env.reset(), [env.step(np.zeros(7)) for _ in range(4)]), gymnasium.error.ResetNeeded, "truncated after 3 blocks"),
    ("vector", "inf rate", lambda env: (env.reset(), env.step(np.c_[np.zeros((2, 6)), [np.inf, 0]])), ValueError, "actions: component 6 is inf"),
    ("vector", "before reset", lambda env: env.step(np.zeros((2, 7))), gymnasium.error.ResetNeeded, "step() before reset()"),
    ("parallel", "missing agent", lambda env: (env.reset(), env.step({"wd_0": [0.0]})), ValueError, "actions: missing for wd_1, server"),
    ("parallel", "unknown agent", lambda env: (env.reset(), env.step({"wd_0": [0.0], "wd_1": [0.0], "server": np.zeros(5), "wd_9": [0.0]})), ValueError, "unknown agents wd_9"),
    ("parallel", "NaN from one WD", lambda env: (env.reset(), env.step({"wd_0": [0.0], "wd_1": [np.nan], "server": np.zeros(5)})), ValueError, "agent wd_1: component 0 is nan"),
    ("parallel", "server shape", lambda env: (env.reset(), env.step({"wd_0": [0.0], "wd_1": [0.0], "server": np.zeros(4)})), ValueError, "agent server: expected shape (5,), got (4,)"),
    ("parallel", "before reset", lambda env: env.step({}), gymnasium.error.ResetNeeded, "step() before reset()"),
    ("wds", "after truncation", lambda env: (env.reset(), [env.step({"wd_0": [0.0], "wd_1": [0.0]}) for _ in range(4)]), gymnasium.error.ResetNeeded, "truncated after 3 blocks"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "case", "call", "error", "message"), BAD_CALLS, ids=[f"{k}-{c}" for k, c, *_ in BAD_CALLS]
)
def test_a_bad_call_is_a_clear_error_never_nan(kind, case, call, error, message):
    env = {
        "gym": lambda: rl.OffloadingEnv(blocks=3, K=2),
        "vector": lambda: rl.OffloadingVectorEnv(2, blocks=3, K=2),
        "parallel": lambda: rl.parallel_env(K=2, blocks=3),
        "wds": lambda: rl.wd_parallel_env(K=2, blocks=3),
    }[kind]()
    with pytest.raises(error) as err:
        call(env)
    assert message in str(err.value)


def test_consecutive_episodes_differ_and_replay_from_the_first_seed():
    env = rl.OffloadingEnv(blocks=3, K=3)
    first = [env.reset(seed=7)[1]["seed"], env.reset()[1]["seed"], env.reset()[1]["seed"]]
    assert len(set(first)) == 3 and min(first) >= rl.TRAIN_SEED_MIN
    again = rl.OffloadingEnv(blocks=3, K=3)
    assert [again.reset(seed=7)[1]["seed"], again.reset()[1]["seed"], again.reset()[1]["seed"]] == first
    obs_a, _ = env.reset(options={"simulator_seed": first[0]})
    obs_b, _ = env.reset(options={"simulator_seed": first[1]})
    assert not np.array_equal(obs_a, obs_b)  # another drop and fading: another episode


def test_stable_baselines3_subprocvecenv_over_a_closure_with_params_runs():
    """SB3's own SubprocVecEnv (workers started with the spawn method, env functions cloudpickled).
    Stable-Baselines3 needs torch, which the test extra does not install (a 554 MB wheel and its
    CUDA libraries from our index): skipped unless it is there (docs/rl.md's training venv has it)."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import SubprocVecEnv

    P = make_params("default", {"K": 2})
    venv = SubprocVecEnv([_make_env(P), _make_env(P)], start_method="spawn")
    try:
        venv.seed(1)
        obs = venv.reset()
        assert obs.shape == (2, 2 * 2 + 2 * 5 + 1)
        for _ in range(7):  # through a truncation and SB3's own autoreset
            obs, rewards, dones, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
        assert np.isfinite(obs).all() and np.isfinite(rewards).all() and ((obs >= 0) & (obs <= 1)).all()
    finally:
        venv.close()
