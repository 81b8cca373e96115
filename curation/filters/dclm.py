"""``dclm_quality`` and ``dclm_repetition``: Gopher's rules as DCLM-Baseline wrote and ran them.

DCLM-Baseline (Li et al. 2024, ``dclm_baseline_refinedweb.yaml``) applies Gopher's
document rules with its own code (mlfoundations/dclm, ``content_filters.py``), which
counts words otherwise than datatrove's ``GopherQualityFilter`` (our ``gopher_quality``):
whitespace-separated words (Python's ``str.split()``), punctuation attached, and for the
length rule fastText's tokens. On the C4 and Pile samples the two disagree on 9% and 27%
of the documents, nearly all on the share of words with a letter, where datatrove counts
every punctuation mark as a word. This stage gives DCLM's decisions. In DCLM's order, a
document is dropped (``dclm_quality:<rule>``) when:

1. ``page_length``: it has fewer than ``min_words`` (50) or more than ``max_words``
   (100,000) words as DCLM's ``page_length_filter`` counts them: fastText tokens (split on
   ASCII whitespace and NUL) whose first character is a letter or a digit;
2. ``word_length``: it has no word, or the mean length of its words (code points) is
   below ``min_avg_word_length`` (3) or above ``max_avg_word_length`` (10);
3. ``symbol_ratio``: ``#``, ``...``, ``. . .`` and ``…`` (each counted as ``str.count``
   counts) per word exceed ``max_symbol_word_ratio`` (0.1);
4. ``bullet_lines``: more than ``max_bullet_lines_ratio`` (0.9) of its non-blank lines
   (split on ``\\n``, stripped) begin with ``●``, ``•``, ``*`` or ``-``;
5. ``ellipsis_lines``: more than ``max_ellipsis_lines_ratio`` (0.3) of them end with
   ``...``, ``. . .`` or ``…``;
6. ``non_alpha_words``: more than ``max_non_alpha_words_ratio`` (0.2) of its words hold no
   letter;
7. ``stop_words``: fewer than ``min_stop_words`` (2) of its words, lower-cased, are stop
   words (every occurrence counts, as DCLM's ``count_unique: False``).

"Word" is ``str.split()``'s unless said otherwise; letters, digits and white space are
Python's (``str.isalpha``, ``isalnum``, ``isspace``), for every code point
(``curation.utf8.char_classes``). Each rule
switches off with ``null``. The stage adds ``dclm_quality_words`` (rule 1's count) and
``dclm_quality_non_alpha_ratio``.

One compiled pass over each document's UTF-8 bytes counts everything but the symbols,
which Arrow counts. ``tests/filters/test_dclm.py`` checks the decisions against a
per-document rendering of DCLM's functions.

``dclm_repetition``: Gopher's repetition rules as DCLM's ``massive_web_repetition_filters``
runs them, which again differ from datatrove's (our ``gopher_repetition``). Lines (split
on ``\n``) and paragraphs (on ``\n\n``) are stripped and blank ones left out; every copy
of a repeated one counts, against their number or their characters; a document of one
line passes the line rules. Words are the pieces between Unicode word boundaries (UAX
#29, as DCLM's ``uniseg``; cut by ``curation.uax29``) that begin with a letter or a digit,
and n-gram shares are of the words' characters: for n of ``top_n_grams``, the most
frequent n-gram's count times the longest such n-gram; for n of ``dup_n_grams``, the
words any repeated n-gram covers.
In DCLM's order a document is dropped (``dclm_repetition:<rule>``) for ``empty`` (only
white space), ``dup_line_frac`` (0.3), ``dup_para_frac`` (0.3), ``dup_line_char_frac``
(0.2), ``dup_para_char_frac`` (0.2), then ``top_{n}_gram`` and ``dup_{n}_gram`` by n. The
measured shares are columns (``dclm_dup_line_frac`` ... ``dclm_dup_10_gram_frac``).
"""

from __future__ import annotations

