"""Simulation throughput of the compiled engine: device-block updates per second of
``mecmodel.simulation.simulate_arrays`` (scheme ``proposed``), against the plain per-device Python
loop of ``reference_loop.py`` and Algorithm 1's fused limit, all measured in the same run on one core.

    python benchmarks/bench_throughput.py            # K = 10, 100, 1000; 1 and 10 seeds (a few minutes)
    python benchmarks/bench_throughput.py --quick    # fewer blocks and repeats (well under a minute)

A device-block update is one WD advanced by one block (channel, partition, energies, queues, its
Algorithm 1 step, and its share of the server's Algorithm 2 step). Rate = K x seeds x blocks / wall
time of one ``simulate_arrays`` call (parameters and imports outside the timer; the Dataset is not
built). Each size gets a short warm-up run (which also compiles on a cold cache), then the median
of ``--repeats`` timed runs. The reference loop runs the same K and seeds on fewer blocks (about
``--ref-budget`` device-blocks): its cost per device-block does not depend on the horizon. The
fused limit is ``OnlineQ.learn`` alone on a (seeds, K) batch of Algorithm 1 learners with random
inputs: what a block would cost if nothing but that arithmetic ran; ``of fused`` is the engine's
rate over it. Results go to ``benchmarks/results/throughput.{json,csv}`` (git-ignored).
"""

from __future__ import annotations

import os

# One core: no threaded BLAS or OpenMP (must be set before numpy is imported).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
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


def _median_wall(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeats`` calls (CPU time shows how much waiting a busy machine added)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def fused_limit(P, seeds: int, repeats: int, calls: int = 200) -> float:
    """Device-blocks per second of Algorithm 1's update alone on a (seeds, K) batch of learners."""
    from mecmodel.policies.qlearning import OnlineQ

    rng = np.random.default_rng(0)
    K, M, D = P.K, P.M, P.n_slots + 2
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
    wall, _ = _median_wall(run, repeats)
    return K * seeds * calls / wall


def measure(K: int, seeds: int, blocks: int, repeats: int, ref_budget: int, ref_min_blocks: int) -> dict:
    P = make_params("default", {"K": K})
    ids = list(range(seeds))
    simulate_arrays(P, "proposed", ids, min(blocks, 20))  # warm-up (compiles on a cold cache)
    wall, cpu = _median_wall(lambda: simulate_arrays(P, "proposed", ids, blocks), repeats)
    rate = K * seeds * blocks / wall
    ref_blocks = max(ref_min_blocks, ref_budget // (K * seeds))
    t0 = time.perf_counter()
    run_reference(P, ids, ref_blocks)
    ref_rate = K * seeds * ref_blocks / (time.perf_counter() - t0)
    fused = fused_limit(P, seeds, repeats)
    return {
        "K": K,
        "seeds": seeds,
        "blocks": blocks,
        "wall_s": wall,
        "cpu_s": cpu,
        "rate": rate,
        "reference_blocks": ref_blocks,
        "reference_rate": ref_rate,
        "speedup": rate / ref_rate,
        "fused_rate": fused,
        "of_fused": rate / fused,
    }


def _fmt(x: float) -> str:
    return f"{x / 1e6:.3g} M" if x >= 1e6 else f"{x / 1e3:.3g} k"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 blocks, 2 repeats, a smaller reference budget")
    ap.add_argument("--K", type=int, nargs="+", default=[10, 100, 1000], help="numbers of WDs (default 10 100 1000)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 10], help="seeds per run (default 1 10)")
    ap.add_argument("--blocks", type=int, default=None, help="blocks per run (default 1000; quick 200)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per size (default 3; quick 2)")
    ap.add_argument("--ref-budget", type=int, default=None, help="device-blocks of the reference loop (5e4; quick 1e4)")
    ap.add_argument("--ref-min-blocks", type=int, default=20, help="fewest blocks of the reference loop")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results", help="output directory")
    a = ap.parse_args(argv)
    blocks = a.blocks or (200 if a.quick else 1000)
    repeats = a.repeats or (2 if a.quick else 3)
    budget = a.ref_budget or (10_000 if a.quick else 50_000)
    print(
        f"mecmodel {mecmodel.__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()}, one thread; load {os.getloadavg()[0]:.2f}"
    )
    print("| K | seeds | engine (device-blocks/s) | plain loop | speedup | fused limit | of fused | CPU / wall |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for seeds in a.seeds:
        for K in a.K:
            r = measure(K, seeds, blocks, repeats, budget, a.ref_min_blocks)
            rows.append(r)
            print(
                f"| {K} | {seeds} | {_fmt(r['rate'])} | {_fmt(r['reference_rate'])} | {r['speedup']:.0f}x | "
                f"{_fmt(r['fused_rate'])} | {r['of_fused']:.2f} | {r['cpu_s'] / r['wall_s']:.2f} |",
                flush=True,
            )
    a.out.mkdir(parents=True, exist_ok=True)
    meta = {"mecmodel": mecmodel.__version__, "python": platform.python_version(), "numpy": np.__version__}
    (a.out / "throughput.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    with open(a.out / "throughput.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
