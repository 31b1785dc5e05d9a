"""The scheme registry: the single source of every scheme's name, policies, label, kind and style.

A scheme pairs a WD policy (which transmit power p_k each WD commands, which fixes its task
partition through (3)-(4)) with a server policy (the server CPU rates f^ser), see
``mecmodel.policies``. Section VI's schemes and the references the paper lacks:

================== ============================================ ===========================
scheme             WDs                                          server
================== ============================================ ===========================
proposed           Algorithm 1, partial offloading              Algorithm 2
binary             Algorithm 1, whole-task offloading           Algorithm 2
even               every WD offloads the same share of a task   Algorithm 2
random             each WD offloads a uniformly random share    Algorithm 2
local              never offload (p = 0)                        Algorithm 2 (idle)
offload            p = p_max: as much as the channel carries    Algorithm 2
even_min_energy    as even                                      MinEnergy
offload_min_energy as offload                                   MinEnergy
myopic             MyopicWD (this block's own cost)             MyopicServer
dpp                DriftPlusPenaltyWD(V), V a parameter (1)     DriftPlusPenaltyServer(V)
proposed_q         Algorithm 1's critic, descends learned Q     Algorithm 2's, likewise
optimal (K <= 2)   value iteration on the discretised model     (joint, centralised)
decomposed (K<=2)  Theorem 1's decomposition, solved exactly    (best response)
================== ============================================ ===========================

Everything else reads this registry: the sweep's scheme lists (``scheme: all``, ``paper``,
``references``) and name checks, plot order (registration order), styles and panels,
``mecmodel schemes`` and the report captions. A scheme from outside the package is a module
that calls ``register`` when imported, named in a config's ``scheme_modules`` or with
``mecmodel --scheme-module`` (``docs/schemes.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .bounds import LagrangianWD
from .loading import import_file
from .optimum import MAX_K
from .optimum import policies as optimum_policies
from .params import FIELD_BY_NAME, Field, ParamError
from .policies.actor_critic import CriticDescentServer, CriticDescentWD
from .policies.base import ServerPolicy, WDPolicy
from .policies.myopic import (
    CentralDriftPlusPenaltyWD,
    DriftPlusPenaltyServer,
    DriftPlusPenaltyWD,
    MyopicServer,
    MyopicWD,
)
from .policies.qlearning import Algorithm1, Algorithm2
from .policies.rules import EvenShare, FixedPower, MinEnergy, RandomShare

KINDS = ("paper", "reference")
#: What a config may write instead of a list of scheme names.
SELECTORS = {
    "all": "every registered scheme",
    "paper": "the schemes of the paper's section VI",
    "references": "the references the paper lacks",
}
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One registered scheme. ``wd()`` and ``server()`` build fresh policies for a run."""

    name: str
    description: str
    wd: Callable[[], WDPolicy]
    server: Callable[[], ServerPolicy]
    kind: str
    label: str
    style: Mapping[str, Any]
    source: str  # the module that registered it
    version: str = ""  # anything else its runs depend on (e.g. a trained agent's weights hash)
    max_K: int | None = None  # largest K it runs at (an exact solver); None: any K
    listed: bool = True  # picked by the selectors (all, references); False: named explicitly
    #: Parameters the scheme's policies take (keyword arguments of ``wd`` and ``server``), each a
    #: ``mecmodel.params.Field`` with its default, unit and range; a sweep may list values for them.
    params: Mapping[str, Field] = dataclasses.field(default_factory=dict)

    def param_values(self, values: Mapping[str, Any] | None = None, field: str = "scheme_params") -> dict[str, Any]:
        """Every declared parameter: the value given (checked against its range) or its default."""
        values = dict(values or {})
        for name in values:
            if name not in self.params:
                declared = ", ".join(self.params) or "none"
                raise ParamError(
                    f"{field}.{name}: scheme {self.name!r} has no parameter {name!r} (it declares: {declared})"
                )
        out = {}
        for name, spec in self.params.items():
            try:
                out[name] = spec.check(values.get(name, spec.default))
            except ParamError as e:
                raise ParamError(f"{field}.{e}") from None
        return out

    def policies(self, values: Mapping[str, Any] | None = None) -> tuple[WDPolicy, ServerPolicy]:
        """Fresh WD and server policies for a run, built with the scheme's parameter values."""
        kw = self.param_values(values)
        return self.wd(**kw), self.server(**kw)

    def check_K(self, K: int, field: str = "scheme") -> None:
        """Refuse (``mecmodel.params.ParamError``) a K above the scheme's ``max_K``."""
        if self.max_K is not None and K > self.max_K:
            raise ParamError(f"{field}: scheme {self.name!r} runs for K <= {self.max_K} only, got K = {K}")

    @property
    def in_paper(self) -> bool:
        return self.kind == "paper"


