"""Faults of the sweep: kills and resumes, determinism, divergence, locks, write failures, path safety.

Every Snakemake run happens in a temporary directory (``--directory``) with the repository's
Snakefile; the uninterrupted smoke sweep (``reference``) is what the others must reproduce
exactly: same files, same values, same attrs, same figure bytes. See docs/reliability.md.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import (
    LOCKED,
    PROFILE,
    SMOKE,
    assert_complete,
    assert_same_results,
    experiment,
    final_files,
    freeze,
    job_counts,
    job_env,
    kill,
    load_config,
    ok,
    output,
    resume,
    snakemake,
    start,
    temporaries,
    thaw,
    wait_until_gone,
    write_config,
)

import mecmodel
from mecmodel import plots, schemes
from mecmodel.dataset import write_atomic
from mecmodel.params import make_params
from mecmodel.results import aggregate, find_runs, run_path

SMOKE_CONFIG = load_config(SMOKE)
MODEL = f"default-{make_params('default').model_hash()}"


def run_of(root: Path, K: int, lam: float, gamma: float, scheme: str, config: dict = SMOKE_CONFIG) -> Path:
    return root / run_path(
        MODEL, {"K": K, "arrival_prob": lam, "gamma": gamma, "scheme": scheme}, config["seeds"], config["blocks"]
    )


@pytest.fixture
def reference(smoke_run) -> Path:
    """The smoke sweep run once, uninterrupted, with -c2 (conftest.py): what every other sweep must reproduce."""
    return smoke_run


def subset_config(tmp_path: Path, *names: str) -> Path:
    """The smoke config with only the experiments ``names``: a shorter sweep whose every file the
    full smoke sweep also makes (shared points included)."""
    config = {**SMOKE_CONFIG, "experiments": {n: SMOKE_CONFIG["experiments"][n] for n in names}}
    return write_config(tmp_path / f"subset-{'-'.join(names)}.yaml", config)


# ----------------------------------------------------------------------------- kill and resume


def _fresh(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def _job_running(work: Path, since: float, rule: str, output_of: Callable[[Path, Path], Path]) -> bool:
    """A job of ``rule`` started since ``since`` (its log was created) and has not written its output."""
    logs = work / "results" / "logs" / rule
    if not logs.is_dir():
        return False
    return any(
        _fresh(log, since) and not output_of(work, log.relative_to(logs)).exists() for log in logs.rglob("*.log")
    )


def _simulating(work: Path, since: float) -> bool:
    """A simulation batch started since ``since`` (its log was created) and has not ended (its log
    lacks the closing line that ``mecmodel simulate-batch`` writes)."""
    logs = work / "results" / "logs" / "simulate"
    if not logs.is_dir():
        return False
    return any(_fresh(log, since) and "runs done in" not in log.read_text() for log in logs.rglob("*.log"))


def _writing(work: Path, since: float, folder: str, glob: str = ".*.part") -> bool:
    """A temporary file of an atomic write, created since ``since``, is in ``folder``."""
    base = work / folder
    return base.is_dir() and any(_fresh(p, since) for p in base.glob(glob))


def _n_runs(config: dict) -> int:
    points = set()
    for exp in config["experiments"].values():
        for K in exp["K"]:
            for lam in exp["arrival_prob"]:
                for gamma in exp["gamma"]:
                    points.update((K, lam, gamma, s) for s in exp["scheme"])
    return len(points)


N_RUNS = _n_runs(SMOKE_CONFIG)


@dataclasses.dataclass(frozen=True)
class KillPoint:
    name: str
    reached: Callable[[Path, float], bool]  # (workdir, start of this attempt) -> the moment is now


KILL_POINTS = [
    KillPoint(
        "simulate jobs running, no run finished yet", lambda w, t: not find_runs(w / "results") and _simulating(w, t)
    ),
    KillPoint("a run file half-written", lambda w, t: _writing(w, t, "results/runs", "*/*/*/*/*/.*.part")),
    KillPoint(
        "half of the runs finished, simulations running",
        lambda w, t: N_RUNS // 2 <= len(find_runs(w / "results")) < N_RUNS and _simulating(w, t),
    ),
    KillPoint(
        "an aggregate job running",
        lambda w, t: _job_running(w, t, "aggregate", lambda w_, rel: w_ / "results" / rel.with_suffix(".nc")),
    ),
    KillPoint("an aggregate half-written", lambda w, t: _writing(w, t, "results")),
    KillPoint(
        "an aggregate job drawing its figure (the aggregate written, the figure not yet)",
        lambda w, t: any(
            _fresh(nc, t) and not (w / "results" / "figures" / f"{nc.stem}.pdf").exists()
            for nc in (w / "results").glob("*.nc")
        ),
    ),
    KillPoint("a figure half-written", lambda w, t: _writing(w, t, "results/figures")),
]


def _kill_at_first(proc: subprocess.Popen, work: Path, since: float, points: list[KillPoint]) -> KillPoint | None:
    """Poll until one of ``points`` is reached, then SIGKILL the sweep; None if the sweep ends first.

    The sweep is frozen (SIGSTOP) and the moment checked again before the kill, so the kill is
    known to land in it; a moment that passed in between lets the sweep go on.
    """
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        for point in points:
            if point.reached(work, since):
                freeze(proc)
                if point.reached(work, since):
                    kill(proc)
                    return point
                thaw(proc)
        time.sleep(0.003)
    return None


@pytest.mark.slow
def test_sweep_killed_at_each_moment_resumes_to_identical_results(reference: Path, tmp_path: Path) -> None:
    """SIGKILL the whole smoke sweep (Snakemake and its job processes) at seven moments in turn.

    After each kill: nothing is left running, every file at a final path is complete, and the
    README's resume (``snakemake --unlock``, then ``snakemake --profile profiles/default``)
    carries on. The last resume finishes and every run, aggregate and figure is identical to
    the uninterrupted sweep.
    """
    work = tmp_path / "w"
    work.mkdir()
    remaining = list(KILL_POINTS)
    hit: list[str] = []
    args: tuple[str, ...] = ()  # the first attempt is a plain `snakemake`, every resume uses the profile
    while True:
        since = time.time()
        proc = start(work, *args)
        try:
            point = _kill_at_first(proc, work, since, remaining) if remaining else None
            if point is None:
                proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                kill(proc)
        if point is None:
            break
        hit.append(point.name)
        remaining.remove(point)
        assert wait_until_gone(work) == [], f"processes survived the kill at {point.name!r}"
        for path in final_files(work).values():
            assert_complete(path)
        if len(hit) == 1:
            # A SIGKILLed Snakemake cannot remove its lock: the README's first step is --unlock.
            stale = resume(work)
            assert stale.returncode != 0 and LOCKED in output(stale)
        ok(snakemake(work, "--unlock"))
        args = ("--profile", str(PROFILE))
    assert proc.returncode == 0, f"the last resume failed; kill points reached: {hit}"
    assert not remaining, f"the sweep finished before these moments came: {[p.name for p in remaining]}"
    assert_same_results(work, reference)
    assert job_counts(ok(snakemake(work, "-n"))) == {}
    # An interrupted write leaves only its hidden temporary, never a file at a final path.
    assert all(p.name.startswith(".") and p.name.endswith(".part") for p in temporaries(work))


KILL_WRITER = """
import sys
import numpy as np, xarray as xr
from mecmodel.dataset import write_atomic
rng = np.random.default_rng(0)
ds = xr.Dataset({"x": (("a", "b"), rng.random((3000, 3000)))})  # ~70 MB: seconds to compress
write_atomic(ds, sys.argv[1])
"""


def test_netcdf_killed_mid_write_leaves_the_previous_file(tmp_path: Path) -> None:
    """SIGKILL during write_atomic: the final path still holds the previous complete file."""
    target = tmp_path / "data.nc"
    before = xr.Dataset({"y": ("t", np.arange(5.0))}, attrs={"version": 1})
    write_atomic(before, target)
    proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, str(target)], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            parts = list(tmp_path.glob(".data.nc.*.part"))
            if parts and parts[0].stat().st_size > 0:
                break
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    parts = list(tmp_path.glob(".data.nc.*.part"))
    assert parts, "the writer finished before the kill"
    xr.testing.assert_identical(xr.load_dataset(target), before)
    after = before.assign_attrs(version=2)
    write_atomic(after, target)
    xr.testing.assert_identical(xr.load_dataset(target), after)


# ----------------------------------------------------------------------------- determinism


@pytest.mark.slow
def test_same_config_gives_identical_results_with_one_core(reference: Path, tmp_path: Path) -> None:
    """Three experiments of the smoke sweep (every scheme, the exact solvers at K = 1, a swept
    scheme parameter) with -c1 against the reference's -c2, file for file: their runs also sit in
    other batches than in the reference (a subset of the runs is batched anew), so this is a
    point inside other batches of points too."""
    cfg = subset_config(tmp_path, "cost_vs_K", "optimality_gap", "cost_vs_V")
    work = tmp_path / "w"
    work.mkdir()
    ok(snakemake(work, configfile=cfg, cores=1))
    runs = {r for r in final_files(work) if r.startswith("results/runs/")}
    assert len(runs) > 30 and {r.split("/")[-2] for r in runs} >= set(schemes.select("all")) | {"optimal"}
    assert assert_same_results(work, reference, subset=True) == len(final_files(work))


@pytest.mark.slow
def test_a_second_sweep_elsewhere_gives_identical_results(reference: Path, tmp_path: Path) -> None:
    """A second -c2 sweep in another directory, of two experiments that share a point (three
    points of every listed scheme, 2 aggregates, 2 figures of 2 files each), file for file
    against the reference."""
    cfg = subset_config(tmp_path, "cost_vs_arrival", "cost_vs_gamma")
    work = tmp_path / "w"
    work.mkdir()
    ok(snakemake(work, configfile=cfg, cores=2))
    runs = 3 * len(schemes.select("all"))
    assert len(find_runs(work / "results")) == runs
    assert assert_same_results(work, reference, subset=True) == runs + 2 + 4


@pytest.mark.slow
def test_a_point_alone_equals_the_same_point_in_the_sweep(reference: Path, tmp_path: Path) -> None:
    """Points run on their own (a one-point experiment, the bare CLI) match the big sweep's files."""
    smoke = SMOKE_CONFIG
    config = {
        "seeds": smoke["seeds"],
        "blocks": smoke["blocks"],
        "experiments": {
            "convergence": smoke["experiments"]["convergence"],  # the same experiment, alone
            "lone": experiment("cost_vs_K", K=(4,), scheme=("random",)),  # one point of the smoke cost_vs_K
        },
    }
    cfg = write_config(tmp_path / "alone.yaml", config)
    work = tmp_path / "w"
    work.mkdir()
    ok(snakemake(work, configfile=cfg))
    assert len(find_runs(work / "results")) == 2
    for rel in ("results/figures/convergence.png", "results/figures/convergence.pdf"):
        assert (work / rel).read_bytes() == (reference / rel).read_bytes(), rel
    xr.testing.assert_identical(
        xr.load_dataset(work / "results/convergence.nc"), xr.load_dataset(reference / "results/convergence.nc")
    )
    for point in ((3, 0.4, 0.9, "proposed"), (4, 0.4, 0.9, "random")):
        xr.testing.assert_identical(xr.load_dataset(run_of(work, *point)), xr.load_dataset(run_of(reference, *point)))
    # The bare command line, outside Snakemake, for a point the sweep ran among 29 others.
    cli = subprocess.run(
        ["mecmodel", "simulate", "--K", "2", "--arrival-prob", "0.4", "--gamma", "0.9", "--scheme", "even"]
        + ["--seeds", str(smoke["seeds"]), "--blocks", str(smoke["blocks"]), "--progress", "off", "-o", "even.nc"],
        cwd=tmp_path,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    xr.testing.assert_identical(
        xr.load_dataset(tmp_path / "even.nc"), xr.load_dataset(run_of(reference, 2, 0.4, 0.9, "even"))
    )


# ----------------------------------------------------------------------------- numerical robustness


def test_divergence_is_detected_at_its_block_recorded_and_logged(caplog) -> None:
    """alpha0 = 10 (the largest step size allowed) makes Algorithm 1 blow up within a few blocks.

    The dataset records the block; running exactly that many blocks shows no divergence and one
    block more shows it at that block, so it is caught in the block it happens, not later. The
    run goes on with the learner frozen at its last finite weights, so every cost stays finite.
    """
    over = {"alpha0": 10.0}
    point = {"K": 3, "arrival_prob": 0.4, "gamma": 0.9, "scheme": "proposed"}
    with caplog.at_level(logging.WARNING, logger="mecmodel"):
        ds = mecmodel.simulate(**point, seeds=3, blocks=40, overrides=over)
    first = ds["alg1_diverged_block"].squeeze().values
    assert (first >= 1).all(), first
    assert ds["diverged"].all() and ds["diverged"].dtype == np.int8
    assert np.isfinite(ds["cost"]).all() and np.isfinite(ds["discounted_cost"]).all()
    for seed, b in zip(ds["seed"].values.tolist(), first.tolist(), strict=True):
        assert f"alg1 diverged in seed {seed} at block {b} (scheme proposed, K=3)" in caplog.text
        before = mecmodel.simulate(**point, seeds=[seed], blocks=b, overrides=over)
        assert before["diverged"].item() == 0 and before["alg1_diverged_block"].item() == -1
        at = mecmodel.simulate(**point, seeds=[seed], blocks=b + 1, overrides=over)
        assert at["diverged"].item() == 1 and at["alg1_diverged_block"].item() == b
    # Algorithm 2 (the server) keeps its default-sized steps in check, and a non-learning scheme has nothing to flag.
    even = mecmodel.simulate(**{**point, "scheme": "local"}, seeds=3, blocks=40, overrides=over)
    assert (even["alg1_diverged_block"] == -1).all()


@pytest.mark.slow
def test_divergence_reaches_the_aggregate_the_log_and_the_figure(tmp_path: Path) -> None:
    config = {
        "seeds": 3,
        "blocks": 40,
        "overrides": {"alpha0": 10.0},
        "experiments": {"blowup": experiment("cost_vs_block", scheme=("proposed", "local"))},
    }
    cfg = write_config(tmp_path / "blowup.yaml", config)
    work = tmp_path / "w"
    work.mkdir()
    ok(snakemake(work, configfile=cfg))
    agg = xr.load_dataset(work / "results" / "blowup.nc")
    flags = agg["diverged"].sel(K=3, arrival_prob=0.4, gamma=0.9)
    assert flags.sel(scheme="proposed").values.tolist() == [1, 1, 1]
    assert flags.sel(scheme="local").values.tolist() == [0, 0, 0]
    blocks = agg["alg1_diverged_block"].sel(scheme="proposed").squeeze().values.tolist()
    model = f"default-{make_params('default', {'alpha0': 10.0}).model_hash()}"
    (log,) = (work / "results" / "logs" / "simulate" / model).glob("*.log")  # the one batch's log
    for seed, b in enumerate(blocks):
        assert f"alg1 diverged in seed {seed} at block {b}" in log.read_text()
    fig = plots.build_figure("cost_vs_block", agg)
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any(label.startswith("proposed") and "3 of 3 seeds diverged" in label for label in labels), labels
    assert any("had a learner diverge" in t.get_text() for t in fig.texts)


# ----------------------------------------------------------------------------- locks


@pytest.mark.slow
def test_second_sweep_in_the_same_directory_is_refused(reference: Path, tmp_path: Path) -> None:
    """While sweep A runs, a second Snakemake in A's directory is refused and A is untouched;
    sweep B in another directory runs alongside A, and both equal the reference."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cfg = subset_config(tmp_path, "cost_vs_K")  # two points of every scheme: long enough to be caught running
    since = time.time()
    first = start(a, configfile=cfg, cores=1)
    second = None
    try:
        while not _simulating(a, since):  # jobs run only once the lock is taken
            assert first.poll() is None, "sweep A ended early"
            time.sleep(0.05)
        freeze(first)  # A holds its lock for as long as the intruder needs to try
        try:
            intruder = snakemake(a, configfile=cfg, cores=1)
        finally:
            thaw(first)
        assert intruder.returncode != 0
        assert LOCKED in output(intruder)
        second = start(b, configfile=cfg, cores=1)
        assert first.poll() is None  # B starts while A still runs
        assert first.wait(timeout=900) == 0
        assert second.wait(timeout=900) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                kill(proc)
    runs = 2 * len(schemes.select("all"))
    assert assert_same_results(a, reference, subset=True) == runs + 1 + 2
    assert assert_same_results(b, reference, subset=True) == runs + 1 + 2


# ----------------------------------------------------------------------------- write failures


def tiny_config(tmp_path: Path, blocks: int = 20) -> Path:
    config = {"seeds": 2, "blocks": blocks, "experiments": {"convergence": experiment("convergence", K=(2,))}}
    return write_config(tmp_path / f"tiny-{blocks}.yaml", config)


@pytest.mark.slow
def test_results_path_that_is_a_file_is_refused_then_the_fixed_run_completes(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    work = tmp_path / "w"
    work.mkdir()
    (work / "results").write_text("not a folder\n")
    proc = snakemake(work, configfile=cfg, cores=1)
    assert proc.returncode != 0
    assert f"results: {work / 'results'} exists but is not a directory" in output(proc)
    assert "Traceback (most recent call last)" not in output(proc)
    assert (work / "results").read_text() == "not a folder\n"
    (work / "results").unlink()
    ok(snakemake(work, configfile=cfg, cores=1))
    assert len(final_files(work)) == 4  # run, aggregate, PNG, PDF
    for path in final_files(work).values():
        assert_complete(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 555; the file-size test stands in")
@pytest.mark.slow
def test_read_only_results_folder_is_refused(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    work = tmp_path / "w"
    (work / "results").mkdir(parents=True)
    (work / "results").chmod(0o555)
    try:
        proc = snakemake(work, configfile=cfg, cores=1)
    finally:
        (work / "results").chmod(0o755)
    assert proc.returncode != 0 and "is not writable" in output(proc)
    assert list((work / "results").iterdir()) == []


def _file_size_limit(limit: int) -> Callable[[], None]:
    """preexec_fn: a full disk, as far as writes go (EFBIG past ``limit`` bytes; SIGXFSZ ignored)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


FULL = 192 * 1024  # bytes: more than Snakemake's own bookkeeping, less than one 2000-block run file


@pytest.mark.slow
def test_full_disk_fails_clearly_without_partial_files_and_the_rerun_completes(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, blocks=2000)
    work = tmp_path / "w"
    work.mkdir()
    # The engine's kernels compiled and cached first (on a cold cache their cache files would be the
    # first thing the limit stops, an error that names no run): the run file is what must fail here.
    warm = [sys.executable, "-m", "mecmodel", "simulate", "--K", "2", "--seeds", "1", "--blocks", "2"]
    subprocess.run([*warm, "--scheme", "proposed", "-o", str(tmp_path / "warm.nc")], check=True)
    proc = snakemake(work, configfile=cfg, cores=1, preexec_fn=_file_size_limit(FULL))
    assert proc.returncode != 0
    run = work / run_path(MODEL, {"K": 2, "arrival_prob": 0.4, "gamma": 0.9, "scheme": "proposed"}, 2, 2000)
    message = f"mecmodel: error: output: cannot write {run.relative_to(work)}: the NetCDF library could not write"
    (log,) = (work / "results" / "logs" / "simulate" / MODEL).glob("*.log")  # the one batch's log
    assert log.read_text().splitlines() == [log.read_text().strip()] and log.read_text().startswith(message)
    assert message in output(proc)  # Snakemake shows the failed job's log
    assert final_files(work) == {} and temporaries(work) == []
    ok(snakemake(work, configfile=cfg, cores=1))
    assert sorted(final_files(work)) == sorted(
        [
            str(run.relative_to(work)),
            "results/convergence.nc",
            "results/figures/convergence.png",
            "results/figures/convergence.pdf",
        ]
    )
    for path in final_files(work).values():
        assert_complete(path)


def _limited(args: list[str], cwd: Path, limit: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mecmodel", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit(limit),
    )


def test_full_disk_in_aggregate_and_plot_fails_clearly_without_partial_files(tmp_path: Path) -> None:
    runs = tmp_path / "in"
    ds = mecmodel.simulate(K=2, seeds=2, blocks=300)
    run = write_atomic(ds, runs / "run.nc")
    agg = aggregate([run], runs / "agg.nc", experiment="e")
    out = tmp_path / "out"
    out.mkdir()
    small = 16 * 1024
    assert run.stat().st_size > small and agg.stat().st_size > small
    r = _limited(["aggregate", str(run), "-o", "agg.nc"], out, small)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "mecmodel: error: aggregate: I/O failed agg.nc: the NetCDF library could not write the file "
        "(NetCDF: HDF error); is the disk full?"
    ]
    assert list(out.iterdir()) == []
    r = _limited(["plot", "convergence", str(agg), "--png", "f.png", "--pdf", "f.pdf"], out, small)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["mecmodel: error: plot: I/O failed f.png: File too large"]
    assert list(out.iterdir()) == []
    # The same commands without the limit succeed.
    assert _limited(["aggregate", str(run), "-o", "agg.nc"], out, resource.RLIM_INFINITY).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["agg.nc"]


