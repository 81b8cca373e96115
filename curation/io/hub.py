"""``curate export``: a run's kept documents in the Hugging Face Hub dataset layout.

The export folder is what the Hub and ``datasets.load_dataset`` read::

    README.md                                dataset card: YAML header, recipe, funnel
    data/<split>-00000-of-000NN.parquet ...  the kept rows, without ``drop_reason``
    images/<split>/funnel.png, <column>.png  the split's drop funnel and score histograms

The card describes every split the repo holds: each export writes its split's entry in
the YAML header (``configs``, ``dataset_info``) and its block of the body, and a push
into a repo that holds a card merges them into it (``merge_cards``), keeping the other
splits and any text a person wrote. A split goes to the ``default`` config (the layout
above) or to a named one (``config``: ``load_dataset(repo, config)``), whose files lie in
``data/<config>/`` and ``images/<config>/`` and whose blocks are named
``<config>/<split>``; ``where`` exports only the kept rows a SQL condition holds for
(``row_filter``).

The rows keep the run's order. Their files hold about ``max_shard_bytes`` of Arrow data
each (Parquet with zstd is smaller on disk): the bytes are estimated from the Parquet
footers before a row is read (``plan_shards``), and each file is cut where the bytes
written reach an equal share of those still to come, that estimate corrected as row
groups are written (``write_shards``). The files' names say their count: the estimate's
as they are written, and, where the rows needed more or fewer files, the true one after
a rename at the end (a file sent under its first name is committed under the last).

Pushing (``huggingface_hub``): the token comes from ``HF_TOKEN`` or the login cache and
is never printed, logged or written: messages pass through ``redact``. A refused export
leaves nothing behind: the token is looked up and the repository created (or found; an
existing one needs ``force`` unless it is empty, as an export that committed nothing
leaves it) before anything is written. Each data file is uploaded as soon as it is
written and, without a local folder to keep, deleted, so the export needs the disk of
one file, not of the dataset. Then the files are committed, at most ``COMMIT_FILES`` a
commit (the card in the last), and the split's files of an earlier export that this one
does not replace are deleted in the last. More commits than one go to a pull request,
merged at the end, so the repo's main branch holds the earlier export or this one, never
a mix, whatever happens between the commits. Transient failures (connection, HTTP
5xx/429) are retried with backoff; each retry resumes, because the Hub's LFS batch
answer skips the files it already holds, and running the command again after a failure
resumes the same way (the files are written again byte for byte). The first commit's
title carries a random mark: when its answer is lost after the Hub opened the pull
request, the retry finds that pull request by the mark and commits to it, rather than
opening a second one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from curation.filters.sql import RowFilter
from curation.inspect.shards import (
    FINISH_IT,
    REASON,
    Overview,
    Source,
    cannot_read,
    is_parquet,
    open_source,
    overview,
    scan_part,
)
from curation.io.writers import (
    PartitionError,
    SchemaConflictError,
    cast_to,
    column_at,
    partitionable,
    unify_parts,
    value_text,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
#: The config an export goes to unless told another: ``datasets`` loads it by default.
DEFAULT_CONFIG = "default"
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
)
#: Commit attempts and the first wait between them (seconds, doubling each time).
ATTEMPTS, BACKOFF_S = 4, 2.0
#: Files one commit carries at most: the Hub advises fewer than 100 a commit, and
#: ``datasets``' ``push_to_hub`` commits 50 at a time.
COMMIT_FILES = 50
#: Files uploaded at once while the next is written (the export holds one more on disk).
UPLOADS = 3
#: Seconds between the lines that say uploads are under way while the export waits on them.
HEARTBEAT_S = 30.0
#: How far past ``--max-shard-size`` a file goes where the estimate of its rows was low.
OVERSHOOT = 1.1
#: The last file foreseen takes the rows after the cap too when, at the average row of
#: the file, they would make a file of this share of ``--max-shard-size`` at most.
TAIL = 0.1
#: Rows read to scale the footers' sizes to Arrow's (``plan_shards``).
_CALIBRATION_ROWS = 8192
UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
}


class ExportError(RuntimeError):
    """The export cannot go on; the message says why and what to do (never the token)."""


def redact(text: str, token: str | None) -> str:
    """``text`` with the token (and anything shaped like a Hub token) replaced by ***."""
    if token:
        text = text.replace(token, "***")
    return re.sub(r"hf_[A-Za-z0-9]{20,}", "hf_***", text)


def parse_size(value: str) -> int:
    """``500MB``, ``1GB``, ``64MiB`` or a byte count -> bytes."""
    match = re.fullmatch(r"\s*([0-9]+\.?[0-9]*|\.[0-9]+)\s*([A-Za-z]*)\s*", value)
    if not match or match.group(2).upper() not in UNITS:
        raise ExportError(f"--max-shard-size {value!r}: expected a size like 500MB or 1GB")
    size = int(float(match.group(1)) * UNITS[match.group(2).upper()])
    if size < 1:
        raise ExportError(f"--max-shard-size {value!r}: a file holds a byte at least")
    return size


def block_key(config: str, split: str) -> str:
    """How the card names a config's split: ``split`` in the default config, otherwise
    ``config/split``."""
    return split if config == DEFAULT_CONFIG else f"{config}/{split}"


def config_prefix(config: str) -> str:
    """Where a config's files lie under ``data/`` and ``images/``: at the top for the
    default config (the layout of an export without configs), in ``<config>/`` for the
    others."""
    return "" if config == DEFAULT_CONFIG else f"{config}/"


def size_category(rows: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if rows < bound), "n>10B")


def _export_files(source: Source) -> list[Path]:
    """The Parquet files whose kept rows are exported, in order."""
    return sorted(source.kept_files) if source.is_run else list(source.files)


def row_filter(condition: str, schema: pa.Schema) -> RowFilter:
    """The ``--where`` ``condition`` over the export's columns (``schema``; a file without
    one of them reads it as null); an ``ExportError`` where it does not parse, looks at
    other rows than its own, names a column the export does not have (listing those it
    has) or is not true or false."""
    try:
        parsed = RowFilter.parse(condition)
    except ValueError as err:
        raise ExportError(f"--where: {err}") from None
    unknown = [c for c in parsed.columns if c not in schema.names]
    if unknown:
        raise ExportError(
            f"--where {condition!r} names column(s) {', '.join(unknown)} that the kept rows do "
            f"not have; they have: {', '.join(schema.names)}"
        )
    types = pa.schema([schema.field(c) for c in parsed.columns])
    empty = pl.from_arrow(types.empty_table())
    assert isinstance(empty, pl.DataFrame)
    try:
        dtype = empty.select(parsed.expr.alias("_where")).schema["_where"]
    except Exception as err:  # polars raises several error types for bad SQL
        cause = str(err).split("\n\n")[0]
        raise ExportError(f"--where {condition!r} cannot be computed: {cause}") from None
    if dtype != pl.Boolean:
        raise ExportError(f"--where {condition!r} gives {dtype}, not true or false")
    return dataclasses.replace(parsed, types=types)


def _kept_rows(table: pa.Table, source: Source, where: RowFilter | None = None) -> pa.Table:
    """The rows of ``table`` that are exported, without ``drop_reason``: all of a run's
    kept parts, the kept rows of a plain shard; with ``where``, those it matches."""
    if REASON in table.column_names:
        if not source.is_run:
            table = table.filter(pc.is_null(table[REASON]))
        table = table.drop_columns([REASON])
    if where is not None and table.num_rows:
        table = table.filter(where.matching(table))
    return table


def _kept_batches(
    source: Source,
    schema: pa.Schema,
    where: RowFilter | None = None,
    groups: tuple[tuple[int, ...], ...] | None = None,
) -> Iterator[pa.Table]:
    """The kept rows (``where`` matches), in order, in batches cast to ``schema``
    (``plan_shards``'), read from the row groups ``groups`` names in each file (None:
    all): a group that keeps no row is not read."""
    for index, path in enumerate(_export_files(source)):
        chosen = None if groups is None else list(groups[index])
        if chosen == []:
            continue
        with _readable(path):
            parquet = pq.ParquetFile(path)
            for batch in parquet.iter_batches(batch_size=8192, row_groups=chosen):
                table = _kept_rows(pa.Table.from_batches([batch]), source, where)
                if table.num_rows:
                    cast = cast_to(table, schema)
                    if cast is None:
                        raise ExportError(
                            f"{path}: its rows cannot be cast to the export's columns {schema}"
                        )
                    yield cast


@contextmanager
def _readable(path: Path) -> Iterator[None]:
    """An error reading the Parquet file ``path`` raised as an ``ExportError`` naming it."""
    try:
        yield
    except (pa.ArrowException, OSError) as err:
        raise ExportError(cannot_read(path, err, "export again")) from None


def _export_schema(source: Source, schemas: list[pa.Schema], files: list[Path]) -> pa.Schema:
    """The columns of every exported file: ``schemas`` (those of ``files``) without
    ``drop_reason``, unified: a column missing from a file null there, numbers of several
    widths widened (``unify_parts``); an error naming the column and two files whose
    types cannot be reconciled."""
    bare = [s.remove(s.get_field_index(REASON)) if REASON in s.names else s for s in schemas]
    try:
        return unify_parts(bare, [str(p) for p in files]) or bare[0]
    except SchemaConflictError as err:
        raise ExportError(f"{source.path}: {err}") from None


#: Called as each data file is closed: ``(file, shard, index, count)``.
OnShard = Callable[[Path, dict[str, Any], int, int], None]


@dataclass(frozen=True)
class ShardPlan:
    """How an export cuts its kept rows into files of ``max_bytes`` of Arrow data at
    most (``OVERSHOOT`` times that where the estimate was low): ``rows`` kept in all,
    about ``arrow_bytes`` of Arrow data (estimated), ``files`` files by that estimate.
    ``marks`` holds, at the end of each row group that keeps rows, the kept rows up to
    it and their estimated Arrow bytes (``_Estimate`` rescales the estimate of the rest
    with them as rows are written); ``schema`` the columns of every file; ``where`` the
    rows exported of those kept (None: all); ``groups`` the row groups of each file that
    keep rows (the export reads no other: with ``where "lang = 'fr'"`` over a run
    partitioned by language, the French files' alone), and ``group_bytes`` the footer's
    bytes of each of them (uncompressed, without ``drop_reason``), in the same places."""

    rows: int
    arrow_bytes: float
    files: int
    max_bytes: int
    marks: tuple[tuple[int, float], ...]
    schema: pa.Schema
    where: RowFilter | None = None
    groups: tuple[tuple[int, ...], ...] | None = None
    group_bytes: tuple[tuple[int, ...], ...] | None = None


def _columns_but_reason(group: Any) -> list[Any]:
    """The column chunks of a Parquet row group but ``drop_reason``'s."""
    chunks = [group.column(c) for c in range(group.num_columns)]
    return [chunk for chunk in chunks if chunk.path_in_schema != REASON]


def plan_shards(source: Source, max_shard_bytes: int, where: str | None = None) -> ShardPlan:
    """The kept rows of ``source`` (with ``where``, those for which that SQL condition is
    true: ``row_filter``) and their Arrow bytes, estimated from the Parquet footers before
    any row is read, and the count of files of ``max_shard_bytes`` that estimate needs
    (one row at least a file); an error when no row is kept.

    A row group's bytes are the footer's uncompressed size of its columns without
    ``drop_reason`` (in a plain shard, its kept rows' share, counted by reading
    ``drop_reason`` alone; with ``where``, the share it matches, counted by reading the
    columns it names). Footers measure encoded pages (a dictionary column is smaller
    there than in Arrow), and a plain shard's dropped rows are often shorter than its
    kept ones, so the first ``_CALIBRATION_ROWS`` rows of the first row group that keeps
    rows are read, and their kept rows' Arrow size over their share of the footer's
    scales them all. Where later row groups differ (a column dictionary-encoded in some
    groups and not others), the estimate is off; ``write_shards`` corrects it as it
    goes."""
    return _plans(source, max_shard_bytes, where)[0][1]


def plan_configs(
    source: Source, max_shard_bytes: int, column: str, where: str | None = None
) -> list[tuple[str, ShardPlan]]:
    """``curate export --config-by``: a config for each value of ``column`` in the kept
    rows (``where`` matches), named by ``config_name``, in the order of their names, each
    with its plan as ``plan_shards`` makes one. ``column`` is a column of the kept rows or
    a field of a struct column named with dots, of strings, integers, booleans or dates;
    null and the empty string make the config ``null``. The column is read once, a row
    group at a time, and each config's plan names the row groups that hold its rows (a
    run partitioned by the same column: its own folder's files). An error where two
    values make one name, or a value makes none."""
    return _plans(source, max_shard_bytes, where, column)


#: The config of the kept rows whose ``--config-by`` value is null or empty.
NULL_CONFIG = "null"


def _shared_reads(plans: list[tuple[str, ShardPlan]]) -> tuple[float, int]:
    """How many times the plans read a row group, on average over those they read, and
    the bytes they read more than once (each row group's, from the footers, for each
    read after its first)."""
    times: Counter[tuple[int, int]] = Counter()
    size: dict[tuple[int, int], int] = {}
    for _, plan in plans:
        for file, (groups, sizes) in enumerate(
            zip(plan.groups or (), plan.group_bytes or (), strict=True)
        ):
            for group, nbytes in zip(groups, sizes, strict=True):
                times[file, group] += 1
                size[file, group] = nbytes
    extra = sum(size[key] * (n - 1) for key, n in times.items())
    return sum(times.values()) / max(1, len(times)), extra


def config_name(value: object) -> str:
    """The config name of a ``--config-by`` value: its text (booleans ``true``/``false``,
    dates ISO 8601) with each run of characters other than letters, digits and ``_``
    made one ``_``, and none at either end (``Pile-CC``: ``Pile_CC``, ``Wikipedia (en)``:
    ``Wikipedia_en``); ``null`` for null and the empty string; ``""`` where nothing is
    left (a value of punctuation only)."""
    if value is None or value == "":
        return NULL_CONFIG
    return re.sub(r"\W+", "_", value_text(value)).strip("_")


@dataclass
class _Tally:
    """The kept rows of one plan, counted as the row groups are read: ``rows`` and their
    estimated ``size`` (footer bytes), ``marks`` as ``ShardPlan``'s (unscaled), and the
    row groups of each file (by its index) that hold them, with their whole bytes."""

    rows: int = 0
    size: float = 0.0
    marks: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    groups: dict[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    group_bytes: dict[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def add(self, file: int, group: int, whole: int, rows: int, size: float) -> None:
        self.groups[file] = (*self.groups.get(file, ()), group)
        self.group_bytes[file] = (*self.group_bytes.get(file, ()), whole)
        self.rows, self.size = self.rows + rows, self.size + size
        self.marks.append((self.rows, self.size))


def _plans(
    source: Source, max_shard_bytes: int, where: str | None, by: str | None = None
) -> list[tuple[str, ShardPlan]]:
    """``plan_shards``' plan (named ``""``) where ``by`` is None, otherwise
    ``plan_configs``'."""
    files = _export_files(source)
    if not files:  # a run that kept nothing has no kept/ part
        raise ExportError(_nothing_kept(source))
    footers = []  # each file's schema and row groups: (rows, bytes without drop_reason)
    for path in files:
        with _readable(path):
            meta = pq.read_metadata(path)
        groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
        sizes = [
            (g.num_rows, sum(c.total_uncompressed_size for c in _columns_but_reason(g)))
            for g in groups
        ]
        footers.append((meta.schema.to_arrow_schema(), sizes))
    schema = _export_schema(source, [s for s, _ in footers], files)
    condition = row_filter(where, schema) if where is not None else None
    column = _config_column(by, schema) if by is not None else None
    head = column.head if column is not None else None
    ratio = None
    tallies: dict[str, _Tally] = {}
    values: dict[str, set[Any]] = {}  # each config's values (None for null and "")
    for number, (path, (file_schema, sizes)) in enumerate(zip(files, footers, strict=True)):
        plain = REASON in file_schema.names and not source.is_run
        counted = [REASON] if plain else []
        if condition is not None:
            counted += [c for c in condition.columns if c in file_schema.names]
        if head is not None and head in file_schema.names and head not in counted:
            counted.append(head)
        parquet = None
        for index, (in_group, nbytes) in enumerate(sizes):
            counts = {"": in_group}
            if plain or condition is not None or head is not None or ratio is None:
                with _readable(path):
                    if parquet is None:
                        parquet = pq.ParquetFile(path)
                    if plain or condition is not None or head is not None:
                        group = (
                            parquet.read_row_group(index, columns=counted)
                            if counted
                            else pa.table({"_rows": pa.nulls(in_group)})
                        )
                        group = _kept_rows(group, source, condition)
                        counts = (
                            {"": group.num_rows}
                            if by is None
                            else _config_counts(group, by, values)
                        )
                    if sum(counts.values()) and ratio is None:  # its footer share
                        batch = next(parquet.iter_batches(_CALIBRATION_ROWS, row_groups=[index]))
                        table = _kept_rows(pa.Table.from_batches([batch]), source, condition)
                        part = nbytes * table.num_rows / in_group
                        table = cast_to(table, schema) or table
                        ratio = table.nbytes / max(1.0, part) if table.num_rows else None
            for name, kept in counts.items():
                if kept:
                    tallies.setdefault(name, _Tally()).add(
                        number, index, nbytes, kept, nbytes * kept / in_group
                    )
    if not tallies:
        if condition is not None:
            raise ExportError(
                f"{source.path}: no kept row matches --where {condition.condition!r}: loosen "
                "it (`curate inspect RUN --where ...` shows what it matches)"
            )
        raise ExportError(_nothing_kept(source))
    _check_config_names(by, values)
    scale = ratio or 1.0
    plans = []
    for name in sorted(tallies):
        tally = tallies[name]
        arrow_bytes = tally.size * scale
        count = min(tally.rows, max(1, math.ceil(arrow_bytes / max_shard_bytes)))
        chosen = condition
        if column is not None:
            chosen = _config_filter(column, values[name], condition, schema)
        plans.append(
            (
                name,
                ShardPlan(
                    tally.rows,
                    arrow_bytes,
                    count,
                    max_shard_bytes,
                    tuple((r, b * scale) for r, b in tally.marks),
                    schema,
                    chosen,
                    tuple(tally.groups.get(i, ()) for i in range(len(files))),
                    tuple(tally.group_bytes.get(i, ()) for i in range(len(files))),
                ),
            )
        )
    return plans


@dataclass(frozen=True)
class _ConfigColumn:
    """What ``--config-by`` ``by`` reads: the column ``head`` of the rows, the fields
    ``path`` below it (a struct's field named with dots), and whether its values are
    text (whose empty string goes with null)."""

    by: str
    head: str
    path: tuple[str, ...]
    text: bool


def _config_column(by: str, schema: pa.Schema) -> _ConfigColumn:
    """The column of ``schema`` that ``--config-by`` ``by`` reads; an ``ExportError``
    where there is none, or its values cannot name configs."""
    head, *path = [by] if by in schema.names else by.split(".")
    kind = schema.field(head).type if head in schema.names else None
    for name in path:
        found = kind is not None and pa.types.is_struct(kind) and kind.get_field_index(name) >= 0
        kind = kind.field(name).type if found else None  # type: ignore[union-attr]
    if kind is None:
        raise ExportError(
            f"--config-by {by!r}: the kept rows have no such column (a struct's field is "
            f"named with dots: metadata.source); they have: {', '.join(schema.names)}"
        )
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (partitionable(kind) or pa.types.is_null(kind)):
        raise ExportError(
            f"--config-by {by!r}: its values are {kind}; a config is named by strings, "
            "integers, booleans or dates"
        )
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    return _ConfigColumn(by, head, tuple(path), text)


def _config_counts(table: pa.Table, by: str, values: dict[str, set[Any]]) -> dict[str, int]:
    """The rows of ``table`` of each config of ``--config-by`` ``by`` (``config_name``),
    adding the values seen to ``values``."""
    found = column_at(table, by) if table.num_rows else None
    if found is None:  # a file without the column: its rows are null there
        found = pa.chunked_array([pa.nulls(table.num_rows)])
    counts: dict[str, int] = {}
    for entry in pc.value_counts(found.combine_chunks()).to_pylist():
        value = None if entry["values"] == "" else entry["values"]
        name = config_name(value)
        values.setdefault(name, set()).add(value)
        counts[name] = counts.get(name, 0) + entry["counts"]
    return counts


def _check_config_names(by: str | None, values: dict[str, set[Any]]) -> None:
    """An ``ExportError`` where two values of ``--config-by`` make one config name, or a
    value makes none."""
    for name, held in values.items():
        shown = sorted(repr(v) for v in held)
        if not name:
            raise ExportError(
                f"--config-by {by!r}: the value {shown[0]} has no letter or digit to name a "
                "config: export its rows with --where and --config, and the others with "
                "--where"
            )
        if len(held) > 1:
            raise ExportError(
                f"--config-by {by!r}: the values {' and '.join(shown)} would both be the "
                f"config {name!r}: export one of them with --where and --config, and the "
                "others with --where"
            )


def _config_filter(
    column: _ConfigColumn, held: set[Any], condition: RowFilter | None, schema: pa.Schema
) -> RowFilter:
    """The rows of the config of ``--config-by`` ``column`` whose value is the one in
    ``held`` (None: null or empty), and for which ``condition`` (``--where``) is true."""
    (value,) = held
    by, head = column.by, column.head
    target = pl.col(head)
    for name in column.path:
        target = target.struct.field(name)
    if value is None:
        expr, text = target.is_null(), f"{by} IS NULL"
        if column.text:
            expr, text = expr | (target == ""), f"{text} OR {by} = ''"
    else:
        expr, text = target == pl.lit(value), f"{by} = {_sql_literal(value)}"
    columns = (head,)
    if condition is not None:
        expr, text = condition.expr & expr, f"({condition.condition}) AND ({text})"
        columns = tuple(dict.fromkeys((*condition.columns, head)))
    return RowFilter(text, expr, columns, pa.schema([schema.field(c) for c in columns]))


def _sql_literal(value: object) -> str:
    """``value`` as a SQL literal, for the card to say which rows a config holds."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    quoted = "'" + text.replace("'", "''") + "'"
    return quoted if isinstance(value, str) else f"DATE {quoted}"


@contextmanager
def _parquet_parts(source: Source, near: Path | None) -> Iterator[Source]:
    """``source``, the JSON Lines files it exports (a run's ``output: {format: jsonl}``
    kept parts) read as Parquet copies in a folder made in ``near`` (the system's
    temporary folder when None) and removed at the end; the types of each are those
    polars infers from all its rows, unified over the files as Parquet parts are. A source
    that exports Parquet files only is itself."""
    lines = [f for f in _export_files(source) if not is_parquet(f)]
    if not lines:
        yield source
        return
    if near is not None:
        near.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".curation-export-parquet-", dir=near))

    def copied(index: int) -> Path:
        copy = folder / f"{index:06d}-{lines[index].name}.parquet"
        try:
            scan_part(lines[index]).sink_parquet(copy)
        except (pl.exceptions.PolarsError, OSError) as err:
            raise ExportError(cannot_read(lines[index], err, "export again")) from None
        return copy

    try:
        # a file at a time on each core: polars parses one JSON Lines file on about one
        # (1.4 s -> 0.8 s for four files of 25,000 documents on 2 cores)
        with ThreadPoolExecutor(max(1, min(len(lines), os.cpu_count() or 1))) as pool:
            copies = dict(zip(lines, pool.map(copied, range(len(lines))), strict=True))
        files = [copies.get(f, f) for f in source.files]
        kept = {copies.get(f, f) for f in source.kept_files}
        yield dataclasses.replace(source, files=files, kept_files=kept)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


#: ``--config-by`` copies the rows apart by config first where its configs would read a
#: row group more than this many times on average (a run not partitioned by the column)
SPLIT_SHARED_READS = 1.5
#: ... and where they would read more than this many bytes more than once (Parquet's
#: uncompressed sizes): below, reading again costs less than the copy (on 20,000 web
#: documents in 19 languages, 0.5 GB read again, the flat and partitioned runs' exports
#: took the same time; on 200,000, 5 GB, the copy took the flat run from 2.2-2.6 times
#: the partitioned run's time to 1.3-1.4)
SPLIT_EXTRA_BYTES = 2**30


@contextmanager
def _split_copy(
    source: Source,
    plans: list[tuple[str, ShardPlan]],
    by: str,
    where: str | None,
    near: Path | None,
) -> Iterator[Source]:
    """``source`` with its exported rows (those ``plans`` hold) written once into a
    folder of Parquet files per value of ``by`` (``PartitionedWriter``), in a temporary
    folder made in ``near`` (the system's when None) and removed at the end: each
    config's plan then reads its own files, where over ``source`` it read every row group
    that held one of its rows. The rows keep their order in each value's files."""
    from curation.io.writers import PartitionedWriter
    from curation.recipe import OutputSpec

    schema = plans[0][1].schema
    condition = row_filter(where, schema) if where is not None else None
    files = _export_files(source)
    groups = tuple(
        tuple(sorted({g for _, plan in plans for g in (plan.groups or ())[i]}))
        for i in range(len(files))
    )
    if near is not None:
        near.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".curation-export-split-", dir=near))
    try:
        output = OutputSpec(partition_by=by, max_partitions=len(plans) + 1)
        writer = PartitionedWriter(folder, "part", output, str(source.path))
        try:
            for batch in _kept_batches(source, schema, condition, groups):
                writer.write(batch)
        except PartitionError as err:
            raise ExportError(f"--config-by {by!r}: {err}") from None
        parts = [part.path for part in writer.close()]
        yield dataclasses.replace(source, files=parts, kept_files=set(parts))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _nothing_kept(source: Source) -> str:
    """What export says of a source without a kept row."""
    rows = (source.stats or {}).get("rows", {})
    if rows.get("read") == 0:
        return f"{source.path}: no kept rows to export (the run read no document)"
    read = f" of {rows['read']:,} documents read" if "read" in rows else ""
    return (
        f"{source.path}: no kept rows to export (0 kept{read}): `curate inspect "
        f"{source.path}` shows what dropped them"
    )


def _row_bytes(table: pa.Table) -> np.ndarray:
    """Each row's share of ``table.nbytes``: its strings' and binaries' bytes, plus the
    rest of the table spread evenly over the rows."""
    sizes = np.zeros(table.num_rows)
    for column in table.columns:
        kind = column.type
        if (
            pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind)
        ):
            sizes += pc.fill_null(pc.binary_length(column), 0).to_numpy()
    return sizes + (table.nbytes - sizes.sum()) / max(1, table.num_rows)


class _Estimate:
    """The Arrow bytes of the kept rows still to come, as the writing goes: the plan's
    estimate of them, scaled by how far its estimate was from what the latest row groups
    written took (whole groups, the latest that hold ``max_bytes`` at least: within a
    group the plan knows only the average row)."""

    def __init__(self, plan: ShardPlan) -> None:
        self.plan = plan
        self.rows = np.array([0] + [r for r, _ in plan.marks])
        self.guessed = np.array([0.0] + [b for _, b in plan.marks])
        self.took = np.full(len(self.rows), np.nan)
        self.took[0] = 0.0

    def saw(self, first: int, ends: np.ndarray) -> None:
        """A batch of kept rows from row ``first`` on, whose bytes end at ``ends``
        (cumulative from the first row of the export)."""
        inside = (self.rows > first) & (self.rows <= first + len(ends))
        self.took[inside] = ends[self.rows[inside] - first - 1]

    def rest(self, done: int, written: float) -> float:
        """The bytes of the rows after the first ``done``, which took ``written``: the
        plan's estimate of the rows after the last group written whole, scaled, less
        what the rows written since took."""
        last = int(np.searchsorted(self.rows, done, side="right")) - 1  # groups done
        ratio, start = 1.0, last - 1
        while start > 0 and self.guessed[last] - self.guessed[start] < self.plan.max_bytes:
            start -= 1
        if last >= 1:
            thought = self.guessed[last] - self.guessed[start]
            took = self.took[last] - self.took[start]
            ratio = took / thought if thought > 0 and took > 0 else 1.0
        ahead = (self.plan.arrow_bytes - self.guessed[last]) * ratio
        return max(float(ahead - (written - self.took[last])), 0.0)


def shard_name(split: str, index: int, count: int) -> str:
    """The name of file ``index`` (from 0) of the ``count`` files of ``split``."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def write_shards(
    source: Source,
    data: Path,
    split: str,
    plan: ShardPlan,
    on_shard: OnShard | None = None,
    settle: Callable[[], None] | None = None,
    prefix: str = "",
) -> list[dict]:
    """Write the kept rows, in order, as files ``<split>-XXXXX-of-YYYYY.parquet`` in
    ``data``, named ``data/<prefix><split>-...`` in the export (``config_prefix``);
    returns, per file, its ``path`` (relative to the export folder), ``rows``, ``bytes``
    on disk and ``arrow_bytes`` (its rows' share of their tables' ``nbytes``, as
    ``datasets`` counts a split's ``num_bytes``; each row's by ``_row_bytes``).

    Each file is given an equal share of the bytes still to come (``_Estimate``), as
    many shares as files of ``plan.max_bytes`` hold them, and never less than half that
    (the last file foreseen: all of them), nor more than ``OVERSHOOT`` times it (the last
    file foreseen: unless the rows after that look to make a file of ``TAIL`` times it at
    most); it ends at the row nearer where the bytes written reach its share, or with the
    rows. So the count of files is the plan's when the plan's estimate holds, and
    otherwise what the rows need: the files are then renamed at the end to say it (after
    ``settle()``, which waits for uploads of them under their first names), and their
    shards hold the first name as ``sent_as``. ``on_shard(file, shard, index, count)``
    is called as each file is closed, before the next is begun (to send it, and delete
    it), ``count`` being the files expected then."""
    data.mkdir(parents=True, exist_ok=True)
    shards: list[dict] = []
    writer, name = None, ""
    rows_left, in_file, written, begun, target, expected = plan.rows, 0, 0.0, 0.0, 0.0, 0
    estimate, last_foreseen = _Estimate(plan), False

    def close() -> None:
        nonlocal writer, in_file, begun
        assert writer is not None
        writer.close()
        writer = None
        shard = {
            "path": f"data/{prefix}{name}",
            "rows": in_file,
            "bytes": (data / name).stat().st_size,
            "arrow_bytes": round(written - begun),
        }
        shards.append(shard)
        in_file, begun = 0, written
        if on_shard is not None:
            on_shard(data / name, shard, len(shards) - 1, max(expected, len(shards)))

    changed = ExportError(f"{source.path} changed while it was exported: export it again")
    for whole in _kept_batches(source, plan.schema, plan.where, plan.groups):
        ends = written + np.cumsum(_row_bytes(whole))
        estimate.saw(plan.rows - rows_left, ends)
        offset = 0
        while offset < whole.num_rows:
            if whole.num_rows - offset > rows_left:
                raise changed
            if writer is None:
                rest = estimate.rest(plan.rows - rows_left, written)
                files = max(1, math.ceil(rest / plan.max_bytes))
                last_foreseen = files == 1
                share = max(rest / files, plan.max_bytes / 2) if files > 1 else math.inf
                target = written + min(share, OVERSHOOT * plan.max_bytes)
                expected = len(shards) + files
                name = shard_name(split, len(shards), plan.files)
                writer = pq.ParquetWriter(data / name, plan.schema, compression="zstd")
            # the row at which the bytes reach the target, or the one before it when that
            # ends nearer the target (a row of its own at least)
            take, full = whole.num_rows - offset, False
            reach = int(np.searchsorted(ends, target, side="left"))
            if reach < whole.num_rows:
                before = ends[reach - 1] if reach > 0 else written
                nearer = reach > offset and target - before < ends[reach] - target
                take, full = max(reach, offset) - offset + (0 if nearer else 1), True
                if last_foreseen:  # cut at the cap: unless the rows after it look few
                    per_row = (float(ends[offset + take - 1]) - begun) / (in_file + take)
                    if (rows_left - take) * per_row <= TAIL * plan.max_bytes:
                        take, full, target = whole.num_rows - offset, False, math.inf
            writer.write_table(whole.slice(offset, take))
            written = float(ends[offset + take - 1])
            offset, rows_left, in_file = offset + take, rows_left - take, in_file + take
            if full and rows_left:
                close()
    if writer is not None:
        close()
    if rows_left:
        raise changed
    if len(shards) != plan.files:
        if settle is not None:
            settle()
        for index, shard in enumerate(shards):
            first = data / Path(shard["path"]).name
            final = shard_name(split, index, len(shards))
            if first.exists():  # not when sent and deleted
                first.rename(data / final)
            shard["sent_as"], shard["path"] = shard["path"], f"data/{prefix}{final}"
    return shards


#: The card's blocks the engine writes and rewrites; text outside them is kept.
_BLOCK = re.compile(
    r"<!-- curation:(summary|split (\w+(?:/\w+)?)) -->\n.*?<!-- curation:end \1 -->\n", re.S
)


def _card_parts(card: str, where: str) -> tuple[dict[str, Any], str]:
    """A card's YAML header (``{}`` when it has none) and its body; ``where`` names the
    card in the error raised for a header that does not parse."""
    if not card.startswith("---\n"):
        return {}, card
    end = card.find("\n---\n", 3)
    if end == -1:
        return {}, card
    try:
        header = yaml.safe_load(card[4:end]) or {}
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise ExportError(
            f"{where}: its YAML header does not parse ({first}): fix or delete it, then "
            "export again"
        ) from None
    if not isinstance(header, dict):
        raise ExportError(f"{where}: its YAML header is not a mapping: fix or delete it")
    return header, card[end + 5 :].lstrip("\n")


def _summary(title: str, splits: list[str], counts: dict[str, int]) -> str:
    """The card's title and the documents of each of ``splits`` that ``counts`` counts,
    with their sum when it counts them all."""
    each = ", ".join(f"`{n}` {counts[n]:,}" if n in counts else f"`{n}`" for n in splits)
    total = sum(counts[n] for n in splits if n in counts)
    lead = f"{total:,} documents" if all(n in counts for n in splits) else "Documents"
    return (
        "<!-- curation:summary -->\n"
        f"# {title}\n\n"
        f"{lead} curated by the curation engine, by split: {each}.\n"
        "<!-- curation:end summary -->\n"
    )


def _with_header(header: dict[str, Any], body: str) -> str:
    return f"---\n{yaml.safe_dump(header, sort_keys=False).strip()}\n---\n\n{body}"


def dataset_card(
    source: Source,
    seen: Overview,
    repo_id: str,
    split: str,
    license_id: str,
    shards: list[dict],
    images: list[tuple[str, str]],
    where: str | None = None,
    config: str = DEFAULT_CONFIG,
) -> str:
    """The ``README.md`` of an export of one split of one config: a YAML header (configs,
    documents per split as ``dataset_info``, license, size category, task), a summary
    block and the split's block: rows kept and dropped by stage and reason
    (``seen.stages``), the condition the exported rows meet (``where``), the score
    histograms (``images``), the recipe and the files. Blocks lie between
    ``<!-- curation:... -->`` lines (a split of another config than the default named
    ``config/split``), so that ``merge_cards`` can put a split's into a card that holds
    others."""
    stages = seen.stages
    rows = sum(s["rows"] for s in shards)
    key = block_key(config, split)
    split_info = {
        "name": split,
        "num_bytes": sum(s["arrow_bytes"] for s in shards),
        "num_examples": rows,
    }
    header: dict[str, Any] = {
        "license": license_id,
        "pretty_name": repo_id.split("/")[-1],
        "size_categories": [size_category(rows)],
        "task_categories": ["text-generation"],
        "tags": ["curation"],
        "configs": [
            {
                "config_name": config,
                "data_files": [{"split": split, "path": f"data/{config_prefix(config)}{split}-*"}],
            }
        ],
        "dataset_info": _dataset_info({(config, split): split_info}, [(config, split)]),
    }
    title = f"Split `{split}`" if key == split else f"Config `{config}`, split `{split}`"
    lines = [f"<!-- curation:split {key} -->", f"## {title}", ""]
    stats = source.stats or {}
    read = stats.get("rows", {}).get("read")
    lines.append(
        f"{rows:,} documents in {len(shards)} Parquet file(s)"
        + (f", kept from {read:,} documents read" if read else "")
        + (f", those of the kept documents for which `{where}` is true" if where else "")
        + "."
    )
    lines += [
        "",
        "### Rows kept and dropped",
        "",
        "| stage | rows in | kept | dropped | reason |",
        "|---|---:|---:|---:|---|",
    ]
    for s in stages:
        reasons = sorted(s["dropped_by_reason"].items(), key=lambda kv: -kv[1])
        detail = ", ".join(f"`{r}` {n:,}" for r, n in reasons) or "-"
        lines.append(
            f"| {s['name']} | {s['rows_in']:,} | {s['rows_kept']:,} | "
            f"{s['rows_in'] - s['rows_kept']:,} | {detail} |"
        )
    if stats.get("accounting"):
        lines += ["", f"Accounting check: {stats['accounting']}."]
    if images:
        lines += ["", "### Score distributions", ""]
        lines += [f"![{title}]({path})" for title, path in images]
    if source.recipe:
        recipe = yaml.safe_dump(source.recipe, sort_keys=False).strip()
        lines += [
            "",
            "### Recipe",
            "",
            "The resolved recipe, with the versions it ran with:",
            "",
            "```yaml",
            recipe,
            "```",
        ]
    lines += ["", "### Files", "", "| file | rows | bytes |", "|---|---:|---:|"]
    lines += [f"| `{s['path']}` | {s['rows']:,} | {s['bytes']:,} |" for s in shards]
    lines.append(f"<!-- curation:end split {key} -->")
    summary = _summary(header["pretty_name"], [key], {key: rows})
    return _with_header(header, summary + "\n" + "\n".join(lines) + "\n")


def _dataset_info(
    known: dict[tuple[str, str], dict[str, Any]], pairs: list[tuple[str, str]]
) -> dict[str, Any] | list[dict[str, Any]]:
    """The ``dataset_info`` of the (config, split) ``pairs``, from the split entries
    ``known``: ``{"splits": [...]}`` where they are all the default config's (the form a
    card without configs has), otherwise one ``{"config_name", "splits"}`` a config."""
    names = list(dict.fromkeys(config for config, _ in pairs))
    if names == [DEFAULT_CONFIG]:
        return {"splits": [known[p] for p in pairs]}
    return [{"config_name": n, "splits": [known[p] for p in pairs if p[0] == n]} for n in names]


def _known_splits(info: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The split entries of a card's ``dataset_info`` (either form) by (config, split),
    those that have a name, a size and a count."""
    blocks = [info] if isinstance(info, dict) else info if isinstance(info, list) else []
    known = {}
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("splits"), list):
            continue
        config = block.get("config_name", DEFAULT_CONFIG)
        for entry in block["splits"]:
            if isinstance(entry, dict) and {"name", "num_bytes", "num_examples"} <= entry.keys():
                known[(config, entry["name"])] = entry
    return known


