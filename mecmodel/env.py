"""The environment: the MEC system of section II, vectorised over (seed, device).

``MECEnv`` owns the physics and the random streams and nothing of the learners, in the
shape of a Gymnasium / PettingZoo-parallel environment::

    env = MECEnv(P, seeds=[0, 1])
    obs = env.reset()                                   # Observation at block 0
    obs, costs, info = env.step(Action(p, f_ser))       # one decision block

* ``Observation``: what an agent may see at the start of a block (section IV): each WD's
  queue, channel gain and this block's arrivals, the block index, the server queue and the WD
  queues (which the server observes). ``docs/schemes.md`` says who may see what.
* ``Action``: every WD's commanded transmit power p_k (which fixes its partition through
  (3)-(4)) and the server's n slot rates f^ser; the step clips them to [0, p_max] and
  [0, f_ser_max]; a non-finite value or a wrong shape is refused (``ActionError``).
* ``costs``: the four terms of (8), per seed (``mecmodel.queues.CostTerms``).
* ``StepInfo``: everything the step computed (service, energies, rates) and what a learner
  needs as knowledge of the environment: each agent's own cost term and its gradient with
  respect to its normalised action.

Randomness uses separate streams per component, derived from ``SeedSequence(seed).spawn``
keys, so that for a given seed every scheme sees the same user positions, shadowing, fading and
arrivals (common random numbers), and a seed's results do not depend on which other seeds run
beside it, up to the last bits of float64: numpy's einsum can round the same row differently
when it sits at another address (seen at K = 100 with 10 seeds, about 1e-14 relative after a
few blocks). Policies draw from streams of their own (``stream``, any name).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np

from . import channel, engine, queues
from .params import ParamError, Params
from .vocabulary import DEVICE, SERIES

#: Stream keys of SeedSequence(seed, spawn_key=(key,)). Other names get a key from their hash.
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
SEED_MAX = 2**63


def stream_key(name: str) -> int:
    """Spawn key of a named stream: the fixed ones above, else 2**32 + a hash of the name."""
    if name in STREAMS:
        return STREAMS[name]
    return 2**32 + int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def stream(seed: int, name: str) -> np.random.Generator:
    """The random stream ``name`` of ``seed``: independent of every other stream and seed."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream_key(name),))))


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
            S = len(self.fade_rngs)
            # Each seed's draws written into its column at once (no stacked copies); each
            # generator draws what it drew before, so the values are the same.
            h = np.empty((CHUNK, S, K))
            beta = np.empty((CHUNK, S, K, n))
            for s, (fading, arrivals) in enumerate(zip(self.fade_rngs, self.arr_rngs, strict=True)):
                h[:, s] = fading.standard_exponential((CHUNK, K))
                beta[:, s] = arrivals.random((CHUNK, K, n)) < lam
            h *= self.mean_gain
            self.chunks = {k: v for k, v in self.chunks.items() if k >= c - 1}
            self.chunks[c] = (h, beta)
        return self.chunks[c]

    def at(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(h (S, K) normalised gain, beta (S, K, n) arrivals) of block t."""
        h, b = self._chunk(t // CHUNK)
        return h[t % CHUNK], b[t % CHUNK]


class ActionError(ValueError):
    """An action ``MECEnv.step`` refuses: not numbers, a wrong shape, or not finite (NaN, inf).

    The message names the policy (WD or server), the agent (WD k, or the server and its slot), the
    seed and the block."""


@dataclasses.dataclass(frozen=True)
class Observation:
    """The state at the start of block ``t``, for every seed (axis 0) and WD (axis 1).

    Under the paper's decentralised information model (section IV) WD k sees ``q[:, k]``,
    ``h[:, k]``, ``beta[:, k]`` and ``t``; the server sees ``q_ser``, ``q`` (the WDs report their
    queues) and ``t``. The arrays are the environment's and read-only: a policy cannot change the
    environment's state. S is the number of seeds, K of WDs, n of slots per block.
    """

    t: int
    """Block index, the same for every seed: 0 after ``MECEnv.reset``, one more after each step."""
    q: np.ndarray
    """(S, K) cycles: each WD's queue q_k at the start of the block (the arrivals of earlier blocks included)."""
    h: np.ndarray
    """(S, K) W^-1: each WD's channel power gain over the noise power in this block, the h of (3)-(4): its mean
    gain (path loss and shadowing, fixed for the run) times this block's fading (a unit-mean exponential draw)."""
    beta: np.ndarray
    """(S, K, n) 1: 1.0 where a task (W = ``task_cycles`` cycles) arrives at WD k in slot i of this block, else 0.0;
    this block's arrivals join ``q`` at its end, (1)."""
    q_ser: np.ndarray
    """(S,) cycles: the server queue q^ser at the start of the block."""


@dataclasses.dataclass(frozen=True)
class Action:
    """One block's decisions: the WDs' powers and the server's slot rates.

    ``p`` (S, K) is the transmit power each WD commands (W, in [0, p_max]); through (3)-(4) it
    fixes how many back-end cycles the partitioned task can offload. ``f_ser`` (S, n) is the
    commanded server rate in each slot (cycles/s, in [0, f_ser_max]); the server never runs
    faster than its queue needs. ``whole_task`` offloads a task's back end whole or not at all
    (binary offloading). ``MECEnv.step`` takes any array-like of numbers of these shapes (read as
    float64), clips it to the box (9b), (9d) and refuses (``ActionError``) a wrong shape, non-numbers
    or a non-finite value.
    """

    p: np.ndarray
    """(S, K) W: the transmit power p_k each WD commands, in [0, p_max] (9b). It is an upper bound: the capacity
    (3) at p caps the offloaded back end, and the power actually sent (``StepInfo.p_tx``) is (4) of what is sent."""
    f_ser: np.ndarray
    """(S, n) cycles/s: the server rate f^ser_i commanded for each slot i, in [0, f_ser_max] (9d); a slot runs
    slower once the queue runs dry (``StepInfo.f_eff``)."""
    whole_task: bool = False
    """Binary offloading: True offloads a task's back end whole or not at all (``WDPolicy.whole_task``)."""


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What a step computed, for recording and for learners (knowledge of the environment).

    Frozen, one per step. Per-WD arrays are (S, K), per-slot arrays (S, n), per-seed arrays (S,): S seeds, K WDs,
    n slots per block. Costs and their gradients are in cost units (1: the weights of (8) are per cycle and per J).
    """

    P: Params
    """The model parameters of the run."""
    obs: Observation
    """The state the action was taken in (s_t); the queue terms of the costs are of this state."""
    action: Action
    """The action as applied: ``p`` (S, K) W clipped to [0, p_max], ``f_ser`` (S, n) cycles/s clipped to
    [0, f_ser_max]."""
    service: queues.WDService
    """The partition of each WD's work, (3), (4), (9c): ``local`` and ``offload`` (S, K) cycles, the flags
    ``uncapped`` and ``stuck`` (S, K) bool, ``dlocal_doff`` (S, K) 1 (``mecmodel.queues.WDService``)."""
    p_tx: np.ndarray
    """(S, K) W: the power actually transmitted, (4) of the offloaded back end's bits (zeta per cycle); 0 where
    nothing is offloaded, at most ``action.p``."""
    e_local: np.ndarray
    """(S, K) J: local computing energy (2), the local work spread evenly over the n slots."""
    e_offload: np.ndarray
    """(S, K) J: offloading energy (5), tau ``p_tx``."""
    served: np.ndarray
    """(S, n) cycles: the cycles the server computed in each slot; their sum leaves q^ser in (6)."""
    f_eff: np.ndarray
    """(S, n) cycles/s: the effective server rate of each slot, ``served / tau``: the commanded rate while work
    remains, less in the slot where the queue runs dry, 0 after it."""
    e_server: np.ndarray
    """(S,) J: server energy (7), sum_i tau xi^ser f_i^3 over the slots' ``f_eff``."""
    arrivals: np.ndarray
    """(S, K) tasks: the tasks that arrived at each WD this block (``obs.beta`` summed over the slots, 0 to n);
    ``arrivals`` W cycles join the WD queue at the end of the block, (1)."""
    wd_cost: np.ndarray
    """(S, K) 1: each WD's own cost term of (8), w3 q_k + w4 (E^wd_k + E^off_k) with q_k of ``obs``:
    the reward r_{k,t} of (24)."""
    server_cost: np.ndarray
    """(S,) 1: the server's own cost term of (8), w1 q^ser + w2 E^ser with q^ser of ``obs``: the reward r_t of
    (31). ``wd_cost.sum(axis=1) + server_cost`` is the step's ``costs.total`` (up to rounding)."""
    wd_cost_grad: np.ndarray
    """(S, K) 1: d ``wd_cost`` / d(p_k / p_max), the exact reward gradient of Algorithm 1's (26):
    w4 p_max [tau + 3 xi^wd f^2 (dL/dO) dcap/dp] where the offload tracks p (the capacity binds,
    ``service.uncapped``), else 0; f is the local rate, dL/dO ``service.dlocal_doff``, dcap/dp the slope of (3)."""
    server_cost_grad: np.ndarray
    """(S, n) 1: d ``server_cost`` / d(f^ser_i / f^ser_max), the exact gradient of Algorithm 2's (33):
    3 w2 tau xi^ser (f_i^2 - f_p^2) f_ser_max on active slots (those that ran at their commanded rate), else 0;
    f_p is the rate of the slot where the queue runs dry."""


def scratch_records(S: int, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records of one block that nothing reads: where a step records outside a run."""
    return (
        np.empty((len(SERIES), S, 1)),
        np.empty((len(DEVICE), S, 0, K)),
        np.zeros((len(engine.WORK), S)),
    )


def _f64(x) -> np.ndarray:
    """An action array as the kernel reads it (float64; a view when it already is)."""
    return np.asarray(x, dtype=np.float64)


def _first_column(t: int) -> int:
    """Records of a step outside a run go to column 0 of scratch arrays (a function, so that the
    environment pickles)."""
    return 0


def _observation(t: int, *arrays: np.ndarray) -> Observation:
    """An Observation of read-only arrays: a policy cannot change the environment's state."""
    for a in arrays:
        a.flags.writeable = False
    return Observation(t, *arrays)


class MECEnv:
    """K WDs and one edge server, for every seed at once; one ``step`` is one decision block.

    ``P`` holds the model parameters (``mecmodel.params.make_params``); ``seeds`` is a count n (seeds
    0..n-1) or a sequence of distinct integers in [0, 2**63) (else ``ParamError``). The user drop and
    shadowing are drawn at construction (fixed for the run, one stream each); fading and arrivals are
    drawn per block from their own streams. ``reset`` empties the queues and returns the first
    observation; ``step`` applies (3)-(8) and the queue transitions (1), (6) and returns
    ``(next observation, cost terms (8), StepInfo)``.

    Attributes (S seeds, K WDs); a policy that reads the drop or the gains through ``PolicyContext.env`` is
    centralised:

    * ``P``; ``seeds``, the list of seed labels (axis 0 of every array, in this order); ``S``, their number;
    * ``distance``: (S, K) m, each WD's distance to the base station;
    * ``mean_gain``: (S, K) W^-1, each WD's mean channel gain over the noise power (path loss and shadowing);
    * ``local_max``: cycles, the most a WD computes in a block, floor(n tau f^wd_max) (9c);
    * ``obs``: the current ``Observation`` (None before ``reset``).
    """

    def __init__(self, P: Params, seeds: int | Sequence[int]):
        self.P = P
        self.seeds = seed_list(seeds)
        self.S = len(self.seeds)
        dist = np.stack(
            [channel.drop_users(stream(s, "positions"), P.K, P.cell_radius, P.min_distance) for s in self.seeds]
        )
        shadow = np.stack([stream(s, "shadowing").standard_normal(P.K) for s in self.seeds])
        self.distance = dist
        self.mean_gain = channel.large_scale_gain(dist, shadow, P.pathloss_a, P.pathloss_b, P.shadowing_db, P.noise_dbw)
        self.local_max = np.floor(P.n_slots * P.tau * P.f_wd_max)  # (9c): cycles a WD computes in a block
        self.obs: Observation | None = None
        self.scalars = engine.scalars(P, float(self.local_max))
        self.rule = engine.RULES[P.local_service]
        # Where step records each block (mecmodel.simulation points these at a run's records;
        # by default a scratch block that nothing reads).
        self.record_into(*scratch_records(self.S, P.K), start=1, column=_first_column)

    def record_into(self, rec: np.ndarray, dev: np.ndarray, work: np.ndarray, start: int, column=None) -> None:
        """Record every later step into a run's arrays (``mecmodel.engine.advance`` writes them).

        ``mecmodel.simulation`` calls it; a policy does not. Until it is called, a step records into
        scratch arrays that nothing reads.

        * ``rec``: (len(SERIES), S, T), the per-block series (rows of ``mecmodel.vocabulary.SERIES``);
          block t goes into column ``column(t)`` (default t);
        * ``dev``: (len(DEVICE), S, T, K), the per-WD series (rows of ``mecmodel.vocabulary.DEVICE``),
          written only when T > 0;
        * ``work``: (len(mecmodel.engine.WORK), S) cycles, the work totals, which each step adds to; the
          window totals count the steps whose column is >= ``start``.
        """
        self._rec, self._dev, self._work, self._start = rec, dev, work, int(start)
        self._column = column or int

    def rngs(self, name: str) -> list[np.random.Generator]:
        """One ``numpy.random.Generator`` per seed of the stream ``name`` (a list of S, in the order of ``seeds``).

        The streams are independent of every other stream and seed (``stream``). Each call starts them
        afresh, so the same name gives the same draws again: call it once and keep the list.
        """
        return [stream(s, name) for s in self.seeds]

    def reset(self) -> Observation:
        """Start a run: empty queues (``q`` and ``q_ser`` zero) and the fading and arrival streams from their
        start (the same draws again), the drop and shadowing of construction kept.

        Returns the ``Observation`` of block 0, also kept as ``obs``.
        """
        self.exo = Exogenous(self.seeds, self.P, self.mean_gain)
        h, beta = self.exo.at(0)
        self.obs = _observation(0, np.zeros((self.S, self.P.K)), h, beta, np.zeros(self.S))
        return self.obs

    def _checked(self, value, who: str, what: str, shape: tuple, dims: str, item: str) -> np.ndarray:
        """An action's array as the kernel reads it, or ``ActionError`` naming what is wrong."""
        block = self.obs.t
        try:
            array = _f64(value)
        except (TypeError, ValueError):
            raise ActionError(
                f"{who} returned {what} of type {type(value).__name__}, not numbers (block {block})"
            ) from None
        if array.shape != shape:
            raise ActionError(f"{who} returned {what} of shape {array.shape}, expected {shape} {dims} (block {block})")
        if not np.isfinite(array).all():
            s, j = np.argwhere(~np.isfinite(array))[0]
            agent = f"WD {j}" if item == "WD" else f"the server (slot {j})"
            raise ActionError(
                f"{who} returned {what} = {array[s, j]} for {agent}, seed {self.seeds[s]}, block {block}: "
                "an action must be finite"
            )
        return array

    def step(self, action: Action) -> tuple[Observation, queues.CostTerms, StepInfo]:
        """One block: partition (3)-(4), local computing (2), offloading (5), server (6)-(7), cost (8).

        ``action`` holds ``p`` (S, K) W and ``f_ser`` (S, n) cycles/s, any array-like of numbers (read as
        float64); they are clipped to [0, p_max] and [0, f_ser_max] (9b), (9d). Returns ``(obs, costs, info)``:

        * ``obs``: the ``Observation`` of block t + 1 (the queues after (1) and (6), the next fading and
          arrivals), also kept as ``self.obs``;
        * ``costs``: the four terms of (8), each (S,) (``mecmodel.queues.CostTerms``), on the queues the
          action was taken in and this block's energies;
        * ``info``: the ``StepInfo`` of everything the step computed.

        Raises ``ActionError`` for an action that is not numbers, of the wrong shape or not finite (the state
        is left as it was), and ``RuntimeError`` before ``reset``.
        """
        P, o = self.P, self.obs
        if o is None:
            raise RuntimeError("MECEnv.step before reset")
        p = self._checked(action.p, "the WD policy", "transmit power p", (self.S, P.K), "(seeds, WDs)", "WD")
        f_ser = self._checked(
            action.f_ser, "the server policy", "server rate f_ser", (self.S, P.n_slots), "(seeds, slots)", "slot"
        )
        whole = bool(action.whole_task)
        wd, flags, slot, seed = engine.buffers(self.S, P.K, P.n_slots)
        # (9b), (9d): the action space is a box, as Gymnasium's; the kernel clips to it ((9c) is the
        # partition's local_max)
        engine.advance(
            self._column(o.t), o.q, o.h, o.beta, o.q_ser, p, f_ser, self.scalars,
            self.rule, whole, self._start, wd, flags, slot, seed, self._rec, self._dev, self._work,
        )  # fmt: skip
        local, off, dlocal, p_tx, e_loc, e_off, arrivals, q_next, wd_cost, wd_grad, p_app = wd
        served, f_eff, s_grad, f_app = slot
        sq, se, wq, we, e_ser, q_ser_next, server_cost = seed
        svc = queues.WDService(local, off, flags[0], dlocal, flags[1])
        # The frozen dataclass's fields in one dict update (its __init__ sets 15 fields one
        # object.__setattr__ at a time: a tenth of a block at K = 10).
        info = object.__new__(StepInfo)
        info.__dict__.update(
            P=P, obs=o, action=Action(p_app, f_app, whole), service=svc, p_tx=p_tx, e_local=e_loc,
            e_offload=e_off, served=served, f_eff=f_eff, e_server=e_ser, arrivals=arrivals,
            wd_cost=wd_cost, server_cost=server_cost, wd_cost_grad=wd_grad, server_cost_grad=s_grad,
        )  # fmt: skip
        h_next, beta_next = self.exo.at(o.t + 1)
        self.obs = _observation(o.t + 1, q_next, h_next, beta_next, q_ser_next)
        return self.obs, queues.CostTerms(sq, se, wq, we), info
