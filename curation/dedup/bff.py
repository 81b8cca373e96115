"""``bff_dedup``: DCLM-Baseline's deduplication (BFF's ``old-both`` mode), exact and in id order.

DCLM-Baseline deduplicated its pool with BFF, the "big friendly filter" of DCLM's
repository (Rust), run as ``--remove-type old-both --min-ngram-size 13 --max-ngram-size
13 --filtering-threshold 0.8``. BFF takes the documents in turn and cuts each text into
paragraphs at every ``\\n`` (a paragraph after the first begins with its ``\\n``), and
its words are the pieces between Unicode word boundaries (UAX #29) that are not all
white space, punctuation included. For each paragraph in turn:

- its n-grams are its runs of ``ngram`` consecutive words; a paragraph with fewer words
  but at least ``min_ngram`` has one n-gram of all of them, and a shorter one has none
  (it always stays);
- the paragraph goes when more than ``threshold`` of its n-grams are already held;
  otherwise all its n-grams are added to those held (before the next paragraph is
  looked at, so a paragraph's own repeats never count against it, and a paragraph
  repeated within one document goes the second time);
- when the paragraphs are done, the document goes whole if more than ``threshold`` of
  all its n-grams were held (its kept paragraphs' n-grams stay held, as in BFF); with
  ``documents: false`` it never does (BFF's ``paragraph`` mode).

This stage does the same, with these differences:

- By default the n-grams held are a set of 64-bit hashes of the n-grams, not a Bloom
  filter: no false positives (DCLM allowed 1% an n-gram), and no filter size to guess.
  ``filter: bloom`` holds them in BFF's Bloom filter instead, sized for every n-gram
  read at ``false_positive_rate`` (DCLM's 0.01: 9.6 bits and 7 hashes an n-gram), for
  corpora whose distinct n-grams would not fit in memory as a table.
- The documents are taken in id order (the smallest first), not in a random order of
  files shared by threads, so the output is the same on every run, executor and number
  of workers.
- A text that was only white space before this stage stays (BFF's output leaves out
  every text that is empty once trimmed, touched or not).
- Unicode word boundaries are cut by a compiled scan of UAX #29's rules over the
  Word_Break classes of the ``regex`` module's Unicode data, and a text with a
  character of the rarer rules (combining and format marks, joiners, flags, Hebrew,
  Katakana) by the ``regex`` module itself (its word mode, as ``dclm_repetition`` cuts
  DCLM's words); BFF takes them from the Rust crate ``unicode-segmentation``, whose
  Unicode version may differ. White space is Unicode's White_Space property, as Rust's.

A global stage. Before the barrier each live row gets the hash of every n-gram, in order,
and the number of n-grams of each of its paragraphs (hashed as the compiled scan cuts a
text's words, one text's words held at a time). At the barrier the rows are taken in
id order by a compiled pass over an open-addressing table of hashes, a group of shards at
a time: the shards whose ids interleave form a group (shards of one input file each
usually make a group each), and the groups' id ranges follow each other. After it a text
loses its removed paragraphs (the rest joined as they stand, so a removed first
paragraph leaves the text beginning with the next one's ``\\n``), and:

- ``bff_dedup:duplicate_document``: more than ``threshold`` of the text's n-grams were
  held (the text stays as it came);
- ``bff_dedup:all_duplicated``: what is left of the text is only white space (as it came);
- ``bff_dedup_paragraphs_removed`` counts the paragraphs that went, and
  ``bff_dedup_contained_fraction`` is the share of the text's n-grams held before it
  (BFF's ``bff_contained_ngram_count_before_dedupe`` over its n-grams; null for a text
  with none).

``against`` (documents kept elsewhere) fills the table before the first document: every
n-gram of theirs is held (BFF's filter loaded from a file). ``only_against`` adds nothing
of this dataset's to it (BFF's ``--no-update-bloom-filter``).

Memory at the barrier: the rows' ids, a table of 16 to 32 bytes per distinct n-gram held
(it doubles when half full; a Bloom filter: -ln(p) / ln(2)^2 / 8 bytes per n-gram read,
1.2 at 1%), and 8 bytes per n-gram (about one per word) of the group of
shards being taken, plus one of its shard files as read. Where that would not fit in the
memory available with every n-gram distinct, the run stops at the barrier
(``BarrierTooLarge``) before building anything, saying what to do, and resumes from the
finished shards.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from curation.batch import ID, TEXT, with_drop_reason
from curation.dedup.common import AgainstParams
from curation.dedup.lines import _line_positions, against_hashes
from curation.dedup.minhash import _shingle_weights, shingle_counts, shingle_hashes
from curation.machine import available_bytes
from curation.stage import BarrierTooLarge, GlobalStage, register, write_decisions
from curation.uax29 import WHITE_SPACE, paragraph_ngrams, words

_HASHES = "_bff_dedup_hashes"
_COUNTS = "_bff_dedup_counts"
_SEED = 13
#: bytes of the barrier per n-gram read (its hash) and per slot of the table
_HASH_BYTES = 8
#: the smallest Bloom filter, in bits (8 KiB)
_MIN_BLOOM_BITS = 1 << 16


class BffDedupParams(AgainstParams):
    ngram: int = Field(13, ge=1, description="words per n-gram (BFF's max_ngram_size; DCLM: 13)")
    min_ngram: int = Field(
        13,
        ge=1,
        description="a paragraph with fewer words than `ngram` but at least this many is one "
        "n-gram; fewer: none, it stays (BFF's min_ngram_size; DCLM: 13)",
    )
    threshold: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="a paragraph (and a document) goes when more than this share of its "
        "n-grams were seen before (DCLM: 0.8)",
    )
    filter: Literal["exact", "bloom"] = Field(
        "exact",
        description="how the n-grams seen are held: exact (64-bit hashes in a table, 16 "
        "to 32 bytes per distinct n-gram) or bloom (BFF's Bloom filter, sized for every "
        "n-gram read at `false_positive_rate`: about 1.2 bytes an n-gram at 1%)",
    )
    false_positive_rate: float = Field(
        0.01,
        gt=0.0,
        lt=1.0,
        description="with filter: bloom, the chance that an n-gram never seen is taken as "
        "seen (DCLM: 0.01)",
    )
    documents: bool = Field(
        True,
        description="also drop a document when more than `threshold` of all its n-grams "
        "were seen before (BFF's old-both, DCLM's); false: paragraphs only (BFF's "
        "paragraph mode)",
    )


@register
class BffDedup(GlobalStage):
    """DCLM-Baseline's BFF dedup (old-both): paragraphs, then documents, whose n-grams were
    mostly seen before, in id order; adds ``bff_dedup_paragraphs_removed`` and
    ``bff_dedup_contained_fraction``."""

    name = "bff_dedup"
    help = "DCLM's BFF dedup: remove paragraphs and documents of 13-grams mostly seen before"
    Params = BffDedupParams
    params: BffDedupParams
    internal_columns = (_HASHES, _COUNTS)
    keys_by_library = True  # words are cut with the regex module's and pyarrow's Unicode data

    def applied_columns(self) -> list[str]:
        return [_COUNTS]  # a text's n-grams are counted from its paragraphs'

    def measure(self, table: pa.Table) -> pa.Table:
        hashes, counts = ngrams(table[TEXT], self.params.ngram, self.params.min_ngram)
        return table.append_column(_HASHES, hashes).append_column(_COUNTS, counts)

    def decide(self, keys: Any, folder: Path) -> None:
        p = self.params
        held = against_hashes(self, _HASHES, folder)
        held = np.empty(0, np.uint64) if held is None else held
        index = keys.select(
            "shard", ID, pl.col(_COUNTS).cast(pl.List(pl.Int64)).list.sum().alias("ngrams")
        ).collect()
        groups = shards_apart(index)
        per_shard = dict(index.group_by("shard").agg(pl.col("ngrams").sum()).iter_rows())
        sizes = [sum(per_shard[shard] for shard in group) for group in groups]
        total = sum(sizes)
        to_hold = len(held) + (0 if p.only_against else total)
        rate = p.false_positive_rate if p.filter == "bloom" else None
        need = HeldNgrams.most_bytes(to_hold, rate) + max(sizes, default=0) * 2 * _HASH_BYTES
        have = available_bytes()
        if have is not None and need > have:
            raise BarrierTooLarge(
                f"bff_dedup: {index.height:,} documents with {total:,} n-grams reach the "
                f"barrier, whose table and hashes could take up to {need / 2**30:.1f} GiB "
                f"(every n-gram distinct), and {have / 2**30:.1f} GiB are available. "
                + (
                    "Hold them in BFF's Bloom filter (`filter: bloom`, about 1.2 bytes an "
                    "n-gram at 1% false positives), run it "
                    if rate is None
                    else "Run it "
                )
                + "on a machine with more memory, or on fewer documents a run (each run's "
                "kept/ as `against` of the next); the same command resumes from the "
                "finished shards"
            )
        self.progress(f"{index.height:,} documents, {total:,} n-grams, in id order")
        table = HeldNgrams(held, to_hold, rate)
        if rate is not None:
            self.progress(
                f"a Bloom filter of {table.bits.nbytes / 2**20:,.1f} MiB, {table.hashers} "
                f"hashes an n-gram, for {to_hold:,} n-grams at {rate:g} false positives"
            )
        decided, done = [], 0
        for number, (group, size) in enumerate(zip(groups, sizes, strict=True), 1):
            rest, hashes, hash_offsets = self._group_keys(keys, group, size)
            counts, count_offsets = flat_lists(rest[_COUNTS])
            contained, removed = table.take(
                hashes,
                hash_offsets,
                counts,
                count_offsets,
                np.asarray(pc.sort_indices(rest[ID]), dtype=np.int64),
                p.threshold,
                not p.only_against,
            )
            del hashes
            decided.append(_decisions(rest, contained, removed))
            done += rest.num_rows
            if len(groups) > 1:
                self.progress(
                    f"{done:,} of {index.height:,} documents in id order (group {number} "
                    f"of {len(groups)}: shards whose ids interleave go together)"
                )
        if decided:
            decisions = pa.concat_tables(decided, promote_options="permissive")
            write_decisions(pl.from_arrow(decisions), folder)

    def _group_keys(
        self, keys: Any, group: list[str], size: int
    ) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """The rows of the shards ``group`` (``size`` n-grams): their ``shard``, id and
        paragraphs' counts, their n-grams' hashes in one array and each row's offsets
        into it. Read a shard part at a time from ``key_sources`` where the barrier gave
        them (only the hashes of the group are held at once), else from ``keys``."""
        columns = [ID, _HASHES, _COUNTS]
        if self.key_sources:
            parts: Iterable[pa.Table] = _read_parts(self.key_sources, group, columns)
        else:
            chosen = keys.filter(pl.col("shard").is_in(group)).select("shard", *columns)
            parts = [chosen.collect().to_arrow()]
        hashes = np.empty(size, dtype=np.uint64)
        offsets, rest, at = [np.zeros(1, np.int64)], [], 0
        for part in parts:
            for chunk in part[_HASHES].chunks:
                bounds = np.asarray(chunk.offsets, dtype=np.int64)
                values = np.asarray(chunk.values[bounds[0] : bounds[-1]], dtype=np.uint64)
                hashes[at : at + len(values)] = values
                offsets.append(bounds[1:] - bounds[0] + at)
                at += len(values)
            rest.append(part.drop_columns([_HASHES]))
        if at != size:
            raise RuntimeError(f"bff_dedup: {at:,} n-gram hashes where the counts say {size:,}")
        return pa.concat_tables(rest, promote_options="permissive"), hashes, np.concatenate(offsets)

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        n = table.num_rows
        p = self.params
        counts, offsets = flat_lists(table[_COUNTS])
        sums = np.r_[0, np.cumsum(counts, dtype=np.int64)]
        total = sums[offsets[1:]] - sums[offsets[:-1]]  # n-grams per text
        contained = np.zeros(n, dtype=np.int64)
        removed: list[list[int]] = [[] for _ in range(n)]
        if decisions is not None and decisions.num_rows:
            where = pc.index_in(decisions[ID], table[ID])
            rows = np.asarray(where.fill_null(-1), dtype=np.int64)
            found = rows >= 0
            contained[rows[found]] = np.asarray(decisions["contained"], dtype=np.int64)[found]
            for row, paragraphs in zip(
                rows[found], decisions["removed"].filter(pa.array(found)).to_pylist(), strict=True
            ):
                removed[row] = paragraphs or []
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = contained / total
        whole = (total > 0) & (fraction > p.threshold) & p.documents
        texts = table[TEXT]
        emptied = np.zeros(n, dtype=bool)
        changed = [row for row in range(n) if removed[row] and not whole[row]]
        if changed:
            values = texts.to_pylist()
            for row in changed:
                left = without_paragraphs(values[row], removed[row])
                if left.strip(WHITE_SPACE):
                    values[row] = left
                else:
                    emptied[row] = True
            index = table.column_names.index(TEXT)
            table = table.set_column(index, TEXT, pa.array(values, texts.type))
        table = table.append_column(
            "bff_dedup_paragraphs_removed", pa.array([len(r) for r in removed], pa.int64())
        )
        table = table.append_column(
            "bff_dedup_contained_fraction", pa.array(fraction, mask=total == 0)
        )
        table = with_drop_reason(table, pa.array(whole), self.reason("duplicate_document"))
        return with_drop_reason(table, pa.array(emptied), self.reason("all_duplicated"))


def ngrams(texts: pa.ChunkedArray | pa.Array, n: int, least: int) -> tuple[pa.Array, pa.Array]:
    """Per text: the hashes of its n-grams in order (a list of uint64), and the number of
    n-grams of each of its paragraphs (a list of int32; a null text has one paragraph
    with none). Runs of ``n`` words within a paragraph; a paragraph of ``least`` to
    ``n - 1`` words is one n-gram of all of them, a shorter one has none.

    The compiled scan hashes a text's n-grams as it cuts its words (``paragraph_ngrams``),
    holding one text's words at a time; a text of the rarer rules goes through
    ``ngrams_of_words`` and is put back in its place."""
    weights = _shingle_weights(n, _SEED)
    hashes, offsets, made, made_offsets, hard = paragraph_ngrams(texts, weights, min(least, n))
    if hard.any():
        theirs, their_made = ngrams_of_words(pc.filter(texts, pa.array(hard)), n, least)
        hashes, offsets = _spliced_lists(hard, hashes, offsets, *flat_lists(theirs))
        made, made_offsets = _spliced_lists(hard, made, made_offsets, *flat_lists(their_made))
    return (
        pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(hashes, pa.uint64())),
        pa.ListArray.from_arrays(pa.array(made_offsets, pa.int32()), pa.array(made, pa.int32())),
    )


def ngrams_of_words(
    texts: pa.ChunkedArray | pa.Array, n: int, least: int
) -> tuple[pa.Array, pa.Array]:
    """``ngrams`` from the arrays of all the texts' words (``uax29.words``): the way for
    the texts the compiled scan leaves to the regex module, and its reference."""
    tokens, _, paragraph, paragraph_offsets, _ = words(texts)
    counts = np.bincount(paragraph, minlength=int(paragraph_offsets[-1]))
    counts[counts < min(least, n)] = 0
    tokens = tokens[counts[paragraph] > 0]
    hashes = shingle_hashes(tokens, counts.astype(np.int64), n, _SEED)
    made = shingle_counts(counts, n)
    made_offsets = np.r_[0, np.cumsum(made)]
    return (
        pa.ListArray.from_arrays(
            pa.array(made_offsets[paragraph_offsets], pa.int32()),
            pa.array(hashes, pa.uint64()),
        ),
        pa.ListArray.from_arrays(
            pa.array(paragraph_offsets, pa.int32()), pa.array(made, pa.int32())
        ),
    )


@numba.njit(cache=True, nogil=True)
def _spliced_lists(
    hard: np.ndarray,
    values: np.ndarray,
    offsets: np.ndarray,
    their_values: np.ndarray,
    their_offsets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Row ``d``'s list from (``values``, ``offsets``) or, where ``hard[d]``, the next of
    (``their_values``, ``their_offsets``), which hold the hard rows alone: flat values
    and each row's offsets."""
    n = len(hard)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    theirs = 0
    for d in range(n):
        if hard[d]:
            size = their_offsets[theirs + 1] - their_offsets[theirs]
            theirs += 1
        else:
            size = offsets[d + 1] - offsets[d]
        out_offsets[d + 1] = out_offsets[d] + size
    out = np.empty(out_offsets[n], dtype=values.dtype)
    theirs = 0
    for d in range(n):
        if hard[d]:
            begin, end = their_offsets[theirs], their_offsets[theirs + 1]
            out[out_offsets[d] : out_offsets[d + 1]] = their_values[begin:end]
            theirs += 1
        else:
            out[out_offsets[d] : out_offsets[d + 1]] = values[offsets[d] : offsets[d + 1]]
    return out, out_offsets


