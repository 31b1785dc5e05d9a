"""Command line: ``mecmodel simulate | schemes | params``.

Bad input prints one line ``mecmodel: error: <field>: ...`` and exits with status 2,
leaving no output file behind.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mecmodel", description=__doc__.splitlines()[0])
    from . import __version__

    p.add_argument("--version", action="version", version=f"mecmodel {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    from .params import PRESETS

    presets = ", ".join(PRESETS)
    # Schemes from outside the package (docs/schemes.md): importing the module registers them.
    mods = argparse.ArgumentParser(add_help=False)
    mods.add_argument(
        "--scheme-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="a .py file or dotted module name that registers schemes (repeatable)",
    )
    mods.add_argument(
        "--debug",
        action="store_true",
        help="on an error in a scheme's code, print its full traceback before the one-line message",
    )

    # One operating point and its seeds (simulate, bounds): read by _point.
    point = argparse.ArgumentParser(add_help=False)
    point.add_argument("--K", type=str, default=None, help="number of WDs (default: the preset's)")
    point.add_argument("--arrival-prob", type=str, default=None, help="arrival probability per slot, in (0, 1)")
    point.add_argument("--gamma", type=str, default=None, help="discount factor, in (0, 1)")
    point.add_argument(
        "--seeds", type=str, default="10", help="number of seeds (0..n-1), or a comma list of seed values"
    )
    point.add_argument("--preset", default="default", help=f"parameter preset: {presets}")
    point.add_argument("--config", default=None, help="YAML file of parameter overrides")
    point.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one parameter (repeatable); the value is read as YAML",
    )

    s = sub.add_parser("simulate", parents=[mods, point], help="simulate one operating point and write a NetCDF file")
    s.add_argument("--scheme", default="proposed", help="scheme name (see 'mecmodel schemes')")
    s.add_argument("--blocks", type=str, default="2000", help="number of decision blocks")
    s.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a swept parameter (repeatable): a model parameter or one the scheme declares; "
        "set like --set and made a length-1 dimension of the run file, as the sweep's axes are",
    )
    s.add_argument("--per-device", action="store_true", help="also store per-WD series (adds the wd dim)")
    s.add_argument(
        "--progress", choices=("auto", "on", "off"), default="auto", help="progress bar (auto: only on a terminal)"
    )
    s.add_argument("-o", "--output", required=True, help="output NetCDF path")

    b = sub.add_parser(
        "simulate-batch", parents=[mods], help="simulate several runs in one process (a sweep's simulation job)"
    )
    b.add_argument(
        "--runs",
        required=True,
        help="JSON list of runs, each {output, preset, overrides, scheme, scheme_params, sweep, seeds, blocks} "
        "(what mecmodel.sweep.Sweep.batches resolves)",
    )
    b.add_argument(
        "--progress", choices=("auto", "on", "off"), default="auto", help="progress bar (auto: only on a terminal)"
    )

    g = sub.add_parser("aggregate", parents=[mods], help="combine run files into one compressed dataset")
    g.add_argument("inputs", nargs="+", help="run NetCDF files")
    g.add_argument("-o", "--output", required=True, help="output NetCDF path")
    g.add_argument("--experiment", default=None, help="experiment name stored in the attrs")
    g.add_argument("--config-json", default=None, help="JSON text of the experiment's config, stored in the attrs")
    g.add_argument(
        "--figure", default=None, help="also draw this figure from the aggregate (see mecmodel.plots.FIGURES)"
    )
    g.add_argument("--png", default=None, help="with --figure: output PNG path")
    g.add_argument("--pdf", default=None, help="with --figure: output PDF path")

    f = sub.add_parser("plot", parents=[mods], help="draw one figure from an aggregated dataset")
    f.add_argument("figure", help="figure name (see mecmodel.plots.FIGURES)")
    f.add_argument("input", help="aggregated NetCDF file")
    f.add_argument("--png", required=True, help="output PNG path")
    f.add_argument("--pdf", required=True, help="output PDF path")

    sub.add_parser(
        "bounds",
        parents=[point],
        help="the optimum bracketed at one point, per seed: the lower bound on every policy and an upper bound",
    )
    sub.add_parser("schemes", parents=[mods], help="list the registered schemes")
    pp = sub.add_parser("params", help="list every model parameter with its default, unit and range")
    pp.add_argument("--preset", default="default", help=f"parameter preset: {presets}")
    pp.add_argument("--markdown", action="store_true", help="print a Markdown table (used in docs/model.md)")
    return p


class _Fail(Exception):
    pass


def _number(name: str, text: str | None, kind: type):
    if text is None:
        return None
    try:
        if kind is int:
            v = float(text)
            if not v.is_integer():
                raise ValueError
            return int(v)
        return float(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise _Fail(f"{name}: must be {what}, got {text!r}") from None


def _yaml_value(text: str):
    from .params import ParamError, load_yaml

    try:
        return load_yaml(text, "--set")
    except ParamError:
        return text  # not YAML: the field's own check reports it with the allowed range


def _pairs(items: Sequence[str], flag: str) -> list[tuple[str, object]]:
    """NAME=VALUE arguments of ``flag``, the value read as YAML."""
    out = []
    for item in items:
        k, eq, v = item.partition("=")
        if not eq or not k.strip():
            raise _Fail(f"{flag}: expected NAME=VALUE, got {item!r}")
        out.append((k.strip(), _yaml_value(v)))
    return out


def _point(a: argparse.Namespace, between=None) -> tuple[dict, int | list[int]]:
    """The overrides (--config, --set, then ``between(over)`` if given, then --K, --arrival-prob,
    --gamma, in this order of precedence and of checking) and the seeds of a point's arguments."""
    from .params import load_overrides

    over: dict = {}
    if a.config:
        over.update(load_overrides(a.config))
    for k, v in _pairs(a.set, "--set"):
        over[k] = v
    if between is not None:
        between(over)
    for name, text, kind in (("K", a.K, int), ("arrival_prob", a.arrival_prob, float), ("gamma", a.gamma, float)):
        v = _number(name, text, kind)
        if v is not None:
            over[name] = v
    if "," in a.seeds:
        return over, [_number("seeds", s, int) for s in a.seeds.split(",")]
    return over, _number("seeds", a.seeds, int)


