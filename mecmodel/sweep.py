"""The sweep's logic in one importable home; the Snakemake rules only call it.

* the grid axes (:data:`AXES`, declared once) and the canonical spelling of their values;
* the run-path template (:data:`RUN`): every run file, regex and glob derives from it;
* config layers (``extends``: a scenario on top of another config, with its own experiment-name
  prefix) and the checks Snakemake's loader lacks (repeated keys, YTE templates);
* experiment resolution (:class:`Sweep`): inherited settings, scheme selectors, every point's
  parameters checked, models, run paths;
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .params import ParamError, load_yaml, make_params
from .vocabulary import AXES, POINT_DIMS, ma_window

#: An experiment's keys that are not parameter axes; any other key sweeps a parameter (of the model
#: table or one a scheme declares), e.g. ``f_ser_max: [5.0e9, 1.0e10]`` or ``V: [1, 10]``.
EXPERIMENT_KEYS = ("figure", *AXES, "scheme", "seeds", "blocks", "preset", "overrides", "metric", "reference")
#: A run below ``<root>/runs``, without suffix; ``{model}`` is ``<preset>-<model hash>``. ``{extra}``
#: is empty, or the other swept parameters of the point, ``name=value`` by name joined by commas,
#: then a slash (:func:`spell_extra`): today's four axes keep the paths they always had.
RUN = (
    "{model}/"
    + "/".join(f"{prefix}{{{axis}}}" for axis, prefix in AXES.items())
    + "/{extra}{scheme}/s{seeds}-b{blocks}"
)
RUN_FILE = f"results/runs/{RUN}.nc"
#: Folders the rules write into; each must be a directory where it exists.
RESULT_DIRS = ("results", "results/runs", "results/figures", "results/logs", "results/benchmarks")

#: Canonical numbers as :func:`canonical_number` writes them: no slash, no double dot.
NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:e[-+][0-9]+)?"
_NAME = r"[A-Za-z][A-Za-z0-9_]*"
#: A swept value in a path: a canonical number, a boolean, or a choice (a name).
_VALUE = rf"(?:-?{NUMBER}|true|false|{_NAME})"
#: Each placeholder's wildcard constraint (Snakemake) and regex group.
FIELD_PATTERNS = {
    "model": r"[A-Za-z0-9_]+-[0-9a-f]{12}",
    "K": r"[1-9][0-9]*",
    "arrival_prob": NUMBER,
    "gamma": NUMBER,
    "extra": rf"(?:{_NAME}={_VALUE}(?:,{_NAME}={_VALUE})*/)?",
    "scheme": r"[A-Za-z][A-Za-z0-9_]*",
    "seeds": r"[1-9][0-9]*",
    "blocks": r"[1-9][0-9]*",
}
INTEGER_AXES = ("K",)


def _template_regex(template: str) -> re.Pattern:
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<{m[1]}>{FIELD_PATTERNS[m[1]]})")
        pos = m.end()
    return re.compile("".join(out) + re.escape(template[pos:]))


#: A run file's path below ``<root>/runs``, parsed back into its fields.
RUN_PATTERN = _template_regex(RUN + ".nc")
#: Glob for run files below ``<root>/runs`` (``**``: with or without the extra component).
RUN_GLOB = re.sub(r"\{\w+\}", "*", RUN.replace("{extra}{scheme}", "**")) + ".nc"


def canonical_number(x: float | int | str) -> str:
    """The one spelling of a grid value used in paths: ``0.4``, ``0.40`` and ``4e-1`` all give ``0.4``."""
    return format(float(x), ".10g")


def _spell(axis: str, value: Any) -> str:
    return str(int(value)) if axis in INTEGER_AXES else canonical_number(value)


def spell_value(name: str, value: Any) -> str:
    """A swept value as paths spell it: canonical numbers, ``true``/``false``, a choice as is."""
    from .params import FIELD_BY_NAME

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    field = FIELD_BY_NAME.get(name)
    if field is not None and field.kind is int:
        return str(int(value))
    return canonical_number(value)


def read_value(name: str, text: str) -> Any:
    """A swept value of a path back as a number (int for integer model fields), bool or choice."""
    from .params import FIELD_BY_NAME

    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(_NAME, text):
        return text
    field = FIELD_BY_NAME.get(name)
    return int(text) if field is not None and field.kind is int else float(text)


def spell_extra(extra: Mapping[str, Any]) -> str:
    """The ``{extra}`` part of a run path: ``""``, or ``a=1,b=0.5/`` ordered by name."""
    if not extra:
        return ""
    return ",".join(f"{name}={spell_value(name, extra[name])}" for name in sorted(extra)) + "/"


def parse_extra(text: str) -> dict[str, Any]:
    """The swept values of an ``{extra}`` part (the inverse of :func:`spell_extra`)."""
    out = {}
    for item in filter(None, text.rstrip("/").split(",")):
        name, _, value = item.partition("=")
        out[name] = read_value(name, value)
    return out


def run_path(model: str, point: Mapping[str, Any], seeds: int, blocks: int, root: str = "results") -> str:
    """Canonical path of one run file; ``point`` maps every axis of :data:`POINT_DIMS` to its value,
    and any other swept parameter of the point (a model or scheme parameter) to its value."""
    fields = {axis: _spell(axis, point[axis]) for axis in AXES}
    extra = spell_extra({k: v for k, v in point.items() if k not in POINT_DIMS})
    return (
        f"{root}/runs/"
        + RUN.format(model=model, extra=extra, scheme=point["scheme"], seeds=int(seeds), blocks=int(blocks), **fields)
        + ".nc"
    )


def parse_run_path(relative: str) -> dict[str, Any] | None:
    """The fields of a run path below ``<root>/runs`` (typed), or None if it is off the layout.

    Besides ``model``, the axes, ``scheme``, ``seeds`` and ``blocks``, the point's other swept
    parameters appear under their own names."""
    m = RUN_PATTERN.fullmatch(relative)
    if m is None:
        return None
    g = m.groupdict()
    out: dict[str, Any] = {
        "model": g["model"],
        "scheme": g["scheme"],
        "seeds": int(g["seeds"]),
        "blocks": int(g["blocks"]),
    }
    for axis in AXES:
        out[axis] = int(g[axis]) if axis in INTEGER_AXES else float(g[axis])
    out.update(parse_extra(g["extra"] or ""))
    return out


# ----------------------------------------------------------------------------- config files


def _no_repeats(path: str):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        for key in keys:
            if keys.count(key) > 1:
                raise ParamError(f"config: {path}: key {key!r} is given twice; keep one of them")
        return collections.OrderedDict(pairs)

    return hook


def read_config_file(path: str | os.PathLike) -> Any:
    """Read a config file strictly: repeated keys and YTE templates are refused."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text, object_pairs_hook=_no_repeats(str(path)))
    except ValueError:
        data = load_yaml(text, str(path))
    if isinstance(data, dict) and "__use_yte__" in data:
        # Snakemake has already evaluated the template's Python expressions by now; refusing
        # the file at least keeps a sweep from running on values computed by code.
        raise ParamError(
            f"config: {path}: __use_yte__: YTE templates run Python code; this workflow takes plain YAML configs only"
        )
    return data


