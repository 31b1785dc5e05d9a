"""Config files as the workflow reads them: strictly, in layers, against the schema.

* :func:`read_config_file`: repeated keys and YTE templates refused;
* :func:`apply_layers`: ``extends`` (a scenario on top of another config) and ``prefix`` (its
  experiment-name prefix);
* :func:`scenarios`: the scenarios a config runs in the same invocation, each resolved;
* :func:`validate`: the JSON schema (``workflow/schemas/config.schema.yaml``), its defaults filled,
  each violation one line naming the field (:func:`schema_error_message`);
* :func:`check_results_dir`: the folders the rules write into are folders, and writable.

Errors are :class:`mecmodel.params.ParamError` with one line that starts with ``config`` (or
``results``) and names the field.
"""

from __future__ import annotations

import collections
import difflib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .params import FIELD_BY_NAME, ParamError, load_yaml
from .vocabulary import AXES

#: Folders the rules write into; each must be a directory where it exists.
RESULT_DIRS = ("results", "results/runs", "results/figures", "results/logs", "results/benchmarks")


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
    # A base's scenarios are its own: a layer on top of config.yaml does not run config.yaml's scenarios.
    base = {k: v for k, v in base.items() if k != "scenarios"}
    merged = {**base, **{k: v for k, v in config.items() if k not in ("extends", "experiments", "prefix")}}
    merged["experiments"] = {**base.get("experiments", {}), **config.get("experiments", {})}
    # a layer removes one of the base's experiments by setting it to null
    merged["experiments"] = {name: exp for name, exp in merged["experiments"].items() if exp is not None}
    prefix = str(config.get("prefix", ""))
    if prefix:
        merged["experiments"] = {prefix + name: exp for name, exp in merged["experiments"].items()}
    return merged


def scenarios(config: Mapping[str, Any], configfiles: Sequence[str | os.PathLike], schema=None) -> list[dict]:
    """The scenarios ``config`` lists (``scenarios: [stable.yaml]``), each resolved and validated.

    A scenario is a config file (relative to the file that lists it) run in the same invocation:
    its layers resolved (it usually ``extends`` this one, with a ``prefix``), its own scenarios not
    followed, its schema checked. Its experiments join this config's in one plan.
    """
    listed = list(config.get("scenarios", []))
    if not listed:
        return []
    # relative to the file that lists them (the last one that does: Snakemake's later files win)
    lists = [Path(f) for f in configfiles if isinstance(data := read_config_file(f), dict) and "scenarios" in data]
    here = lists[-1].parent if lists else Path.cwd()
    out = []
    for i, name in enumerate(listed):
        path = here / str(name)
        if not path.is_file():
            raise ParamError(f"config: scenarios[{i}]: no such config file {str(path)!r}")
        data = read_config_file(path)
        if not isinstance(data, dict):
            raise ParamError(f"config: scenarios[{i}]: {path} is not a mapping of keys")
        scenario = apply_layers(data, [path])
        scenario.pop("scenarios", None)
        try:
            validate(scenario, schema or SCHEMA)
        except ParamError as err:
            raise ParamError(f"config: scenarios[{i}] ({name}): {str(err).removeprefix('config: ')}") from None
        out.append(scenario)
    return out


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
