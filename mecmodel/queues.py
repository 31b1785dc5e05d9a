"""Workload queues, energies and the per-block cost: pure functions of arrays.

Queues are in CPU cycles and kept integer-valued (float64 holds integers exactly up
to 2^53), so ``q mod W`` is exact and work conservation can be tested to the cycle.

Work conservation (docs/model.md, note on (1) and (6)): the back end a WD offloads
leaves the WD queue and joins the server queue, so every cycle that arrives is
computed once, locally or at the server, or is still queued.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class WDService(NamedTuple):
    """One block's work at each WD, split into local computing and an offloaded back end (``wd_service``).

    Every field has the shape of the WDs' queues, (S, K) in a step (``StepInfo.service``).
    """

    local: np.ndarray
    """Cycles computed locally this block, sum_i f^wd_i tau; at most ``local_max`` = n tau f^wd_max (9c)."""
    offload: np.ndarray
    """Cycles of the back end offloaded to the server this block (zeta bits each, sent in one slot by (3));
    they leave the WD queue in (1) and join the server queue in (6)."""
    uncapped: np.ndarray
    """Bool: True where the offload equals the power's capacity (3), so it follows the power
    (d offload / d capacity = 1); False where the capacity covers the whole back end, the WD is stuck or idle,
    or offloading is binary."""
    dlocal_doff: np.ndarray
    """1: d local / d offload where ``uncapped``: -1 (a cycle more offloaded is one less computed locally) or 0
    (rule ``head`` with the CPU busy for the whole block: the local work stays ``local_max``)."""
    stuck: np.ndarray
    """Bool: True where f^wd_max cannot finish the partitioned front end within the block: the WD computes
    ``local_max`` cycles of its head task and offloads nothing."""


LOCAL_SERVICE = ("head", "mod_w", "single")


def head_remaining(q: np.ndarray, W: float) -> np.ndarray:
    """Cycles left of the head-of-line task: q = head + N W with head in (0, W]; 0 if q = 0.

    ``q`` (any shape, e.g. (S, K)) in cycles, ``W`` the cycles of a task; returns cycles, the shape of ``q``.
    """
    return np.where(q > 0, q - W * (np.ceil(q / W) - 1.0), 0.0)


def wd_service(
    q: np.ndarray, capacity: np.ndarray, W: float, local_max: float, rule: str = "mod_w", binary: bool = False
) -> WDService:
    """Split one block's work at each WD into local computing and an offloaded back end.

    ``capacity`` is the number of back-end cycles the commanded power can send in the
    offloading slot (D / zeta, by (3)); ``local_max = n tau f^wd_max`` bounds the local
    work (9c). One task per block is *partitioned*: its front end is computed locally and
    its back end (at most ``capacity``) offloaded. Rules (docs/model.md, "local service"):

    * ``head``: the head-of-line task is partitioned; the CPU then keeps computing the
      following tasks FIFO up to ``local_max`` (a task left half-done stays at the head).
    * ``mod_w``: the partitioned task is the furthest one the CPU can reach, so the
      remainder ``(q - local) mod W`` of (1)/(6) is exactly the offloaded back end.
    * ``single``: only the head task is served (the literal one-task-per-block reading).

    ``binary=True`` offloads the partitioned task's remainder whole or not at all. If the
    CPU cannot finish the partitioned front end within ``local_max`` the WD is *stuck*:
    it computes ``local_max`` cycles of the head and offloads nothing.

    ``q`` (cycles) and ``capacity`` (cycles, floored here) broadcast against each other, e.g. both (S, K);
    ``W`` is the cycles of a task and ``local_max`` cycles per block. Returns a ``WDService`` whose fields
    have the broadcast shape. Raises ``ValueError`` for an unknown ``rule``.
    """
    if rule not in LOCAL_SERVICE:
        raise ValueError(f"local_service: must be one of {', '.join(LOCAL_SERVICE)}, got {rule!r}")
    q = np.asarray(q, dtype=float)
    cap = np.floor(np.asarray(capacity, dtype=float))
    busy = q > 0
    head = head_remaining(q, W)

    def back_end(size):
        return np.where(cap >= size, size, 0.0) if binary else np.minimum(cap, size)

    r0 = back_end(head)
    if rule == "mod_w":
        behind = np.where(busy, np.ceil(q / W) - 1.0, 0.0)  # whole tasks behind the head
        rw = back_end(W)
        # Partitioning task m >= 1 needs local = head + m W - rw <= local_max.
        m = np.clip(np.floor((local_max - head + rw) / W), 0.0, behind)
        first = m < 1.0
        local = np.where(first, head - r0, head + m * W - rw)
        off = np.where(first, r0, rw)
        size = np.where(first, head, W)
    else:
        off, size = r0, head
        local = head - r0 if rule == "single" else np.minimum(q - r0, local_max)
    front_too_long = (head - r0) > local_max
    stuck = busy & np.where(rule == "mod_w", local > local_max, front_too_long)
    local = np.where(stuck, np.minimum(local_max, head), local)
    off = np.where(stuck, 0.0, off)
    uncapped = busy & ~stuck & (off == cap) & (off < size)
    if binary:
        uncapped = np.zeros_like(busy)
    dlocal = np.where((rule == "head") & (local >= local_max), 0.0, -1.0)
    return WDService(local, off, uncapped, dlocal, stuck)


def wd_queue_next(q: np.ndarray, service: WDService, arrivals: np.ndarray, W: float) -> np.ndarray:
    """Eq. (1), work-conserving: q' = [q - local - offloaded]^+ + sum_i beta_i W.

    ``q`` (cycles), the fields of ``service`` (cycles) and ``arrivals`` (tasks this block, beta summed over the
    slots) broadcast elementwise, e.g. all (S, K); ``W`` is the cycles of a task. Returns the next queues,
    cycles, of the broadcast shape.
    """
    return np.maximum(q - service.local - service.offload, 0.0) + arrivals * W


def server_service(q_ser: np.ndarray, f_ser: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Cycles the server computes in each slot and the effective rates (S, n).

    The server runs slot i at f_i while work remains, so the effective rate is
    min(f_i, remaining / tau): an idle server burns no energy in (7).

    ``q_ser`` (S,) cycles, ``f_ser`` (S, n) commanded rates in cycles/s (not clipped here), ``tau`` s; any
    leading axes in place of S. Returns ``(served, f_eff)``: (S, n) cycles computed in each slot and (S, n)
    effective rates, cycles/s.
    """
    cum = np.cumsum(f_ser * tau, axis=-1)
    done = np.minimum(cum, q_ser[..., None])
    served = done.copy()  # np.diff(done, prepend=0), without its overhead (it runs every block)
    served[..., 1:] -= done[..., :-1]
    return served, served / tau