def cmd_bounds(a: argparse.Namespace) -> int:
    """Per seed (each its own user drop): the Lagrangian lower bound on every policy's expected (9a),
    its best price, and the upper bound on the optimum (mecmodel.bounds; docs/model.md note N)."""
    import numpy as np

    from .bounds import lower_bound, upper_bound
    from .env import MECEnv, seed_list
    from .params import ParamError, make_params
    from .statistics import mean_ci

    over, seeds = _point(a)
    P = make_params(a.preset, over)
    seeds = seed_list(seeds)
    gains = MECEnv(P, seeds).mean_gain
    lb = lower_bound(P, gains)
    try:
        ub = upper_bound(P, gains)
    except ParamError:
        ub = np.full(len(seeds), np.nan)
    print(
        f"preset {a.preset}, K = {P.K}, lambda = {P.arrival_prob:g}, gamma = {P.gamma:g}: expected (9a) from empty queues"
    )
    print("seed\tlower bound\tupper bound\tprice mu (per cycle)")
    for s, lo, up, mu in zip(seeds, lb.lower_bound, ub, lb.mu, strict=True):
        print(f"{s}\t{lo:.6g}\t{up:.6g}\t{mu:.3g}")
    for name, v in (("lower bound", lb.lower_bound), ("upper bound", ub)):
        mean, lo, hi, _ = mean_ci(v)
        print(f"{name}: mean over seeds {float(mean):.6g} (95% t-interval {float(lo):.6g} to {float(hi):.6g})")
    return 0


