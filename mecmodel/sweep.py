"""The Snakemake driver: a validated config resolved into experiments, runs and jobs.

The top of the package (nothing in it imports this module); the workflow's rules call it.

* :func:`prepare`: what the workflow does when it reads a config (files, layers, scenarios,
  schema: :mod:`mecmodel.config`), then :class:`Sweep`;
* experiment resolution (:class:`Sweep`): inherited settings, scheme selectors, every point's
  parameters checked, models, run paths (:mod:`mecmodel.paths`);
* each run resolved once into the record its job reads (:attr:`Sweep.run_specs`), the runs
  batched into simulation jobs (:meth:`Sweep.batches`) with their memory and runtime
  estimates, and the caption parameters.

Errors are :class:`mecmodel.params.ParamError` with one line that starts with ``config`` (or
``results``) and names the field; the workflow turns them into Snakemake's WorkflowError.
"""

from __future__ import annotations

import collections
import difflib
import hashlib
import itertools
import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .config import SCHEMA, apply_layers, check_results_dir, read_config_file, scenarios, validate
from .params import ParamError, make_params
from .paths import canonical_number, read_value, run_path, spell_value
from .vocabulary import AXES, FIELD_PATTERNS, INTEGER_AXES, METRIC_NAMES, ma_window

#: An experiment's keys that are not parameter axes; any other key sweeps a parameter (of the model
#: table or one a scheme declares), e.g. ``f_ser_max: [5.0e9, 1.0e10]`` or ``V: [1, 10]``.
EXPERIMENT_KEYS = ("figure", *AXES, "scheme", "seeds", "blocks", "preset", "overrides", "metric", "reference")


# ----------------------------------------------------------------------------- experiments


def _grid(where: str, axis: str, values: Sequence) -> list:
    """Grid values as the run paths spell them; two values with one spelling are one point."""
    if axis in INTEGER_AXES:
        return [int(v) for v in values]
    canon = [float(canonical_number(v)) for v in values]
    if len(set(canon)) != len(canon):
        raise ParamError(f"{where}.{axis}: {values} repeats a value at 10 significant digits")
    return canon


def _check_size(where: str, params, seeds: int, blocks: int) -> None:
    """Refuse at parse time a run the simulator would refuse in its job (same estimate, same limit)."""
    from .simulation import _memory_limit, memory_estimate

    need, limit = memory_estimate(params, seeds, blocks, False), _memory_limit()
    if need > limit:
        raise ParamError(
            f"{where}: K={params.K} with seeds={seeds} and blocks={blocks} needs about "
            f"{need / 2**30:.1f} GiB per run, more than the {limit / 2**30:.1f} GiB allowed "
            "(MECMODEL_MAX_MEMORY_GB sets the limit); use a smaller K, fewer seeds or fewer blocks"
        )


def _axis_values(where: str, spec, values: Any) -> list:
    """A swept parameter's values, each checked against its field and spelled canonically."""
    if not isinstance(values, list) or not values:
        raise ParamError(f"{where}: must be a non-empty list of values of {spec.name} ({spec.range_text()})")
    out = []
    for i, value in enumerate(values):
        try:
            value = spec.check(value)
        except ParamError:
            raise ParamError(f"{where}[{i}]: must be {spec.range_text()}, got {value!r}") from None
        value = read_value(spec.name, spell_value(spec.name, value)) if not isinstance(value, bool) else value
        if value in out:
            raise ParamError(f"{where}: {values} repeats a value at 10 significant digits")
        out.append(value)
    return out


