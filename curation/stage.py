"""Stage base classes, resource declarations and the stage registry.

A **map stage** sees one batch of live rows (rows without a ``drop_reason``) at a time
and returns the same rows in the same order, with columns added and ``drop_reason`` set
on the rows it rejects (reasons are ``<stage name>:<rule>``). Models and other heavy
state load once per worker in ``setup``. Consecutive map stages are fused by the
executors into one pass over the data.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs: CPU cores, GPUs and memory in bytes."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_bytes: int = 0


class StageParams(BaseModel):
    """Base of every stage's parameters: frozen, and unknown names are an error.

    ``file_params`` names the parameters that give files, folders or globs the stage
    reads (models, word lists, benchmark items): a run records their versions, and will
    not go on with files changed since it began."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    file_params: ClassVar[tuple[str, ...]] = ()

    def files(self) -> list[str]:
        """The files, folders and globs this stage reads: its ``file_params``' values."""
        found: list[str] = []
        for name in self.file_params:
            value = getattr(self, name)
            found += [value] if isinstance(value, str) else list(value or [])
        return found


class MapStage:
    """A stage that works on one batch at a time.

    Subclasses set ``name`` (the recipe key and the prefix of their drop reasons),
    ``help`` (one line for ``curate stages``), ``Params`` and implement ``process``.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    Params: ClassVar[type[StageParams]] = StageParams
    resources: ClassVar[Resources] = Resources()
    #: the recipe's ``where:`` for this stage (a ``RowFilter``): the executor gives
    #: ``process`` only the rows it is true for; None: every row
    where: Any = None

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

    def begin_shard(self, shard_key: str) -> None:
        """Called before the first batch of each shard (global stages load decisions)."""


class BarrierTooLarge(RuntimeError):
    """A barrier's decision would not fit: more rows reach it than polars can number, or
    a stage's arrays would not fit in the memory available. The message says what to do;
    the shards finished before the barrier are kept for the resume."""


class GlobalStage(MapStage):
    """A stage that needs the whole dataset: a barrier between two fused map passes.

    It runs in three steps. ``measure`` adds the columns the decision needs (hashes, keys)
    to every live row at the end of the pass before the barrier; its columns are
    ``internal_columns`` (dropped again by ``apply``). ``decide`` runs once, at the
    barrier, over the measured columns of all live rows (a lazy polars frame with ``id``,
    ``shard`` and those columns) and writes one decision file per shard with
    ``write_decisions``. ``process`` then applies a shard's decisions at the start of the
    pass after the barrier, like any map stage (same contract, same accounting).
    """

    internal_columns: ClassVar[tuple[str, ...]] = ()
    #: what a long ``decide`` calls to say how far it has gone (``"part 3 of 8"``): the
    #: run's progress display sets it; by default nothing is said
    progress: Callable[[str], None] = staticmethod(lambda text: None)
    #: whether ``measure``'s keys depend on the polars and pyarrow versions (polars'
    #: string hash, pyarrow's case folding): a barrier must not compare keys made under
    #: two (``hashing_libraries``), so a resumed run makes them again
    keys_by_library: ClassVar[bool] = False
    #: set by the barrier before ``decide``: each shard's Parquet parts of the rows that
    #: reach the stage (``id`` and the key columns among their columns), by shard key, for
    #: a stage that reads a few shards at a time rather than all the keys at once; empty
    #: where ``decide`` is called on a frame alone
    key_sources: dict[str, list[Path]] = {}  # noqa: RUF012 - replaced, never mutated

    def key_columns(self) -> list[str]:
        """The internal columns ``measure`` writes with these parameters (for ``decide``)."""
        return list(self.internal_columns)

    def applied_columns(self) -> list[str]:
        """The columns of ``key_columns`` that ``apply`` reads: the pass after the barrier
        reads none of the others (a stage whose keys are large, as n-gram hashes, and
        whose decisions are by id). By default all of them."""
        return self.key_columns()

    def measure(self, table: pa.Table) -> pa.Table:
        """``table`` with the internal columns added. Must not drop or reorder rows, nor
        change the columns it was given: a first pass over local Parquet hands on only
        the id and the columns measure adds, and the pass after the barrier reads the
        rest from the input again."""
        raise NotImplementedError

    def decide(self, keys: Any, folder: Path) -> None:
        """Compute the decisions from ``keys`` (polars LazyFrame) into ``folder``."""
        raise NotImplementedError

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        """Set ``drop_reason`` from this shard's ``decisions`` (None: no decision)."""
        raise NotImplementedError

    def begin_shard(self, shard_key: str) -> None:
        path = self.decisions_folder / f"{shard_key}.parquet"
        self._decisions = pq.read_table(path) if path.exists() else None

    def process(self, table: pa.Table) -> pa.Table:
        out = self.apply(table, getattr(self, "_decisions", None))
        return out.drop_columns([c for c in self.internal_columns if c in out.column_names])

    decisions_folder: Path = Path()


#: a JSON file a barrier's ``decide`` may write into its decisions folder, saying what it
#: decided (``mix``: what each part was asked for and got): the run adds it to the stage's
#: entry in ``stats.json`` as ``decision``, and prints each of its ``notes`` on stderr
DECISION_REPORT = "report.json"


