"""The environment/policies split: any WD policy pairs with any server policy, fixed rules and
queue-aware ones included; the environment alone reproduces a scheme's run; the registry."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mecmodel
from mecmodel import schemes
from mecmodel.env import Action, ActionError, MECEnv
from mecmodel.params import ParamError, PolicyError, make_params
from mecmodel.policies import PolicyContext, ServerPolicy, Transition, WDPolicy
from mecmodel.simulation import simulate_arrays

PLUGIN = textwrap.dedent(
    '''
    """A queue-aware WD rule and a full-speed server: a scheme from outside the package."""
    import numpy as np

    from mecmodel.policies import ServerPolicy, WDPolicy
    from mecmodel.schemes import register


    class Threshold(WDPolicy):
        """Offload at p_max while more than one task waits, else compute locally."""

        def act(self, obs):
            P = self.ctx.params
            return np.where(obs.q > P.task_cycles, P.p_max, 0.0)


    class FullSpeed(ServerPolicy):
        def act(self, obs):
            return np.full((self.ctx.S, self.ctx.params.n_slots), self.ctx.params.f_ser_max)


    register("threshold_full", wd=Threshold, server=FullSpeed, description="threshold WDs, full-speed server")
    '''
)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    path = tmp_path / "my_schemes.py"
    path.write_text(PLUGIN)
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))  # leave the registry as it was
    schemes.load_modules([str(path)])
    yield path
    for name in [m for m in sys.modules if m.startswith("mecmodel_scheme_")]:
        del sys.modules[name]


def test_fixed_server_and_queue_aware_wds(plugin):
    P = make_params("default", {"K": 4, "arrival_prob": 0.5})
    out = simulate_arrays(P, "threshold_full", [0, 3], 120, per_device=True)
    q, p_tx = out["device"]["wd_queue_k"], out["device"]["tx_power_k"]
    assert (p_tx[q <= P.task_cycles] == 0).all()  # the rule saw its queue
    assert (p_tx[q > P.task_cycles] > 0).any()
    # the server ran every slot at f_ser_max while work remained: (6) with a fixed rate
    qs, off = out["series"]["server_queue"], out["device"]["offloaded_k"].sum(axis=-1)
    capacity = P.n_slots * P.tau * P.f_ser_max
    np.testing.assert_array_equal(qs[:, 1:], np.maximum(qs[:, :-1] - capacity, 0) + off[:, :-1])
    # nothing learns: no learner series, no convergence summaries
    assert np.isnan(out["series"]["alg2_td_error"]).all() and out["agents"] == {}
    w = out["work"]
    np.testing.assert_array_equal(w["arrived"], w["local"] + w["server"] + w["queued"])


def test_scheme_module_on_the_command_line(plugin, tmp_path):
    out = tmp_path / "run.nc"
    cmd = [sys.executable, "-m", "mecmodel", "simulate", "--scheme-module", str(plugin), "--scheme", "threshold_full"]
    r = subprocess.run(
        [*cmd, "--K", "3", "--seeds", "2", "--blocks", "30", "-o", str(out)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert ds["scheme"].values.tolist() == ["threshold_full"]
        assert np.isnan(ds["alg2_converged_fraction"]).all()
        # which code made the run
        assert ds.attrs["scheme_module"] == str(plugin)
        assert ds.attrs["scheme_module_sha256"] == schemes.module_digest(str(plugin))


@pytest.mark.parametrize("scheme", ["proposed", "random", "offload"])
def test_environment_driven_by_hand_reproduces_the_run(scheme):
    """The loop is nothing but act -> step -> update: written out here, it gives the same series."""
    P = make_params("default", {"K": 3})
    ref = simulate_arrays(P, scheme, [2, 5], 50)
    env = MECEnv(P, [2, 5])
    obs = env.reset()
    ctx = PolicyContext(P, (2, 5), env)
    sch = schemes.get_scheme(scheme)
    wd, server = sch.wd(), sch.server()
    wd.reset(ctx, obs)
    server.reset(ctx, obs)
    costs, td = [], []
    for _ in range(50):
        action = Action(wd.act(obs), server.act(obs), wd.whole_task)
        nxt, terms, info = env.step(action)
        tr = Transition(obs, action, terms, info, nxt)
        wd.update(tr)
        td.append(server.update(tr)["alg2_td_error"])
        costs.append(terms.total)
        obs = nxt
    np.testing.assert_array_equal(np.stack(costs, axis=1), ref["series"]["cost"])
    np.testing.assert_array_equal(np.stack(td, axis=1), ref["series"]["alg2_td_error"])


def test_step_info_costs_add_up_to_eq8():
    P = make_params("default", {"K": 5})
    env = MECEnv(P, [0, 1, 2])
    obs = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = Action(rng.uniform(0, P.p_max, (3, 5)), rng.uniform(0, P.f_ser_max, (3, P.n_slots)))
        obs, terms, info = env.step(a)
        np.testing.assert_allclose(info.wd_cost.sum(axis=1) + info.server_cost, terms.total, rtol=1e-12)
        assert (obs.q >= 0).all() and (obs.q_ser >= 0).all()
        assert ((info.p_tx >= 0) & (info.p_tx <= P.p_max * (1 + 1e-12))).all()
        assert ((info.f_eff >= 0) & (info.f_eff <= P.f_ser_max)).all()


def test_step_before_reset_is_refused():
    env = MECEnv(make_params("default", {"K": 2}), 1)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(Action(np.zeros((1, 2)), np.zeros((1, 5))))


def test_registry_selectors():
    assert schemes.select("paper") == ["proposed", "binary", "even", "random"]
    assert schemes.select("references") == [
        "local",
        "offload",
        "even_min_energy",
        "offload_min_energy",
        "myopic",
        "dpp",
        "proposed_q",
        "lagrangian",
    ]
    # small-K schemes (an exact solver) are named explicitly
    small = [n for n, s in schemes.SCHEMES.items() if s.max_K is not None]
    assert small == ["optimal", "decomposed"]
    # a parameter a sweep may list
    assert [n for n, s in schemes.SCHEMES.items() if s.params] == ["dpp", "dpp_central"]
    # schemes named explicitly: the exact solvers and the centralised drift-plus-penalty
    assert [n for n, s in schemes.SCHEMES.items() if not s.listed or s.max_K is not None] == [
        "dpp_central",
        "optimal",
        "decomposed",
    ]
    assert schemes.select("all") == [n for n, s in schemes.SCHEMES.items() if n not in small and s.listed]
    assert schemes.select(["all", "optimal", "even"]) == schemes.select("all") + ["optimal"]
    with pytest.raises(ParamError, match=r"scheme\[1\]: unknown scheme 'nope'"):
        schemes.select(["even", "nope"])
    with pytest.raises(ParamError, match="scheme: must be a list of schemes or one of all, paper, references"):
        schemes.select("everything")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "1bad"}, "a name is a letter"),
        ({"name": "all"}, "a name is a letter"),
        ({"name": "x", "kind": "baseline"}, "kind must be one of paper, reference"),
        ({"name": "x", "wd": None}, "wd and server must be callables"),
        ({"name": "even"}, "already registered by mecmodel.schemes"),
    ],
)
def test_register_refuses(kwargs, match, monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    args = {"wd": WDPolicy, "server": ServerPolicy, "description": "d", **kwargs}
    with pytest.raises(ParamError, match=match):
        schemes.register(args.pop("name"), **args)


def test_bad_scheme_module_is_one_error(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("raise ValueError('oops')\n")
    with pytest.raises(ParamError, match=r"scheme_modules: cannot import .*broken.py.*ValueError: oops"):
        schemes.load_modules([str(bad)])
    with pytest.raises(ParamError, match="scheme_modules: cannot import 'no_such_mod_xyz'"):
        schemes.load_modules(["no_such_mod_xyz"])


def test_simulate_params_is_simulate():
    P = make_params("default", {"K": 2})
    a = mecmodel.simulate_params(P, scheme="even", seeds=2, blocks=10)
    b = mecmodel.simulate(K=2, scheme="even", seeds=2, blocks=10)
    import xarray as xr

    xr.testing.assert_identical(a, b)


def test_actions_are_clipped_to_the_box():
    P = make_params("default", {"K": 3})
    env = MECEnv(P, [0])
    env.reset()
    env.obs = dataclasses.replace(env.obs, q=np.full((1, 3), 5 * P.task_cycles), q_ser=np.array([1e12]))
    _, _, info = env.step(Action(np.array([[-1.0, 0.1, 9.0]]), np.full((1, P.n_slots), 2 * P.f_ser_max)))
    np.testing.assert_array_equal(info.action.p, [[0.0, 0.1, P.p_max]])
    assert (info.action.f_ser == P.f_ser_max).all() and (info.f_eff == P.f_ser_max).all()
    assert (info.p_tx <= P.p_max).all() and info.p_tx[0, 0] == 0


class _Chatty(WDPolicy):
    def act(self, obs):
        return np.zeros_like(obs.q)

    def update(self, tr):
        return {"cost": np.zeros(self.ctx.S)}


class _OddSummary(WDPolicy):
    def act(self, obs):
        return np.zeros_like(obs.q)

    def summary(self):
        return {"mine": {"converged_fraction": np.zeros(self.ctx.S)}}


@pytest.mark.parametrize(
    ("wd", "match"),
    [
        (
            _Chatty,
            "scheme odd: the WD policy's _Chatty.update returned 'cost' at block 0, which it does not declare "
            "per block in records (it declares: none)",
        ),
        (_OddSummary, "scheme odd: a policy's summary names ['mine']"),
    ],
)
def test_policies_cannot_overwrite_the_record(wd, match, monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    schemes.register("odd", wd=wd, server=schemes.SCHEMES["local"].server, description="d")
    with pytest.raises(PolicyError, match=re.escape(match)):
        simulate_arrays(make_params("default", {"K": 2}), "odd", [0], 5)


@pytest.mark.parametrize(("p_shape", "f_shape"), [((2,), (1, 5)), ((1, 2), (5,)), ((2, 1), (1, 5))])
def test_action_shapes_are_checked(p_shape, f_shape):
    env = MECEnv(make_params("default", {"K": 2}), 1)
    env.reset()
    if p_shape != (1, 2):
        expect = f"the WD policy returned transmit power p of shape {p_shape}, expected (1, 2) (seeds, WDs) (block 0)"
    else:
        expect = f"the server policy returned server rate f_ser of shape {f_shape}, expected (1, 5) (seeds, slots)"
    with pytest.raises(ActionError, match=re.escape(expect)):
        env.step(Action(np.zeros(p_shape), np.zeros(f_shape)))


def test_observations_are_read_only():
    env = MECEnv(make_params("default", {"K": 2}), [0, 1])
    obs = env.reset()
    for name in ("q", "h", "beta", "q_ser"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(obs, name)[...] = 0
    nxt, _, info = env.step(Action(np.zeros((2, 2)), np.zeros((2, 5))))
    with pytest.raises(ValueError, match="read-only"):
        nxt.q[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.p_tx = None


class _Greedy(WDPolicy):
    """Commands twice p_max and records what it is told it did."""

    def act(self, obs):
        return np.full(obs.q.shape, 2 * self.ctx.params.p_max)

    def update(self, tr):
        self.seen = tr.action.p
        return {}


def test_learners_see_the_action_as_applied(monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    policy = _Greedy()
    schemes.register("greedy2", wd=lambda: policy, server=schemes.SCHEMES["local"].server, description="d")
    P = make_params("default", {"K": 2})
    simulate_arrays(P, "greedy2", [0], 3)
    assert (policy.seen == P.p_max).all()


class _NoDivergence(WDPolicy):
    def act(self, obs):
        return np.zeros_like(obs.q)

    def summary(self):
        return {"alg1": {"converged_fraction": np.zeros(self.ctx.S)}}


def test_a_summary_needs_every_field(monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    schemes.register("partial", wd=_NoDivergence, server=schemes.SCHEMES["local"].server, description="d")
    with pytest.raises(
        PolicyError, match=r"scheme partial: a policy's summary of alg1 lacks \['converged_block_max', "
    ):
        simulate_arrays(make_params("default", {"K": 2}), "partial", [0], 3)


def test_schemes_without_a_style_get_distinct_colours_the_built_ins_do_not_use(monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    built_in = {s.style["color"] for s in schemes.SCHEMES.values()}
    new = [
        schemes.register(f"unstyled_{i}", wd=WDPolicy, server=ServerPolicy, description="d", kind=kind)
        for i, kind in enumerate(["reference", "paper"] * 4)
    ]
    colours = [s.style["color"] for s in new]
    assert len(set(colours)) == len(new) and not set(colours) & built_in
    assert not any(c.startswith("0.") or c == "black" for c in colours), "greys are the built-in references'"
    assert [s.style["linestyle"] == "-" for s in new] == [False, True] * 4  # references dashed, others solid
    # a partial style keeps what it gives and completes the rest from the palette
    part = schemes.register("partly", wd=WDPolicy, server=ServerPolicy, description="d", style={"color": "k"})
    assert part.style["color"] == "k" and part.style["marker"] in schemes.UNSTYLED_MARKERS
