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
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT
from curation.filters.gopher import STOP_WORDS
from curation.filters.part_stats import PYTHON_SPACES, _ratio
from curation.stage import MapStage, StageParams, register
from curation.utf8 import byte_slices, line_bounds, string_buffers


def _per_document(table: pl.DataFrame, rows: int, names: list[str]) -> dict[str, np.ndarray]:
    """Columns ``names`` of ``table`` (one row per ``doc`` that has any) as int64 arrays
    of ``rows`` entries, 0 for the documents it lacks."""
    docs = table["doc"].to_numpy() if table.height else np.zeros(0, np.int64)
    out = {}
    for name in names:
        values = np.zeros(rows, np.int64)
        if table.height:
            values[docs] = table[name].to_numpy()
        out[name] = values
    return out


def _large_text(text: pa.ChunkedArray | pa.Array) -> pa.LargeStringArray:
    """``text`` as one large-string array, null as ""."""
    values = pc.fill_null(text, "").cast(pa.large_string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values


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
        short = list(dict.fromkeys(p.short_word_chars or [3]))
        long = list(dict.fromkeys(p.long_word_chars or [7]))
        text = _large_text(table[TEXT])
        rows = len(text)
        tokens, parents = word_tokens(text)
        words = pl.DataFrame({"doc": parents.astype(np.int64), "word": tokens})
        # datatrove strips each token and leaves out those left empty
        words = words.with_columns(pl.col("word").str.strip_chars(PYTHON_SPACES)).filter(
            pl.col("word").str.len_chars() > 0
        )
        distinct = words["word"].unique()
        values = distinct.to_list()
        cases = pl.DataFrame(
            {
                "word": distinct,
                "upper": [w.isupper() for w in values],
                "title": [w.istitle() for w in values],
            }
        )
        word, length = pl.col("word"), pl.col("word").str.len_chars()
        aggregates = [
            pl.len().alias("n"),
            length.sum().cast(pl.Int64).alias("chars"),
            pl.col("first").sum().alias("distinct"),
            pl.col("upper").sum().alias("upper"),
            pl.col("title").sum().alias("title"),
            word.is_in(p.stop_words).sum().alias("stop"),
        ]
        aggregates += [(length <= n).sum().alias(f"short_{n}") for n in short]
        aggregates += [(length >= n).sum().alias(f"long_{n}") for n in long]
        counted = (
            words.with_columns(pl.struct("doc", "word").is_first_distinct().alias("first"))
            .join(cases, on="word", how="left", maintain_order="left")
            .group_by("doc")
            .agg(aggregates)
        )
        names = [c for c in counted.columns if c != "doc"]
        c = _per_document(counted, rows, names)
        lines = line_bounds(*string_buffers(text))[0]
        n = c["n"]
        columns = {
            "n_words": n,
            "avg_word_length": _ratio(c["chars"], n),
            "avg_words_per_line": _ratio(n, lines),
        }
        for chars in short:
            columns[f"short_word_ratio_{chars}"] = _ratio(c[f"short_{chars}"], n)
        for chars in long:
            columns[f"long_word_ratio_{chars}"] = _ratio(c[f"long_{chars}"], n)
        columns["type_token_ratio"] = _ratio(c["distinct"], n)
        columns["uppercase_word_ratio"] = _ratio(c["upper"], n)
        columns["capitalized_word_ratio"] = _ratio(c["title"], n)
        columns["stop_word_ratio"] = _ratio(c["stop"], n)
        for name, values in columns.items():
            table = table.append_column(f"{self.name}_{name}", pa.array(values))
        return table


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
        from curation.filters.sentences import sentence_ends

        p = self.params
        short = list(dict.fromkeys(p.short_sentence_chars or [20]))
        long = list(dict.fromkeys(p.long_sentence_chars or [75]))
        text = _large_text(table[TEXT])
        rows = len(text)
        per_text, ends = sentence_ends(text)
        data, offsets = string_buffers(text)
        starts = ends.copy()
        firsts = np.cumsum(per_text) - per_text  # each text's first sentence
        starts[1:] = ends[:-1]
        has = per_text > 0
        starts[firsts[has]] = 0
        sentences = pl.DataFrame(
            {
                "doc": np.repeat(np.arange(rows, dtype=np.int64), per_text),
                "sentence": pl.from_arrow(byte_slices(data, offsets, per_text, starts, ends)),
            }
        )
        length = pl.col("sentence").str.strip_chars(PYTHON_SPACES).str.len_chars()
        kept = sentences.with_columns(length.cast(pl.Int64).alias("length")).filter(
            pl.col("length") > 0
        )
        size = pl.col("length")
        aggregates = [pl.len().alias("n"), size.sum().alias("chars")]
        aggregates += [(size <= n).sum().alias(f"short_{n}") for n in short]
        aggregates += [(size >= n).sum().alias(f"long_{n}") for n in long]
        counted = kept.group_by("doc").agg(aggregates)
        c = _per_document(counted, rows, [a for a in counted.columns if a != "doc"])
        n = c["n"]
        columns = {"n_sentences": n, "avg_sentence_length": _ratio(c["chars"], n)}
        for chars in short:
            columns[f"short_sentence_ratio_{chars}"] = _ratio(c[f"short_{chars}"], n)
        for chars in long:
            columns[f"long_sentence_ratio_{chars}"] = _ratio(c[f"long_{chars}"], n)
        for name, values in columns.items():
            table = table.append_column(f"{self.name}_{name}", pa.array(values))
        return table
