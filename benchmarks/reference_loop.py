"""The reference for the throughput benchmark: one block of the ``proposed`` scheme as a plain
per-device Python loop (floats, lists and ``math``), written from the formulas of the paper
and docs/model.md rather than from the vectorised code.

It covers the default model (``local_service: mod_w``, ``gradient: exact``): the channel
(3)-(4), the partition of docs/model.md note B, the energies (2), (5), (7), the queues (1), (6),
the cost (8), Algorithm 1 at every WD and Algorithm 2 at the server, with the stopping,
freezing and divergence rules of note E. Like the vectorised learner it keeps the state part
of each feature logit, v_s . s_t, from the block before, so both do the same arithmetic per
block and the measured ratio is the gain from vectorising alone.

Only the random inputs come from numpy: the same streams (``SeedSequence(seed,
spawn_key=(i,))``) drawn in the same chunks as :mod:`mecmodel.env`, so for a given seed
the two see the same users, channels, arrivals and feature vectors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mecmodel.env import CHUNK, STREAMS
from mecmodel.params import Params

LN2 = math.log(2.0)
SERIES = (
    "cost",
    "wd_queue_mean",
    "server_queue",
    "energy_local",
    "energy_offload",
    "energy_server",
    "tx_power_mean",
    "alg1_td_error",
    "alg1_rel_change",
    "alg2_td_error",
    "alg2_rel_change",
)


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(STREAMS[name],))))


def _sigmoid(z: float) -> float:
    """(23)/(30): 1 / (1 + exp(-z)), in the form that cannot overflow."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Learner:
    """One parametric online Q-learner: Q = w . phi([a; s]), phi_i = sigmoid(v_i . [a; s])."""

    def __init__(self, v: list[list[float]], n_action: int, a0: list[float], P: Params):
        self.v_a = [row[:n_action] for row in v]
        self.v_s = [row[n_action:] for row in v]
        self.a = list(a0)
        self.w = [P.theta_init] * len(v)
        self.P = P
        self.streak = 0
        self.converged_at = -1
        self.diverged_at = -1
        self.frozen = False
        self.zs_now: list[float] = []

    def logits(self, s: list[float]) -> list[float]:
        return [sum(vi * si for vi, si in zip(row, s, strict=True)) for row in self.v_s]

    def observe(self, s: list[float]) -> None:
        self.zs_now = self.logits(s)

    def learn(self, t: int, r: float, dr_da: list[float], s_next: list[float]) -> tuple[float, float]:
        """One step of (24)-(28) / (31)-(35) with the exact gradient; returns (|TD error|, rel. change)."""
        P, w, a = self.P, self.w, self.a
        gamma = P.gamma
        zs_next = self.logits(s_next)
        phi_now, phi_next = [], []
        for row_a, z_now, z_next in zip(self.v_a, self.zs_now, zs_next, strict=True):
            za = sum(vi * ai for vi, ai in zip(row_a, a, strict=True))
            phi_now.append(_sigmoid(z_now + za))
            phi_next.append(_sigmoid(z_next + za))
        self.zs_now = zs_next
        delta = (
            r
            + gamma * sum(wi * p for wi, p in zip(w, phi_next, strict=True))
            - sum(wi * p for wi, p in zip(w, phi_now, strict=True))
        )
        # d(delta^2)/da_j = 2 delta [dr/da_j + sum_i w_i v_ij (gamma phi'_next,i - phi'_now,i)], phi' = phi (1 - phi)
        slope = [wi * (gamma * pn * (1.0 - pn) - p * (1.0 - p)) for wi, pn, p in zip(w, phi_next, phi_now, strict=True)]
        g_a = [
            2.0 * delta * (dr_da[j] + sum(s * row[j] for s, row in zip(slope, self.v_a, strict=True)))
            for j in range(len(a))
        ]
        alpha = P.alpha0 / (1.0 + t / P.alpha_t0) ** P.alpha_decay
        w_new = [wi - alpha * 2.0 * delta * (gamma * pn - p) for wi, pn, p in zip(w, phi_next, phi_now, strict=True)]
        a_new = [min(max(aj - alpha * gj, 0.0), 1.0) for aj, gj in zip(a, g_a, strict=True)]
        norm = math.sqrt(sum(x * x for x in w))
        step = math.sqrt(sum((x - y) * (x - y) for x, y in zip(w_new, w, strict=True)))
        new_norm = math.sqrt(sum(x * x for x in w_new))
        rel = step / norm if norm > 0 else math.inf
        finite = math.isfinite(new_norm) and math.isfinite(delta) and all(math.isfinite(x) for x in a_new)
        if self.frozen or self.diverged_at >= 0:
            rel = 0.0
        elif not finite or new_norm > P.divergence_limit:
            self.diverged_at, rel = t, 0.0
        else:
            self.w, self.a = w_new, a_new
            self.streak = self.streak + 1 if rel <= P.epsilon else 0
            if self.streak >= P.patience and self.converged_at < 0:
                self.converged_at = t
                self.frozen = P.freeze_on_convergence
        return (abs(delta) if math.isfinite(delta) else math.nan), rel


