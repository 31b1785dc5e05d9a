"""The simulation loop and its Dataset: work conservation and bounds for every scheme,
reproducibility and common random numbers, metadata, combining runs, file size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mecmodel
from mecmodel import env, queues, simulation
from mecmodel.params import FIELDS, make_params
from mecmodel.policies.base import PolicyContext
from mecmodel.schemes import get_scheme
from mecmodel.vocabulary import POINT_DIMS

SCHEMES = mecmodel.schemes.select("all")  # the exact solvers (K <= 2) have tests of their own: test_optimum.py
LEARNING_WDS = {"proposed", "binary", "proposed_q"}

SERIES = [
    "cost",
    "cost_server_queue",
    "cost_server_energy",
    "cost_wd_queue",
    "cost_wd_energy",
    "wd_queue_mean",
    "wd_queue_max",
    "server_queue",
    "energy_local",
    "energy_offload",
    "energy_server",
    "tx_power_mean",
    "offloaded_fraction",
    "server_rate_mean",
    "alg1_td_error",
    "alg1_rel_change",
    "alg2_td_error",
    "alg2_rel_change",
]
PER_SEED = [
    "discounted_cost",
    "average_cost",
    "latency",
    "work_arrived",
    "work_local",
    "work_server",
    "work_offloaded",
    "work_queued",
    "diverged",
] + [
    f"alg{i}_{x}"
    for i in (1, 2)
    for x in ("converged_block_median", "converged_block_max", "converged_fraction", "diverged_block")
]
POINT = POINT_DIMS


# --------------------------------------------------------------------------- invariants, every scheme


@st.composite
def _config(draw) -> dict:
    return {
        "K": draw(st.integers(1, 4)),
        "arrival_prob": draw(st.floats(0.02, 0.98)),
        "gamma": draw(st.floats(0.3, 0.99)),
        "n_slots": draw(st.integers(1, 6)),
        "tau": draw(st.sampled_from([0.02, 0.1, 0.25])),
        "task_cycles": float(draw(st.integers(10**5, 2 * 10**9))),  # whole cycles: queues stay integers
        "f_wd_max": draw(st.floats(1e7, 5e9)),
        "f_ser_max": draw(st.floats(1e8, 1e11)),
        "p_max": draw(st.floats(0.01, 2.0)),
        "zeta": draw(st.floats(1e-4, 2e-2)),
        "local_service": draw(st.sampled_from(queues.LOCAL_SERVICE)),
        "gradient": draw(st.sampled_from(["exact", "printed"])),
        "M": draw(st.integers(1, 8)),
        "alpha0": draw(st.floats(1e-3, 0.5)),
        "even_fraction": draw(st.floats(0.0, 1.0)),
        "p_init": draw(st.floats(0.0, 1.0)),
        "f_ser_init": draw(st.floats(0.0, 1.0)),
        "freeze_on_convergence": draw(st.booleans()),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    over=_config(),
    scheme=st.sampled_from(SCHEMES),
    blocks=st.integers(1, 40),
    seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=3, unique=True),
    python_loop=st.booleans(),
)
def test_work_conservation_and_bounds(
    over: dict, scheme: str, blocks: int, seeds: list[int], python_loop: bool
) -> None:
    P = make_params("default", over)
    served = []
    orig = env.MECEnv.step

    def spy(self, action):
        out = orig(self, action)
        served.append((np.array(out[2].action.f_ser), np.array(out[2].f_eff)))
        return out

    with pytest.MonkeyPatch.context() as mp, np.errstate(over="ignore"):
        # expm1 overflows to inf (as it should) where a share of a task needs more than any power: capped at p_max
        mp.setattr(env.MECEnv, "step", spy)
        out = simulation.simulate_arrays(P, scheme, seeds, blocks, per_device=True, python_loop=python_loop)
    W, S, K = P.task_cycles, len(seeds), P.K
    work, dev, rec = out["work"], out["device"], out["series"]

    # Note A of docs/model.md: every arrived cycle is computed locally, at the server, or still queued.
    # Queues are whole cycles; the only rounding is the server's float rates and float64 sums, so the
    # identity holds to ~1e-12 of the work (a lost task would be W >= 1e5 cycles, a lost cycle 1).
    total = work["local"] + work["server"] + work["queued"]
    np.testing.assert_allclose(total, work["arrived"], rtol=1e-12, atol=1e-6)
    np.testing.assert_array_equal(work["arrived"] % W, 0.0)
    assert np.all(work["local"] + work["offloaded"] <= work["arrived"])
    assert np.all(work["server"] <= work["offloaded"] * (1 + 1e-12))

    q = dev["wd_queue_k"]
    assert q.shape == (S, blocks, K)
    assert np.all(q >= 0)
    np.testing.assert_array_equal(q, np.round(q))  # integer cycles
    assert np.all(rec["server_queue"] >= 0)
    off = dev["offloaded_k"]
    assert np.all((off >= 0) & (off <= W))
    np.testing.assert_array_equal(off, np.round(off))
    # per-WD transmit power in [0, p_max] and local rate in [0, f_wd_max] (9b)-(9c); 1e-12 for (4)(3) rounding
    p = dev["tx_power_k"]
    assert np.all((p >= 0) & (p <= P.p_max * (1 + 1e-12)))
    f_loc = dev["local_rate_k"]
    assert np.all((f_loc >= 0) & (f_loc <= P.f_wd_max * (1 + 1e-12)))
    # server slot rates: applied in [0, f_ser_max] (9d), effective <= applied (seen where the Python
    # loop steps the environment; a built-in scheme's compiled loop has the step inside its kernel)
    assert len(served) == (blocks if python_loop else 0)  # every listed scheme has a compiled plan
    for f_cmd, f_eff in served:
        assert np.all((f_cmd >= 0) & (f_cmd <= P.f_ser_max))
        assert np.all(f_eff >= 0) and np.all(f_eff <= f_cmd + 1e-12 * f_cmd.sum(axis=-1, keepdims=True))
    assert np.all(rec["server_rate_mean"] <= P.f_ser_max * (1 + 1e-12))  # served / tau: (f tau) / tau may round up

    # (8) and its four terms, per block
    terms = sum(rec[k] for k in ("cost_server_queue", "cost_server_energy", "cost_wd_queue", "cost_wd_energy"))
    np.testing.assert_allclose(rec["cost"], terms, rtol=1e-12)
    np.testing.assert_allclose(rec["cost_server_queue"], P.w1 * rec["server_queue"], rtol=1e-12)
    np.testing.assert_allclose(rec["cost_server_energy"], P.w2 * rec["energy_server"], rtol=1e-12)
    np.testing.assert_allclose(rec["cost_wd_queue"], P.w3 * q.sum(axis=-1), rtol=1e-12)
    np.testing.assert_allclose(
        rec["cost_wd_energy"], P.w4 * (rec["energy_local"] + rec["energy_offload"]), rtol=1e-12, atol=1e-300
    )
    assert np.all(np.isfinite(rec["cost"]))
    # (9a) over the horizon
    np.testing.assert_allclose(
        out["discounted_cost"], (rec["cost"] * P.gamma ** np.arange(blocks)).sum(axis=1), rtol=1e-12
    )
    # Algorithm 1 records exist exactly when the WDs learn
    assert np.all(np.isnan(rec["alg1_td_error"])) == (scheme not in LEARNING_WDS)
    if scheme == "local":
        assert np.all(off == 0) and np.all(p == 0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conservation_across_chunks(scheme: str) -> None:
    """Fading and arrivals come in chunks of 128 blocks: run past two boundaries, several seeds."""
    ds = mecmodel.simulate(K=3, scheme=scheme, seeds=[0, 7, 11], blocks=300)
    total = ds.work_local + ds.work_server + ds.work_queued
    xr.testing.assert_allclose(total, ds.work_arrived, rtol=1e-12)
    assert (ds.work_arrived > 0).all()


# --------------------------------------------------------------------------- reproducibility, common random numbers


@pytest.mark.parametrize("scheme", ["proposed", "random"])
def test_same_seed_same_dataset(scheme: str) -> None:
    a = mecmodel.simulate(K=3, scheme=scheme, seeds=[4, 9], blocks=60)
    b = mecmodel.simulate(K=3, scheme=scheme, seeds=[4, 9], blocks=60)
    xr.testing.assert_identical(a, b)


def _drop_run_attrs(ds: xr.Dataset) -> xr.Dataset:
    return ds.drop_attrs(deep=False)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_seed_results_do_not_depend_on_other_seeds(scheme: str) -> None:
    alone = mecmodel.simulate(K=3, scheme=scheme, seeds=[3], blocks=60)
    mixed = mecmodel.simulate(K=3, scheme=scheme, seeds=[0, 3], blocks=60)
    xr.testing.assert_identical(_drop_run_attrs(alone), _drop_run_attrs(mixed.sel(seed=[3])))


def test_different_seeds_differ() -> None:
    ds = mecmodel.simulate(K=3, scheme="proposed", seeds=[0, 1], blocks=60)
    assert ds.work_arrived.sel(seed=0).item() != ds.work_arrived.sel(seed=1).item()
    assert not np.array_equal(ds.cost.sel(seed=0).values, ds.cost.sel(seed=1).values)


def _record_exogenous(scheme: str, seeds: list[int], K: int, blocks: int) -> dict:
    """Channel gains and arrivals each scheme's simulator sees, block by block."""
    h_seen, arr_seen = [], []
    orig = env.MECEnv.step

    def step(self, action):
        h_seen.append(np.array(self.obs.h))
        out = orig(self, action)
        arr_seen.append(np.array(out[2].arrivals))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(env.MECEnv, "step", step)
        P = make_params("default", {"K": K})
        out = simulation.simulate_arrays(P, scheme, seeds, blocks, python_loop=True)
    return {
        "h": np.array(h_seen),
        "arrivals": np.array(arr_seen),
        "distance": out["distance"],
        "mean_gain": out["mean_gain"],
        "arrived": out["work"]["arrived"],
    }


