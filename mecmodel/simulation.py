"""The loop: one environment step per block for every seed and device, and the recording.

``simulate_arrays`` builds the environment (``mecmodel.env.MECEnv``) and the scheme's
two policies (``mecmodel.schemes``), runs ``act -> step -> update`` for every block, records
the per-block series and the per-seed summaries ((9a), long-run average, latency, work
conservation, learner convergence), and returns plain arrays (``mecmodel.dataset`` makes
the Dataset).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import engine
from .bounds import LagrangianWD
from .env import CHUNK, Action, ActionError, MECEnv, Observation, seed_list
from .params import FIELD_BY_NAME, ParamError, Params, PolicyError
from .policies.actor_critic import CriticDescentServer, CriticDescentWD
from .policies.base import PolicyContext, ServerPolicy, Transition, WDPolicy
from .policies.myopic import DriftPlusPenaltyServer, DriftPlusPenaltyWD, MyopicServer, MyopicWD
from .policies.qlearning import Algorithm1, Algorithm2, OnlineQ
from .policies.rules import EvenShare, FixedPower, FullSpeed, MinEnergy, RandomShare
from .schemes import get_scheme
from .vocabulary import DEVICE, NAME, POINT_DIMS, SERIES, VARIABLE_BY_NAME, Variable

log = logging.getLogger("mecmodel")
BUFFER_ROWS = 2**20  # a cap on the slack memory_estimate allows for the engine's per-chunk buffers


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


#: The table's learner series: the built-in variables a policy may declare in ``Policy.records``
#: (Algorithms 1 and 2 do); any other declared name must be new. ``LEARNERS``: what
#: ``Policy.summary`` may name.
LEARNER_SERIES = ("alg1_td_error", "alg1_rel_change", "alg2_td_error", "alg2_rel_change")
LEARNERS = ("alg1", "alg2")
SUMMARY = ("converged_fraction", "converged_block_median", "converged_block_max", "diverged_block")


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


def compiled_plan(wd: WDPolicy, server: ServerPolicy, P: Params) -> tuple | None:
    """How ``mecmodel.engine.run_blocks`` runs this pair of policies: (wd code, wd parameters,
    server code, server parameters, the sub-problem's table), or None if either is not a built-in
    the engine knows (a subclass is not: it may override anything), and the Python loop runs them."""
    wd_type, srv_type = type(wd), type(server)
    table = _no_table()
    if wd_type is LagrangianWD and wd.table is None:  # no tables: every WD computes locally, p = 0
        wd_plan = (engine.WD_FIXED, (0.0, 0.0, 0.0, 0.0))
    elif wd_type is LagrangianWD:
        wd_plan, table = (engine.WD_TABLE, (0.0, 0.0, 0.0, 0.0)), wd.table
    elif wd_type is FixedPower:
        wd_plan = (engine.WD_FIXED, (float(wd.fraction), 0.0, 0.0, 0.0))
    elif wd_type is EvenShare:
        wd_plan = (engine.WD_SHARE, (float(P.even_fraction), 0.0, 0.0, 0.0))
    elif wd_type is RandomShare:
        wd_plan = (engine.WD_RANDOM, (0.0, 0.0, 0.0, 0.0))
    elif wd_type in (Algorithm1, CriticDescentWD):
        wd_plan = (engine.WD_ALG1, (0.0, 0.0, 0.0, 0.0))
    elif wd_type is MyopicWD:
        wd_plan = (engine.WD_MYOPIC, (0.0, float(wd.grid), 0.0, float(wd.reading == "start")))
    elif wd_type is DriftPlusPenaltyWD:
        wd_plan = (engine.WD_DPP, (0.0, float(wd.grid), float(wd.V), 0.0))
    else:
        return None
    if srv_type is FullSpeed:
        srv_plan = (engine.SRV_FULL, (0.0,))
    elif srv_type is MinEnergy:
        srv_plan = (engine.SRV_RATE, (math.inf,))
    elif srv_type is MyopicServer:
        srv_plan = (engine.SRV_RATE, (float(server.best_rate()),))
    elif srv_type in (Algorithm2, CriticDescentServer):
        srv_plan = (engine.SRV_ALG2, (0.0,))
    elif srv_type is DriftPlusPenaltyServer:
        srv_plan = (engine.SRV_DPP, (float(server.V),))
    else:
        return None
    return wd_plan[0], np.array(wd_plan[1]), srv_plan[0], np.array(srv_plan[1]), table


def _no_learner() -> tuple:
    """Empty learner arrays, of the types run_blocks expects, for a scheme without that learner."""
    z3, z2, z1 = np.zeros((0, 1, 1)), np.zeros((0, 1)), np.zeros(0, dtype=np.int64)
    return (z3, z3, z2, z2, z2, z3, z1, z1, z1, np.zeros(0, dtype=np.bool_))


def _no_table() -> tuple:
    """run_blocks' ``table`` for a scheme without the sub-problem's policy: empty, of the types it expects."""
    f1, f2, i2 = np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64)
    return (f1, np.zeros((0, 0, 0)), 1.0, 1, 1, 0.0, f2, f2, f2, i2, f2, f2, i2, f1)


def _learner(policy) -> tuple:
    """(hyperparameters, flat arrays) of a policy's OnlineQ, or placeholders."""
    agent = getattr(policy, "agent", None)
    if isinstance(agent, OnlineQ):
        return agent.hyper(), agent.flat()
    return (0.0, 1.0, 1.0, 0.0, False, 0.0, 1, False, 0.0, False), _no_learner()


def declared_records(
    scheme: str, wd: WDPolicy, server: ServerPolicy, params: Sequence[str] = ()
) -> dict[str, tuple[str, Variable]]:
    """The variables a scheme's policies declare (``Policy.records``), checked: name -> (who, variable).

    A declared variable is new (not a name of ``mecmodel.vocabulary.VARIABLES``), or one of
    the table's learner series (``alg1_*``, ``alg2_*``, as Algorithms 1 and 2 declare theirs)."""
    out: dict[str, tuple[str, Variable]] = {}
    for who, policy in (("WD", wd), ("server", server)):
        where = f"scheme {scheme}: the {who} policy's {type(policy).__name__}.records"
        records = getattr(policy, "records", ())
        if not isinstance(records, (tuple, list)):
            raise PolicyError(f"{where}: must be a tuple of mecmodel.vocabulary.Variable, got {type(records).__name__}")
        for var in records:
            if not isinstance(var, Variable):
                raise PolicyError(f"{where}: must hold mecmodel.vocabulary.Variable, got {var!r}")
            if not re.fullmatch(NAME, var.name) or var.per not in ("block", "seed"):
                raise PolicyError(
                    f"{where}: {var.name!r}: a name is a letter then letters, digits or _, and per is 'block' or 'seed'"
                )
            if not isinstance(var.units, str) or not isinstance(var.long_name, str) or not var.long_name:
                raise PolicyError(f"{where}: {var.name}: units and long_name must be text (long_name not empty)")
            if var.name in VARIABLE_BY_NAME and (var.name not in LEARNER_SERIES or var != VARIABLE_BY_NAME[var.name]):
                raise PolicyError(f"{where}: {var.name}: a built-in variable of every run file; choose another name")
            if var.name in out or var.name in POINT_DIMS or var.name in ("seed", "block", "wd", "run", "model"):
                raise PolicyError(f"{where}: {var.name}: declared twice, or a coordinate's name")
            if var.name in FIELD_BY_NAME or var.name in params or var.name.startswith("diff_"):
                raise PolicyError(
                    f"{where}: {var.name}: the name of a parameter (a sweep would make it a coordinate) "
                    "or of a paired difference (diff_*); choose another name"
                )
            out[var.name] = (who, var)
    return out


def _mapping(scheme: str, who: str, policy, method: str, block: int | None, got: Any) -> None:
    """``update``, ``summary`` and ``finish`` return a dict (``{}`` when there is nothing)."""
    if not isinstance(got, Mapping):
        where = f" at block {block}" if block is not None else ""
        raise PolicyError(
            f"scheme {scheme}: the {who} policy's {type(policy).__name__}.{method} returned "
            f"{type(got).__name__}{where}; it must return a dict (name -> one value per seed), {{}} for none"
        )


def _recorded(scheme, who, policy, method, block, declared, per, name, value, S) -> np.ndarray:
    """A declared variable's (S,) values as recorded, or ``PolicyError`` naming what is wrong."""
    where = f"scheme {scheme}: the {who} policy's {type(policy).__name__}.{method} returned {name!r}"
    where += f" at block {block}" if block is not None else ""
    if name not in declared or declared[name][1].per != per:
        own = [n for n, (w, v) in declared.items() if w == who and v.per == per]
        raise PolicyError(
            f"{where}, which it does not declare per {per} in records (it declares: {', '.join(own) or 'none'})"
        )
    try:
        return np.broadcast_to(np.asarray(value, dtype=np.float64), (S,))
    except (TypeError, ValueError):
        raise PolicyError(f"{where}: must be one number per seed, an array of shape ({S},)") from None


def _failed(scheme: str, who: str, policy, method: str, block: int | None, error: Exception) -> PolicyError:
    where = f" at block {block}" if block is not None else ""
    text = str(error).splitlines()[0] if str(error) else ""
    return PolicyError(
        f"scheme {scheme}: the {who} policy's {type(policy).__name__}.{method} raised{where}: "
        f"{type(error).__name__}{': ' + text if text else ''}"
    )


class _SchemeRun:
    """A scheme's two policies in one run, every call into their code guarded (:meth:`_call`): an
    exception, or a value that breaks the policy's declarations, becomes one :class:`PolicyError`
    line naming the scheme, the policy (WD or server), the method and the block."""

    def __init__(self, scheme: str, sch, scheme_params: Mapping[str, Any], ctx: PolicyContext, obs, blocks: int):
        self.scheme, self.S = scheme, ctx.S
        try:
            self.wd, self.server = sch.policies(scheme_params)
        except ParamError:
            raise
        except Exception as e:
            raise PolicyError(f"scheme {scheme}: making its policies raised: {type(e).__name__}: {e}") from e
        self.pair = (("WD", self.wd), ("server", self.server))
        for who, policy in self.pair:
            # a ParamError is a policy refusing the model (the exact optimum at K > 2): left as it is
            self._call(who, policy, "reset", None, ctx, obs, passthrough=ParamError)
        self.declared = declared_records(scheme, self.wd, self.server, list(sch.params))
        # Where update()'s values go: the table's learner series are rows of the records, the
        # policies' own per-block variables rows of ``own``.
        own = [n for n, (_, v) in self.declared.items() if v.per == "block" and n not in SERIES]
        self.own_rows = {name: i for i, name in enumerate(own)}
        self.own = np.full((len(own), self.S, blocks), np.nan)
        self.rec_rows = {name: SERIES.index(name) for name in self.declared if name in SERIES}

    def _call(self, who: str, policy, method: str, block: int | None, *args, passthrough=()):
        try:
            return getattr(policy, method)(*args)
        except passthrough:
            raise
        except Exception as e:
            raise _failed(self.scheme, who, policy, method, block, e) from e

    def _values(self, who: str, policy, method: str, block: int | None, per: str, *args) -> dict[str, np.ndarray]:
        """A policy's declared variables as ``update`` (per block) or ``finish`` (per seed) returns them."""
        got = self._call(who, policy, method, block, *args)
        _mapping(self.scheme, who, policy, method, block, got)
        return {
            name: _recorded(self.scheme, who, policy, method, block, self.declared, per, name, value, self.S)
            for name, value in got.items()
        }

    def act(self, obs: Observation, t: int) -> Action:
        p, f_ser = (self._call(who, policy, "act", t, obs) for who, policy in self.pair)
        return Action(p, f_ser, self.wd.whole_task)

    def update(self, tr: Transition, t: int, rec: np.ndarray) -> None:
        for who, policy in self.pair:
            for name, row in self._values(who, policy, "update", t, "block", tr).items():
                if name in self.own_rows:
                    self.own[self.own_rows[name], :, t] = row
                else:
                    rec[self.rec_rows[name], :, t] = row

    def finish(self) -> tuple[dict, dict]:
        """The learners' summaries, and the policies' own variables with their declarations."""
        summaries, finished = {}, {}
        for who, policy in reversed(self.pair):
            got = self._call(who, policy, "summary", None)
            _mapping(self.scheme, who, policy, "summary", None, got)
            summaries.update(got)
            finished.update(self._values(who, policy, "finish", None, "seed"))
        missing = [n for n, (_, v) in self.declared.items() if v.per == "seed" and n not in finished]
        if missing:
            raise PolicyError(
                f"scheme {self.scheme}: {', '.join(missing)}: declared per seed, but finish() did not return it"
            )
        records = {name: (self.declared[name][1], self.own[row]) for name, row in self.own_rows.items()}
        records.update({name: (self.declared[name][1], value) for name, value in finished.items()})
        return summaries, records


def _compiled_loop(env, ctx, wd, server, plan, blocks, start, rec, dev, work, bar) -> Observation:
    """A built-in scheme's whole run in the compiled engine, a chunk of blocks per call; returns
    the observation after the last block."""
    P, S, K = env.P, ctx.S, env.P.K
    wd_code, wd_par, srv_code, srv_par, table = plan
    hp1, l1 = _learner(wd)
    hp2, l2 = _learner(server)
    qscale = 1.0 / (P.task_cycles * P.queue_scale)
    q, q_ser = np.array(env.obs.q), np.array(env.obs.q_ser)
    draws = np.zeros((CHUNK, S, K))
    rngs = ctx.rngs("policy") if wd_code == engine.WD_RANDOM else []
    binary = bool(wd.whole_task)
    for t0 in range(0, blocks, CHUNK):
        t1 = min(t0 + CHUNK, blocks)
        c = t0 // CHUNK
        h, beta = env.exo._chunk(c)
        h_after, beta_after = env.exo._chunk(c + 1)  # the block after a full chunk
        if rngs:  # RandomShare's draws: one (CHUNK, K) block per seed and chunk, as it draws them
            draws = np.stack([g.random((CHUNK, K)) for g in rngs], axis=1)
        engine.run_blocks(
            t0, t1, h, beta, h_after, beta_after, draws, q, q_ser, env.scalars, env.rule, binary, start, wd_code, wd_par,
            srv_code, srv_par, qscale, P.gradient == "printed", hp1, l1, hp2, l2, table, rec, dev, work,
        )  # fmt: skip
        if bar is not None:
            bar.update(t1 - t0)
    h_end, beta_end = env.exo.at(blocks)
    return Observation(blocks, q, h_end, beta_end, q_ser)


def simulate_arrays(
    P: Params,
    scheme: str,
    seeds: int | Sequence[int],
    blocks: int,
    per_device: bool = False,
    progress: bool = False,
    scheme_params: Mapping[str, Any] | None = None,
    python_loop: bool = False,
) -> dict:
    """Run the model and return plain arrays (see ``mecmodel.simulate`` for the Dataset).

    ``scheme_params`` sets parameters the scheme declares (``Scheme.params``, e.g. dpp's V).
    Built-in schemes run whole chunks of blocks in the compiled engine
    (``mecmodel.engine.run_blocks``); other policies run block by block through their
    ``act``/``update`` methods around the compiled step. ``python_loop`` forces the latter (the
    same bits for a built-in scheme: ``tests/test_engine.py``)."""
    sch = get_scheme(scheme)
    seeds = check_run(P, seeds, blocks, per_device)
    S, K = len(seeds), P.K

    env = MECEnv(P, seeds)
    obs = env.reset()
    ctx = PolicyContext(P, tuple(seeds), env)
    scheme_params = sch.param_values(scheme_params)
    run = _SchemeRun(scheme, sch, scheme_params, ctx, obs, blocks)
    wd, server = run.wd, run.server

    rec = np.full((len(SERIES), S, blocks), np.nan)
    dev = np.zeros((len(DEVICE), S, blocks if per_device else 0, K))
    work = np.zeros((len(engine.WORK), S))
    # Long-run averages are taken over blocks >= start, the last average_fraction of the run.
    start = blocks - max(1, int(round(P.average_fraction * blocks)))
    env.record_into(rec, dev, work, start)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=blocks, desc=f"{scheme} K={K}", unit="block", leave=False)
    plan = None if python_loop else compiled_plan(wd, server, P)
    if plan is not None:
        obs = _compiled_loop(env, ctx, wd, server, plan, blocks, start, rec, dev, work, bar)
    else:
        for t in range(blocks):
            try:
                next_obs, terms, info = env.step(run.act(obs, t))
            except ActionError as e:
                raise PolicyError(f"scheme {scheme}: {e}") from None
            # Learning (a no-op for fixed rules): (24)-(28) at the WDs, (31)-(35) at the server.
            run.update(Transition(obs, info.action, terms, info, next_obs), t, rec)  # the action as applied
            obs = next_obs
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    series = dict(zip(SERIES, rec, strict=True))
    devices = dict(zip(DEVICE, dev, strict=True)) if per_device else {}
    summaries, records = run.finish()

    # --- summaries per seed ---
    # Every summary is a per-seed loop in a fixed order (mecmodel.engine): a seed's bits do not
    # depend on the other seeds of the run.
    W, tau, rec = P.task_cycles, P.tau, series
    rate = K * P.arrival_prob / tau  # tasks per second offered
    sums = np.empty((2, S))
    # (9a); where gamma^t underflowed to 0 the term is 0, even if that block's cost overflowed.
    engine.summaries(rec["cost"], P.gamma ** np.arange(blocks, dtype=float), start, sums)
    in_system = (rec["wd_queue_mean"] * K + rec["server_queue"]) / W
    energy_wd = (rec["energy_local"] + rec["energy_offload"]) / K
    served = work[4] + work[5]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(served > 0, work[5] / served, np.nan)
    out = {
        "series": series,
        "device": devices,
        "seeds": seeds,
        "discounted_cost": sums[0],
        "average_cost": sums[1],
        "latency": engine.window_mean(in_system, start) / rate,
        "average_from": start,
        # What MEC papers report, over the same window (mecmodel.vocabulary.VARIABLES; docs/model.md, note L).
        "metrics": {
            "mean_queue_wd": engine.window_mean(rec["wd_queue_mean"], start) / W,
            "mean_queue_server": engine.window_mean(rec["server_queue"], start) / W,
            "mean_energy_wd": engine.window_mean(energy_wd, start),
            "mean_energy_server": engine.window_mean(rec["energy_server"], start),
            "mean_energy": engine.window_mean(energy_wd * K + rec["energy_server"], start),
            "offloaded_share": share,
        },
        "work": {
            "arrived": work[0],
            "local": work[1],
            "server": work[2],
            "offloaded": work[3],
            "queued": obs.q.sum(axis=1) + obs.q_ser,  # integer cycles: exact in any order
        },  # fmt: skip
        "mean_gain": env.mean_gain,
        "distance": env.distance,
        "agents": summaries,
        "records": records,
        "scheme_params": scheme_params,
    }
    unknown = set(out["agents"]) - set(LEARNERS)
    if unknown:
        raise PolicyError(
            f"scheme {scheme}: a policy's summary names {sorted(unknown)}; it may name {', '.join(LEARNERS)} "
            "(a variable of your own: declare it in records and return it from finish())"
        )
    for name, summary in out["agents"].items():
        missing = set(SUMMARY) - set(summary)
        if missing:
            raise PolicyError(
                f"scheme {scheme}: a policy's summary of {name} lacks {sorted(missing)}; it needs {', '.join(SUMMARY)}"
            )
    for name, summary in out["agents"].items():
        for s, b in zip(seeds, summary["diverged_block"], strict=True):
            if b >= 0:
                log.warning("%s diverged in seed %d at block %d (scheme %s, K=%d)", name, s, b, scheme, K)
    return out