class _Inputs:
    """Channel gains h_k (over the noise) and arrivals beta_k,i, drawn per chunk of blocks."""

    def __init__(self, P: Params, seed: int, mean_gain: list[float]):
        self.P, self.mean_gain = P, mean_gain
        self.fade_rng, self.arr_rng = _rng(seed, "fading"), _rng(seed, "arrivals")
        self.fades: list[list[float]] = []
        self.arrivals: list[list[list[float]]] = []

    def block(self, t: int) -> tuple[list[float], list[list[float]]]:
        K, n = self.P.K, self.P.n_slots
        while len(self.fades) <= t:
            self.fades.extend(self.fade_rng.standard_exponential((CHUNK, K)).tolist())
            self.arrivals.extend((self.arr_rng.random((CHUNK, K, n)) < self.P.arrival_prob).astype(float).tolist())
        return [f * g for f, g in zip(self.fades[t], self.mean_gain, strict=True)], self.arrivals[t]


def _partition(q: float, cap: float, W: float, local_max: float) -> tuple[float, float, bool]:
    """docs/model.md note B, ``mod_w``: (local cycles, offloaded back end, offload follows the power).

    The WD computes every task up to the partitioned one and that task's front end, and
    partitions the furthest task it can reach within ``local_max``; if even the head's front
    end does not fit, it computes ``local_max`` of the head and offloads nothing.
    """
    if q <= 0.0:
        return 0.0, 0.0, False
    tasks = math.ceil(q / W)
    head = q - W * (tasks - 1)
    best = None
    for m in range(tasks):  # m = tasks behind the head that are finished locally first
        size = head if m == 0 else W
        back = min(cap, size)
        local = head - back if m == 0 else head + m * W - back
        if local > local_max:
            break
        best = local, back, back == cap and back < size
    if best is None:
        return min(local_max, head), 0.0, False
    return best


