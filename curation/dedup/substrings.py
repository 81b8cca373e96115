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
taken in id order, and the windows of ``min_length`` bytes inside a text (none across a
text's end) that occur more than once are found, with each of their places, in one of
two ways. Where the memory available holds them, a suffix array and its
longest-common-prefix array over all the texts, joined, each followed by a byte that
UTF-8 never holds (0xFF) (libdivsufsort and Kasai's algorithm, through
``pydivsufsort``): suffixes that begin with the same window lie side by side in it, so
one pass over it finds every repeated window. Otherwise the windows' Rabin-Karp hashes
(modulo 2**61 - 1, rolled a byte at a time), in parts by hash, one part after another: a
part's hashes are sorted, its windows whose hash occurs more than once are found again
with a table of those hashes, and the windows of each group are compared byte by byte,
so two windows that only share a hash are never taken for copies. Both ways give the
same spans. Each text loses the union of its repeated windows (without ``keep_first``:
all occurrences; with it: all but the first), widened to whole characters. The rest is
joined as it stands: "Alice wanted to go to the store" without a repeated
" to go to the " reads "Alice wantedstore", as in Lee et al.'s output.
``substring_dedup_bytes_removed`` records what each text lost, and a text left with
nothing but white space is dropped as ``substring_dedup:all_duplicated`` (its text kept
as it came); with ``max_removed_fraction``, so is one that lost more than that share of
its bytes (``substring_dedup:mostly_duplicated``), rather than keep the remains of a
page made mostly of what other pages hold.

With ``against`` (documents kept elsewhere, or a benchmark's items: Lee et al.'s
``across-similar``), every span of ``min_length`` bytes that they hold goes from every
text here, all copies; with ``only_against`` nothing else does. Their texts are read at
the barrier and searched with the dataset's.

Memory at the barrier: every live row's id and text (and the texts of ``against``), and
a byte of flags per byte of the dataset's text. The suffix arrays take about 14 bytes
per byte of text more (``array_bytes``: the joined bytes, their flags, the suffix array,
its LCP array and the room left in each text, int32 each up to 2 GiB of text, int64 past
it); measured by ``benchmarks/substring_dedup.py``, 15 to 18 bytes per byte of text over
a pass-through run's peak. Where they would not fit in the memory available, the window
hashes go in as few parts as fit (``plan_parts``), a part taking up to ``WINDOW_BYTES``
a window of it and each part reading the texts twice more; each of those parts is cut
into one per CPU, run at once in threads in the same memory. In 8 parts one after
another on the benchmark's data: 1.4 to 2.8 times slower, in a half to a third of the
memory. Where even ``MAX_PARTS`` would not fit, the run stops at the barrier before
building anything (``BarrierTooLarge``), saying what to do, and keeps its finished
shards.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
from curation.machine import available_bytes, usable_cpus
from curation.stage import BarrierTooLarge, GlobalStage, register, write_decisions
from curation.utf8 import string_buffers

#: the byte after each text in the suffix arrays: no UTF-8 text holds it
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
        table = keys.select("shard", ID, TEXT).collect().to_arrow()
        text = pc.fill_null(table[TEXT].combine_chunks().cast(pa.large_string()), "")
        order = np.asarray(pc.sort_indices(table[ID]), dtype=np.int64)
        p = self.params
        held = None
        if p.against:
            parts = [t[TEXT].cast(pa.large_string()) for t in against_tables(p, TEXT)]
            held = pa.chunked_array(parts, pa.large_string()).combine_chunks() if parts else None
        docs, starts, ends = duplicate_spans(
            text, p.min_length, p.keep_first, held, p.only_against, order=order, say=self.progress
        )
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
    parts: int | None = None,
    order: np.ndarray | None = None,
    say: Callable[[str], None] | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The byte spans to strike from ``text`` (no nulls), as (row, start, end) arrays
    sorted by row then start, ``start``/``end`` in bytes from the row's first byte,
    disjoint and not touching: every window of ``min_length`` bytes of a text that occurs
    in any text more than once (``keep_first``: that occurs earlier, in ``order`` then
    byte order; ``order``: the rows in the order their copies come, by default as they
    stand), and every one that occurs in a ``held`` text (documents kept elsewhere; with
    ``only_against``, only those), windows merged, each span widened to whole UTF-8
    characters. Found with suffix arrays over all the texts (``parts`` 0), or from the
    windows' hashes in ``parts`` groups by hash, one after another; None: suffix arrays
    where they fit in the memory available, else the fewest parts that do
    (``plan_parts``), each of those parts cut again into as many as ``threads`` (default:
    the CPUs this process may use, up to ``MAX_PARTS`` parts in all) that run at once,
    in the same memory. ``say`` is told which way, and each part as it begins."""
    ours, our_offsets = _from_zero(*string_buffers(text))
    theirs, their_offsets = np.zeros(0, np.uint8), np.zeros(1, np.int64)
    if held is not None and len(held):
        theirs, their_offsets = _from_zero(*string_buffers(pc.fill_null(held, "")))
    size = len(ours)
    windows = _windows(our_offsets, min_length) + _windows(their_offsets, min_length)
    mine = np.arange(len(text), dtype=np.int64) if order is None else order
    if len(mine) != len(text):
        raise ValueError(f"order holds {len(mine):,} rows, the texts {len(text):,}")
    sources = (
        (ours, our_offsets, mine, 0),
        (theirs, their_offsets, np.arange(len(their_offsets) - 1, dtype=np.int64), size),
    )
    joined = size + len(theirs) + len(our_offsets) + len(their_offsets) - 2
    if parts is None:
        parts = plan_parts(joined, windows)
        if parts:  # parts that each take a share of the memory, run that many at once
            threads = threads or max(1, min(usable_cpus(), MAX_PARTS // parts))
            parts *= threads
    threads = max(1, min(threads or 1, parts))
    flags = np.zeros(size, dtype=np.bool_)
    say = say or _silent
    if parts == 0:
        say(f"suffix arrays over {joined / 1e6:,.1f} MB of text")
        _suffix_array_flags(sources, min_length, keep_first, only_against, flags)
    else:
        at_once = f", {threads} at once" if threads > 1 else ""
        say(f"window hashes in {parts} parts{at_once}, over {joined / 1e6:,.1f} MB of text")
        _window_hash_flags(
            sources, windows, parts, threads, min_length, keep_first, only_against, flags, say
        )
    return _spans(ours, our_offsets, flags, min_length)


_Source = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def _silent(text: str) -> None:
    """Says nothing (``duplicate_spans`` without ``say``)."""


def _suffix_array_flags(
    sources: tuple[_Source, _Source],
    length: int,
    keep_first: bool,
    only_against: bool,
    flags: np.ndarray,
) -> None:
    """Flag where a repeated window begins (``_flag``'s rule) with a suffix array and its
    LCP array over all the texts, joined in order, each followed by 0xFF (a byte UTF-8
    never holds): suffixes that begin with the same window lie side by side in it."""
    from pydivsufsort import divsufsort, kasai

    (ours, our_offsets, mine, _), (theirs, their_offsets, _, _) = sources
    joined, begins = _joined(ours, our_offsets, mine, theirs, their_offsets)
    if len(joined) == len(begins) - 1:  # no text has bytes
        return
    suffixes = divsufsort(joined)
    common = kasai(joined, suffixes)
    room = np.empty(len(joined), dtype=np.int32 if len(joined) < 2**31 else np.int64)
    _fill_room(begins, room)
    found = _repeated_windows(
        suffixes, common, room, length, keep_first, begins[len(mine)], only_against
    )
    del suffixes, common, room
    _flags_in_place(found, begins, our_offsets, mine, flags)


def _window_hash_flags(
    sources: tuple[_Source, _Source],
    windows: int,
    parts: int,
    threads: int,
    length: int,
    keep_first: bool,
    only_against: bool,
    flags: np.ndarray,
    say: Callable[[str], None],
) -> None:
    """Flag where a repeated window begins (``_flag``'s rule) from the windows' hashes,
    in ``parts`` parts by hash, ``threads`` at once (each ``say``'d as it begins). The
    compiled steps and numpy's sort let go of the GIL, and the parts flag different
    bytes (a window's first byte is in its hash's part alone)."""
    (ours, *_), (theirs, *_) = sources
    hashing = _Hashing(length)
    counts = np.array([windows], dtype=np.int64)
    if parts > 1:
        counts = np.zeros(parts, dtype=np.int64)
        for data, offsets, rows, shift in sources:
            hashing.scan(data, offsets, rows, shift, parts, 0, _COUNT, counts)

    def one(part: int) -> None:
        say(f"windows of part {part + 1} of {parts}")
        hashes = np.empty(counts[part], dtype=np.uint64)
        at = 0
        for data, offsets, rows, shift in sources:
            at = hashing.scan(data, offsets, rows, shift, parts, part, _HASHES, hashes, at=at)
        hashes.sort()
        keys, bounds = _repeated(hashes)
        del hashes
        if not len(keys):
            return
        table, sieve = _table(keys, bounds)
        places = np.empty(bounds[-1], dtype=np.int64)
        for data, offsets, rows, shift in sources:
            hashing.scan(data, offsets, rows, shift, parts, part, _PLACES, places, table, sieve)
        del table, sieve
        _flag(ours, theirs, length, bounds, places, keep_first, only_against, flags)

    if threads == 1:
        for part in range(parts):
            one(part)
        return
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(parts)))  # an error in a part is raised here


#: bytes of memory a window of a part may take at its peak, over the flags: its hash
#: (8, sorted in place) and, where every window of the part repeats in pairs, half a key
#: and half a bound (8), half of up to four table slots of 16 bytes (32) and of the
#: sieve's 2 bytes (1), and its place (8): 49, and room to spare
WINDOW_BYTES = 56
#: the most parts ``plan_parts`` makes: each reads every text twice more
MAX_PARTS = 64


def plan_parts(size: int, windows: int, have: int | None = None) -> int:
    """How to find the repeated windows of ``size`` bytes of texts (the dataset's and
    ``against``'s, and a byte between two) in ``have`` bytes of memory (default:
    ``available_bytes``): 0 where the suffix arrays fit (``array_bytes``; also where the
    memory is not known), otherwise the fewest parts for the window hashes, so that a
    part's working memory (``WINDOW_BYTES`` a window) and the flags fit. Raises
    ``BarrierTooLarge`` where even ``MAX_PARTS`` would not fit, before anything is built."""
    have = available_bytes() if have is None else have
    if have is None or array_bytes(size) <= have:
        return 0
    least = least_bytes(size, windows)
    if least > have:
        raise BarrierTooLarge(
            f"substring_dedup: the windows of {size / 1e9:,.2f} GB of text need about "
            f"{least / 2**30:,.1f} GiB at least, more than the {have / 2**30:,.1f} GiB "
            "available on this machine. Run it over fewer documents (a dump or a source at a "
            "time, with `against` the ones done), or on a machine with more memory, with the "
            "same curate run command: the shards finished before the barrier are kept"
        )
    return max(1, -(-windows * WINDOW_BYTES // (have - size)))


def array_bytes(size: int) -> int:
    """The bytes the suffix arrays over ``size`` joined bytes take at their peak: the
    bytes, their flags and the dataset's flags (1 each), the suffix array, its LCP array
    and Kasai's ranks or the room array (int32 each below 2 GiB, int64 past it)."""
    return size * (3 + 3 * (4 if size < 2**31 else 8))


def least_bytes(size: int, windows: int) -> int:
    """The least memory the windows need beyond the texts: the flags (a byte per byte of
    text, ``size``) and one part of ``MAX_PARTS`` (``WINDOW_BYTES`` a window)."""
    return size + -(-windows * WINDOW_BYTES // MAX_PARTS)


def _from_zero(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of a string array's slice and its offsets from 0 (views, no copy)."""
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def _windows(offsets: np.ndarray, length: int) -> int:
    """How many windows of ``length`` bytes lie inside the texts."""
    return int(np.maximum(np.diff(offsets) - (length - 1), 0).sum())


#: the Mersenne prime 2**61 - 1, the modulus of the window hashes
_PRIME = (1 << 61) - 1
#: their base, below 2**31 (``_times_base``); fixed, so a run's hashes are reproducible
_BASE = 1_234_567_891
#: ``_Hashing.scan``'s modes
_COUNT, _HASHES, _PLACES = 0, 1, 2
#: an empty slot of ``_table`` (no hash reaches 2**63)
_EMPTY = np.uint64(1 << 63)


_NO_KEYS = np.zeros(0, dtype=np.uint64)
_NO_TABLE = np.zeros((0, 2), dtype=np.uint64)


class _Hashing:
    """Rabin-Karp hashes of every window of ``length`` bytes, modulo 2**61 - 1: window
    ``w`` hashes to sum((w[i] + 1) * base**(length - 1 - i)); a window's part is given by its
    hash's top bits (``_part_of``)."""

    def __init__(self, length: int) -> None:
        self.length = length
        top = pow(_BASE, length, _PRIME)  # what the byte leaving a window weighs then
        self.leaving = np.array([(c + 1) * top % _PRIME for c in range(256)], dtype=np.uint64)

    def scan(
        self,
        data: np.ndarray,
        offsets: np.ndarray,
        rows: np.ndarray,
        shift: int,
        parts: int,
        part: int,
        mode: int,
        out: np.ndarray,
        table: np.ndarray = _NO_TABLE,
        sieve: np.ndarray = _NO_KEYS,
        at: int = 0,
    ) -> int:
        """One pass over the windows of ``data``'s texts, in the order of ``rows``
        (indexes of ``offsets``), so that the places of a group come in that order, then
        byte order: ``_COUNT`` adds each part's windows to ``out``; ``_HASHES`` writes the
        hashes of ``part``'s from ``out[at]`` on and returns where it stopped; ``_PLACES``
        writes the place (``shift`` + byte) of each of ``part``'s windows whose hash
        ``table`` holds where the table says its group's next place goes."""
        return _scan(
            data, offsets, rows, shift, self.length, self.leaving, parts, part, mode, out,
            table, sieve, at,
        )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _joined(
    ours: np.ndarray,
    our_offsets: np.ndarray,
    rows: np.ndarray,
    theirs: np.ndarray,
    their_offsets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The texts' bytes, ours in the order of ``rows`` then theirs, each followed by 0xFF,
    and where each text begins in them."""
    n = len(rows) + len(their_offsets) - 1
    out = np.empty(len(ours) + len(theirs) + n, dtype=np.uint8)
    begins = np.empty(n + 1, dtype=np.int64)
    at = 0
    for k in range(n):
        begins[k] = at
        if k < len(rows):
            text = ours[our_offsets[rows[k]] : our_offsets[rows[k] + 1]]
        else:
            d = k - len(rows)
            text = theirs[their_offsets[d] : their_offsets[d + 1]]
        out[at : at + len(text)] = text
        at += len(text)
        out[at] = _SEPARATOR
        at += 1
    begins[n] = at
    return out, begins


@numba.njit(cache=True, nogil=True)
def _flags_in_place(
    found: np.ndarray, begins: np.ndarray, offsets: np.ndarray, rows: np.ndarray, flags: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Copy the flags ``found`` over the joined texts to ``flags`` over ours as they lie."""
    for k in range(len(rows)):
        d = rows[k]
        flags[offsets[d] : offsets[d + 1]] = found[begins[k] : begins[k + 1] - 1]


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


@numba.njit(inline="always")
def _times_base(h: np.uint64, base: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """``h * base`` modulo 2**61 - 1, for ``h`` below the modulus and ``base`` below 2**31:
    the product's halves folded, as 2**61 is 1 there."""
    prime = np.uint64(_PRIME)
    high = (h >> np.uint64(32)) * base  # below 2**60
    low = (h & np.uint64(0xFFFFFFFF)) * base  # below 2**63
    x = ((high << np.uint64(32)) & prime) + (high >> np.uint64(29))
    x += (low & prime) + (low >> np.uint64(61))
    x = (x & prime) + (x >> np.uint64(61))
    return x - prime if x >= prime else x


@numba.njit(cache=True, nogil=True)
def _scan(
    data: np.ndarray,
    offsets: np.ndarray,
    rows: np.ndarray,
    shift: int,
    length: int,
    leaving: np.ndarray,
    parts: int,
    part: int,
    mode: int,
    out: np.ndarray,
    table: np.ndarray,
    sieve: np.ndarray,
    at: int,
) -> int:  # pragma: no cover - compiled
    """``_Hashing.scan``: the rolling hash over each text, a window at each byte once
    ``length`` bytes are in (none across a text's end)."""
    prime = np.uint64(_PRIME)
    base = np.uint64(_BASE)
    count = np.uint64(parts)
    wanted = np.uint64(part)
    mask = np.uint64(len(table) - 1) if len(table) else np.uint64(0)
    empty = np.uint64(_EMPTY)
    sieve_mask = np.uint64(len(sieve) * 64 - 1) if len(sieve) else np.uint64(0)
    for d in rows:
        first = offsets[d]
        stop = offsets[d + 1]
        if stop - first < length:
            continue
        h = np.uint64(0)
        for p in range(first, stop):
            h = _times_base(h, base) + np.uint64(data[p]) + np.uint64(1)
            if p - first >= length:
                gone = leaving[data[p - length]]
                h = h + prime - gone if h < gone else h - gone
            if h >= prime:
                h -= prime
            if p - first < length - 1:
                continue
            if mode == _COUNT:
                out[_part_of(h, count)] += 1
                continue
            if parts > 1 and _part_of(h, count) != wanted:
                continue
            if mode == _HASHES:
                out[at] = h
                at += 1
                continue
            bit = (h * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(16) & sieve_mask
            if not (sieve[bit >> np.uint64(6)] >> (bit & np.uint64(63))) & np.uint64(1):
                continue
            s = (h * np.uint64(0xC2B2AE3D27D4EB4F)) >> np.uint64(16) & mask
            while table[s, 0] != h and table[s, 0] != empty:
                s = (s + np.uint64(1)) & mask
            if table[s, 0] == empty:
                continue
            out[table[s, 1]] = shift + p - length + 1
            table[s, 1] += 1
    return at


@numba.njit(inline="always")
def _part_of(h: np.uint64, parts: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """The part of a window hashed to ``h`` (below 2**61): its top 32 bits scaled to
    ``parts``, a multiplication where ``h % parts`` would take a division a byte."""
    return ((h >> np.uint64(29)) * parts) >> np.uint64(32)


@numba.njit(cache=True, nogil=True)
def _repeated(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """The hashes that occur more than once in sorted ``hashes``, and the bounds of their
    groups of places (``len + 1``: group g has ``bounds[g + 1] - bounds[g]`` windows)."""
    n = len(hashes)
    found = 0
    for i in range(1, n):
        if hashes[i] == hashes[i - 1] and (i == 1 or hashes[i - 1] != hashes[i - 2]):
            found += 1
    keys = np.empty(found, dtype=np.uint64)
    bounds = np.zeros(found + 1, dtype=np.int64)
    k = 0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and hashes[j + 1] == hashes[i]:
            j += 1
        if j > i:
            keys[k] = hashes[i]
            bounds[k + 1] = bounds[k] + j - i + 1
            k += 1
        i = j + 1
    return keys, bounds


@numba.njit(cache=True, nogil=True)
def _table(
    keys: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """An open-addressing table of ``keys`` (a power of two of slots, at least twice
    their number), each slot a key (``_EMPTY`` where none) and where the next place of
    its group goes (from ``bounds[g]`` on: side by side, so a look-up and a write take
    one cache line), and a sieve of about 8 bits a key that most hashes not in the table
    miss."""
    size = 1
    while size < 2 * len(keys):
        size *= 2
    table = np.empty((size, 2), dtype=np.uint64)
    table[:, 0] = _EMPTY
    mask = np.uint64(size - 1)
    bits = 64
    while bits < 8 * len(keys):
        bits *= 2
    sieve = np.zeros(bits // 64, dtype=np.uint64)
    sieve_mask = np.uint64(bits - 1)
    for g in range(len(keys)):
        h = keys[g]
        s = (h * np.uint64(0xC2B2AE3D27D4EB4F)) >> np.uint64(16) & mask
        while table[s, 0] != _EMPTY:
            s = (s + np.uint64(1)) & mask
        table[s, 0] = h
        table[s, 1] = bounds[g]
        bit = (h * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(16) & sieve_mask
        sieve[bit >> np.uint64(6)] |= np.uint64(1) << (bit & np.uint64(63))
    return table, sieve


@numba.njit(inline="always")
def _same(
    ours: np.ndarray, theirs: np.ndarray, a: int, b: int, length: int
) -> bool:  # pragma: no cover - compiled
    """Whether the windows at places ``a`` and ``b`` hold the same bytes (a place past
    ``ours`` is in ``theirs``)."""
    size = len(ours)
    x = ours if a < size else theirs
    y = ours if b < size else theirs
    i = a if a < size else a - size
    j = b if b < size else b - size
    q = 0
    while q < length and x[i + q] == y[j + q]:
        q += 1
    return q == length


@numba.njit(cache=True, nogil=True)
def _flag(
    ours: np.ndarray,
    theirs: np.ndarray,
    length: int,
    bounds: np.ndarray,
    places: np.ndarray,
    keep_first: bool,
    only_against: bool,
    flags: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Flag, in ``flags`` over ``ours``, where a window begins that also occurs in
    ``theirs``, or (unless ``only_against``) more than once in ``ours`` (``keep_first``:
    not at its first place). A group of places (in the order the texts come, then byte
    order) shares a hash; its windows are
    compared byte by byte, so two windows that only share a hash are never taken for one."""
    size = len(ours)
    same_as = np.empty(16, dtype=np.int64)
    for g in range(len(bounds) - 1):
        low = bounds[g]
        n = bounds[g + 1] - low
        if len(same_as) < n:
            same_as = np.empty(2 * n, dtype=np.int64)
        for t in range(n):  # the first place with the same bytes (itself where none)
            same_as[t] = t
            for u in range(t):
                if same_as[u] == u and _same(
                    ours, theirs, places[low + t], places[low + u], length
                ):
                    same_as[t] = u
                    break
        for t in range(n):
            if same_as[t] != t:
                continue
            copies = 0
            held = False
            for u in range(t, n):
                if same_as[u] == t:
                    copies += 1
                    held = held or places[low + u] >= size
            if copies < 2 or (only_against and not held):
                continue
            for u in range(t, n):
                here = places[low + u]
                if same_as[u] == t and here < size and (held or not keep_first or u != t):
                    flags[here] = True


@numba.njit(cache=True, nogil=True)
def _spans(
    data: np.ndarray, offsets: np.ndarray, flags: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The windows that ``flags`` mark, merged per text and widened to whole characters
    (a span's first byte moved back off continuation bytes, its end moved on past
    them): rows, starts and ends, in bytes from each text's first byte."""
    rows = []
    starts = []
    ends = []
    for d in range(len(offsets) - 1):
        first = offsets[d]
        stop = offsets[d + 1]
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
            while start > first and (data[start] & 0xC0) == 0x80:
                start -= 1
            while end < stop and (data[end] & 0xC0) == 0x80:
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
