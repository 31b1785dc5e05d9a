"""Fixed cost of a simulation job: wall time of ``mecmodel simulate`` for 1 seed and 1 block.

    python benchmarks/bench_startup.py            # 8 runs, median and mean
    python benchmarks/bench_startup.py --runs 20
    python benchmarks/bench_startup.py --set K=20           # any --set of mecmodel simulate

Each run is a fresh process, as a Snakemake job is (Python, numpy, the package, the run file
written); what it reports is what every one of a sweep's jobs pays before it simulates.
``--importtime`` adds the cumulative import time of the heaviest modules (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CMD = ["-m", "mecmodel", "simulate", "--K", "2", "--scheme", "even", "--seeds", "1", "--blocks", "1"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--importtime", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="passed to mecmodel simulate")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "x.nc")
        cmd = [sys.executable, *CMD, *(x for kv in a.set for x in ("--set", kv)), "--progress", "off", "-o", out]
        # From the temporary folder: `python -m` puts the working directory first on sys.path,
        # which would shadow the mecmodel on PYTHONPATH (or installed) with a source tree here.
        subprocess.run(cmd, check=True, cwd=tmp)  # warm the file cache
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=tmp)
            times.append(time.perf_counter() - t0)
        print(f"mecmodel simulate, 1 seed, 1 block{''.join(' --set ' + kv for kv in a.set)}: median {statistics.median(times):.3f} s, "
              f"mean {statistics.mean(times):.3f} s over {a.runs} runs ({', '.join(f'{t:.2f}' for t in times)})")  # fmt: skip
        if a.importtime:
            proc = subprocess.run(
                [sys.executable, "-X", "importtime", *cmd[1:]], capture_output=True, text=True, cwd=tmp
            )
            rows = [line.split("|") for line in proc.stderr.splitlines() if line.startswith("import time:")]
            # a top-level import has one space after the bar; nested ones are indented further
            top = sorted(((int(r[1]), r[2][1:]) for r in rows[1:] if not r[2][1:].startswith(" ")), reverse=True)
            for us, name in top[:8]:
                print(f"  import {name:<28s} {us / 1e6:.3f} s (cumulative)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
