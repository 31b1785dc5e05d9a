"""The compiled engine (mecmodel.engine): against the numpy oracle, batch-invariant, one path.

* Against ``tests/oracle.py`` (the numpy engine of mecmodel 0.2, vectorised over whole arrays):
  the two compute the same equations and differ in the order of sums and in libm's functions
  against numpy's, so they agree to ``RTOL`` relative per value (``ATOL`` times the array's
  largest value near 0) over horizons where no threshold (a floor in (3), a clip, a convergence
  test) flips, not bit for bit.
* Batch invariance, bit for bit: a seed alone, beside other seeds, after other points in the same
  process; the compiled loop of a built-in scheme and the Python loop around the compiled step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import oracle
import pytest

import mecmodel
from mecmodel import channel, engine, queues, simulation
from mecmodel.env import Action, MECEnv
from mecmodel.params import make_params

RTOL = 1e-9
ATOL = 1e-9
SCHEMES = mecmodel.schemes.select("all")
COMPILED = [s for s in SCHEMES if s not in ("optimal", "decomposed")]


def _flat(out: dict) -> dict[str, np.ndarray]:
    flat = {}
    for key, value in out.items():
        if key in ("seeds", "scheme_params", "average_from", "mean_gain", "distance"):
            continue
        if isinstance(value, dict):
            for name, arr in _flat(value).items():
                flat[f"{key}.{name}"] = arr
        else:
            flat[key] = np.asarray(value)
    return flat


def _run(scheme: str, seeds, blocks: int, preset: str = "default", python_loop: bool = False, **over):
    P = make_params(preset, over)
    return _flat(simulation.simulate_arrays(P, scheme, seeds, blocks, per_device=True, python_loop=python_loop))


def _oracle(scheme: str, seeds, blocks: int, preset: str = "default", **over):
    return _flat(oracle.simulate_arrays(make_params(preset, over), scheme, seeds, blocks, per_device=True))


def _assert_close(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        x, y = a[name], b[name]
        assert x.shape == y.shape, name
        if x.dtype.kind in "biu":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            finite = np.abs(x[np.isfinite(x)])
            scale = finite.max() if finite.size else 0.0
            np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL * scale, equal_nan=True, err_msg=name)


def _assert_same_bits(a: dict, b: dict, context: str = "") -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{context} {name}")


CASES = [(s, "default", {"K": 6}) for s in COMPILED]
CASES += [(s, "default", {"K": 1, "arrival_prob": 0.3}) for s in ("optimal", "decomposed")]
CASES += [
    ("proposed", "stable", {"K": 8, "arrival_prob": 0.6}),
    ("proposed", "paper", {"K": 4}),
    ("proposed", "default", {"K": 5, "local_service": "head"}),
    ("proposed", "default", {"K": 5, "local_service": "single"}),
    ("binary", "default", {"K": 5, "local_service": "head"}),
    ("binary", "default", {"K": 5, "local_service": "single"}),
    ("proposed", "default", {"K": 5, "gradient": "printed"}),
    ("proposed_q", "default", {"K": 5, "gradient": "printed"}),
    ("proposed", "default", {"K": 5, "freeze_on_convergence": True, "epsilon": 0.05, "patience": 3}),
    ("proposed", "default", {"K": 3, "divergence_limit": 5.6}),
    ("even", "default", {"K": 6, "arrival_prob": 0.9, "f_ser_max": 1e9}),  # an overloaded server
    ("myopic", "default", {"K": 6, "arrival_prob": 0.9, "f_ser_max": 1e9}),
]


@pytest.mark.parametrize(("scheme", "preset", "over"), CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_engine_agrees_with_the_numpy_oracle(scheme: str, preset: str, over: dict) -> None:
    """Every scheme and model option: every array of the run within RTOL of the numpy engine."""
    seeds, blocks = [0, 5], 60
    _assert_close(_oracle(scheme, seeds, blocks, preset, **over), _run(scheme, seeds, blocks, preset, **over))


def test_divergence_and_freezing_are_the_oracles_events() -> None:
    """The bookkeeping agrees exactly: the same learners diverge or converge at the same blocks."""
    for over in (
        {"K": 3, "divergence_limit": 5.6},
        {"K": 5, "freeze_on_convergence": True, "epsilon": 0.05, "patience": 3},
    ):
        a, b = _oracle("proposed", [0, 1, 2], 80, **over), _run("proposed", [0, 1, 2], 80, **over)
        for name in a:
            if "block" in name or "fraction" in name:
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (a["agents.alg1.converged_fraction"] > 0).any()  # the case does reach convergence


@pytest.mark.parametrize("scheme", COMPILED)
def test_compiled_loop_is_the_python_loop_bit_for_bit(scheme: str) -> None:
    """A built-in scheme run whole in engine.run_blocks gives the bits of its policies' act/update
    around the compiled step (the path of every scheme written in Python), past a chunk boundary."""
    over = {"K": 5, "arrival_prob": 0.6}
    a = _run(scheme, [0, 7], 300, **over)
    b = _run(scheme, [0, 7], 300, python_loop=True, **over)
    _assert_same_bits(a, b, scheme)
    assert np.isfinite(a["discounted_cost"]).all()


@pytest.mark.parametrize("scheme", ["proposed", "proposed_q", "random", "dpp", "even_min_energy"])
def test_a_seed_has_the_same_bits_alone_or_in_any_batch(scheme: str) -> None:
    """Batch invariance: seed 3 alone, beside other seeds (first, middle, last), and after other
    points run in the same process, gives the same bits in every array."""
    over = {"K": 7, "arrival_prob": 0.5}
    alone = _run(scheme, [3], 200, **over)
    for seeds in ([3, 0, 9], [0, 3, 9], [11, 12, 3]):
        many = _run(scheme, seeds, 200, **over)
        i = seeds.index(3)
        for name, arr in alone.items():
            np.testing.assert_array_equal(arr[0], many[name][i], err_msg=f"{seeds} {name}")
    _run("binary", [0, 1], 50, K=3)  # other points in between
    _run(scheme, [3, 4], 120, K=9, gamma=0.7)
    _assert_same_bits(alone, _run(scheme, [3], 200, **over), "again")


def test_work_conservation_long_run() -> None:
    """Past several chunks and at a heavy load, the engine conserves work to the cycle."""
    out = _run("proposed", [0, 1], 700, K=12, arrival_prob=0.8)
    total = out["work.local"] + out["work.server"] + out["work.queued"]
    np.testing.assert_allclose(total, out["work.arrived"], rtol=1e-12)
    q = out["device.wd_queue_k"]
    assert np.all(q >= 0) and np.array_equal(q, np.round(q))


def test_partition_matches_queues_wd_service() -> None:
    """The kernel's partition (advance) equals mecmodel.queues.wd_service on random states, every rule."""
    rng = np.random.default_rng(1)
    P = make_params("default", {"K": 50})
    S, K, n = 4, P.K, P.n_slots
    W = P.task_cycles
    local_max = float(np.floor(n * P.tau * P.f_wd_max))
    q = np.floor(rng.uniform(0, 6, (S, K)) * W) * (rng.random((S, K)) < 0.8)
    h = 10 ** rng.uniform(0, 8, (S, K))
    p = rng.uniform(0, P.p_max, (S, K))
    f = rng.uniform(0, P.f_ser_max, (S, n))
    beta = (rng.random((S, K, n)) < 0.5).astype(float)
    q_ser = rng.uniform(0, 40, S) * W
    cap = channel.bits_per_slot(h, p, P.bandwidth, P.snr_gap, P.tau) / P.zeta
    sc = engine.scalars(P, local_max)
    for rule in queues.LOCAL_SERVICE:
        for binary in (False, True):
            want = queues.wd_service(q, cap, W, local_max, rule, binary)
            wd, flags, slot, seed = engine.buffers(S, K, n)
            rec, dev, work = np.empty((18, S, 1)), np.empty((4, S, 0, K)), np.zeros((6, S))
            engine.advance(0, q, h, beta, q_ser, p, f, sc, engine.RULES[rule], binary, 1, wd, flags, slot, seed, rec, dev, work)  # fmt: skip
            got = {"local": wd[0], "offload": wd[1], "dlocal_doff": wd[2], "uncapped": flags[0], "stuck": flags[1]}
            for name in want._fields:
                np.testing.assert_allclose(
                    got[name], getattr(want, name), rtol=1e-12, err_msg=f"{rule} {binary} {name}"
                )