def cmd_simulate(a: argparse.Namespace) -> int:
    from .params import FIELD_BY_NAME, make_params
    from .schemes import get_scheme

    scheme_params: dict = {}
    swept: list[str] = []

    def sweep(over: dict) -> None:
        for k, v in _pairs(a.sweep, "--sweep"):
            if k in FIELD_BY_NAME:
                over[k] = v
            elif k in get_scheme(a.scheme).params:
                scheme_params[k] = v
            else:
                raise _Fail(f"--sweep: {k!r} is neither a model parameter nor a parameter of scheme {a.scheme!r}")
            swept.append(k)

    over, seeds = _point(a, sweep)
    blocks = _number("blocks", a.blocks, int)
    if blocks < 1:
        raise _Fail(f"blocks: must be an integer >= 1, got {blocks}")
    # Validate everything before any work; the parameters are built once.
    P = make_params(a.preset, over)
    from .simulation import check_run

    get_scheme(a.scheme).param_values(scheme_params, "--sweep")
    seeds = check_run(P, seeds, blocks, a.per_device)
    if not a.output.endswith((".nc", ".nc4")):
        raise _Fail(f"output: must end in .nc, got {a.output!r}")

    from . import simulate_parts

    progress = a.progress == "on" or (a.progress == "auto" and sys.stderr.isatty())
    parts = simulate_parts(
        P,
        scheme=a.scheme,
        seeds=seeds,
        blocks=blocks,
        per_device=a.per_device,
        progress=progress,
        scheme_params=scheme_params,
        sweep=swept,
    )
    _write(parts, a.output)
    return 0


def _write(parts, output: str) -> None:
    """A run file, atomically; a failed write is one line naming the file."""
    from .dataset import write_parts

    try:
        write_parts(parts, output)
    except OSError as e:
        raise _Fail(f"output: cannot write {output}: {e.strerror or e}") from None


RUN_KEYS = ("output", "preset", "overrides", "scheme", "scheme_params", "sweep", "seeds", "blocks")


def cmd_simulate_batch(a: argparse.Namespace) -> int:
    """Every run of the list, one after the other in this process; each file written atomically as
    its run ends. Every run is checked before the first starts: bad input writes nothing."""
    import json
    import time

    from .params import ParamError, make_params
    from .schemes import get_scheme
    from .simulation import check_run

    try:
        runs = json.loads(a.runs)
    except json.JSONDecodeError as e:
        raise _Fail(f"--runs: not JSON: {e}") from None
    if not isinstance(runs, list) or not runs:
        raise _Fail("--runs: must be a non-empty JSON list of runs")
    jobs = []
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or sorted(run) != sorted(RUN_KEYS):
            raise _Fail(f"--runs[{i}]: must be an object with the keys {', '.join(RUN_KEYS)}")
        out = run["output"]
        if not isinstance(out, str) or not out.endswith((".nc", ".nc4")):
            raise _Fail(f"--runs[{i}].output: must end in .nc, got {out!r}")
        try:
            P = make_params(run["preset"], run["overrides"])
            scheme = get_scheme(run["scheme"])
            scheme.param_values(run["scheme_params"], f"--runs[{i}].scheme_params")
            scheme.check_K(P.K, f"--runs[{i}].scheme")
            seeds = check_run(P, run["seeds"], run["blocks"])
        except ParamError as e:
            raise _Fail(f"--runs[{i}] ({out}): {e}") from None
        jobs.append((P, run, seeds))

    from . import simulate_parts

    progress = a.progress == "on" or (a.progress == "auto" and sys.stderr.isatty())
    began = time.perf_counter()
    for P, run, seeds in jobs:
        start = time.perf_counter()
        parts = simulate_parts(
            P,
            scheme=run["scheme"],
            seeds=seeds,
            blocks=run["blocks"],
            progress=progress,
            scheme_params=run["scheme_params"],
            sweep=run["sweep"],
        )
        _write(parts, run["output"])
        print(f"{run['output']}: {time.perf_counter() - start:.2f} s", file=sys.stderr, flush=True)
    print(f"{len(jobs)} runs done in {time.perf_counter() - began:.2f} s", file=sys.stderr, flush=True)
    return 0


def cmd_aggregate(a: argparse.Namespace) -> int:
    if (a.figure is None) != (a.png is None) or (a.figure is None) != (a.pdf is None):
        raise _Fail("--figure, --png and --pdf: give all three or none")
    if a.figure is not None:
        from .plots import FIGURES

        # before any work: a bad name or path writes nothing
        if a.figure not in FIGURES:
            raise _Fail(f"--figure: must be one of {', '.join(FIGURES)}, got {a.figure!r}")
        for flag, path, suffix in (("--png", a.png, ".png"), ("--pdf", a.pdf, ".pdf")):
            if not path.lower().endswith(suffix):
                raise _Fail(f"{flag}: must end in {suffix}, got {path!r}")
    from .results import aggregate

    aggregate(a.inputs, a.output, experiment=a.experiment, config_json=a.config_json)
    if a.figure is not None:
        from .plots import plot

        plot(a.figure, a.output, a.png, a.pdf)
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    from .plots import plot

    plot(a.figure, a.input, a.png, a.pdf)
    return 0


