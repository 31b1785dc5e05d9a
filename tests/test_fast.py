"""The compiled engine (``engine: numba``, mecmodel.fast) against the numpy reference.

The two engines compute the same equations; they differ in the order of sums and in the
transcendental functions, so they agree to a stated tolerance, not bit for bit. A learner's
trajectory amplifies last-bit differences only when a value crosses a threshold (a floor in (3),
a clip, a convergence test), which takes longer than the horizons here; the tolerance is
``RTOL`` relative per value (and ``ATOL`` times the array's largest value, for values near 0).
"""

from __future__ import annotations

import builtins
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("numba")

import mecmodel  # noqa: E402
from mecmodel import queues, simulation  # noqa: E402
from mecmodel.params import ParamError, make_params  # noqa: E402

RTOL = 1e-9
ATOL = 1e-9
SCHEMES = mecmodel.schemes.select("all")


def _flat(out: dict) -> dict[str, np.ndarray]:
    flat = {}
    for key, value in out.items():
        if isinstance(value, dict):
            for name, arr in _flat(value).items():
                flat[f"{key}.{name}"] = arr
        elif key not in ("seeds", "scheme_params", "average_from"):
            flat[key] = np.asarray(value)
    return flat


def _run(engine: str, scheme: str, seeds, blocks: int, preset: str = "default", **over):
    P = make_params(preset, {**over, "engine": engine})
    return _flat(simulation.simulate_arrays(P, scheme, seeds, blocks, per_device=True))


def _assert_close(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        x, y = a[name], b[name]
        assert x.shape == y.shape, name
        if x.dtype.kind in "biu":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            finite = np.abs(x[np.isfinite(x)])
            scale = finite.max() if finite.size else 0.0  # ATOL relative to the array's largest value
            np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL * scale, equal_nan=True, err_msg=name)


CASES = [(s, "default", {"K": 6}) for s in SCHEMES if s not in ("optimal", "decomposed")]
CASES += [(s, "default", {"K": 1, "arrival_prob": 0.3}) for s in ("optimal", "decomposed")]
CASES += [
    ("proposed", "stable", {"K": 8, "arrival_prob": 0.6}),
    ("proposed", "paper", {"K": 4}),
    ("proposed", "default", {"K": 5, "local_service": "head"}),
    ("proposed", "default", {"K": 5, "local_service": "single"}),
    ("binary", "default", {"K": 5, "local_service": "head"}),
    ("binary", "default", {"K": 5, "local_service": "single"}),
    ("proposed", "default", {"K": 5, "gradient": "printed"}),
    ("proposed", "default", {"K": 5, "freeze_on_convergence": True, "epsilon": 0.05, "patience": 3}),
    ("proposed", "default", {"K": 3, "divergence_limit": 5.6}),
    ("even", "default", {"K": 6, "arrival_prob": 0.9, "f_ser_max": 1e9}),  # an overloaded server
]