def apply_layers(config: dict, configfiles: Sequence[str | os.PathLike], _seen: tuple[Path, ...] = ()) -> dict:
    """Resolve ``extends`` and ``prefix``: a config that names a base config is laid on top of it.

    The base (a path relative to the layer's file) is read, itself resolved, and the layer's
    top-level keys replace the base's, except ``experiments``, which the layer adds to (or
    replaces by name, or removes with ``name: null``). ``prefix`` is put before the name of every experiment of the result, so
    that a scenario's aggregates and figures sit beside the base's.
    """
    if not isinstance(config.get("experiments", {}), dict):
        raise ParamError(
            f"config: experiments: must be a mapping of experiment name: grid, got {config['experiments']!r}"
        )
    if "extends" not in config:
        prefix = str(config.get("prefix", ""))
        out = {k: v for k, v in config.items() if k != "prefix"}
        if prefix and isinstance(out.get("experiments"), dict):
            out["experiments"] = {prefix + name: exp for name, exp in out["experiments"].items()}
        return out
    layer_file = next((Path(f) for f in reversed(configfiles) if "extends" in (read_config_file(f) or {})), None)
    here = layer_file.parent if layer_file is not None else Path.cwd()
    base_path = here / str(config["extends"])
    if not base_path.is_file():
        raise ParamError(f"config: extends: no such config file {str(base_path)!r}")
    if base_path.resolve() in _seen or (layer_file is not None and base_path.resolve() == layer_file.resolve()):
        raise ParamError(f"config: extends: {str(base_path)!r} extends itself through a cycle of layers")
    base = read_config_file(base_path)
    if not isinstance(base, dict):
        raise ParamError(f"config: extends: {base_path} is not a mapping of keys")
    seen = (*_seen, *((layer_file.resolve(),) if layer_file is not None else ()), base_path.resolve())
    base = apply_layers(base, [base_path], seen)
    merged = {**base, **{k: v for k, v in config.items() if k not in ("extends", "experiments", "prefix")}}
    merged["experiments"] = {**base.get("experiments", {}), **config.get("experiments", {})}
    # a layer removes one of the base's experiments by setting it to null
    merged["experiments"] = {name: exp for name, exp in merged["experiments"].items() if exp is not None}
    prefix = str(config.get("prefix", ""))
    if prefix:
        merged["experiments"] = {prefix + name: exp for name, exp in merged["experiments"].items()}
    return merged


