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
    assert env.observation_space.contains(obs) and info["seed"] == 4


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
    if kind == "vector":
        front, seeds = rl.OffloadingVectorEnv(2, blocks=blocks, params=P), [5, 6]
        front.reset(seed=5)
    else:
        front = rl.OffloadingParallelEnv(blocks, params=P) if kind == "parallel" else rl.OffloadingEnv(blocks, params=P)
        seeds = [5]
        front.reset(seed=5)
    got = _drive(front, scheme, seeds, blocks, P)
    ref = simulate_arrays(P, scheme, seeds, blocks)["series"]["cost"]
    if kind == "parallel":  # the agents' rewards add up to minus (8), summed in another order
        np.testing.assert_allclose(-got, ref, rtol=1e-12)
    else:
        np.testing.assert_array_equal(-got, ref)


def test_vector_env_truncates_together_and_autoresets():
    env = rl.OffloadingVectorEnv(3, blocks=4, K=2)
    obs, info = env.reset(seed=10)
    assert obs.shape == (3, env.single_observation_space.shape[0]) and list(info["seed"]) == [10, 11, 12]
    a = np.zeros((3, env.single_action_space.shape[0]))
    for t in range(4):
        obs, r, term, trunc, _ = env.step(a)
        assert not term.any() and trunc.all() == (t == 3)
    obs2, r, term, trunc, _ = env.step(a)  # next-step autoreset
    first, _ = rl.OffloadingVectorEnv(3, blocks=4, K=2).reset(seed=10)
    np.testing.assert_array_equal(obs2, first)
    assert (r == 0).all()


def test_parallel_rewards_are_each_agents_own_cost_term():
    env = rl.parallel_env(K=2, blocks=10)
    env.reset(seed=1)
    P = env.P
    actions = {"wd_0": np.array([P.p_max]), "wd_1": np.array([0.0]), "server": np.full(P.n_slots, P.f_ser_max)}
    for _ in range(3):
        _, rewards, *_ = env.step(actions)
    info = env.last_info
    assert rewards["wd_0"] == -(P.w3 * info.obs.q[0, 0] + P.w4 * (info.e_local[0, 0] + info.e_offload[0, 0]))
    assert rewards["server"] == -(P.w1 * info.obs.q_ser[0] + P.w2 * info.e_server[0])
    assert isinstance(info.action, Action)