def _read_parts(
    sources: dict[str, list[Path]], group: list[str], columns: list[str]
) -> Iterator[pa.Table]:
    """The ``columns`` of each Parquet file of the shards ``group``, one at a time, with
    the shard's key as ``shard``."""
    for shard in group:
        for path in sources[shard]:
            part = pq.read_table(path, columns=columns)
            yield part.append_column("shard", pa.repeat(shard, part.num_rows))


def _decisions(rest: pa.Table, contained: np.ndarray, removed: np.ndarray) -> pa.Table:
    """The decisions of the rows of ``rest`` (``shard``, id, paragraphs' counts) that had
    an n-gram held before them: its number, and the paragraphs (from 0) that go."""
    _, paragraph_rows, local = _line_positions(rest[_COUNTS].combine_chunks())
    gone = np.flatnonzero(removed)
    offsets = np.searchsorted(paragraph_rows[gone], np.arange(rest.num_rows + 1))
    lists = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(local[gone], pa.int32())
    )
    decisions = pa.table(
        {"shard": rest["shard"], ID: rest[ID], "contained": pa.array(contained), "removed": lists}
    )
    return decisions.filter(pa.array(contained > 0))


def shards_apart(index: pl.DataFrame) -> list[list[str]]:
    """The shards of ``index`` (a row per document: ``shard``, id) in groups, in id order:
    a group's ids interleave with no other group's (each group's smallest id is past the
    largest of every group before it), so taking the groups in turn, each in id order,
    takes every document in id order. Shards of one file each usually make a group each."""
    spans = (
        index.group_by("shard")
        .agg(pl.col(ID).min().alias("first"), pl.col(ID).max().alias("last"))
        .sort("first", "shard")
    )
    groups: list[list[str]] = []
    reach = ""
    for shard, first, last in spans.iter_rows():
        if groups and first <= reach:
            groups[-1].append(shard)
            reach = max(reach, last)
        else:
            groups.append([shard])
            reach = last
    return groups


