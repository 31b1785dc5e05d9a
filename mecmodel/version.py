"""mecmodel's version, read from the installed package's metadata (pyproject.toml is its one source)."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version


@functools.cache
def package_version() -> str:
    """The installed version of mecmodel; ``0+unknown`` for a source tree used without installing."""
    try:
        return version("mecmodel")
    except PackageNotFoundError:
        return "0+unknown"