def test_schemes_share_channels_and_arrivals() -> None:
    """Common random numbers: for a seed, every scheme sees the same users, fading and arrivals."""
    ref = _record_exogenous("proposed", [5, 6], 4, 150)
    assert ref["h"].shape == (150, 2, 4) and ref["arrivals"].shape == (150, 2, 4)
    assert ref["arrivals"].sum() > 0
    for scheme in SCHEMES[1:]:
        got = _record_exogenous(scheme, [5, 6], 4, 150)
        for key in ref:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=f"{scheme}: {key}")
    ds = [mecmodel.simulate(K=4, scheme=s, seeds=[5, 6], blocks=40).work_arrived.squeeze() for s in SCHEMES]
    for d in ds[1:]:
        np.testing.assert_array_equal(d.values, ds[0].values)


def test_exogenous_draws_are_per_seed() -> None:
    P = make_params("default", {"K": 5})
    gain = np.ones((2, 5))
    both = env.Exogenous([0, 3], P, gain)
    alone = env.Exogenous([3], P, gain[1:])
    other = env.Exogenous([4], P, gain[1:])
    for t in (0, 1, 127, 128, 129, 300):
        h2, b2 = both.at(t)
        h1, b1 = alone.at(t)
        np.testing.assert_array_equal(h2[1:], h1)
        np.testing.assert_array_equal(b2[1:], b1)
        assert not np.array_equal(other.at(t)[0], h1)
    # the arrivals are Bernoulli(arrival_prob) per slot
    b = np.concatenate([alone.at(t)[1] for t in range(1000)])
    assert abs(b.mean() - P.arrival_prob) < 5 * np.sqrt(P.arrival_prob * (1 - P.arrival_prob) / b.size)


