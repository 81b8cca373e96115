"""``substring_dedup``: remove every span of text repeated anywhere in the dataset.

Exact substring dedup (Lee et al. 2022, "Deduplicating Training Data Makes Language
Models Better", their ExactSubstr; RefinedWeb ran it after MinHash): a span of at least
``min_length`` bytes of UTF-8 that occurs more than once over all texts is struck from
the texts, boilerplate that line and document dedups miss because it sits inside lines
or in pages that differ elsewhere (licences, forum footers, quoted passages). By default
every copy goes, as Lee et al. strike them; with ``keep_first`` the first occurrence
stays (the row with the smallest id, then the earliest byte), so a document is never
cut for what only a later one repeats.

A global stage; ``measure`` adds nothing. At the barrier the texts of all live rows are
joined in id order, each followed by a byte that UTF-8 never holds (0xFF), and a suffix
array and its longest-common-prefix array are built over the bytes (libdivsufsort and
Kasai's algorithm, through ``pydivsufsort``). Suffixes that begin with the same
``min_length`` bytes of one text lie side by side in the suffix array, so one pass over
it finds every repeated window of ``min_length`` bytes and each of its occurrences; a
window never runs past its text's end. Each text loses the union of its repeated
windows (without ``keep_first``: all occurrences; with it: all but the first), widened
to whole characters. The rest is joined as it stands: "Alice wanted to go to the
store" without a repeated " to go to the " reads "Alice wantedstore", as in Lee et
al.'s output. ``substring_dedup_bytes_removed`` records what each text lost, and a text
left with nothing but white space is dropped as ``substring_dedup:all_duplicated``
(its text kept as it came); with ``max_removed_fraction``, so is one that lost more than
that share of its bytes (``substring_dedup:mostly_duplicated``), rather than keep the
remains of a page made mostly of what other pages hold.

With ``against`` (documents kept elsewhere, or a benchmark's items: Lee et al.'s
``across-similar``), every span of ``min_length`` bytes that they hold goes from every
text here, all copies; with ``only_against`` nothing else does. Their texts are read at
the barrier and joined after the dataset's in the same arrays.

Memory at the barrier: every live row's id and text (and the texts of ``against``), and
while the arrays are built about 13 bytes per byte of text more (the joined bytes, the
suffix array, its LCP array and the room left in each text, int32 each up to 2 GiB of
text, int64 past it). Measured by ``benchmarks/substring_dedup.py``: 15 to 18 bytes per
byte of text over a pass-through run's peak. So it runs where the dataset's text fits
about 18 times in one machine's memory; where the arrays would not fit in the memory
available, the run stops at the barrier before building them (``BarrierTooLarge``),
saying what to do, and keeps its finished shards.
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
from curation.dedup.common import AgainstParams, against_tables
from curation.stage import BarrierTooLarge, GlobalStage, register, write_decisions
from curation.utf8 import string_buffers

#: the byte after each text at the barrier: no UTF-8 text holds it
_SEPARATOR = 0xFF


class SubstringDedupParams(AgainstParams):
    min_length: int = Field(
        100,
        ge=2,
        description="shortest repeated span removed, in UTF-8 bytes (Lee et al.'s tool: "
        "--length-threshold 100; their paper's 50 GPT-2 tokens are about 200-250 bytes)",
    )
    keep_first: bool = Field(
        False,
        description="keep the first occurrence (smallest id, then earliest byte); false: "
        "strike every copy, as Lee et al. do",
    )
    max_removed_fraction: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="drop a document that loses more than this share of its bytes "
        "(mostly_duplicated) instead of keeping what is left of it; null: keep it",
    )


@register
class SubstringDedup(GlobalStage):
    """Removes spans repeated anywhere in the dataset; adds ``substring_dedup_bytes_removed``."""

    name = "substring_dedup"
    help = "remove spans of min_length bytes repeated anywhere in the dataset (Lee et al.)"
    Params = SubstringDedupParams
    params: SubstringDedupParams

    def key_columns(self) -> list[str]:
        return [TEXT]

    def measure(self, table: pa.Table) -> pa.Table:
        return table

    def decide(self, keys: Any, folder: Path) -> None:
        table = keys.select("shard", ID, TEXT).sort(ID).collect().to_arrow()
        text = pc.fill_null(table[TEXT].combine_chunks().cast(pa.large_string()), "")
        p = self.params
        held = None
        if p.against:
            parts = [t[TEXT].cast(pa.large_string()) for t in against_tables(p, TEXT)]
            held = pa.chunked_array(parts, pa.large_string()).combine_chunks() if parts else None
        docs, starts, ends = duplicate_spans(text, p.min_length, p.keep_first, held, p.only_against)
        if not len(docs):
            return
        rows, first = np.unique(docs, return_index=True)
        offsets = np.append(first, len(docs)).astype(np.int32)
        decisions = pa.table(
            {
                "shard": table["shard"].take(pa.array(rows)),
                ID: table[ID].take(pa.array(rows)),
                "starts": pa.ListArray.from_arrays(pa.array(offsets), pa.array(starts)),
                "ends": pa.ListArray.from_arrays(pa.array(offsets), pa.array(ends)),
            }
        )
        write_decisions(pl.from_arrow(decisions), folder)

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        n = table.num_rows
        if decisions is None or not decisions.num_rows:
            return table.append_column(
                "substring_dedup_bytes_removed", pa.array(np.zeros(n, dtype=np.int64))
            )
        where = pc.index_in(table[ID], decisions[ID])
        starts = pc.take(decisions["starts"], where)
        ends = pc.take(decisions["ends"], where)
        counts = np.asarray(pc.fill_null(pc.list_value_length(starts), 0), dtype=np.int64)
        text = table[TEXT].combine_chunks().cast(pa.large_string())
        data, offsets = string_buffers(text)
        span_starts = np.asarray(pc.list_flatten(starts), dtype=np.int64)
        span_ends = np.asarray(pc.list_flatten(ends), dtype=np.int64)
        bad = _first_bad_span(offsets, counts, span_starts, span_ends)
        if bad >= 0:
            raise ValueError(
                f"substring_dedup: the spans decided for row {table[ID][bad].as_py()!r} lie "
                "outside its text, which changed after the barrier; run again with --overwrite"
            )
        out, out_offsets, removed = _without_spans(data, offsets, counts, span_starts, span_ends)
        rebuilt = pa.LargeStringArray.from_buffers(n, pa.py_buffer(out_offsets), pa.py_buffer(out))
        emptied = pc.equal(pc.utf8_trim_whitespace(rebuilt), "")
        gone = pc.and_(pc.greater(pa.array(removed), 0), emptied)
        mostly = np.zeros(n, dtype=bool)
        if self.params.max_removed_fraction is not None:
            sizes = np.diff(offsets)
            mostly = removed > self.params.max_removed_fraction * sizes
        as_it_came = pc.or_(gone, pa.array(mostly))
        final = pc.if_else(as_it_came, text, rebuilt)
        if text.null_count:
            final = pc.if_else(text.is_valid(), final, pa.scalar(None, pa.large_string()))
        table = table.set_column(table.column_names.index(TEXT), TEXT, final)
        table = table.append_column("substring_dedup_bytes_removed", pa.array(removed))
        table = with_drop_reason(table, gone, self.reason("all_duplicated"))
        return with_drop_reason(table, pa.array(mostly), self.reason("mostly_duplicated"))


def duplicate_spans(
    text: pa.LargeStringArray,
    min_length: int,
    keep_first: bool,
    held: pa.LargeStringArray | None = None,
    only_against: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The byte spans to strike from ``text`` (no nulls), as (row, start, end) arrays
    sorted by row then start, ``start``/``end`` in bytes from the row's first byte,
    disjoint and not touching: every window of ``min_length`` bytes of a text that occurs
    in any text more than once (``keep_first``: that occurs earlier, in row then byte
    order), and every one that occurs in a ``held`` text (documents kept elsewhere; with
    ``only_against``, only those), windows merged, each span widened to whole UTF-8
    characters."""
    from pydivsufsort import divsufsort, kasai

    data, offsets = string_buffers(text)
    if held is not None and len(held):
        theirs, their_offsets = string_buffers(pc.fill_null(held, ""))
        data = np.concatenate(
            [data[offsets[0] : offsets[-1]], theirs[their_offsets[0] : their_offsets[-1]]]
        )
        shift = their_offsets[1:] - their_offsets[0] + offsets[-1] - offsets[0]
        offsets = np.concatenate([offsets - offsets[0], shift])
    _check_memory(int(offsets[-1] - offsets[0]) + len(offsets) - 1)
    joined, begins = _joined(data, offsets)
    ours = len(text)
    if len(joined) > len(offsets) - 1:  # some text has bytes
        suffixes = divsufsort(joined)
        common = kasai(joined, suffixes)
        room = np.empty(len(joined), dtype=np.int32 if len(joined) < 2**31 else np.int64)
        _fill_room(begins, room)
        boundary = begins[ours]  # where the held texts begin
        flags = _repeated_windows(
            suffixes, common, room, min_length, keep_first, boundary, only_against
        )
        del suffixes, common, room
    else:
        flags = np.zeros(len(joined), dtype=np.bool_)
    return _spans(joined, begins[: ours + 1], flags, min_length)


