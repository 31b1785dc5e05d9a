"""The loop: one environment step per block for every seed and device, and the recording.

:func:`simulate_arrays` builds the environment (:class:`mecmodel.env.MECEnv`) and the scheme's
two policies (:mod:`mecmodel.schemes`), runs ``act -> step -> update`` for every block, records
the per-block series and the per-seed summaries ((9a), long-run average, latency, work
conservation, learner convergence), and returns plain arrays (:mod:`mecmodel.dataset` makes
the Dataset).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .env import CHUNK, Action, MECEnv, seed_list
from .params import ParamError, Params
from .policies.base import PolicyContext, Transition
from .schemes import get_scheme

log = logging.getLogger("mecmodel")
BUFFER_ROWS = 2**20  # device-blocks the loop buffers before it reduces them (7 arrays of this many floats)


def memory_estimate(P: Params, n_seeds: int, blocks: int, per_device: bool) -> int:
    """Bytes the run will hold at its peak (feature vectors, state, chunks, records)."""
    S, K, M, n = n_seeds, P.K, P.M, P.n_slots
    mu = S * K * M * (n + 3) * 8
    nu = S * M * (n + K + 2) * 8
    work = 12 * S * K * M * 8 + 2 * CHUNK * S * K * (n + 2) * 8 + 7 * min(CHUNK * S * K, BUFFER_ROWS) * 8
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


#: Per-block series of every run (see mecmodel.dataset.SERIES for units and meanings).
SERIES = (
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
)
DEVICE = ("wd_queue_k", "tx_power_k", "local_rate_k", "offloaded_k")
#: What Policy.update may return (per-seed diagnostics) and Policy.summary may name.
LEARNER_SERIES = ("alg1_td_error", "alg1_rel_change", "alg2_td_error", "alg2_rel_change")
LEARNERS = ("alg1", "alg2")
SUMMARY = ("converged_fraction", "converged_block_median", "converged_block_max", "diverged_block")


def _fold(acc: np.ndarray, rows: np.ndarray) -> None:
    """acc += rows[0]; acc += rows[1]; ... in one call (a left fold, so the same bits)."""
    if len(rows):
        acc[...] = np.add.accumulate(np.concatenate([acc[None], rows]), axis=0)[-1]


def check_run(P: Params, seeds: int | Sequence[int], blocks: int, per_device: bool = False) -> list[int]:
    """Validate the run's size before any work: the seed list, blocks, and the memory it needs."""
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
    return seeds