def _config_splits(configs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (config, split) pairs that ``configs`` (a card header's) name, in order."""
    pairs = []
    for c in configs:
        files = c.get("data_files")
        for entry in files if isinstance(files, list) else []:
            if isinstance(entry, dict) and entry.get("split") is not None:
                pairs.append((str(c.get("config_name", DEFAULT_CONFIG)), str(entry["split"])))
    return pairs


def merge_cards(
    old: str,
    new: str,
    split: str,
    where: str = "README.md",
    keep: tuple[str, ...] = (),
    config: str = DEFAULT_CONFIG,
) -> str:
    """The card of a repo that held ``old`` after an export of ``split`` of ``config``
    whose own card is ``new`` (``dataset_card``): the other splits and configs stay, in
    the configs, in ``dataset_info`` and as blocks; the split's block replaces its old
    one in place (or follows the last split's); the summary is rewritten; the old card's
    other header fields (and those named in ``keep``, where it has them: what the export
    was not told) and its text outside the engine's blocks stay, but for the body of a
    card the engine wrote before it had blocks (tagged ``curation``), which is dropped.
    ``where`` names the old card in errors."""
    return merge_many(old, {config: new}, split, where, keep)


def merge_many(
    old: str,
    cards: dict[str, str],
    split: str,
    where: str = "README.md",
    keep: tuple[str, ...] = (),
) -> str:
    """``merge_cards`` of each config's card of ``cards`` (``split`` of that config) in
    turn, in one pass: the same card, in time linear in the configs (``--config-by``
    merges hundreds; one at a time, each parsed the card grown so far)."""
    before, body = _card_parts(old, where)
    blocks: dict[str, str] = {}
    headers: list[tuple[str, dict[str, Any]]] = []
    for config, new in cards.items():
        key = block_key(config, split)
        header, fresh = _card_parts(new, "the new card")
        blocks[key] = next(m.group(0) for m in _BLOCK.finditer(fresh) if m.group(2) == key)
        headers.append((config, header))
    merged, counts = _merged_header(before, headers, split, keep)
    if not _BLOCK.search(body) and "curation" in _tags(before):
        body = ""  # the engine's card from before blocks: its split is described no more
    keys = [block_key(c, s) for c, s in _config_splits(merged["configs"])]
    summary = _summary(merged["pretty_name"], keys, counts)
    return _with_header(merged, summary + "\n" + _merged_body(body, blocks) + "\n")


def _merged_header(
    before: dict[str, Any],
    headers: list[tuple[str, dict[str, Any]]],
    split: str,
    keep: tuple[str, ...],
) -> tuple[dict[str, Any], dict[str, int]]:
    """``merge_many``' header after the configs' ``headers`` in turn, and the documents
    of each split it counts (by the name its block has: ``block_key``). The default
    config goes first; another config the card held keeps its place, and a new one goes
    last."""
    held = before.get("configs")
    configs = [c for c in held if isinstance(c, dict)] if isinstance(held, list) else []
    at: dict[str, int] = {}  # each config's place in configs (the first, where held twice)
    for index, entry in enumerate(configs):
        at.setdefault(entry.get("config_name", DEFAULT_CONFIG), index)
    known = _known_splits(before.get("dataset_info"))
    told: dict[str, Any] = {}
    tags = _tags(before)
    for config, header in headers:
        same = configs[at[config]] if config in at else {}
        entries = same.get("data_files")
        ours = header["configs"][0]["data_files"][0]
        files = [
            ours if entry.get("split") == split else entry
            for entry in (entries if isinstance(entries, list) else [])
            if isinstance(entry, dict) and entry.get("split") is not None
        ]
        files += [] if ours in files else [ours]
        if config in at:
            configs[at[config]] = {"config_name": config, "data_files": files}
        else:
            at[config] = len(configs)
            configs.append({"config_name": config, "data_files": files})
        known[(config, split)] = _known_splits(header["dataset_info"])[(config, split)]
        told.update({k: v for k, v in header.items() if k not in keep or k not in before})
        tags += header["tags"]
    if DEFAULT_CONFIG in at and any(config == DEFAULT_CONFIG for config, _ in headers):
        configs.insert(0, configs.pop(at[DEFAULT_CONFIG]))
    merged = {**before, **told, "configs": configs}
    merged["tags"] = list(dict.fromkeys(tags))
    pairs = _config_splits(configs)
    if all(p in known for p in pairs):
        merged["dataset_info"] = _dataset_info(known, pairs)
        total = sum(known[p]["num_examples"] for p in pairs)
        merged["size_categories"] = [size_category(total)]
    else:  # datasets refuses a card that counts some splits and not others
        merged.pop("dataset_info")
        merged.pop("size_categories")
    return merged, {block_key(c, s): e["num_examples"] for (c, s), e in known.items()}


def _tags(header: dict[str, Any]) -> list[str]:
    """A card header's tags (none where they are not a list)."""
    tags = header.get("tags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _merged_body(body: str, blocks: dict[str, str]) -> str:
    """``body`` without its summary block, with each of ``blocks`` (by its split's
    ``block_key``) in place of that split's block, or, where it has none, after the last
    split's block (or at the end), in their order."""
    pieces, placed, last_split, at = [], set(), -1, 0
    for block in _BLOCK.finditer(body):
        pieces.append(body[at : block.start()])
        at = block.end()
        if block.group(1) == "summary":
            continue
        key = block.group(2)
        pieces.append(blocks.get(key, block.group(0)))
        if key in blocks:
            placed.add(key)
        last_split = len(pieces) - 1
    pieces.append(body[at:])
    new = [text for key, text in blocks.items() if key not in placed]
    if new:
        if last_split >= 0:
            pieces.insert(last_split + 1, "".join("\n" + text for text in new))
        else:
            text = "".join(pieces)
            gap = "" if not text.strip() else "\n" if text.endswith("\n") else "\n\n"
            pieces.append(gap + "\n".join(new))
    return "".join(pieces).strip("\n")


def build_export(
    source: Source,
    folder: Path,
    *,
    repo_id: str,
    split: str,
    plan: ShardPlan,
    license_id: str,
    on_shard: OnShard | None = None,
    settle: Callable[[], None] | None = None,
    config: str = DEFAULT_CONFIG,
    seen: Overview | None = None,
    drawn: dict[str, bytes] | None = None,
) -> tuple[list[dict], str]:
    """Write the Hub layout of ``source`` into ``folder`` as ``split`` of ``config`` (its
    files under ``config_prefix``; the folder may hold other configs'), its data files as
    ``plan`` says, and its card as ``README.md``; returns the shards and the card.
    ``on_shard`` and ``settle`` are called as ``write_shards`` says. ``seen`` is the
    source's overview and ``drawn`` its pictures by name, where an earlier config's
    export has them (``drawn`` gains those drawn here)."""
    from curation.inspect import plots

    prefix = config_prefix(config)
    (folder / "data" / prefix).mkdir(parents=True, exist_ok=True)
    shards = write_shards(source, folder / "data" / prefix, split, plan, on_shard, settle, prefix)
    seen = seen if seen is not None else overview(source)
    drawn = {} if drawn is None else drawn
    (folder / "images" / prefix / split).mkdir(parents=True)

    def draw(title: str, name: str, figure: Callable[[], Any]) -> tuple[str, str]:
        key = f"{title}\0{name}"
        if key not in drawn:
            drawn[key] = plots.to_png(figure())
        path = f"images/{prefix}{split}/{name}.png"
        (folder / path).write_bytes(drawn[key])
        return title, path

    images = [draw("drop funnel", "funnel", lambda: plots.funnel_figure(seen.stages))]
    for column, summary in seen.summaries.items():
        if summary["histogram"] is not None:
            lines = seen.lines.get(column, [])
            images.append(
                draw(
                    column,
                    column,
                    lambda c=column, s=summary, lines=lines: plots.histogram_figure(c, s, lines),
                )
            )
    where = plan.where.condition if plan.where is not None else None
    card = dataset_card(source, seen, repo_id, split, license_id, shards, images, where, config)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return shards, card


def find_token() -> str:
    """The Hub token from ``HF_TOKEN`` or the login cache; an error saying how to give one."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise ExportError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write "
            "access), or use --to-folder alone to write the export locally"
        )
    return token


def _is_transient(err: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    # the client's HTTP library (httpx or its fork httpx2) raises TransportError subclasses
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & {"TransportError", "ConnectionError", "TimeoutError"}:
        return True
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        return status in (408, 429) or status >= 500
    cause = err.__cause__ or err.__context__
    return cause is not None and cause is not err and _is_transient(cause)


def _explain(err: BaseException, endpoint: str, repo_id: str, token: str) -> ExportError:
    """A clear message for a Hub failure (status, what to do), with the token redacted."""
    from huggingface_hub.errors import HfHubHTTPError

    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(err, HfHubHTTPError) and status in (401, 403):
        text = (
            f"the Hub at {endpoint} refused the token (HTTP {status}): check that it has "
            f"write access to {repo_id.split('/')[0]}"
        )
    elif _is_transient(err) and status is None:
        text = (
            f"cannot reach the Hub at {endpoint} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no answer'}): check HF_ENDPOINT "
            "and the network, then run the same command again"
        )
    else:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        cause = err.__cause__
        if cause is not None and str(cause):
            first += f" ({str(cause).splitlines()[0]})"
        text = f"the Hub at {endpoint} answered with an error for {repo_id}: {first}"
    return ExportError(redact(text, token))


class _Pusher:
    """Sends an export to the Hub's dataset repo ``repo_id`` as it is written: each data
    file is uploaded (``preupload_lfs_files``) as soon as it is closed, so the caller may
    delete it, and ``commit`` then commits them with the card and images, at most
    ``COMMIT_FILES`` files a commit (several commits to a pull request, merged at the
    end), deleting the split's files of an earlier export that this one does not replace.
    Transient failures (``_is_transient``) are retried ``attempts`` times with waits of
    ``backoff_s`` seconds doubling each time; each retry resumes, as the Hub's LFS batch
    answer skips the objects it holds."""

    def __init__(
        self,
        repo_id: str,
        *,
        token: str,
        endpoint: str,
        attempts: int,
        backoff_s: float,
        log: Callable[[str], None],
    ) -> None:
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=endpoint, token=token)
        self.repo_id, self.token, self.endpoint = repo_id, token, endpoint
        self.attempts, self.backoff_s, self.log = attempts, backoff_s, log
        self.sent: list[Any] = []  # CommitOperationAdd, uploaded
        self.card: str | None = None  # the repo's README.md before the export
        self.commits, self.groups = 0, 1
        self.pull: tuple[int, str] | None = None  # the pull request (number, URL) committed to
        self.pool = ThreadPoolExecutor(max_workers=UPLOADS, thread_name_prefix="export-upload")
        self.slots = threading.BoundedSemaphore(UPLOADS)
        self.pending: list[Future[None]] = []

    def create(self, *, private: bool, force: bool) -> None:
        """Create the repo; an existing one needs ``force``, unless it is empty (only
        ``.gitattributes``: made by an export that committed nothing)."""
        try:
            self.api.create_repo(self.repo_id, repo_type="dataset", private=private, exist_ok=True)
            held = self.files() - {".gitattributes"}
        except Exception as err:
            raise _explain(err, self.endpoint, self.repo_id, self.token) from None
        if held and not force:
            raise ExportError(already_there(self.repo_id, self.endpoint))
        if "README.md" in held:
            try:
                with tempfile.TemporaryDirectory(prefix="curation-card-") as cache:
                    path = self.api.hf_hub_download(
                        self.repo_id, "README.md", repo_type="dataset", cache_dir=cache
                    )
                    self.card = Path(path).read_text(encoding="utf-8", errors="replace")
            except Exception as err:
                raise _explain(err, self.endpoint, self.repo_id, self.token) from None
            _card_parts(self.card, self.card_name)  # a header that does not parse: say so now

    @property
    def card_name(self) -> str:
        return f"the README.md of {self.repo_id}"

    def files(self) -> set[str]:
        return set(self.api.list_repo_files(self.repo_id, repo_type="dataset"))

    def send(self, file: Path, path_in_repo: str) -> None:
        """Upload ``file`` as ``path_in_repo``; after this the file may be deleted."""
        from huggingface_hub import CommitOperationAdd

        operation = CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=str(file))
        self._retried(
            lambda: self.api.preupload_lfs_files(
                self.repo_id, additions=[operation], repo_type="dataset"
            )
        )
        if not operation._is_uploaded:  # a file the Hub keeps in git: the commit carries it
            operation.path_or_fileobj = file.read_bytes()
        self.sent.append(operation)

    def send_soon(self, file: Path, path_in_repo: str, then: Callable[[float], None]) -> None:
        """Upload ``file`` on a thread of the pool, then call ``then(seconds)``; waits
        while ``UPLOADS`` files are being sent, and raises the error of one that failed."""

        def job() -> None:
            try:
                began = time.monotonic()
                self.send(file, path_in_repo)
                then(time.monotonic() - began)
            finally:
                self.slots.release()

        began = time.monotonic()
        while not self.slots.acquire(timeout=HEARTBEAT_S):
            self._under_way(began)
        try:
            self._failed()
        except BaseException:
            self.slots.release()
            raise
        self.pending.append(self.pool.submit(job))

    def rename(self, paths: dict[str, str]) -> None:
        """Commit the files sent as each key of ``paths`` under its value instead (the
        Hub holds an upload by its content, not its name)."""
        for operation in self.sent:
            if operation.path_in_repo in paths:
                operation.path_in_repo = paths[operation.path_in_repo]
                # what the repo held at the first name: the client would leave the file
                # out of the commit as unchanged when it held the same content there
                operation._remote_oid = None

    def _failed(self) -> None:
        for future in self.pending:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def wait(self) -> None:
        """Wait for every upload; raises the first error, in the files' order."""
        began = time.monotonic()
        while wait_for(self.pending, timeout=HEARTBEAT_S, return_when=FIRST_EXCEPTION)[1]:
            if any(f.done() and f.exception() is not None for f in self.pending):
                break
            self._under_way(began)
        for future in self.pending:
            future.result()

    def _under_way(self, since: float) -> None:
        """A line saying what is being sent, for a wait of ``HEARTBEAT_S`` or more."""
        busy = sum(not f.done() for f in self.pending)
        megabytes = sum(op.upload_info.size for op in self.sent) / 1e6
        self.log(
            f"export: {busy} upload(s) under way for {time.monotonic() - since:.0f} s; "
            f"{len(self.sent)} file(s) sent so far ({megabytes:,.1f} MB)"
        )

    def close(self) -> None:
        """Cancel the uploads not begun and wait for those under way."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def commit(
        self, folder: Path, split: str, cards: dict[str, str], keep: tuple[str, ...] = ()
    ) -> str:
        """Commit every file sent and the files left in ``folder`` (the card, the images):
        ``split`` of each config of ``cards`` (each config's own card), the cards merged
        into the repo's one after another (``merge_cards``: other splits and configs
        stay; a repo without a card gets ``folder``'s), deleting the repo's files of
        ``split`` of those configs (``data/<prefix><split>-*``, ``images/<prefix><split>/``,
        ``config_prefix``) that are not among them; returns the commit's URL, or the
        merged pull request's when the files took several commits."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        self.sent.sort(key=lambda op: op.path_in_repo)  # uploads end in any order
        paths = {op.path_in_repo for op in self.sent}
        rest = []
        for file in sorted(folder.rglob("*")):
            name = file.relative_to(folder).as_posix()
            if not file.is_file() or name in paths:
                continue
            content: str | bytes = str(file)
            if name == "README.md" and self.card is not None:
                content = merge_many(self.card, cards, split, self.card_name, keep).encode()
            rest.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
        operations = self.sent + rest
        named = {op.path_in_repo for op in operations}
        held = self._retried(self.files)
        stale = sorted(
            path for config in cards for path in _split_files(held, config, split) - named
        )
        groups = [operations[i : i + COMMIT_FILES] for i in range(0, len(operations), COMMIT_FILES)]
        groups[-1] += [CommitOperationDelete(path_in_repo=path) for path in stale]
        self.groups = len(groups)
        url = ""
        # More commits than one go to a pull request, merged at the end: readers of main
        # see the earlier export or this one, never a mix of their files.
        revision = None
        # names the pull request, so that a retry whose first try opened it (its answer
        # lost on the way) finds it instead of opening a second one
        mark = secrets.token_hex(4)
        for index, group in enumerate(groups):
            part = f", part {index + 1} of {len(groups)}" if len(groups) > 1 else ""
            message = f"curation export ({len(operations)} files{part})"
            if stale and index == len(groups) - 1:
                message += f"; {len(stale)} file(s) of an earlier export deleted"
            if len(groups) > 1 and revision is None:
                message += f" [{mark}]"
                url, self.pull = self._retried(self._opening_pull(group, message, mark))
                revision = f"refs/pr/{self.pull[0]}"
                self.commits += 1
                continue
            info = self._retried(
                lambda group=group, message=message, revision=revision: self.api.create_commit(
                    self.repo_id,
                    group,
                    repo_type="dataset",
                    commit_message=message,
                    revision=revision,
                )
            )
            self.commits += 1
            url = str(info.commit_url)
        if self.pull is not None:
            number, url = self.pull
            self._retried(
                lambda: self.api.merge_pull_request(
                    self.repo_id,
                    number,
                    repo_type="dataset",
                    comment=f"curation export: {len(groups)} commits, merged as one",
                )
            )
        return url

    def _opening_pull(
        self, group: list[Any], message: str, mark: str
    ) -> Callable[[], tuple[str, tuple[int, str]]]:
        """The first commit of several, as an action to retry: it opens a pull request
        titled ``message`` that holds ``group``; tried again, it first looks for the open
        pull request titled with ``mark`` (a try whose answer was lost may have opened
        it) and commits to that one. Returns the commit's URL and the pull request's
        number and URL."""
        tried = False

        def action() -> tuple[str, tuple[int, str]]:
            nonlocal tried
            found = self._open_pull(mark) if tried else None
            tried = True
            if found is None:
                info = self.api.create_commit(
                    self.repo_id, group, repo_type="dataset", commit_message=message, create_pr=True
                )
                return str(info.commit_url), (int(info.pr_num), str(info.pr_url))
            info = self.api.create_commit(
                self.repo_id,
                group,
                repo_type="dataset",
                commit_message=message,
                revision=f"refs/pr/{found[0]}",
            )
            return str(info.commit_url), found

        return action

    def _open_pull(self, mark: str) -> tuple[int, str] | None:
        """The open pull request whose title holds ``mark``: its number and URL."""
        for pull in self.api.get_repo_discussions(
            self.repo_id,
            repo_type="dataset",
            discussion_type="pull_request",
            discussion_status="open",
        ):
            if f"[{mark}]" in pull.title:
                return pull.num, pull.url
        return None

    def _retried(self, action: Callable[[], Any]) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except Exception as err:
                if attempt == self.attempts or not _is_transient(err):
                    problem = _explain(err, self.endpoint, self.repo_id, self.token)
                    if self.pull is not None:  # main is as it was: no --force for it
                        number, pull_url = self.pull
                        landed = (
                            "every commit"
                            if self.commits == self.groups
                            else f"{self.commits} of {self.groups} commits"
                        )
                        done = (
                            f"{landed} landed in pull request #{number} ({pull_url}), which is "
                            "not merged: the repo's main branch is unchanged (close that pull "
                            "request, or merge it on the Hub when every commit landed)"
                        )
                        again = ""
                    else:
                        done = (
                            f"{self.commits} of {self.groups} commits landed"
                            if self.commits
                            else "nothing was committed"
                        )
                        again = " with --force" if self.commits else ""
                    raise ExportError(
                        f"{problem} (after {attempt} attempt(s)); {done}. Run the same command "
                        f"again{again}: files the Hub already holds are not sent twice"
                    ) from None
                wait = self.backoff_s * 2 ** (attempt - 1)
                self.log(
                    redact(
                        f"export: upload interrupted ({type(err).__name__}); attempt "
                        f"{attempt + 1} of {self.attempts} in {wait:.0f} s",
                        self.token,
                    )
                )
                time.sleep(wait)
        raise AssertionError("unreachable")


def _split_files(paths: set[str], config: str, split: str) -> set[str]:
    """The files of ``paths`` (a repo's or a folder's, relative) that hold ``split`` of
    ``config``: its data files (``data/<prefix><split>-*``, ``config_prefix``) and images
    (``images/<prefix><split>/``)."""
    data, images = f"data/{config_prefix(config)}", f"images/{config_prefix(config)}"
    return {
        path
        for path in paths
        if (path.startswith(f"{data}{split}-") and "/" not in path[len(data) :])
        or path.startswith(f"{images}{split}/")
    }


def _export_into(
    staging: Path, target: Path, split: str, cards: dict[str, str], keep: tuple[str, ...]
) -> None:
    """Move the export of ``split`` of each config of ``cards`` (its own card) in
    ``staging`` into the folder ``target``, which holds other files: as a push does to a
    repo, its data files and images replace the split's (``data/<prefix><split>-*``,
    ``images/<prefix><split>/``, ``config_prefix``), the cards are merged into
    ``target``'s one after another (``merge_cards``, with ``keep``), and every other
    file stays."""
    for config in cards:
        prefix = config_prefix(config)
        data, images = target / "data" / prefix, target / "images" / prefix
        data.mkdir(parents=True, exist_ok=True)
        images.mkdir(parents=True, exist_ok=True)
        new = {path.name for path in (staging / "data" / prefix).glob(f"{split}-*.parquet")}
        for name in sorted(new):
            os.replace(staging / "data" / prefix / name, data / name)
        for path in data.glob(f"{split}-*"):
            if path.name not in new and path.is_file():
                path.unlink()
        shutil.rmtree(images / split, ignore_errors=True)
        os.replace(staging / "images" / prefix / split, images / split)
    card, old = (staging / "README.md").read_text(encoding="utf-8"), target / "README.md"
    if old.is_file():
        before = old.read_text(encoding="utf-8", errors="replace")
        card = merge_many(before, cards, split, str(old), keep)
    written = staging / "README.md"
    written.write_text(card, encoding="utf-8")
    os.replace(written, old)


def _quiet_hub_bars() -> Callable[[], None]:
    """Turn off huggingface_hub's progress bars (one per file, on threads that interleave
    with the export's own lines) unless ``HF_HUB_DISABLE_PROGRESS_BARS`` says otherwise;
    returns what turns them back on."""
    from huggingface_hub import constants
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    if constants.HF_HUB_DISABLE_PROGRESS_BARS is not None or are_progress_bars_disabled():
        return lambda: None
    disable_progress_bars()
    return enable_progress_bars


def already_there(repo_id: str, endpoint: str) -> str:
    return (
        f"dataset repo {repo_id} already exists at {endpoint}: pass --force to add this "
        "export to it as a new commit, or choose another --repo-id"
    )


def export(
    run: str | Path,
    *,
    repo_id: str | None,
    to_folder: str | Path | None = None,
    split: str = "train",
    max_shard_size: str = "500MB",
    private: bool = False,
    force: bool = False,
    license_id: str | None = None,
    where: str | None = None,
    config: str = DEFAULT_CONFIG,
    config_by: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export the kept rows of ``run`` (a run folder or a shard; with ``where``, those for
    which that SQL condition is true) as ``split`` of ``config``, or with ``config_by``
    (a column) as ``split`` of a config for each of its values (``plan_configs``), all in
    one push: to ``to_folder``, to the Hub as ``repo_id``, or both. Returns the shards,
    the rows of each config, the folder and the commit URL. ``license_id`` None:
    ``other`` on a new card, the license of a card merged into."""
    keep = ("license",) if license_id is None else ()
    if not repo_id and not to_folder:
        raise ExportError("give --repo-id ORG/NAME to push, --to-folder DIR, or both")
    if repo_id and not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise ExportError(f"--repo-id {repo_id!r}: expected ORG/NAME")
    if not re.fullmatch(r"\w+", split):
        raise ExportError(f"--split {split!r}: use letters, digits and underscores")
    if not re.fullmatch(r"\w+", config):
        raise ExportError(f"--config {config!r}: use letters, digits and underscores")
    if config_by is not None and config != DEFAULT_CONFIG:
        raise ExportError(
            f"--config {config!r} with --config-by {config_by!r}: --config-by names each "
            "config after a value; give one or the other"
        )
    key = repr(block_key(config, split)) if config_by is None else f"{split!r} of each config"
    max_bytes = parse_size(max_shard_size)
    source = open_source(run)
    if source.unfinished:
        raise ExportError(
            f"{run} is {source.unfinished}: finish it first ({FINISH_IT}), then export it"
        )
    target = Path(to_folder) if to_folder else None
    if target is not None and target.exists():
        if not target.is_dir():
            raise ExportError(f"{target} is a file: --to-folder takes a folder")
        if any(target.iterdir()):
            if not force:
                raise ExportError(
                    f"{target} exists and is not empty: pass --force to export split "
                    f"{key} into it (its files of {key} are replaced, the rest stay)"
                )
            card = target / "README.md"
            if card.is_file():  # a header that does not parse: say so now
                _card_parts(card.read_text(encoding="utf-8", errors="replace"), str(card))
    # JSON Lines parts (a run written with output: {format: jsonl}) are read as Parquet
    # copies, made one part at a time beside the export and removed after it
    near = target.parent if target else None
    with _parquet_parts(source, near) as source, ExitStack() as stack:
        described = source  # the source the card describes: its funnel and summaries
        if config_by is None:
            plans = [(config, plan_shards(source, max_bytes, where))]
        else:
            plans = plan_configs(source, max_bytes, config_by, where)
            shared, extra = _shared_reads(plans)
            if shared > SPLIT_SHARED_READS and extra > SPLIT_EXTRA_BYTES:
                log(
                    f"export: the {len(plans)} configs share row groups (each would be read "
                    f"{shared:.1f} times on average): writing each config's rows apart once, "
                    "in a temporary copy beside the export (a run with output: "
                    f"{{partition_by: {config_by}}} needs none)"
                )
                began = time.monotonic()
                source = stack.enter_context(_split_copy(source, plans, config_by, where, near))
                plans = plan_configs(source, max_bytes, config_by, where)
                log(f"export: the copy took {time.monotonic() - began:.1f} s")
        name = repo_id or f"local/{target.name if target else 'export'}"
        pusher = None
        if repo_id:
            endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
            pusher = _Pusher(
                repo_id,
                token=find_token(),
                endpoint=endpoint,
                attempts=ATTEMPTS,
                backoff_s=BACKOFF_S,
                log=log,
            )
            pusher.create(private=private, force=force)
        parent = target.parent if target else None
        if parent:
            parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".curation-export-", dir=parent))
        began = time.monotonic()

        def written_of(planned: int) -> OnShard:
            """What is said as each file of a config whose plan foresaw ``planned`` is
            written (and, pushing, sent)."""

            def written(file: Path, shard: dict[str, Any], index: int, count: int) -> None:
                about = "" if count == planned else "about "
                line = (
                    f"export: {shard['path']} ({index + 1} of {about}{count}): "
                    f"{shard['rows']:,} rows, {shard['bytes'] / 1e6:,.1f} MB"
                )
                if pusher is None:
                    log(line)
                    return

                def sent(seconds: float) -> None:
                    rate = shard["bytes"] / 1e6 / max(seconds, 1e-3)
                    log(f"{line}, sent in {seconds:.1f} s ({rate:,.1f} MB/s)")
                    if target is None:  # sent: the folder need not hold it
                        file.unlink()

                pusher.send_soon(file, shard["path"], sent)

            return written

        quiet = _quiet_hub_bars()
        try:
            where = f" to {pusher.endpoint}/datasets/{repo_id}" if pusher is not None else ""
            rows, files = sum(p.rows for _, p in plans), sum(p.files for _, p in plans)
            configs = f" as {len(plans)} configs by {config_by}" if config_by is not None else ""
            log(f"export: {source.path}, {rows:,} rows in {files} file(s){configs}{where}")
            shards: list[dict] = []
            cards: dict[str, str] = {}
            counts: dict[str, int] = {}
            seen: Overview | None = None
            drawn: dict[str, bytes] = {}
            for number, (config, plan) in enumerate(plans):
                if config_by is not None and plan.where is not None:
                    log(
                        f"export: config {config} ({number + 1} of {len(plans)}): "
                        f"{plan.rows:,} rows in {plan.files} file(s), {plan.where.condition}"
                    )
                seen = overview(described) if seen is None else seen
                made, cards[config] = build_export(
                    source,
                    staging,
                    repo_id=name,
                    split=split,
                    plan=plan,
                    license_id=license_id or "other",
                    on_shard=written_of(plan.files),
                    settle=pusher.wait if pusher is not None else None,
                    config=config,
                    seen=seen,
                    drawn=drawn,
                )
                if len(made) != plan.files:
                    log(
                        f"export: the rows took {len(made)} file(s), not the {plan.files} "
                        f"their Parquet footers suggested: the files are named "
                        f"{made[0]['path']} ..."
                    )
                shards += made
                counts[config] = plan.rows
            if len(cards) > 1:  # one card for them all, where nothing is merged into
                first, *rest = cards.items()
                card = merge_many(first[1], dict(rest), split, "the export")
                (staging / "README.md").write_text(card, encoding="utf-8")
            url = None
            if pusher is not None:
                pusher.wait()
                pusher.rename({s["sent_as"]: s["path"] for s in shards if "sent_as" in s})
                url = pusher.commit(staging, split, cards, keep)
                seconds = time.monotonic() - began
                into = ""
                if pusher.pull is not None:
                    into = f" to pull request #{pusher.pull[0]}, merged into main at once"
                log(
                    f"export: committed in {pusher.commits} commit(s){into}, {seconds:.1f} s in all"
                )
            if target is not None:
                if target.exists() and any(target.iterdir()):
                    _export_into(staging, target, split, cards, keep)
                else:
                    if target.exists():
                        target.rmdir()
                    staging.rename(target)
        except OSError as err:  # reading is wrapped where it happens: this is writing
            raise ExportError(
                f"writing the export in {staging.parent}: {err}: free some space there or choose "
                "another --to-folder (TMPDIR without one), then export again"
            ) from None
        finally:
            quiet()
            if pusher is not None:
                pusher.close()
            if staging.exists():
                shutil.rmtree(staging)
        return {
            "shards": shards,
            "configs": counts,
            "folder": str(target) if target else None,
            "commit_url": url,
        }
