"""Fixtures shared by the test modules.

``smoke_run``: the smoke sweep (config/smoke.yaml, -c2), run once per test run and shared by
test_workflow, test_reliability and test_slurm as the reference every other sweep must equal;
under pytest-xdist (``./run test``) the first worker that needs it runs it, the others wait on a
lock and reuse it (the pattern of pytest-xdist's documentation). Tests only read it; one that
changes a sweep copies it first.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from helpers import ok, snakemake, temporaries


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, request) -> Path:
    if not hasattr(request.config, "workerinput"):  # one process (no pytest-xdist worker): no one to share with
        work = tmp_path_factory.mktemp("smoke")
        ok(snakemake(work, cores=2))
        assert not temporaries(work)
        return work
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, common to its workers
    work, done = shared / "smoke", shared / "smoke.done"
    with open(shared / "smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            work.mkdir(exist_ok=True)
            ok(snakemake(work, cores=2))
            assert not temporaries(work)
            done.touch()
    return work
