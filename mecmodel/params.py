"""Model parameters: one table of every field, the presets, validation and hashing.

Every field carries its unit, its allowed range and where its value comes from
(section VI of the paper, or a documented choice in ``docs/model.md``). A wrong
value is rejected with ``ParamError``, whose message names the field and the
allowed range. The presets (``PRESET_TABLE``) are named sets of values over the
defaults; every list of presets (``PRESETS``, error messages, ``mecmodel params``,
the workflow's config schema) comes from that one table.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ParamError(ValueError):
    """A parameter value or name is invalid; the message names the field and range."""


class PolicyError(RuntimeError):
    """A scheme's policy failed during a run: it raised, or the environment refused its action.

    The message is one line naming the scheme, the policy (WD or server), the block and what went
    wrong; the policy's own exception, if any, is the ``__cause__`` (its traceback)."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One parameter: its name, default, unit, meaning, source and allowed values.

    The model's parameters are the table ``FIELDS``; a scheme declares its own the same way
    (``Scheme.params``, numeric fields only). ``check`` validates a value, ``range_text`` spells the
    allowed values; ``mecmodel params`` lists the table.
    """

    name: str
    """The parameter's name, as in ``Params``, overrides and config files (e.g. ``"p_max"``)."""
    default: Any
    """Its value in the ``default`` preset, and in every preset that does not change it."""
    unit: str
    """Its unit in UDUNITS spelling (``"W"``, ``"cycle s-1"``, ``"J s2 cycle-3"``); ``"1"`` for a number
    without unit, ``""`` for a choice or a flag."""
    doc: str
    """What it means, one line (``mecmodel params``, the config schema)."""
    source: str
    """Where its value comes from: the paper (``"paper, section VI"``) or, where the paper gives none, the
    reason for the choice (``"not stated: ..."``, ``"ours: ..."``)."""
    kind: type = float
    """Its type: ``float`` (an int is accepted and converted), ``int`` (a float with an integer value is
    accepted and converted), ``bool``, or ``str`` with ``choices``."""
    lo: float | None = None
    """Lower bound of a number, included unless ``lo_open``; None for none."""
    hi: float | None = None
    """Upper bound of a number, included unless ``hi_open``; None for none."""
    lo_open: bool = False
    """True: the value must be greater than ``lo``, not equal to it."""
    hi_open: bool = False
    """True: the value must be less than ``hi``, not equal to it."""
    choices: tuple[str, ...] | None = None
    """The allowed strings of a choice (``kind`` ``str``), else None."""
    paper: Any = None
    """Its value in the ``paper`` preset when it differs from the default, else None."""
    silent_default: bool = False
    """True for a field added after runs were stored: at its default it is left out of ``Params.to_dict``
    and the hashes (``Params.model_hash``, the config hash), so every existing run keeps its model id;
    readers of params_json fill it in (``mecmodel.results._run_params``)."""

    def range_text(self) -> str:
        """The allowed values in words, as ``ParamError`` messages and ``mecmodel params`` give them:
        ``"one of 'head', 'mod_w', 'single'"``, ``"true or false"``, ``"a number in (0, 100]"`` or
        ``"an integer in [1, 1000]"`` (``[`` or ``]`` includes the bound, ``(`` or ``)`` excludes it; a
        missing bound shows as ``-inf`` or ``inf``)."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.kind is int else "a number"
        if self.kind is bool:
            return "true or false"
        lo = "-inf" if self.lo is None else _fmt(self.lo)
        hi = "inf" if self.hi is None else _fmt(self.hi)
        left = "(" if (self.lo_open or self.lo is None) else "["
        right = ")" if (self.hi_open or self.hi is None) else "]"
        return f"{kind} in {left}{lo}, {hi}{right}"

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to the field's type, or raise ``ParamError`` naming the field and
        ``range_text``.

        A choice must be one of the strings, a flag a bool. A number must be an int or a float (not a
        bool), finite, integer-valued for an ``int`` field and within the bounds; it is returned as an
        ``int`` or a ``float`` as ``kind`` says.
        """
        bad = f"{self.name}: must be {self.range_text()}, got {value!r}"
        if self.choices is not None:
            if not isinstance(value, str) or value not in self.choices:
                raise ParamError(bad)
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ParamError(bad)
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(bad)
        if self.kind is int:
            if isinstance(value, float):
                if not value.is_integer():
                    raise ParamError(bad)
                value = int(value)
        else:
            value = float(value)
        if not math.isfinite(value):
            raise ParamError(bad)
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            raise ParamError(bad)
        if self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)):
            raise ParamError(bad)
        return value


