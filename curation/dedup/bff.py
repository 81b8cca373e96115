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
  all its n-grams were held (its kept paragraphs' n-grams stay held, as in BFF).

This stage does the same, with these differences:

- The n-grams held are a set of 64-bit hashes of the n-grams, not a Bloom filter: no
  false positives (DCLM allowed 1% an n-gram), and no filter size to guess.
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
and the number of n-grams of each of its paragraphs. At the barrier the rows are taken in
id order in one compiled pass over an open-addressing table of hashes. After it a text
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

Memory at the barrier: the rows' ids, 8 bytes per n-gram (about one per word) for the
hashes read, and a table of 16 to 32 bytes per distinct n-gram held (it doubles when
half full). Where the hashes and a table for every n-gram as distinct would not fit in
the memory available, the run stops at the barrier (``BarrierTooLarge``) before building
anything, saying what to do, and resumes from the finished shards.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import ID, TEXT, with_drop_reason
from curation.dedup.common import AgainstParams
from curation.dedup.lines import against_hashes
from curation.dedup.minhash import (
    _BYTE_BASE,
    _GOLDEN,
    _finalise,
    shingle_counts,
    shingle_hashes,
    string_hashes,
)
from curation.machine import available_bytes
from curation.stage import BarrierTooLarge, GlobalStage, register, write_decisions
from curation.utf8 import code_point, large_text, string_buffers

_HASHES = "_bff_dedup_hashes"
_COUNTS = "_bff_dedup_counts"
_SEED = 13
#: the information separators, white space to Arrow and Python but not to Unicode
_SEPARATORS = "[\x1c-\x1f]"
#: Unicode's White_Space characters (Rust's ``char::is_whitespace``)
_SPACES = (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F)
WHITE_SPACE = "".join(map(chr, (*_SPACES, *range(0x2000, 0x200B), 0x205F, 0x3000)))
#: bytes of the barrier per n-gram read (its hash) and per slot of the table
_HASH_BYTES = 8


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

    def measure(self, table: pa.Table) -> pa.Table:
        hashes, counts = ngrams(table[TEXT], self.params.ngram, self.params.min_ngram)
        return table.append_column(_HASHES, hashes).append_column(_COUNTS, counts)

    def decide(self, keys: Any, folder: Path) -> None:
        table = keys.select("shard", ID, _HASHES, _COUNTS).collect().to_arrow()
        p = self.params
        held = against_hashes(self, _HASHES, folder)
        held = np.empty(0, np.uint64) if held is None else held
        hash_values, hash_offsets = flat_lists(table[_HASHES])
        counts, count_offsets = flat_lists(table[_COUNTS])
        total = len(hash_values)
        to_hold = len(held) + (0 if p.only_against else total)
        need = table_slots(to_hold) * _HASH_BYTES + total * (_HASH_BYTES + 8)
        have = available_bytes()
        if have is not None and need > have:
            raise BarrierTooLarge(
                f"bff_dedup: {table.num_rows:,} documents with {total:,} n-grams reach the "
                f"barrier, whose table and hashes take about {need / 2**30:.1f} GiB, and "
                f"{have / 2**30:.1f} GiB are available. Run it on a machine with more "
                "memory, or on fewer documents a run (each run's kept/ as `against` of the "
                "next); the same command resumes from the finished shards"
            )
        self.progress(f"{table.num_rows:,} documents, {total:,} n-grams, in id order")
        order = np.asarray(pc.sort_indices(table[ID]), dtype=np.int64)
        contained, removed = hold_in_order(
            hash_values.astype(np.uint64, copy=False),
            hash_offsets,
            counts.astype(np.int64, copy=False),
            count_offsets,
            order,
            held,
            p.threshold,
            not p.only_against,
        )
        paragraph_rows = np.repeat(np.arange(table.num_rows), np.diff(count_offsets))
        local = np.arange(len(removed)) - count_offsets[paragraph_rows]
        gone = np.flatnonzero(removed)
        offsets = np.searchsorted(paragraph_rows[gone], np.arange(table.num_rows + 1))
        lists = pa.ListArray.from_arrays(
            pa.array(offsets, pa.int32()), pa.array(local[gone], pa.int32())
        )
        touched = pa.array(contained > 0)
        decisions = pa.table(
            {
                "shard": table["shard"],
                ID: table[ID],
                "contained": pa.array(contained),
                "removed": lists,
            }
        ).filter(touched)
        write_decisions(pl.from_arrow(decisions), folder)

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        n = table.num_rows
        p = self.params
        total = np.asarray(pc.list_value_length(table[_HASHES]).fill_null(0), dtype=np.int64)
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
        whole = (total > 0) & (fraction > p.threshold)
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


@cache
def _boundaries() -> Any:
    """The ``regex`` pattern of a Unicode word boundary (UAX #29 in its word mode)."""
    import regex

    return regex.compile(r"\b", flags=regex.WORD | regex.V1)


def bff_words(text: str) -> list[list[str]]:
    """BFF's words of ``text``, paragraph by paragraph (cut at every ``\\n``): the pieces
    between Unicode word boundaries that are not all White_Space (``words`` of one text)."""
    pieces, word, paragraph, paragraph_offsets = words(pa.array([text], pa.large_string()))
    out: list[list[str]] = [[] for _ in range(paragraph_offsets[-1])]
    for piece, number in zip(
        pieces.filter(pa.array(word)).to_pylist(), paragraph[word].tolist(), strict=True
    ):
        out[number].append(piece)
    return out


def words(
    texts: pa.ChunkedArray | pa.Array,
) -> tuple[pa.LargeStringArray, np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of ``texts`` between Unicode word boundaries, all texts' in turn; which
    are BFF's words (not all White_Space, not empty); the paragraph of each piece,
    numbered over all texts; and each text's first paragraph (offsets, one more than the
    texts: a text of ``k`` line breaks has ``k + 1`` paragraphs, a null text one)."""
    split = _boundaries().split
    pieces: list[str] = []
    per_text = np.zeros(len(texts), dtype=np.int64)
    for row, text in enumerate(texts.to_pylist()):
        cut = split(text) if text else []
        pieces += cut
        per_text[row] = len(cut)
    flat = pa.array(pieces, pa.large_string())
    # word boundaries surround every line break, so "\n" (or "\r\n") is a piece alone
    breaks = np.asarray(pc.match_substring(flat, "\n"), dtype=bool)
    word = ~np.asarray(pc.utf8_is_space(flat), dtype=bool)
    word &= np.asarray(pc.binary_length(flat), dtype=np.int64) > 0
    if pc.any(pc.match_substring_regex(texts, _SEPARATORS)).as_py():
        # Arrow's white space has U+001C-U+001F, Unicode's White_Space (and Rust's) not
        word |= np.asarray(pc.match_substring_regex(flat, _SEPARATORS), dtype=bool)
    text_of = np.repeat(np.arange(len(texts)), per_text)
    paragraphs_of = 1 + np.bincount(text_of[breaks], minlength=len(texts))
    paragraph_offsets = np.r_[0, np.cumsum(paragraphs_of)]
    seen = np.r_[0, np.cumsum(breaks)]  # breaks before each piece
    local = seen[:-1] - np.repeat(seen[np.r_[0, np.cumsum(per_text)][:-1]], per_text)
    return flat, word, paragraph_offsets[:-1][text_of] + local, paragraph_offsets


# Word_Break classes of UAX #29 that the compiled scan tells apart (``word_classes``);
# a text with a character of a class it leaves to the ``regex`` module is ``_HARD``
_OTHER, _CR, _LF, _NEWLINE, _WSEG, _LETTER, _NUMERIC = 0, 1, 2, 3, 4, 5, 6
_MID_LETTER, _MID_NUM, _MID_NUM_LET, _ENL, _HARD = 7, 8, 9, 10, 11
#: bit of ``word_classes`` set on Unicode's White_Space characters
_SPACE = 0x80
_CLASS_OF = {
    "CR": _CR,
    "LF": _LF,
    "Newline": _NEWLINE,
    "WSegSpace": _WSEG,
    "ALetter": _LETTER,
    "Numeric": _NUMERIC,
    "MidLetter": _MID_LETTER,
    "MidNum": _MID_NUM,
    "MidNumLet": _MID_NUM_LET,
    "Single_Quote": _MID_NUM_LET,  # the rules that matter here take both alike
    "ExtendNumLet": _ENL,
    # rules the scan leaves to the regex module: marks and format characters inside
    # words (WB4), emoji joins (WB3c), flags (WB15-16), Hebrew (WB7a-c), Katakana (WB13)
    "Extend": _HARD,
    "Format": _HARD,
    "ZWJ": _HARD,
    "Regional_Indicator": _HARD,
    "Hebrew_Letter": _HARD,
    "Katakana": _HARD,
}


@cache
def word_classes() -> np.ndarray:
    """Per code point (0 to 0x10FFFF), its Word_Break class as the ``regex`` module has
    it (Double_Quote, which only Hebrew rules use, as Other), with ``_SPACE`` set on
    White_Space; about 0.3 s, once a process."""
    import regex

    points = np.r_[np.arange(0xD800), np.arange(0xE000, 0x110000)].astype(np.uint32)
    every = points.view("U1").tobytes().decode("utf-32-le")
    table = np.zeros(0x110000, dtype=np.uint8)
    for name, value in _CLASS_OF.items():
        at = [m.start() for m in regex.finditer(rf"\p{{Word_Break={name}}}", every)]
        table[points[at]] = value
    table[[ord(c) for c in WHITE_SPACE]] |= _SPACE
    return table


@numba.njit(cache=True, nogil=True, inline="always")
def _joined(before: int, left: int, right: int, after: int) -> bool:  # pragma: no cover
    """Whether UAX #29 keeps ``left`` and ``right`` in one piece (WB3 to WB13b, for the
    classes of ``word_classes`` but ``_HARD``), ``before`` and ``after`` the classes
    around them (``_OTHER`` past the ends)."""
    if left == _CR and right == _LF:
        return True
    if _CR <= left <= _NEWLINE or _CR <= right <= _NEWLINE:
        return False
    if left == _WSEG and right == _WSEG:
        return True
    mid_letter = right == _MID_LETTER or right == _MID_NUM_LET
    if left == _LETTER:
        if right == _LETTER or right == _NUMERIC or right == _ENL:
            return True
        if mid_letter and after == _LETTER:
            return True
    if left == _NUMERIC:
        if right == _NUMERIC or right == _LETTER or right == _ENL:
            return True
        if (right == _MID_NUM or right == _MID_NUM_LET) and after == _NUMERIC:
            return True
    if left == _MID_LETTER or left == _MID_NUM_LET:
        if before == _LETTER and right == _LETTER:
            return True
    if left == _MID_NUM or left == _MID_NUM_LET:
        if before == _NUMERIC and right == _NUMERIC:
            return True
    if left == _ENL:
        return right == _ENL or right == _LETTER or right == _NUMERIC
    return False


@numba.njit(cache=True, nogil=True)
def _scan_words(
    data: np.ndarray, offsets: np.ndarray, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """BFF's words of every text: each word's hash (``string_hashes``' of its bytes) and
    paragraph within its text, each text's words and paragraphs, and the texts left to
    the ``regex`` module (a ``_HARD`` character: no words, one paragraph)."""
    n = len(offsets) - 1
    size = offsets[n] - offsets[0]
    hashes = np.empty(size, dtype=np.uint64)
    paragraphs = np.empty(size, dtype=np.int64)
    words = np.zeros(n, dtype=np.int64)
    paragraphs_of = np.ones(n, dtype=np.int64)
    hard = np.zeros(n, dtype=np.bool_)
    longest = 0
    for d in range(n):
        longest = max(longest, offsets[d + 1] - offsets[d])
    classes = np.empty(longest + 1, dtype=np.uint8)
    starts = np.empty(longest + 1, dtype=np.int64)
    k = 0
    for d in range(n):
        # the text's characters: their classes and first bytes
        m = 0
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            c, length = code_point(data, i)
            classes[m] = table[c]
            starts[m] = i
            if classes[m] & 0x7F == _HARD:
                hard[d] = True
                break
            m += 1
            i += length
        if hard[d]:
            continue
        starts[m] = end
        first = k
        paragraph = 0
        begin = 0
        wordy = False
        for j in range(m + 1):
            if j > 0:
                cut = j == m
                if not cut:
                    before = classes[j - 2] & 0x7F if j >= 2 else _OTHER
                    after = classes[j + 1] & 0x7F if j + 1 < m else _OTHER
                    cut = not _joined(before, classes[j - 1] & 0x7F, classes[j] & 0x7F, after)
                if cut:
                    if classes[j - 1] & 0x7F == _LF:  # "\n" or "\r\n", alone
                        paragraph += 1
                    elif wordy:
                        total = np.uint64(0)
                        power = np.uint64(1)
                        for b in range(starts[begin], starts[j]):
                            total += (np.uint64(data[b]) + np.uint64(1)) * power
                            power *= _BYTE_BASE
                        length = np.uint64(starts[j] - starts[begin])
                        hashes[k] = _finalise(total ^ (length * _GOLDEN))
                        paragraphs[k] = paragraph
                        k += 1
                    begin = j
                    wordy = False
            if j < m and not classes[j] & _SPACE:
                wordy = True
        words[d] = k - first
        paragraphs_of[d] = paragraph + 1
    return hashes[:k], paragraphs[:k], words, paragraphs_of, hard


def word_hashes(texts: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BFF's words of ``texts``, all texts' in turn: each word's hash (``string_hashes``)
    and paragraph, numbered over all texts, and each text's first paragraph (offsets: a
    text of ``k`` line breaks has ``k + 1`` paragraphs, a null text one). A compiled scan
    cuts the words where it knows every rule that applies; a text with a character of
    the rarer rules (combining marks, format characters, emoji joins, flags, Hebrew,
    Katakana) is cut by the ``regex`` module (``words``), with the same hashes."""
    text = large_text(texts)
    hashes, local, counts, paragraphs_of, hard = _scan_words(*string_buffers(text), word_classes())
    if hard.any():
        flat, word, paragraph, offsets = words(text.filter(pa.array(hard)))
        which = np.flatnonzero(hard)
        of_hard = np.repeat(np.arange(len(which)), np.diff(offsets))[paragraph[word]]
        paragraphs_of[which] = np.diff(offsets)
        counts[which] = np.bincount(of_hard, minlength=len(which))
        # the hard texts' words after the others', then each text's words put in order
        hashes = np.r_[hashes, string_hashes(flat.filter(pa.array(word)))]
        local = np.r_[local, paragraph[word] - offsets[:-1][of_hard]]
        easy = np.where(hard, 0, counts)
        easy_first = np.r_[0, np.cumsum(easy)][:-1]
        hard_first = np.r_[0, np.cumsum(counts - easy)][:-1] + easy.sum()
        source = np.where(hard, hard_first, easy_first)
        first = np.r_[0, np.cumsum(counts)][:-1]
        order = np.repeat(source - first, counts) + np.arange(int(counts.sum()))
        hashes, local = hashes[order], local[order]
    offsets = np.r_[0, np.cumsum(paragraphs_of)]
    return hashes, np.repeat(offsets[:-1], counts) + local, offsets


def ngrams(texts: pa.ChunkedArray | pa.Array, n: int, least: int) -> tuple[pa.Array, pa.Array]:
    """Per text: the hashes of its n-grams in order (a list of uint64), and the number of
    n-grams of each of its paragraphs (a list of int32; a null text has one paragraph
    with none). Runs of ``n`` words within a paragraph; a paragraph of ``least`` to
    ``n - 1`` words is one n-gram of all of them, a shorter one has none."""
    tokens, paragraph, paragraph_offsets = word_hashes(texts)
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


def hold_in_order(
    hashes: np.ndarray,
    hash_offsets: np.ndarray,
    counts: np.ndarray,
    count_offsets: np.ndarray,
    order: np.ndarray,
    held: np.ndarray,
    threshold: float,
    update: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """BFF over the rows in ``order``: row ``r``'s n-gram hashes are
    ``hashes[hash_offsets[r]:hash_offsets[r + 1]]``, its paragraphs' numbers of n-grams
    ``counts[count_offsets[r]:count_offsets[r + 1]]``. ``held`` is held first; with
    ``update`` a kept paragraph's n-grams are held after it. Returns each row's number of
    n-grams held before it (int64) and whether each paragraph goes (bool, as ``counts``)."""
    rows = len(hash_offsets) - 1
    table = np.zeros(table_slots(max(len(held), 1 << 15)), dtype=np.uint64)
    used = _hold_all(table, held)
    contained = np.zeros(rows, dtype=np.int64)
    removed = np.zeros(len(counts), dtype=np.bool_)
    _bff_pass(
        table,
        used,
        hashes,
        hash_offsets,
        counts,
        count_offsets,
        order,
        threshold,
        update,
        contained,
        removed,
    )
    return contained, removed


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
    hashes: np.ndarray,
    hash_offsets: np.ndarray,
    counts: np.ndarray,
    count_offsets: np.ndarray,
    order: np.ndarray,
    threshold: float,
    update: bool,
    contained: np.ndarray,
    removed: np.ndarray,
) -> None:  # pragma: no cover - compiled
    for r in order:
        at = hash_offsets[r]
        for p in range(count_offsets[r], count_offsets[r + 1]):
            c = counts[p]
            if c == 0:
                continue
            found = 0
            for i in range(at, at + c):
                key = hashes[i] if hashes[i] != 0 else np.uint64(1)
                if table[_slot(table, key)] == key:
                    found += 1
            contained[r] += found
            if found / c > threshold:
                removed[p] = True
            elif update:
                for i in range(at, at + c):
                    key = hashes[i] if hashes[i] != 0 else np.uint64(1)
                    slot = _slot(table, key)
                    if table[slot] == 0:
                        table[slot] = key
                        used += 1
                        if 2 * used > len(table):  # at most half full
                            table = _grown(table)
            at += c
