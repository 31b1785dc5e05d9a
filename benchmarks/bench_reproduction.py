"""The reproduction's throughput: its device-blocks, its wall time and its efficiency.

    python benchmarks/bench_reproduction.py                    # this checkout, both presets, all cores
    python benchmarks/bench_reproduction.py --repo ../before   # another checkout (its own .venv), same machine

Runs what ``./run reproduce`` runs (Snakemake with ``profiles/default`` on ``config/config.yaml``
and its scenario ``config/stable.yaml``, one plan) in an empty temporary directory (``--directory``, so nothing is written
into the repository), and reports:

* device-blocks: K x seeds x blocks summed over the run files it made;
* wall: the Snakemake call (two for a checkout from before scenarios), start to end (the environment is already installed);
* the CPU seconds of each rule's jobs (Snakemake's ``benchmark:`` files), the simulation seconds
  of each scheme (the jobs' logs time every run; what a job spends outside its runs, mostly
  start-up, is the rest) and the seconds of each aggregate job;
* efficiency = device-blocks / (wall x cores) / F, where F is Algorithm 1's fused limit (its update
  alone on K = 100 x 10 seeds, device-blocks per second on one core), measured in the same run
  with this checkout's engine: 1 would mean every core did nothing but that arithmetic.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = re.compile(r"/K(\d+)/.*/s(\d+)-b(\d+)\.nc$")


def device_blocks(results: Path) -> int:
    total = 0
    for path in results.rglob("*.nc"):
        m = RUN.search(path.as_posix())
        if m and "/runs/" in path.as_posix():
            total += int(m[1]) * int(m[2]) * int(m[3])
    return total


def job_seconds(tsv: Path) -> float:
    """A job's seconds, the first column of its Snakemake benchmark file (0 if it has no row)."""
    lines = tsv.read_text().splitlines()
    return float(lines[1].split("\t")[0]) if len(lines) >= 2 else 0.0


def rule_cpu(results: Path) -> dict[str, float]:
    """Seconds of each rule's jobs, from Snakemake's benchmark files (simulation batches as 'simulate')."""
    out: dict[str, float] = {}
    for tsv in (results / "benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(results / "benchmarks").parts[0]
        out[rule] = out.get(rule, 0.0) + job_seconds(tsv)
    return out


LOGGED = re.compile(r"^results/runs/.*/([^/]+)/s\d+-b\d+\.nc: ([\d.]+) s$")


def scheme_seconds(results: Path) -> dict[str, float]:
    """Seconds of each scheme's runs, from the simulation jobs' logs (one line per run)."""
    out: dict[str, float] = {}
    for log in (results / "logs" / "simulate").rglob("*.log"):
        for line in log.read_text().splitlines():
            m = LOGGED.match(line)
            if m:
                out[m[1]] = out.get(m[1], 0.0) + float(m[2])
    return out


def aggregate_seconds(results: Path) -> dict[str, float]:
    """Seconds of each aggregate job (its benchmark file)."""
    return {tsv.stem: job_seconds(tsv) for tsv in sorted((results / "benchmarks" / "aggregate").glob("*.tsv"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=HERE.parent, help="the checkout to run (default: this one)")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="cores for Snakemake (default: all)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the results in this directory")
    a = ap.parse_args(argv)
    repo = a.repo.resolve()
    venv = repo / ".venv" / "bin"
    snakemake = str(venv / "snakemake") if (venv / "snakemake").exists() else shutil.which("snakemake")
    env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}"}
    work = Path(a.keep).resolve() if a.keep else Path(tempfile.mkdtemp(prefix="mecmodel-repro-"))
    work.mkdir(parents=True, exist_ok=True)
    base = [
        snakemake,
        "-s",
        str(repo / "Snakefile"),
        "--directory",
        str(work),
        "--profile",
        str(repo / "profiles" / "default"),
    ]
    base += ["--cores", str(a.cores), "--quiet", "all"]
    t0 = time.perf_counter()
    # One plan where config.yaml lists its scenarios (this checkout); a checkout from before
    # scenarios ran config.yaml, then stable.yaml.
    one_plan = "scenarios:" in (repo / "config" / "config.yaml").read_text()
    configs = ("config.yaml",) if one_plan else ("config.yaml", "stable.yaml")
    for config in configs:
        cmd = [*base, "--configfile", str(repo / "config" / config)]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
            return 1
    wall = time.perf_counter() - t0

    sys.path.insert(0, str(HERE))
    from bench_throughput import fused_limit

    from mecmodel.params import make_params

    fused = fused_limit(make_params("default", {"K": 100}), 10, repeats=3)
    blocks = device_blocks(work / "results")
    cpu = rule_cpu(work / "results")
    print(f"checkout: {repo}")
    print(f"device-blocks: {blocks / 1e6:.1f} M in {sum(1 for _ in (work / 'results' / 'runs').rglob('*.nc'))} runs")
    print(f"wall: {wall:.1f} s on {a.cores} cores")
    print(
        "job seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items()))
        + f" (total {sum(cpu.values()):.1f})"
    )
    schemes = scheme_seconds(work / "results")
    jobs = sum(1 for _ in (work / "results" / "benchmarks" / "simulate").rglob("*.tsv"))
    print(
        f"simulation seconds by scheme ({jobs} jobs; outside the runs, mostly start-up: "
        f"{cpu.get('simulate', 0.0) - sum(schemes.values()):.1f}): "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(schemes.items(), key=lambda kv: -kv[1]))
    )
    print(
        "aggregate seconds by experiment: "
        + ", ".join(f"{k} {v:.1f}" for k, v in aggregate_seconds(work / "results").items())
    )
    print(
        f"fused limit F (Algorithm 1's update in the engine running this script, K = 100 x 10 seeds, one core): "
        f"{fused / 1e6:.2f} M device-blocks/s"
    )
    print(f"efficiency: {blocks / (wall * a.cores) / fused:.3f}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