def write_decisions(decisions: Any, folder: Path) -> None:
    """Write a polars DataFrame with a ``shard`` column as one Parquet file per shard."""
    from curation.io.writers import publish, tmp_path

    folder.mkdir(parents=True, exist_ok=True)
    for (shard,), part in decisions.partition_by("shard", as_dict=True).items():
        final = folder / f"{shard}.parquet"
        tmp = tmp_path(final)
        part.drop("shard").write_parquet(tmp)
        publish(tmp, final)


# Each stage's recipe name and the module whose import registers it; a recipe imports
# only its own stages' modules (not numba and every model library for a length filter).
_STAGE_MODULES = {
    "length_filter": "curation.filters.length",
    "gopher_quality": "curation.filters.gopher",
    "gopher_repetition": "curation.filters.repetition",
    "c4_quality": "curation.filters.c4",
    "c4_paragraphs": "curation.filters.paragraphs",
    "doc_stats": "curation.filters.doc_stats",
    "line_stats": "curation.filters.part_stats",
    "paragraph_stats": "curation.filters.part_stats",
    "word_stats": "curation.filters.word_stats",
    "sentence_stats": "curation.filters.word_stats",
    "fineweb_quality": "curation.filters.fineweb",
    "refinedweb_lines": "curation.filters.refinedweb",
    "dclm_quality": "curation.filters.dclm",
    "dclm_repetition": "curation.filters.dclm",
    "sql_filter": "curation.filters.sql",
    "fix_text": "curation.filters.fix_text",
    "symbol_lines": "curation.filters.symbol_lines",
    "c4_badwords": "curation.filters.badwords",
    "language": "curation.filters.language",
    "url_filter": "curation.filters.url",
    "url_removal": "curation.filters.url_removal",
    "regex_replace": "curation.filters.replace",
    "pii": "curation.filters.pii",
    "exact_dedup": "curation.dedup.exact",
    "line_dedup": "curation.dedup.lines",
    "sentence_dedup": "curation.dedup.sentences",
    "substring_dedup": "curation.dedup.substrings",
    "bff_dedup": "curation.dedup.bff",
    "minhash_dedup": "curation.dedup.minhash",
    "decontaminate": "curation.dedup.decontaminate",
    "kenlm_perplexity": "curation.scoring.perplexity",
    "fasttext_classifier": "curation.scoring.classifier",
    "token_count": "curation.scoring.token_count",
    "sample": "curation.selectors.random",
    "threshold": "curation.selectors.threshold",
    "mix": "curation.selectors.mix",
    "lm_loss": "curation.scoring.lm_loss",
    "color_filter": "curation.selectors.color_filter",
    "preselect": "curation.selectors.preselect",
}

_REGISTRY: dict[str, type[MapStage]] = {}


def register(cls: type[MapStage]) -> type[MapStage]:
    """Class decorator: make a stage available to recipes under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two stages are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> Mapping[str, type[MapStage]]:
    """All stages by recipe name, sorted by name (every stage module imported)."""
    for module in _STAGE_MODULES.values():
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))


def stage_names() -> list[str]:
    """The recipe names of all stages, sorted, without importing their modules."""
    return sorted(_STAGE_MODULES)


def stage_class(name: str) -> type[MapStage]:
    """The stage named ``name`` in recipes, importing only its module; ``KeyError`` for
    a name no stage has."""
    if name not in _REGISTRY:
        importlib.import_module(_STAGE_MODULES[name])
    return _REGISTRY[name]


def _nested_list(annotation: Any) -> bool:
    """Whether ``annotation`` is ``list[M]`` for a parameter model ``M``."""
    if typing.get_origin(annotation) is not list:
        return False
    (item,) = typing.get_args(annotation) or (None,)
    return isinstance(item, type) and issubclass(item, BaseModel)


def _as_written(value: Any) -> Any:
    """A default as a recipe writes it: nested parameter models as plain mappings."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list | tuple):
        return type(value)(_as_written(item) for item in value)
    return value


def describe_params(params: type[StageParams]) -> list[dict[str, Any]]:
    """Each parameter of a stage as ``{name, type, default, help}``, in declaration order:
    the stage's own first, then those it shares with other stages (a base class's)."""
    own = set(inspect.get_annotations(params))
    fields = sorted(params.model_fields.items(), key=lambda item: item[0] not in own)
    rows = []
    for name, field in fields:
        annotation = field.annotation
        if typing.get_origin(annotation) is typing.Literal:  # the choices, not "Literal"
            type_name = " | ".join(repr(choice) for choice in typing.get_args(annotation))
        elif _nested_list(annotation):  # what each entry holds, not a class name
            item = typing.get_args(annotation)[0]
            type_name = "list of {" + ", ".join(item.model_fields) + "}"
        else:
            type_name = getattr(annotation, "__name__", None) or str(annotation)
        if field.is_required():
            default = "required"
        else:  # a default_factory's value, not pydantic's PydanticUndefined
            default = repr(_as_written(field.get_default(call_default_factory=True)))
        rows.append(
            {
                "name": name,
                "type": type_name.replace("typing.", ""),
                "default": default,
                "help": field.description or "",
            }
        )
    return rows