def server_queue_next(q_ser: np.ndarray, served: np.ndarray, offloaded: np.ndarray) -> np.ndarray:
    """Eq. (6): q^ser' = [q^ser - sum_i f^ser_i tau]^+ + sum_k offloaded back ends.

    ``q_ser`` (S,) cycles, ``served`` (S, n) cycles per slot (``server_service``), ``offloaded`` (S, K)
    cycles per WD; the last axis is summed. Returns (S,) cycles.
    """
    return np.maximum(q_ser - served.sum(axis=-1), 0.0) + offloaded.sum(axis=-1)


def local_energy(local_cycles: np.ndarray, n: int, tau: float, xi: float) -> np.ndarray:
    """Eq. (2) with the local work spread evenly over the n slots (f_i = L / (n tau)).

    Equal rates minimise the convex energy sum_i tau xi f_i^3 for a given total.

    ``local_cycles`` (any shape, e.g. (S, K)) in cycles per block, ``n`` slots of ``tau`` s, ``xi`` in
    J s^2 / cycle^3 (xi^wd). Returns J, the shape of ``local_cycles``.
    """
    f = local_cycles / (n * tau)
    return n * tau * xi * f**3


def offload_energy(p_tx: np.ndarray, tau: float) -> np.ndarray:
    """Eq. (5): E^off = tau p.

    ``p_tx`` (any shape, e.g. (S, K)) in W, ``tau`` s. Returns J, the shape of ``p_tx``.
    """
    return tau * p_tx


def server_energy(f_eff: np.ndarray, tau: float, xi: float) -> np.ndarray:
    """Eq. (7): E^ser = sum_i tau xi^ser f_i^3 over the slots (last axis).

    ``f_eff`` (S, n) effective rates in cycles/s (``server_service``), ``tau`` s, ``xi`` in
    J s^2 / cycle^3 (xi^ser). Returns (S,) J.
    """
    return tau * xi * np.sum(f_eff**3, axis=-1)


class CostTerms(NamedTuple):
    """The four terms of the per-block cost (8), each (S,) in cost units (1), one number per seed.

    ``MECEnv.step`` returns them (the queues at the start of the block, the block's energies) and a
    ``Transition`` holds them as ``costs``.
    """

    server_queue: np.ndarray
    """(S,) 1: w1 q^ser, the server queue's term."""
    server_energy: np.ndarray
    """(S,) 1: w2 E^ser, the server energy's term (7)."""
    wd_queue: np.ndarray
    """(S,) 1: w3 sum_k q_k, the WD queues' term."""
    wd_energy: np.ndarray
    """(S,) 1: w4 sum_k (E^wd_k + E^off_k), the WD energies' term ((2) and (5))."""

    @property
    def total(self) -> np.ndarray:
        """(S,) 1: the cost c(s_t) of (8), the sum of the four terms."""
        return self.server_queue + self.server_energy + self.wd_queue + self.wd_energy


def cost_terms(q_ser, e_ser, q_wd, e_wd, w1, w2, w3, w4) -> CostTerms:
    """Eq. (8): c = w1 q^ser + w2 E^ser + sum_k (w3 q^wd_k + w4 E_k), term by term.

    ``q_wd`` and ``e_wd`` have the device axis last; E_k = E^wd_k + E^off_k.

    ``q_ser`` (S,) cycles, ``e_ser`` (S,) J, ``q_wd`` (S, K) cycles, ``e_wd`` (S, K) J; the weights ``w1``, ``w3``
    per cycle and ``w2``, ``w4`` per J. Returns a ``CostTerms`` of (S,) arrays.
    """
    return CostTerms(w1 * q_ser, w2 * e_ser, w3 * q_wd.sum(axis=-1), w4 * e_wd.sum(axis=-1))
