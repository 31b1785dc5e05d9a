"""The smoke sweep through a real one-node SLURM gives exactly the results of the local run.

``scripts/slurm-local.sh start`` installs Debian's SLURM and munge (once), writes
/etc/slurm/slurm.conf for localhost and starts munged, slurmctld and slurmd; the module fixture
stops them again by PID, also when a test fails. Without root or apt-get the script exits 3 and
the tests are skipped with its reason (``pytest -rs`` prints it). About two minutes on 2 cores.

Both runs execute ``python -m snakemake -s <repo>/Snakefile --directory <tmp>``, so nothing is
written into the repository.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import pytest
import xarray as xr
import yaml

from mecmodel import sweep as mecsweep
from mecmodel.results import find_runs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
SMOKE = REPO / "config" / "smoke.yaml"
SCRIPT = REPO / "scripts" / "slurm-local.sh"
PROFILES = REPO / "profiles"
LIMIT = 900  # seconds for one sweep; it takes ~2 minutes here

# Test-only settings, so not in profiles/slurm: without slurmdbd, sacct knows no jobs and the
# executor would wait for ever, while squeue sees a finished job for MinJobAge (300 s); the first
# status check comes after 5 s instead of 40 s; SLURM's job logs are kept to be read below.
SLURM_ARGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--slurm-keep-successful-logs",
)


#: The experiments of the smoke config swept on SLURM: every scheme, the exact solvers, and a
#: scheme parameter, in a few batches (the whole smoke sweep adds nothing to what SLURM must show).
EXPERIMENTS = ("cost_vs_K", "optimality_gap", "cost_vs_V")


def smoke_subset(directory: Path) -> Path:
    config = yaml.safe_load(SMOKE.read_text())
    config["experiments"] = {n: config["experiments"][n] for n in EXPERIMENTS}
    path = directory / "smoke-subset.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sweep(workdir: Path, profile: str, *args: str) -> subprocess.CompletedProcess:
    """The smoke subset's sweep in ``workdir`` with ``profiles/<profile>``; asserts that it succeeds."""
    env = dict(os.environ)
    # The rules (also inside SLURM jobs, which get this environment) call the `mecmodel`
    # console script installed beside this interpreter.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    cmd = [
        # SIGTERM first: Snakemake then cancels its SLURM jobs; SIGKILL 30 s later.
        *("timeout", "-k", "30", str(LIMIT)),
        *(sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir)),
        *("--configfile", str(smoke_subset(workdir)), "--workflow-profile", str(PROFILES / profile)),
        *args,
    ]
    # A session of its own, so that an interrupted test can stop the sweep and all it started.
    proc = subprocess.Popen(cmd, stdout=PIPE, stderr=PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=LIMIT + 60)
    except BaseException:  # Ctrl-C included: no sweep may outlive the test (or the cluster)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    assert proc.returncode == 0, (
        f"snakemake ({profile}) failed ({proc.returncode}; 124 = timed out):\n{out[-3000:]}\n{err[-5000:]}"
    )
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_files(workdir: Path) -> list[str]:
    return sorted(str(path.relative_to(workdir)) for path, _ in find_runs(workdir / "results"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Path]:
    """A running one-node SLURM; yields its scratch folder (PIDs, logs, state)."""
    scratch = tmp_path_factory.mktemp("slurm-local")
    env = dict(os.environ, SLURM_LOCAL_DIR=str(scratch))

    def script(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True, env=env, timeout=600)

    start = script("start")
    if start.returncode == 3:
        pytest.skip(start.stderr.strip().splitlines()[-1])
    try:
        assert start.returncode == 0, f"slurm-local.sh start failed ({start.returncode}):\n{start.stderr[-3000:]}"
        yield scratch
    finally:
        stop = script("stop")
        assert stop.returncode == 0, f"slurm-local.sh stop failed ({stop.returncode}):\n{stop.stderr[-3000:]}"


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("on-slurm")
    return work, sweep(work, "slurm", *SLURM_ARGS)


@pytest.fixture
def local_run(smoke_run) -> Path:
    """The smoke sweep run locally (conftest.py), shared with the other modules."""
    return smoke_run


def test_slurm_results_are_identical_to_the_local_run(slurm_run, local_run):
    """Runs and aggregates, values and attrs: none of them records a host, user, time or path."""
    work, _ = slurm_run
    runs = run_files(work)
    assert runs and set(runs) <= set(run_files(local_run))  # local_run is the whole smoke sweep
    assert len(runs) > 30
    for run in runs:
        xr.testing.assert_identical(xr.load_dataset(work / run), xr.load_dataset(local_run / run))
    for name in EXPERIMENTS:
        a = xr.load_dataset(work / "results" / f"{name}.nc")
        b = xr.load_dataset(local_run / "results" / f"{name}.nc")
        xr.testing.assert_identical(a, b)
        assert (work / "results" / "figures" / f"{name}.png").is_file()


def test_every_simulation_ran_inside_a_slurm_job(slurm_run, cluster):
    work, proc = slurm_run
    text = proc.stdout + proc.stderr
    job_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", text)
    runs = run_files(work)
    group = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())["group-components"]["simulate"]
    batches = mecsweep.Sweep(yaml.safe_load(smoke_subset(work).read_text())).batches()  # the simulation jobs
    assert len(batches) < len(runs)
    assert len(job_ids) == len(set(job_ids)) == math.ceil(len(batches) / group)
    # slurmctld itself saw each of them finish with exit code 0.
    ctld_log = (cluster / "log" / "slurmctld.log").read_text()
    for job_id in job_ids:
        assert f"_job_complete: JobId={job_id} WEXITSTATUS 0" in ctld_log, job_id
    # Each run file was written by a rule executed in one of those jobs, and only simulate ran
    # there (aggregate and plot are local rules).
    logs = {job_id: list((work / ".snakemake" / "slurm_logs").rglob(f"{job_id}.log")) for job_id in job_ids}
    assert all(len(found) == 1 for found in logs.values()), logs
    job_text = "\n".join(found[0].read_text() for found in logs.values())
    rules = set(re.findall(r"^\s*rule (\w+):", job_text, flags=re.M))
    assert rules == {f"simulate_{b['id']}" for b in batches}
    outputs = {p for line in re.findall(r"^\s*output: (.+)$", job_text, flags=re.M) for p in line.split(", ")}
    assert outputs == set(runs)
