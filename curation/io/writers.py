"""Writers: Parquet (zstd by default) or JSON Lines shards of at most ``shard_rows`` rows.

Parquet row groups gather the batches written until they reach ``row_group_bytes`` of
Arrow data (64 MiB by default) or the part ends, whatever the size of each batch: a
filter that keeps 1% of every 10,000-row batch still writes row groups of tens of
thousands of rows. Memory: at most one row group of rows waiting per writer.

Every file is written under a temporary name (``.tmp-*``) in its final folder and renamed
when complete, so a reader never sees a half-written file: a run killed at any moment
leaves only complete files and temporaries, which the next run removes.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from curation.recipe import OutputSpec

TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Part:
    """One complete output file and its row count."""

    path: Path
    rows: int


def part_suffix(output: OutputSpec) -> str:
    """File name ending of output parts, e.g. ``.parquet`` or ``.jsonl.zst``."""
    if output.format == "parquet":
        return ".parquet"
    return {"zstd": ".jsonl.zst", "gzip": ".jsonl.gz"}.get(output.compression, ".jsonl")


def tmp_path(final: Path) -> Path:
    """A unique temporary name beside ``final``."""
    return final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{final.name}")


def publish(tmp: Path, final: Path) -> None:
    """Make ``tmp`` visible as ``final`` atomically (after flushing it to disk)."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def write_atomic_bytes(final: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``final`` through a temporary file and an atomic rename, flushed
    to disk first unless ``durable`` is False (a record whose loss costs nothing)."""
    tmp = tmp_path(final)
    tmp.write_bytes(data)
    if durable:
        publish(tmp, final)
    else:
        os.replace(tmp, final)


class _RowGroups:
    """Tables gathered into Parquet row groups of at least ``limit`` bytes of Arrow data
    (the last one smaller): one row group of rows held at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tables: list[pa.Table] = []
        self.bytes = 0

    def add(self, writer: pq.ParquetWriter, table: pa.Table) -> None:
        """Hold ``table``; write the row group once it reaches the limit."""
        self.tables.append(table)
        self.bytes += table.nbytes
        if self.bytes >= self.limit:
            self.flush(writer)

    def flush(self, writer: pq.ParquetWriter) -> None:
        """Write what is held as one row group."""
        if self.tables:
            group = pa.concat_tables(self.tables)
            writer.write_table(group, row_group_size=max(1, group.num_rows))
        self.tables, self.bytes = [], 0


