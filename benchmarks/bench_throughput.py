"""Simulation throughput: device-block updates per second of the vectorised simulator
(``mecmodel.simulation.simulate_arrays``, scheme ``proposed``) against the plain per-device
Python loop in ``reference_loop.py``, measured in the same run on one core.

    python benchmarks/bench_throughput.py            # K = 10, 100, 1000; 1 and 10 seeds (a few minutes)
    python benchmarks/bench_throughput.py --quick    # fewer blocks and repeats (well under a minute)

A device-block update is one WD advanced by one block (channel, partition, energies, queues,
its Algorithm 1 step, and its share of the server's Algorithm 2 step). Rate = K x seeds x
blocks / wall time of one ``simulate_arrays`` call (parameters and imports outside the timer;
the Dataset is not built). Each size gets a short warm-up run, then the median of
``--repeats`` timed runs. The reference runs the same K and seeds on fewer blocks (about
``--ref-budget`` device-blocks): its cost per device-block does not depend on the horizon, and
at least ``--ref-min-blocks`` keep its per-seed set-up (feature vectors, the first chunk of
channel draws) a small share of its time. ``end_to_end`` is one ``mecmodel.simulate`` call,
which also builds the Dataset. Results go to ``benchmarks/results/throughput.{json,csv}`` (git-ignored).

Where the time goes: one more run per size with the pieces of a block wrapped in timers
(exclusive time: a piece called inside another counts once): the channel (gains, rates and powers
(3)-(4), the chunked fading and arrival draws), the partition and queues ((1), (2), (5)-(8)),
Algorithm 1 (act and update at the WDs), Algorithm 2 (the server), and the rest (the loop and
recording). The wrappers add about a microsecond per call; the shares are of that run. The
fused limit is Algorithm 1's update alone (``OnlineQ.learn`` on a batch of K x seeds learners
with random inputs): what a block would cost if nothing but that arithmetic ran.

Both engines (``--engine numpy numba``, the default when numba is installed): the numpy
reference and the compiled ``engine: numba`` (``mecmodel.fast``), measured in the same run; the
numba columns give its rate, its ratio to numpy, its shares (its environment step is one kernel,
counted under "queues"; "channel" is then the chunked draws alone) and its own fused limit.
The issue 11 targets are printed for each engine.
"""

from __future__ import annotations

import os

# One core: no threaded BLAS or OpenMP (must be set before numpy is imported).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import mecmodel  # noqa: E402
from mecmodel.params import make_params  # noqa: E402
from mecmodel.simulation import simulate_arrays  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_loop import run_reference  # noqa: E402

TARGET_RATIO_K100 = 50.0
TARGET_RATE_K1000 = 2e6
#: Issue 11's targets: (K, seeds) -> device-blocks per second.
TARGETS = {(10, 1): 2e5, (100, 1): 8e5, (1000, 10): 2e6}


