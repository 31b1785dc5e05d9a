"""Importing a user's ``.py`` file once per process (scheme modules, trained agents' loaders)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path


def import_file(path: Path, prefix: str):
    """Import a ``.py`` file once per process, as module ``<prefix><hash of its absolute path>``."""
    path = Path(path).resolve()
    modname = prefix + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if modname not in sys.modules:
        mspec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(mspec)
        sys.modules[modname] = module
        try:
            mspec.loader.exec_module(module)
        except BaseException:
            del sys.modules[modname]
            raise
    return sys.modules[modname]
