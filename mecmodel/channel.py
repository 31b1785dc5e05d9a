"""Wireless channel: user drop, large-scale gain, fading, rate (3) and power (4).

Channel gains are kept *normalised by the noise power*, so the paper's unit-variance
noise in (3) holds literally: ``h`` below is (power gain) / (noise power) in W^-1.
All functions are pure and broadcast over leading (seed, device) axes.
"""

from __future__ import annotations

import numpy as np

LN2 = np.log(2.0)


def drop_users(rng: np.random.Generator, K: int, radius: float, min_distance: float) -> np.ndarray:
    """Distances (m) of K WDs dropped uniformly in an annulus [min_distance, radius].

    Uniform in area: d = sqrt(u (R^2 - r0^2) + r0^2). One uniform per device, so the
    first K devices of a larger drop are the same devices (prefix-consistent).

    ``rng`` draws K uniforms; ``radius`` and ``min_distance`` are in m. Returns (K,) distances in m.
    """
    u = rng.random(K)
    return np.sqrt(u * (radius**2 - min_distance**2) + min_distance**2)


def large_scale_gain(
    distance: np.ndarray, shadow_std_normal: np.ndarray, a: float, b: float, shadowing_db: float, noise_dbw: float
) -> np.ndarray:
    """Mean channel gain over noise (W^-1): path loss a + b log10(d) dB plus shadowing (section VI).

    ``distance`` (m) and ``shadow_std_normal`` (standard normal draws, 1) broadcast, e.g. both (S, K); ``a`` in
    dB, ``b`` in dB per decade of distance (d in m), ``shadowing_db`` the shadowing's standard deviation in dB,
    ``noise_dbw`` the noise power in dBW. Returns 10^(-(PL + noise_dbw) / 10) in W^-1, of the broadcast shape.
    """
    loss_db = a + b * np.log10(distance) + shadowing_db * shadow_std_normal
    return 10.0 ** ((-loss_db - noise_dbw) / 10.0)


def rate(h: np.ndarray, p: np.ndarray, bandwidth: float, snr_gap: float) -> np.ndarray:
    """Eq. (3): r = B log2(1 + h p / Gamma), bits/s, h normalised by the noise power.

    ``h`` (W^-1) and ``p`` (W) broadcast, e.g. both (S, K); ``bandwidth`` B in Hz, ``snr_gap`` Gamma (1).
    Returns bits/s, of the broadcast shape.
    """
    return bandwidth * np.log1p(h * p / snr_gap) / LN2  # log1p: exact at tiny SNR


def bits_per_slot(h: np.ndarray, p: np.ndarray, bandwidth: float, snr_gap: float, tau: float) -> np.ndarray:
    """Largest intermediate output D (bits) that power p carries in one slot: r tau (Section II-B).

    ``h`` (W^-1) and ``p`` (W) broadcast, e.g. both (S, K); ``bandwidth`` in Hz, ``snr_gap`` 1, ``tau`` the
    slot length in s. Returns bits, of the broadcast shape; divided by zeta (bit/cycle) it is the back-end
    cycles p can offload, the capacity of (3).
    """
    return tau * rate(h, p, bandwidth, snr_gap)


def power_for_bits(h: np.ndarray, bits: np.ndarray, bandwidth: float, snr_gap: float, tau: float) -> np.ndarray:
    """Eq. (4): p = (Gamma / h) (2^(D / (tau B)) - 1), the least power that sends D bits in a slot.

    ``h`` (W^-1) and ``bits`` D (bits) broadcast, e.g. both (S, K); ``bandwidth`` in Hz, ``snr_gap`` 1,
    ``tau`` in s. Returns W (not capped at p_max), of the broadcast shape.
    """
    return snr_gap / h * np.expm1(bits / (tau * bandwidth) * LN2)


def dbits_dp(h: np.ndarray, p: np.ndarray, bandwidth: float, snr_gap: float, tau: float) -> np.ndarray:
    """Derivative of ``bits_per_slot`` with respect to p (bits per W).

    Arguments as for ``bits_per_slot``: ``h`` (W^-1) and ``p`` (W) broadcast, e.g. both (S, K). Returns bits/W,
    of the broadcast shape.
    """
    return tau * bandwidth * (h / snr_gap) / ((1.0 + h * p / snr_gap) * LN2)