def simulate_arrays(
    P: Params,
    scheme: str,
    seeds: int | Sequence[int],
    blocks: int,
    per_device: bool = False,
    progress: bool = False,
    scheme_params: Mapping[str, Any] | None = None,
) -> dict:
    """Run the model and return plain arrays (see :func:`mecmodel.simulate` for the Dataset).

    ``scheme_params`` sets parameters the scheme declares (``Scheme.params``, e.g. dpp's V)."""
    sch = get_scheme(scheme)
    seeds = check_run(P, seeds, blocks, per_device)
    S, K, n, W, tau = len(seeds), P.K, P.n_slots, P.task_cycles, P.tau

    env = MECEnv(P, seeds)
    obs = env.reset()
    ctx = PolicyContext(P, tuple(seeds), env)
    scheme_params = sch.param_values(scheme_params)
    wd, server = sch.policies(scheme_params)
    wd.reset(ctx, obs)
    server.reset(ctx, obs)
    gammas = P.gamma ** np.arange(blocks, dtype=float)

    rec = {k: np.full((S, blocks), np.nan) for k in SERIES}
    dev = {k: np.zeros((S, blocks, K)) for k in DEVICE} if per_device else {}
    work = {k: np.zeros(S) for k in ("arrived", "local", "server", "offloaded")}
    # Long-run averages are taken over blocks >= start, the last average_fraction of the run.
    start = blocks - max(1, int(round(P.average_fraction * blocks)))
    window = {k: np.zeros(S) for k in ("local", "offloaded")}

    # Per-block values go into chunk buffers and are reduced a chunk at a time: one reduction per
    # chunk instead of one per block, the same arithmetic on the same rows, so the same bits.
    C = max(1, min(CHUNK, blocks, BUFFER_ROWS // (S * K)))
    per_seed = np.empty((6, C, S))  # the four cost terms (8), q^ser, E^ser
    per_wd = np.empty((7, C, S, K))  # q, E^wd, E^off, p, local, offloaded, arrivals
    per_slot = np.empty((2, C, S, n))  # effective server rates, cycles served
    # One view per buffered quantity: a block's row is then one integer index away.
    b_sq, b_se, b_wq, b_we, b_qs, b_es = per_seed
    b_q, b_el, b_eo, b_p, b_loc, b_off, b_arr = per_wd
    b_fe, b_sv = per_slot

    def flush(t1: int) -> None:
        """Reduce the buffered blocks t0 .. t1 - 1 into the records."""
        c = t1 - t0
        sq, se, wq, we, qs, es = per_seed[:, :c]
        q, e_loc, e_off, p_tx, local, off, arr = per_wd[:, :c]
        rec["cost"][:, t0:t1] = (sq + se + wq + we).T  # CostTerms.total
        rec["cost_server_queue"][:, t0:t1] = sq.T
        rec["cost_server_energy"][:, t0:t1] = se.T
        rec["cost_wd_queue"][:, t0:t1] = wq.T
        rec["cost_wd_energy"][:, t0:t1] = we.T
        # Means as sum / count: what ndarray.mean computes, bit for bit, without its overhead.
        rec["wd_queue_mean"][:, t0:t1] = (q.sum(axis=-1) / K).T
        rec["wd_queue_max"][:, t0:t1] = q.max(axis=-1).T
        rec["server_queue"][:, t0:t1] = qs.T
        rec["energy_local"][:, t0:t1] = e_loc.sum(axis=-1).T
        rec["energy_offload"][:, t0:t1] = e_off.sum(axis=-1).T
        rec["energy_server"][:, t0:t1] = es.T
        rec["tx_power_mean"][:, t0:t1] = (p_tx.sum(axis=-1) / K).T
        local_sum, off_sum = local.sum(axis=-1), off.sum(axis=-1)
        done = local_sum + off_sum
        with np.errstate(invalid="ignore", divide="ignore"):
            rec["offloaded_fraction"][:, t0:t1] = np.where(done > 0, off_sum / done, np.nan).T
        rec["server_rate_mean"][:, t0:t1] = (b_fe[:c].sum(axis=-1) / n).T
        # Block by block, in order (np.add.accumulate is a left fold): the same sums as adding each
        # block's totals as it ends, whatever the chunk length.
        _fold(work["arrived"], arr.sum(axis=-1) * W)
        _fold(work["local"], local_sum)
        _fold(work["server"], b_sv[:c].sum(axis=-1))
        _fold(work["offloaded"], off_sum)
        first = max(start - t0, 0)
        _fold(window["local"], local_sum[first:])
        _fold(window["offloaded"], off_sum[first:])

    steps = range(blocks)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"{scheme} K={K}", unit="block", leave=False)
    t0 = 0
    for t in steps:
        action = Action(wd.act(obs), server.act(obs), wd.whole_task)
        next_obs, terms, info = env.step(action)
        svc, i = info.service, t - t0
        b_sq[i], b_se[i], b_wq[i], b_we[i] = terms
        b_qs[i] = obs.q_ser
        b_es[i] = info.e_server
        b_q[i] = obs.q
        b_el[i] = info.e_local
        b_eo[i] = info.e_offload
        b_p[i] = info.p_tx
        b_loc[i] = svc.local
        b_off[i] = svc.offload
        b_arr[i] = info.arrivals
        b_fe[i] = info.f_eff
        b_sv[i] = info.served
        if per_device:
            dev["wd_queue_k"][:, t] = obs.q
            dev["tx_power_k"][:, t] = info.p_tx
            dev["local_rate_k"][:, t] = svc.local / (n * tau)
            dev["offloaded_k"][:, t] = svc.offload

        # Learning (a no-op for fixed rules): (24)-(28) at the WDs, (31)-(35) at the server.
        tr = Transition(obs, info.action, terms, info, next_obs)  # the action as applied (clipped)
        for policy in (wd, server):
            for name, value in policy.update(tr).items():
                if name not in LEARNER_SERIES:
                    raise ValueError(
                        f"{type(policy).__name__}.update returned {name!r}; it may return {', '.join(LEARNER_SERIES)}"
                    )
                rec[name][:, t] = value
        obs = next_obs
        if i == C - 1:
            flush(t + 1)
            t0 = t + 1
    if t0 < blocks:
        flush(blocks)

    # --- summaries per seed ---
    rate = K * P.arrival_prob / tau  # tasks per second offered
    in_system = (rec["wd_queue_mean"][:, start:] * K + rec["server_queue"][:, start:]) / W
    energy_wd = (rec["energy_local"][:, start:] + rec["energy_offload"][:, start:]) / K
    served = window["local"] + window["offloaded"]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(served > 0, window["offloaded"] / served, np.nan)
    out = {
        "series": rec,
        "device": dev,
        "seeds": seeds,
        # (9a); where gamma^t underflowed to 0 the term is 0, even if that block's cost overflowed.
        "discounted_cost": np.where(gammas > 0, rec["cost"] * gammas, 0.0).sum(axis=1),
        "average_cost": rec["cost"][:, start:].mean(axis=1),
        "latency": in_system.mean(axis=1) / rate,
        "average_from": start,
        # What MEC papers report, over the same window (mecmodel.dataset.METRICS; docs/model.md, note L).
        "metrics": {
            "mean_queue_wd": rec["wd_queue_mean"][:, start:].mean(axis=1) / W,
            "mean_queue_server": rec["server_queue"][:, start:].mean(axis=1) / W,
            "mean_energy_wd": energy_wd.mean(axis=1),
            "mean_energy_server": rec["energy_server"][:, start:].mean(axis=1),
            "mean_energy": (energy_wd * K + rec["energy_server"][:, start:]).mean(axis=1),
            "offloaded_share": share,
        },
        "work": {**work, "queued": obs.q.sum(axis=1) + obs.q_ser},
        "mean_gain": env.mean_gain,
        "distance": env.distance,
        "agents": {**server.summary(), **wd.summary()},
        "scheme_params": scheme_params,
    }
    unknown = set(out["agents"]) - set(LEARNERS)
    if unknown:
        raise ValueError(f"a policy's summary names {sorted(unknown)}; it may name {', '.join(LEARNERS)}")
    for name, summary in out["agents"].items():
        missing = set(SUMMARY) - set(summary)
        if missing:
            raise ValueError(f"a policy's summary of {name} lacks {sorted(missing)}; it needs {', '.join(SUMMARY)}")
    for name, summary in out["agents"].items():
        for s, b in zip(seeds, summary["diverged_block"], strict=True):
            if b >= 0:
                log.warning("%s diverged in seed %d at block %d (scheme %s, K=%d)", name, s, b, scheme, K)
    return out