SCHEMES: dict[str, Scheme] = {}
#: Scheme modules loaded in this process: the spec as given -> the module's name (a Scheme's source).
MODULES: dict[str, str] = {}


#: Colours of schemes registered without a style, in registration order: each at least 34 CIELAB
#: units (Delta E 76) from every built-in colour and grey, at least 28 from one another, and dark
#: enough on white (L* <= 62).
UNSTYLED_COLORS = ("#e7298a", "#332288", "#66a61e", "#b2182b", "#9970ab", "#882255", "#808000", "#cc6677")
UNSTYLED_MARKERS = ("s", "^", "D", "v", "P", "X", "*", "<")
_unstyled: dict[str, int] = {}


def default_style(name: str, kind: str) -> dict[str, Any]:
    """The style of a scheme registered without one: the next colour and marker of
    ``UNSTYLED_COLORS`` and ``UNSTYLED_MARKERS`` (distinct from the built-ins' and from one
    another, in registration order); solid for kind ``paper``, dashed for a reference."""
    i = _unstyled.setdefault(name, len(_unstyled))
    color = UNSTYLED_COLORS[i % len(UNSTYLED_COLORS)]
    # past the colours, the markers keep the next ones apart
    marker = UNSTYLED_MARKERS[(i + i // len(UNSTYLED_COLORS)) % len(UNSTYLED_MARKERS)]
    linestyle = "-" if kind == "paper" else (0, (5, 1.5))
    return {"color": color, "linestyle": linestyle, "marker": marker, "linewidth": 1.5, "zorder": 5}


def register(
    name: str,
    *,
    wd: Callable[[], WDPolicy],
    server: Callable[[], ServerPolicy],
    description: str,
    kind: str = "reference",
    label: str | None = None,
    style: Mapping[str, Any] | None = None,
    version: str = "",
    source: str | None = None,
    max_K: int | None = None,
    listed: bool = True,
    params: Mapping[str, Field] | None = None,
) -> Scheme:
    """Add a scheme to the registry and return it.

    ``wd`` and ``server`` are zero-argument callables (a class, a lambda) that build the policies;
    ``kind`` is ``"paper"`` or ``"reference"`` (references are drawn dashed by default and left
    out of the "paper's schemes" panels); ``label`` is the legend text (default: the name);
    ``style`` holds matplotlib keywords ``color``, ``linestyle``, ``marker``, ``linewidth``,
    ``zorder`` (missing ones get a default). Registering a name again from the same module
    replaces it; from another module it is an error. ``max_K`` marks a scheme that only runs
    for small K (an exact solver): the selectors leave it out and a config names it explicitly,
    as they do with ``listed=False``. ``params`` declares the keyword arguments ``wd`` and ``server``
    take (name -> ``mecmodel.params.Field``: default, unit, range, description); a config
    sweeps them like model parameters (``V: [0.1, 1, 10]``), and both factories get every one.
    """
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in SELECTORS:
        raise ParamError(
            f"scheme: a name is a letter then letters, digits or _ and not one of {', '.join(SELECTORS)}, got {name!r}"
        )
    if kind not in KINDS:
        raise ParamError(f"scheme {name}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not (callable(wd) and callable(server)):
        raise ParamError(f"scheme {name}: wd and server must be callables that build a policy")
    for pname, spec in (params or {}).items():
        if not isinstance(spec, Field) or spec.name != pname or spec.kind not in (int, float):
            raise ParamError(f"scheme {name}: params.{pname} must be a numeric mecmodel.params.Field named {pname!r}")
        if pname in FIELD_BY_NAME:
            raise ParamError(f"scheme {name}: params.{pname} is the name of a model parameter; choose another")
    source = source or _caller_module()
    old = SCHEMES.get(name)
    if old is not None and old.source != source:
        raise ParamError(f"scheme {name}: already registered by {old.source}")
    given = dict(style or {})
    # a complete style takes no colour of the palette; a partial one is completed from it
    full_style = (
        given
        if {"color", "linestyle", "marker", "linewidth", "zorder"} <= set(given)
        else {
            **default_style(name, kind),
            **given,
        }
    )
    scheme = Scheme(
        name,
        " ".join(description.split()),
        wd,
        server,
        kind,
        label or name,
        MappingProxyType(full_style),
        source,
        str(version),
        max_K,
        listed and max_K is None,
        MappingProxyType(dict(params or {})),
    )
    SCHEMES[name] = scheme
    return scheme


def _caller_module() -> str:
    frame = sys._getframe(2)
    return frame.f_globals.get("__name__", "?")


def get_scheme(name: str) -> Scheme:
    """The registered scheme ``name``; an unknown name is a ``mecmodel.params.ParamError``
    listing the registered ones."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ParamError(f"scheme: must be one of {', '.join(SCHEMES)}, got {name!r}") from None


def select(spec: str | Iterable[str], field: str = "scheme") -> list[str]:
    """Scheme names of a config value: a selector (``all``, ``paper``, ``references``) or a list of
    names and selectors (``[all, optimal]``). Selectors leave out small-K schemes (``max_K``)."""
    if isinstance(spec, str):
        if spec not in SELECTORS:
            raise ParamError(f"{field}: must be a list of schemes or one of {', '.join(SELECTORS)}, got {spec!r}")
        want = {"all": KINDS, "paper": ("paper",), "references": ("reference",)}[spec]
        return [n for n, s in SCHEMES.items() if s.kind in want and s.listed]
    names: list[str] = []
    for n in spec:
        for m in select(n, field) if n in SELECTORS else [n]:
            if m not in names:
                names.append(m)
    for i, n in enumerate(names):
        if n not in SCHEMES:
            raise ParamError(
                f"{field}[{i}]: unknown scheme {n!r}; registered: {', '.join(SCHEMES)} "
                "(a scheme of your own needs its module in scheme_modules)"
            )
    return names


def order(names: Iterable[str]) -> list[str]:
    """Registered schemes in registration order, then any other name alphabetically."""
    present = [str(s) for s in names]
    return [s for s in SCHEMES if s in present] + sorted(s for s in present if s not in SCHEMES)


def load_modules(specs: Iterable[str], field: str = "scheme_modules") -> None:
    """Import scheme modules: a path to a ``.py`` file (relative to the working directory) or a
    dotted module name on ``sys.path``. Importing a module registers its schemes."""
    for spec in specs:
        try:
            if spec.endswith(".py"):
                path = Path(spec).resolve()
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {str(path)!r}")
                # One spelling per file (./x.py, x.py and its absolute path are one module), so
                # that the jobs of its schemes do not depend on how a config spells it.
                spec = canonical_spec(spec)
                MODULES[spec] = import_file(path, "mecmodel_scheme_").__name__
            else:
                # As `python -m` does: a module in the working directory is importable.
                if os.getcwd() not in sys.path and "" not in sys.path:
                    sys.path.insert(0, os.getcwd())
                importlib.import_module(spec)
                MODULES[spec] = spec
        except ParamError as e:
            raise ParamError(f"{field}: {spec}: {e}") from None
        except Exception as e:  # any error of the user's module: one line naming it
            raise ParamError(f"{field}: cannot import {spec!r}: {type(e).__name__}: {e}") from None


def canonical_spec(spec: str) -> str:
    """A scheme module's one spelling: a ``.py`` file relative to the working directory when it is
    inside it (``./a/../x.py`` -> ``x.py``), else its absolute path; a dotted name as is."""
    if not spec.endswith(".py"):
        return spec
    path = Path(spec).resolve()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def module_file(spec: str) -> Path | None:
    """The source file of a loaded scheme module (``spec`` as ``load_modules`` was given it)."""
    module = sys.modules.get(MODULES.get(canonical_spec(spec), spec))
    return Path(module.__file__) if module is not None and getattr(module, "__file__", None) else None


def module_of(name: str) -> str | None:
    """The spec (as given to ``load_modules``) of the module that registered scheme ``name``;
    None for a scheme of the package itself."""
    source = get_scheme(name).source
    return next((spec for spec, mod in MODULES.items() if mod == source), None)


def module_digest(spec: str) -> str:
    """SHA-256 (12 hex digits) of a scheme module's source file, so that a sweep reruns its
    schemes when it changes. Only that file: a module it imports in turn is not hashed."""
    path = module_file(spec) or Path(spec)
    data = path.read_bytes() if path.is_file() else spec.encode()
    return hashlib.sha256(data).hexdigest()[:12]


# --- the built-in schemes, in plot order ------------------------------------------------------
# Colours: seaborn's "colorblind" palette for the paper's schemes; references grey and dashed.
register(
    "proposed",
    wd=Algorithm1,
    server=Algorithm2,
    description="Algorithms 1 and 2: learned power, partial offloading",
    kind="paper",
    style={"color": "#d55e00", "linestyle": "-", "marker": "o", "linewidth": 2.0, "zorder": 6},
)
register(
    "binary",
    wd=lambda: Algorithm1(whole_task=True),
    server=Algorithm2,
    description="Algorithm 1 with whole-task offloading; Algorithm 2",
    kind="paper",
    style={"color": "#0173b2", "linestyle": "-", "marker": "s", "linewidth": 1.5, "zorder": 5},
)
register(
    "even",
    wd=EvenShare,
    server=Algorithm2,
    description="every WD offloads the same share of a task; Algorithm 2",
    kind="paper",
    style={"color": "#029e73", "linestyle": "-", "marker": "^", "linewidth": 1.5, "zorder": 5},
)
register(
    "random",
    wd=RandomShare,
    server=Algorithm2,
    description="each WD offloads a uniform random share; Algorithm 2",
    kind="paper",
    style={"color": "#de8f05", "linestyle": "-", "marker": "D", "linewidth": 1.5, "zorder": 5},
)
register(
    "local",
    wd=lambda: FixedPower(0.0),
    server=Algorithm2,
    description="reference: never offload; Algorithm 2",
    style={"color": "0.55", "linestyle": (0, (5, 2)), "marker": "v", "linewidth": 1.2, "zorder": 3},
)
register(
    "offload",
    wd=lambda: FixedPower(1.0),
    server=Algorithm2,
    description="reference: p = p_max, offload all the channel carries; Algorithm 2",
    style={"color": "0.3", "linestyle": (0, (2, 1.5)), "marker": "P", "linewidth": 1.2, "zorder": 3},
)
# References with a fixed or one-block server rule (issue 10): they bound the comparison from
# the side of a server that does not learn. docs/model.md, note I.
register(
    "even_min_energy",
    wd=EvenShare,
    server=MinEnergy,
    description="reference: even's WDs; the server clears its queue at the least energy (min_energy)",
    style={"color": "#029e73", "linestyle": (0, (1, 1)), "marker": "^", "linewidth": 1.2, "zorder": 3},
)
register(
    "offload_min_energy",
    wd=lambda: FixedPower(1.0),
    server=MinEnergy,
    description="reference: p = p_max; the server clears its queue at the least energy (min_energy)",
    style={"color": "0.3", "linestyle": (0, (1, 1)), "marker": "P", "linewidth": 1.2, "zorder": 3},
)
register(
    "myopic",
    wd=MyopicWD,
    server=MyopicServer,
    description="reference: every agent minimises its own cost (8) of this block, post-decision queues",
    style={"color": "0.45", "linestyle": (0, (4, 1, 1, 1, 1, 1)), "marker": "<", "linewidth": 1.2, "zorder": 3},
)
#: V of the drift-plus-penalty scheme when a config does not sweep it, chosen from the V sweep
#: (experiment cost_vs_V, docs/model.md note I).
DPP_V = 1.0
register(
    "dpp",
    wd=lambda V=DPP_V: DriftPlusPenaltyWD(V),
    server=lambda V=DPP_V: DriftPlusPenaltyServer(V),
    description=f"reference: Lyapunov drift-plus-penalty at every agent (parameter V, default {DPP_V:g})",
    style={"color": "0.15", "linestyle": (0, (6, 2)), "marker": ">", "linewidth": 1.2, "zorder": 3},
    params={
        "V": Field(
            "V",
            DPP_V,
            "1",
            "drift-plus-penalty weight of the block's cost against the queues' drift",
            "ours: docs/model.md note I",
            lo=0.0,
            lo_open=True,
            hi=1e12,
        )
    },
)
# Drift-plus-penalty in its standard, centralised form: the WDs weigh the server queue their
# offload fills (docs/model.md note I). Named explicitly (listed=False): a numpy search per block.
register(
    "dpp_central",
    wd=lambda V=DPP_V: CentralDriftPlusPenaltyWD(V),
    server=lambda V=DPP_V: DriftPlusPenaltyServer(V),
    description=f"reference: Lyapunov drift-plus-penalty over every queue, the server's included (centralised; V, default {DPP_V:g})",
    style={"color": "0.6", "linestyle": "-.", "marker": "h", "linewidth": 1.2, "zorder": 3},
    listed=False,
    params={"V": SCHEMES["dpp"].params["V"]},
)
# Not the paper's: its critics, but each action step descends the learned Q (docs/model.md, note K).
register(
    "proposed_q",
    wd=CriticDescentWD,
    server=CriticDescentServer,
    description="reference (not the paper's): Algorithms 1 and 2's critics; each action step descends the learned Q",
    style={"color": "#d55e00", "linestyle": (0, (3, 1, 1, 1)), "marker": "o", "linewidth": 1.2, "zorder": 3},
)
# The exact optimum of the discretised model, for K <= 2 (mecmodel.optimum; docs/model.md, note J).
_OPTIMAL, _DECOMPOSED = optimum_policies(joint=True), optimum_policies(joint=False)
register(
    "optimal",
    wd=_OPTIMAL[0],
    server=_OPTIMAL[1],
    description="reference: the optimal joint policy of the discretised model (value iteration), K <= 2",
    style={"color": "black", "linestyle": "-", "marker": "*", "linewidth": 1.5, "zorder": 7},
    max_K=MAX_K,
)
register(
    "decomposed",
    wd=_DECOMPOSED[0],
    server=_DECOMPOSED[1],
    description="reference: Theorem 1's decomposition solved exactly: each WD's sub-MDP (16), the server's best response (14), K <= 2",
    style={"color": "0.1", "linestyle": (0, (1, 2)), "marker": "*", "linewidth": 1.2, "zorder": 6},
    max_K=MAX_K,
)
# The policy of the Lagrangian lower bound (mecmodel.bounds; docs/model.md, note N): each WD its
# own sub-problem's optimal policy at the bound's best price; the server clears its queue at the
# least energy.
register(
    "lagrangian",
    wd=LagrangianWD,
    server=MinEnergy,
    description="reference: each WD acts by its sub-problem of the Lagrangian bound at the best price; min_energy server",
    style={"color": "#56b4e9", "linestyle": (0, (5, 1, 1, 1)), "marker": "X", "linewidth": 1.4, "zorder": 4},
)
