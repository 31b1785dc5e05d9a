"""The model's pure formulas: channel (3)-(4), energies (2), (5), (7), cost (8), user drop, queues (1), (6).

Expected numbers are worked out by hand from the equations in the paper digest, not read
back from the code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecmodel import channel, queues
from mecmodel.params import make_params

# --------------------------------------------------------------------------- channel


def test_rate_eq3_hand_value() -> None:
    # h p / Gamma = 3 * 2 / 1.5 = 4, so r = B log2(5).
    r = channel.rate(np.array(3.0), np.array(2.0), 1e6, 1.5)
    assert r == pytest.approx(1e6 * math.log2(5.0), rel=1e-14)


def test_bits_per_slot_is_rate_times_tau() -> None:
    # h p / Gamma = 2 * 1.5 / 1 = 3, r = 2 MHz * log2(4) = 4e6 bit/s, over 0.25 s: 1e6 bits.
    assert channel.bits_per_slot(np.array(2.0), np.array(1.5), 2e6, 1.0, 0.25) == pytest.approx(1e6, rel=1e-14)


def test_power_eq4_hand_value() -> None:
    # D / (tau B) = 2e5 / (0.1 * 1e6) = 2, so p = (1.5 / 3) (2^2 - 1) = 1.5 W.
    p = channel.power_for_bits(np.array(3.0), np.array(2e5), 1e6, 1.5, 0.1)
    assert p == pytest.approx(1.5, rel=1e-14)
    assert channel.power_for_bits(np.array(3.0), np.array(0.0), 1e6, 1.5, 0.1) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    h=st.floats(1e-3, 1e9),
    snr=st.floats(1e-6, 1e6),  # h p / Gamma: below ~1e-6 see test_rate_accurate_at_tiny_snr
    bandwidth=st.floats(1e3, 1e9),
    gap=st.floats(1.0, 10.0),
    tau=st.floats(1e-3, 1.0),
)
def test_power_inverts_rate(h: float, snr: float, bandwidth: float, gap: float, tau: float) -> None:
    """(4) is the inverse of (3): the least power that carries r(p) tau bits is p itself."""
    p = snr * gap / h
    bits = channel.bits_per_slot(np.array(h), np.array(p), bandwidth, gap, tau)
    back = channel.power_for_bits(np.array(h), bits, bandwidth, gap, tau)
    assert back == pytest.approx(p, rel=1e-9)
    # and the other way round: the bits carried by the power (4) asks for are the bits asked for
    assert channel.bits_per_slot(np.array(h), back, bandwidth, gap, tau) == pytest.approx(bits, rel=1e-9)


def test_rate_accurate_at_tiny_snr() -> None:
    x = 1e-12
    r = channel.rate(np.array(1.0), np.array(x), 1e6, 1.0)
    assert r == pytest.approx(1e6 * math.log1p(x) / math.log(2.0), rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(h=st.floats(1e-2, 1e8), snr=st.floats(1e-3, 1e6), gap=st.floats(1.0, 10.0))
def test_dbits_dp_matches_finite_difference(h: float, snr: float, gap: float) -> None:
    B, tau = 1e6, 0.1
    p = snr * gap / h
    dp = 1e-6 * p
    fd = (channel.bits_per_slot(h, p + dp, B, gap, tau) - channel.bits_per_slot(h, p - dp, B, gap, tau)) / (2 * dp)
    assert channel.dbits_dp(h, p, B, gap, tau) == pytest.approx(fd, rel=1e-5)


def test_large_scale_gain_pathloss_and_noise() -> None:
    # d = 100 m: PL = 30.6 + 37.6 * 2 = 105.8 dB; noise -174 dBW, so gain/noise = 10^((174 - 105.8) / 10).
    g = channel.large_scale_gain(np.array([100.0, 100.0, 1.0]), np.array([0.0, 1.0, 0.0]), 30.6, 37.6, 10.0, -174.0)
    assert g[0] == pytest.approx(10**6.82, rel=1e-12)
    # one standard deviation of 10 dB shadowing costs a factor 10
    assert g[1] == pytest.approx(10**5.82, rel=1e-12)
    # at 1 m only the intercept is left
    assert g[2] == pytest.approx(10 ** ((174.0 - 30.6) / 10.0), rel=1e-12)


def test_presets_radio_numbers() -> None:
    """Section VI's radio numbers; noise: -174 dBW as printed in `paper`, -144 dBW by default (docs/model.md C)."""
    P, paper = make_params(), make_params("paper")
    for Q in (P, paper):
        assert (Q.pathloss_a, Q.pathloss_b, Q.cell_radius, Q.shadowing_db) == (30.6, 37.6, 200.0, 10.0)
        assert (Q.bandwidth, Q.snr_gap) == (1e6, 1.5)
    assert paper.noise_dbw == -174.0
    # -174 dBm/Hz over 1 MHz: -174 + 60 dB = -114 dBm = -144 dBW
    assert P.noise_dbw == pytest.approx(-174.0 + 10 * math.log10(P.bandwidth) - 30.0)


