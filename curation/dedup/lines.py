"""``line_dedup``: remove lines that occur more than once across the whole dataset.

CCNet and Dolma remove boilerplate this way (cookie banners, navigation, share buttons).
A global stage. Before the barrier each live row gets a 64-bit hash of every line (split
on ``\\n``; by default lower-cased with Greek final sigma folded, digits folded to
``0``, white space folded and trimmed); blank lines get no hash and are never removed.
At the barrier the hashes of all rows are counted; a line whose hash occurs more than
once is a duplicate. With ``keep_first`` the first occurrence (smallest id, then
earliest line) is kept, as Dolma does; without it every occurrence goes, as CCNet does.
After the barrier the duplicate lines are removed from each text,
``line_dedup_lines_removed`` records how many, and a document left with no non-blank
line is dropped as ``line_dedup:all_lines_duplicated`` (its text kept as it came).

With ``against`` (documents kept elsewhere), a line they hold goes in every copy here;
with ``only_against`` nothing else does.

Memory at the barrier: the rows' ids and about 40 bytes per line (the hashes and one
sort of them); each shard then reads only the hashes that occur in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import ID, TEXT, with_drop_reason
from curation.dedup.common import AgainstParams, held_keys, normalized_text
from curation.stage import GlobalStage, register, write_decisions
from curation.utf8 import string_buffers

_HASHES = "_line_dedup_hashes"
_HASH_LIST = pa.list_(pa.uint64())


class LineDedupParams(AgainstParams):
    normalize: bool = Field(True, description="lower-case, digits to 0, fold white space")
    keep_first: bool = Field(False, description="keep the first occurrence (Dolma) or none")
    min_line_chars: int = Field(0, ge=0, description="shorter lines are never removed")


@register
class LineDedup(GlobalStage):
    """Removes lines repeated anywhere in the dataset; adds ``line_dedup_lines_removed``."""

    name = "line_dedup"
    help = "remove lines that occur more than once across the dataset (CCNet, Dolma)"
    Params = LineDedupParams
    params: LineDedupParams
    internal_columns = (_HASHES,)
    keys_by_library = True

    def measure(self, table: pa.Table) -> pa.Table:
        lines = pc.split_pattern(table[TEXT], "\n")
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        flat = lines.flatten()
        key = flat
        if self.params.normalize:
            key = normalized_text(key, digits_to_zero=True)
        else:
            key = pc.utf8_trim_whitespace(key)
        hashed = pl.from_arrow(key).hash(seed=0).to_arrow()
        short = pc.less(pc.utf8_length(key), max(self.params.min_line_chars, 1))
        hashed = pc.if_else(short, pa.scalar(None, hashed.type), hashed)
        listed = pa.ListArray.from_arrays(lines.offsets, hashed)
        return table.append_column(_HASHES, listed)

    def decide(self, keys: Any, folder: Path) -> None:
        decide_units(self, keys, folder, _HASHES, self.params.keep_first)

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        n = table.num_rows
        hashes = table[_HASHES].combine_chunks()
        flat = hashes.flatten()
        counts, parents, line_no = _line_positions(hashes)
        removed = copies_to_remove(table[ID], flat, parents, line_no, decisions)
        hashed = np.asarray(flat.is_valid(), dtype=bool)
        had_lines = np.bincount(parents[hashed], minlength=n) > 0
        gone = had_lines & (np.bincount(parents[hashed & ~removed], minlength=n) == 0)
        text = table[TEXT].combine_chunks().cast(pa.large_string())
        data, offsets = _without_lines(*string_buffers(text), counts, removed, gone)
        rebuilt = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
        if text.null_count:
            rebuilt = pc.if_else(text.is_valid(), rebuilt, pa.scalar(None, pa.large_string()))
        table = table.set_column(table.column_names.index(TEXT), TEXT, rebuilt)
        table = table.append_column(
            "line_dedup_lines_removed", pa.array(np.bincount(parents[removed], minlength=n))
        )
        return with_drop_reason(table, pa.array(gone), self.reason("all_lines_duplicated"))


@numba.njit(cache=True, nogil=True)
def _without_lines(
    data: np.ndarray, offsets: np.ndarray, lines: np.ndarray, removed: np.ndarray, as_is: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Each text without its ``removed`` lines (one flag per line of every text in turn,
    lines split on ``\n``; the kept ones joined by ``\n`` again). A text with
    ``lines == 0`` (null) or ``as_is`` set is copied as it is. New bytes and offsets."""
    out = np.empty(offsets[-1] - offsets[0], dtype=np.uint8)
    out_offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    written = 0
    flag = 0
    for d in range(len(lines)):
        begin = offsets[d]
        end = offsets[d + 1]
        if as_is[d] or lines[d] == 0:
            out[written : written + end - begin] = data[begin:end]
            written += end - begin
        else:
            first = True
            start = begin
            for i in range(begin, end + 1):
                if i < end and data[i] != 0x0A:
                    continue
                if not removed[flag]:
                    if not first:
                        out[written] = 0x0A
                        written += 1
                    out[written : written + i - start] = data[start:i]
                    written += i - start
                    first = False
                start = i + 1
                flag += 1
        if as_is[d]:
            flag += lines[d]
        out_offsets[d + 1] = written
    return out[:written], out_offsets


