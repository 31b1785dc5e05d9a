"""Parse-time work: resolve every experiment into models and canonical run paths.

Everything here runs when Snakemake reads the workflow, before any job, so a bad
parameter value stops the run with one message naming it and nothing is written.
"""

import itertools
import json
import math
import re
import shlex

from snakemake.exceptions import WorkflowError

from mecmodel import __version__ as MECMODEL_VERSION
from mecmodel.params import ParamError, make_params
from mecmodel.plots import MA_WINDOW
from mecmodel.results import canonical_number, run_path
from mecmodel.schemes import SCHEMES

# Canonical numbers as format(float(x), ".10g") writes them: no slash, no double dot.
NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:e[-+][0-9]+)?"
SWEPT = ("K", "arrival_prob", "gamma")
# The rules' software, for `--sdm conda` (relative to workflow/rules/). Without it every
# rule runs in the current environment, where `./run` installed mecmodel.
CONDA_ENV = "../../environment.yml"


def _yaml_scalar(value):
    """A parameter value as YAML text that `mecmodel simulate --set` reads back exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        # PyYAML (YAML 1.1) reads "1e-08" as a string; "1.0e-08" is a float.
        if "e" in text and "." not in text:
            text = text.replace("e", ".0e")
        return text
    return json.dumps(value)


def _grid(where, axis, values):
    """Grid values as the run paths spell them; two values with one spelling are one point."""
    if axis == "K":
        return [int(v) for v in values]
    canon = [float(canonical_number(v)) for v in values]
    if len(set(canon)) != len(canon):
        raise WorkflowError(
            f"{where}.{axis}: {values} repeats a value at 10 significant digits"
        )
    return canon


def _check_size(where, preset, overrides, K, seeds, blocks):
    """Refuse at parse time a run the simulator would refuse in its job (same estimate, same limit)."""
    from mecmodel.simulation import _memory_limit, memory_estimate

    params = make_params(preset, {**overrides, "K": K})
    need, limit = memory_estimate(params, seeds, blocks, False), _memory_limit()
    if need > limit:
        raise WorkflowError(
            f"{where}: K={K} with seeds={seeds} and blocks={blocks} needs about "
            f"{need / 2**30:.1f} GiB per run, more than the {limit / 2**30:.1f} GiB allowed "
            "(MECMODEL_MAX_MEMORY_GB sets the limit); use a smaller K, fewer seeds or fewer blocks"
        )


def _resolve(config):
    """Experiments with inherited settings, their run paths, and the models they use."""
    experiments, models = {}, {}
    for name, exp in config["experiments"].items():
        where = f"config: experiments.{name}"
        preset = exp.get("preset", config["preset"])
        # An experiment's overrides go on top of the top-level ones.
        overrides = {**config["overrides"], **exp.get("overrides", {})}
        seeds = exp.get("seeds", config["seeds"])
        blocks = exp.get("blocks", config["blocks"])
        grid = {axis: _grid(where, axis, exp[axis]) for axis in SWEPT}
        try:
            params = make_params(preset, overrides)
            for point in itertools.product(*grid.values()):
                make_params(preset, {**overrides, **dict(zip(SWEPT, point))})
        except ParamError as err:
            raise WorkflowError(f"{where}: {err}") from None
        _check_size(where, preset, overrides, max(grid["K"]), seeds, blocks)
        model = f"{preset}-{params.model_hash()}"
        if model not in models:
            sets = " ".join(
                f"--set {shlex.quote(f'{k}={_yaml_scalar(params.values[k])}')}"
                for k in sorted(overrides)
            )
            models[model] = {
                "preset": preset,
                "overrides": {k: params.values[k] for k in sorted(overrides)},
                "args": f"--preset {preset} {sets}".strip(),
            }
        runs = [
            run_path(model, K, lam, gamma, scheme, seeds, blocks)
            for K, lam, gamma, scheme in itertools.product(
                *grid.values(), exp["scheme"]
            )
        ]
        resolved = {
            "experiment": name,
            "figure": exp["figure"],
            **grid,
            "scheme": list(exp["scheme"]),
            "seeds": seeds,
            "blocks": blocks,
            "preset": preset,
            "overrides": models[model]["overrides"],
            "model": model,
        }
        experiments[name] = {
            **resolved,
            "runs": runs,
            "json": json.dumps(resolved, sort_keys=True),
            "epsilon": params.values["epsilon"],
            "patience": params.values["patience"],
            "average_fraction": params.values["average_fraction"],
        }
    return experiments, models


EXPERIMENTS, MODELS = _resolve(config)


wildcard_constraints:
    model=r"[A-Za-z0-9_]+-[0-9a-f]{12}",
    K=r"[1-9][0-9]*",
    arrival_prob=NUMBER,
    gamma=NUMBER,
    scheme="|".join(SCHEMES),
    seeds=r"[1-9][0-9]*",
    blocks=r"[1-9][0-9]*",
    experiment="|".join(re.escape(name) for name in EXPERIMENTS),


def model_args(wildcards):
    """`--preset ... --set ...` of the run's model, after checking the path is canonical."""
    if wildcards.model not in MODELS:
        raise WorkflowError(
            f"model {wildcards.model!r} is not used by any experiment of the config "
            f"(known: {', '.join(sorted(MODELS))})"
        )
    for name in ("arrival_prob", "gamma"):
        text = getattr(wildcards, name)
        if canonical_number(text) != text:
            raise WorkflowError(
                f"{name}: run paths spell numbers canonically, "
                f"{canonical_number(text)!r} rather than {text!r}"
            )
    return MODELS[wildcards.model]["args"]


def simulate_mem_mb(wildcards):
    """Peak memory of one run: the simulator's own estimate, tripled for the Dataset copy."""
    from mecmodel.simulation import memory_estimate

    params = make_params(
        MODELS[wildcards.model]["preset"],
        {**MODELS[wildcards.model]["overrides"], "K": int(wildcards.K)},
    )
    need = memory_estimate(params, int(wildcards.seeds), int(wildcards.blocks), False)
    return 300 + math.ceil(3 * need / 2**20)


def simulate_runtime(wildcards):
    """Wall-time request in minutes: ten times a 2-core laptop's ~1 us per WD, seed and block."""
    work = int(wildcards.seeds) * int(wildcards.blocks) * (int(wildcards.K) + 20)
    return max(5, math.ceil(10 * 1e-6 * work / 60))


def experiment_runs(wildcards):
    return EXPERIMENTS[wildcards.experiment]["runs"]


def aggregate_mem_mb(wildcards):
    """All runs in memory twice (loaded and combined), float32 series dominate."""
    exp = EXPERIMENTS[wildcards.experiment]
    raw = len(exp["runs"]) * exp["seeds"] * exp["blocks"] * 20 * 4
    return 500 + math.ceil(3 * raw / 2**20)


def caption_params(wildcards):
    """What the caption states: everything that decides what the figure shows."""
    exp = EXPERIMENTS[wildcards.experiment]
    keys = ("figure", "K", "arrival_prob", "gamma", "scheme", "seeds", "blocks")
    keys += ("preset", "overrides", "model", "epsilon", "patience")
    info = {key: exp[key] for key in keys}
    blocks = exp["blocks"]
    # Same rules as mecmodel.simulation (average_cost) and mecmodel.plots (moving average).
    info["average_from"] = blocks - max(1, int(round(exp["average_fraction"] * blocks)))
    info["window"] = MA_WINDOW if blocks >= 4 * MA_WINDOW else max(1, blocks // 4)
    return info