from collections import Counter

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curation.batch import TEXT, with_drop_reason
from curation.filters.repetition import GopherRepetitionParams
from curation.stage import MapStage, StageParams, register
from curation.uax29 import boundary, words
from curation.utf8 import (
    IS_ALNUM,
    IS_ALPHA,
    char_classes,
    code_point,
    is_unicode_space,
    string_buffers,
)

DCLM_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
SYMBOLS = ("#", "...", ". . .", "\u2026")


class DclmQualityParams(StageParams):
    min_words: int | None = Field(50, description="fewest fastText words; null = no bound")
    max_words: int | None = Field(100_000, description="most fastText words; null = no bound")
    min_avg_word_length: float | None = Field(3, description="shortest mean word length")
    max_avg_word_length: float | None = Field(10, description="longest mean word length")
    max_symbol_word_ratio: float | None = Field(0.1, description="most '#' and ellipses per word")
    max_bullet_lines_ratio: float | None = Field(0.9, description="most lines starting a bullet")
    max_ellipsis_lines_ratio: float | None = Field(0.3, description="most lines ending '...'")
    max_non_alpha_words_ratio: float | None = Field(
        0.2, description="most words without a letter, as a fraction"
    )
    min_stop_words: int | None = Field(2, description="fewest stop words (every occurrence)")
    stop_words: list[str] = Field(list(DCLM_STOP_WORDS), description="the stop-word list")

    @field_validator("stop_words")
    @classmethod
    def _plain(cls, words: list[str]) -> list[str]:
        bad = [w for w in words if not (w.isascii() and w.isalpha() and w == w.lower())]
        if bad or any(len(w) > 8 for w in words):
            raise ValueError(
                f"stop words must be lower-case ASCII letters, at most 8: {bad or words}"
            )
        return words


def _packed(word: str) -> int:
    """A short ASCII word as an integer (a byte a letter), as the kernel packs words."""
    value = 0
    for char in word:
        value = value * 256 + ord(char)
    return value


# the columns of ``document_counts``
FT_WORDS, WORDS, WORD_CHARS, NON_ALPHA, STOPS, LINES, BULLET, ELLIPSIS = range(8)


@numba.njit(cache=True, nogil=True)
def _is_fasttext_space(c: int) -> bool:  # pragma: no cover - compiled
    return c == 0x20 or c == 0x0A or c == 0x0D or c == 0x09 or c == 0x0B or c == 0x0C or c == 0