def _fmt(x: float) -> str:
    return f"{x:g}"


_P = "paper, section VI"

FIELDS: tuple[Field, ...] = (
    # --- the operating point (swept by the workflow) ---
    Field("K", 20, "1", "number of wireless devices (WDs)", "paper, Figs. 6-9", int, 1, 10_000_000),
    Field("arrival_prob", 0.4, "1", "task arrival probability per slot, lambda_k", _P, float, 0, 1, True, True),
    Field(
        "gamma",
        0.9,
        "1",
        "discount factor of (9a)",
        "not stated: 0.9, the middle of the swept range; the cost_vs_gamma experiment sweeps it",
        float,
        0,
        1,
        True,
        True,
    ),
    # --- time and tasks ---
    Field("n_slots", 5, "1", "slots per decision block, n", _P, int, 1, 1000),
    Field("tau", 0.1, "s", "slot length, tau", _P, float, 0, 3600, True),
    Field(
        "task_cycles",
        2e8,
        "cycle",
        "CPU cycles per DNN task, W",
        "paper prints 1e10; reduced so the system is stable (docs/model.md)",
        float,
        1,
        1e15,
        paper=1e10,
    ),
    # --- radio ---
    Field("cell_radius", 200.0, "m", "radius of the disc the WDs are dropped in", _P, float, 0, 1e5, True),
    Field(
        "min_distance",
        10.0,
        "m",
        "smallest WD-BS distance (keeps the path loss finite)",
        "not stated: 10 m keeps 30.6 + 37.6 log10 d finite and is a usual exclusion radius",
        float,
        # 1 mm at least: with the path loss bounds below, no drop overflows the gain to inf.
        1e-3,
        1e5,
    ),
    # Bounded so that the gain 10^(-PL/10) stays a finite float for any allowed distance.
    Field("pathloss_a", 30.6, "dB", "path loss intercept: PL = a + b log10(d)", _P, float, 0, 300),
    Field("pathloss_b", 37.6, "dB", "path loss slope per decade of distance", _P, float, 0, 100),
    Field("shadowing_db", 10.0, "dB", "log-normal shadowing standard deviation", _P, float, 0, 40),
    Field(
        "noise_dbw",
        -144.0,
        "dBW",
        "noise power at the BS over the band",
        "paper prints -174 dBW; -174 dBm/Hz over 1 MHz is -144 dBW (docs/model.md)",
        float,
        -300,
        100,
        paper=-174.0,
    ),
    Field("bandwidth", 1e6, "Hz", "bandwidth per WD, B_k", _P, float, 0, 1e12, True),
    Field("snr_gap", 1.5, "1", "SNR gap of the MCS, Gamma", _P, float, 1, 1e6),
    Field(
        "zeta",
        2e-3,
        "bit/cycle",
        "intermediate-output bits per remaining back-end cycle",
        "not stated: a whole back end (W zeta = 0.4 Mbit) needs ~4 bit/s/Hz, reachable at the cell edge below p_max",
        float,
        0,
        1e6,
        True,
    ),
    Field(
        "p_max",
        0.2,
        "W",
        "largest WD transmit power (23 dBm)",
        "not stated: 23 dBm, the LTE/NR handset maximum",
        float,
        0,
        100,
        True,
    ),
    # --- computing ---
    Field("xi_wd", 1e-28, "J s2 cycle-3", "effective switched capacitance of a WD CPU, xi^wd", _P, float, 0, 1, True),
    Field(
        "xi_ser",
        1e-29,
        "J s2 cycle-3",
        "effective switched capacitance of the server CPU, xi^ser",
        _P,
        float,
        0,
        1,
        True,
    ),
    Field(
        "f_wd_max",
        1e9,
        "cycle s-1",
        "largest WD CPU rate, f^wd_max (9c)",
        "not stated: 1 GHz, a handset core; 2.5 tasks of W per block (docs/model.md, load)",
        float,
        0,
        1e13,
        True,
    ),
    Field(
        "f_ser_max",
        5e10,
        "cycle s-1",
        "largest server CPU rate, f^ser_max (9d)",
        "not stated: 50 GHz aggregate, so the server never limits the default grids (125 tasks/block)",
        float,
        0,
        1e15,
        True,
    ),
    Field(
        "local_service",
        "mod_w",
        "",
        "which task a WD partitions and how much it computes locally",
        "not stated: mod_w follows (6) (docs/model.md, local service)",
        str,
        choices=("head", "mod_w", "single"),
    ),
    # --- cost (8) ---
    Field(
        "w1",
        1e-8,
        "cycle-1",
        "weight of the server queue in (8)",
        "not stated: 1e-8 per cycle makes one queued task (W) cost 2",
        float,
        0,
    ),
    Field(
        "w2", 1.0, "J-1", "weight of the server energy in (8)", "not stated: 1 per J (grid-powered server)", float, 0
    ),
    Field(
        "w3",
        1e-8,
        "cycle-1",
        "weight of each WD queue in (8)",
        "not stated: equal to w1, so a task waiting costs the same anywhere",
        float,
        0,
    ),
    Field(
        "w4",
        10.0,
        "J-1",
        "weight of each WD energy in (8)",
        "not stated: 10 per J, battery energy valued 10x the server's",
        float,
        0,
    ),
    # --- learning (section V) ---
    Field("M", 30, "1", "number of sigmoid features per agent", _P, int, 1, 10_000),
    Field(
        "feature_std",
        2.0,
        "1",
        "mu, nu entries ~ N(0, (feature_std)^2 / dim)",
        "not stated: random features scaled by the input dimension keep the sigmoids out of saturation for any K",
        float,
        0,
        1e3,
        True,
    ),
    Field(
        "queue_scale",
        10.0,
        "task",
        "queues enter the features as q / (W * queue_scale)",
        "not stated: queues of about ten tasks map to O(1) feature inputs",
        float,
        0,
        1e12,
        True,
    ),
    Field(
        "gradient",
        "exact",
        "",
        "exact gradient of (24)/(31) or the printed (26)/(33)",
        "not stated which is right: the printed ones have a sign slip (docs/model.md)",
        str,
        choices=("exact", "printed"),
    ),
    Field(
        "alpha0",
        0.02,
        "1",
        "step size at block 0 (both algorithms)",
        "not stated: small enough that no default run diverges",
        float,
        0,
        10,
        True,
    ),
    Field(
        "alpha_t0",
        50.0,
        "block",
        "step size alpha_t = alpha0 / (1 + t / alpha_t0)^alpha_decay",
        "not stated: a usual Robbins-Monro schedule",
        float,
        0,
        1e9,
        True,
    ),
    Field(
        "alpha_decay",
        0.75,
        "1",
        "step-size decay exponent; (0.5, 1] satisfies (36)",
        "not stated: 0.75 is inside the range (36) allows",
        float,
        0.5,
        1,
        True,
        False,
    ),
    Field(
        "theta_init",
        1.0,
        "1",
        "initial value of every entry of theta_k and eta",
        "not stated: nonzero so the relative change is defined at t = 0",
        float,
        -1e6,
        1e6,
    ),
    Field(
        "p_init",
        0.5,
        "1",
        "initial WD power as a fraction of p_max",
        "not stated: the middle of [0, p_max]",
        float,
        0,
        1,
    ),
    Field(
        "f_ser_init",
        0.2,
        "1",
        "initial server rate as a fraction of f^ser_max",
        "not stated: 10 GHz, where a server cycle costs about what a WD cycle does",
        float,
        0,
        1,
    ),
    Field("epsilon", 1e-3, "1", "relative-change stopping tolerance", _P, float, 0, 1, True),
    Field(
        "patience",
        10,
        "block",
        "blocks in a row the relative change must stay <= epsilon",
        "not stated: a single small step is often luck (docs/model.md)",
        int,
        1,
        100_000,
    ),
    Field(
        "freeze_on_convergence",
        True,
        "",
        "stop updating an agent once it has converged",
        "paper: Algorithms 1-2 output their parameters once converged",
        bool,
    ),
    Field(
        "divergence_limit",
        1e8,
        "1",
        "a weight norm above this (or non-finite) marks divergence",
        "ours: divergence detection",
        float,
        0,
        1e300,
        True,
    ),
    # --- randomised baselines ---
    Field(
        "even_fraction",
        0.5,
        "1",
        "share of the partitioned task each WD offloads in 'even'",
        "not stated: half of a task, the even split",
        float,
        0,
        1,
    ),
    # --- reporting ---
    Field(
        "average_fraction",
        0.5,
        "1",
        "long-run average cost is taken over this last share of blocks",
        "ours: reporting",
        float,
        0,
        1,
        True,
        False,
    ),
)