def flat_lists(lists: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A list column's values, flat, and each row's offsets into them (from 0)."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks() if lists.num_chunks else pa.array([], lists.type)
    offsets = np.asarray(lists.offsets, dtype=np.int64)
    values = np.asarray(lists.values[offsets[0] : offsets[-1]])
    return values, offsets - offsets[0]


def without_paragraphs(text: str, removed: list[int]) -> str:
    """``text`` without the paragraphs numbered in ``removed`` (from 0; a paragraph after
    the first begins with its ``\\n``), the rest joined as it stands."""
    starts = [0]
    at = text.find("\n")
    while at >= 0:
        starts.append(at)
        at = text.find("\n", at + 1)
    starts.append(len(text))
    gone = set(removed)
    return "".join(text[starts[k] : starts[k + 1]] for k in range(len(starts) - 1) if k not in gone)


def table_slots(held: int) -> int:
    """Slots of the open-addressing table for ``held`` hashes: a power of two, at least
    twice as many."""
    return 1 << max(4, int(2 * held).bit_length())


class HeldNgrams:
    """The n-gram hashes held so far. Exact (``rate`` None): an open-addressing table of
    uint64 (0 marks an empty slot, and a hash of 0 is held as 1) that doubles when half
    full. Or, with a false-positive ``rate``, BFF's Bloom filter sized for ``expected``
    n-grams: ``bits`` (uint64 words) and ``hashers`` bits an n-gram (``bloom_size``),
    its bits found by enhanced double hashing from the n-gram's hash ``h`` and a second
    hash ``g`` mixed from it: ``x = h``, then ``x += g`` and ``g += i`` after bit ``i``,
    mod m (plain ``h + i g`` repeats patterns where m is small)."""

    def __init__(self, held: np.ndarray, expected: int = 0, rate: float | None = None) -> None:
        self.hashers = 0
        self.bits = np.zeros(1, dtype=np.uint64)
        if rate is None:
            self.table = np.zeros(table_slots(max(len(held), 1 << 15)), dtype=np.uint64)
            self.used = _hold_all(self.table, held)
            return
        size, self.hashers = bloom_size(max(expected, len(held), 1), rate)
        self.bits = np.zeros(size // 64, dtype=np.uint64)
        self.table = np.zeros(16, dtype=np.uint64)  # not used
        self.used = 0
        _bloom_add_all(self.bits, self.hashers, held)

    @staticmethod
    def most_bytes(expected: int, rate: float | None) -> int:
        """The most bytes it takes to hold ``expected`` n-grams, all distinct."""
        if rate is None:
            return table_slots(expected) * _HASH_BYTES
        return bloom_size(max(expected, 1), rate)[0] // 8

    def take(
        self,
        hashes: np.ndarray,
        hash_offsets: np.ndarray,
        counts: np.ndarray,
        count_offsets: np.ndarray,
        order: np.ndarray,
        threshold: float,
        update: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """BFF over the rows in ``order``: row ``r``'s n-gram hashes are
        ``hashes[hash_offsets[r]:hash_offsets[r + 1]]``, its paragraphs' numbers of n-grams
        ``counts[count_offsets[r]:count_offsets[r + 1]]``; with ``update`` a kept
        paragraph's n-grams are held after it. Returns each row's number of n-grams held
        before it (int64) and whether each paragraph goes (bool, as ``counts``)."""
        contained = np.zeros(len(hash_offsets) - 1, dtype=np.int64)
        removed = np.zeros(len(counts), dtype=np.bool_)
        self.table, self.used = _bff_pass(
            self.table,
            self.used,
            self.bits,
            self.hashers,
            hashes.astype(np.uint64, copy=False),
            hash_offsets.astype(np.int64, copy=False),
            counts.astype(np.int64, copy=False),
            count_offsets.astype(np.int64, copy=False),
            order,
            threshold,
            update,
            contained,
            removed,
        )
        return contained, removed


def bloom_size(expected: int, rate: float) -> tuple[int, int]:
    """A Bloom filter's bits and hashes an item for ``expected`` items at the false-positive
    ``rate``: k = -log2(p) rounded (at least 1), m = -n ln p / ln(2)^2 bits, rounded up to
    a multiple of 64 and to at least ``_MIN_BLOOM_BITS`` (a filter of a few hundred bits
    errs far above its rate: its bits are too few to hold k apart for every item)."""
    hashers = max(1, round(-math.log2(rate)))
    bits = math.ceil(-expected * math.log(rate) / math.log(2) ** 2)
    return max(_MIN_BLOOM_BITS, -(-bits // 64) * 64), hashers


@numba.njit(cache=True, nogil=True, inline="always")
def _second_hash(key: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """An odd step for the Bloom filter's bits, mixed from ``key`` (splitmix64's finish)."""
    mixed = (key ^ (key >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (mixed ^ (mixed >> np.uint64(31))) | np.uint64(1)


@numba.njit(cache=True, nogil=True, inline="always")
def _bloom_has(bits: np.ndarray, hashers: int, key: np.uint64) -> bool:  # pragma: no cover
    size = np.uint64(len(bits) * 64)
    at = key % size
    step = _second_hash(key) % size
    for i in range(hashers):  # enhanced double hashing (Dillinger and Manolios, 2004)
        if not bits[at >> np.uint64(6)] >> (at & np.uint64(63)) & np.uint64(1):
            return False
        at = (at + step) % size
        step = (step + np.uint64(i)) % size
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _bloom_add(bits: np.ndarray, hashers: int, key: np.uint64) -> None:  # pragma: no cover
    size = np.uint64(len(bits) * 64)
    at = key % size
    step = _second_hash(key) % size
    for i in range(hashers):  # as _bloom_has
        bits[at >> np.uint64(6)] |= np.uint64(1) << (at & np.uint64(63))
        at = (at + step) % size
        step = (step + np.uint64(i)) % size


@numba.njit(cache=True, nogil=True)
def _bloom_add_all(bits: np.ndarray, hashers: int, keys: np.ndarray) -> None:  # pragma: no cover
    for key in keys:
        _bloom_add(bits, hashers, key)


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(table: np.ndarray, key: np.uint64) -> int:  # pragma: no cover - compiled
    """Where ``key`` is in ``table``, or the empty slot where it would go (0 is empty)."""
    mask = np.uint64(len(table) - 1)
    at = (key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(17) & mask
    while table[at] != 0 and table[at] != key:
        at = (at + np.uint64(1)) & mask
    return at


@numba.njit(cache=True, nogil=True)
def _hold_all(table: np.ndarray, keys: np.ndarray) -> int:  # pragma: no cover - compiled
    """Put ``keys`` in ``table`` (big enough for them); how many distinct keys it holds."""
    used = 0
    for key in keys:
        key = key if key != 0 else np.uint64(1)
        at = _slot(table, key)
        if table[at] == 0:
            table[at] = key
            used += 1
    return used


@numba.njit(cache=True, nogil=True)
def _grown(table: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``table``'s keys in a table of twice the slots."""
    bigger = np.zeros(2 * len(table), dtype=np.uint64)
    for key in table:
        if key != 0:
            bigger[_slot(bigger, key)] = key
    return bigger


@numba.njit(cache=True, nogil=True)
def _bff_pass(
    table: np.ndarray,
    used: int,
    bits: np.ndarray,
    hashers: int,
    hashes: np.ndarray,
    hash_offsets: np.ndarray,
    counts: np.ndarray,
    count_offsets: np.ndarray,
    order: np.ndarray,
    threshold: float,
    update: bool,
    contained: np.ndarray,
    removed: np.ndarray,
) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
    """``HeldNgrams.take``'s pass; the table (a new one where it grew) and its keys."""
    for r in order:
        at = hash_offsets[r]
        for p in range(count_offsets[r], count_offsets[r + 1]):
            c = counts[p]
            if c == 0:
                continue
            found = 0
            for i in range(at, at + c):
                if hashers:
                    found += _bloom_has(bits, hashers, hashes[i])
                    continue
                key = hashes[i] if hashes[i] != 0 else np.uint64(1)
                if table[_slot(table, key)] == key:
                    found += 1
            contained[r] += found
            if found / c > threshold:
                removed[p] = True
            elif update:
                for i in range(at, at + c):
                    if hashers:
                        _bloom_add(bits, hashers, hashes[i])
                        continue
                    key = hashes[i] if hashes[i] != 0 else np.uint64(1)
                    slot = _slot(table, key)
                    if table[slot] == 0:
                        table[slot] = key
                        used += 1
                        if 2 * used > len(table):  # at most half full
                            table = _grown(table)
            at += c
    return table, used