def array_bytes(size: int) -> int:
    """The bytes the arrays over ``size`` joined bytes take at their peak: the bytes and
    the flags (1 each), the suffix array, its LCP array and Kasai's ranks or the room
    array (int32 each below 2 GiB, int64 past it)."""
    return size * (2 + 3 * (4 if size < 2**31 else 8))


def available_bytes() -> int | None:
    """This machine's available memory (``MemAvailable`` of ``/proc/meminfo``); None
    where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _check_memory(size: int) -> None:
    """Stop before building the arrays over ``size`` joined bytes when they would not fit
    in the memory available (``BarrierTooLarge``, which keeps the finished shards)."""
    need, have = array_bytes(size), available_bytes()
    if have is not None and need > have:
        raise BarrierTooLarge(
            f"substring_dedup: its suffix arrays over {size / 1e9:,.2f} GB of text need "
            f"about {need / 2**30:,.1f} GiB, more than the {have / 2**30:,.1f} GiB available "
            "on this machine. Run it over fewer documents (a dump or a source at a time, "
            "with `against` the ones done), or on a machine with more memory, with the "
            "same curate run command: the shards finished before the barrier are kept"
        )


@numba.njit(cache=True, nogil=True)
def _joined(
    data: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The texts' bytes, each followed by 0xFF, and where each text begins in them."""
    n = len(offsets) - 1
    out = np.empty(offsets[n] - offsets[0] + n, dtype=np.uint8)
    begins = np.empty(n + 1, dtype=np.int64)
    at = 0
    for d in range(n):
        begins[d] = at
        size = offsets[d + 1] - offsets[d]
        out[at : at + size] = data[offsets[d] : offsets[d + 1]]
        at += size
        out[at] = _SEPARATOR
        at += 1
    begins[n] = at
    return out, begins


