# Parse-time checks, run before the jobs are even planned: the config files re-read
# strictly, the JSON schema, and the working directory's results/ folder. Each problem
# stops Snakemake with one message that starts with "config" (or "results") and names
# the field and what it allows.

import collections
import difflib
import json
import os

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from mecmodel.params import ParamError, load_yaml

# Swept by each experiment's grid; never a key of `overrides`.
GRID_KEYS = ("K", "arrival_prob", "gamma")
# Folders the rules write into; each must be a directory where it exists.
RESULT_DIRS = (
    "results",
    "results/runs",
    "results/figures",
    "results/logs",
    "results/benchmarks",
)


def _json_pairs(path):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        for key in keys:
            if keys.count(key) > 1:
                raise WorkflowError(
                    f"config: {path}: key {key!r} is given twice; keep one of them"
                )
        return collections.OrderedDict(pairs)

    return hook


def check_config_file(path):
    """Refuse what Snakemake's own loader lets through: repeated keys and YTE templates."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        data = json.loads(text, object_pairs_hook=_json_pairs(path))
    except ValueError:
        try:
            data = load_yaml(text, str(path))
        except ParamError as err:
            raise WorkflowError(str(err)) from None
    if isinstance(data, dict) and "__use_yte__" in data:
        # Snakemake has already evaluated the template's Python expressions by now; refusing
        # the file at least keeps a sweep from running on values computed by code.
        raise WorkflowError(
            f"config: {path}: __use_yte__: YTE templates run Python code; "
            "this workflow takes plain YAML configs only"
        )


def _field_name(path):
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".") or "top level"


def _unknown_key(error):
    """(the unexpected key's field, a hint: the closest allowed key or where the key belongs)."""
    allowed = list(error.schema.get("properties", {}))
    unknown = [k for k in error.instance if k not in allowed]
    if not unknown:
        return _field_name(error.absolute_path), ""
    key = str(unknown[0])
    field = _field_name([*error.absolute_path, key])
    if key in GRID_KEYS:
        return (
            field,
            f"; {key} is swept by each experiment's grid, not set in overrides",
        )
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if len(allowed) <= 12:
        return field, f"{hint} Allowed keys: {', '.join(allowed)}"
    return field, f"{hint} Allowed keys: see 'mecmodel params'"


def _looks_like_number(value):
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_config(config):
    for path in workflow.configfiles:
        check_config_file(path)
    try:
        validate(config, "../schemas/config.schema.yaml")
    except WorkflowError as err:
        # Lead with the offending field (jsonschema's own report quotes the schema).
        cause = err.__context__
        if not isinstance(cause, jsonschema.ValidationError):
            raise
        field, hint = _field_name(cause.absolute_path), ""
        if cause.validator == "additionalProperties":
            field, hint = _unknown_key(cause)
        elif cause.validator == "type" and _looks_like_number(cause.instance):
            hint = (
                f"; YAML reads {cause.instance} as text: write the number with a dot "
                "(1.0e-8, not 1e-8)"
            )
        raise WorkflowError(f"config: {field}: {cause.message}{hint}") from None


def check_results_dir():
    """A file where a results folder belongs would otherwise surface as a traceback."""
    for folder in RESULT_DIRS:
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise WorkflowError(
                f"results: {os.path.abspath(folder)} exists but is not a directory; "
                "move it away (the workflow writes its outputs into that folder)"
            )
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            raise WorkflowError(
                f"results: {os.path.abspath(folder)} is not writable; "
                "fix its permissions or run from another directory"
            )


check_config(config)
check_results_dir()
