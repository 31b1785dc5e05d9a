"""Run paths: the one spelling of a point in ``results/runs`` and its parsing back.

The template and each field's pattern are words of :mod:`mecmodel.vocabulary` (:data:`RUN`,
:data:`FIELD_PATTERNS`); every run file, regex and glob derives from them here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .params import FIELD_BY_NAME
from .vocabulary import AXES, FIELD_PATTERNS, INTEGER_AXES, NAME, POINT_DIMS, RUN


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
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(NAME, text):
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