@numba.njit(cache=True, nogil=True)
def _fill_room(begins: np.ndarray, room: np.ndarray) -> None:  # pragma: no cover - compiled
    """Set, for every byte of the joined texts, how many bytes of its text begin there
    (0 at a separator): the longest window that starts there."""
    for d in range(len(begins) - 1):
        end = begins[d + 1] - 1  # the separator
        for p in range(begins[d], end + 1):
            room[p] = end - p


@numba.njit(cache=True, nogil=True)
def _repeated_windows(
    suffixes: np.ndarray,
    common: np.ndarray,
    room: np.ndarray,
    length: int,
    keep_first: bool,
    boundary: int,
    only_against: bool,
) -> np.ndarray:  # pragma: no cover - compiled
    """Flags over the joined bytes before ``boundary`` (the texts of the dataset; the
    held ones follow): where a window of ``length`` bytes begins that also occurs past
    ``boundary``, or (unless ``only_against``) more than once before it (``keep_first``:
    not at its first occurrence). ``common[i]`` is the common prefix of suffixes ``i``
    and ``i + 1``; ``room``, ``_fill_room``'s."""
    n = len(suffixes)
    flags = np.zeros(n, dtype=np.bool_)
    i = 0
    while i < n:
        j = i  # suffixes i..j begin with the same window
        while j + 1 < n:
            # a window within suffix j's text, shared by suffix j + 1: then it holds no
            # separator, so it lies within suffix j + 1's text as well
            if min(common[j], room[suffixes[j]]) < length:
                break
            j += 1
        if j > i:
            first = suffixes[i]
            held = False
            for t in range(i, j + 1):
                first = min(first, suffixes[t])
                held = held or suffixes[t] >= boundary
            if held or not only_against:
                for t in range(i, j + 1):
                    here = suffixes[t]
                    if here < boundary and (held or not keep_first or here != first):
                        flags[here] = True
        i = j + 1
    return flags


