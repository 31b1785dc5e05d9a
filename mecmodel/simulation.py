"""The simulation loop: one numpy step per block advances every WD of every seed.

Randomness uses separate streams per component, derived from
``SeedSequence(seed).spawn`` keys, so that for a given seed every scheme sees the same
user positions, shadowing, fading and arrivals (common random numbers), and a seed's
results do not depend on which other seeds run beside it, up to the last bits of float64:
numpy's einsum can round the same row differently when it sits at another address (seen
at K = 100 with 10 seeds, about 1e-14 relative after a few blocks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from . import channel, queues
from .params import ParamError, Params
from .schemes import Context, get_scheme

log = logging.getLogger("mecmodel")

# Stream keys of SeedSequence(seed, spawn_key=(key,)).
STREAMS = {
    "positions": 0,
    "shadowing": 1,
    "fading": 2,
    "arrivals": 3,
    "wd_features": 4,
    "server_features": 5,
    "policy": 6,
}
CHUNK = 128  # blocks of fading and arrivals drawn at a time


def stream(seed: int, name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(STREAMS[name],))))


SEED_MAX = 2**63


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """Seed labels of a run: an int n means seeds 0..n-1, a sequence lists them.

    Seeds are stored as an int64 coordinate, so each must be an integer in [0, 2**63).
    """

    def is_int(x: object) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))

    if is_int(seeds):
        if not 1 <= seeds < SEED_MAX:
            raise ParamError(f"seeds: must be an integer >= 1 (how many seeds) and < 2**63, got {seeds}")
        return list(range(int(seeds)))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence | np.ndarray):
        raise ParamError(
            f"seeds: must be a count >= 1 or a list of distinct integers in [0, 2**63), "
            f"got {type(seeds).__name__} {seeds!r}"
        )
    bad = [s for s in seeds if not is_int(s) or not 0 <= s < SEED_MAX]
    if bad:
        raise ParamError(f"seeds: each seed must be an integer in [0, 2**63), got {bad[0]!r}")
    out = [int(s) for s in seeds]
    if not out:
        raise ParamError("seeds: must list at least one seed")
    if len(set(out)) != len(out):
        raise ParamError(f"seeds: must be distinct integers >= 0, got {out}")
    return out


def memory_estimate(P: Params, n_seeds: int, blocks: int, per_device: bool) -> int:
    """Bytes the run will hold at its peak (feature vectors, state, chunks, records)."""
    S, K, M, n = n_seeds, P.K, P.M, P.n_slots
    mu = S * K * M * (n + 3) * 8
    nu = S * M * (n + K + 2) * 8
    work = 12 * S * K * M * 8 + 2 * CHUNK * S * K * (n + 2) * 8
    records = 24 * S * blocks * 8 + (4 * S * blocks * K * 8 if per_device else 0)
    return mu + nu + work + records


def _memory_limit() -> int:
    env = os.environ.get("MECMODEL_MAX_MEMORY_GB")
    if env:
        return int(float(env) * 2**30)
    try:
        return int(0.6 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


class Exogenous:
    """Fading gains and arrivals, drawn per seed in chunks of blocks (outside the hot step)."""

    def __init__(self, seeds: list[int], P: Params, mean_gain: np.ndarray):
        self.P, self.mean_gain = P, mean_gain
        self.fade_rngs = [stream(s, "fading") for s in seeds]
        self.arr_rngs = [stream(s, "arrivals") for s in seeds]
        self.chunks: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _chunk(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        if c not in self.chunks:
            K, n, lam = self.P.K, self.P.n_slots, self.P.arrival_prob
            fade = np.stack([g.standard_exponential((CHUNK, K)) for g in self.fade_rngs], axis=1)
            arr = np.stack([g.random((CHUNK, K, n)) < lam for g in self.arr_rngs], axis=1)
            self.chunks = {k: v for k, v in self.chunks.items() if k >= c - 1}
            self.chunks[c] = (fade * self.mean_gain, arr.astype(float))
        return self.chunks[c]

    def at(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(h (S, K) normalised gain, beta (S, K, n) arrivals) of block t."""
        h, b = self._chunk(t // CHUNK)
        return h[t % CHUNK], b[t % CHUNK]


def _row_nanmedian(a: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a).any(axis=1)
    out = np.full(a.shape[0], np.nan)
    if ok.any():
        out[ok] = np.nanmedian(a[ok], axis=1)
    return out


def simulate_arrays(
    P: Params, scheme: str, seeds: int | Sequence[int], blocks: int, per_device: bool = False, progress: bool = False
) -> dict:
    """Run the model and return plain arrays (see :func:`mecmodel.simulate` for the Dataset)."""
    sch = get_scheme(scheme)
    seeds = seed_list(seeds)
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or blocks < 1:
        raise ParamError(f"blocks: must be an integer >= 1, got {blocks!r}")
    need, limit = memory_estimate(P, len(seeds), blocks, per_device), _memory_limit()
    if need > limit:
        raise ParamError(
            f"K: a run with K={P.K}, {len(seeds)} seeds, {blocks} blocks needs about {need / 2**30:.1f} GiB, "
            f"more than the {limit / 2**30:.1f} GiB allowed (set MECMODEL_MAX_MEMORY_GB to change); "
            "use fewer devices or seeds"
        )
    S, K, n, M, W, tau = len(seeds), P.K, P.n_slots, P.M, P.task_cycles, P.tau
    exact = P.gradient == "exact"

    # Drop, shadowing and feature vectors: fixed for the run, one stream each.
    dist = np.stack([channel.drop_users(stream(s, "positions"), K, P.cell_radius, P.min_distance) for s in seeds])
    shadow = np.stack([stream(s, "shadowing").standard_normal(K) for s in seeds])
    mean_gain = channel.large_scale_gain(dist, shadow, P.pathloss_a, P.pathloss_b, P.shadowing_db, P.noise_dbw)
    d_wd, d_ser = n + 3, n + K + 1
    mu = np.stack([stream(s, "wd_features").standard_normal((K, M, d_wd)) for s in seeds]) * (
        P.feature_std / np.sqrt(d_wd)
    )
    nu = np.stack([stream(s, "server_features").standard_normal((M, d_ser)) for s in seeds]) * (
        P.feature_std / np.sqrt(d_ser)
    )
    ctx = Context(P, S, K, [stream(s, "policy") for s in seeds], mu, nu)
    wd, server = sch.wd(), sch.server()
    wd.setup(ctx)
    server.setup(ctx)
    exo = Exogenous(seeds, P, mean_gain)

    qscale = 1.0 / (W * P.queue_scale)

    def wd_state(q, h, beta):
        return np.concatenate([(q * qscale)[..., None], (np.log10(h) * 0.1)[..., None], beta], axis=-1)

    def server_state(q_ser, q):
        return np.concatenate([(q_ser * qscale)[:, None], q * qscale], axis=-1)

    q = np.zeros((S, K))
    q_ser = np.zeros(S)
    local_max = np.floor(n * tau * P.f_wd_max)
    gammas = P.gamma ** np.arange(blocks, dtype=float)

    names = [
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
    rec = {k: np.full((S, blocks), np.nan) for k in names}
    dev = (
        {k: np.zeros((S, blocks, K)) for k in ("wd_queue_k", "tx_power_k", "local_rate_k", "offloaded_k")}
        if per_device
        else {}
    )
    work = {k: np.zeros(S) for k in ("arrived", "local", "server", "offloaded")}

    h, beta = exo.at(0)
    if wd.learns:
        wd.agent.observe(wd_state(q, h, beta))
    server.agent.observe(server_state(q_ser, q))

    steps = range(blocks)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"{scheme} K={K}", unit="block", leave=False)
    for t in steps:
        # --- actions ---
        p_cmd = wd.power(t, h)
        f_cmd = server.rates(t)
        # --- WDs: partition (3)-(4), local computing (2), offloading (5) ---
        cap = channel.bits_per_slot(h, p_cmd, P.bandwidth, P.snr_gap, tau) / P.zeta
        svc = queues.wd_service(q, cap, W, local_max, P.local_service, wd.binary)
        p_tx = np.where(
            svc.offload > 0, channel.power_for_bits(h, P.zeta * svc.offload, P.bandwidth, P.snr_gap, tau), 0.0
        )
        e_loc = queues.local_energy(svc.local, n, tau, P.xi_wd)
        e_off = queues.offload_energy(p_tx, tau)
        # --- server (6)-(7), one block behind ---
        served, f_eff = queues.server_service(q_ser, f_cmd, tau)
        e_ser = queues.server_energy(f_eff, tau, P.xi_ser)
        terms = queues.cost_terms(q_ser, e_ser, q, e_loc + e_off, P.w1, P.w2, P.w3, P.w4)
        arrivals = beta.sum(axis=-1)
        local_sum, off_sum = svc.local.sum(axis=1), svc.offload.sum(axis=1)

        # Means as sum / count: what ndarray.mean computes, bit for bit, without its overhead.
        rec["cost"][:, t] = terms.total
        rec["cost_server_queue"][:, t] = terms.server_queue
        rec["cost_server_energy"][:, t] = terms.server_energy
        rec["cost_wd_queue"][:, t] = terms.wd_queue
        rec["cost_wd_energy"][:, t] = terms.wd_energy
        rec["wd_queue_mean"][:, t] = q.sum(axis=1) / K
        rec["wd_queue_max"][:, t] = q.max(axis=1)
        rec["server_queue"][:, t] = q_ser
        rec["energy_local"][:, t] = e_loc.sum(axis=1)
        rec["energy_offload"][:, t] = e_off.sum(axis=1)
        rec["energy_server"][:, t] = e_ser
        rec["tx_power_mean"][:, t] = p_tx.sum(axis=1) / K
        done = local_sum + off_sum
        with np.errstate(invalid="ignore", divide="ignore"):
            rec["offloaded_fraction"][:, t] = np.where(done > 0, off_sum / done, np.nan)
        rec["server_rate_mean"][:, t] = f_eff.sum(axis=1) / n
        if per_device:
            dev["wd_queue_k"][:, t] = q
            dev["tx_power_k"][:, t] = p_tx
            dev["local_rate_k"][:, t] = svc.local / (n * tau)
            dev["offloaded_k"][:, t] = svc.offload
        work["arrived"] += arrivals.sum(axis=1) * W
        work["local"] += local_sum
        work["server"] += served.sum(axis=1)
        work["offloaded"] += off_sum

        # --- transition (1), (6) ---
        q_next = queues.wd_queue_next(q, svc, arrivals, W)
        q_ser_next = queues.server_queue_next(q_ser, served, svc.offload)
        h_next, beta_next = exo.at(t + 1)

        # --- learning: (24)-(28) at the WDs, (31)-(35) at the server ---
        if wd.learns:
            r_wd = P.w3 * q + P.w4 * (e_loc + e_off)  # r_{k,t} of (24)
            if exact:
                dcap = channel.dbits_dp(h, p_cmd, P.bandwidth, P.snr_gap, tau) / P.zeta
                f_loc = svc.local / (n * tau)
                # dr/dp^ = w4 p_max [tau dp/dp + 3 xi f^2 (dL/dR) dR/dp] where the offload tracks p.
                dr = P.w4 * P.p_max * svc.uncapped * (tau + 3.0 * P.xi_wd * f_loc**2 * svc.dlocal_doff * dcap)
            else:
                dr = np.full((S, K), P.w4 * tau * P.p_max)  # (26) as printed
            td, rel = wd.agent.learn(t, r_wd, dr[..., None], wd_state(q_next, h_next, beta_next))
            rec["alg1_td_error"][:, t] = td.sum(axis=1) / K
            rec["alg1_rel_change"][:, t] = rel.sum(axis=1) / K
        r_ser = P.w1 * q_ser + P.w2 * e_ser  # r_t of (31)
        if exact:
            # Slots run at f_i until the queue runs dry inside a "partial" slot p, whose rate is
            # the remainder: f_p = (q - sum_{i<p} f_i tau) / tau. Raising an active f_i moves work
            # out of slot p, so dE/df_i = 3 tau xi (f_i^2 - f_p^2); f_p itself does not depend on f_p.
            active = (served >= f_cmd * tau - 0.5) & (f_cmd > 0)
            partial = ~active & (served > 0)
            f_p2 = np.sum(np.where(partial, f_eff**2, 0.0), axis=-1, keepdims=True)
            dr_s = 3.0 * P.w2 * tau * P.xi_ser * (f_eff**2 - f_p2) * P.f_ser_max * active
        else:
            dr_s = 3.0 * P.w2 * tau * P.xi_ser * f_cmd**2 * P.f_ser_max  # (33) as printed
        td_s, rel_s = server.agent.learn(t, r_ser, dr_s, server_state(q_ser_next, q_next))
        rec["alg2_td_error"][:, t] = td_s
        rec["alg2_rel_change"][:, t] = rel_s

        q, q_ser, h, beta = q_next, q_ser_next, h_next, beta_next

    # --- summaries per seed ---
    start = blocks - max(1, int(round(P.average_fraction * blocks)))
    rate = K * P.arrival_prob / tau  # tasks per second offered
    in_system = (rec["wd_queue_mean"][:, start:] * K + rec["server_queue"][:, start:]) / W
    out = {
        "series": rec,
        "device": dev,
        "seeds": seeds,
        # (9a); where gamma^t underflowed to 0 the term is 0, even if that block's cost overflowed.
        "discounted_cost": np.where(gammas > 0, rec["cost"] * gammas, 0.0).sum(axis=1),
        "average_cost": rec["cost"][:, start:].mean(axis=1),
        "latency": in_system.mean(axis=1) / rate,
        "average_from": start,
        "work": {**work, "queued": q.sum(axis=1) + q_ser},
        "mean_gain": mean_gain,
        "distance": dist,
    }
    agents = {"alg2": server.agent}
    if wd.learns:
        agents["alg1"] = wd.agent
    out["agents"] = {}
    for name, ag in agents.items():
        conv = ag.converged_at.reshape(S, -1).astype(float)
        conv[conv < 0] = np.nan
        div = ag.diverged_at.reshape(S, -1)
        div_block = np.where((div >= 0).any(axis=1), np.where(div >= 0, div, blocks).min(axis=1), -1)
        out["agents"][name] = {
            "converged_fraction": np.isfinite(conv).mean(axis=1),
            "converged_block_median": _row_nanmedian(conv),
            "converged_block_max": np.where(
                np.isfinite(conv).all(axis=1), np.nanmax(np.nan_to_num(conv, nan=-1), axis=1), np.nan
            ),
            "diverged_block": div_block,
        }
        for s, b in zip(seeds, div_block, strict=True):
            if b >= 0:
                log.warning("%s diverged in seed %d at block %d (scheme %s, K=%d)", name, s, b, scheme, K)
    return out
