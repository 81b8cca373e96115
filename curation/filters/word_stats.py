"""``word_stats`` and ``sentence_stats``: datatrove's ``WordStats`` and ``SentenceStats``
(English) as columns.

Words are datatrove's English words (spaCy's tokens, white space left out:
``curation.filters.tokenize``), sentences its English sentences (spaCy's sentencizer:
``curation.filters.sentences``), each stripped of white space and left out when nothing
is left. Per document, as datatrove's ``extract_stats`` computes them (a ratio with
nothing to divide by is 0.0):

``word_stats_``:
- ``n_words``, ``avg_word_length`` (characters);
- ``avg_words_per_line``: words over the text's lines as ``str.splitlines`` cuts them;
- ``short_word_ratio_{N}``: words of at most N characters, for N in ``short_word_chars``
  (3); ``long_word_ratio_{N}``: at least N, for N in ``long_word_chars`` (7);
- ``type_token_ratio``: distinct words over words;
- ``uppercase_word_ratio`` (``str.isupper``), ``capitalized_word_ratio``
  (``str.istitle``), ``stop_word_ratio`` (words in ``stop_words``, Gopher's eight, case
  as given).

``sentence_stats_``: ``n_sentences``, ``avg_sentence_length``,
``short_sentence_ratio_{N}`` (20), ``long_sentence_ratio_{N}`` (75).

Nothing is dropped.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field

from curation.batch import TEXT
from curation.filters.gopher import STOP_WORDS
from curation.filters.part_stats import (
    limits,
    per_document,
    piece_counts,
    ratio,
    size_ratios,
    with_columns,
)
from curation.stage import MapStage, StageParams, register
from curation.utf8 import large_text, line_bounds, string_buffers


class WordStatsParams(StageParams):
    short_word_chars: list[int] = Field(
        [3], description="short_word_ratio_N for each N: words of at most N characters"
    )
    long_word_chars: list[int] = Field(
        [7], description="long_word_ratio_N for each N: words of at least N characters"
    )
    stop_words: list[str] = Field(list(STOP_WORDS), description="the stop words (case as given)")


@register
class WordStats(MapStage):
    """Adds datatrove's word statistics (see the module), each prefixed ``word_stats_``;
    drops nothing."""

    name = "word_stats"
    help = "datatrove's WordStats as columns: words, length, per line, short, long, distinct, case"
    Params = WordStatsParams
    params: WordStatsParams

    def process(self, table: pa.Table) -> pa.Table:
        from curation.filters.tokenize import word_tokens

        p = self.params
        # datatrove takes an empty list of limits for its default
        short = limits(p.short_word_chars, [3])
        long = limits(p.long_word_chars, [7])
        text = large_text(table[TEXT])
        rows = len(text)
        # spaCy's tokens cut at white space hold none: they are datatrove's stripped words
        tokens, parents = word_tokens(text)
        c = piece_counts(parents, tokens, rows, short=short, long=long, marks=False)
        distinct = tokens.unique()
        values = distinct.to_list()
        cases = pl.DataFrame(
            {
                "word": distinct,
                "upper": [w.isupper() for w in values],
                "title": [w.istitle() for w in values],
            }
        )
        counted = (
            pl.DataFrame({"doc": parents.astype(np.int64), "word": tokens})
            .join(cases, on="word", how="left")
            .group_by("doc")
            .agg(
                pl.col("upper").sum(),
                pl.col("title").sum(),
                pl.col("word").is_in(p.stop_words).sum().alias("stop"),
            )
        )
        c |= per_document(counted, rows)
        lines = line_bounds(*string_buffers(text))[0]
        n = c["n"]
        columns = {
            "n_words": n,
            "avg_word_length": ratio(c["chars"], n),
            "avg_words_per_line": ratio(n, lines),
        }
        columns |= size_ratios(c, short, long, ("short_word_ratio_{}", "long_word_ratio_{}"))
        columns["type_token_ratio"] = ratio(n - c["duplicates"], n)
        columns["uppercase_word_ratio"] = ratio(c["upper"], n)
        columns["capitalized_word_ratio"] = ratio(c["title"], n)
        columns["stop_word_ratio"] = ratio(c["stop"], n)
        return with_columns(table, self.name, columns)


class SentenceStatsParams(StageParams):
    short_sentence_chars: list[int] = Field(
        [20], description="short_sentence_ratio_N for each N: sentences of at most N chars"
    )
    long_sentence_chars: list[int] = Field(
        [75], description="long_sentence_ratio_N for each N: sentences of at least N chars"
    )


@register
class SentenceStats(MapStage):
    """Adds datatrove's sentence statistics (see the module), each prefixed
    ``sentence_stats_``; drops nothing."""

    name = "sentence_stats"
    help = "datatrove's SentenceStats as columns: sentences, their length, short and long ones"
    Params = SentenceStatsParams
    params: SentenceStatsParams

    def process(self, table: pa.Table) -> pa.Table:
        from curation.filters.sentences import sentence_ends, sentence_texts

        p = self.params
        short = limits(p.short_sentence_chars, [20])
        long = limits(p.long_sentence_chars, [75])
        text = large_text(table[TEXT])
        rows = len(text)
        per_text, ends = sentence_ends(text)
        sentences, blank = sentence_texts(*string_buffers(text), per_text, ends)
        doc = np.repeat(np.arange(rows, dtype=np.int64), per_text)
        # datatrove strips each sentence and leaves out those left empty
        c = piece_counts(
            doc[~blank],
            sentences.filter(pa.array(~blank)),
            rows,
            short=short,
            long=long,
            strip_length=True,
            marks=False,
        )
        n = c["n"]
        columns = {"n_sentences": n, "avg_sentence_length": ratio(c["chars"], n)}
        names = ("short_sentence_ratio_{}", "long_sentence_ratio_{}")
        columns |= size_ratios(c, short, long, names)
        return with_columns(table, self.name, columns)