def test_large_scale_gain_noise_shift() -> None:
    # 30 dB more noise is 1000 times less gain over noise
    d, z = np.array([50.0]), np.array([0.3])
    g174 = channel.large_scale_gain(d, z, 30.6, 37.6, 10.0, -174.0)
    g144 = channel.large_scale_gain(d, z, 30.6, 37.6, 10.0, -144.0)
    assert g174 / g144 == pytest.approx(1000.0, rel=1e-12)


def test_drop_within_annulus_and_uniform_in_area() -> None:
    R, r0, n = 200.0, 10.0, 100_000
    d = channel.drop_users(np.random.default_rng(12345), n, R, r0)
    assert d.shape == (n,)
    assert d.min() >= r0 and d.max() <= R
    # Uniform in area <=> d^2 uniform on [r0^2, R^2]: mean (R^2 + r0^2) / 2 = 20050 m^2, sd 39900 / sqrt(12).
    # Uniform in *radius* would give a mean of about 14033 m^2, so 5 standard errors (~182) separate them.
    se = (R**2 - r0**2) / math.sqrt(12.0) / math.sqrt(n)
    assert abs(np.mean(d**2) - (R**2 + r0**2) / 2) < 5 * se
    # P(d <= 100) = (100^2 - 10^2) / (200^2 - 10^2)
    p = (100.0**2 - r0**2) / (R**2 - r0**2)
    assert abs(np.mean(d <= 100.0) - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_drop_is_prefix_consistent() -> None:
    a = channel.drop_users(np.random.default_rng(7), 5, 200.0, 10.0)
    b = channel.drop_users(np.random.default_rng(7), 9, 200.0, 10.0)
    np.testing.assert_array_equal(a, b[:5])


# --------------------------------------------------------------------------- energies and cost


def test_local_energy_eq2_hand_value() -> None:
    # 1e9 cycles over n = 5 slots of 0.1 s: f = 2e9 in every slot, E = 5 * 0.1 * 1e-28 * (2e9)^3 = 0.4 J.
    assert queues.local_energy(np.array(1e9), 5, 0.1, 1e-28) == pytest.approx(0.4, rel=1e-12)
    assert queues.local_energy(np.array(0.0), 5, 0.1, 1e-28) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1e9), min_size=1, max_size=8))
def test_local_energy_even_split_is_least(rates: list[float]) -> None:
    """Equal slot rates minimise sum_i tau xi f_i^3 for the same total work (what (2) is evaluated with)."""
    tau, xi = 0.1, 1e-28
    f = np.array(rates)
    total = f.sum() * tau
    uneven = np.sum(tau * xi * f**3)
    assert queues.local_energy(np.array(total), len(rates), tau, xi) <= uneven * (1 + 1e-12)


def test_offload_energy_eq5() -> None:
    assert queues.offload_energy(np.array(2.0), 0.1) == pytest.approx(0.2, rel=1e-15)


def test_server_energy_eq7_hand_value() -> None:
    # 0.1 * 1e-29 * ((1e10)^3 + (2e10)^3) = 1e-30 * 9e30 = 9 J
    f = np.array([[1e10, 2e10, 0.0, 0.0, 0.0]])
    assert queues.server_energy(f, 0.1, 1e-29) == pytest.approx([9.0], rel=1e-12)


def test_cost_eq8_terms_hand_value() -> None:
    terms = queues.cost_terms(
        np.array([1e9]), np.array([0.9]), np.array([[1e8, 3e8]]), np.array([[0.1, 0.2]]), 1e-8, 1.0, 1e-8, 10.0
    )
    assert terms.server_queue == pytest.approx([10.0])  # w1 q_ser = 1e-8 * 1e9
    assert terms.server_energy == pytest.approx([0.9])  # w2 E_ser
    assert terms.wd_queue == pytest.approx([4.0])  # w3 (1e8 + 3e8)
    assert terms.wd_energy == pytest.approx([3.0])  # w4 (0.1 + 0.2)
    assert terms.total == pytest.approx([17.9])


# --------------------------------------------------------------------------- WD queue service


def test_head_remaining_hand_values() -> None:
    W = 10.0
    q = np.array([0.0, 1.0, 10.0, 11.0, 25.0, 30.0])
    np.testing.assert_array_equal(queues.head_remaining(q, W), [0.0, 1.0, 10.0, 1.0, 5.0, 10.0])