def test_streams_are_independent_per_component() -> None:
    draws = {name: env.stream(3, name).random(4) for name in env.STREAMS}
    values = [tuple(v) for v in draws.values()]
    assert len(set(values)) == len(values)
    np.testing.assert_array_equal(env.stream(3, "fading").random(4), draws["fading"])


# --------------------------------------------------------------------------- the Dataset


@pytest.fixture(scope="module")
def run() -> xr.Dataset:
    return mecmodel.simulate(K=3, arrival_prob=0.3, gamma=0.8, scheme="proposed", seeds=2, blocks=30)


def test_dataset_dims_and_metadata(run: xr.Dataset) -> None:
    for name in SERIES:
        assert run[name].dims == POINT + ("seed", "block"), name
        assert run[name].dtype == np.float32, name
    for name in PER_SEED:
        assert run[name].dims == POINT + ("seed",), name
    assert "wd" not in run.dims
    assert dict(run.sizes) == {"K": 1, "arrival_prob": 1, "gamma": 1, "scheme": 1, "seed": 2, "block": 30}
    assert (run.K.item(), run.arrival_prob.item(), run.gamma.item(), run.scheme.item()) == (3, 0.3, 0.8, "proposed")
    np.testing.assert_array_equal(run.seed.values, [0, 1])
    for name, var in run.data_vars.items():
        assert isinstance(var.attrs.get("units"), str), name
        assert var.attrs.get("long_name"), name


def test_dataset_attrs(run: xr.Dataset) -> None:
    P = make_params("default", {"K": 3, "arrival_prob": 0.3, "gamma": 0.8})
    for f in FIELDS:
        value = P.values[f.name]
        assert run.attrs[f"param_{f.name}"] == (int(value) if isinstance(value, bool) else value), f.name
    assert run.attrs["mecmodel_version"] == mecmodel.__version__
    assert json.loads(run.attrs["params_json"]) == P.to_dict()
    assert run.attrs["model_hash"] == P.model_hash()
    assert isinstance(run.attrs["config_hash"], str) and run.attrs["config_hash"]
    assert (run.attrs["scheme"], run.attrs["blocks"], run.attrs["n_seeds"], run.attrs["preset"]) == (
        "proposed",
        30,
        2,
        "default",
    )