FIELD_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named set of parameter values over the fields' defaults (docs/model.md, note D)."""

    name: str
    doc: str
    changes: Mapping[str, Any]  # field name -> value; every other field keeps its default


#: Every preset, in the order they are listed. The ``paper`` values sit on their fields
#: (``Field.paper``), beside the printed value they come from; other presets list their
#: changes here. A preset changes values only: no field is added, so the default and paper
#: hashes stay as they are.
PRESET_TABLE: tuple[Preset, ...] = (
    Preset(
        "default",
        "the printed values except W = 2e8 cycles and noise -144 dBW, so that the schemes differ by policy",
        {},
    ),
    Preset(
        "paper",
        "every value as printed in section VI (W = 1e10: every queue grows for every scheme)",
        {f.name: f.paper for f in FIELDS if f.paper is not None},
    ),
    Preset(
        "stable",
        "default with f_wd_max = 2 GHz: a WD computes 5 tasks per block, the most that can arrive, "
        "so every queue of Figs. 7-9 stays bounded",
        {"f_wd_max": 2e9},
    ),
)
PRESET_BY_NAME: dict[str, Preset] = {p.name: p for p in PRESET_TABLE}
PRESETS: tuple[str, ...] = tuple(PRESET_BY_NAME)


def _check_presets() -> None:
    """A misspelt field in a preset would otherwise be ignored without a word."""
    for p in PRESET_TABLE:
        unknown = [name for name in p.changes if name not in FIELD_BY_NAME]
        if unknown:
            raise ParamError(f"preset {p.name}: {unknown[0]}: unknown parameter")


