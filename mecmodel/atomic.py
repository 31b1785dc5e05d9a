"""One way to write a result file: under a temporary name beside it, then renamed over it.

A reader (Snakemake, a user's ``xr.open_dataset``) only ever sees a complete file or none; on
any error the temporary files are removed and the final paths are left as they were.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike, fsync: bool = True) -> Iterator[list[str]]:
    """Yield one temporary path beside each of ``paths``; when the block succeeds, flush them to
    disk, give them the permissions a new file gets under the umask and rename each over its
    target (all targets exist, or the exception leaves none changed)."""
    targets = [Path(p) for p in paths]
    tmps: list[str] = []
    try:
        for path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
            os.close(fd)
            tmps.append(tmp)
        yield list(tmps)
        umask = os.umask(0)
        os.umask(umask)
        for tmp in tmps:
            if fsync:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~umask)
        for path, tmp in zip(targets, tmps, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