def test_step_info_matches_the_oracle_step() -> None:
    """MECEnv.step's StepInfo has every value of the numpy step's, close, and is frozen."""
    P = make_params("default", {"K": 5})
    infos = []
    for stepper in (oracle.step, lambda env, a: env.step(a)):
        env = MECEnv(P, [0, 1])
        env.reset()
        for _ in range(6):  # past the first block, where every queue is still empty
            _, _, info = stepper(env, Action(np.full((2, 5), 0.05), np.full((2, P.n_slots), 2e9)))
        infos.append(
            info if isinstance(info, dict) else {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
        )
    a, b = infos
    for name in ("p_tx", "e_local", "e_offload", "served", "wd_cost_grad", "server_cost_grad"):
        assert np.any(a[name] != 0), name  # the comparison below compares something
    for name, x in a.items():
        if name in ("P", "obs"):
            continue
        y = b[name]
        if isinstance(x, Action):
            pairs = [(x.p, y.p), (x.f_ser, y.f_ser), (x.whole_task, y.whole_task)]
        else:
            pairs = list(zip(x, y, strict=True)) if isinstance(x, tuple) else [(x, y)]
        for u, v in pairs:
            np.testing.assert_allclose(np.asarray(v, float), np.asarray(u, float), rtol=1e-12, err_msg=name)


def test_compare_engines_script(tmp_path, capsys) -> None:
    """scripts/compare_engines.py: a run against itself is identical on every seed; the oracle's
    runs of a short horizon against the engine's differ by rounding only, counted apart."""
    import sys
    from pathlib import Path

    import xarray as xr

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import compare_engines

    P = make_params("default", {"K": 4})
    runs = {}
    for side, sim in (("oracle", oracle.simulate_arrays), ("engine", simulation.simulate_arrays)):
        cost = np.stack([sim(P, s, list(range(6)), 60)["average_cost"] for s in ("proposed", "even")])
        runs[side] = xr.Dataset(
            {"average_cost": (("scheme", "seed"), cost)}, coords={"scheme": ["proposed", "even"], "seed": range(6)}
        )
        runs[side].to_netcdf(tmp_path / f"{side}.nc")
    same = compare_engines.compare(runs["oracle"], runs["oracle"])
    assert len(same) == 2 and all(r["identical"] for r in same)
    rows = compare_engines.compare(runs["oracle"], runs["engine"])
    assert len(rows) == 2 and all(abs(r["diff"]) <= 1e-9 * abs(r["a"]) for r in rows)
    assert compare_engines.main([str(tmp_path / "oracle.nc"), str(tmp_path / "engine.nc")]) == 0
    out = capsys.readouterr().out
    assert "2 scheme-point cells" in out and "larger difference: 0" in out


@pytest.mark.parametrize("fraction", [0.35, 0.7])
@pytest.mark.parametrize("scheme", ["even", "even_min_energy", "random"])
def test_share_rules_have_the_same_bits_on_both_loops(scheme: str, fraction: float) -> None:
    """EvenShare and RandomShare ask for the power that carries exactly their share of a back end,
    so (3)'s floor sits on an integer: both loops must compute (4) with the same function
    (engine.share_power), or a last-bit difference flips the capacity (at 0.35 and 0.7 it did)."""
    over = {"K": 5, "even_fraction": fraction, "arrival_prob": 0.6}
    _assert_same_bits(_run(scheme, [0, 3], 150, **over), _run(scheme, [0, 3], 150, python_loop=True, **over), scheme)


def test_myopic_subclasses_search_what_they_define() -> None:
    """A MyopicWD with whole_task searches binary offloading; one that redefines its objective is
    searched over that objective (the numpy search of block_cost), not the built-in one."""
    from mecmodel.env import Observation
    from mecmodel.policies import PolicyContext
    from mecmodel.policies.myopic import MyopicWD

    class Binary(MyopicWD):
        whole_task = True

    class MostServed(MyopicWD):
        def objective(self, q, served, energy):
            return -served

    P = make_params("default", {"K": 3})
    q = np.array([[1.5e8, 3.5e8, 2e8], [0.7e8, 1e8, 4e8]])
    h = np.array([[1e3, 1e5, 30.0], [1e6, 3e2, 1e4]])
    obs = Observation(0, q, h, np.zeros((2, 3, P.n_slots)), np.zeros(2))
    for cls in (Binary, MostServed, MyopicWD):
        pol = cls()
        env = MECEnv(P, [0, 1])
        pol.reset(PolicyContext(P, (0, 1), env), obs)
        cands = pol.candidates(h)
        want = np.take_along_axis(
            cands, np.argmin(pol.block_cost(q[..., None], h[..., None], cands), -1)[..., None], -1
        )
        np.testing.assert_allclose(pol.act(obs), want[..., 0], rtol=1e-14, atol=0, err_msg=cls.__name__)


def test_a_capacity_beyond_int64_stays_a_float_and_queues_stay_non_negative():
    """numba's math.floor returns int64: a capacity past 9.2e18 cycles (a tiny zeta) wrapped to
    -9.2e18 and the server queue went negative (hypothesis found it); np.floor keeps floats."""
    over = {"zeta": 3.9e-112, "task_cycles": 1.0, "p_max": 76.0, "f_ser_max": 5.6e14, "w2": 2.6e299, "w4": 1e300}
    ds = mecmodel.simulate(K=1, arrival_prob=0.87, gamma=0.44, scheme="proposed", seeds=1, blocks=4, overrides=over)
    for name in ("server_queue", "wd_queue_mean", "energy_server", "cost"):
        values = ds[name].values
        assert not np.isnan(values).any() and (values >= 0).all(), name
