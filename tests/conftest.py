"""Fixtures shared by the test modules.

``smoke_run``: the smoke sweep (config/smoke.yaml, -c2), run once per session and shared by
test_workflow, test_reliability and test_slurm as the reference every other sweep must equal.
Tests only read it; one that changes a sweep copies it first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ok, snakemake, temporaries


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("smoke")
    ok(snakemake(work, cores=2))
    assert not temporaries(work)
    return work