_check_presets()


def _preset(name: str) -> dict[str, Any]:
    preset = PRESET_BY_NAME.get(name) if isinstance(name, str) else None
    if preset is None:
        allowed = ", ".join(repr(p) for p in PRESETS)
        raise ParamError(f"preset: must be one of {allowed}, got {name!r}")
    return {f.name: preset.changes.get(f.name, f.default) for f in FIELDS}


@dataclasses.dataclass(frozen=True)
class Params:
    """Validated model parameters, one value per ``Field`` of ``FIELDS``; build with ``make_params``.

    Read a value as an attribute, ``P.p_max`` (in the field's unit, W here), or from the mapping
    ``P.values`` (``P.values["p_max"]``, or to go through every field). Frozen: ``replace`` gives a
    changed copy. ``to_dict`` and ``model_hash`` identify the model.
    """

    values: Mapping[str, Any]
    """Every field's value, name -> value in the order of ``FIELDS``. Do not change it: the attributes are
    copied from it at construction."""
    preset: str = "default"
    """The preset the values start from (``make_params``); ``replace`` keeps it."""

    def __post_init__(self) -> None:
        # Every field as a plain attribute: the simulator reads parameters dozens of times per
        # block, and an instance attribute is found without a call to __getattr__.
        for name, value in self.values.items():
            if name not in ("values", "preset"):
                object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called for a missing attribute. While pickle or copy rebuild an instance, ``values``
        # itself is missing: read the instance dict, never ``self.values`` (that would recurse).
        values = self.__dict__.get("values")
        if values is None or name not in values:
            raise AttributeError(name)
        return values[name]

    def to_dict(self) -> dict[str, Any]:
        """Every value that identifies the model (a ``silent_default`` field at its default is left out)."""
        return {
            k: v
            for k, v in self.values.items()
            if not (FIELD_BY_NAME[k].silent_default and v == FIELD_BY_NAME[k].default)
        }

    def replace(self, **changes: Any) -> Params:
        """A changed copy: the same preset with this one's overrides (its values that differ from the preset)
        and ``changes`` (name=value) applied, validated as by ``make_params`` (a bad name or value is a
        ``ParamError``); e.g. ``P.replace(K=10, p_max=0.1)``."""
        return make_params(self.preset, {**self._overrides(), **changes})

    def _overrides(self) -> dict[str, Any]:
        base = _preset(self.preset)
        return {k: v for k, v in self.values.items() if base[k] != v}

    def model_hash(self) -> str:
        """Hash of everything but the swept point (the grid axes of mecmodel.vocabulary.AXES)."""
        from .vocabulary import AXES

        return stable_hash({k: v for k, v in self.to_dict().items() if k not in AXES})


