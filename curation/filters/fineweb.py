"""FineWeb's quality rules (Penedo et al. 2024), with datatrove's parameter names and defaults.

``fineweb_quality`` looks at the non-blank lines (split on ``\\n``) and drops, in
datatrove's order (``fineweb_quality:<rule>``):

1. ``empty``: no non-blank line.
2. ``line_punct_ratio``: fewer than ``line_punct_thr`` of the lines end in a sentence
   terminal (unless the ratio is 0 and ``line_punct_exclude_zero``).
3. ``short_line_ratio``: more than ``short_line_thr`` of the lines have at most
   ``short_line_length`` characters.
4. ``char_dup_ratio``: characters in lines that repeat an earlier line, over the
   characters of the text without newlines, above ``char_duplicates_ratio``.
5. ``list_ratio``: newlines per word token above ``new_line_ratio``.

The default sentence terminals are Unicode's ``Sentence_Terminal`` characters plus the
Khmer signs ``៖ ៙ ៚``, which is the list datatrove ships.
"""

from __future__ import annotations

import sys
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT, with_drop_reason
from curation.filters.text import repeated_pieces, split_pieces
from curation.filters.tokenize import word_tokens
from curation.stage import MapStage, StageParams, register


@cache
def sentence_terminals() -> tuple[str, ...]:
    """Every character with Unicode's Sentence_Terminal property, and three Khmer signs."""
    import regex

    pattern = regex.compile(r"\p{Sentence_Terminal}")
    found = [chr(c) for c in range(sys.maxunicode + 1) if pattern.match(chr(c))]
    return (*found, "៖", "៙", "៚")


class FineWebQualityParams(StageParams):
    line_punct_thr: float = Field(0.12, description="fewest lines ending a sentence, fraction")
    line_punct_exclude_zero: bool = Field(False, description="keep documents with none at all")
    stop_chars: list[str] | None = Field(
        None, description="characters that end a sentence (default: Unicode Sentence_Terminal)"
    )
    short_line_thr: float = Field(0.67, description="most short lines, fraction")
    short_line_length: int = Field(30, description="a line this long or shorter is short")
    char_duplicates_ratio: float = Field(0.01, description="most characters in repeated lines")
    new_line_ratio: float = Field(0.3, description="most newlines per word")


@register
class FineWebQuality(MapStage):
    """FineWeb line rules; adds ``fineweb_*`` ratio columns."""

    name = "fineweb_quality"
    help = "FineWeb rules: lines ending in punctuation, short lines, repeated lines, lists"
    Params = FineWebQualityParams
    params: FineWebQualityParams

    def setup(self) -> None:
        self._stops = pa.array(self.params.stop_chars or sentence_terminals())

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        n = table.num_rows
        text = table[TEXT]
        all_lines, all_parents = split_pieces(pc.split_pattern(text, "\n"))
        blank = np.asarray(
            pc.equal(pc.utf8_trim_whitespace(all_lines), "").to_numpy(zero_copy_only=False)
        )
        lines = all_lines.filter(pa.array(~blank))
        parents = all_parents[~blank]
        count = np.bincount(parents, minlength=n).astype(np.float64)
        safe = np.maximum(count, 1)

        last = pc.utf8_slice_codeunits(lines, -1)
        ends = np.asarray(pc.is_in(last, self._stops).to_numpy(zero_copy_only=False))
        punct = np.bincount(parents[ends], minlength=n) / safe
        short = np.asarray(
            pc.less_equal(pc.utf8_length(lines), p.short_line_length).to_numpy(zero_copy_only=False)
        )
        short_ratio = np.bincount(parents[short], minlength=n) / safe
        _, dup_chars = repeated_pieces(lines, parents, n)
        newlines = np.asarray(pc.count_substring(text, "\n").to_numpy(zero_copy_only=False))
        chars = np.asarray(pc.utf8_length(text).to_numpy(zero_copy_only=False)) - newlines
        dup_ratio = dup_chars / np.maximum(chars, 1)
        _, token_parents = word_tokens(text)
        tokens = np.bincount(token_parents, minlength=n)
        list_ratio = newlines / np.maximum(tokens, 1)

        measures = {
            "fineweb_line_punct_ratio": punct,
            "fineweb_short_line_ratio": short_ratio,
            "fineweb_char_dup_ratio": dup_ratio,
            "fineweb_list_ratio": list_ratio,
        }
        for column, values in measures.items():
            table = table.append_column(column, pa.array(values))
        punct_fails = punct < p.line_punct_thr
        if p.line_punct_exclude_zero:
            punct_fails &= punct != 0
        rules = [
            ("empty", count == 0),
            ("line_punct_ratio", punct_fails),
            ("short_line_ratio", short_ratio > p.short_line_thr),
            ("char_dup_ratio", dup_ratio > p.char_duplicates_ratio),
            ("list_ratio", list_ratio > p.new_line_ratio),
        ]
        for rule, mask in rules:
            table = with_drop_reason(table, pa.array(mask), self.reason(rule))
        return table
