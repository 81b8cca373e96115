"""Stage base classes, resource declarations and the stage registry.

A **map stage** sees one batch of live rows (rows without a ``drop_reason``) at a time
and returns the same rows in the same order, with columns added and ``drop_reason`` set
on the rows it rejects (reasons are ``<stage name>:<rule>``). Models and other heavy
state load once per worker in ``setup``. Consecutive map stages are fused by the
executors into one pass over the data.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs: CPU cores, GPUs and memory in bytes."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_bytes: int = 0


class StageParams(BaseModel):
    """Base of every stage's parameters: frozen, and unknown names are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MapStage:
    """A stage that works on one batch at a time.

    Subclasses set ``name`` (the recipe key and the prefix of their drop reasons),
    ``help`` (one line for ``curate stages``), ``Params`` and implement ``process``.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    Params: ClassVar[type[StageParams]] = StageParams
    resources: ClassVar[Resources] = Resources()

    def __init__(self, params: StageParams) -> None:
        self.params = params

    def setup(self) -> None:
        """Load models or other per-worker state. Called once per worker before any batch."""

    def process(self, table: pa.Table) -> pa.Table:
        """Return ``table`` with this stage's columns added and ``drop_reason`` set.

        ``table`` holds only live rows. The result must have the same rows in the same
        order; the executor checks the row count.
        """
        raise NotImplementedError

    def reason(self, rule: str) -> str:
        """The ``drop_reason`` string this stage writes for ``rule``."""
        return f"{self.name}:{rule}"

    def versions(self) -> dict[str, str]:
        """Versions of models or data this stage depends on, recorded in ``recipe.yaml``."""
        return {}


# Modules whose import registers stages. Each later area (dedup, scoring...) adds itself.
_STAGE_MODULES = (
    "curation.filters.length",
    "curation.filters.gopher",
    "curation.filters.repetition",
    "curation.filters.c4",
    "curation.filters.fineweb",
    "curation.filters.badwords",
    "curation.filters.language",
    "curation.selectors.random",
)

_REGISTRY: dict[str, type[MapStage]] = {}


def register(cls: type[MapStage]) -> type[MapStage]:
    """Class decorator: make a stage available to recipes under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two stages are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> Mapping[str, type[MapStage]]:
    """All stages by recipe name, sorted by name."""
    for module in _STAGE_MODULES:
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))


def describe_params(params: type[StageParams]) -> list[dict[str, Any]]:
    """Each parameter of a stage as ``{name, type, default, help}``, in declaration order."""
    rows = []
    for name, field in params.model_fields.items():
        annotation = field.annotation
        type_name = getattr(annotation, "__name__", None) or str(annotation)
        default = "required" if field.is_required() else repr(field.get_default())
        rows.append(
            {
                "name": name,
                "type": type_name.replace("typing.", ""),
                "default": default,
                "help": field.description or "",
            }
        )
    return rows