@pytest.mark.parametrize(("scheme", "preset", "over"), CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_engines_agree(scheme: str, preset: str, over: dict) -> None:
    """Every scheme and model option: every array of the run within RTOL of the numpy engine."""
    seeds, blocks = [0, 5], 60
    _assert_close(
        _run("numpy", scheme, seeds, blocks, preset, **over), _run("numba", scheme, seeds, blocks, preset, **over)
    )


def test_divergence_and_freezing_are_the_same_events() -> None:
    """The bookkeeping agrees exactly: the same learners diverge or converge at the same blocks."""
    for over in (
        {"K": 3, "divergence_limit": 5.6},
        {"K": 5, "freeze_on_convergence": True, "epsilon": 0.05, "patience": 3},
    ):
        a, b = _run("numpy", "proposed", [0, 1, 2], 80, **over), _run("numba", "proposed", [0, 1, 2], 80, **over)
        for name in a:
            if "block" in name or "fraction" in name:
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (a["agents.alg1.converged_fraction"] > 0).any()  # the case does reach convergence


def test_numba_engine_is_deterministic_and_seed_wise() -> None:
    """The same seeds give the same bits; a seed alone or beside others agrees to RTOL (numpy's
    einsum rounds a row by its address, on either engine: mecmodel.env's docstring)."""
    one = _run("numba", "proposed", [3], 200, K=7)
    again = _run("numba", "proposed", [3], 200, K=7)
    many = _run("numba", "proposed", [0, 3, 9], 200, K=7)
    for name in one:
        np.testing.assert_array_equal(one[name], again[name], err_msg=name)
        if one[name].ndim and many[name].shape[0] == 3:
            np.testing.assert_allclose(one[name][0], many[name][1], rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=name)


def test_engine_is_part_of_the_model_id() -> None:
    """Runs of the two engines never share a model id; the default's ids are what they were."""
    P, Q = make_params("default"), make_params("default", {"engine": "numba"})
    assert "engine" not in P.to_dict() and Q.to_dict()["engine"] == "numba"
    assert P.model_hash() != Q.model_hash()
    ds = mecmodel.simulate(K=2, scheme="even", seeds=1, blocks=5, overrides={"engine": "numba"})
    assert json.loads(ds.attrs["params_json"])["engine"] == "numba"
    assert ds.attrs["model_hash"] == Q.model_hash()


def test_work_conservation_long_run() -> None:
    """Past several chunks and at a heavy load, the compiled step conserves work to the cycle."""
    out = _run("numba", "proposed", [0, 1], 700, K=12, arrival_prob=0.8)
    total = out["work.local"] + out["work.server"] + out["work.queued"]
    np.testing.assert_allclose(total, out["work.arrived"], rtol=1e-12)
    q = out["device.wd_queue_k"]
    assert np.all(q >= 0) and np.array_equal(q, np.round(q))


def test_wd_service_rules_match_queues() -> None:
    """The kernel's partition equals mecmodel.queues.wd_service on random states, every rule."""
    from mecmodel import fast

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
    from mecmodel import channel

    cap = channel.bits_per_slot(h, p, P.bandwidth, P.snr_gap, P.tau) / P.zeta
    for rule in queues.LOCAL_SERVICE:
        for binary in (False, True):
            want = queues.wd_service(q, cap, W, local_max, rule, binary)
            wd, flags, _, _ = fast.env_step(fast.scalars(P, local_max), rule, q, h, p, f, q_ser, beta, binary)
            got = {"local": wd[0], "offload": wd[1], "dlocal_doff": wd[2], "uncapped": flags[0], "stuck": flags[1]}
            for name in want._fields:
                np.testing.assert_allclose(
                    got[name], getattr(want, name), rtol=1e-12, err_msg=f"{rule} {binary} {name}"
                )


def test_missing_numba_is_one_clear_error(monkeypatch) -> None:
    """Without numba the engine fails with a line that names the field and the fix."""
    real_import = builtins.__import__

    def no_numba(name, *args, **kwargs):
        if name == "numba" or name.startswith("numba."):
            raise ImportError("No module named 'numba'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "mecmodel.fast", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_numba)
    with pytest.raises(ParamError, match=r"engine: 'numba' needs numba.*mecmodel\[fast\]"):
        importlib.import_module("mecmodel.fast")


def test_compare_engines_script(tmp_path, capsys) -> None:
    """scripts/compare_engines.py: a run against itself is identical on every seed; the two engines'
    runs of a short horizon have paired differences whose 95% interval holds 0."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import compare_engines

    runs = {}
    for engine in ("numpy", "numba"):
        parts = [
            mecmodel.simulate(K=4, scheme=s, seeds=6, blocks=80, overrides={"engine": engine})
            for s in ("proposed", "even")
        ]
        runs[engine] = xr.combine_by_coords([p.drop_attrs() for p in parts])
        runs[engine].to_netcdf(tmp_path / f"{engine}.nc")
    same = compare_engines.compare(runs["numpy"], runs["numpy"])
    assert len(same) == 2 and all(r["identical"] for r in same)
    rows = compare_engines.compare(runs["numpy"], runs["numba"])
    assert len(rows) == 2
    for r in rows:
        assert r["lo"] <= 0.0 <= r["hi"]
        assert abs(r["diff"]) <= 1e-6 * abs(r["a"])
    assert compare_engines.main([str(tmp_path / "numpy.nc"), str(tmp_path / "numba.nc")]) == 0
    assert "2 scheme-point cells" in capsys.readouterr().out


def test_step_info_of_the_compiled_step_is_complete() -> None:
    """The compiled step's StepInfo has every field and cached value the numpy step's has, close."""
    import dataclasses

    from mecmodel.env import Action, MECEnv

    infos = {}
    for engine in ("numpy", "numba"):
        P = make_params("default", {"K": 5, "engine": engine})
        env = MECEnv(P, [0, 1])
        env.reset()
        for _ in range(6):  # past the first block, where every queue is still empty
            _, _, info = env.step(Action(np.full((2, 5), 0.05), np.full((2, P.n_slots), 2e9)))
        infos[engine] = info
    a, b = infos["numpy"], infos["numba"]
    for name in ("p_tx", "e_local", "e_offload", "served", "wd_cost_grad", "server_cost_grad"):
        assert np.any(getattr(a, name) != 0), name  # the comparison below compares something
    for f in dataclasses.fields(a):
        if f.name in ("P", "obs"):
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, Action):
            pairs = [(x.p, y.p), (x.f_ser, y.f_ser), (x.whole_task, y.whole_task)]
        else:
            pairs = list(zip(x, y, strict=True)) if isinstance(x, tuple) else [(x, y)]
        for u, v in pairs:
            np.testing.assert_allclose(np.asarray(v, float), np.asarray(u, float), rtol=1e-12, err_msg=f.name)
    for name in ("wd_cost", "server_cost", "wd_cost_grad", "server_cost_grad"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-12, err_msg=name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.p_tx = None


def test_engine_as_a_swept_axis_aggregates(tmp_path) -> None:
    """An experiment may sweep engine: [numpy, numba]; the numpy run, whose path and params_json
    leave the default engine out, takes its place on the axis."""
    from mecmodel.results import aggregate

    base = mecmodel.simulate(K=2, scheme="even", seeds=2, blocks=10)
    swept = mecmodel.simulate(K=2, scheme="even", seeds=2, blocks=10, overrides={"engine": "numba"}, sweep=["engine"])
    paths = []
    for i, ds in enumerate((base, swept)):
        paths.append(tmp_path / f"run{i}.nc")
        ds.to_netcdf(paths[-1])
    out = aggregate(paths, tmp_path / "agg.nc", experiment="e")
    with xr.open_dataset(out) as agg:
        assert sorted(str(v) for v in agg["engine"].values) == ["numba", "numpy"]
        assert agg["average_cost"].notnull().all()