# ----------------------------------------------------------------------------- safety


ESCAPES = [
    "results/../../outside.nc",
    f"results/runs/{MODEL}/K3/lam0.4/gamma0.9/../../../../../../outside/s2-b60.nc",
    "results/figures/../../../outside.png",
    f"results/runs/{MODEL}/K3/lam../gamma0.9/proposed/s2-b60.nc",
    "{outside}/results/convergence.nc",  # an absolute path elsewhere
]


@pytest.mark.slow
def test_targets_outside_results_are_refused(tmp_path: Path) -> None:
    """Asked for a path that climbs out of results/ (or a wildcard of '..'), Snakemake has no rule for it."""
    outside = tmp_path / "outside"
    targets = [t.format(outside=outside) for t in ESCAPES]
    works = [tmp_path / f"w{i}" / "work" for i in range(len(targets))]
    for work in works:
        work.mkdir(parents=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(targets)) as pool:
        procs = list(pool.map(lambda wt: snakemake(wt[0], wt[1], cores=1), zip(works, targets, strict=True)))
    for work, target, proc in zip(works, targets, procs, strict=True):
        assert proc.returncode != 0, target
        assert "MissingRuleException" in output(proc) and "No rule to produce" in output(proc), output(proc)[-1500:]
        assert sorted(p.name for p in work.parent.iterdir()) == ["work"], target
        assert not (work / "results").exists(), target
    assert not outside.exists()