def test_wd_service_hand_example() -> None:
    # W = 10, q = 25 (head 5, then 2 whole tasks), local_max = 12 cycles, capacity 4.3 -> 4 cycles.
    q, W, cap = np.array([25.0]), 10.0, np.array([4.3])
    s = queues.wd_service(q, cap, W, 12.0, "mod_w")
    # head (5) local, task 2 partitioned: 6 local + 4 offloaded; task 3 would need 5 + 10 + 6 = 21 > 12
    assert (s.local[0], s.offload[0], bool(s.uncapped[0]), bool(s.stuck[0])) == (11.0, 4.0, True, False)
    assert s.dlocal_doff[0] == -1.0
    s = queues.wd_service(q, cap, W, 12.0, "single")
    assert (s.local[0], s.offload[0], s.dlocal_doff[0]) == (1.0, 4.0, -1.0)
    # head: the head's back end (4) goes, then the CPU runs flat out (12 cycles) FIFO
    s = queues.wd_service(q, cap, W, 12.0, "head")
    assert (s.local[0], s.offload[0], s.dlocal_doff[0]) == (12.0, 4.0, 0.0)
    s = queues.wd_service(q, cap, W, 30.0, "head")  # the CPU could do more than is left
    assert (s.local[0], s.offload[0], s.dlocal_doff[0]) == (21.0, 4.0, -1.0)
    # binary cannot offload 4 of the head's 5: it finishes the head, task 2 is too long to finish locally
    s = queues.wd_service(q, cap, W, 12.0, "mod_w", binary=True)
    assert (s.local[0], s.offload[0], bool(s.uncapped[0])) == (5.0, 0.0, False)
    s = queues.wd_service(q, np.array([5.0]), W, 12.0, "mod_w", binary=True)
    # capacity 5 carries the head's remainder whole; task 2 whole locally (5 + 10 > 12) does not fit
    assert (s.local[0], s.offload[0]) == (0.0, 5.0)
    # stuck: 3 local cycles cannot finish the head's front end of 5, nothing can be offloaded
    for rule in queues.LOCAL_SERVICE:
        s = queues.wd_service(q, np.array([0.0]), W, 3.0, rule)
        assert (s.local[0], s.offload[0], bool(s.stuck[0])) == (3.0, 0.0, True)


def test_wd_service_rejects_unknown_rule() -> None:
    with pytest.raises(ValueError, match="local_service"):
        queues.wd_service(np.array([1.0]), np.array([1.0]), 10.0, 5.0, "fill")


def _oracle(q: int, cap: float, W: int, local_max: int, rule: str, binary: bool) -> tuple[int, int]:
    """Brute force over which task m to partition (docs/model.md B); returns (local, offload)."""
    if q == 0:
        return 0, 0
    head = q - W * ((q - 1) // W)
    n_tasks = (q - 1) // W + 1
    c = math.floor(cap)

    def back_end(size: int) -> int:
        return (size if c >= size else 0) if binary else min(c, size)

    if rule == "head":
        off = back_end(head)
        if head - off > local_max:
            return min(local_max, head), 0
        return min(q - off, local_max), off
    best = None
    for m in range(n_tasks if rule == "mod_w" else 1):
        size = head if m == 0 else W
        off = back_end(size)
        local = head + m * W - off
        if local <= local_max:
            best = (local, off)  # keep the furthest task the CPU reaches
    if best is None:  # even the head's front end is out of reach: compute what we can, offload nothing
        return min(local_max, head), 0
    return best


@st.composite
def _service_case(draw):
    W = draw(st.sampled_from([1, 7, 10, 1000, 200_000_000, 10**10]))
    n = draw(st.integers(1, 12))
    tasks = draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))
    parts = draw(st.lists(st.integers(0, W - 1), min_size=n, max_size=n))
    q = np.array([t * W + r for t, r in zip(tasks, parts, strict=True)], dtype=float)
    cap = np.array(draw(st.lists(st.floats(0.0, 3.0 * W), min_size=n, max_size=n)))
    local_max = float(draw(st.integers(0, 4 * W)))
    return q, cap, float(W), local_max