def cmd_schemes(a: argparse.Namespace) -> int:
    from .schemes import SCHEMES

    width = max(12, *(len(name) for name in SCHEMES))
    print(f"{'name':{width}s} {'kind':10s} {'information':15s} description")
    for s in SCHEMES.values():
        policies = s.policies()
        info = {p.information for p in policies}
        info_text = "centralised" if "centralised" in info else "decentralised"
        print(f"{s.name:{width}s} {s.kind:10s} {info_text:15s} {s.description}")
        # the parameters it declares, each a sweep axis from a config (`V: [1, 10]`)
        for name, spec in s.params.items():
            unit = "" if spec.unit in ("", "1") else f" {spec.unit}"
            print(f"{'':{width}s}   parameter {name} = {spec.default}{unit}, {spec.range_text()}: {spec.doc}")
    return 0


def cmd_params(a: argparse.Namespace) -> int:
    from .params import FIELDS, PRESET_BY_NAME, PRESETS, make_params

    P = make_params(a.preset)

    def show(v) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    if a.markdown:
        # One column per other preset, "same" where it keeps the value of --preset.
        others = [make_params(name) for name in PRESETS if name != a.preset]
        heads = [a.preset, *(f"{o.preset} preset" for o in others)]
        print(f"| name | {' | '.join(heads)} | unit | allowed | meaning | source |")
        print("|---" * (len(others) + 6) + "|")
        for f in FIELDS:
            mine = P.values[f.name]
            cols = " | ".join(show(o.values[f.name]) if o.values[f.name] != mine else "same" for o in others)
            print(f"| `{f.name}` | {show(mine)} | {cols} | {f.unit} | {f.range_text()} | {f.doc} | {f.source} |")
        return 0
    print(f"preset {a.preset}: {PRESET_BY_NAME[a.preset].doc} (presets: {', '.join(PRESETS)})")
    print(f"{'name':22s} {'value':>12s}  {'unit':14s} {'allowed':34s} description")
    for f in FIELDS:
        print(f"{f.name:22s} {show(P.values[f.name]):>12s}  {f.unit:14s} {f.range_text():34s} {f.doc}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    from .params import ParamError, PolicyError

    try:
        if getattr(a, "scheme_module", None):
            from .schemes import load_modules

            load_modules(a.scheme_module, "--scheme-module")
        cmds = {
            "simulate": cmd_simulate,
            "simulate-batch": cmd_simulate_batch,
            "aggregate": cmd_aggregate,
            "plot": cmd_plot,
            "schemes": cmd_schemes,
            "params": cmd_params,
            "bounds": cmd_bounds,
        }
        return cmds[a.command](a)
    except (ParamError, _Fail) as e:
        print(f"mecmodel: error: {e}", file=sys.stderr)
        return 2
    except PolicyError as e:
        # An error in a scheme's code (or an action the environment refused): one line, the
        # traceback only when asked, and always in a workflow job (simulate-batch), whose
        # output is the job's log.
        if getattr(a, "debug", False) or a.command == "simulate-batch":
            import traceback

            traceback.print_exception(e.__cause__ or e, file=sys.stderr)
        print(f"mecmodel: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"mecmodel: error: {a.command}: I/O failed{where}: {e.strerror or e}", file=sys.stderr)
        return 1


def run() -> None:
    """The ``mecmodel`` console script (and ``python -m mecmodel``).

    With dask installed (it is, for ``xr.open_mfdataset``), xarray imports ``dask.array`` on
    the first Dataset it builds: 0.25 s of start-up in every job of a sweep, for arrays the
    command line never makes. A ``None`` entry in ``sys.modules`` makes ``import dask`` fail,
    and xarray, imported after it, then treats dask as absent. Only a fresh process does this:
    where xarray is already imported it may have cached that dask exists.
    """
    if "xarray" not in sys.modules and "dask" not in sys.modules:
        sys.modules["dask"] = None
    sys.exit(main())


if __name__ == "__main__":
    run()