def run_reference(P: Params, seeds: Sequence[int], blocks: int, per_device: bool = False) -> dict[str, np.ndarray]:
    """Run the ``proposed`` scheme seed by seed, block by block, WD by WD.

    Returns per-block series of shape (seeds, blocks) named as in the Dataset (see
    ``SERIES``); the block at which each learner converged or diverged (-1: never),
    ``alg1_converged_at`` (seeds, K), ``alg2_converged_at`` (seeds,) and the same for
    ``*_diverged_at``; and with ``per_device`` also ``wd_queue_k`` and ``tx_power_k`` (seeds, blocks, K).
    """
    if P.local_service != "mod_w" or P.gradient != "exact":
        raise ValueError("the reference loop implements local_service 'mod_w' with the exact gradient only")
    K, n, M, W, tau = P.K, P.n_slots, P.M, P.task_cycles, P.tau
    B, gap, zeta, p_max, f_max = P.bandwidth, P.snr_gap, P.zeta, P.p_max, P.f_ser_max
    local_max = math.floor(n * tau * P.f_wd_max)
    qs = W * P.queue_scale  # queues enter the features as q / (W queue_scale)
    out = {name: np.full((len(seeds), blocks), np.nan) for name in SERIES}
    for alg, shape in (("alg1", (len(seeds), K)), ("alg2", (len(seeds),))):
        out[f"{alg}_converged_at"] = np.full(shape, -1)
        out[f"{alg}_diverged_at"] = np.full(shape, -1)
    if per_device:
        out["wd_queue_k"] = np.zeros((len(seeds), blocks, K))
        out["tx_power_k"] = np.zeros((len(seeds), blocks, K))

    for si, seed in enumerate(seeds):
        # The drop and the feature vectors: one uniform and one normal per device, then mu and nu.
        u = _rng(seed, "positions").random(K).tolist()
        z = _rng(seed, "shadowing").standard_normal(K).tolist()
        mean_gain = []
        for uk, zk in zip(u, z, strict=True):
            d = math.sqrt(uk * (P.cell_radius**2 - P.min_distance**2) + P.min_distance**2)
            loss_db = P.pathloss_a + P.pathloss_b * math.log10(d) + P.shadowing_db * zk
            mean_gain.append(10.0 ** ((-loss_db - P.noise_dbw) / 10.0))
        mu = _rng(seed, "wd_features").standard_normal((K, M, n + 3)) * (P.feature_std / math.sqrt(n + 3))
        nu = _rng(seed, "server_features").standard_normal((M, n + K + 1)) * (P.feature_std / math.sqrt(n + K + 1))
        wds = [Learner(mu[k].tolist(), 1, [P.p_init], P) for k in range(K)]
        server = Learner(nu.tolist(), n, [P.f_ser_init] * n, P)
        inputs = _Inputs(P, seed, mean_gain)
        q = [0.0] * K
        q_ser = 0.0
        h, beta = inputs.block(0)
        for k in range(K):
            wds[k].observe([q[k] / qs, math.log10(h[k]) / 10.0, *beta[k]])
        server.observe([q_ser / qs] + [x / qs for x in q])

        for t in range(blocks):
            h_next, beta_next = inputs.block(t + 1)
            q_next = [0.0] * K
            sum_q = sum_e_loc = sum_e_off = sum_p = sum_td = sum_rel = sum_off = 0.0
            for k in range(K):
                wd = wds[k]
                p_cmd = wd.a[0] * p_max
                cap = math.floor(tau * B * math.log1p(h[k] * p_cmd / gap) / LN2 / zeta)  # (3), D / zeta
                local, off, follows = _partition(q[k], cap, W, local_max)
                p_tx = gap / h[k] * math.expm1(zeta * off / (tau * B) * LN2) if off > 0 else 0.0  # (4)
                f_loc = local / (n * tau)
                e_loc = n * tau * P.xi_wd * f_loc**3  # (2), equal rates in the n slots
                e_off = tau * p_tx  # (5)
                q_next[k] = max(q[k] - local - off, 0.0) + sum(beta[k]) * W  # (1), back end removed
                # r of (24) and its derivative in p / p_max: the sent power follows the command and
                # every offloaded cycle is one the CPU does not compute.
                r = P.w3 * q[k] + P.w4 * (e_loc + e_off)
                dr = 0.0
                if follows:
                    dcap = tau * B * (h[k] / gap) / ((1.0 + h[k] * p_cmd / gap) * LN2) / zeta
                    dr = P.w4 * p_max * (tau - 3.0 * P.xi_wd * f_loc**2 * dcap)
                s_next = [q_next[k] / qs, math.log10(h_next[k]) / 10.0, *beta_next[k]]
                td, rel = wd.learn(t, r, [dr], s_next)
                if per_device:
                    out["wd_queue_k"][si, t, k] = q[k]
                    out["tx_power_k"][si, t, k] = p_tx
                sum_q += q[k]
                sum_e_loc += e_loc
                sum_e_off += e_off
                sum_p += p_tx
                sum_td += td
                sum_rel += rel
                sum_off += off

            # Server: slots run FIFO at the commanded rates while work remains, (6)-(7).
            f_cmd = [a * f_max for a in server.a]
            served, done, cum = [], 0.0, 0.0
            for f in f_cmd:
                cum += f * tau
                now = min(cum, q_ser)
                served.append(now - done)
                done = now
            f_eff = [x / tau for x in served]
            e_ser = tau * P.xi_ser * sum(f**3 for f in f_eff)
            q_ser_next = max(q_ser - sum(served), 0.0) + sum_off
            # dr/df^_i: busy slots before the one where the queue runs dry (rate f_p) pay f_i^2 - f_p^2.
            active = [x >= f * tau - 0.5 and f > 0 for x, f in zip(served, f_cmd, strict=True)]
            f_p2 = sum(fe**2 for fe, act, x in zip(f_eff, active, served, strict=True) if not act and x > 0)
            dr_s = [
                3.0 * P.w2 * tau * P.xi_ser * (fe**2 - f_p2) * f_max if act else 0.0
                for fe, act in zip(f_eff, active, strict=True)
            ]
            r_ser = P.w1 * q_ser + P.w2 * e_ser
            td_s, rel_s = server.learn(t, r_ser, dr_s, [q_ser_next / qs] + [x / qs for x in q_next])

            row = {
                "cost": P.w1 * q_ser + P.w2 * e_ser + P.w3 * sum_q + P.w4 * (sum_e_loc + sum_e_off),  # (8)
                "wd_queue_mean": sum_q / K,
                "server_queue": q_ser,
                "energy_local": sum_e_loc,
                "energy_offload": sum_e_off,
                "energy_server": e_ser,
                "tx_power_mean": sum_p / K,
                "alg1_td_error": sum_td / K,
                "alg1_rel_change": sum_rel / K,
                "alg2_td_error": td_s,
                "alg2_rel_change": rel_s,
            }
            for name, value in row.items():
                out[name][si, t] = value
            q, q_ser, h, beta = q_next, q_ser_next, h_next, beta_next
        out["alg1_converged_at"][si] = [wd.converged_at for wd in wds]
        out["alg1_diverged_at"][si] = [wd.diverged_at for wd in wds]
        out["alg2_converged_at"][si] = server.converged_at
        out["alg2_diverged_at"][si] = server.diverged_at
    return out
