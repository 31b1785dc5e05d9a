"""The ``stable`` preset (docs/model.md, note D): every grid point of Figs. 7-9 within capacity.

``stable`` is ``default`` with f^wd_max = 2 GHz: a WD computes floor(n tau f^wd_max / W) = 5
whole tasks per block, the most that can arrive in one (n = 5 slots), so no WD queue needs the
server to stay bounded. The points are read from ``config/stable.yaml`` (the figures
``cost_vs_block``, ``cost_vs_arrival`` and ``cost_vs_K``), not written out here, and checked
twice: by the load table of ``scripts/load_table.py`` (the function the script prints from), and
by simulation. Each check also runs where the ``default`` preset is overloaded (K = 50,
lambda = 0.9), where it must fail.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

from mecmodel import config as mecconfig
from mecmodel.params import FIELDS, PRESET_BY_NAME, PRESETS, make_params
from mecmodel.simulation import simulate_arrays

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
STABLE_CONFIG = REPO / "config" / "stable.yaml"
FIGURES = ("cost_vs_block", "cost_vs_arrival", "cost_vs_K")  # Figs. 7, 8, 9
OVERLOADED = (50, 0.9)  # Fig. 8's last point: 4.5 tasks per WD per block, 3 at most served by default

_spec = importlib.util.spec_from_file_location("load_table", REPO / "scripts" / "load_table.py")
load_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load_table)


def figure_points(path: Path) -> tuple[str, dict, list[tuple[int, float]]]:
    """The preset, the overrides and the distinct (K, lambda) points of Figs. 7-9 of a config."""
    config = mecconfig.apply_layers(mecconfig.read_config_file(path), [path])
    presets, overrides, points = set(), [], set()
    for exp in config["experiments"].values():
        if exp.get("figure") in FIGURES:
            presets.add(exp.get("preset", config.get("preset", "default")))
            over = {**config.get("overrides", {}), **exp.get("overrides", {})}
            if over not in overrides:
                overrides.append(over)
            points |= set(itertools.product(exp["K"], (float(x) for x in exp["arrival_prob"])))
    assert len(presets) == 1 and len(overrides) == 1, "one model for Figs. 7-9"
    return presets.pop(), overrides[0], sorted(points)


PRESET, OVERRIDES, POINTS = figure_points(STABLE_CONFIG)


# ----------------------------------------------------------------------------- the preset and its config


def test_stable_is_the_default_with_the_declared_changes_only():
    assert PRESETS[:2] == ("default", "paper") and "stable" in PRESETS
    assert PRESET == "stable" and OVERRIDES == {}, "config/stable.yaml: the stable preset, no overrides"
    default, stable, paper = make_params("default"), make_params("stable"), make_params("paper")
    changed = {k: v for k, v in stable.values.items() if default.values[k] != v}
    assert changed == dict(PRESET_BY_NAME["stable"].changes) == {"f_wd_max": 2e9}
    # the other presets as they were: default is every field's default, paper its printed values
    assert default.values == {f.name: f.default for f in FIELDS}
    assert paper.values == {f.name: f.default if f.paper is None else f.paper for f in FIELDS}
    assert stable.model_hash() not in (default.model_hash(), paper.model_hash())


def test_stable_config_is_the_default_config_with_the_stable_preset():
    default = mecconfig.read_config_file(DEFAULT_CONFIG)
    stable = mecconfig.apply_layers(mecconfig.read_config_file(STABLE_CONFIG), [STABLE_CONFIG])
    assert stable["preset"] == "stable"
    assert stable["experiments"] == {f"stable_{n}": e for n, e in default["experiments"].items()}
    # every other setting inherited, but not the scenarios: config.yaml's are its own
    assert default["scenarios"] == ["stable.yaml"] and "scenarios" not in stable
    assert {k: v for k, v in stable.items() if k not in ("preset", "experiments")} == {
        k: v for k, v in default.items() if k not in ("preset", "experiments", "scenarios")
    }
    mecconfig.validate(stable)  # the config schema lists the preset


# ----------------------------------------------------------------------------- (a) the load table


def test_load_table_covers_the_figure_points():
    table = {pt for name, pts in load_table.GRIDS.items() if not name.startswith("Fig. 6") for pt in pts}
    assert set(POINTS) == table


@pytest.mark.parametrize("point", POINTS, ids=[f"K{K}-lam{lam:g}" for K, lam in POINTS])
def test_load_table_verdict_is_stable_with_margin(point):
    """Not overloaded, and the arrivals at most 80 % of the best service (75 % at lambda = 0.9)."""
    d = load_table.load(PRESET, *point, OVERRIDES)
    assert d["verdict"] in load_table.STABLE, d
    assert d["arrivals"] <= 0.8 * d["best"] and d["need_server"] <= d["server"], d


def test_load_table_verdict_is_overloaded_in_the_default_preset():
    assert load_table.load("default", *OVERLOADED)["verdict"] == "overloaded for every scheme"


# ----------------------------------------------------------------------------- (b) simulation

#: Schemes tried at each point, in order; their WD rules are fixed and the server clears its
#: queue when it can (MinEnergy), or the WDs never offload.
CANDIDATES = ("even_min_energy", "offload_min_energy", "local")
SEEDS, BLOCKS = 2, 400
GROWTH, SLACK = 0.10, 0.05  # tasks


def bounded(P, scheme: str) -> tuple[bool, dict]:
    """Whether ``scheme`` keeps every queue bounded at ``P`` (seeds 0 and 1, 400 blocks).

    Two queues, each in tasks of W and per WD: the mean WD queue, and the server queue over K.
    Each is averaged over both seeds in the second quarter of the blocks (100-199) and in the
    last quarter (300-399). A queue is bounded when its last-quarter mean is at most
    (1 + 10 %) times its second-quarter mean plus 0.05 task (it is not growing) and at most
    n + 1 = 6 tasks (more than one block's largest arrivals plus one task would be a backlog).
    """
    run = simulate_arrays(P, scheme, SEEDS, BLOCKS)
    W, q = P.task_cycles, BLOCKS // 4
    series = {"wd": run["series"]["wd_queue_mean"] / W, "server": run["series"]["server_queue"] / (P.K * W)}
    means = {k: (float(s[:, q : 2 * q].mean()), float(s[:, 3 * q :].mean())) for k, s in series.items()}
    cap = P.n_slots + 1
    ok = all(last <= (1 + GROWTH) * second + SLACK and last <= cap for second, last in means.values())
    return ok, means


@pytest.mark.parametrize("point", POINTS, ids=[f"K{K}-lam{lam:g}" for K, lam in POINTS])
def test_some_scheme_keeps_every_queue_bounded(point):
    """At each Fig. 7-9 point, even_min_energy, offload_min_energy or local (tried in this order)
    keeps the WD and the server queues bounded: over seeds 0-1 and 400 blocks, each queue's mean
    (per WD, in tasks) in the last quarter is at most 1.1 x its second-quarter mean + 0.05 task
    and at most n + 1 = 6 tasks (:func:`bounded`)."""
    K, lam = point
    P = make_params(PRESET, {**OVERRIDES, "K": K, "arrival_prob": lam})
    tried = {}
    for scheme in CANDIDATES:
        ok, tried[scheme] = bounded(P, scheme)
        if ok:
            return
    pytest.fail(f"no scheme keeps the queues bounded at K={K}, lambda={lam}: {tried}")


def test_no_scheme_passes_where_the_default_preset_is_overloaded():
    """The same criterion fails for every candidate in default at K = 50, lambda = 0.9, where a WD
    serves at most 3 of the 4.5 tasks arriving per block: the check can tell a growing queue."""
    K, lam = OVERLOADED
    P = make_params("default", {"K": K, "arrival_prob": lam})
    for scheme in CANDIDATES:
        ok, means = bounded(P, scheme)
        assert not ok, (scheme, means)