@settings(max_examples=300, deadline=None)
@given(case=_service_case(), rule=st.sampled_from(queues.LOCAL_SERVICE), binary=st.booleans())
def test_wd_service_properties(case, rule: str, binary: bool) -> None:
    q, cap, W, local_max = case
    s = queues.wd_service(q, cap, W, local_max, rule, binary)
    head = queues.head_remaining(q, W)
    local, off = s.local, s.offload
    # integer cycles, so the mod-W reading below is exact
    np.testing.assert_array_equal(local, np.round(local))
    np.testing.assert_array_equal(off, np.round(off))
    assert np.all(local >= 0) and np.all(off >= 0)
    assert np.all(local <= local_max)  # (9c): at most n tau f_max cycles in a block
    assert np.all(off <= np.floor(cap))  # what the power carries in one slot
    assert np.all(off <= W)  # at most one back end
    assert np.all(local + off <= q)
    assert np.all(local[q == 0] == 0) and np.all(off[q == 0] == 0)
    ok = ~s.stuck
    if rule in ("mod_w", "single"):
        # (1)/(6): what is left after local computing, mod W, is the offloaded back end (or 0 if none)
        rem = np.mod(q - local, W)
        part = ok & (off > 0) & (off < W)
        np.testing.assert_array_equal(rem[part], off[part])
        np.testing.assert_array_equal(rem[ok & (off == 0)], 0.0)
        # a whole task offloaded (off = W) leaves whole tasks behind; mod W cannot express W itself
        np.testing.assert_array_equal(np.mod(q - local - off, W)[ok], 0.0)
    else:
        # head: the offload is the head's back end and its front end is finished locally
        assert np.all(local[ok] >= head[ok] - off[ok])
    # stuck: the CPU runs flat out on the head and nothing is offloaded
    assert np.all(off[s.stuck] == 0)
    assert np.all(s.stuck <= (q > 0))
    np.testing.assert_array_equal(local[s.stuck], np.full(int(s.stuck.sum()), local_max))
    assert np.all(local[s.stuck] < head[s.stuck])
    if binary:
        assert np.all((off == 0) | (off == head) | (off == W))  # each task whole at one place
        assert not np.any(s.uncapped)
    else:
        # if the offload is not the capacity, it is the whole back end of the partitioned task
        lim = (off > 0) & ~s.uncapped
        assert np.all((off[lim] == head[lim]) | (off[lim] == W))
        np.testing.assert_array_equal(off[s.uncapped], np.floor(cap[s.uncapped]))
    # d local / d offload: -1 when each offloaded cycle is one the CPU skips, 0 when the CPU stays full
    u = s.uncapped
    expect = np.where((rule == "head") & (local >= local_max), 0.0, -1.0)
    np.testing.assert_array_equal(s.dlocal_doff[u], expect[u])
    if rule == "single":
        assert np.all(local + off <= head)
    for i in range(len(q)):
        want = _oracle(int(q[i]), cap[i], int(W), int(local_max), rule, binary)
        assert (local[i], off[i]) == want, (q[i], cap[i], W, local_max)


@settings(max_examples=100, deadline=None)
@given(case=_service_case(), arrivals=st.integers(0, 5))
def test_wd_queue_next_is_work_conserving(case, arrivals: int) -> None:
    q, cap, W, local_max = case
    s = queues.wd_service(q, cap, W, local_max)
    nxt = queues.wd_queue_next(q, s, np.full_like(q, arrivals), W)
    np.testing.assert_array_equal(nxt, q - s.local - s.offload + arrivals * W)


# --------------------------------------------------------------------------- server service


@settings(max_examples=200, deadline=None)
@given(
    q_ser=st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1e11)), min_size=1, max_size=6),
    n=st.integers(1, 6),
    data=st.data(),
)
def test_server_service_properties(q_ser: list[float], n: int, data) -> None:
    tau = 0.1
    S = len(q_ser)
    f = np.array(data.draw(st.lists(st.floats(0.0, 5e10), min_size=S * n, max_size=S * n))).reshape(S, n)
    q = np.array(q_ser)
    served, f_eff = queues.server_service(q, f, tau)
    assert served.shape == (S, n) and f_eff.shape == (S, n)
    assert np.all(served >= 0)
    assert np.all(served.sum(axis=1) <= q * (1 + 1e-12))
    # served = min(q, tau sum f): the server never idles while work remains
    np.testing.assert_allclose(served.sum(axis=1), np.minimum(q, tau * f.sum(axis=1)), rtol=1e-12, atol=1e-3)
    # cumsum rounding: allow 1e-12 of the block's commanded work
    assert np.all(f_eff <= f + 1e-12 * f.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(f_eff * tau, served, rtol=1e-12)
    idle = q == 0
    assert np.all(queues.server_energy(f_eff, tau, 1e-29)[idle] == 0.0)
    nxt = queues.server_queue_next(q, served, np.zeros((S, 2)))
    assert np.all(nxt >= 0)


def test_server_service_hand_example() -> None:
    # 7e9 cycles at 2.5e10 cycles/s for 0.1 s slots: 2.5e9, 2.5e9, then the last 2e9, then idle.
    served, f_eff = queues.server_service(np.array([7e9]), np.full((1, 5), 2.5e10), 0.1)
    np.testing.assert_allclose(served[0], [2.5e9, 2.5e9, 2e9, 0.0, 0.0])
    np.testing.assert_allclose(f_eff[0], [2.5e10, 2.5e10, 2e10, 0.0, 0.0])
    q_next = queues.server_queue_next(np.array([7e9]), served, np.array([[3.0, 4.0]]))
    assert q_next[0] == pytest.approx(7.0)
