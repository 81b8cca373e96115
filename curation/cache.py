"""The engine's cache: what it derives once per machine and reuses in every run.

Safe to delete at any time; whatever uses it rebuilds what is missing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import time
from pathlib import Path


def cache_dir() -> Path:
    """Where the engine keeps what it derives once per machine: ``CURATION_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/curation``, else ``~/.cache/curation``."""
    chosen = os.environ.get("CURATION_CACHE_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "curation"


#: a cached file unused for this long (seconds) is deleted when a new one is written
STALE_AFTER = 30 * 86_400


def prune_stale(folder: Path, pattern: str, keep: set[str]) -> None:
    """Delete the files of ``folder`` matching ``pattern`` but not named in ``keep`` that
    nothing has used (modified or touched) for ``STALE_AFTER``. Errors are ignored: another
    process may be deleting them too, and a read-only cache is fine."""
    cutoff = time.time() - STALE_AFTER
    for path in folder.glob(pattern):
        with contextlib.suppress(OSError):
            if path.name not in keep and path.stat().st_mtime < cutoff:
                path.unlink()


def hashing_libraries() -> dict[str, str]:
    """The versions of the libraries whose results the dedup keys are: polars' hash
    (stable within a polars version only, its documentation says) and pyarrow's string
    kernels (case folding by its Unicode tables). A cache of keys made under others
    would silently match nothing."""
    import polars
    import pyarrow

    return {"polars": polars.__version__, "pyarrow": pyarrow.__version__}


def libraries_text(libraries: dict[str, str]) -> str:
    """``hashing_libraries``' versions as messages and build records name them:
    ``polars 1.2.3, pyarrow 4.5.6``."""
    return ", ".join(f"{name} {version}" for name, version in sorted(libraries.items()))


@functools.cache
def engine_digest() -> str:
    """A SHA-256 of the engine's Python sources (every ``.py`` file of the package, by
    path and bytes; about 200 files, a few milliseconds): what a cached result derived by
    the engine's code is keyed on, so that any change of that code makes it anew."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
