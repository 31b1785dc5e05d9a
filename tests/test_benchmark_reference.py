"""The benchmark's plain per-device loop (benchmarks/reference_loop.py) and the vectorised
simulator follow the same trajectory, so the throughput ratio compares like with like."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mecmodel.params import make_params
from mecmodel.simulation import simulate_arrays

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_loop.py"
_spec = importlib.util.spec_from_file_location("reference_loop", _PATH)
reference_loop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_loop)

# Both sides sum in different orders (einsum, pairwise sums, tanh vs exp sigmoid), so values
# agree to rounding, which the learning dynamics amplify a little over the blocks.
RTOL = 1e-9


def _compare(overrides: dict, seeds: list[int], blocks: int) -> tuple[dict, dict]:
    P = make_params("default", overrides)
    vec = simulate_arrays(P, "proposed", seeds, blocks, per_device=True)
    ref = reference_loop.run_reference(P, seeds, blocks, per_device=True)
    for name in reference_loop.SERIES:
        a, b = vec["series"][name], ref[name]
        assert a.shape == b.shape == (len(seeds), blocks), name
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=1e-300, err_msg=name)
    for name in ("wd_queue_k", "tx_power_k"):
        np.testing.assert_allclose(ref[name], vec["device"][name], rtol=RTOL, atol=1e-300, err_msg=name)
    for alg in ("alg1", "alg2"):
        conv = ref[f"{alg}_converged_at"].reshape(len(seeds), -1)
        div = ref[f"{alg}_diverged_at"].reshape(len(seeds), -1)
        summary = vec["agents"][alg]
        np.testing.assert_array_equal(summary["converged_fraction"], (conv >= 0).mean(axis=1), err_msg=alg)
        first_div = np.where((div >= 0).any(axis=1), np.where(div >= 0, div, blocks).min(axis=1), -1)
        np.testing.assert_array_equal(summary["diverged_block"], first_div, err_msg=alg)
    return vec, ref


@pytest.mark.parametrize(
    ("overrides", "seeds", "blocks"),
    [
        ({"K": 1}, [0, 1], 40),
        ({"K": 6, "arrival_prob": 0.6}, [3, 11], 30),
        ({"K": 20}, [0], 25),
    ],
)
def test_reference_loop_follows_the_simulator(overrides: dict, seeds: list[int], blocks: int) -> None:
    vec, _ = _compare(overrides, seeds, blocks)
    # the runs did offload, compute locally and queue work, so every branch of the step ran
    assert (vec["device"]["offloaded_k"] > 0).any() and (vec["device"]["local_rate_k"] > 0).any()
    assert (vec["series"]["server_queue"] > 0).any()


def test_reference_loop_converges_freezes_and_diverges_with_the_simulator() -> None:
    # a loose tolerance makes agents converge and freeze within the run; a low limit makes some diverge
    _, ref = _compare({"K": 5, "epsilon": 0.02, "patience": 3}, [0, 1], 60)
    assert (ref["alg1_converged_at"] >= 0).any() and (ref["alg2_converged_at"] >= 0).any()
    _, ref = _compare({"K": 8, "alpha0": 1.0, "divergence_limit": 30.0}, [0, 1, 2], 30)
    assert (ref["alg1_diverged_at"] >= 0).any() and (ref["alg2_diverged_at"] >= 0).any()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    K=st.integers(1, 5),
    arrival_prob=st.floats(0.05, 0.95),
    gamma=st.floats(0.3, 0.99),
    zeta=st.floats(5e-4, 1e-2),
    f_wd_max=st.floats(2e8, 3e9),
    seed=st.integers(0, 2**31),
)
def test_reference_loop_follows_the_simulator_anywhere(
    K: int, arrival_prob: float, gamma: float, zeta: float, f_wd_max: float, seed: int
) -> None:
    over = {"K": K, "arrival_prob": arrival_prob, "gamma": gamma, "zeta": zeta, "f_wd_max": f_wd_max}
    _compare(over, [seed], 15)


@pytest.mark.parametrize("over", [{"local_service": "head"}, {"gradient": "printed"}])
def test_reference_loop_rejects_rules_it_does_not_implement(over: dict) -> None:
    with pytest.raises(ValueError, match="mod_w"):
        reference_loop.run_reference(make_params("default", over), [0], 2)
