"""Streaming readers: one input shard in, document batches (``pyarrow.Table``) out.

Each reader yields conformed batches (see ``curation.batch``) of at most
``InputSpec.batch_rows`` rows and never holds a whole large file in memory (a plain text
file is one document, so it is read whole). Rows that cannot become documents are kept
with a ``read:<rule>`` drop reason so that nothing disappears:

- ``read:invalid_json``: a JSONL line that is not JSON, or not a JSON object;
- ``read:invalid_utf8``: bytes that are not UTF-8 (the text keeps U+FFFD in their place);
- ``read:missing_text_field``: a JSON object without the text field;
- ``read:text_not_string``: a text field that is not a string;
- ``read:null_text``, ``read:empty_text`` (only whitespace), ``read:too_long``
  (more than ``max_doc_chars`` characters);
- WARC: ``read:not_html`` (another content type) and ``read:http_status`` (not 200);
  with ``warc_extractor: trafilatura``, ``read:extract_timeout`` (a page over
  ``warc_extract_timeout_s``) and ``read:extract_failed`` (Trafilatura raised on it, or
  its process died), see ``curation.io.extract``.

A file that cannot be read at all (corrupt Parquet, truncated gzip) raises
``CorruptInputError`` naming the file and how far it got.
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import io
import itertools
import json
import os
import re
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq
import zstandard
from isal import isal_zlib

from curation.batch import DROP_REASON, ID, TEXT, conform
from curation.io import is_url
from curation.io.inputs import (
    InputError,
    InputShard,
    LinePiece,
    gzip_index,
    name_stem,
    resolve_inputs,
)
from curation.io.writers import tmp_path, write_atomic_bytes
from curation.recipe import InputSpec

RESERVED = (ID, TEXT, DROP_REASON)


class CorruptInputError(InputError):
    """A file is damaged or truncated; the message names it and the row reached, then
    says what to do. ``problem`` is the message without that advice (what a run that
    skips damaged files records)."""

    def __init__(self, problem: str, advice: str) -> None:
        super().__init__(f"{problem}. {advice}")
        self.problem, self.advice = problem, advice

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # crosses process boundaries
        return type(self), (self.problem, self.advice)


def live_texts(
    paths: list[str], text_field: str = "text", set_aside: Counter[str] | None = None
) -> Iterator[pa.Array]:
    """The text of every readable document of ``paths``, batch by batch (any format;
    rows the reader sets aside are skipped, and counted by reason in ``set_aside`` when
    it is given). For the commands that train models."""
    spec = InputSpec(paths=paths, text_field=text_field)
    for shard in resolve_inputs(paths, "auto"):
        for table in read_shard(shard, spec):
            dropped = pc.is_valid(table["drop_reason"])
            if set_aside is not None and pc.any(dropped).as_py():
                reasons = table["drop_reason"].filter(dropped).value_counts()
                for entry in reasons.to_pylist():
                    set_aside[entry["values"]] += entry["counts"]
            yield table.filter(pc.invert(dropped))["text"].combine_chunks()


def read_shard(shard: InputShard, spec: InputSpec) -> Iterator[pa.Table]:
    """Yield the documents of ``shard`` as conformed batches, in file order (a unit of
    small files: each file in turn, see ``_read_unit``)."""
    if shard.members:
        yield from _read_unit(shard, spec)
        return
    reader = _READERS[shard.format]
    yield from reader(shard, spec)


def _read_unit(unit: InputShard, spec: InputSpec) -> Iterator[pa.Table]:
    """The batches of ``unit``'s files, in order, up to ``spec.batch_rows`` rows each
    (see ``_UnitBatches``: a one-document file is not a batch of its own for every
    stage). A damaged file stops the unit, as it stops a file, unless ``on_corrupt_file``
    is ``skip``: then the rows before its damage are kept, the files after it are read,
    and at the end one ``CorruptInputError`` names every damaged file, a line each."""
    batches = _UnitBatches(unit, spec)
    problems: list[CorruptInputError] = []
    for member in unit.members:
        try:
            if member.format == "text":
                one = _Rows(member, spec)
                one.add(0, member.name, *_text_of(member), {})
                yield from batches.rows(one)
            elif member.format == "jsonl":
                yield from read_jsonl(member, spec, into=batches)
            else:
                for table in read_shard(member, spec):
                    yield from batches.table(table)
        except CorruptInputError as err:
            if spec.on_corrupt_file != "skip":
                raise
            problems.append(err)
    yield from batches.finish()
    if problems:
        raise CorruptInputError("\n".join(p.problem for p in problems), problems[0].advice)


class _UnitBatches:
    """The batches of a unit of small files, in file order, each of at most
    ``batch_rows`` rows: consecutive tables of one schema are joined, and the rows the
    readers build one by one (a text file's, a JSONL block read line by line) are
    gathered across files into one table, as if the files were one. Rows are gathered
    only while every field holds one scalar type (text, integer of 64 bits, float or
    boolean, or null) in all of them, so each column is typed as each file alone would
    type it; rows with values of mixed types or nested ones are a table of their own.
    Building one table for thousands of one-line files, not one each, is what makes a
    folder of small JSONL files cheap (0.12 ms a file saved)."""

    def __init__(self, unit: InputShard, spec: InputSpec) -> None:
        self.limit = spec.batch_rows
        self.tables: list[pa.Table] = []
        self.held = 0  # rows in ``tables``
        self.gathered = _Rows(unit, spec)
        self.types: dict[str, type] = {}  # each extra field's type in ``gathered``

    def table(self, table: pa.Table) -> Iterator[pa.Table]:
        """Take ``table``; yield the batches it completes."""
        yield from self._gathered_out()
        if self.tables and (
            self.held + table.num_rows > self.limit
            or not table.schema.equals(self.tables[0].schema)
        ):
            yield from self._tables_out()
        self.tables.append(table)
        self.held += table.num_rows

    def rows(self, rows: _Rows) -> Iterator[pa.Table]:
        """Take ``rows`` (at most ``batch_rows`` of them); yield the batches they complete."""
        yield from self._tables_out()
        types = _scalar_types(rows.extras)
        if types is None:
            yield from self.table(rows.flush())
            return
        clash = any(self.types.get(name, kind) is not kind for name, kind in types.items())
        if clash or len(self.gathered) + len(rows) > self.limit:
            yield from self._gathered_out()
        self.gathered.extend(rows)
        self.types.update(types)

    def finish(self) -> Iterator[pa.Table]:
        """The last batch."""
        yield from self._tables_out()
        yield from self._gathered_out()

    def _tables_out(self) -> Iterator[pa.Table]:
        if self.tables:
            yield pa.concat_tables(self.tables) if len(self.tables) > 1 else self.tables[0]
            self.tables, self.held = [], 0

    def _gathered_out(self) -> Iterator[pa.Table]:
        if len(self.gathered):
            yield self.gathered.flush()
            self.types = {}


_INT64 = range(-(2**63), 2**63)


def _scalar_types(extras: list[dict[str, Any]]) -> dict[str, type] | None:
    """The one type of each field's non-null values in ``extras`` (``str``, ``int``
    within 64 bits, ``float`` or ``bool``), or None when a field holds another type or
    two of them (which ``pa.array`` would type by the values beside them)."""
    types: dict[str, type] = {}
    for extra in extras:
        for name, value in extra.items():
            if value is None:
                continue
            kind = type(value)
            if kind not in (str, int, float, bool) or (kind is int and value not in _INT64):
                return None
            if types.setdefault(name, kind) is not kind:
                return None
    return types


def _corrupt(shard: InputShard, where: str, err: BaseException) -> CorruptInputError:
    # one line: a unit's problems are joined a line each, and stats.json splits them so
    # (Arrow's messages end with more lines, "Deserializing page header failed.")
    said = "; ".join(line.strip().rstrip(".") for line in str(err).splitlines() if line.strip())
    return CorruptInputError(
        f"{shard.url}: cannot read past {where}: {type(err).__name__}: {said}",
        "The file is damaged or incomplete: fetch it again, or set `input: {on_corrupt_file: "
        "skip}` in the recipe to keep the rows before the damage, record the file in "
        "stats.json and go on",
    )


class _Rows:
    """Accumulates rows of one batch and turns them into a conformed table."""

    def __init__(self, shard: InputShard, spec: InputSpec) -> None:
        self.shard = shard
        self.spec = spec
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.reasons: list[str | None] = []
        self.extras: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, row: int, doc_id: Any, text: Any, reason: str | None, extra: dict) -> None:
        """Add one row; ``reason`` is a read reason found while decoding, if any."""
        if reason is None:
            if text is None:
                reason = "read:null_text"
            elif not isinstance(text, str):
                reason = "read:text_not_string"
            elif not text.strip():
                reason = "read:empty_text"
            elif self.spec.max_doc_chars is not None and len(text) > self.spec.max_doc_chars:
                reason = "read:too_long"
        if not isinstance(text, str):
            text = "" if text is None else json.dumps(text, ensure_ascii=False)
        if doc_id is None:
            doc_id = f"{self.shard.name}/{row}"
        elif not isinstance(doc_id, str):  # 7 -> "7", true -> "true", {"a": 1} -> '{"a": 1}'
            doc_id = json.dumps(doc_id, ensure_ascii=False)
        self.ids.append(doc_id)
        self.texts.append(text)
        self.reasons.append(reason)
        self.extras.append(extra)

    def extend(self, other: _Rows) -> None:
        """Append ``other``'s rows (their ids already made)."""
        self.ids += other.ids
        self.texts += other.texts
        self.reasons += other.reasons
        self.extras += other.extras

    def flush(self) -> pa.Table:
        names: dict[str, None] = {}
        for extra in self.extras:
            names.update(dict.fromkeys(extra))
        columns = {
            ID: pa.array(self.ids, pa.string()),
            TEXT: pa.array(self.texts, pa.large_string()),
            DROP_REASON: pa.array(self.reasons, pa.string()),
        }
        for name in names:
            columns[name] = _column([extra.get(name) for extra in self.extras])
        self.ids, self.texts, self.reasons, self.extras = [], [], [], []
        return conform(pa.table(columns))


