"""The fixed server rules of mecmodel.policies.rules: full speed and minimum energy."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import drive
from hypothesis import given, settings
from hypothesis import strategies as st

from mecmodel import queues
from mecmodel.env import MECEnv, Observation
from mecmodel.params import make_params
from mecmodel.policies import PolicyContext
from mecmodel.policies.rules import FixedPower, FullSpeed, MinEnergy


def _obs(P, q_ser):
    q_ser = np.asarray(q_ser, dtype=float)
    S = len(q_ser)
    return Observation(0, np.zeros((S, P.K)), np.ones((S, P.K)), np.zeros((S, P.K, P.n_slots)), q_ser)


def _act(policy, P, q_ser):
    env = MECEnv(P, list(range(len(q_ser))))
    obs = _obs(P, q_ser)
    policy.reset(PolicyContext(P, tuple(range(len(q_ser))), env), obs)
    return policy.act(obs)


@settings(max_examples=200, deadline=None)
@given(
    q=st.lists(st.integers(0, 10**12), min_size=1, max_size=5),
    f_max=st.floats(1e8, 1e11),
    n=st.integers(1, 8),
    data=st.data(),
)
def test_min_energy_serves_all_it_can_at_the_least_energy(q, f_max, n, data):
    P = make_params("default", {"K": 2, "f_ser_max": f_max, "n_slots": n})
    f = _act(MinEnergy(), P, q)
    assert f.shape == (len(q), n) and ((f >= 0) & (f <= P.f_ser_max)).all()
    qs = np.asarray(q, dtype=float)
    served, f_eff = queues.server_service(qs, f, P.tau)
    total = served.sum(axis=1)
    capacity = np.floor(n * P.tau * P.f_ser_max)
    # work-conserving: everything when the block can, else (up to rounding of a rate) the capacity
    clears = qs <= capacity - n
    np.testing.assert_array_equal(total[clears], qs[clears])
    np.testing.assert_allclose(total[~clears], np.minimum(qs, n * P.tau * P.f_ser_max)[~clears], rtol=1e-12)
    # whole cycles stay whole: the next queue is an integer
    left = np.maximum(qs - total, 0.0)
    np.testing.assert_array_equal(left[clears], 0.0)
    # least energy (7) for the work served: any other split of the same work costs at least as much
    e = queues.server_energy(f_eff, P.tau, P.xi_ser)
    w = np.asarray(data.draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n)))
    other = np.minimum(total[:, None] * w / w.sum() / P.tau, P.f_ser_max)
    feasible = np.isclose((other * P.tau).sum(axis=1), total, rtol=1e-9)
    e_other = queues.server_energy(other, P.tau, P.xi_ser)
    # MinEnergy rounds each slot up by at most 2 cycles: dE = 3 xi f^2 (cycles moved) per slot
    slack = 1e-9 * e + 6 * n * P.xi_ser * f_eff.max(axis=1) ** 2
    assert (e[feasible] <= e_other[feasible] + slack[feasible]).all()


def test_min_energy_idles_on_an_empty_queue():
    P = make_params("default", {"K": 2})
    assert (_act(MinEnergy(), P, [0.0, 0.0]) == 0).all()


def test_full_speed_is_f_ser_max():
    P = make_params("default", {"K": 2})
    assert (_act(FullSpeed(), P, [0.0, 5e9]) == P.f_ser_max).all()


@pytest.mark.parametrize("server", [FullSpeed, MinEnergy])
def test_server_rules_pair_with_any_wd_policy(server):
    """In the loop, with the never- and always-offload WDs: work is conserved to the cycle and the
    server queue follows (6)."""

    def integer_server_queue(obs):
        assert (obs.q_ser == np.round(obs.q_ser)).all()

    P = make_params("default", {"K": 4, "arrival_prob": 0.5, "f_ser_max": 2e9})
    for wd in (FixedPower(0.0), FixedPower(1.0)):
        arrived, served, obs = drive(P, wd, server(), blocks=60, each=integer_server_queue)
        np.testing.assert_array_equal(arrived, served + obs.q.sum(axis=1) + obs.q_ser)
