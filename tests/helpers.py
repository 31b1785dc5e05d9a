"""Running the repository's Snakefile in a temporary directory, and comparing finished sweeps.

Snakemake runs as ``python -m snakemake -s <repo>/Snakefile --directory <tmp>``, so nothing is
written into the repository. Used by test_workflow.py, test_reliability.py and test_bad_inputs.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
SMOKE = REPO / "config" / "smoke.yaml"
PROFILE = REPO / "profiles" / "default"
LOCKED = "Directory cannot be locked"


def job_env(**extra: str) -> dict[str, str]:
    """The environment of a test's Snakemake: the rules call the `mecmodel` script beside this interpreter."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def snakemake_cmd(workdir: Path, *args: str, configfile: Path | None = SMOKE, cores: int | None = 2) -> list[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir)]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    if cores is not None:
        cmd += ["--cores", str(cores)]
    return [*cmd, *args]


def snakemake(
    workdir: Path,
    *args: str,
    configfile: Path | None = SMOKE,
    cores: int | None = 2,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's Snakefile in ``workdir``; never raises on failure."""
    return subprocess.run(
        snakemake_cmd(workdir, *args, configfile=configfile, cores=cores),
        capture_output=True,
        text=True,
        env=job_env(),
        timeout=900,
        preexec_fn=preexec_fn,
    )


def resume(workdir: Path, configfile: Path = SMOKE, cores: int = 2) -> subprocess.CompletedProcess:
    """The README's resume: ``./run reproduce`` is ``snakemake --profile profiles/default``."""
    return snakemake(workdir, "--profile", str(PROFILE), configfile=configfile, cores=cores)


def start(workdir: Path, *args: str, configfile: Path = SMOKE, cores: int = 2) -> subprocess.Popen:
    """Start a sweep in the background, in a session of its own so one killpg reaches every job."""
    return subprocess.Popen(
        snakemake_cmd(workdir, *args, configfile=configfile, cores=cores),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=job_env(),
        start_new_session=True,
    )


def freeze(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGSTOP)


def thaw(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGCONT)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every job it started (they share its session and process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def processes_in(workdir: Path) -> list[int]:
    """Live processes whose working directory is ``workdir`` (Linux /proc)."""
    pids = []
    target = str(workdir.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == target:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def wait_until_gone(workdir: Path, timeout: float = 10.0) -> list[int]:
    """Processes still running in ``workdir`` after ``timeout`` seconds (a killed process is reaped by init)."""
    deadline = time.monotonic() + timeout
    while (left := processes_in(workdir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def job_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs per rule from the 'Job stats' table of a (dry) run; {} when nothing is to be done.
    The simulation batches' rules (``simulate_<scheme>_<id>``, one per batch) count as ``simulate``."""
    text = output(proc)
    if "Nothing to be done" in text:
        return {}
    table = text[text.index("Job stats:") :]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if not m:
            break
        name = "simulate" if m.group(1).startswith("simulate_") else m.group(1)
        counts[name] = counts.get(name, 0) + int(m.group(2))
    assert counts.pop("total") == sum(counts.values())
    return counts


def planned_jobs(proc: subprocess.CompletedProcess) -> list[tuple[str, list[str]]]:
    """(rule, outputs) of every job of a (dry) run's plan; a simulation batch's rule counts as ``simulate``."""
    jobs = []
    for m in re.finditer(r"^\s*rule (\w+):\n\s+(?:input: .*\n\s+)?output: (.+)$", output(proc), flags=re.M):
        rule = "simulate" if m.group(1).startswith("simulate_") else m.group(1)
        jobs.append((rule, m.group(2).split(", ")))
    return jobs


def planned_outputs(proc: subprocess.CompletedProcess) -> set[str]:
    """Every output file of a (dry) run's plan."""
    return {path for _, outputs in planned_jobs(proc) for path in outputs}


def load_config(path: Path) -> dict:
    """A shipped config as the workflow sees it: layers (``extends``, ``prefix``) resolved, scheme
    selectors (``all``, ``paper``) expanded to the registry's lists."""
    from mecmodel.config import apply_layers
    from mecmodel.schemes import select

    config = apply_layers(yaml.safe_load(path.read_text()), [path])
    for exp in config["experiments"].values():
        exp["scheme"] = select(exp["scheme"])
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def experiment(figure: str, K=(3,), arrival_prob=(0.4,), gamma=(0.9,), scheme=("proposed",), **extra) -> dict:
    return {
        "figure": figure,
        "K": list(K),
        "arrival_prob": list(arrival_prob),
        "gamma": list(gamma),
        "scheme": list(scheme),
        **extra,
    }


# ----------------------------------------------------------------------------- files of a sweep


def final_files(workdir: Path) -> dict[str, Path]:
    """Every NetCDF, PNG and PDF at a final (non-temporary) path under results/, by relative path."""
    root = workdir / "results"
    if not root.exists():
        return {}
    out = {}
    for path in root.rglob("*"):
        if path.suffix in (".nc", ".png", ".pdf") and not path.name.startswith("."):
            out[path.relative_to(workdir).as_posix()] = path
    return out


def temporaries(workdir: Path) -> list[Path]:
    """Temporary files of interrupted writes (``.NAME.XXXX.part``) left under results/."""
    root = workdir / "results"
    return sorted(root.rglob(".*.part")) if root.exists() else []


def assert_complete(path: Path) -> None:
    """A file at a final path must be whole: NetCDF opens and loads, PNG ends in IEND, PDF in %%EOF."""
    if path.suffix == ".nc":
        with xr.open_dataset(path) as ds:
            ds.load()
    elif path.suffix == ".png":
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"), f"truncated PNG {path}"
    elif path.suffix == ".pdf":
        data = path.read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), f"truncated PDF {path}"


def assert_same_results(got: Path, ref: Path, figures: bool = True, subset: bool = False) -> int:
    """Every run and aggregate of sweep ``got`` is identical (values, coords, attrs) to ``ref``'s.

    Figures are compared byte for byte when ``figures``. With ``subset``, ``got`` may make fewer
    files than ``ref`` (a sweep of some of its experiments), each identical to ``ref``'s. Returns
    how many files were compared.
    """
    a, b = final_files(got), final_files(ref)
    if subset:
        assert a and set(a) <= set(b), f"files the reference lacks: {sorted(set(a) - set(b))}"
    else:
        assert sorted(a) == sorted(b), (
            f"different files: only in got {sorted(set(a) - set(b))}, only in ref {sorted(set(b) - set(a))}"
        )
    for rel in sorted(a):
        if rel.endswith(".nc"):
            x, y = xr.load_dataset(a[rel]), xr.load_dataset(b[rel])
            try:
                xr.testing.assert_identical(x, y)
            except AssertionError as e:
                raise AssertionError(f"{rel} differs: {e}") from None
            # assert_identical compares values, not how they are stored
            assert {k: v.dtype for k, v in x.variables.items()} == {k: v.dtype for k, v in y.variables.items()}, rel
        elif figures:
            assert a[rel].read_bytes() == b[rel].read_bytes(), f"{rel} differs"
    return len(a)


def drive(P, wd, server, seeds=(0, 1), blocks: int = 50, each: Callable | None = None):
    """Run a WD and a server policy through MECEnv by hand (no simulator): returns the cycles that
    arrived and were computed (locally or at the server) per seed, and the last observation;
    ``each(obs)`` sees every observation after a step."""
    from mecmodel.env import Action, MECEnv
    from mecmodel.policies import PolicyContext

    env = MECEnv(P, list(seeds))
    obs = env.reset()
    ctx = PolicyContext(P, tuple(seeds), env)
    wd.reset(ctx, obs)
    server.reset(ctx, obs)
    arrived = done = 0.0
    for _ in range(blocks):
        obs, _, info = env.step(Action(wd.act(obs), server.act(obs)))
        arrived += info.arrivals.sum(axis=1) * P.task_cycles
        done += info.service.local.sum(axis=1) + info.served.sum(axis=1)
        if each is not None:
            each(obs)
    return arrived, done, obs