def _column(values: list[Any]) -> pa.Array:
    """An Arrow array of ``values``; values of mixed types become their JSON text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array(
            [None if v is None else json.dumps(v, ensure_ascii=False) for v in values],
            pa.string(),
        )


def _passthrough_name(key: str) -> str:
    """Input fields that clash with the contract's columns are kept as ``source_<name>``."""
    return f"source_{key}" if key in RESERVED else key


def _passed_columns(table: pa.Table, spec: InputSpec) -> list[str]:
    """The columns of ``table`` carried through: all but the text and id fields, and but
    a ``drop_reason`` that is null on every row (a run's own ``kept/`` output read again:
    it records no reason, so it is not carried as ``source_drop_reason``, and a run over a
    run's output over a run's output reads as the first did)."""
    return [
        name
        for name in table.column_names
        if name not in (spec.text_field, spec.id_field)
        and not (name == DROP_REASON and table[name].null_count == table.num_rows)
    ]


def _renames_clash(names: Iterable[str]) -> str | None:
    """A reserved field name that ``names`` holds both as is and as ``source_<name>``."""
    present = set(names)
    return next((n for n in RESERVED if n in present and f"source_{n}" in present), None)


def _check_renames(names: Iterable[str], shard: InputShard, where: str) -> None:
    """Raise when a field kept as ``source_<name>`` would merge with one already so named."""
    if (name := _renames_clash(names)) is not None:
        raise InputError(
            f"{shard.url}: fields {name!r} and 'source_{name}' both occur ({where}); "
            f"{name!r} is kept as 'source_{name}' because the engine owns {name!r}, so the "
            "two would be merged: rename one of them upstream"
        )


# --------------------------------------------------------------------------- JSONL


def read_jsonl(
    shard: InputShard, spec: InputSpec, into: _UnitBatches | None = None
) -> Iterator[pa.Table]:
    """JSON Lines, optionally compressed (gz, zst, bz2, xz by extension).

    The file is cut into blocks of ``batch_rows`` lines (a batch holds fewer rows when
    some lines are blank). Each block is first parsed whole by pyarrow's JSON reader;
    when that result provably equals what the line-by-line path builds (see
    ``_fast_jsonl_batch``), it is the batch. Otherwise, and always for a block with a bad
    line, every line is parsed on its own with orjson, so a bad line is one dropped row.
    Both paths give the same rows, columns, types and drop reasons.

    A ``.json`` file that is one JSON value is parsed whole (at most
    ``_JSON_ARRAY_MAX_BYTES``) and read as JSON lines of its records: an array's
    elements, one row each, in order; an object pretty-printed over lines as one row;
    records wrapped in an object (``{"data": [{...}, ...]}``) as those records (see
    ``_whole_json_as_lines``). A ``.json`` file whose first line is a whole object with
    more after it, one that is no single value, and every ``.jsonl`` or ``.ndjson`` file
    are read line by line as above.

    A piece of a file (``shard.byte_range``, see ``stream_pieces``) is read as JSON
    lines, its rows numbered from ``shard.first_row``; a piece of a gzip'd file enters
    the stream by the file's seek index (``shard.gzip_index``). A file whose first batch
    has no line with the text field is an error (the wrong ``--text-field``, most
    likely); that batch is the first piece's, so only that piece checks: a later piece
    whose lines lack the field gives the rows the whole file gives, dropped as
    ``read:missing_text_field``.

    A file of a unit hands its batches to the unit's ``into``, which joins them with the
    other files' and yields the batches that makes.
    """
    piece = shard.byte_range
    state = _JsonlState(check_text_field=piece is None or piece[0] == 0)
    rows_read = shard.first_row
    blocks = _LineBlocks(spec.batch_rows)
    try:
        with open_chunks(shard.url) if piece is None else _piece_chunks(shard) as chunks:
            if piece is None and name_stem(shard.url).endswith(".json"):
                chunks = _whole_json_as_lines(chunks, shard, spec)
            for block, newlines in blocks.cut(chunks):
                rows = _nonblank_lines(block, newlines)
                if rows:
                    batch = _jsonl_batch(block, rows, rows_read, shard, spec, state)
                    if into is None:
                        yield batch if isinstance(batch, pa.Table) else batch.flush()
                    elif isinstance(batch, pa.Table):
                        yield from into.table(batch)
                    else:
                        yield from into.rows(batch)
                rows_read += rows
    except _STREAM_ERRORS as err:
        line = shard.first_line + blocks.lines_read
        where = f"line {line + 1}" if line else "its start"
        raise _corrupt(shard, where, err) from None
    _check_text_field(shard, spec, state)


def _changed_piece(shard: InputShard, problem: str) -> InputError:
    return InputError(
        f"{shard.label}: {problem}, so it changed after the run was planned: run the "
        "command again with --overwrite"
    )