def copies_to_remove(
    ids: pa.ChunkedArray | pa.Array,
    flat: pa.Array,
    parents: np.ndarray,
    numbers: np.ndarray,
    decisions: pa.Table | None,
) -> np.ndarray:
    """For every hashed unit (a line, a span of sentences) of a shard's rows: whether it
    goes. ``flat``: the units' hashes in order (null: never removed); ``parents`` and
    ``numbers``: each unit's row and its number in it; ``decisions``: ``repeated_lines``'
    rows of this shard. A unit goes when its hash is among the decisions and it is not
    the occurrence kept there (``keep_id`` and ``keep_line``; null: none is kept)."""
    if decisions is None or not decisions.num_rows:
        return np.zeros(len(flat), dtype=bool)
    where = pc.index_in(flat, decisions["hash"])
    found = np.asarray(where.is_valid(), dtype=bool)
    keep_id = pc.take(decisions["keep_id"], where)
    keep_number = pc.take(decisions["keep_line"], where)
    owners = pc.take(ids, pa.array(parents))
    is_keeper = pc.and_(pc.equal(keep_id, owners), pc.equal(keep_number, pa.array(numbers)))
    return found & ~np.asarray(pc.fill_null(is_keeper, False), dtype=bool)


def decide_units(
    stage: GlobalStage, keys: Any, folder: Path, column: str, keep_first: bool
) -> None:
    """The barrier of a stage whose units (lines, spans) are hashed in order in
    ``column``: ``repeated_lines`` over ``keys``, against the stage's ``against``, written
    one file per shard."""
    table = keys.select("shard", ID, column).collect().to_arrow()
    params = stage.params
    against = against_hashes(stage, column, folder)
    decisions = repeated_lines(table, keep_first, column, against, params.only_against)
    write_decisions(pl.from_arrow(decisions), folder)


def against_hashes(stage: GlobalStage, column: str, scratch: Path) -> np.ndarray | None:
    """The distinct line hashes, sorted, of the documents of the stage's ``against`` as
    ``stage.measure`` makes them in ``column`` (None when there is none); made once and
    cached (``held_keys``)."""

    def keys_of(table: pa.Table) -> pa.Table:
        flat = stage.measure(table)[column].combine_chunks().flatten().drop_null()
        return pa.table({"hash": np.unique(np.asarray(flat.cast(pa.uint64()), dtype=np.uint64))})

    path = held_keys(stage, TEXT, keys_of, scratch)
    if path is None:
        return None
    with pa.memory_map(str(path)) as source:
        hashes = pa.ipc.open_file(source).read_all()["hash"]
        return np.unique(np.asarray(hashes.combine_chunks(), dtype=np.uint64))


