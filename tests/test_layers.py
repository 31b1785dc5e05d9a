"""The package's import graph, from its modules' own imports (those inside functions too), has no
cycle, and no module imports one of a higher layer (docs/architecture.md draws the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mecmodel"

#: The layers, lowest first; a module may import its own layer (without a cycle) or lower ones.
LAYERS = (
    ("vocabulary", "version", "atomic", "loading"),  # words every layer shares
    ("params",),  # the parameter table and presets
    ("channel", "queues", "subproblem", "engine"),  # the physics, equations (1)-(8), and its compiled kernels
    ("env",),  # the environment: one block of the system
    ("policies", "policies.base", "policies.rules", "policies.qlearning", "policies.actor_critic"),
    ("policies.myopic", "policies.agent", "optimum", "bounds"),  # policies that build on the others
    ("schemes", "agents"),  # the registry, and trained agents registered beside it
    ("simulation",),  # the loop: a scheme over seeds and blocks
    ("paths", "statistics", "dataset", "results"),  # run files, their statistics, aggregates
    ("plots",),
    ("config", "sweep", "rl"),  # front ends: the Snakemake driver, the RL environments
    ("", "cli", "__main__"),  # the package's API (mecmodel/__init__.py) and its command line
)
LAYER_OF = {(f"mecmodel.{m}" if m else "mecmodel"): i for i, layer in enumerate(LAYERS) for m in layer}


def import_graph() -> dict[str, set[str]]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                edges[mod] |= {t for t in (subs or ([target] if target in mods else [])) if t != mod}
            elif isinstance(node, ast.Import):
                edges[mod] |= {a.name for a in node.names if a.name in mods and a.name != mod}
    return edges


def test_the_graph_sees_the_package():
    edges = import_graph()
    assert "mecmodel.engine" in edges["mecmodel.env"] and "mecmodel.schemes" in edges["mecmodel.agents"]


def test_no_import_cycle():
    edges = import_graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(mod: str) -> None:
        state[mod] = 1
        path.append(mod)
        for dep in sorted(edges[mod]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[mod] = 2

    for mod in sorted(edges):
        if mod not in state:
            visit(mod)


def test_every_module_has_a_layer():
    assert set(import_graph()) == set(LAYER_OF), "add the module to LAYERS (and to docs/architecture.md)"


def test_no_import_reaches_up_a_layer():
    upward = [
        f"{mod} (layer {LAYER_OF[mod]}) imports {dep} (layer {LAYER_OF[dep]})"
        for mod, deps in import_graph().items()
        for dep in deps
        if LAYER_OF[dep] > LAYER_OF[mod]
    ]
    assert not upward, "; ".join(sorted(upward))