def _field_name(path: Sequence) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".") or "top level"


def _looks_like_number(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def schema_error_message(error) -> str:
    """One line for a ``jsonschema.ValidationError``: the field first, then a hint where one helps."""
    field, hint = _field_name(error.absolute_path), ""
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        if unknown:
            key = str(unknown[0])
            field = _field_name([*error.absolute_path, key])
            if key in AXES:
                hint = f"; {key} is swept by each experiment's grid, not set in overrides"
            else:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                listing = ", ".join(allowed) if len(allowed) <= 12 else "see 'mecmodel params'"
                hint += f" Allowed keys: {listing}"
    elif error.validator == "unevaluatedProperties" and isinstance(error.instance, dict):
        # An experiment's key that is neither one of its own nor a model parameter, with a value that
        # is not a list of numbers (what a parameter a scheme declares would need).
        from .params import FIELD_BY_NAME

        allowed = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed and k not in FIELD_BY_NAME]
        if unknown:
            key = str(unknown[0])
            field = _field_name([*error.absolute_path, key])
            close = difflib.get_close_matches(key, [*allowed, *FIELD_BY_NAME], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return (
                f"config: {field}: {key!r} was unexpected: not a key of an experiment, nor a parameter to sweep "
                f"(a list of numbers){hint} Allowed keys: {', '.join(allowed)}, or a model parameter "
                "('mecmodel params') or a parameter of the experiment's schemes ('mecmodel schemes') with a list of values"
            )
    elif error.validator == "type" and _looks_like_number(error.instance):
        mantissa, _, exponent = format(float(error.instance), ".10g").partition("e")
        spelled = (mantissa if "." in mantissa else mantissa + ".0") + (f"e{exponent}" if exponent else "")
        hint = (
            f"; YAML reads {error.instance} as text: write the number with a dot and a signed exponent, "
            f"{spelled} (1.0e-8, not 1e-8; 1.0e+9, not 1.0e9)"
        )
    return f"config: {field}: {error.message}{hint}"


def check_results_dir() -> None:
    """A file where a results folder belongs would otherwise surface as a traceback."""
    for folder in RESULT_DIRS:
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise ParamError(
                f"results: {os.path.abspath(folder)} exists but is not a directory; "
                "move it away (the workflow writes its outputs into that folder)"
            )
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            raise ParamError(
                f"results: {os.path.abspath(folder)} is not writable; fix its permissions or run from another directory"
            )


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


#: Per-seed variables an experiment's ``metric`` may name (mecmodel.dataset.METRICS and the cost).
METRIC_NAMES = (
    "average_cost",
    "discounted_cost",
    "latency",
    "mean_queue_wd",
    "mean_queue_server",
    "mean_energy_wd",
    "mean_energy_server",
    "mean_energy",
    "offloaded_share",
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


SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def validate(config: dict, schema: str | os.PathLike = SCHEMA) -> None:
    """Check ``config`` against the JSON schema and fill its defaults (Snakemake's validator)."""
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as snakemake_validate

    try:
        snakemake_validate(config, os.fspath(schema))
    except WorkflowError as err:
        # Lead with the offending field (jsonschema's own report quotes the schema).
        if not isinstance(err.__context__, jsonschema.ValidationError):
            raise
        raise ParamError(schema_error_message(err.__context__)) from None


def prepare(config: dict, configfiles: Sequence[str | os.PathLike], schema: str | os.PathLike = SCHEMA) -> Sweep:
    """Everything the workflow does when it reads a config, in order, before any job.

    The files are re-read strictly, layers resolved (``config`` is updated in place, as the
    Snakefile's global config must be), the schema checked and its defaults filled, the
    ``results`` folders checked, and the experiments resolved. Raises :class:`ParamError`.
    """
    for path in configfiles:
        read_config_file(path)
    layered = apply_layers(dict(config), configfiles)
    config.clear()
    config.update(layered)
    validate(config, schema)
    check_results_dir()
    return Sweep(config)


#: Simulation jobs: a cut after a run whose path hashes to 0 modulo BATCH_RUNS (so about that many
#: runs each), and at most BATCH_MAX_RUNS runs and BATCH_WORK estimated work (seeds x blocks x
#: (K + 20) summed over its runs, about a microsecond each); see Sweep.batches.
BATCH_RUNS = 16
BATCH_MAX_RUNS = 32
BATCH_WORK = 30_000_000


def _run_work(spec: Mapping[str, Any]) -> int:
    return int(spec["seeds"]) * int(spec["blocks"]) * (int(spec["overrides"]["K"]) + 20)


class Sweep:
    """A validated config resolved into experiments, models and run paths.

    ``experiments[name]`` holds the resolved grid (``K``, ``arrival_prob``, ``gamma``,
    ``scheme`` as lists), ``seeds``, ``blocks``, ``preset``, ``overrides``, ``model``,
    ``figure``, ``runs`` (run-file paths) and ``json`` (what the aggregate stores).
    ``models[model]`` holds its preset and overrides.
    """

    def __init__(self, config: Mapping[str, Any]):
        from . import schemes

        self.scheme_modules = list(config.get("scheme_modules", []))
        schemes.load_modules(self.scheme_modules, "config: scheme_modules")
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
        for name, exp in config["experiments"].items():
            self.experiments[name] = self._resolve(f"config: experiments.{name}", name, exp, config)

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
        if figure in ("generic", "tradeoff") and len(varying) > 1:
            raise ParamError(
                f"{where}: figure {figure} draws one swept axis, but {', '.join(varying)} each have several "
                "values; keep one of them to several values, or split the experiment"
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
            "runtime": max(5, math.ceil(10 * 1e-7 * sum(_run_work(s) for s in specs) / 60)),
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
        from . import __version__

        scheme = getattr(scheme, "scheme", scheme)
        return f"{__version__}+{self.plugin[scheme][1]}" if scheme in self.plugin else __version__

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