def make_params(preset: str = "default", overrides: Mapping[str, Any] | None = None) -> Params:
    """Start from ``preset`` and apply ``overrides``; every value is validated.

    ``preset`` is a name of ``PRESETS``; ``overrides`` a mapping of parameter name -> value. Each value
    is checked and converted by its ``Field.check``, and ``min_distance`` must be less than
    ``cell_radius``. A ``ParamError`` names the field and its allowed range (or the closest name, for an
    unknown one). Returns the ``Params``.
    """
    values = _preset(preset)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ParamError(f"overrides: must be a mapping of parameter: value, got {type(overrides).__name__}")
    for key, value in (overrides or {}).items():
        if key not in FIELD_BY_NAME:
            import difflib

            close = difflib.get_close_matches(str(key), list(FIELD_BY_NAME), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParamError(f"{key}: unknown parameter{hint}; see 'mecmodel params'")
        values[key] = value
    for f in FIELDS:
        values[f.name] = f.check(values[f.name])
    if values["min_distance"] >= values["cell_radius"]:
        raise ParamError(
            f"min_distance: must be smaller than cell_radius ({values['cell_radius']:g} m), "
            f"got {values['min_distance']:g}"
        )
    return Params(values, preset)


# YAML 1.2 floats: PyYAML follows YAML 1.1, where 1e6 and 1e-3 (no dot) are read as strings.
_FLOAT_12 = r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$"""


@functools.cache
def _strict_loader() -> type:
    import re

    import yaml

    class StrictLoader(yaml.SafeLoader):
        """Safe YAML (no Python tags) that refuses a repeated key and reads 1e-3 as a number."""

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (list, dict)):
                raise ParamError(f"config: {loader.source}: line {line}: a key must be a name, got {key!r}")
            if key in seen:
                raise ParamError(
                    f"config: {loader.source}: key {key!r} is given twice (lines {seen[key]} and {line}); keep one"
                )
            seen[key] = line
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_FLOAT_12, re.X), list("-+0123456789."))
    return StrictLoader


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML safely, refusing a key repeated in one mapping; raises ParamError.

    Plain PyYAML keeps the last of two equal keys without a word, so a pasted line would
    silently win. Tags such as ``!!python/object`` are refused as by ``yaml.safe_load``,
    and numbers like ``1e-3`` are floats (YAML 1.2) rather than strings.
    """
    import yaml

    loader = _strict_loader()(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParamError(f"config: {source} is not valid YAML{at} ({e.__class__.__name__})") from None
    finally:
        loader.dispose()


def load_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of parameter overrides (safe loader, no repeated keys)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ParamError(f"config: {path} is not UTF-8 text; expected a YAML mapping of parameter: value") from None
    except OSError as e:
        raise ParamError(f"config: cannot read {path}: {e.strerror}") from None
    data = load_yaml(text, str(path))
    if data is None:
        raise ParamError(f"config: {path} is empty; expected a mapping of parameter: value")
    if not isinstance(data, dict):
        raise ParamError(f"config: {path} must hold a mapping of parameter: value, got {type(data).__name__}")
    return data


def stable_hash(obj: Any) -> str:
    """Short SHA-256 of a canonical JSON rendering (floats by repr, keys sorted)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def json_schema() -> dict[str, Any]:
    """JSON schema of the overrides mapping (used by the workflow's config schema)."""
    props: dict[str, Any] = {}
    for f in FIELDS:
        if f.choices is not None:
            props[f.name] = {"enum": list(f.choices), "description": f.doc}
            continue
        if f.kind is bool:
            props[f.name] = {"type": "boolean", "description": f.doc}
            continue
        p: dict[str, Any] = {"type": "integer" if f.kind is int else "number", "description": f"{f.doc} [{f.unit}]"}
        if f.lo is not None:
            p["exclusiveMinimum" if f.lo_open else "minimum"] = f.lo
        if f.hi is not None:
            p["exclusiveMaximum" if f.hi_open else "maximum"] = f.hi
        props[f.name] = p
    return {"type": "object", "properties": props, "additionalProperties": False}
