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
paragraphs and lines with polars over the whole batch at once, n-grams by a compiled
stable sort of each document's keys (cache-sized, where a hash table over the batch's
millions of n-grams is not). Words are spaCy-like tokens
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


def _ngram_keys(hashes: np.ndarray, parents: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions whose ``n`` words lie in one document, and a 64-bit key of each n-gram
    that also depends on its document (equal keys: the same n-gram in the same document).
    """
    count = len(hashes) - n + 1
    if count <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    positions = np.flatnonzero(parents[:count] == parents[n - 1 :])
    with np.errstate(over="ignore"):
        keys = parents[positions].astype(np.uint64) * _DOC_MULTIPLIER
        for k in range(n):
            keys = keys * _MULTIPLIER + hashes[positions + k]
    return positions, keys


@numba.njit(cache=True, nogil=True)
def _counts_within_documents(
    keys: np.ndarray, docs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """For each position (``docs`` sorted, each document's positions together): how many
    positions of its document hold its key, and whether it is the first of them. Each
    document's keys are sorted on their own (stable), so the work stays in cache."""
    n = len(keys)
    counts = np.empty(n, np.int64)
    first = np.zeros(n, np.bool_)
    start = 0
    while start < n:
        end = start + 1
        while end < n and docs[end] == docs[start]:
            end += 1
        order = np.argsort(keys[start:end], kind="mergesort") + start
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and keys[order[j]] == keys[order[i]]:
                j += 1
            first[order[i]] = True
            for k in range(i, j):
                counts[order[k]] = j - i
            i = j
        start = end
    return counts, first


def _segments(docs: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in the sorted array ``docs``."""
    return np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])


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

        for size, threshold in p.top_n_grams:
            column = f"gopher_top_{size}_gram_frac"
            measures[column] = self._top_ngram(hashes, word_parents, word_length, size, n) / (
                safe_chars
            )
            rules.append((f"top_{size}_gram", threshold, column))
        starts = np.searchsorted(word_parents, np.arange(n + 1))
        smallest_bound = None
        for size, threshold in sorted(p.dup_n_grams):
            column = f"gopher_dup_{size}_gram_frac"
            if smallest_bound is None:
                bound = self._dup_ngram(hashes, word_parents, word_length, size, n) / safe_chars
                smallest_bound = bound.copy()
            else:
                # words covered by repeated n-grams are covered by repeated shorter ones:
                # only documents over the threshold by the shorter bound are measured again
                bound = smallest_bound.copy()
                again = np.flatnonzero(bound > (threshold or np.inf))
                if len(again):
                    keep = np.isin(word_parents, again)
                    sub = self._dup_ngram(
                        hashes[keep], word_parents[keep], word_length[keep], size, n
                    )
                    bound[again] = sub[again] / safe_chars[again]
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

    @staticmethod
    def _top_ngram(
        hashes: np.ndarray, parents: np.ndarray, length: np.ndarray, size: int, n: int
    ) -> np.ndarray:
        """Per document: characters of its most frequent n-gram (joined by spaces) x count.

        Ties go to the n-gram seen first, as ``Counter.most_common`` does.
        """
        positions, keys = _ngram_keys(hashes, parents, size)
        result = np.zeros(n)
        if len(keys) == 0:
            return result
        docs = parents[positions]
        counts, _ = _counts_within_documents(keys, docs)
        starts = _segments(docs)
        best = np.repeat(np.maximum.reduceat(counts, starts), np.diff(np.r_[starts, len(docs)]))
        winners = np.flatnonzero(counts == best)
        winners = winners[_segments(docs[winners])]  # the first winner of each document
        chars = np.convolve(length, np.ones(size, np.int64), "valid") + size - 1
        result[docs[winners]] = counts[winners] * chars[positions[winners]]
        return result

    @staticmethod
    def _dup_ngram(
        hashes: np.ndarray, parents: np.ndarray, length: np.ndarray, size: int, n: int
    ) -> np.ndarray:
        """Per document: characters of the words covered by n-grams that repeat earlier ones."""
        positions, keys = _ngram_keys(hashes, parents, size)
        if len(keys) == 0:
            return np.zeros(n)
        repeat = ~_counts_within_documents(keys, parents[positions])[1]
        starts = positions[repeat]
        cover = np.zeros(len(hashes) + 1, np.int64)
        np.add.at(cover, starts, 1)
        np.add.at(cover, starts + size, -1)
        covered = np.cumsum(cover[:-1]) > 0
        return np.bincount(parents, weights=length * covered, minlength=n)