def _times(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``repeats`` calls (CPU time shows how much waiting a busy machine added)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


class _Shares:
    """Exclusive wall time per category of the functions wrapped with :meth:`wrap`."""

    def __init__(self):
        self.time: dict[str, float] = {}
        self.stack: list[float] = []

    def wrap(self, category: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            self.stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                inner = self.stack.pop()
                self.time[category] = self.time.get(category, 0.0) + dt - inner
                if self.stack:
                    self.stack[-1] += dt

        return timed


CATEGORIES = ("channel", "partition_queues", "algorithm1", "algorithm2", "loop_recording")


def time_shares(P, seed_ids: list[int], blocks: int) -> dict[str, float]:
    """Share of a block's wall time in each of :data:`CATEGORIES` (one instrumented run)."""
    from mecmodel import channel, env, queues
    from mecmodel.policies import qlearning

    shares = _Shares()
    patches = []

    def patch(owner, name, category):
        original = getattr(owner, name)
        patches.append((owner, name, original))
        setattr(owner, name, shares.wrap(category, original))

    for name in ("bits_per_slot", "power_for_bits", "dbits_dp"):
        patch(channel, name, "channel")
    patch(env.Exogenous, "at", "channel")
    for name in (
        "wd_service",
        "local_energy",
        "offload_energy",
        "server_service",
        "server_energy",
        "cost_terms",
        "wd_queue_next",
        "server_queue_next",
    ):
        patch(queues, name, "partition_queues")
    patch(env.MECEnv, "_step_fast", "partition_queues")  # engine numba: the whole step is one kernel
    for name in ("act", "update"):
        patch(qlearning.Algorithm1, name, "algorithm1")
        patch(qlearning.Algorithm2, name, "algorithm2")
    try:
        t0 = time.perf_counter()
        simulate_arrays(P, "proposed", seed_ids, blocks)
        total = time.perf_counter() - t0
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)
    out = {c: shares.time.get(c, 0.0) / total for c in CATEGORIES[:-1]}
    out["loop_recording"] = 1.0 - sum(out.values())
    return out


def fused_limit(P, seeds: int, repeats: int, calls: int = 200) -> float:
    """Device-blocks per second of Algorithm 1's update alone on a (seeds, K) batch of learners."""
    from mecmodel.policies.qlearning import OnlineQ

    rng = np.random.default_rng(0)
    K, M, D = P.K, P.M, P.n_slots + 3
    v = rng.standard_normal((seeds, K, M, D + 1)) * (P.feature_std / np.sqrt(D + 1))
    q = OnlineQ.from_params(v, 1, np.array([P.p_init]), P)
    xs = rng.random((calls + 1, seeds, K, D))
    r, dr = rng.random((seeds, K)), rng.random((seeds, K, 1)) * 1e-3
    q.freeze = False

    def run():
        q.observe(xs[0])
        for i in range(calls):
            q.learn(i, r, dr, xs[i + 1])

    run()
    wall, _ = _times(run, repeats)
    return K * seeds * calls / statistics.median(wall)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        )
        # --no-optional-locks: only read the index, never refresh it (others may be committing)
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--", "mecmodel"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[1],
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def measure_numba(K: int, seeds: int, blocks: int, repeats: int) -> dict:
    """The compiled engine at one size: rate, shares and fused limit (columns prefixed numba_)."""
    P = make_params("default", {"K": K, "engine": "numba"})
    seed_ids = list(range(seeds))
    simulate_arrays(P, "proposed", seed_ids, min(blocks, 20))  # warm-up, and compiles on a cold cache
    wall, cpu = _times(lambda: simulate_arrays(P, "proposed", seed_ids, blocks), repeats)
    row = {"numba_median_s": statistics.median(wall), "numba_cpu_median_s": statistics.median(cpu)}
    row["numba_rate"] = K * seeds * blocks / row["numba_median_s"]
    row["numba_fused_rate"] = fused_limit(P, seeds, repeats)
    row["numba_of_fused"] = row["numba_rate"] / row["numba_fused_rate"]
    row.update({f"numba_share_{k}": v for k, v in time_shares(P, seed_ids, blocks).items()})
    return row


