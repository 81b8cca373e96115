"""``line_stats`` and ``paragraph_stats``: datatrove's ``LineStats`` and
``ParagraphStats`` as columns.

A text's lines are its pieces between ``\\n``; its paragraphs its pieces between
``\\n\\n`` (``str.split``), those that are only white space left out. Per document, as
datatrove's ``extract_stats`` computes them (a ratio with nothing to divide by is 0.0):

``line_stats_`` (``ignore_empty_lines`` leaves out the lines of white space, after
counting them in ``n_lines``):
- ``n_lines``, ``avg_line_length`` (characters);
- ``short_line_ratio_chars_{N}``: lines of at most N characters, for N in
  ``short_line_chars`` (10, 30); ``long_line_ratio_chars_{N}``: at least N, for N in
  ``long_line_chars`` (2000, 10000);
- ``lines_ending_with_terminal_mark_ratio``: lines ending in ``. ? ! " '``;
- ``bullet_point_lines_ratio``: lines whose first character after white space is ``-``,
  ``*`` or ``•``;
- ``line_duplicates``: lines equal to an earlier line of the text;
  ``line_char_duplicates``: their characters, over all the lines' characters.

``paragraph_stats_``: ``n_paragraphs``, ``avg_paragraph_length``,
``short_paragraph_ratio_{N}`` (100), ``long_paragraph_ratio_{N}`` (1000),
``paragraph_duplicates``, ``paragraph_char_duplicates``.

Nothing is dropped. The pieces of a batch are cut by Arrow and counted by polars in one
pass; white space is Python's (``str.isspace``, ``str.strip``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT
from curation.filters.text import split_pieces
from curation.stage import MapStage, StageParams, register
from curation.utf8 import large_text

#: the characters ``str.isspace`` is true of (``str.strip`` removes them)
PYTHON_SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
#: datatrove's terminal marks of a line (C4's ``END_PUNCTUATION``) and bullets
TERMINAL_MARKS = (".", "?", "!", '"', "'")
BULLETS = ("-", "*", "•")


def piece_counts(
    doc: np.ndarray,
    pieces: pa.Array | pl.Series,
    rows: int,
    *,
    short: list[int],
    long: list[int],
    drop_blank: bool = False,
    strip_length: bool = False,
    marks: bool = True,
) -> dict[str, np.ndarray]:
    """Per document (0 to ``rows - 1``), the counts over its ``pieces`` (strings, in
    order; ``doc`` names each one's document): ``all`` (pieces before ``drop_blank``
    leaves out those of white space only), ``n``, ``chars`` (of the piece, or of it
    stripped with ``strip_length``), ``short_{N}`` (at most N characters), ``long_{N}``
    (at least N), ``duplicates`` and ``duplicate_chars`` (pieces equal to an earlier one
    of the same document), and with ``marks`` ``terminal`` and ``bullets``; each an int64
    array of ``rows``. ``short`` and ``long`` hold each limit once."""
    part_values = pieces if isinstance(pieces, pl.Series) else pl.from_arrow(pieces)
    frame = pl.DataFrame({"doc": doc.astype(np.int64), "part": part_values})
    part = pl.col("part")
    stripped = part.str.strip_chars(PYTHON_SPACES)
    derived = [(stripped if strip_length else part).str.len_chars().cast(pl.Int64).alias("length")]
    if drop_blank:
        derived.append((stripped.str.len_chars() == 0).alias("blank"))
    if marks:
        derived.append(stripped.str.slice(0, 1).is_in(BULLETS).alias("bullet"))
    lf = frame.lazy().with_columns(derived)
    out = {"all": np.bincount(doc, minlength=rows).astype(np.int64)}
    if drop_blank:
        lf = lf.filter(~pl.col("blank"))
    length = pl.col("length")
    repeat = ~pl.struct("doc", "part").is_first_distinct()
    aggregates = [
        pl.len().alias("n"),
        length.sum().alias("chars"),
        pl.col("repeat").sum().alias("duplicates"),
        length.filter(pl.col("repeat")).sum().alias("duplicate_chars"),
    ]
    if marks:
        aggregates.append(part.str.slice(-1).is_in(TERMINAL_MARKS).sum().alias("terminal"))
        aggregates.append(pl.col("bullet").sum().alias("bullets"))
    aggregates += [(length <= n).sum().alias(f"short_{n}") for n in short]
    aggregates += [(length >= n).sum().alias(f"long_{n}") for n in long]
    kept = lf.with_columns(repeat.alias("repeat")).group_by("doc").agg(aggregates).collect()
    return out | per_document(kept, rows)


def split_counts(
    text: pa.ChunkedArray | pa.Array, separator: str, **counting: Any
) -> dict[str, np.ndarray]:
    """``piece_counts`` of each text's pieces between ``separator`` (``str.split``; a
    null text as "")."""
    text = large_text(text)
    pieces, doc = split_pieces(pc.split_pattern(text, separator))
    return piece_counts(doc, pieces, len(text), **counting)


def per_document(table: pl.DataFrame, rows: int) -> dict[str, np.ndarray]:
    """Each column of ``table`` but ``doc`` (one row per document that has any) as an
    int64 array of ``rows`` entries, 0 for the documents it lacks."""
    docs = table["doc"].to_numpy()
    out = {}
    for name in table.columns:
        if name != "doc":
            values = np.zeros(rows, np.int64)
            values[docs] = table[name].to_numpy()
            out[name] = values
    return out


def size_ratios(
    counts: dict[str, np.ndarray], short: list[int], long: list[int], names: tuple[str, str]
) -> dict[str, np.ndarray]:
    """The share of short and of long pieces (``short_{N}``, ``long_{N}`` of ``counts``,
    over its ``n``), named ``names[0]`` and ``names[1]`` with ``{}`` for N."""
    n = counts["n"]
    out = {names[0].format(chars): ratio(counts[f"short_{chars}"], n) for chars in short}
    out.update({names[1].format(chars): ratio(counts[f"long_{chars}"], n) for chars in long})
    return out


def limits(given: list[int], empty: list[int] | None = None) -> list[int]:
    """Each length limit of ``given`` once, in order; an empty list is ``empty`` when one
    is given (datatrove takes an empty list for its default, but for lines)."""
    return list(dict.fromkeys(given or empty or []))


def ratio(count: np.ndarray, over: np.ndarray) -> np.ndarray:
    """``count / over``, 0.0 where ``over`` is 0 (datatrove's ``_safe_divide``)."""
    return np.where(over > 0, count / np.maximum(over, 1), 0.0)


def with_columns(table: pa.Table, prefix: str, columns: dict[str, np.ndarray]) -> pa.Table:
    """``table`` with each of ``columns`` appended as ``{prefix}_{name}``."""
    for name, values in columns.items():
        table = table.append_column(f"{prefix}_{name}", pa.array(values))
    return table


class LineStatsParams(StageParams):
    short_line_chars: list[int] = Field(
        [10, 30], description="short_line_ratio_chars_N for each N: lines of at most N chars"
    )
    long_line_chars: list[int] = Field(
        [2000, 10000], description="long_line_ratio_chars_N for each N: lines of at least N chars"
    )
    ignore_empty_lines: bool = Field(
        False, description="leave lines of white space out of every ratio (not of n_lines)"
    )


@register
class LineStats(MapStage):
    """Adds datatrove's line statistics (see the module), each prefixed ``line_stats_``;
    drops nothing."""

    name = "line_stats"
    help = "datatrove's LineStats as columns: lines, their length, short, long, bullet, repeated"
    Params = LineStatsParams
    params: LineStatsParams

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        short, long = limits(p.short_line_chars), limits(p.long_line_chars)
        c = split_counts(table[TEXT], "\n", drop_blank=p.ignore_empty_lines, short=short, long=long)
        n = c["n"]
        columns = {"n_lines": c["all"], "avg_line_length": ratio(c["chars"], n)}
        names = ("short_line_ratio_chars_{}", "long_line_ratio_chars_{}")
        columns |= size_ratios(c, short, long, names)
        columns["lines_ending_with_terminal_mark_ratio"] = ratio(c["terminal"], n)
        columns["bullet_point_lines_ratio"] = ratio(c["bullets"], n)
        columns["line_duplicates"] = ratio(c["duplicates"], n)
        columns["line_char_duplicates"] = ratio(c["duplicate_chars"], c["chars"])
        return with_columns(table, self.name, columns)


class ParagraphStatsParams(StageParams):
    short_paragraph_chars: list[int] = Field(
        [100], description="short_paragraph_ratio_N for each N: paragraphs of at most N chars"
    )
    long_paragraph_chars: list[int] = Field(
        [1000], description="long_paragraph_ratio_N for each N: paragraphs of at least N chars"
    )


@register
class ParagraphStats(MapStage):
    """Adds datatrove's paragraph statistics (see the module), each prefixed
    ``paragraph_stats_``; drops nothing."""

    name = "paragraph_stats"
    help = "datatrove's ParagraphStats as columns: paragraphs, their length, short, long, repeated"
    Params = ParagraphStatsParams
    params: ParagraphStatsParams

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        # datatrove takes an empty list of limits for its default
        short = limits(p.short_paragraph_chars, [100])
        long = limits(p.long_paragraph_chars, [1000])
        c = split_counts(table[TEXT], "\n\n", drop_blank=True, short=short, long=long)
        n = c["n"]
        columns = {"n_paragraphs": n, "avg_paragraph_length": ratio(c["chars"], n)}
        columns |= size_ratios(
            c, short, long, ("short_paragraph_ratio_{}", "long_paragraph_ratio_{}")
        )
        columns["paragraph_duplicates"] = ratio(c["duplicates"], n)
        columns["paragraph_char_duplicates"] = ratio(c["duplicate_chars"], c["chars"])
        return with_columns(table, self.name, columns)