def _extra_axes(where: str, exp: Mapping, overrides: Mapping, scheme_list: Sequence[str]) -> tuple[dict, dict]:
    """The experiment's other swept parameters: of the model table, and those its schemes declare."""
    from . import schemes
    from .params import FIELD_BY_NAME

    model_axes, scheme_axes = {}, {}
    for key in exp:
        if key in EXPERIMENT_KEYS:
            continue
        field = f"{where}.{key}"
        if key in FIELD_BY_NAME:
            if key in overrides:
                raise ParamError(f"{field}: {key} is both swept here and set in overrides; keep one of them")
            model_axes[key] = _axis_values(field, FIELD_BY_NAME[key], exp[key])
            continue
        owners = [s for s in scheme_list if key in schemes.get_scheme(s).params]
        if not owners:
            declared = {p: s for s in scheme_list for p in schemes.get_scheme(s).params}
            names = [*FIELD_BY_NAME, *declared, *EXPERIMENT_KEYS]
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listing = ", ".join(f"{p} ({s})" for p, s in declared.items()) or "none"
            raise ParamError(
                f"{field}: not a model parameter ('mecmodel params') nor a parameter of this experiment's schemes "
                f"(they declare: {listing}){hint}"
            )
        for owner in owners:  # each scheme checks the values against its own declaration
            scheme_axes[key] = _axis_values(field, schemes.get_scheme(owner).params[key], exp[key])
    return model_axes, scheme_axes


def prepare(config: dict, configfiles: Sequence[str | os.PathLike], schema: str | os.PathLike = SCHEMA) -> Sweep:
    """Everything the workflow does when it reads a config, in order, before any job.

    The files are re-read strictly, layers resolved (``config`` is updated in place, as the
    Snakefile's global config must be), the schema checked and its defaults filled, the
    scenarios the config lists resolved likewise, the ``results`` folders checked, and the
    experiments of the config and of its scenarios resolved into one plan. Raises :class:`ParamError`.
    """
    for path in configfiles:
        read_config_file(path)
    layered = apply_layers(dict(config), configfiles)
    config.clear()
    config.update(layered)
    validate(config, schema)
    others = scenarios(config, configfiles, schema)
    check_results_dir()
    return Sweep(config, others)


#: Simulation jobs: a cut after a run whose path hashes to 0 modulo BATCH_RUNS, and at most
#: BATCH_MAX_RUNS runs and BATCH_WORK estimated work (seeds x blocks x (K + 20) summed over its
#: runs, about a microsecond each): about 20 runs a batch in the reproduction (38 jobs for 760
#: runs); see Sweep.batches. Larger batches pay the start-up less often but leave fewer jobs to
#: share the cores: the smoke sweep's 100 runs still make four (benchmarks/README.md).
BATCH_RUNS = 32
BATCH_MAX_RUNS = 32
BATCH_WORK = 60_000_000


def _run_work(spec: Mapping[str, Any]) -> int:
    return int(spec["seeds"]) * int(spec["blocks"]) * (int(spec["overrides"]["K"]) + 20)


def _tracked(path: Path) -> bool:
    """Whether git tracks ``path`` in the repository of the working directory."""
    try:
        proc = subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(path)], capture_output=True, cwd=os.getcwd(), timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