class PartWriter:
    """Streams tables into ``<folder>/<prefix>-00000<suffix>``, ``-00001``... parts.

    A part holds at most ``shard_rows`` rows. With Parquet, a batch whose schema cannot be
    cast to the open part's schema (a new column, another type) starts a new part; the
    run's finishing step unifies the schemas of all parts.
    """

    def __init__(self, folder: Path, prefix: str, output: OutputSpec, frames: bool = False) -> None:
        self.folder = folder
        self.prefix = prefix
        self.output = output
        # JSON Lines, compressed: each write a whole zstd frame or gzip member of its
        # own, with no compressor held open between writes (about 1 MB of zstd state,
        # 0.3 MB of zlib's, for each of a partitioned run's values)
        self.frames = frames
        self.parts: list[Part] = []
        self._tmp: Path | None = None
        self._rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._stream: io.RawIOBase | None = None
        self._file: io.BufferedWriter | io.FileIO | None = None
        self._groups = _RowGroups(output.row_group_bytes)  # rows of the next row group

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows, splitting it across parts as needed."""
        start = 0
        while start < table.num_rows:
            if self._tmp is not None and self._rows >= self.output.shard_rows:
                self._close_part()
            take = min(self.output.shard_rows - self._rows, table.num_rows - start)
            self._write_piece(table.slice(start, take))
            start += take

    def close(self) -> list[Part]:
        """Finish the open part; return every part written, in order."""
        if self._tmp is not None:
            self._close_part()
        return self.parts

    @property
    def held_bytes(self) -> int:
        """Arrow bytes of the rows held for the next Parquet row group (0 for JSON Lines,
        whose rows go straight to the file)."""
        return self._groups.bytes

    def flush_held(self) -> None:
        """Write the rows held as a row group now, smaller than ``row_group_bytes``."""
        if self._parquet is not None:
            self._groups.flush(self._parquet)

    def _write_piece(self, piece: pa.Table) -> None:
        if self.output.format == "jsonl":
            if self._tmp is None:
                self._open_jsonl()
            buffer = io.BytesIO()
            pl.from_arrow(piece).write_ndjson(buffer)
            assert self._stream is not None
            self._stream.write(self._framed(buffer.getvalue()))
        else:
            if self._parquet is not None and self._schema is not None:
                piece_cast = cast_to(piece, self._schema)
                if piece_cast is None:
                    self._close_part()
                else:
                    piece = piece_cast
            if self._parquet is None:
                self._open_parquet(piece.schema)
            self._groups.add(self._parquet, piece)
        self._rows += piece.num_rows

    def _next_final(self) -> Path:
        return self.folder / f"{self.prefix}-{len(self.parts):05d}{part_suffix(self.output)}"

    def _open_parquet(self, schema: pa.Schema) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tmp = tmp_path(self._next_final())
        compression = None if self.output.compression == "none" else self.output.compression
        self._parquet = pq.ParquetWriter(self._tmp, schema, compression=compression)
        self._schema = schema

    def _framed(self, data: bytes) -> bytes:
        """``data`` as it goes to the file: as it is, or with ``frames`` compressed whole."""
        if not self.frames or self.output.compression == "none":
            return data
        if self.output.compression == "zstd":
            return _zstd_compressor().compress(data)
        return gzip.compress(data, compresslevel=9, mtime=0)  # GzipFile's level

    def _open_jsonl(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tmp = tmp_path(self._next_final())
        # framed: a piece is one write(), so no buffer is held between them either
        self._file = open(self._tmp, "wb", buffering=0 if self.frames else -1)
        if self.frames:
            self._stream = self._file  # type: ignore[assignment]
        elif self.output.compression == "zstd":
            self._stream = zstandard.ZstdCompressor(level=3).stream_writer(self._file)
        elif self.output.compression == "gzip":
            self._stream = gzip.GzipFile(fileobj=self._file, mode="wb")  # type: ignore[assignment]
        else:
            self._stream = self._file  # type: ignore[assignment]

    def _close_part(self) -> None:
        assert self._tmp is not None
        if self._parquet is not None:
            self._groups.flush(self._parquet)
            self._parquet.close()
            self._parquet = None
        if self._stream is not None:
            if self._stream is not self._file:
                self._stream.close()
            if self._file is not None and not self._file.closed:
                self._file.close()
            self._stream = self._file = None
        final = self._next_final()
        publish(self._tmp, final)
        self.parts.append(Part(final, self._rows))
        self._tmp, self._rows, self._schema = None, 0, None


_THREAD = threading.local()


def _zstd_compressor() -> zstandard.ZstdCompressor:
    """This thread's zstd compressor at the writers' level (3), made once."""
    compressor = getattr(_THREAD, "zstd", None)
    if compressor is None:
        compressor = _THREAD.zstd = zstandard.ZstdCompressor(level=3)
    return compressor


class PartitionError(ValueError):
    """The kept rows cannot be written a folder per value of ``output.partition_by``; the
    message names the column and what to do."""


# the characters written as %XX in a partition folder's name: those Hive and Spark escape
# (the path separators, % itself), those Windows refuses, and the control characters
_ESCAPED = frozenset("\"#%'*/:=?\\{[]^<>|\x7f") | {chr(c) for c in range(0x20)}
NULL_PARTITION = "null"
_PARTITION_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer)
_PARTITION_TYPES += (pa.types.is_boolean, pa.types.is_date)


def partitionable(kind: pa.DataType) -> bool:
    """Whether values of type ``kind`` name folders (``partition_by``) or configs
    (``curate export --config-by``): strings, integers, booleans and dates."""
    return any(check(kind) for check in _PARTITION_TYPES)


def value_text(value: object) -> str:
    """A value of a column that names folders or configs as text: booleans ``true`` and
    ``false``, dates ISO 8601 (``str``), the rest as ``str`` gives them."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def partition_folder(value: object) -> str:
    """The name of the folder that holds the kept rows of one value of
    ``output.partition_by``: the value as text (booleans ``true``/``false``, dates ISO
    8601), with ``/``, ``%`` and the other characters Hive escapes written as ``%XX``, a
    leading ``.`` or ``_`` too (readers pass over hidden names), and ``null`` for null and
    the empty string (a value "null" is ``%6Eull``): ``kept/en/``, as datatrove's
    ``${language}`` and NeMo Curator's ``separate_by_metadata`` name them. Every row keeps
    its value in its file, so readers need not parse the path (no ``column=value``, which
    pyarrow would read as a second column of dictionary type). Raises ``PartitionError``
    for a name of more than 255 bytes, the longest a file name may be."""
    if value is None or value == "":
        return NULL_PARTITION
    text = value_text(value)
    name = "".join(f"%{ord(ch):02X}" if ch in _ESCAPED else ch for ch in text)
    if name[0] in "._" or name == NULL_PARTITION:
        name = f"%{ord(name[0]):02X}{name[1:]}"
    if len(name.encode("utf-8")) > 255:
        raise PartitionError(
            f"output.partition_by: the folder of the value {text[:60]!r}... would be a name "
            "of more than 255 bytes: partition by a column of short values"
        )
    return name


