"""What the dedup stages share."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curation.batch import DROP_REASON, ID
from curation.cache import cache_dir, engine_digest, hashing_libraries, prune_stale
from curation.stage import StageParams
from curation.utf8 import code_point, is_unicode_space, skip_spaces, string_buffers

if TYPE_CHECKING:
    from curation.stage import GlobalStage

DUPLICATE_OF = "duplicate_of"
log = logging.getLogger(__name__)

#: bumped when what a cached file of ``held_keys`` holds changes
_HELD_FORMAT = 1
#: parameters that change what is done with the keys of ``against``, not the keys
_NOT_KEYED = {"against", "only_against", "priority_column", "partitions"}


class AgainstParams(StageParams):
    """Other datasets a dedup stage removes from this one (``exact_dedup``,
    ``line_dedup``, ``sentence_dedup``): what they hold goes wherever it occurs here,
    every copy. Read on the driver at the barrier, one batch at a time; only their
    hashes are held."""

    file_params: ClassVar[tuple[str, ...]] = ("against",)
    against: list[str] = Field(
        [], description="documents already kept elsewhere (files, folders, globs; any format)"
    )
    against_text_field: str = Field("text", description="the text field of `against`")
    only_against: bool = Field(
        False, description="remove only what `against` holds, not repeats within the dataset"
    )

    @model_validator(mode="after")
    def _against_readable(self) -> AgainstParams:
        from curation.io.inputs import InputError, resolve_inputs

        if self.only_against and not self.against:
            raise ValueError("only_against needs `against`: the documents to dedup against")
        if self.against:
            try:
                resolve_inputs(self.against)
            except InputError as err:
                raise ValueError(f"against: {err}") from None
        return self


def against_tables(params: AgainstParams, column: str) -> Iterator[pa.Table]:
    """The readable documents of ``params.against``, batch by batch, as tables of a null
    ``id``, their text as ``column`` and a null ``drop_reason``: what a stage measures."""
    from curation.io.readers import live_texts

    for texts in live_texts(params.against, params.against_text_field):
        nulls = pa.nulls(len(texts), pa.string())
        yield pa.table({ID: nulls, column: texts, DROP_REASON: nulls})


def held_keys(
    stage: GlobalStage,
    column: str,
    keys_of: Callable[[pa.Table], pa.Table],
    scratch: Path,
) -> Path | None:
    """An Arrow IPC file of ``keys_of`` of every batch of ``against_tables(stage.params,
    column)``: what the stage holds of the documents of ``against`` (hashes, band keys).
    None when they have no readable document.

    Made once and kept in the engine's cache (``cache_dir()/against``), named by a hash of
    the stage, its parameters (but those that only use the keys: ``only_against``,
    ``priority_column``, ``partitions``), the engine's code and every file of ``against``
    with its size and modification time (or its remote version), so a later run against
    the same files (a new crawl against last month's, a resumed or repeated run) reads
    the keys instead of reading and hashing the documents again, and a changed file,
    engine or library that makes keys (``hashing_libraries``) makes them anew. A cache
    that cannot be written is done without (in ``scratch``), with a warning; cached files
    unused for 30 days are deleted.
    """
    from curation.io.inputs import file_versions

    params = stage.params
    assert isinstance(params, AgainstParams)
    if not params.against:
        return None
    body = {
        "stage": stage.name,
        "format": _HELD_FORMAT,
        "engine": engine_digest(),
        "libraries": hashing_libraries(),
        "versions": stage.versions(),
        "params": params.model_dump(mode="json", exclude=_NOT_KEYED),
        "column": column,
        "files": file_versions(params.against),
    }
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
    folder = cache_dir() / "against"
    path = folder / f"{stage.name}-{key}.arrow"
    if _readable(path):
        with contextlib.suppress(OSError):  # marks it in use; a read-only cache is fine
            os.utime(path)
        log.info("%s: the keys of `against` from %s", stage.name, path)
        return path
    cannot: BaseException | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        cannot = error
    if cannot is None:
        try:
            made = _write_held(params, column, keys_of, path)
        except _CannotWrite as error:
            cannot = error.__cause__
        else:
            prune_stale(folder, "*.arrow", {path.name})
            return made
    warnings.warn(
        f"{stage.name}: cannot keep the keys of `against` in {folder} ({cannot}); they are "
        "made again on every run. Set CURATION_CACHE_DIR to a writable folder to keep them",
        stacklevel=2,
    )
    try:
        return _write_held(params, column, keys_of, scratch / "against.arrow")
    except _CannotWrite as error:
        raise error.__cause__ from None  # type: ignore[misc]


class _CannotWrite(Exception):
    """The output file of ``_write_held`` could not be opened (its cause says why)."""


def _readable(path: Path) -> bool:
    """Whether ``path`` is a complete Arrow IPC file (a torn or foreign one is not)."""
    if not path.is_file():
        return False
    try:
        with pa.memory_map(str(path)) as source:
            pa.ipc.open_file(source)
        return True
    except (OSError, pa.ArrowException):
        return False


def _write_held(
    params: AgainstParams, column: str, keys_of: Callable[[pa.Table], pa.Table], path: Path
) -> Path | None:
    """Write ``keys_of`` of every batch of ``against`` to ``path`` (under a temporary name,
    renamed into place when whole); None, and no file, when no batch has a document."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        sink = pa.OSFile(str(tmp), "wb")
    except OSError as error:
        raise _CannotWrite from error
    writer = None
    try:
        with sink:
            for table in against_tables(params, column):
                keys = keys_of(table)
                if writer is None:
                    writer = pa.ipc.new_file(sink, keys.schema)
                writer.write_table(keys)
            if writer is not None:
                writer.close()
        if writer is None:
            tmp.unlink()
            return None
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def with_priority(table: pa.Table, stage: str, column: str, name: str) -> pa.Table:
    """``table`` with the values of its ``column`` as float64 in ``name`` (the keep policy
    of a dedup stage: the highest first; see ``priority_values``); an error naming
    ``stage`` and the columns when there is no ``column``."""
    if column not in table.column_names:
        raise ValueError(
            f"{stage}: no priority column {column!r}; columns are {table.column_names}"
        )
    values = priority_values(table[column], table[ID], f"{stage}: priority column {column!r}")
    return table.append_column(name, values)


#: a zone at the end of an ISO 8601 time: ``Z``, ``+02:00``, ``-0500``
_ZONED = r"(Z|[+-]\d\d:?\d\d)$"


def priority_values(
    values: pa.ChunkedArray | pa.Array, ids: pa.ChunkedArray | pa.Array, what: str
) -> pa.ChunkedArray:
    """``values`` as float64 keys of a keep policy (the highest is kept; nulls rank last).

    Numbers and booleans as they are, text that is all numbers as numbers; times and
    dates as microseconds since 1970-01-01 UTC (exact in a float64 for 285 years either
    side), so a dedup can keep the newest crawl of a page (C4 kept the latest WARC-Date).
    Text that is not numbers is read as ISO 8601 times, ``2019-04-18T12:34:56Z`` (WARC's
    WARC-Date), with any zone offset, or without a zone as UTC, or a date alone.
    Anything else is an error that begins with ``what`` and names the value and its
    row's id."""
    values = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    kind = values.type
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
    if any(is_kind(kind) for is_kind in numeric) or pa.types.is_boolean(kind):
        return values.cast(pa.float64())
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        naive = pa.timestamp("us", kind.tz) if pa.types.is_timestamp(kind) else pa.timestamp("us")
        return values.cast(naive).cast(pa.int64()).cast(pa.float64())
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ValueError(
            f"{what} holds {kind}: it must hold numbers, times, dates or ISO 8601 text"
        )
    with contextlib.suppress(pa.ArrowInvalid):
        return values.cast(pa.float64())
    zoned = pc.fill_null(pc.match_substring_regex(values, _ZONED), False)
    try:
        with_zone = pc.if_else(zoned, values, None).cast(pa.timestamp("us", "UTC"))
        without = pc.if_else(zoned, None, values).cast(pa.timestamp("us"))
    except pa.ArrowInvalid:
        raise ValueError(_first_bad_time(values, ids, what)) from None
    micros = pc.coalesce(with_zone.cast(pa.int64()), without.cast(pa.int64()))
    return micros.cast(pa.float64())


def _first_bad_time(values: pa.ChunkedArray, ids: pa.ChunkedArray | pa.Array, what: str) -> str:
    """The message for the first of ``values`` that is neither a number nor a time."""
    for value, row_id in zip(values.to_pylist(), ids.to_pylist(), strict=True):
        if value is None:
            continue
        zoned = pc.match_substring_regex(pa.array([value]), _ZONED)[0].as_py()
        try:
            pa.array([value]).cast(pa.timestamp("us", "UTC" if zoned else None))
        except pa.ArrowInvalid:
            return (
                f"{what}: {value!r} (row {row_id!r}) is neither a number nor an ISO 8601 "
                "time such as 2019-04-18T12:34:56Z; fix or drop such rows first, or name "
                "another priority column"
            )
    return f"{what}: its text is neither numbers nor ISO 8601 times"


def set_duplicate_of(table: pa.Table, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Add ``duplicate_of`` (string, the id of the kept row), or fill it in where null.

    Several dedup stages in one recipe share the column: a row only reaches a later stage
    while it is kept, so an earlier stage left it null there.
    """
    values = values.cast(pa.string())
    if DUPLICATE_OF not in table.column_names:
        return table.append_column(DUPLICATE_OF, values)
    index = table.column_names.index(DUPLICATE_OF)
    merged = pc.coalesce(table[DUPLICATE_OF].cast(pa.string()), values)
    return table.set_column(index, DUPLICATE_OF, merged)


def normalized_text(
    values: pa.ChunkedArray | pa.Array, digits_to_zero: bool = False
) -> pa.LargeStringArray:
    """Keys for case- and spacing-insensitive matching, as one large-string array.

    Lower-cased (``utf8_lower``) with Greek final sigma folded to sigma, every run of
    ``[\\t\\n\\f\\r ]`` made one space, Unicode white space trimmed from both ends, and
    with ``digits_to_zero`` every ASCII digit made ``0``. Nulls stay null. The same as
    ``replace_substring`` / ``replace_substring_regex(r"\\s+", " ")`` /
    ``utf8_trim_whitespace`` in turn, in one compiled pass over the bytes (their regular
    expression took about 29 ns a byte on the development VM).

    Why the sigma: ``utf8_lower`` maps "Σ" to "σ" everywhere, so an upper-cased copy of
    "Νέας" would otherwise not match its source ("νέασ" against "νέας"); Python's
    ``str.lower`` applies the final-sigma rule instead, ``str.casefold`` folds as here.
    """
    lowered = pc.utf8_lower(values.cast(pa.large_string()))
    if isinstance(lowered, pa.ChunkedArray):
        lowered = lowered.combine_chunks()
    out, out_offsets = _normalize_bytes(*string_buffers(lowered), digits_to_zero)
    result = pa.LargeStringArray.from_buffers(
        len(lowered), pa.py_buffer(out_offsets), pa.py_buffer(out)
    )
    if lowered.null_count:
        result = pc.if_else(lowered.is_valid(), result, pa.scalar(None, pa.large_string()))
    return result


@numba.njit(cache=True, nogil=True)
def _normalize_bytes(
    data: np.ndarray, offsets: np.ndarray, digits_to_zero: bool
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``normalized_text`` over lower-cased UTF-8: new bytes and offsets (from 0)."""
    n = len(offsets) - 1
    out = np.empty(offsets[-1] - offsets[0], dtype=np.uint8)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    end_out = 0
    for d in range(n):
        begin = end_out
        i = offsets[d]
        end = offsets[d + 1]
        folding = False
        while i < end:
            b = data[i]
            if b == 0x20 or b == 0x09 or b == 0x0A or b == 0x0C or b == 0x0D:
                if not folding:
                    out[end_out] = 0x20
                    end_out += 1
                    folding = True
                i += 1
                continue
            folding = False
            if digits_to_zero and 0x30 <= b <= 0x39:
                b = 0x30
            elif b == 0xCF and i + 1 < end and data[i + 1] == 0x82:  # ς -> σ (CF 83)
                out[end_out] = 0xCF
                out[end_out + 1] = 0x83
                end_out += 2
                i += 2
                continue
            out[end_out] = b
            end_out += 1
            i += 1
        # trim Unicode white space at both ends of what was written
        first = skip_spaces(out, begin, end_out)
        last = end_out
        while last > first:
            start = last - 1
            while out[start] & 0xC0 == 0x80:  # back to the lead byte
                start -= 1
            c, _ = code_point(out, start)
            if not is_unicode_space(c):
                break
            last = start
        if first > begin:
            out[begin : begin + last - first] = out[first:last].copy()
        end_out = begin + last - first
        out_offsets[d + 1] = end_out
    return out[:end_out], out_offsets
