"""curation: turn raw web crawls into pretraining data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("curation")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