def test_hashes() -> None:
    a = mecmodel.simulate(K=2, scheme="proposed", seeds=1, blocks=5)
    b = mecmodel.simulate(K=3, scheme="proposed", seeds=1, blocks=5)
    c = mecmodel.simulate(K=2, scheme="even", seeds=1, blocks=5)
    d = mecmodel.simulate(K=2, scheme="proposed", seeds=1, blocks=5, overrides={"w4": 5.0})
    assert a.attrs["model_hash"] == b.attrs["model_hash"] == c.attrs["model_hash"] != d.attrs["model_hash"]
    assert len({x.attrs["config_hash"] for x in (a, b, c, d)}) == 4


def test_per_device_vars() -> None:
    ds = mecmodel.simulate(K=3, scheme="even", seeds=2, blocks=10, per_device=True)
    wd_vars = [n for n, v in ds.data_vars.items() if "wd" in v.dims]
    assert wd_vars
    for n in wd_vars:
        assert ds[n].dims == POINT + ("seed", "block", "wd"), n
    assert ds.sizes["wd"] == 3


def test_combine_runs_that_differ_in_K() -> None:
    a = mecmodel.simulate(K=2, scheme="proposed", seeds=2, blocks=20)
    b = mecmodel.simulate(K=3, scheme="proposed", seeds=2, blocks=20)
    ds = xr.combine_by_coords([b, a], combine_attrs="drop_conflicts")
    assert dict(ds.sizes) == {"K": 2, "arrival_prob": 1, "gamma": 1, "scheme": 1, "seed": 2, "block": 20}
    np.testing.assert_array_equal(ds.K.values, [2, 3])
    xr.testing.assert_equal(ds.cost.sel(K=[2]), a.cost)
    xr.testing.assert_equal(ds.work_arrived.sel(K=[3]), b.work_arrived)
    assert not ds.cost.isnull().any()


def test_combine_runs_that_differ_in_scheme() -> None:
    a = mecmodel.simulate(K=2, scheme="proposed", seeds=2, blocks=20)
    b = mecmodel.simulate(K=2, scheme="local", seeds=2, blocks=20)
    ds = xr.combine_by_coords([a, b], combine_attrs="drop_conflicts")
    assert dict(ds.sizes) == {"K": 1, "arrival_prob": 1, "gamma": 1, "scheme": 2, "seed": 2, "block": 20}
    assert sorted(ds.scheme.values.tolist()) == ["local", "proposed"]
    xr.testing.assert_equal(ds.cost.sel(scheme=["local"]), b.cost)
    assert ds.alg1_td_error.sel(scheme="local").isnull().all()
    assert not ds.alg1_td_error.sel(scheme="proposed").isnull().all()
    # common random numbers survive the combination
    np.testing.assert_array_equal(ds.work_arrived.sel(scheme="local"), ds.work_arrived.sel(scheme="proposed"))


def test_netcdf_round_trip(tmp_path: Path) -> None:
    from mecmodel.dataset import write_atomic

    ds = mecmodel.simulate(K=2, scheme="random", seeds=2, blocks=15, per_device=True)
    path = write_atomic(ds, tmp_path / "run.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nc"]
    with xr.open_dataset(path) as back:
        xr.testing.assert_equal(back.load(), ds)
        assert back.attrs["config_hash"] == ds.attrs["config_hash"]


@pytest.mark.slow
def test_full_size_run_file_is_small(tmp_path: Path) -> None:
    """K = 100, 2000 blocks, 10 seeds (the largest point of the default sweep) fits in a few MB."""
    from mecmodel.dataset import write_atomic

    ds = mecmodel.simulate(K=100, scheme="proposed", seeds=10, blocks=2000)
    path = write_atomic(ds, tmp_path / "big.nc")
    size = path.stat().st_size
    print(f"K=100, 2000 blocks, 10 seeds: {size / 1e6:.2f} MB")
    assert size < 5e6


def test_built_in_schemes_run_in_the_compiled_engine():
    """Every listed scheme has a compiled plan, so its whole run is the engine's loop."""
    P = mecmodel.params.make_params("default")
    for name in mecmodel.schemes.select("all"):
        wd, server = get_scheme(name).policies()
        ctx = PolicyContext(P, (0,), None)
        wd.ctx = server.ctx = ctx  # what reset keeps; compiled_plan reads the parameters
        if name == "lagrangian":  # its plan needs the tables its reset builds
            wd.reset(PolicyContext(P, (0,), env.MECEnv(P, [0])), None)
        assert simulation.compiled_plan(wd, server, P) is not None, name