class Sweep:
    """A validated config resolved into experiments, models and run paths.

    ``experiments[name]`` holds the resolved grid (``K``, ``arrival_prob``, ``gamma``,
    ``scheme`` as lists), ``seeds``, ``blocks``, ``preset``, ``overrides``, ``model``,
    ``figure``, ``runs`` (run-file paths) and ``json`` (what the aggregate stores).
    ``models[model]`` holds its preset and overrides.
    """

    def __init__(self, config: Mapping[str, Any], scenarios: Sequence[Mapping[str, Any]] = ()):
        from . import schemes

        configs = [config, *scenarios]
        listed = list(dict.fromkeys(m for c in configs for m in c.get("scheme_modules", [])))
        schemes.load_modules(listed, "config: scheme_modules")
        # one spelling per file: the jobs of a module's schemes do not depend on how a config spells it
        self.scheme_modules = list(dict.fromkeys(schemes.canonical_spec(m) for m in listed))
        for spec in self.scheme_modules:
            path = schemes.module_file(spec)
            if path is not None and not _tracked(path):
                print(
                    f"mecmodel: warning: config: scheme_modules: {spec} is not a file git tracks here; the "
                    f"results depend on it (its sha256 {schemes.module_digest(spec)}... is stored in every run)",
                    file=sys.stderr,
                )
        # A scheme of a module: the module's spec and the hash of its source, for its jobs only,
        # so that adding or editing a module reruns that module's schemes and nothing else.
        self.plugin = {}
        for name in schemes.SCHEMES:
            spec = schemes.module_of(name)
            if spec is not None:
                version = schemes.SCHEMES[name].version
                self.plugin[name] = (spec, schemes.module_digest(spec) + (f"+{version}" if version else ""))
        self.experiments: dict[str, dict] = {}
        self.models: dict[str, dict] = {}
        #: run path -> the run, resolved once: what ``mecmodel simulate-batch`` reads (:meth:`batches`)
        self.run_specs: dict[str, dict] = {}
        for i, layer in enumerate(configs):
            # A scenario's experiments resolve with its own top-level settings (preset, overrides, ...).
            where = "config" if i == 0 else f"config: scenarios[{i - 1}]"
            for name, exp in layer["experiments"].items():
                if name in self.experiments:
                    raise ParamError(
                        f"{where}: experiments.{name}: an experiment of that name is already in the plan; "
                        "give the scenario a prefix (prefix: <name>_)"
                    )
                self.experiments[name] = self._resolve(f"{where}: experiments.{name}", name, exp, layer)

    def _resolve(self, where: str, name: str, exp: Mapping, config: Mapping) -> dict:
        from . import schemes

        preset = exp.get("preset", config.get("preset", "default"))
        # An experiment's overrides go on top of the top-level ones.
        overrides = {**config.get("overrides", {}), **exp.get("overrides", {})}
        seeds = exp.get("seeds", config.get("seeds", 10))
        blocks = exp.get("blocks", config.get("blocks", 2000))
        grid = {axis: _grid(where, axis, exp[axis]) for axis in AXES}
        scheme_list = schemes.select(exp["scheme"], f"{where}.scheme")
        for scheme in scheme_list:
            schemes.get_scheme(scheme).check_K(max(grid["K"]), f"{where}.scheme")
        model_axes, scheme_axes = _extra_axes(where, exp, overrides, scheme_list)
        try:
            params = make_params(preset, overrides)
            for point in itertools.product(*grid.values(), *model_axes.values()):
                make_params(preset, {**overrides, **dict(zip([*AXES, *model_axes], point, strict=True))})
        except ParamError as err:
            raise ParamError(f"{where}: {err}") from None
        for values in itertools.product(*model_axes.values()):
            changes = {**overrides, **dict(zip(model_axes, values, strict=True)), "K": max(grid["K"])}
            _check_size(where, make_params(preset, changes), seeds, blocks)
        model = f"{preset}-{params.model_hash()}"
        if model not in self.models:
            self.models[model] = {"preset": preset, "overrides": {k: params.values[k] for k in sorted(overrides)}}
        runs = []
        for point in itertools.product(*grid.values(), *model_axes.values()):
            # A swept value equal to the model's own is not spelled in the path: the point is the
            # model's, and its run is the one every other experiment at that point shares.
            base = {
                k: v for k, v in zip([*AXES, *model_axes], point, strict=True) if k in AXES or v != params.values[k]
            }
            for scheme in scheme_list:
                # A scheme runs once per value of the parameters it declares (its default, unspelled,
                # is the scheme's own run); the aggregate repeats the run of a scheme that does not
                # declare one along that axis.
                declared = schemes.get_scheme(scheme).params
                own = [p for p in scheme_axes if p in declared]
                for values in itertools.product(*(scheme_axes[p] for p in own)):
                    mine = {p: v for p, v in zip(own, values, strict=True) if v != declared[p].default}
                    path = run_path(model, {**base, **mine, "scheme": scheme}, seeds, blocks)
                    runs.append(path)
                    self.run_specs.setdefault(
                        path,
                        {
                            "output": path,
                            "preset": preset,
                            "overrides": {**self.models[model]["overrides"], **base},
                            "scheme": scheme,
                            "scheme_params": mine,
                            "sweep": sorted(k for k in {**base, **mine} if k not in AXES),
                            "seeds": seeds,
                            "blocks": blocks,
                        },
                    )
        sweep_axes = {**model_axes, **scheme_axes}
        figure = exp.get("figure", "generic")
        varying = [a for a in (*AXES, *sorted(sweep_axes)) if len({**grid, **sweep_axes}[a]) > 1]
        most = {"generic": 2, "tradeoff": 1}.get(figure)
        if most is not None and len(varying) > most:
            raise ParamError(
                f"{where}: figure {figure} draws at most {most} swept {'axes' if most > 1 else 'axis'}, but "
                f"{', '.join(varying)} each have several values; keep fewer of them to several values, or split "
                "the experiment"
            )
        metric = exp.get("metric", "average_cost")
        if metric not in METRIC_NAMES:
            raise ParamError(f"{where}.metric: must be one of {', '.join(METRIC_NAMES)}, got {metric!r}")
        reference = exp.get("reference", "proposed" if "proposed" in scheme_list else scheme_list[0])
        if reference not in scheme_list:
            raise ParamError(
                f"{where}.reference: must be one of the experiment's schemes ({', '.join(scheme_list)}), got {reference!r}"
            )
        resolved = {
            "experiment": name,
            "figure": figure,
            **grid,
            "scheme": scheme_list,
            "seeds": seeds,
            "blocks": blocks,
            "preset": preset,
            "overrides": self.models[model]["overrides"],
            "model": model,
            "metric": metric,
            "reference": reference,
        }
        if sweep_axes:
            resolved["sweep"] = sweep_axes
        return {
            **resolved,
            "varying": varying,
            "runs": runs,
            "json": json.dumps(resolved, sort_keys=True),
            "epsilon": params.values["epsilon"],
            "patience": params.values["patience"],
            "average_fraction": params.values["average_fraction"],
        }

    # --- what the rules ask ---------------------------------------------------------------

    def all_runs(self) -> list[str]:
        return sorted({run for exp in self.experiments.values() for run in exp["runs"]})

    def batch_of(self, run: str) -> dict:
        """The batch (:meth:`batches`) that makes run file ``run``."""
        return next(b for b in self.batches() if run in b["runs"])

    def batches(self) -> list[dict]:
        """The simulation jobs: each a batch of runs of one model, run in one process.

        A process's start-up (about half a second: Python, numpy, numba and the compiled kernels)
        is then paid once for many runs. A model's runs, ordered by K and path, are cut into
        batches where a run's path hashes to 0 modulo :data:`BATCH_RUNS` (content-defined
        chunking: adding or removing a point changes the batch it falls in, and no other), or
        where a batch would exceed :data:`BATCH_MAX_RUNS` runs or :data:`BATCH_WORK` units of
        estimated work (seeds x blocks x (K + 20); such a cut may shift its neighbours' bounds up
        to the next hash cut). The package's schemes share batches; a scheme from a scheme module has batches
        of its own, so that editing the module reruns its runs only. A killed job reruns at most
        its batch."""
        groups: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        for path in sorted(self.run_specs):
            scheme = self.run_specs[path]["scheme"]
            groups[(path.split("/")[2], scheme if scheme in self.plugin else "")].append(path)
        out = []
        for (model, _), paths in sorted(groups.items()):
            paths.sort(key=lambda p: (self.run_specs[p]["overrides"]["K"], p))
            chunk: list[str] = []
            work = 0
            for path in paths:
                w = _run_work(self.run_specs[path])
                if chunk and (work + w > BATCH_WORK or len(chunk) == BATCH_MAX_RUNS):
                    out.append(self._batch(model, chunk))
                    chunk, work = [], 0
                chunk.append(path)
                work += w
                if int(hashlib.sha256(path.encode()).hexdigest()[:8], 16) % BATCH_RUNS == 0:
                    out.append(self._batch(model, chunk))
                    chunk, work = [], 0
            if chunk:
                out.append(self._batch(model, chunk))
        return out

    def _batch(self, model: str, runs: list[str]) -> dict:
        from .simulation import memory_estimate

        bid = hashlib.sha256("\n".join(runs).encode()).hexdigest()[:10]
        specs = [self.run_specs[r] for r in runs]
        schemes = sorted({s["scheme"] for s in specs})
        need = max(
            memory_estimate(make_params(s["preset"], s["overrides"]), s["seeds"], s["blocks"], False) for s in specs
        )
        work = sum(_run_work(s) for s in specs)
        modules = " ".join(dict.fromkeys(self.module_args(s) for s in schemes if s in self.plugin))
        return {
            "id": bid,
            "schemes": schemes,
            "name": f"{model}/{bid}",
            "runs": runs,
            "json": json.dumps(specs, sort_keys=True, separators=(",", ":")),
            "modules": modules,
            "version": " ".join(dict.fromkeys(self.code_version(s) for s in schemes)),
            "mem_mb": 300 + math.ceil(3 * need / 2**20),
            # ten times a 2-core laptop's ~0.1 us per unit of work, at least 5 minutes
            "runtime": max(5, math.ceil(10 * 1e-7 * work / 60)),
            # The larger batches first, every one before any aggregate (priority 0): a long batch
            # started last leaves one core idle while the other finishes it (benchmarks/README.md).
            "priority": 1 + work // 1_000_000,
        }

    def wildcard_constraints(self) -> dict[str, str]:
        return {**FIELD_PATTERNS, "experiment": "|".join(re.escape(n) for n in self.experiments) or "$^"}

    def module_args(self, scheme: str | None = None) -> str:
        """``--scheme-module`` arguments: of every module, or only the one that registered ``scheme``."""
        if scheme is not None:
            specs = [self.plugin[scheme][0]] if scheme in self.plugin else []
        else:
            specs = self.scheme_modules
        return " ".join(f"--scheme-module {shlex.quote(m)}" for m in specs)

    def code_version(self, scheme) -> str:
        """mecmodel's version, and for a scheme from a scheme module the hash of its source
        (``scheme``: a name, or wildcards with one)."""
        from .version import package_version

        scheme = getattr(scheme, "scheme", scheme)
        return f"{package_version()}+{self.plugin[scheme][1]}" if scheme in self.plugin else package_version()

    def experiment_runs(self, wildcards) -> list[str]:
        return self.experiments[wildcards.experiment]["runs"]

    def aggregate_mem_mb(self, wildcards) -> int:
        """All runs in memory twice (loaded and combined), float32 series dominate."""
        exp = self.experiments[wildcards.experiment]
        raw = len(exp["runs"]) * exp["seeds"] * exp["blocks"] * 20 * 4
        return 500 + math.ceil(3 * raw / 2**20)

    def caption_params(self, wildcards) -> dict:
        """What the caption states: everything that decides what the figure shows."""
        from . import schemes

        exp = self.experiments[wildcards.experiment]
        keys = ("figure", *AXES, "scheme", "seeds", "blocks", "preset", "overrides", "model", "epsilon", "patience")
        info = {key: exp[key] for key in keys}
        info.update(sweep=exp.get("sweep", {}), metric=exp["metric"], reference=exp["reference"])
        blocks = exp["blocks"]
        # Same rules as mecmodel.simulation (average_cost) and mecmodel.plots (moving average).
        info["average_from"] = blocks - max(1, int(round(exp["average_fraction"] * blocks)))
        info["window"] = ma_window(blocks)
        info["references"] = [s for s in exp["scheme"] if not schemes.get_scheme(s).in_paper]
        info["descriptions"] = {s: schemes.get_scheme(s).description for s in exp["scheme"]}
        return info