def measure(
    K: int,
    seeds: int,
    blocks: int,
    repeats: int,
    ref_budget: float,
    ref_min_blocks: int,
    end_to_end: bool,
    engines: tuple[str, ...] = ("numpy",),
) -> dict:
    P = make_params("default", {"K": K})
    seed_ids = list(range(seeds))
    load = os.getloadavg()[0]
    simulate_arrays(P, "proposed", seed_ids, min(blocks, 20))  # warm-up: caches, allocator, lazy imports
    vec, vec_cpu = _times(lambda: simulate_arrays(P, "proposed", seed_ids, blocks), repeats)
    row = {
        "K": K,
        "seeds": seeds,
        "blocks": blocks,
        "vec_median_s": statistics.median(vec),
        "vec_min_s": min(vec),
        "vec_max_s": max(vec),
        "vec_cpu_median_s": statistics.median(vec_cpu),
    }
    row["vec_rate"] = K * seeds * blocks / row["vec_median_s"]
    row["vec_rate_cpu"] = K * seeds * blocks / row["vec_cpu_median_s"]
    if end_to_end:
        mecmodel.simulate(K=K, scheme="proposed", seeds=1, blocks=2)  # imports xarray outside the timer
        t0 = time.perf_counter()
        mecmodel.simulate(K=K, scheme="proposed", seeds=seeds, blocks=blocks)
        row["end_to_end_s"] = time.perf_counter() - t0
        row["end_to_end_rate"] = K * seeds * blocks / row["end_to_end_s"]
    ref_blocks = int(min(blocks, max(ref_min_blocks, round(ref_budget / (K * seeds)))))
    run_reference(P, seed_ids, 1)  # warm-up
    ref, ref_cpu = _times(lambda: run_reference(P, seed_ids, ref_blocks), repeats)
    row.update(ref_blocks=ref_blocks, ref_median_s=statistics.median(ref), ref_min_s=min(ref), ref_max_s=max(ref))
    row["ref_cpu_median_s"] = statistics.median(ref_cpu)
    row["ref_rate"] = K * seeds * ref_blocks / row["ref_median_s"]
    row["ref_rate_cpu"] = K * seeds * ref_blocks / row["ref_cpu_median_s"]
    row["speedup"] = row["vec_rate"] / row["ref_rate"]
    row["fused_rate"] = fused_limit(P, seeds, repeats)
    row["of_fused"] = row["vec_rate"] / row["fused_rate"]
    row.update({f"share_{k}": v for k, v in time_shares(P, seed_ids, blocks).items()})
    if "numba" in engines:
        row.update(measure_numba(K, seeds, blocks, repeats))
        row["numba_vs_numpy"] = row["numba_rate"] / row["vec_rate"]
    row["load_1min_before"] = load
    row["load_1min_after"] = os.getloadavg()[0]
    return row


SHARE_HEAD = f"{'channel':>8} {'queues':>7} {'alg. 1':>7} {'alg. 2':>7} {'loop+rec':>8} {'fused/s':>9} {'of fused':>8}"


