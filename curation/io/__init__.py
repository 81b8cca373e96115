"""Readers, writers and Hub export: documents in and out of the engine."""

from __future__ import annotations

import os


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a location through a protocol (``s3://``, ``hf://``,
    ``https://``: fsspec's to open) rather than a path of this machine's file system."""
    return "://" in os.fspath(path)
