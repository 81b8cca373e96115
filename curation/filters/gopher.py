"""Gopher's quality rules (Rae et al. 2021), with datatrove's parameter names and defaults.

``gopher_quality`` measures each document once, vectorised over the batch, and applies
the rules in datatrove's order; the first rule a document fails is its reason
(``gopher_quality:<rule>``):

1. ``min_doc_words`` / ``max_doc_words``: words that are not only punctuation.
2. ``min_avg_word_length`` / ``max_avg_word_length``: their mean length in characters.
3. ``max_hash_ratio`` / ``max_ellipsis_ratio``: ``#`` and ``...``/``…`` per token, above
   ``max_symbol_word_ratio``.
4. ``max_bullet_lines_ratio``: lines starting with ``•`` or ``-``.
5. ``max_ellipsis_lines_ratio``: lines ending with ``...`` or ``…``.
6. ``min_alpha_words_ratio``: tokens with a letter, below ``max_non_alpha_words_ratio``
   (datatrove's name for this lower bound).
7. ``min_stop_words``: distinct stop words (case-sensitive, as in datatrove).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT, with_drop_reason
from curation.filters.text import (
    distinct_hits,
    per_doc_sum,
    split_lines,
    split_words,
    to_numpy,
)
from curation.stage import MapStage, StageParams, register

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
_SPACE = r"[\s\p{Z}\x{1c}-\x{1f}\x{85}]"


class GopherQualityParams(StageParams):
    min_doc_words: int | None = Field(50, description="fewest words; null = no bound")
    max_doc_words: int | None = Field(100_000, description="most words; null = no bound")
    min_avg_word_length: float | None = Field(3, description="shortest mean word length")
    max_avg_word_length: float | None = Field(10, description="longest mean word length")
    max_symbol_word_ratio: float | None = Field(0.1, description="most '#' or ellipses per token")
    max_bullet_lines_ratio: float | None = Field(0.9, description="most lines starting a bullet")
    max_ellipsis_lines_ratio: float | None = Field(0.3, description="most lines ending '...'")
    max_non_alpha_words_ratio: float | None = Field(
        0.8, description="fewest tokens with a letter, as a fraction (datatrove's name)"
    )
    min_stop_words: int | None = Field(2, description="fewest distinct stop words")
    stop_words: list[str] = Field(list(STOP_WORDS), description="the stop-word list")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), 0.0)


@register
class GopherQuality(MapStage):
    """Gopher quality rules; adds ``gopher_*`` measurement columns."""

    name = "gopher_quality"
    help = "Gopher quality rules: word counts and lengths, symbols, bullets, alpha, stop words"
    Params = GopherQualityParams
    params: GopherQualityParams

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        text = table[TEXT]
        n = table.num_rows
        words = split_words(text)
        lines = split_lines(text)
        hashes = _count(text, "#")
        ellipses = _count(text, "...") + _count(text, "…")
        bullets = per_doc_sum(
            lines.parents, pc.match_substring_regex(lines.flat, f"^{_SPACE}*[•-]"), n
        )
        end_ellipses = per_doc_sum(
            lines.parents, pc.match_substring_regex(lines.flat, f"(\\.\\.\\.|…){_SPACE}*$"), n
        )
        columns = {
            "gopher_word_count": words.words.astype(np.int64),
            "gopher_mean_word_length": _ratio(words.word_chars, words.words),
            "gopher_hash_ratio": _ratio(hashes, words.tokens),
            "gopher_ellipsis_ratio": _ratio(ellipses, words.tokens),
            "gopher_bullet_lines_ratio": _ratio(bullets, lines.count),
            "gopher_ellipsis_lines_ratio": _ratio(end_ellipses, lines.count),
            "gopher_alpha_words_ratio": _ratio(words.alpha_words, words.tokens),
            "gopher_stop_words": distinct_hits(words, list(p.stop_words), n),
        }
        for name, values in columns.items():
            table = table.append_column(name, pa.array(values))
        c = columns
        rules = [
            ("min_doc_words", p.min_doc_words, c["gopher_word_count"] < (p.min_doc_words or 0)),
            ("max_doc_words", p.max_doc_words, c["gopher_word_count"] > (p.max_doc_words or 0)),
            (
                "min_avg_word_length",
                p.min_avg_word_length,
                c["gopher_mean_word_length"] < (p.min_avg_word_length or 0),
            ),
            (
                "max_avg_word_length",
                p.max_avg_word_length,
                c["gopher_mean_word_length"] > (p.max_avg_word_length or 0),
            ),
            (
                "max_hash_ratio",
                p.max_symbol_word_ratio,
                c["gopher_hash_ratio"] > (p.max_symbol_word_ratio or 0),
            ),
            (
                "max_ellipsis_ratio",
                p.max_symbol_word_ratio,
                c["gopher_ellipsis_ratio"] > (p.max_symbol_word_ratio or 0),
            ),
            (
                "max_bullet_lines_ratio",
                p.max_bullet_lines_ratio,
                c["gopher_bullet_lines_ratio"] > (p.max_bullet_lines_ratio or 0),
            ),
            (
                "max_ellipsis_lines_ratio",
                p.max_ellipsis_lines_ratio,
                c["gopher_ellipsis_lines_ratio"] > (p.max_ellipsis_lines_ratio or 0),
            ),
            (
                "min_alpha_words_ratio",
                p.max_non_alpha_words_ratio,
                c["gopher_alpha_words_ratio"] < (p.max_non_alpha_words_ratio or 0),
            ),
            ("min_stop_words", p.min_stop_words, c["gopher_stop_words"] < (p.min_stop_words or 0)),
        ]
        for rule, threshold, failed in rules:
            if threshold:  # datatrove skips a rule whose threshold is falsy
                table = with_drop_reason(table, pa.array(failed), self.reason(rule))
        return table


def _count(text: pa.ChunkedArray, pattern: str) -> np.ndarray:
    return to_numpy(pc.count_substring(text, pattern), np.float64)