@numba.njit(cache=True, nogil=True)
def document_counts(
    data: np.ndarray, offsets: np.ndarray, classes: np.ndarray, stops: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """Per document: fastText words, ``split()`` words, their code points, those without
    a letter, stop words among them (``stops``: sorted packed words), non-blank lines,
    those starting a bullet and those ending an ellipsis."""
    n = len(offsets) - 1
    out = np.zeros((n, 8), np.int64)
    for row in range(n):
        i, end = offsets[row], offsets[row + 1]
        in_token = False  # fastText's
        in_word = False  # split()'s
        length = 0
        alpha = False
        ascii_lower = True
        packed = 0
        first = -1  # the line's first non-space character
        t1 = t2 = t3 = t4 = t5 = -1  # the line's last five characters up to its last non-space
        r1 = r2 = r3 = r4 = r5 = -1  # the last five characters read
        while i <= end:
            if i < end:
                c, width = code_point(data, i)
            else:
                c, width = 0x0A, 1  # the document's end ends its last token, word and line
            bits = classes[c]
            space = is_unicode_space(c)
            if _is_fasttext_space(c):
                in_token = False
            elif not in_token:
                in_token = True
                if bits & IS_ALNUM:
                    out[row, FT_WORDS] += 1
            if space:
                if in_word:
                    out[row, WORDS] += 1
                    out[row, WORD_CHARS] += length
                    if not alpha:
                        out[row, NON_ALPHA] += 1
                    if ascii_lower and length <= 8:
                        k = np.searchsorted(stops, packed)
                        if k < len(stops) and stops[k] == packed:
                            out[row, STOPS] += 1
                    in_word = False
            else:
                if not in_word:
                    in_word = True
                    length = 0
                    alpha = False
                    ascii_lower = True
                    packed = 0
                length += 1
                if bits & IS_ALPHA:
                    alpha = True
                if ascii_lower:
                    if 0x41 <= c <= 0x5A:
                        packed = packed * 256 + c + 32
                    elif 0x61 <= c <= 0x7A:
                        packed = packed * 256 + c
                    else:
                        ascii_lower = False
                    if length > 8:
                        ascii_lower = False
            if c == 0x0A:  # a line ends (re.split('\n'), then strip)
                if first >= 0:
                    out[row, LINES] += 1
                    if first == 0x25CF or first == 0x2022 or first == 0x2A or first == 0x2D:  # ●•*-
                        out[row, BULLET] += 1
                    if (
                        (t3 == 0x2E and t4 == 0x2E and t5 == 0x2E)
                        or t5 == 0x2026
                        or (t1 == 0x2E and t2 == 0x20 and t3 == 0x2E and t4 == 0x20 and t5 == 0x2E)
                    ):
                        out[row, ELLIPSIS] += 1
                first = -1
                t1 = t2 = t3 = t4 = t5 = -1
                r1 = r2 = r3 = r4 = r5 = -1
            else:
                r1, r2, r3, r4, r5 = r2, r3, r4, r5, c
                if not space:
                    if first < 0:
                        first = c
                    t1, t2, t3, t4, t5 = r1, r2, r3, r4, r5
            i += width
    return out


@register
class DclmQuality(MapStage):
    """DCLM-Baseline's Gopher quality rules, with DCLM's word counts; drops what they
    drop. Adds ``dclm_quality_words`` (int64) and ``dclm_quality_non_alpha_ratio``."""

    name = "dclm_quality"
    help = "Gopher quality rules as DCLM-Baseline runs them (split() words, fastText length)"
    Params = DclmQualityParams
    params: DclmQualityParams

    def setup(self) -> None:
        self.classes = char_classes()
        self.stops = np.array(sorted({_packed(w) for w in self.params.stop_words}), np.int64)

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        text = table[TEXT]
        parts = [
            document_counts(*string_buffers(chunk), self.classes, self.stops)
            for chunk in text.chunks
        ]
        counts = np.concatenate(parts) if parts else np.zeros((0, 8), np.int64)
        symbols = np.zeros(table.num_rows, np.int64)
        if p.max_symbol_word_ratio is not None:
            for symbol in SYMBOLS:
                found = pc.count_substring(text, symbol).to_numpy(zero_copy_only=False)
                symbols += found.astype(np.int64)
        ft_words, words = counts[:, FT_WORDS], counts[:, WORDS]
        some = np.maximum(words, 1)
        mean_length = counts[:, WORD_CHARS] / some
        non_alpha = counts[:, NON_ALPHA] / some
        never = np.zeros(table.num_rows, bool)

        def above(values: np.ndarray, limit: float | None) -> np.ndarray:
            return never if limit is None else values > limit

        def below(values: np.ndarray, limit: float | None) -> np.ndarray:
            return never if limit is None else values < limit

        no_words = words == 0

        def lines_over(column: int, ratio: float | None) -> np.ndarray:
            return never if ratio is None else counts[:, column] > ratio * counts[:, LINES]

        def on(*limits: float | None) -> bool:
            return any(limit is not None for limit in limits)

        # in DCLM's order: the first that holds is the reason; the three that divide by
        # the number of words drop a document without words, as DCLM's do
        rules = {
            "page_length": below(ft_words, p.min_words) | above(ft_words, p.max_words),
            "word_length": (no_words if on(p.min_avg_word_length, p.max_avg_word_length) else never)
            | below(mean_length, p.min_avg_word_length)
            | above(mean_length, p.max_avg_word_length),
            "symbol_ratio": (no_words if on(p.max_symbol_word_ratio) else never)
            | above(symbols / some, p.max_symbol_word_ratio),
            "bullet_lines": lines_over(BULLET, p.max_bullet_lines_ratio),
            "ellipsis_lines": lines_over(ELLIPSIS, p.max_ellipsis_lines_ratio),
            "non_alpha_words": (no_words if on(p.max_non_alpha_words_ratio) else never)
            | above(non_alpha, p.max_non_alpha_words_ratio),
            "stop_words": below(counts[:, STOPS], p.min_stop_words),
        }
        table = table.append_column("dclm_quality_words", pa.array(ft_words))
        table = table.append_column(
            "dclm_quality_non_alpha_ratio", pa.array(non_alpha, mask=no_words)
        )
        for rule, mask in rules.items():
            table = with_drop_reason(table, pa.array(mask), self.reason(rule))
        return table


# --------------------------------------------------------------------------- repetition


def dclm_words(text: str) -> list[str]:
    """DCLM's words for its n-gram rules: the pieces of the text between Unicode word
    boundaries that begin with a letter or a digit (Python's ``str.isalnum``); the stage
    cuts the same with ``curation.uax29.words(..., alnum_first=True)``."""
    return [piece for piece in boundary().split(text) if piece and piece[0].isalnum()]


def _segments(text: str, end: str) -> list[str]:
    """DCLM's ``split_paragraphs``: split on ``end``, stripped, blank ones out."""
    return [segment for part in text.split(end) if (segment := part.strip())]


def segment_fractions(segments: list[str]) -> tuple[float, float] | None:
    """DCLM's repeated share of ``segments`` (lines or paragraphs): of their number and
    of their characters, each copy of a repeated one counted; (0, 0) for a single one,
    None for none (DCLM drops such a page)."""
    if len(segments) <= 1:
        return None if not segments else (0.0, 0.0)
    counts = Counter(segments)
    repeated = [(segment, count) for segment, count in counts.items() if count > 1]
    share = sum(count for _, count in repeated) / len(segments)
    chars = sum(len(segment) * count for segment, count in repeated)
    return share, chars / sum(len(segment) for segment in segments)


@numba.njit(cache=True, nogil=True)
def ngram_fractions(
    ids: np.ndarray,
    lengths: np.ndarray,
    starts: np.ndarray,
    vocabulary: int,
    sizes: np.ndarray,
    top: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    """Per document (words ``starts[d]:starts[d + 1]`` of ``ids``, each ``lengths``
    characters) and per n of ``sizes``, DCLM's repeated share of the word characters:
    where ``top``, the most frequent n-gram's count times the longest such n-gram's
    characters; else the characters of the words that repeated n-grams cover. 0 where
    no n-gram repeats. N-grams are told apart exactly: each is ranked by its (n-1)-gram's
    rank and its last word, one sort per n."""
    n_docs = len(starts) - 1
    out = np.zeros((n_docs, len(sizes)), np.float64)
    largest = sizes.max() if len(sizes) else 0
    for d in range(n_docs):
        b, e = starts[d], starts[d + 1]
        m = e - b
        if m == 0:
            continue
        prefix = np.zeros(m + 1, np.int64)
        for i in range(m):
            prefix[i + 1] = prefix[i] + lengths[b + i]
        total = prefix[m]
        rank = ids[b:e].copy()
        for n in range(2, largest + 1):
            k = m - n + 1
            if k <= 0:
                break
            keys = rank[:k] * vocabulary + ids[b + n - 1 : b + n - 1 + k]
            order = np.argsort(keys, kind="mergesort")
            new_rank = np.empty(k, np.int64)
            counts = np.empty(k, np.int64)  # each n-gram's count, by position
            r = -1
            run_start = 0
            for j in range(k):
                if j == 0 or keys[order[j]] != keys[order[j - 1]]:
                    if j > 0:
                        for q in range(run_start, j):
                            counts[order[q]] = j - run_start
                    r += 1
                    run_start = j
                new_rank[order[j]] = r
            for q in range(run_start, k):
                counts[order[q]] = k - run_start
            rank = new_rank
            most = counts.max()
            if most <= 1:
                break  # no n-gram repeats, so no longer one does: the rest stay 0
            for s in range(len(sizes)):
                if sizes[s] != n:
                    continue
                if top[s]:
                    longest = 0
                    for i in range(k):
                        if counts[i] == most:
                            longest = max(longest, prefix[i + n] - prefix[i])
                    out[d, s] = longest * most / total
                else:
                    covered = np.zeros(m, np.bool_)
                    for i in range(k):
                        if counts[i] > 1:
                            covered[i : i + n] = True
                    chars = 0
                    for i in range(m):
                        if covered[i]:
                            chars += lengths[b + i]
                    out[d, s] = chars / total
    return out


class DclmRepetitionParams(GopherRepetitionParams):
    """``gopher_repetition``'s parameters, with the same meaning and defaults (DCLM's)."""

    @field_validator("top_n_grams", "dup_n_grams")
    @classmethod
    def _sizes(cls, pairs: list[tuple[int, float]]) -> list[tuple[int, float]]:
        if any(not 2 <= n <= 64 for n, _ in pairs):
            raise ValueError("n-gram sizes run from 2 to 64")
        return pairs


@register
class DclmRepetition(MapStage):
    """DCLM-Baseline's ``massive_web_repetition_filters``; adds ``dclm_dup_*`` and
    ``dclm_top_*`` columns (the measured fractions)."""

    name = "dclm_repetition"
    help = "Gopher repetition rules as DCLM-Baseline runs them (Unicode word breaks)"
    Params = DclmRepetitionParams
    params: DclmRepetitionParams

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        texts = table[TEXT].to_pylist()
        n = len(texts)
        lines = np.zeros((n, 2))
        paragraphs = np.zeros((n, 2))
        empty = np.zeros(n, bool)
        for row, text in enumerate(texts):
            by_line = segment_fractions(_segments(text, "\n"))
            by_paragraph = segment_fractions(_segments(text, "\n\n"))
            if by_line is None:  # nothing but white space (and so no word)
                empty[row] = True
            else:
                lines[row] = by_line
                paragraphs[row] = by_paragraph or (0.0, 0.0)
        # DCLM's words (``dclm_words``), cut by the compiled scan; each distinct word of
        # the batch as a number (by its 64-bit hash), and each word's length
        cut = words(table[TEXT], alnum_first=True)
        starts = np.r_[0, np.cumsum(cut.per_text)]
        distinct, ids = np.unique(cut.hashes, return_inverse=True)
        pairs = [(size, limit, True) for size, limit in p.top_n_grams]
        pairs += [(size, limit, False) for size, limit in p.dup_n_grams]
        fractions = ngram_fractions(
            ids.astype(np.int64),
            cut.chars,
            starts,
            max(len(distinct), 1),
            np.array([size for size, _, _ in pairs], np.int64),
            np.array([top for _, _, top in pairs], np.bool_),
        )
        rules = [
            ("empty", empty),
            ("dup_line_frac", _over(lines[:, 0], p.dup_line_frac)),
            ("dup_para_frac", _over(paragraphs[:, 0], p.dup_para_frac)),
            ("dup_line_char_frac", _over(lines[:, 1], p.dup_line_char_frac)),
            ("dup_para_char_frac", _over(paragraphs[:, 1], p.dup_para_char_frac)),
        ]
        columns = [
            ("dclm_dup_line_frac", lines[:, 0]),
            ("dclm_dup_para_frac", paragraphs[:, 0]),
            ("dclm_dup_line_char_frac", lines[:, 1]),
            ("dclm_dup_para_char_frac", paragraphs[:, 1]),
        ]
        # DCLM tries the n-gram rules by size, smallest first
        for s in sorted(range(len(pairs)), key=lambda s: pairs[s][0]):
            size, limit, top = pairs[s]
            name = f"top_{size}_gram" if top else f"dup_{size}_gram"
            rules.append((name, fractions[:, s] > limit))
            columns.append((f"dclm_{name}_frac", fractions[:, s]))
        for column, values in columns:
            table = table.append_column(column, pa.array(values, mask=empty))
        for rule, mask in rules:
            table = with_drop_reason(table, pa.array(mask), self.reason(rule))
        return table


def _over(values: np.ndarray, limit: float | None) -> np.ndarray:
    return np.zeros(len(values), bool) if limit is None else values > limit