class PartitionedWriter:
    """Streams tables into a ``PartWriter`` per value of the columns of
    ``output.partition_by``, each in its folder ``<folder>/<partition_folder(value)>/``,
    nested a level per column (outermost first); the rows of each value stay in the
    order written.

    A batch without one of the columns (a JSON Lines field that none of its rows has) has
    null there; ``seen`` holds the columns that were found, so that the run can refuse a
    name that no row had (a typo). The rows held for Parquet row groups, over all the
    values, stay within ``output.row_group_bytes``: past it, the value holding the most
    writes its row group early. At most ``output.max_partitions`` folders; ``label`` (the
    shard) names where in errors.
    """

    def __init__(self, folder: Path, prefix: str, output: OutputSpec, label: str) -> None:
        self.folder = folder
        self.prefix = prefix
        self.output = output
        self.columns = output.partition_columns
        self.label = label
        self.writers: dict[str, PartWriter] = {}
        self.seen: set[str] = set()  # the columns found in a batch written

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows, each to the writer of its value."""
        if not table.num_rows:
            return
        names, codes = self._folders(table)
        if len(names) == 1:
            self._writer(names[0]).write(table)
        else:
            # each value takes its own rows: a slice of one sorted copy would keep the
            # whole batch alive for as long as a rare value holds its few rows
            order = np.argsort(codes, kind="stable")
            start = 0
            for index, count in enumerate(np.bincount(codes, minlength=len(names))):
                if count:
                    rows = table.take(pa.array(order[start : start + count]))
                    self._writer(names[index]).write(rows)
                    start += count
        held = sum(w.held_bytes for w in self.writers.values())
        while held > self.output.row_group_bytes:
            fullest = max(self.writers.values(), key=lambda w: w.held_bytes)
            held -= fullest.held_bytes
            fullest.flush_held()

    def close(self) -> list[Part]:
        """Finish every value's open part; return the parts, by folder name, in order."""
        return [part for name in sorted(self.writers) for part in self.writers[name].close()]

    def _writer(self, name: str) -> PartWriter:
        writer = self.writers.get(name)
        if writer is None:
            if len(self.writers) >= self.output.max_partitions:
                raise PartitionError(
                    f"{self.label}: its kept rows hold more than output.max_partitions "
                    f"({self.output.max_partitions:,}) values of {named_columns(self.columns)}, a "
                    "folder each: partition by a column of fewer values, or raise "
                    "max_partitions"
                )
            writer = PartWriter(self.folder / name, self.prefix, self.output, frames=True)
            self.writers[name] = writer
        return writer

    def _folders(self, table: pa.Table) -> tuple[list[str], np.ndarray]:
        """The folder paths of the values in ``table`` (sorted) and each row's index
        among them."""
        names, codes = self._column_folders(table, self.columns[0])
        for column in self.columns[1:]:
            inner, inner_codes = self._column_folders(table, column)
            pairs, codes = np.unique(codes * len(inner) + inner_codes, return_inverse=True)
            paths = [f"{names[p // len(inner)]}/{inner[p % len(inner)]}" for p in pairs.tolist()]
            order = np.argsort(paths, kind="stable")  # as the paths sort, the way close() does
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            names, codes = [paths[i] for i in order], rank[codes.reshape(-1)]
        return names, codes

    def _column_folders(self, table: pa.Table, column: str) -> tuple[list[str], np.ndarray]:
        """The folder names of ``column``'s values in ``table`` (sorted) and each row's
        index among them."""
        found = column_at(table, column)
        if found is None:  # a field that no row of the batch has
            return [partition_folder(None)], np.zeros(table.num_rows, np.int64)
        self.seen.add(column)
        values = found.combine_chunks()
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if pa.types.is_null(values.type):  # no value in this batch (JSON Lines' type)
            return [partition_folder(None)], np.zeros(len(values), np.int64)
        if not partitionable(values.type):
            raise PartitionError(
                f"{self.label}: output.partition_by: the column {column!r} is "
                f"{values.type}; partition by a column of strings, integers, booleans or "
                "dates"
            )
        encoded = values.dictionary_encode()
        dictionary = encoded.dictionary.to_pylist()
        names = [partition_folder(value) for value in dictionary]
        null = partition_folder(None)
        unique = sorted(set(names) | ({null} if encoded.null_count else set()))
        at = {name: index for index, name in enumerate(unique)}
        # nulls are no entry of the dictionary: they index one past its end
        lookup = np.array([at[name] for name in names] + [at.get(null, 0)], np.int64)
        indices = encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)
        return unique, lookup[indices]


