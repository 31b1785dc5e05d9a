"""The words every layer shares, declared once and importing nothing of the package.

* ``AXES``: the grid axes of every sweep and their run-path prefixes;
* ``POINT_DIMS``: the coordinates of one run (the axes and the scheme);
* ``RUN`` and ``FIELD_PATTERNS``: the run-path template below ``results/runs`` and what
  each of its fields may hold (``mecmodel.paths`` spells and parses paths with them);
* ``VARIABLES``: every variable of a run file, with its units, long_name, how it is recorded
  (per block, per block and WD, per seed) and its dtype; the engine's record rows
  (``SERIES``, ``DEVICE``), the datasets' CF attributes, the metrics an experiment may
  name (``METRIC_NAMES``) and the config schema's list of them all derive from it;
* ``ma_window``: the moving-average window of the per-block figures (plots draw it, the
  report's captions state it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Swept model parameters, in run-path order, with the prefix of their path component.
AXES: dict[str, str] = {"K": "K", "arrival_prob": "lam", "gamma": "gamma"}
#: Coordinates of one run: the swept parameters and the scheme (length-1 dims of a run file).
POINT_DIMS: tuple[str, ...] = (*AXES, "scheme")
#: Blocks in the moving average of cost_vs_block.
MA_WINDOW = 25

#: A run below ``<root>/runs``, without suffix; ``{model}`` is ``<preset>-<model hash>``. ``{extra}``
#: is empty, or the other swept parameters of the point, ``name=value`` by name joined by commas,
#: then a slash (``mecmodel.paths.spell_extra``): the four axes keep the paths they always had.
RUN = (
    "{model}/"
    + "/".join(f"{prefix}{{{axis}}}" for axis, prefix in AXES.items())
    + "/{extra}{scheme}/s{seeds}-b{blocks}"
)
RUN_FILE = f"results/runs/{RUN}.nc"
#: Canonical numbers as ``mecmodel.paths.canonical_number`` writes them: no slash, no double dot.
NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:e[-+][0-9]+)?"
NAME = r"[A-Za-z][A-Za-z0-9_]*"
#: A swept value in a path: a canonical number, a boolean, or a choice (a name).
VALUE = rf"(?:-?{NUMBER}|true|false|{NAME})"
#: Each placeholder's wildcard constraint (Snakemake) and regex group.
FIELD_PATTERNS = {
    "model": r"[A-Za-z0-9_]+-[0-9a-f]{12}",
    "K": r"[1-9][0-9]*",
    "arrival_prob": NUMBER,
    "gamma": NUMBER,
    "extra": rf"(?:{NAME}={VALUE}(?:,{NAME}={VALUE})*/)?",
    "scheme": NAME,
    "seeds": r"[1-9][0-9]*",
    "blocks": r"[1-9][0-9]*",
}
INTEGER_AXES = ("K",)


@dataclass(frozen=True)
class Variable:
    """One variable of a run file.

    ``per`` says how it is recorded: ``"block"`` a row of the engine's per-block records (dims
    seed, block), ``"wd"`` a row of the per-WD records (seed, block, wd; with ``per_device``
    only), ``"seed"`` one value per seed computed at the end of the run (seed). ``long_name`` may
    hold ``{blocks}`` and ``{average_from}`` (the run's length and the first block of its
    averaging window). ``attrs`` are further CF attributes (flag values and meanings).
    """

    name: str
    units: str
    long_name: str
    per: str = "seed"
    dtype: str = "float64"
    attrs: dict[str, Any] = field(default_factory=dict)
    #: True for a per-seed long-run average an experiment may name as its ``metric``.
    metric: bool = False

    def cf_attrs(self, **context: Any) -> dict[str, Any]:
        return {"units": self.units, "long_name": self.long_name.format(**context), **self.attrs}


def _learner_variables(alg: str, number: int, who: str) -> tuple[Variable, ...]:
    return (
        Variable(
            f"{alg}_converged_block_median",
            "1",
            f"Algorithm {number}: median block at which the {who} converged (NaN: not converged or not learning)",
        ),
        Variable(
            f"{alg}_converged_block_max",
            "1",
            f"Algorithm {number}: block at which the last of the {who} converged (NaN: not all converged)",
        ),
        Variable(f"{alg}_converged_fraction", "1", f"share of the {who} that converged"),
        Variable(
            f"{alg}_diverged_block",
            "1",
            f"first block at which a learner of the {who} diverged (-1: never)",
            dtype="int64",
        ),
    )


_WINDOW = ", blocks >= {average_from}"

#: Every variable of a run file, in the order a run file holds them.
VARIABLES: tuple[Variable, ...] = (
    # per block: the rows of the engine's records (mecmodel.engine.advance), in this order
    Variable("cost", "1", "weighted cost per block, c(s_t) of (8)", "block"),
    Variable("cost_server_queue", "1", "server-queue term w1 q^ser of (8)", "block"),
    Variable("cost_server_energy", "1", "server-energy term w2 E^ser of (8)", "block"),
    Variable("cost_wd_queue", "1", "WD-queue term sum_k w3 q^wd_k of (8)", "block"),
    Variable("cost_wd_energy", "1", "WD-energy term sum_k w4 (E^wd_k + E^off_k) of (8)", "block"),
    Variable("wd_queue_mean", "cycle", "mean WD queue at the start of the block", "block"),
    Variable("wd_queue_max", "cycle", "largest WD queue at the start of the block", "block"),
    Variable("server_queue", "cycle", "server queue at the start of the block", "block"),
    Variable("energy_local", "J", "local computing energy summed over WDs, (2)", "block"),
    Variable("energy_offload", "J", "offloading energy summed over WDs, (5)", "block"),
    Variable("energy_server", "J", "server computing energy, (7)", "block"),
    Variable("tx_power_mean", "W", "mean transmit power over WDs, (4)", "block"),
    Variable("offloaded_fraction", "1", "share of the cycles served this block that were offloaded", "block"),
    Variable("server_rate_mean", "cycle s-1", "mean effective server CPU rate over the block's slots", "block"),
    Variable("alg1_td_error", "1", "Algorithm 1: |TD error| (24), mean over WDs", "block"),
    Variable("alg1_rel_change", "1", "Algorithm 1: ||theta_t+1 - theta_t|| / ||theta_t||, mean over WDs", "block"),
    Variable("alg2_td_error", "1", "Algorithm 2: |TD error| (31)", "block"),
    Variable("alg2_rel_change", "1", "Algorithm 2: ||eta_t+1 - eta_t|| / ||eta_t||", "block"),
    # per block and WD: the rows of the engine's device records (per_device runs only)
    Variable("wd_queue_k", "cycle", "WD queue at the start of the block", "wd"),
    Variable("tx_power_k", "W", "transmit power, (4)", "wd"),
    Variable("local_rate_k", "cycle s-1", "local CPU rate f^wd (equal in every slot)", "wd"),
    Variable("offloaded_k", "cycle", "back-end cycles offloaded", "wd"),
    # per seed: the cost criteria of the paper, then what MEC papers report, over the last
    # average_fraction of the blocks (docs/model.md, note L); queues in tasks (cycles / W),
    # UDUNITS' "1" with the unit in long_name
    Variable("discounted_cost", "1", "discounted sum cost (9a), sum_t gamma^t c_t over {blocks} blocks", metric=True),
    Variable("average_cost", "1", "long-run average cost per block over blocks >= {average_from}", metric=True),
    Variable("latency", "s", "mean task latency by Little's law over blocks >= {average_from}", metric=True),
    Variable("mean_queue_wd", "1", "time-average WD queue in tasks (cycles / W), mean over WDs" + _WINDOW, metric=True),
    Variable("mean_queue_server", "1", "time-average server queue in tasks (cycles / W)" + _WINDOW, metric=True),
    Variable(
        "mean_energy_wd",
        "J",
        "average energy per block of one WD, local (2) + offloading (5), mean over WDs" + _WINDOW,
        metric=True,
    ),
    Variable("mean_energy_server", "J", "average server energy per block, (7)" + _WINDOW, metric=True),
    Variable(
        "mean_energy",
        "J",
        "average energy per block of the whole system, every WD and the server" + _WINDOW,
        metric=True,
    ),
    Variable(
        "offloaded_share",
        "1",
        "share of the cycles the WDs served that were offloaded to the server" + _WINDOW,
        metric=True,
    ),
    # per seed: work totals (what the conservation tests balance)
    Variable("work_arrived", "cycle", "cycles that arrived over the run"),
    Variable("work_local", "cycle", "cycles computed locally at the WDs"),
    Variable("work_server", "cycle", "cycles computed at the server"),
    Variable("work_offloaded", "cycle", "back-end cycles offloaded to the server"),
    Variable("work_queued", "cycle", "cycles still queued at the end (WDs and server)"),
    # per seed: the learners' convergence
    *_learner_variables("alg1", 1, "WDs"),
    *_learner_variables("alg2", 2, "server"),
    Variable(
        "diverged",
        "1",
        "1 where a learner diverged in this seed (its weights were frozen at the last finite values)",
        dtype="int8",
        attrs={"flag_values": (0, 1), "flag_meanings": "finite diverged"},
    ),
)
#: Variables of an aggregate that no run holds: the optimum bracketed at each point and seed, the
#: Lagrangian lower bound and an upper bound (mecmodel.bounds; docs/model.md, note N), and each
#: scheme's gap to the lower bound.
BOUND_VARIABLES: tuple[Variable, ...] = (
    Variable(
        "lower_bound",
        "1",
        "Lagrangian lower bound on the expected discounted cost (9a) from empty queues, of every policy",
    ),
    Variable("bound_price", "cycle-1", "the bound's best price mu of a served server cycle (cost units per cycle)"),
    Variable(
        "upper_bound",
        "1",
        "upper bound on the optimum of (9a): the exact value of a policy the system can run (WDs on their own, "
        "the server clearing its queue)",
    ),
    Variable(
        "bound_gap",
        "1",
        "discounted cost (9a) minus the lower bound, over the lower bound, on the same seed",
    ),
)
VARIABLE_BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}
#: The engine's per-block record rows, in order.
SERIES: tuple[str, ...] = tuple(v.name for v in VARIABLES if v.per == "block")
#: The engine's per-WD record rows, in order.
DEVICE: tuple[str, ...] = tuple(v.name for v in VARIABLES if v.per == "wd")
#: Per-seed variables an experiment's ``metric`` may name (its figure and summary table show it):
#: average_cost, every experiment's default, first, then the others in the table's order.
METRIC_NAMES: tuple[str, ...] = tuple(
    sorted((v.name for v in VARIABLES if v.metric), key=lambda name: name != "average_cost")
)


def ma_window(blocks: int) -> int:
    """The moving-average window for a run of ``blocks`` blocks: MA_WINDOW, shorter for short runs."""
    return MA_WINDOW if blocks >= 4 * MA_WINDOW else max(1, blocks // 4)