@numba.njit(cache=True, nogil=True)
def _spans(
    joined: np.ndarray, begins: np.ndarray, flags: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The windows that ``flags`` mark, merged per text and widened to whole characters
    (a span's first byte moved back off continuation bytes, its end moved on past
    them): rows, starts and ends, in bytes from each text's first byte."""
    rows = []
    starts = []
    ends = []
    for d in range(len(begins) - 1):
        first = begins[d]
        stop = begins[d + 1] - 1
        p = first
        while p < stop:
            if not flags[p]:
                p += 1
                continue
            start = p
            end = p + length
            p += 1
            while p < end:  # windows that begin inside the span extend it
                if flags[p]:
                    end = p + length
                p += 1
            while start > first and (joined[start] & 0xC0) == 0x80:
                start -= 1
            while end < stop and (joined[end] & 0xC0) == 0x80:
                end += 1
            if len(ends) and rows[-1] == d and start <= ends[-1] + first:
                ends[-1] = end - first  # widening made it touch the one before
            else:
                rows.append(d)
                starts.append(start - first)
                ends.append(end - first)
            p = max(p, end)
    return (
        np.array(rows, dtype=np.int64),
        np.array(starts, dtype=np.int64),
        np.array(ends, dtype=np.int64),
    )


@numba.njit(cache=True, nogil=True)
def _first_bad_span(
    offsets: np.ndarray, counts: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> int:  # pragma: no cover - compiled
    """The first row whose spans do not lie in order inside its text, or -1."""
    k = 0
    for d in range(len(counts)):
        size = offsets[d + 1] - offsets[d]
        last = 0
        for _ in range(counts[d]):
            if starts[k] < last or ends[k] <= starts[k] or ends[k] > size:
                return d
            last = ends[k]
            k += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _without_spans(
    data: np.ndarray, offsets: np.ndarray, counts: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Each text without its spans (``counts[d]`` of them, in order, in ``starts`` and
    ``ends``): new bytes, offsets, and the bytes each text lost."""
    n = len(counts)
    out = np.empty(offsets[n] - offsets[0], dtype=np.uint8)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    removed = np.zeros(n, dtype=np.int64)
    written = 0
    k = 0
    for d in range(n):
        begin = offsets[d]
        at = 0
        for _ in range(counts[d]):
            size = starts[k] - at
            out[written : written + size] = data[begin + at : begin + starts[k]]
            written += size
            removed[d] += ends[k] - starts[k]
            at = ends[k]
            k += 1
        size = offsets[d + 1] - begin - at
        out[written : written + size] = data[begin + at : offsets[d + 1]]
        written += size
        out_offsets[d + 1] = written
    return out[:written], out_offsets, removed