def _share_cells(r: dict, prefix: str) -> str:
    """One engine's shares of a block, fused limit and share of it (columns ``prefix``share_*)."""
    sh = [r[f"{prefix}share_{c}"] for c in CATEGORIES]
    fused = r[f"{prefix}fused_rate"]
    of = r[f"{prefix}of_fused"]
    return " ".join(f"{x:>7.0%}" for x in sh[:4]) + f" {sh[4]:>8.0%} {_fmt_rate(fused):>9} {of:>8.2f}"


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _fmt_rate(x: float) -> str:
    return f"{x / 1e6:.3f}M" if x >= 1e5 else f"{x / 1e3:.1f}k"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="200 blocks, 2 repeats, a smaller reference budget")
    ap.add_argument("--K", type=int, nargs="+", default=[10, 100, 1000], help="numbers of WDs (default 10 100 1000)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 10], help="seeds per run (default 1 10)")
    ap.add_argument("--blocks", type=int, default=None, help="blocks per vectorised run (default 1000; quick 200)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per size (default 3; quick 2)")
    ap.add_argument(
        "--ref-budget", type=float, default=None, help="device-blocks per reference run (default 5e4; quick 1e4)"
    )
    ap.add_argument(
        "--ref-min-blocks", type=int, default=None, help="fewest blocks per reference run (default 20; quick 5)"
    )
    ap.add_argument("--no-end-to-end", action="store_true", help="skip the mecmodel.simulate (with Dataset) timing")
    ap.add_argument(
        "--engine",
        nargs="+",
        choices=("numpy", "numba"),
        default=None,
        help="engines to measure (default both when numba is installed, else numpy)",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results", help="output directory")
    args = ap.parse_args(argv)
    blocks = args.blocks or (200 if args.quick else 1000)
    repeats = args.repeats or (2 if args.quick else 3)
    ref_budget = args.ref_budget or (1e4 if args.quick else 5e4)
    ref_min_blocks = args.ref_min_blocks or (5 if args.quick else 20)
    engines = tuple(args.engine) if args.engine else (("numpy", "numba") if _has_numba() else ("numpy",))
    if "numpy" not in engines:
        ap.error("--engine: numpy is the reference every ratio is taken against; list it")
    if min(args.K) < 1 or min(args.seeds) < 1 or blocks < 1 or repeats < 1 or ref_min_blocks < 1 or ref_budget <= 0:
        ap.error("--K, --seeds, --blocks, --repeats and --ref-min-blocks must be >= 1 and --ref-budget > 0")

    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "mecmodel": mecmodel.__version__,
        "git": _git_commit(),
        "cpu": _cpu_model(),
        "cpus_online": os.cpu_count(),
        "threads": {v: os.environ[v] for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "scheme": "proposed",
        "preset": "default",
        "blocks": blocks,
        "repeats": repeats,
        "ref_budget": ref_budget,
        "ref_min_blocks": ref_min_blocks,
    }
    print(f"# {meta['cpu']}, Python {meta['python']}, numpy {meta['numpy']}, mecmodel {meta['git']}; one thread")
    print(
        f"# scheme proposed, default preset, {blocks} blocks, median of {repeats}; load (1 min) {os.getloadavg()[0]:.2f}"
    )
    head = (
        f"{'K':>5} {'seeds':>5} {'vectorised/s':>13} {'(cpu)':>8} {'(median s)':>10} "
        f"{'loop/s':>8} {'(cpu)':>7} {'(blocks)':>8} {'speedup':>8} {'load':>5}"
    )
    print(head)
    rows = []
    for seeds in args.seeds:
        for K in args.K:
            r = measure(K, seeds, blocks, repeats, ref_budget, ref_min_blocks, not args.no_end_to_end, engines)
            rows.append(r)
            print(
                f"{K:>5} {seeds:>5} {_fmt_rate(r['vec_rate']):>13} {_fmt_rate(r['vec_rate_cpu']):>8} "
                f"{r['vec_median_s']:>10.3f} {_fmt_rate(r['ref_rate']):>8} {_fmt_rate(r['ref_rate_cpu']):>7} "
                f"{r['ref_blocks']:>8} {r['speedup']:>7.1f}x {r['load_1min_after']:>5.2f}",
                flush=True,
            )

    print("\nwhere a block's time goes (one instrumented run per size), and the fused limit:")
    print(f"{'K':>5} {'seeds':>5} {SHARE_HEAD}")
    for r in rows:
        print(f"{r['K']:>5} {r['seeds']:>5} " + _share_cells(r, ""))
    if "numba" in engines:
        print("\nthe compiled engine (engine: numba), its shares and its fused limit:")
        print(f"{'K':>5} {'seeds':>5} {'numba/s':>9} {'x numpy':>7} {SHARE_HEAD}")
        for r in rows:
            rate = f"{_fmt_rate(r['numba_rate']):>9} {r['numba_vs_numpy']:>6.2f}x "
            print(f"{r['K']:>5} {r['seeds']:>5} " + rate + _share_cells(r, "numba_"))
    print()
    for r in rows:
        target = TARGETS.get((r["K"], r["seeds"]))
        if target is not None:
            for engine in engines:
                rate = r["vec_rate"] if engine == "numpy" else r["numba_rate"]
                ok = "met" if rate >= target else "NOT met"
                print(
                    f"issue 11 target >= {_fmt_rate(target)}/s at K={r['K']}, {r['seeds']} seeds, "
                    f"engine {engine}: {_fmt_rate(rate)} ({ok})"
                )
    for r in rows:
        if r["K"] == 100:
            ok = "met" if r["speedup"] >= TARGET_RATIO_K100 else "NOT met"
            print(
                f"target >= {TARGET_RATIO_K100:.0f}x the loop at K=100, {r['seeds']} seeds: {r['speedup']:.1f}x ({ok})"
            )
        if r["K"] == 1000:
            ok = "met" if r["vec_rate"] >= TARGET_RATE_K1000 else "NOT met"
            print(f"target >= 2M device-blocks/s at K=1000, {r['seeds']} seeds: {_fmt_rate(r['vec_rate'])} ({ok})")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    with open(args.out / "throughput.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\nwrote {args.out / 'throughput.json'} and {args.out / 'throughput.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