def _line_positions(hashes: pa.ListArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a list column of per-line hashes: the lines of each row (0 for a null list),
    and for every line, in order, its row and its number within the row (from 0)."""
    counts = np.asarray(pc.list_value_length(hashes).fill_null(0), dtype=np.int64)
    parents = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    line = np.arange(len(parents), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return counts, parents, line


def repeated_lines(
    keys: pa.Table,
    keep_first: bool,
    column: str = _HASHES,
    against: np.ndarray | None = None,
    only_against: bool = False,
) -> pa.Table:
    """The decisions: one row per shard and hash of a line that goes.

    ``keys`` has ``shard`` and ``id`` (strings) and the list of line hashes per row in
    ``column`` (null for a line never removed); a "line" may be any unit hashed in order,
    such as ``sentence_dedup``'s spans of sentences. A line goes when it occurs more than
    once (unless ``only_against``) or its hash is among ``against`` (sorted hashes of
    another dataset's lines). Returns ``shard``, ``hash`` (uint64), and where
    ``keep_first`` the occurrence that stays: ``keep_id`` (smallest id) and ``keep_line``
    (its earliest line, from 0); null in both otherwise, and for a hash of ``against``
    (no copy stays). A sort of the hashes, not a hash table, so the memory is a few
    arrays of one element per line.
    """
    hashes = keys[column].combine_chunks() if keys.num_rows else pa.array([], _HASH_LIST)
    flat = hashes.flatten()
    _, parents, line = _line_positions(hashes)
    valid = np.asarray(flat.is_valid(), dtype=bool)  # lines too short to count: no hash
    values = np.asarray(flat.fill_null(0).cast(pa.uint64()), dtype=np.uint64)[valid]
    parents, line = parents[valid], line[valid]
    if keep_first:
        rank = np.asarray(pc.rank(keys[ID], sort_keys="ascending", tiebreaker="first"))
        order = np.lexsort((line, rank[parents], values))
    else:
        order = np.argsort(values, kind="stable")
    values, parents, line = values[order], parents[order], line[order]
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]][: len(values)])
    sizes = np.diff(np.r_[starts, len(values)])
    group = np.repeat(np.arange(len(starts)), sizes)
    elsewhere = np.zeros(len(starts), dtype=bool)
    if against is not None and len(against):
        at = np.minimum(np.searchsorted(against, values[starts]), len(against) - 1)
        elsewhere = against[at] == values[starts]
    goes = elsewhere if only_against else elsewhere | (sizes > 1)
    repeated = np.repeat(goes, sizes)
    shard_codes = pc.dictionary_encode(keys["shard"].combine_chunks())
    shards = max(len(shard_codes.dictionary), 1)
    codes = np.asarray(shard_codes.indices, dtype=np.int64)[parents[repeated]]
    pairs = np.unique(group[repeated] * shards + codes)  # (hash group, shard), each once
    first = starts[pairs // shards]
    shard = pc.take(shard_codes.dictionary, pa.array(pairs % shards))
    if keep_first:
        kept = pa.array(~elsewhere[pairs // shards])  # a line held elsewhere keeps no copy
        keep_id = pc.if_else(kept, pc.take(keys[ID], pa.array(parents[first])), None)
        keep_id = keep_id.cast(pa.string())
        keep_line = pc.if_else(kept, pa.array(line[first]), None)
    else:
        keep_id = pa.nulls(len(pairs), pa.string())
        keep_line = pa.nulls(len(pairs), pa.int64())
    return pa.table(
        {
            "shard": shard.cast(pa.string()),
            "hash": pa.array(values[first]),
            "keep_id": keep_id,
            "keep_line": keep_line,
        }
    )