def column_at(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    """The column ``name`` of ``table``, or a field of a struct column named with dots
    (``metadata.pile_set_name``: the Pile's subset; a column named with the dots wins);
    None where the batch has no such column or field (null in a struct's null rows)."""
    if name in table.column_names:
        return table.column(name)
    head, *path = name.split(".")
    if not path or head not in table.column_names:
        return None
    values = table.column(head)
    for field in path:
        if not pa.types.is_struct(values.type) or values.type.get_field_index(field) < 0:
            return None
        values = pc.struct_field(values, field)
    return values


def named_columns(columns: list[str]) -> str:
    """``columns`` as an error names them: ``'lang' and 'source'``."""
    return " and ".join(repr(c) for c in columns)


def cast_to(table: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """``table`` cast to ``schema`` (missing columns as nulls), or None if it cannot be."""
    if table.schema.equals(schema):
        return table
    if not set(table.column_names) <= set(schema.names):
        return None
    columns = []
    for field in schema:
        if field.name in table.column_names:
            try:
                columns.append(table[field.name].cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                return None
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.table(columns, schema=schema)


class SchemaConflictError(ValueError):
    """Two output parts hold a column of types that cannot be reconciled."""


def unify_parts(schemas: list[pa.Schema], labels: list[str]) -> pa.Schema | None:
    """The schema every part (of these schemas) can be cast to, or None when they agree.

    ``labels`` name where each part came from (its input shard) for the error message.
    Raises ``SchemaConflictError`` naming the column and the two inputs that disagree.
    """
    if not schemas or all(s.equals(schemas[0]) for s in schemas):
        return None
    unified = schemas[0]
    for index, schema in enumerate(schemas[1:], start=1):
        try:
            unified = pa.unify_schemas([unified, schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            column, first = _conflict(schemas[:index], schema, labels)
            raise SchemaConflictError(
                f"column {column!r} has type {schema.field(column).type} in {labels[index]} "
                f"but {first[1]} in {first[0]} ({err}): make the inputs agree on its type, or "
                "drop the column upstream"
            ) from None
    return unified


def _conflict(
    earlier: list[pa.Schema], schema: pa.Schema, labels: list[str]
) -> tuple[str, tuple[str, pa.DataType]]:
    for field in schema:
        for index, other in enumerate(earlier):
            if field.name in other.names:
                try:
                    pa.unify_schemas(
                        [pa.schema([other.field(field.name)]), pa.schema([field])],
                        promote_options="permissive",
                    )
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    return field.name, (labels[index], other.field(field.name).type)
    return "?", ("an earlier input", pa.null())


def rewrite_as(src: Path, final: Path, schema: pa.Schema, compression: str) -> None:
    """Write Parquet ``src`` as ``final`` cast to ``schema``, atomically."""
    table = pq.read_table(src)
    cast = cast_to(table, schema)
    if cast is None:
        raise ValueError(f"{src}: cannot be cast to the unified schema {schema}")
    tmp = tmp_path(final)
    pq.write_table(cast, tmp, compression=None if compression == "none" else compression)
    publish(tmp, final)


#: parts are joined by their bytes where their row groups hold at least this share of
#: ``output.row_group_bytes`` on average (uncompressed Parquet bytes: 4 MiB of the
#: default 64), row groups that readers take in as well as larger ones; smaller ones are
#: gathered anew, so that a file of many small parts is not one of many tiny row groups
JOIN_GROUP_SHARE = 1 / 16


def _joined(sources: list[Path], tmp: Path, schema: pa.Schema, row_group_bytes: int) -> bool:
    """Whether the Parquet ``sources`` were written to ``tmp`` joined by their bytes: all
    of ``schema``, their row groups large enough (``JOIN_GROUP_SHARE``), their footers
    plain (``NotJoinable``: nothing is left at ``tmp``)."""
    from curation.io.concat import NotJoinable, join_parquet

    footers = [pq.read_metadata(source) for source in sources]
    groups = sum(footer.num_row_groups for footer in footers)
    size = sum(f.row_group(i).total_byte_size for f in footers for i in range(f.num_row_groups))
    if not groups or size / groups < JOIN_GROUP_SHARE * row_group_bytes:
        return False
    if not all(footer.schema.to_arrow_schema().equals(schema) for footer in footers):
        return False
    try:
        join_parquet(sources, tmp)
    except NotJoinable:
        tmp.unlink(missing_ok=True)
        return False
    return True


def merge_parts(
    sources: list[Path], final: Path, schema: pa.Schema | None, output: OutputSpec
) -> None:
    """Write the parts ``sources`` (in ``output.format``) as the one file ``final``, in
    order and atomically. Parquet: parts of ``schema`` whose row groups hold at least
    ``JOIN_GROUP_SHARE`` of ``output.row_group_bytes`` on average are joined by their bytes
    (``join_parquet``: no page decoded again); otherwise each part is cast to ``schema``
    and its row groups gathered up to ``output.row_group_bytes`` as the writer gathers
    them, one row group of rows held at a time. JSON lines: the parts' bytes joined
    (whole gzip members and whole zstd frames, one after another, are one valid file)."""
    tmp = tmp_path(final)
    if output.format == "jsonl":
        with open(tmp, "wb") as out:
            for source in sources:
                with open(source, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        publish(tmp, final)
        return
    schema = schema or pq.read_schema(sources[0])
    if _joined(sources, tmp, schema, output.row_group_bytes):
        publish(tmp, final)
        return
    compression = None if output.compression == "none" else output.compression
    groups = _RowGroups(output.row_group_bytes)
    with pq.ParquetWriter(tmp, schema, compression=compression) as writer:
        for source in sources:
            part = pq.ParquetFile(source)
            for group in range(part.num_row_groups):
                table = cast_to(part.read_row_group(group), schema)
                if table is None:
                    raise ValueError(f"{source}: cannot be cast to the unified schema {schema}")
                groups.add(writer, table)
        groups.flush(writer)
    publish(tmp, final)
