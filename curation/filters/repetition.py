"""Gopher's repetition rules (Rae et al. 2021, table A1), with datatrove's names and defaults.

``gopher_repetition`` measures, per document, and drops in datatrove's order
(``gopher_repetition:<rule>``):

0. ``empty``: no character but white space (datatrove drops only the empty string).
1. ``dup_para_frac`` / ``dup_para_char_frac``: paragraphs (split on two or more newlines)
   that repeat an earlier paragraph of the document, as a fraction of paragraphs and of
   the document's characters.
2. ``dup_line_frac`` / ``dup_line_char_frac``: the same for lines.
3. ``top_{n}_gram``: characters of the most frequent word n-gram times its count, as a
   fraction of the document's characters, for each ``(n, fraction)`` of ``top_n_grams``.
4. ``duplicated_{n}_n_grams``: characters of repeated word n-grams, counted as datatrove
   does (scanning n-grams, a repeat adds its characters and skips ``n`` words), as a
   fraction of the document's characters, for each ``(n, fraction)`` of ``dup_n_grams``.

Paragraphs, lines and n-grams are hashed (64-bit) and compared within each document:
paragraphs and lines with polars over the whole batch at once, n-grams in one compiled
pass per document that counts them in a small open-addressing table (cache-sized, where
a table or a sort over the batch's millions of n-grams is not). Words are spaCy-like tokens
(``curation.filters.tokenize``), as datatrove's word splitter makes them. The greedy
count of rule 4 is sequential, so it is bounded first, vectorised, by the characters of
the words that repeated n-grams cover (never less than the greedy count); only documents
whose bound passes the threshold are counted exactly, and the covered words of a larger
``n`` are a subset of those of the smallest, so larger ``n`` are measured only where the
smallest ``n``'s bound passes their threshold. The ``gopher_dup_{n}_gram_frac`` columns
therefore hold datatrove's exact fraction wherever a bound passed the threshold, and an
upper bound of it elsewhere.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT, with_drop_reason
from curation.filters.text import repeated_pieces, split_pieces
from curation.filters.tokenize import word_tokens
from curation.stage import MapStage, StageParams, register

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_DOC_MULTIPLIER = np.uint64(0xC2B2AE3D27D4EB4F)


class GopherRepetitionParams(StageParams):
    dup_line_frac: float | None = Field(0.3, description="most repeated lines, fraction")
    dup_para_frac: float | None = Field(0.3, description="most repeated paragraphs, fraction")
    dup_line_char_frac: float | None = Field(0.2, description="most characters in repeated lines")
    dup_para_char_frac: float | None = Field(
        0.2, description="most characters in repeated paragraphs"
    )
    top_n_grams: list[tuple[int, float]] = Field(
        [(2, 0.2), (3, 0.18), (4, 0.16)],
        description="(n, most characters in the top n-gram) pairs",
    )
    dup_n_grams: list[tuple[int, float]] = Field(
        [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        description="(n, most characters in repeated n-grams) pairs",
    )


@numba.njit(cache=True, nogil=True)
def _ngram_measure(
    hashes: np.ndarray,
    length: np.ndarray,
    starts: np.ndarray,
    docs: np.ndarray,
    size: int,
    top: bool,
) -> np.ndarray:  # pragma: no cover - compiled
    """For each of ``docs`` (words ``starts[d]:starts[d + 1]``), in characters: with
    ``top``, its most frequent word n-gram's (words joined by single spaces) times its
    count, ties to the n-gram seen first as ``Counter.most_common``; otherwise the words
    covered by n-grams that repeat an earlier one (the bound of the greedy count).

    An n-gram is its ``size`` word hashes combined with its document into one 64-bit
    key; one open-addressing table, sized for the longest document and stamped per
    document instead of cleared, counts them.
    """
    most = 1
    longest = 0
    for d in docs:
        most = max(most, starts[d + 1] - starts[d] - size + 1)
        longest = max(longest, starts[d + 1] - starts[d])
    bits = 1
    while (1 << bits) < 2 * most:
        bits += 1
    mask = np.uint64((1 << bits) - 1)
    shift = np.uint64(64 - bits)
    slot_key = np.zeros(1 << bits, np.uint64)
    slot_count = np.zeros(1 << bits, np.int64)
    slot_first = np.zeros(1 << bits, np.int64)
    stamp = np.full(1 << bits, -1, np.int64)
    cover = np.zeros(longest + 1, np.int64)
    out = np.zeros(len(docs), np.int64)
    for k in range(len(docs)):
        d = docs[k]
        begin = starts[d]
        words = starts[d + 1] - begin
        grams = words - size + 1
        if grams <= 0:
            continue
        best_count, best_first = 0, 0
        if not top:
            cover[: words + 1] = 0
        for i in range(grams):
            key = np.uint64(d) * _DOC_MULTIPLIER
            for j in range(size):
                key = key * _MULTIPLIER + hashes[begin + i + j]
            slot = (key >> shift) & mask
            while stamp[slot] == k and slot_key[slot] != key:
                slot = (slot + np.uint64(1)) & mask
            if stamp[slot] != k:
                stamp[slot] = k
                slot_key[slot] = key
                slot_count[slot] = 1
                slot_first[slot] = i
            else:
                slot_count[slot] += 1
                if not top:
                    cover[i] += 1
                    cover[i + size] -= 1
            if top:
                count, first = slot_count[slot], slot_first[slot]
                if count > best_count or (count == best_count and first < best_first):
                    best_count, best_first = count, first
        if top:
            chars = size - 1
            for j in range(size):
                chars += length[begin + best_first + j]
            out[k] = best_count * chars
        else:
            covering, total = 0, 0
            for w in range(words):
                covering += cover[w]
                if covering > 0:
                    total += length[begin + w]
            out[k] = total
    return out


@numba.njit(cache=True, nogil=True)
def _greedy_repeats(
    hashes: np.ndarray, length: np.ndarray, size: int
) -> int:  # pragma: no cover - compiled
    """datatrove's count for one document: scan n-grams; a repeat adds its characters and
    jumps ``size`` words ahead (the n-grams jumped over are not remembered). An n-gram is
    its ``size`` word hashes combined into one 64-bit key."""
    seen = set()
    total, index = 0, 0
    while index < len(hashes) - size + 1:
        key = np.uint64(0)
        for k in range(size):
            key = key * _MULTIPLIER + hashes[index + k]
        if key in seen:
            total += length[index : index + size].sum()
            index += size
        else:
            seen.add(key)
            index += 1
    return total


@numba.njit(cache=True, nogil=True)
def _greedy_repeats_of(
    hashes: np.ndarray, length: np.ndarray, starts: np.ndarray, docs: np.ndarray, size: int
) -> np.ndarray:  # pragma: no cover - compiled
    """``_greedy_repeats`` of each of ``docs``, whose words are ``starts[d]:starts[d + 1]``."""
    out = np.empty(len(docs), np.int64)
    for k in range(len(docs)):
        begin, end = starts[docs[k]], starts[docs[k] + 1]
        out[k] = _greedy_repeats(hashes[begin:end], length[begin:end], size)
    return out


@register
class GopherRepetition(MapStage):
    """Gopher repetition rules; adds ``gopher_dup_*`` and ``gopher_top_*`` columns."""

    name = "gopher_repetition"
    help = "Gopher repetition rules: repeated lines, paragraphs and word n-grams"
    Params = GopherRepetitionParams
    params: GopherRepetitionParams

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        text = table[TEXT]
        n = table.num_rows
        chars = np.asarray(pc.utf8_length(text).to_numpy(zero_copy_only=False), np.float64)
        safe_chars = np.maximum(chars, 1)

        paragraphs, para_parents = split_pieces(
            pc.split_pattern_regex(pc.utf8_trim_whitespace(text), r"\n{2,}")
        )
        para_repeats, para_chars = repeated_pieces(paragraphs, para_parents, n)
        para_total = np.maximum(np.bincount(para_parents, minlength=n), 1)
        lines, line_parents = split_pieces(pc.split_pattern_regex(text, r"\n+"))
        line_repeats, line_chars = repeated_pieces(lines, line_parents, n)
        line_total = np.maximum(np.bincount(line_parents, minlength=n), 1)

        measures = {
            "gopher_dup_para_frac": para_repeats / para_total,
            "gopher_dup_para_char_frac": para_chars / safe_chars,
            "gopher_dup_line_frac": line_repeats / line_total,
            "gopher_dup_line_char_frac": line_chars / safe_chars,
        }
        rules = [
            ("dup_para_frac", p.dup_para_frac, "gopher_dup_para_frac"),
            ("dup_para_char_frac", p.dup_para_char_frac, "gopher_dup_para_char_frac"),
            ("dup_line_frac", p.dup_line_frac, "gopher_dup_line_frac"),
            ("dup_line_char_frac", p.dup_line_char_frac, "gopher_dup_line_char_frac"),
        ]

        flat, word_parents = word_tokens(text)
        word_length = flat.str.len_chars().to_numpy().astype(np.int64)
        hashes = flat.hash(seed=0).to_numpy().astype(np.uint64)

        starts = np.searchsorted(word_parents, np.arange(n + 1))
        every = np.arange(n)
        for size, threshold in p.top_n_grams:
            column = f"gopher_top_{size}_gram_frac"
            top = _ngram_measure(hashes, word_length, starts, every, size, True)
            measures[column] = top / safe_chars
            rules.append((f"top_{size}_gram", threshold, column))
        smallest_bound = None
        for size, threshold in sorted(p.dup_n_grams):
            column = f"gopher_dup_{size}_gram_frac"
            if smallest_bound is None:
                covered = _ngram_measure(hashes, word_length, starts, every, size, False)
                bound = covered / safe_chars
                smallest_bound = bound.copy()
            else:
                # words covered by repeated n-grams are covered by repeated shorter ones:
                # only documents over the threshold by the shorter bound are measured again
                bound = smallest_bound.copy()
                again = np.flatnonzero(bound > (threshold or np.inf))
                covered = _ngram_measure(hashes, word_length, starts, again, size, False)
                bound[again] = covered / safe_chars[again]
            # the bound is never below datatrove's greedy count: where it passes the
            # threshold, count exactly
            exact = np.flatnonzero(bound > (threshold or np.inf))
            counted = _greedy_repeats_of(hashes, word_length, starts, exact, size)
            bound[exact] = counted / safe_chars[exact]
            measures[column] = bound
            rules.append((f"duplicated_{size}_n_grams", threshold, column))

        for column, values in measures.items():
            table = table.append_column(column, pa.array(np.where(chars > 0, values, 0.0)))
        # datatrove drops only "", and lets whitespace through: blank is empty here too
        blank = np.asarray(
            pc.equal(pc.utf8_trim_whitespace(text), "").to_numpy(zero_copy_only=False)
        )
        table = with_drop_reason(table, pa.array(blank), self.reason("empty"))
        for rule, threshold, column in rules:
            if threshold:
                table = with_drop_reason(
                    table, pa.array(measures[column] > threshold), self.reason(rule)
                )
        return table