@contextlib.contextmanager
def _piece_chunks(shard: InputShard) -> Iterator[Iterable[bytes]]:
    """The bytes of a piece of a local file (``shard.byte_range``) in chunks, after
    checking that the file still has whole lines where the piece begins and ends."""
    assert shard.byte_range is not None
    if shard.gzip_index is not None:
        with _gzip_piece_chunks(shard) as chunks:
            yield chunks
        return
    if shard.zstd_frame is not None:
        with _zstd_piece_chunks(shard) as chunks:
            yield chunks
        return
    start, stop = shard.byte_range
    with open(shard.url, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        before = os.pread(handle.fileno(), 1, start - 1) if start else b"\n"
        last = os.pread(handle.fileno(), 1, stop - 1) if stop < size else b"\n"
        if size < stop or before != b"\n" or last != b"\n":
            raise _changed_piece(
                shard,
                f"the file is now {size:,} bytes and has no line break where this piece of "
                "it begins or ends",
            )
        handle.seek(start)
        window = _ByteWindow(handle, stop - start)
        yield iter(lambda: window.read(_CHUNK_BYTES), b"")


class _ByteWindow:
    """Reads of an open file that stop ``left`` bytes on from where it stands."""

    def __init__(self, handle: Any, left: int) -> None:
        self.handle = handle
        self.left = left

    def read(self, size: int) -> bytes:
        data = self.handle.read(min(size, self.left))
        self.left -= len(data)
        return data


@contextlib.contextmanager
def _gzip_piece_chunks(shard: InputShard) -> Iterator[Iterable[bytes]]:
    """The decompressed bytes of a piece of a gzip'd file in chunks, the stream entered
    at the piece by the file's seek index (rapidgzip, one thread): only the few MiB
    between the index point before the piece and its start are decompressed and passed
    over. The file must still have whole lines where the piece begins, and end there or
    go on past it; otherwise it changed after the run was planned (an error that says
    so)."""
    import rapidgzip

    assert shard.byte_range is not None and shard.gzip_index is not None
    start, stop = shard.byte_range
    if not os.path.exists(shard.gzip_index):
        raise InputError(
            f"{shard.label}: the seek index its run wrote for it, {shard.gzip_index}, is "
            "gone: run the command again (the run writes it again), and keep the output "
            "folder's _work/ where every worker sees it"
        )
    unfit = "the file does not fit the seek index the run wrote for it"
    try:
        stream = rapidgzip.open(shard.url, parallelization=1)
    except (RuntimeError, ValueError) as err:  # what rapidgzip raises on a bad stream
        raise _changed_piece(shard, f"{unfit} ({err})") from None
    with stream:
        try:
            stream.import_index(shard.gzip_index)
            before = b"\n"
            if start:
                stream.seek(start - 1)
                before = stream.read(1)
        except (RuntimeError, ValueError) as err:
            raise _changed_piece(shard, f"{unfit} ({err})") from None
        if before != b"\n":
            raise _changed_piece(shard, _NO_LINE_BREAK)
        yield _decompressed_piece(shard, stream, stop - start)


_NO_LINE_BREAK = "its decompressed bytes have no line break where this piece of them begins or ends"


def _decompressed_piece(shard: InputShard, stream: Any, length: int) -> Iterator[bytes]:
    """The next ``length`` bytes of ``stream`` (a file-like decompressed stream) in chunks:
    the rest of a piece of a compressed file (``shard``) whose start was checked. The
    piece must end with a line break or at the end of the stream; otherwise the file
    changed after the run was planned (an error that says so). A damaged stream raises
    ``OSError`` (rapidgzip's errors are turned into one)."""
    window = _ByteWindow(stream, length)
    last = b"\n"
    try:
        for last in iter(lambda: window.read(_CHUNK_BYTES), b""):
            yield last
        ended = window.left == 0 and (last.endswith(b"\n") or not stream.read(1))
    except (RuntimeError, ValueError) as err:  # rapidgzip on a damaged stream
        raise OSError(str(err)) from None
    if not ended:
        raise _changed_piece(shard, _NO_LINE_BREAK)


@contextlib.contextmanager
def _zstd_piece_chunks(shard: InputShard) -> Iterator[Iterable[bytes]]:
    """The decompressed bytes of a piece of a zstd'd file in chunks: the file is
    decompressed from the start of the frame that holds the piece's start
    (``shard.zstd_frame``), and what lies before the piece is passed over. The file must
    still begin a frame there and have whole lines where the piece begins, and end there
    or go on past it; otherwise it changed after the run was planned (an error that says
    so)."""
    assert shard.byte_range is not None and shard.zstd_frame is not None
    start, stop = shard.byte_range
    disk, first = shard.zstd_frame
    with open(shard.url, "rb") as raw:
        raw.seek(disk)
        if raw.read(4) not in _ZSTD_MAGICS:
            raise _changed_piece(
                shard, f"no zstd frame begins at byte {disk:,} of the file, where the run found one"
            )
        raw.seek(disk)
        stream = _ChunkFile(_zstd_chunks(raw))
        try:
            passed = _pass_over(stream, start - first - 1) if start > first else 0
            before = stream.read(1) if start > first else b"\n"
        except _STREAM_ERRORS as err:
            raise _changed_piece(
                shard, f"its bytes before this piece no longer decompress ({err})"
            ) from None
        if before != b"\n" or passed < start - first - 1:
            raise _changed_piece(shard, _NO_LINE_BREAK)
        yield _decompressed_piece(shard, stream, stop - start)


# the first four bytes of a zstd frame, and of a skippable frame (of any of its 16 kinds)
_ZSTD_MAGICS = {b"\x28\xb5\x2f\xfd"} | {bytes([0x50 + k, 0x2A, 0x4D, 0x18]) for k in range(16)}


def _pass_over(stream: Any, count: int) -> int:
    """Read and drop ``count`` bytes of ``stream``; how many there were (fewer at its end)."""
    left = count
    while left > 0 and (data := stream.read(min(left, _CHUNK_BYTES))):
        left -= len(data)
    return count - left


def stream_pieces(
    files: list[InputShard], target: int, block_lines: int, index_folder: str | None = None
) -> list[list[LinePiece]]:
    """Each local JSONL file's pieces of whole blocks of ``block_lines`` lines
    (``InputSpec.batch_rows``), each at least ``target`` bytes on disk (see
    ``line_pieces``); no pieces for a file that cannot be read, for a ``.json`` file that
    is not JSON lines (its first line no whole object), or for a compressed file other
    than a gzip'd one with ``index_folder``, where its seek index is written (see
    ``_gzip_line_pieces``), or a zstd'd one, whose pieces come with the frames they enter at
    (see ``_zstd_line_pieces``; their record is kept in ``index_folder`` when given).
    Each WARC file's pieces of whole blocks of ``block_lines`` documents (see
    ``warc_record_pieces``). A few files are read at a time, each once from start to
    end."""
    if not files:
        return []

    def pieces(file: InputShard) -> list[LinePiece]:
        if file.format == "warc":
            return warc_record_pieces(file, target, block_lines)
        if file.zstd:
            record = zstd_record(index_folder, file) if index_folder else None
            return _zstd_line_pieces(file, target, block_lines, record)
        if not file.gzipped:
            return _line_pieces_of(file, target, block_lines)
        if index_folder is None:
            return []
        return _gzip_line_pieces(file, target, block_lines, gzip_index(index_folder, file))

    with ThreadPoolExecutor(max_workers=min(4, len(files))) as pool:
        return list(pool.map(pieces, files))


def _line_pieces_of(file: InputShard, target: int, block_lines: int) -> list[LinePiece]:
    try:
        with open(file.url, "rb") as handle:
            chunks = iter(lambda: handle.read(_CHUNK_BYTES), b"")
            return _json_line_pieces(chunks, file.url, target, block_lines)
    except OSError:
        return []  # its reader says what is wrong


def _json_line_pieces(
    chunks: Iterator[bytes], url: str, target: int, block_lines: int
) -> list[LinePiece]:
    """``line_pieces`` of the bytes of the file ``url``; none for a ``.json`` file that is
    not JSON lines."""
    if not name_stem(url).endswith(".json"):
        return line_pieces(chunks, target, block_lines)
    # JSON lines only if the first line is a whole object and more lines follow (see
    # ``_whole_json_as_lines``), not one value
    first = next(chunks, b"")
    start = _json_start(first)
    end = first.find(b"\n", start)
    if end < 0 or not _is_json_object(first[start:end]):
        return []  # one JSON value, or a first line longer than a chunk
    pieces = line_pieces(itertools.chain([first], chunks), target, block_lines)
    return pieces if pieces and pieces[1][2] >= 2 else []


def _gzip_line_pieces(
    file: InputShard, target: int, block_lines: int, index: str
) -> list[LinePiece]:
    """The pieces of the gzip'd JSONL ``file`` (see ``line_pieces``), by offsets into its
    decompressed bytes, each about ``target`` bytes of the file on disk (the file's
    compression ratio scales the target); its seek index is written to ``index``.

    The lines are counted on the bytes the reader itself decompresses (ISA-L, which
    checks every member's length and CRC and fails on a truncated or damaged stream, as
    reading the file whole would), while rapidgzip, on a thread beside it, decompresses
    the file too and writes the index (a 32 KiB window every few MiB of the file, about
    2% of its size), by which a worker enters the stream at its piece. The blocks' starts
    are kept beside the index (``<index>.json``), so that a run that goes on finds the
    pieces without decompressing the file again. No pieces when either cannot read the
    file to its end or they disagree on its length: the file is then read whole, and its
    reader says what is wrong."""
    blocks = _gzip_blocks(file, block_lines, index)
    if not blocks:
        return []
    return _joined(blocks, _decompressed_target(file, blocks, target))


def _decompressed_target(file: InputShard, blocks: list[LinePiece], target: int) -> int:
    """The decompressed bytes that hold about ``target`` bytes of the compressed ``file``
    on disk, whose ``blocks`` end where its decompressed bytes do."""
    total = blocks[-1][1]
    return max(1, target * total // max(1, file.size or total))


def _gzip_blocks(file: InputShard, block_lines: int, index: str) -> list[LinePiece]:
    """The blocks of ``block_lines`` lines of the gzip'd ``file``, each as a piece (see
    ``_gzip_line_pieces``), found again from ``<index>.json`` when that was written for
    this ``block_lines``; [] when the file cannot be cut."""
    final = Path(index)
    record = final.with_name(f"{final.name}.json")
    if final.exists() and record.exists():
        kept = orjson.loads(record.read_bytes())
        if kept.get("block_lines") == block_lines:
            return [tuple(block) for block in kept["blocks"]]
    final.parent.mkdir(parents=True, exist_ok=True)
    written = tmp_path(final)
    indexed: dict[str, Any] = {}
    indexer = threading.Thread(target=_write_gzip_index, args=(file.url, str(written), indexed))
    indexer.start()
    try:
        with open(file.url, "rb") as raw:
            blocks = _json_line_pieces(_gzip_chunks(raw), file.url, 1, block_lines)
    except _STREAM_ERRORS:
        blocks = []  # its reader says what is wrong
    finally:
        indexer.join()
    if not blocks or indexed.get("size") != blocks[-1][1]:
        written.unlink(missing_ok=True)
        return []
    os.replace(written, final)
    kept = {"block_lines": block_lines, "blocks": blocks}
    write_atomic_bytes(record, orjson.dumps(kept), durable=False)
    return blocks


# All the workers reading the pieces of a zstd'd file together decompress and pass over
# at most this many times the file's decompressed bytes (one frame: at most 9 pieces), at
# about 1 GB/s a core, against the few to tens of MB/s that stages take a core.
ZSTD_PASSED_OVER = 4


def zstd_record(index_folder: str, file: InputShard) -> str:
    """Where the blocks and frames of the zstd'd ``file`` are kept in ``index_folder``
    (see ``_zstd_blocks``): named by the file's key, so by its path and version."""
    return os.path.join(index_folder, f"{file.key}.zstd.json")


def _zstd_line_pieces(
    file: InputShard, target: int, block_lines: int, record: str | None
) -> list[LinePiece]:
    """The pieces of the zstd'd JSONL ``file`` (see ``line_pieces``), by offsets into its
    decompressed bytes, each with the frame its reader enters at: the last frame that
    begins at or before the piece (its byte on disk, its first decompressed byte).

    A piece holds about ``target`` bytes of the file on disk (the compression ratio
    scales the target), and more where that would make the workers pass over more than
    ``ZSTD_PASSED_OVER`` times the file's decompressed bytes in all: a zstd frame cannot
    be entered in the middle, so the reader of a piece decompresses its frame from the
    start. A file of many frames (``pzstd``, the seekable format) is cut as the target
    says; one frame of ``n`` bytes costs ``n * (pieces - 1) / 2``, so it makes at most
    ``2 * ZSTD_PASSED_OVER + 1`` pieces. No pieces when the file cannot be read to its
    end: it is then read whole, and its reader says what is wrong."""
    found = _zstd_blocks(file, block_lines, record)
    if found is None:
        return []
    blocks, frames = found
    total = blocks[-1][1]  # decompressed bytes
    wanted = _decompressed_target(file, blocks, target)
    frame_of = {block[0]: frame for block, frame in zip(blocks, frames, strict=True)}
    while True:
        pieces = _joined(blocks, wanted)  # each begins where a block does
        entered = [frame_of[p[0]] for p in pieces]
        passed = sum(p[0] - first for p, (_, first) in zip(pieces, entered, strict=True))
        if passed <= ZSTD_PASSED_OVER * total:
            return [(*p, disk, first) for p, (disk, first) in zip(pieces, entered, strict=True)]
        wanted += max(1, wanted // 4)


def _zstd_blocks(
    file: InputShard, block_lines: int, record: str | None
) -> tuple[list[LinePiece], list[tuple[int, int]]] | None:
    """The blocks of ``block_lines`` lines of the zstd'd ``file``, each as a piece (see
    ``line_pieces``), and for each block where the frame it begins in begins (on disk,
    decompressed); found again from ``record`` when that was written for this
    ``block_lines``, and written there otherwise. None when the file cannot be cut
    (unreadable, truncated, damaged, not JSON lines)."""
    if record is not None and os.path.exists(record):
        kept = orjson.loads(Path(record).read_bytes())
        if kept.get("block_lines") == block_lines and "block_frames" in kept:
            return [tuple(b) for b in kept["blocks"]], [tuple(f) for f in kept["block_frames"]]
    frames: list[tuple[int, int]] = []
    try:
        with open(file.url, "rb") as raw:
            blocks = _json_line_pieces(_zstd_chunks(raw, frames=frames), file.url, 1, block_lines)
    except _STREAM_ERRORS:
        return None  # its reader says what is wrong
    if not blocks:
        return None
    starts = [first for _, first in frames]
    entered = [frames[bisect.bisect_right(starts, block[0]) - 1] for block in blocks]
    if record is not None:
        kept = {"block_lines": block_lines, "blocks": blocks, "block_frames": entered}
        Path(record).parent.mkdir(parents=True, exist_ok=True)
        write_atomic_bytes(Path(record), orjson.dumps(kept), durable=False)
    return blocks, entered


def _write_gzip_index(url: str, path: str, out: dict[str, Any]) -> None:
    """rapidgzip's seek index of the gzip file ``url``, written to ``path``; ``out`` gets
    the decompressed ``size``, or nothing when rapidgzip cannot read the file."""
    import rapidgzip

    try:
        with rapidgzip.open(url, parallelization=1) as stream:
            size = stream.seek(0, io.SEEK_END)  # decompresses it all, indexing as it goes
            stream.export_index(path)
    except (RuntimeError, ValueError, OSError):  # what rapidgzip raises on a bad stream
        return
    out["size"] = size


def _joined(blocks: list[LinePiece], target: int) -> list[LinePiece]:
    """Consecutive ``blocks`` joined into pieces of at least ``target`` bytes each (a rest
    below that joins the last piece); none when that makes fewer than two."""
    pieces: list[LinePiece] = []
    first = 0  # the block the open piece begins with
    for index, (_, stop, _, _) in enumerate(blocks):
        start, _, rows, lines = blocks[first]
        if stop - start >= target:
            pieces.append((start, stop, rows, lines))
            first = index + 1
    if first < len(blocks) and pieces:  # the rest joins the last piece
        start, _, rows, lines = pieces.pop()
        pieces.append((start, blocks[-1][1], rows, lines))
    return pieces if len(pieces) >= 2 else []


def line_pieces(chunks: Iterable[bytes], target: int, block_lines: int = 1) -> list[LinePiece]:
    """The pieces of whole lines that the bytes of ``chunks`` cut into: each begins at the
    start or after a multiple of ``block_lines`` lines and holds at least ``target``
    bytes (a rest below that joins the last piece); none when that makes fewer than two.
    Each piece is (first byte, one past its last, non-blank lines before it, lines
    before it): what the JSONL reader numbers rows and lines from (a line is blank by
    ``bytes.strip``). With ``block_lines`` the reader's batch size, a piece's batches
    are the whole file's, so the rows come out in the same order (a batch's dropped rows
    are written stage by stage)."""
    starts = [(0, 0, 0)]  # byte, rows before, lines before
    pos = rows = lines = 0
    open_has_text = False  # the line not yet ended holds more than whitespace
    for chunk in chunks:
        data = np.frombuffer(chunk, np.uint8)
        ends = np.flatnonzero(data == _NEWLINE)
        if len(ends):
            begins = np.concatenate(([0], ends[:-1] + 1))
            blank = _blank_lines(chunk, data, begins, ends)
            if blank[:1] == [0] and open_has_text:  # the first line began in a chunk before
                blank.pop(0)
            while True:  # the next cut: the first block start at least target past the last
                k = int(np.searchsorted(ends, starts[-1][0] + target - 1 - pos))
                k += -(lines + k + 1) % block_lines  # on to the end of a block
                if k >= len(ends):
                    break
                # lines 0..k of this chunk lie before the cut
                blanks = bisect.bisect_right(blank, k)
                starts.append((pos + int(ends[k]) + 1, rows + k + 1 - blanks, lines + k + 1))
            rows += len(ends) - len(blank)
            lines += len(ends)
            tail = int(ends[-1]) + 1
            open_has_text = _LEADING_BLANKS.match(chunk, tail).end() < len(chunk)  # type: ignore[union-attr]
        else:
            open_has_text = open_has_text or _LEADING_BLANKS.match(chunk).end() < len(chunk)  # type: ignore[union-attr]
        pos += len(chunk)
    if starts[-1][0] >= pos:  # a cut at the very end begins nothing
        starts.pop()
    if len(starts) > 1 and pos - starts[-1][0] < target:
        starts.pop()  # the rest joins the piece before it
    if len(starts) < 2:
        return []
    stops = [s[0] for s in starts[1:]] + [pos]
    return [(b, stop, r, n) for (b, r, n), stop in zip(starts, stops, strict=True)]


_JSON_ARRAY_MAX_BYTES = 2 << 30
_BOM = b"\xef\xbb\xbf"
_LEADING_BLANKS = re.compile(rb"[ \t\r\n\x0b\x0c]*")


def _whole_json_as_lines(
    chunks: Iterable[bytes], shard: InputShard, spec: InputSpec
) -> Iterator[bytes]:
    """``chunks`` as they are (JSON Lines), unless together they are one JSON value:

    - one array: its elements as JSON lines, ``spec.batch_rows`` of them a chunk;
    - one object (pretty-printed over lines, or alone on its one line): one line, the
      object, unless it lacks the text field and exactly one of its fields holds a list
      of objects (``{"data": [{...}, ...]}``): then that list's elements, as for an array.

    A file is taken for JSON Lines as soon as its first line is a whole JSON object and
    more follows it; a file that is none of these (a damaged one) is passed on as it is,
    so the line path names its bad lines."""
    chunks = iter(chunks)
    held: list[bytes] = []
    for chunk in chunks:
        held.append(chunk)
        if (start := _json_start(chunk)) < len(chunk):
            break
    else:
        yield from held
        return
    opener = held[-1][start : start + 1]
    if opener == b"{":
        first_line, more = _first_line(held, chunks, start)
        if more and _is_json_object(first_line):
            yield from held
            yield from chunks
            return
    elif opener != b"[":
        yield from held
        yield from chunks
        return
    size = sum(map(len, held))
    for chunk in chunks:
        size += len(chunk)
        if size > _JSON_ARRAY_MAX_BYTES:
            if opener == b"{":  # JSON lines whose first line is damaged, most likely
                yield from held
                yield chunk
                yield from chunks
                return
            raise InputError(
                f"{shard.url}: starts with '[' and holds over {_JSON_ARRAY_MAX_BYTES >> 30} GiB; "
                "a JSON array is read whole, so one this large is not read: convert it to "
                "JSON Lines (one object a line), e.g. with jq -c '.[]'"
            )
        held.append(chunk)
    data = b"".join(held)
    del held
    body = memoryview(data)[_json_start(data) :]  # not a copy of up to 2 GiB
    dump: Callable[[Any], bytes] = orjson.dumps
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # integers past 64 bits, NaN, lone surrogates: what orjson refuses
            value = json.loads(bytes(body))
        except ValueError:  # not one value: JSON lines that hold arrays, or damage
            body.release()
            yield data
            return
        # written back as JSON, so the line path refuses those elements as it would lines
        dump = lambda value: json.dumps(value).encode()  # noqa: E731
    body.release()
    del data
    if isinstance(value, dict):
        value = _wrapped_records(value, spec.text_field)
    rows = spec.batch_rows
    for first in range(0, len(value), rows):
        yield b"".join(dump(element) + b"\n" for element in value[first : first + rows])


def _first_line(held: list[bytes], chunks: Iterator[bytes], start: int) -> tuple[bytes, bool]:
    """The line that begins at ``start`` of ``held[-1]``, reading on from ``chunks`` into
    ``held`` until its newline, and whether anything but blanks follows it. Each chunk
    is searched once (a long line costs its length, not its length squared)."""
    pieces = [held[-1][start:]]
    while (end := pieces[-1].find(b"\n")) < 0:
        chunk = next(chunks, None)
        if chunk is None:
            return b"".join(pieces), False
        held.append(chunk)
        pieces.append(chunk)
    line = b"".join([*pieces[:-1], pieces[-1][:end]])
    rest = pieces[-1][end + 1 :]
    while _json_start(rest) == len(rest):  # only blanks so far: is there more?
        chunk = next(chunks, None)
        if chunk is None:
            return line, False
        held.append(chunk)
        rest = chunk
    return line, True


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _wrapped_records(value: dict, text_field: str) -> list:
    """``[value]``, or the records of ``{"data": [{...}, ...]}``: when ``value`` lacks
    ``text_field`` and exactly one of its fields is a non-empty list of objects, that
    list."""
    if text_field in value:
        return [value]
    lists = [
        v
        for v in value.values()
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
    ]
    return lists[0] if len(lists) == 1 else [value]


def _json_start(data: bytes) -> int:
    """Where JSON text begins in ``data``: past leading blanks and a byte order mark
    (``len(data)`` when there is nothing else)."""
    start = _LEADING_BLANKS.match(data).end()  # type: ignore[union-attr]
    if data.startswith(_BOM, start):
        start = _LEADING_BLANKS.match(data, start + len(_BOM)).end()  # type: ignore[union-attr]
    return start


_NEWLINE = 10
# bytes.strip()'s whitespace: a line that starts with none of these is not blank
_STARTS_BLANK = np.zeros(256, dtype=bool)
_STARTS_BLANK[list(b" \t\n\r\x0b\x0c")] = True


class _LineBlocks:
    """Cuts a byte stream into blocks of ``lines`` whole lines, newlines kept, each with
    the offsets of its newlines; the last block may hold fewer lines, and its last line
    may have no newline. When the stream raises, the whole lines before the error come
    as one last block before it. ``lines_read`` counts the whole lines seen, for error
    messages."""

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.lines_read = 0

    def cut(self, chunks: Iterable[bytes]) -> Iterator[tuple[bytes, np.ndarray]]:
        pieces: list[bytes] = []  # the current block's pieces ...
        newlines: list[np.ndarray] = []  # ... their newlines' offsets in the block
        size = count = 0  # their bytes and newlines
        try:
            for chunk in chunks:
                ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == _NEWLINE)
                self.lines_read += len(ends)
                start = first = 0  # byte and newline index where the unassigned part begins
                while (close := first + self.lines - count - 1) < len(ends):
                    end = int(ends[close]) + 1
                    pieces.append(chunk[start:end])
                    newlines.append(ends[first : close + 1] - (start - size))
                    block = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    yield block, np.concatenate(newlines) if len(newlines) > 1 else newlines[0]
                    pieces, newlines, size, count = [], [], 0, 0
                    start, first = end, close + 1
                if start < len(chunk):
                    pieces.append(chunk[start:])
                    newlines.append(ends[first:] - (start - size))
                    size += len(chunk) - start
                    count += len(ends) - first
        except Exception:
            # the stream broke (a truncated or damaged file): hand over the whole lines
            # read so far, then the error; the broken last line is the damage itself
            if count:
                whole = np.concatenate(newlines)
                yield b"".join(pieces)[: int(whole[-1]) + 1], whole
            raise
        if pieces:
            yield b"".join(pieces), np.concatenate(newlines)


def _nonblank_lines(block: bytes, newlines: np.ndarray) -> int:
    """How many lines of ``block`` hold more than whitespace (``bytes.strip`` rules),
    given the offsets of its newlines."""
    if len(newlines) < _FEW_ROWS:  # numpy's calls cost more than a split of a few lines
        return len(_block_lines(block))
    data = np.frombuffer(block, np.uint8)
    # the first line, and those after a newline that is not the block's last byte
    begins = np.concatenate(([0], newlines[newlines < len(block) - 1] + 1))
    ends = np.append(newlines, len(block))[: len(begins)]
    return len(begins) - len(_blank_lines(block, data, begins, ends))


def _blank_lines(block: bytes, data: np.ndarray, begins: np.ndarray, ends: np.ndarray) -> list[int]:
    """The indices of the lines ``block[begins[i]:ends[i]]`` (``data``: its bytes) that
    hold only whitespace (``bytes.strip`` rules); only those that begin with whitespace
    are looked at, so the cost is theirs."""
    maybe = np.flatnonzero(_STARTS_BLANK[data[begins]]).tolist()
    return [i for i in maybe if not block[begins[i] : ends[i]].strip()]


def _block_lines(block: bytes) -> list[bytes]:
    """The non-blank lines of ``block``, without their newline."""
    return [line for line in block.split(b"\n") if line.strip()]


class _JsonlState:
    """What the JSONL reader carries from one batch of a file to the next."""

    def __init__(self, check_text_field: bool = True) -> None:
        # whether to raise when no line so far has the text field (see ``read_jsonl``)
        self.check_text_field = check_text_field
        self.seen_text_field = False
        self.first_keys: list[str] | None = None
        # Top-level fields that pyarrow would read as timestamps; they are parsed as text.
        self.as_text: dict[str, None] = {}
        # Every field passed through so far, to catch `x` and `source_x` in one file.
        self.fields: set[str] = set()
        # Whether the file's first line was looked at for date-like fields.
        self.sniffed = False


_FEW_ROWS = 128


def _jsonl_batch(
    block: bytes, rows: int, first_row: int, shard: InputShard, spec: InputSpec, state: _JsonlState
) -> pa.Table | _Rows:
    """The batch of ``block``'s ``rows`` non-blank lines, the first being row ``first_row``:
    pyarrow's table, or the line path's rows (not yet a table, so that a unit can gather
    the rows of many small files into one). A block of fewer than ``_FEW_ROWS`` lines
    goes to the line path at once: pyarrow's reader costs about half a millisecond a call
    whatever the block, which the line path beats below a few hundred lines of C4 (a
    small file's only block, or a file's last)."""
    table = None
    if rows >= _FEW_ROWS:
        table = _fast_jsonl_batch(block, rows, first_row, shard, spec, state)
    if table is not None:
        state.seen_text_field = True
        return table
    batch = _Rows(shard, spec)
    for offset, raw in enumerate(_block_lines(block)):
        obj, reason = _parse_json_line(raw)
        row = first_row + offset
        if not isinstance(obj, dict):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            batch.add(row, None, text, reason or "read:invalid_json", {})
            continue
        if state.first_keys is None:
            state.first_keys = list(obj)
        state.seen_text_field |= spec.text_field in obj
        doc_id = obj.pop(spec.id_field, None)
        if spec.text_field in obj:
            text = obj.pop(spec.text_field)
        else:
            text, reason = "", reason or "read:missing_text_field"
        if DROP_REASON in obj and obj[DROP_REASON] is None:
            del obj[DROP_REASON]  # as _passed_columns: a batch of these has no such column
        known = len(state.fields)
        state.fields.update(obj)
        if len(state.fields) != known:
            _check_renames(state.fields, shard, f"the second by row {row}")
        extra = {_passthrough_name(k): v for k, v in obj.items()}
        batch.add(row, doc_id, text, reason, extra)
    _check_text_field(shard, spec, state)
    return batch


def _fast_jsonl_batch(
    block: bytes, rows: int, first_row: int, shard: InputShard, spec: InputSpec, state: _JsonlState
) -> pa.Table | None:
    """The batch from one pyarrow parse, or None when it might differ from the line path.

    pyarrow's reader accepts things orjson does not (``NaN``, two objects on one line, a
    byte order mark, invalid UTF-8 it does not check) and reads some values differently
    (ISO dates as timestamps, integers past int64 as doubles, mixed types as an error).
    Each difference either sends the batch to the line path or is undone here.
    """
    start = _LEADING_BLANKS.match(block).end()  # type: ignore[union-attr]
    if block[start : start + 1] != b"{":
        # a byte order mark, or a first line that is no object: the line path decides,
        # and pyarrow 26's reader crashes the process on a block that begins with null
        return None
    if not state.sniffed:  # dates named before the first parse, so it is the only one
        state.sniffed = True
        state.as_text.update(dict.fromkeys(_date_like_fields(block, start)))
    try:
        table = _parse_block(block, state.as_text)
        stamped = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
        if stamped:
            state.as_text.update(dict.fromkeys(stamped))
            table = _parse_block(block, state.as_text)
        table.validate(full=True)  # checks UTF-8
    except pa.ArrowException:  # refused (or too big for one parse): the line path decides
        return None
    if table.num_rows != rows or not all(_plain_type(f.type) for f in table.schema):
        return None
    present = set(table.column_names)
    if any(table[name].null_count == len(table) for name in state.as_text if name in present):
        return None  # all null: absent from the batch or null everywhere? Only lines tell.
    if not all(_finite_and_int64_safe(table[name]) for name in table.column_names):
        return None
    if state.as_text:  # explicit fields come first; restore the order of appearance
        order = _first_keys(block)
        if order is None or set(order) != set(table.column_names):
            return None
        table = table.select(order)
    if spec.text_field not in table.column_names:
        return None
    text = table[spec.text_field]
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        return None
    if text.null_count:
        return None
    if spec.id_field not in table.column_names or pa.types.is_null(table[spec.id_field].type):
        ids = _generated_ids(shard.name, first_row, len(table))
    elif pa.types.is_string(table[spec.id_field].type) or pa.types.is_int64(
        table[spec.id_field].type
    ):
        ids = table[spec.id_field].cast(pa.string())
        if ids.null_count:
            ids = pc.coalesce(ids, _generated_ids(shard.name, first_row, len(table)))
    else:
        return None  # str() of a double or a bool is not Arrow's cast
    extras = _passed_columns(table, spec)
    if _renames_clash([*state.fields, *extras]) is not None:
        return None  # the line path names the row
    state.fields.update(extras)
    renamed = [_passthrough_name(name) for name in extras]
    reasons = _vector_reasons(text, pa.nulls(len(table), pa.string()), spec)
    columns = {ID: ids, TEXT: text, DROP_REASON: reasons}
    columns.update(zip(renamed, (table[name] for name in extras), strict=True))
    return conform(pa.table(columns))


def _first_keys(block: bytes) -> list[str] | None:
    """The keys of the first non-blank line's object, in order (None if it is not one)."""
    start = 0
    while True:
        end = block.find(b"\n", start)
        line = block[start : None if end < 0 else end]
        if line.strip() or end < 0:
            break
        start = end + 1
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return list(obj) if isinstance(obj, dict) else None


_DATE_LIKE = re.compile(r"\d{4}-\d\d-\d\d")


def _date_like_fields(block: bytes, start: int) -> list[str]:
    """The top-level fields of the line at ``start`` whose value is a string that begins
    as an ISO 8601 date, which pyarrow's reader would make a timestamp (C4's ``date``,
    say). Naming them up front saves parsing the first block twice; one
    named needlessly reads the same, as a string."""
    end = block.find(b"\n", start)
    try:
        first = orjson.loads(block[start : end if end >= 0 else len(block)])
    except orjson.JSONDecodeError:
        return []
    if not isinstance(first, dict):
        return []
    return [k for k, v in first.items() if isinstance(v, str) and _DATE_LIKE.match(v)]


def _parse_block(block: bytes, as_text: dict[str, None]) -> pa.Table:
    parse = pajson.ParseOptions(
        explicit_schema=pa.schema([(name, pa.string()) for name in as_text]) if as_text else None,
        unexpected_field_behavior="infer",
    )
    read = pajson.ReadOptions(use_threads=False, block_size=len(block) + 1)
    return pajson.read_json(pa.BufferReader(block), read_options=read, parse_options=parse)


def _plain_type(kind: pa.DataType) -> bool:
    """No timestamp anywhere inside (nested ones are not undone: the line path reads them)."""
    if pa.types.is_timestamp(kind):
        return False
    return all(_plain_type(kind.field(i).type) for i in range(kind.num_fields))


def _finite_and_int64_safe(values: pa.ChunkedArray | pa.Array) -> bool:
    """False when a double anywhere inside is NaN, infinite (orjson rejects both) or so
    large that the JSON may have held an integer (which the line path keeps as text)."""
    kind = values.type
    if pa.types.is_floating(kind):
        bad = pc.or_(pc.invert(pc.is_finite(values)), pc.greater_equal(pc.abs(values), 2.0**63))
        return not pc.any(bad).as_py()
    if isinstance(values, pa.ChunkedArray):
        return all(_finite_and_int64_safe(chunk) for chunk in values.chunks)
    if pa.types.is_struct(kind):
        return all(_finite_and_int64_safe(values.field(i)) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _finite_and_int64_safe(values.flatten())
    return True


_CHUNK_BYTES = 16 << 20
_GZIP_PIECE_BYTES = 1 << 20
# what a damaged or truncated compressed stream raises
_STREAM_ERRORS = (EOFError, OSError, zlib.error, isal_zlib.error, zstandard.ZstdError)


@contextlib.contextmanager
def open_chunks(url: str) -> Iterator[Iterable[bytes]]:
    """A file's bytes in chunks, decompressed by its extension; truncation raises
    ``EOFError``."""
    # a local path is opened by the standard library: fsspec's resolution costs 0.05 ms
    # a file, which a folder of many small files pays many times over
    local = not is_url(url)
    opener = open if local else fsspec.open
    name = url.lower()
    if name.endswith((".zst", ".zstd")):
        with opener(url, "rb") as raw:
            yield _zstd_chunks(raw)
    elif name.endswith(".gz"):
        with opener(url, "rb") as raw:
            yield _gzip_chunks(raw)
    elif local and not name.endswith((".bz2", ".xz")):
        with open(url, "rb") as handle:
            yield iter(lambda: handle.read1(_CHUNK_BYTES), b"")
    else:
        with fsspec.open(url, "rb", compression="infer") as handle:
            # read1 hands over what one decompression step gave, so that the rows before
            # a truncation are read; read(n) would raise before returning any of its n
            read = getattr(handle, "read1", handle.read)
            yield iter(lambda: read(_CHUNK_BYTES), b"")


def _gzip_chunks(
    raw: BinaryIO,
    read_bytes: int = 1 << 16,
    piece_bytes: int = _GZIP_PIECE_BYTES,
    members: list[tuple[int, int]] | None = None,
) -> Iterator[bytes]:
    """The decompressed bytes of a gzip stream (members one after another, zero padding
    between them skipped, as the gzip module does) in pieces of at most ``piece_bytes``.
    ``members``, when given, gets where each member begins: (offset in the stream read
    from ``raw``, offset in the decompressed bytes).

    ISA-L's inflate (2.8x zlib's speed here) fed ``read_bytes`` of the file at a time, so
    that every byte that decompresses before a truncation or damage is handed over before
    the error is raised: ISA-L's file reader takes large bites and raises on a truncated
    bite without returning what it had inflated of it. Small bites also keep cheap the
    copy of the unread input that each member's end makes (a WARC file is a member per
    record: 256 KiB bites cost 15% more than 64 KiB ones on the WARC samples)."""
    member = isal_zlib.decompressobj(wbits=31)
    in_member = False
    pending = b""
    read = written = 0  # bytes read from raw, bytes handed over
    while True:
        if not pending:
            pending = raw.read(read_bytes)
            read += len(pending)
            if not pending:
                break
        if not in_member:
            pending = pending.lstrip(b"\0")
            if not pending:
                continue
            in_member = True
            if members is not None:
                members.append((read - len(pending), written))
        if out := member.decompress(pending, piece_bytes):
            written += len(out)
            yield out
        if member.eof:
            pending, in_member = member.unused_data, False
            member = isal_zlib.decompressobj(wbits=31)
        else:
            pending = member.unconsumed_tail
    if in_member:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")


class _ChunkFile(io.RawIOBase):
    """A read-only file over an iterator of byte chunks, for readers that want a file
    (FastWARC). Reads may be short, and a chunk that fits a read is handed over as it is,
    not copied; an error of the iterator is raised by the read that reaches it, after
    every byte before it was handed over."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""
        self._offset = 0  # into _pending
        self._position = 0  # bytes handed over

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:  # FastWARC asks where the stream is
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        while self._offset == len(self._pending):
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending, self._offset = chunk, 0
        # a slice that spans all of a bytes object is that object, not a copy
        out = self._pending[self._offset : self._offset + size]
        self._offset += len(out)
        self._position += len(out)
        return out

    def readinto(self, buffer: Any) -> int:
        out = self.read(len(buffer))
        buffer[: len(out)] = out
        return len(out)


def _zstd_chunks(
    raw: BinaryIO, chunk_size: int = 1 << 20, frames: list[tuple[int, int]] | None = None
) -> Iterator[bytes]:
    """The decompressed bytes of a zstd stream (frames one after another, skippable ones
    included) as each bite of ``chunk_size`` bytes of it gives them. ``frames``, when
    given, gets where each frame begins: (offset in the stream read from ``raw``, offset
    in the decompressed bytes). A stream that ends inside a frame raises ``EOFError``
    after every byte before it was handed over."""
    # zstandard's stream reader ends quietly on a truncated frame; a decompressobj tells.
    decompressor = zstandard.ZstdDecompressor()
    frame = decompressor.decompressobj()
    in_frame = False
    read = written = 0  # bytes read from raw, bytes handed over
    while chunk := raw.read(chunk_size):
        read += len(chunk)
        while chunk:
            if not in_frame and frames is not None:
                frames.append((read - len(chunk), written))
            in_frame = True
            if out := frame.decompress(chunk):
                written += len(out)
                yield out
            chunk = b""
            if frame.eof:
                chunk, in_frame = frame.unused_data, False
                frame = decompressor.decompressobj()
    if in_frame:
        raise EOFError("the zstd stream ends in the middle of a frame")


def _parse_json_line(raw: bytes) -> tuple[Any, str | None]:
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError:
        pass
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        try:  # keep what can be recovered so the dropped row can be inspected
            return orjson.loads(raw.decode("utf-8", "replace")), "read:invalid_utf8"
        except orjson.JSONDecodeError:
            return None, "read:invalid_utf8"
    return None, "read:invalid_json"


def _check_text_field(shard: InputShard, spec: InputSpec, state: _JsonlState) -> None:
    if state.check_text_field and not state.seen_text_field and state.first_keys is not None:
        raise InputError(
            f"{shard.url}: no line has the text field {spec.text_field!r}; the first line's "
            f"fields are {state.first_keys}: pass --text-field with the one that holds the text"
        )


# --------------------------------------------------------------------------- Parquet


def read_parquet(shard: InputShard, spec: InputSpec) -> Iterator[pa.Table]:
    """Parquet, one row group at a time, in batches of ``batch_rows``: every row group, or
    a piece's (``shard.row_groups``), its rows numbered from ``shard.first_row``."""
    handle = fsspec.open(shard.url, "rb").open()
    try:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowException, OSError) as err:
            raise _corrupt(shard, "its footer", err) from None
        names = parquet.schema_arrow.names
        if spec.text_field not in names:
            raise InputError(
                f"{shard.url}: no column {spec.text_field!r}; columns are {names}: "
                "pass --text-field with the one that holds the text"
            )
        start, stop = shard.row_groups or (0, parquet.num_row_groups)
        if stop > parquet.num_row_groups:
            raise InputError(
                f"{shard.label}: the file now has {parquet.num_row_groups} row groups, so it "
                "changed after the run was planned: run the command again with --overwrite"
            )
        offset = shard.first_row
        for group in range(start, stop):
            try:
                batches = list(parquet.iter_batches(batch_size=spec.batch_rows, row_groups=[group]))
            except (pa.ArrowException, OSError) as err:
                raise _corrupt(shard, f"row group {group} (row {offset})", err) from None
            for batch in batches:
                yield _parquet_batch(pa.Table.from_batches([batch]), offset, shard, spec)
                offset += batch.num_rows
    finally:
        handle.close()


def _parquet_batch(table: pa.Table, offset: int, shard: InputShard, spec: InputSpec) -> pa.Table:
    n = table.num_rows
    text = _undictionary(table[spec.text_field])
    reasons = pa.nulls(n, pa.string())
    if _is_bytes(text.type):
        text, reasons = _decode_binary(text)
    elif not _is_text(text.type):
        raise InputError(
            f"{shard.url}: column {spec.text_field!r} is {text.type}, not text: "
            "pass --text-field with a string column"
        )
    text = text.cast(pa.large_string())
    if spec.id_field in table.column_names:
        ids = _undictionary(table[spec.id_field])
        try:
            ids = ids.cast(pa.string())
        except pa.ArrowNotImplementedError:
            raise InputError(
                f"{shard.url}: column {spec.id_field!r} is {ids.type}, which cannot be an id: "
                "pass --id-field with a string or number column (a name the file lacks "
                "gives ids <file name>/<row>)"
            ) from None
        if ids.null_count:
            ids = pc.coalesce(ids, _generated_ids(shard.name, offset, n))
    else:
        ids = _generated_ids(shard.name, offset, n)
    reasons = _vector_reasons(text, reasons, spec)
    columns = {ID: ids, TEXT: pc.fill_null(text, ""), DROP_REASON: reasons}
    passed = _passed_columns(table, spec)
    _check_renames(passed, shard, "as columns")
    for name in passed:
        columns[_passthrough_name(name)] = _plain_layout(table[name])
    return conform(pa.table(columns))


def _undictionary(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary-encoded column (pandas' category, polars' Categorical) as its values."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


_VIEW_AS = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


def _plain_layout(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A passed-through column with its values laid out plainly: a dictionary as its values
    and a string or binary view as a string or binary column. Arrow's selection kernels
    have no view kernels, and a file with a dictionary column beside one with plain
    strings would not unify when the parts are written."""
    column = _undictionary(column)
    return column.cast(_VIEW_AS[column.type]) if column.type in _VIEW_AS else column


def _is_text(kind: pa.DataType) -> bool:
    """Arrow's string types, the view layout included."""
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _is_bytes(kind: pa.DataType) -> bool:
    """Arrow's binary types (the text is decoded as UTF-8), the view layout included."""
    return (
        pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind)
    )


def _generated_ids(name: str, offset: int, count: int) -> pa.Array:
    """``<name>/<row>`` for rows ``offset`` to ``offset + count - 1``, vectorised."""
    rows = pa.array(np.arange(offset, offset + count, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(pa.scalar(f"{name}/"), rows, "")


def _decode_binary(values: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    try:
        return values.cast(pa.large_string()), pa.nulls(len(values), pa.string())
    except pa.ArrowInvalid:
        decoded = [(None, None) if v is None else _utf8_text(v) for v in values.to_pylist()]
        texts, reasons = zip(*decoded, strict=True) if decoded else ((), ())
        return pa.array(texts, pa.large_string()), pa.array(reasons, pa.string())


def _vector_reasons(text: Any, reasons: Any, spec: InputSpec) -> Any:
    """Null, blank and too long texts, for readers that hold a whole text column."""
    rules: list[tuple[Any, str]] = [
        (pc.is_null(text), "read:null_text"),
        (pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text)), "read:empty_text"),
    ]
    if spec.max_doc_chars is not None:
        rules.append((_longer_than(text, spec.max_doc_chars), "read:too_long"))
    for mask, reason in rules:
        hit = pc.and_(pc.fill_null(mask, False), pc.is_null(reasons))
        reasons = pc.if_else(hit, pa.scalar(reason, pa.string()), reasons)
    return reasons


def _longer_than(text: Any, chars: int) -> pa.Array:
    """Which texts hold more than ``chars`` characters. A text holds no more characters
    than bytes of UTF-8, so only those of more bytes are counted (counting every text's
    characters reads all of them: a fifth of a Parquet file's reading)."""
    longer = pc.greater(pc.binary_length(text), chars)
    if isinstance(longer, pa.ChunkedArray):
        longer = longer.combine_chunks()
    if not pc.any(longer).as_py():
        return longer
    rows = pc.indices_nonzero(longer)
    counted = pc.greater(pc.utf8_length(pc.take(text, rows)), chars)
    if isinstance(counted, pa.ChunkedArray):
        counted = counted.combine_chunks()
    mask = np.zeros(len(longer), bool)
    mask[rows.to_numpy()[counted.to_numpy(zero_copy_only=False)]] = True
    return pa.array(mask)


# --------------------------------------------------------------------------- WARC


def read_warc(shard: InputShard, spec: InputSpec) -> Iterator[pa.Table]:
    """WARC, optionally compressed (gz, zst, bz2, xz by extension, decompressed here as
    for JSONL, so a truncated file is an error that comes after every whole record before
    it). A document is an HTTP response, its HTML turned into text with Resiliparse (or
    Trafilatura, ``warc_extractor``), or a conversion record (Common Crawl's WET files),
    whose block is the text already.

    Keeps ``url`` and ``date`` (the WARC-Date); the id is the WARC-Record-ID.
    Request, metadata and warcinfo records are not documents and are passed over.

    A piece of a file (``shard.byte_range``, see ``warc_record_pieces``) is its bytes on
    disk from one document's record (a gzip member of its own) to the next piece's, its
    documents numbered from ``shard.first_row``.
    """
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    rows = _Rows(shard, spec)
    row = shard.first_row - 1
    read = shard.first_row  # documents (response and conversion records) read whole
    opened = open_chunks(shard.url) if shard.byte_range is None else _warc_piece_chunks(shard)
    try:
        with opened as chunks:
            records = ArchiveIterator(
                _ChunkFile(chunks), record_types=_warc_documents(), parse_http=True
            )
            for record in records:
                row += 1
                if record.record_type == WarcRecordType.conversion:
                    text, reason = _utf8_text(record.reader.read())
                else:
                    text, reason = _warc_text(record, spec)
                extra = {
                    "url": _strip_brackets(record.headers.get("WARC-Target-URI")),
                    "date": record.headers.get("WARC-Date"),
                }
                rows.add(row, _strip_brackets(record.record_id), text, reason, extra)
                read = row + 1
                if len(rows) >= spec.batch_rows:
                    yield rows.flush()
    except _STREAM_ERRORS as err:
        if len(rows):  # the records before the damage, then the error
            yield rows.flush()
        raise _corrupt(shard, f"record {read + 1}", err) from None
    if len(rows):
        yield rows.flush()


def _warc_documents() -> Any:
    """The WARC record types that are documents (FastWARC is imported when first read)."""
    from fastwarc.warc import WarcRecordType

    return WarcRecordType.response | WarcRecordType.conversion


@contextlib.contextmanager
def _warc_piece_chunks(shard: InputShard) -> Iterator[Iterable[bytes]]:
    """The (decompressed) bytes of a piece of a local WARC file in chunks, after checking
    that a record (a gzip member, in a ``.gz`` file) still begins where the piece does."""
    assert shard.byte_range is not None
    start, stop = shard.byte_range
    gzipped = shard.gzipped
    with open(shard.url, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(start)
        begins = handle.read(len(_GZIP_MAGIC) if gzipped else len(_WARC_MAGIC))
        if size < stop or begins != (_GZIP_MAGIC if gzipped else _WARC_MAGIC):
            what = "gzip member" if gzipped else "WARC record"
            raise _changed_piece(
                shard, f"the file is now {size:,} bytes and no {what} begins at byte {start:,}"
            )
        handle.seek(start)
        window = _ByteWindow(handle, stop - start)
        yield _gzip_chunks(window) if gzipped else iter(lambda: window.read(_CHUNK_BYTES), b"")


_GZIP_MAGIC = b"\x1f\x8b"
_WARC_MAGIC = b"WARC/"


def warc_record_pieces(file: InputShard, target: int, block_docs: int) -> list[LinePiece]:
    """The pieces of the local WARC ``file`` (plain, or gzip'd a member per record as
    Common Crawl ships it): each begins at the record of a document (a response or
    conversion record) that follows a whole number of blocks of ``block_docs`` documents
    (``InputSpec.batch_rows``: the reader's batches, so the rows come out in the whole
    file's order) and, in a ``.gz`` file, begins a gzip member; each holds at least
    ``target`` bytes of the file (a rest below that joins the last piece). Each piece is
    (first byte, one past its last, documents before it, 0). None when that makes fewer
    than two, or when the file cannot be read to its end (its reader then says why): a
    WARC file gzip'd whole is one member and has no place to cut.

    The file is read once: decompressed by the reader's inflater, which says where each
    member begins, and its records' headers parsed by FastWARC (no HTTP or HTML)."""
    from fastwarc.warc import ArchiveIterator

    gzipped = file.gzipped
    members: list[tuple[int, int]] = []
    starts = [(0, 0)]  # where a block of documents may begin on disk, documents before it
    try:
        with open(file.url, "rb") as raw:
            size = os.fstat(raw.fileno()).st_size
            chunks: Iterable[bytes] = (
                _gzip_chunks(raw, members=members)
                if gzipped
                else iter(lambda: raw.read(_CHUNK_BYTES), b"")
            )
            records = ArchiveIterator(
                _ChunkFile(chunks), record_types=_warc_documents(), parse_http=False
            )
            docs = 0
            for record in records:
                if docs and docs % block_docs == 0:
                    at = record.stream_pos  # in the decompressed bytes
                    disk = next((d for d, text in members if text == at), None) if gzipped else at
                    # only the members the inflater has found ahead of the parser are kept
                    members[:] = [m for m in members if m[1] > at]
                    if disk is not None:
                        starts.append((disk, docs))
                docs += 1
    except (*_STREAM_ERRORS, ValueError):
        return []
    stops = [disk for disk, _ in starts[1:]] + [size]
    blocks = [(disk, stop, docs, 0) for (disk, docs), stop in zip(starts, stops, strict=True)]
    return _joined(blocks, target)


def _utf8_text(raw: bytes) -> tuple[str, str | None]:
    """The text of UTF-8 bytes, and ``read:invalid_utf8`` (U+FFFD in place) when they
    are not."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), "read:invalid_utf8"


def _strip_brackets(value: str | None) -> str | None:
    return value.strip("<>") if value else value


def _warc_text(record: Any, spec: InputSpec) -> tuple[str, str | None]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.http import iterate_http_chunks

    http = record.http_headers
    if http is None:
        return "", "read:not_html"
    if http.status_code != 200:
        record.reader.consume()
        return "", "read:http_status"
    content_type = (http.get("Content-Type") or "").lower()
    if "html" not in content_type:
        record.reader.consume()
        return "", "read:not_html"
    if (http.get("Transfer-Encoding") or "").lower() == "chunked":
        body = b"".join(iterate_http_chunks(record.reader))
    else:
        body = record.reader.read()
    body = _decode_content(body, (http.get("Content-Encoding") or "").lower())
    html = _html_text(body, content_type)
    if spec.warc_extractor == "trafilatura":
        from curation.io.extract import sandbox

        return sandbox(spec.warc_extract_timeout_s).extract(html)
    return extract_plain_text(html, main_content=spec.warc_main_content), None


_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


def _html_text(body: bytes, content_type: str) -> str:
    """The page's bytes as text: UTF-8 where they are valid UTF-8 (as datatrove and most
    crawlers decode them: a guess from the bytes took 3 of the 37 UTF-8 pages of the WARC
    samples for ISO-8859-7 or cp1252), else the charset the HTTP header names where the
    bytes are valid in it, else Resiliparse's guess (undecodable bytes replaced)."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    named = _CHARSET.search(content_type)
    if named is not None:
        try:
            return body.decode(named.group(1))
        except (LookupError, UnicodeDecodeError):
            pass
    return bytes_to_str(body, detect_encoding(body))


def _decode_content(body: bytes, encoding: str) -> bytes:
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body, -zlib.MAX_WBITS)
        if encoding == "br":
            import brotli

            return brotli.decompress(body)
    except Exception:  # many crawlers store bodies already decoded despite the header
        return body
    return body


# --------------------------------------------------------------------------- plain text


def read_text(shard: InputShard, spec: InputSpec) -> Iterator[pa.Table]:
    """A plain text file (optionally compressed) is one document; its id is its name."""
    rows = _Rows(shard, spec)
    rows.add(0, shard.name, *_text_of(shard), {})
    yield rows.flush()


def _text_of(shard: InputShard) -> tuple[str, str | None]:
    """The text of a plain text file and its read reason (``read:invalid_utf8``), or a
    ``CorruptInputError`` naming it."""
    try:
        with open_chunks(shard.url) as chunks:
            raw = b"".join(chunks)
    except _STREAM_ERRORS as err:
        raise _corrupt(shard, "its start", err) from None
    return _utf8_text(raw)


_READERS: dict[str, Callable[[InputShard, InputSpec], Iterator[pa.Table]]] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "warc": read_warc,
    "text": read_text,
}
