"""The engine's cache: what it derives once per machine and reuses in every run.

Safe to delete at any time; whatever uses it rebuilds what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where the engine keeps what it derives once per machine: ``CURATION_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/curation``, else ``~/.cache/curation``."""
    chosen = os.environ.get("CURATION_CACHE_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "curation"
