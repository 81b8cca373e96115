"""C4's quality rules (Raffel et al. 2020), with datatrove's parameter names and defaults.

``c4_quality`` works line by line (Python's ``splitlines``, each line stripped), in
datatrove's order. A line is removed when one of its words is longer than
``max_word_length``, when it does not end in one of ``end_punctuation`` (``. ? ! " '``)
or ends in ``...`` (after removing Wikipedia citations), when it has fewer than
``min_words_per_line`` words, when it mentions javascript, or when it holds a
cookie/terms-of-use phrase. A document is dropped (``c4_quality:<rule>``) when a line
that reached those checks holds ``lorem ipsum`` (``lorem_ipsum``) or a curly bracket
(``curly_bracket``), whichever comes first, or when its kept lines hold fewer than
``min_num_sentences`` sentences (``too_few_sentences``). Kept documents get the kept
lines as their text, joined by newlines, and ``c4_lines_removed`` records how many lines
went.

datatrove's defaults are not C4's own: TFDS's ``c4_utils``, which built C4, keeps lines
of 5 words or more that end in ``. ? ! "`` and pages of 3 sentences or more;
``pipelines/c4.yaml`` sets those.

Sentences are counted as spaCy's sentencizer (datatrove's sentence splitter) counts
them: a new sentence starts at the first word after a sentence-final mark.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT, with_drop_reason
from curation.filters.sentences import sentence_ends
from curation.filters.text import split_lines, to_numpy
from curation.stage import MapStage, StageParams, register
from curation.utf8 import word_counts

CITATION = r"\[\d*]|\[edit]|\[citation needed]"
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
_POLICY_PATTERN = "|".join(re.escape(phrase) for phrase in POLICY_SUBSTRINGS)


class C4QualityParams(StageParams):
    remove_citations: bool = Field(True, description="remove [1], [edit], [citation needed]")
    filter_no_terminal_punct: bool = Field(True, description="remove lines without end_punctuation")
    end_punctuation: list[str] = Field(
        list(END_PUNCTUATION),
        min_length=1,
        description="marks a kept line ends in (datatrove's; C4's own code: . ? ! \")",
    )
    min_num_sentences: int = Field(5, description="fewest sentences in kept lines; -1: off")
    min_words_per_line: int = Field(3, description="remove lines with fewer words; -1: off")
    max_word_length: int = Field(1000, description="remove lines with a longer word; -1: off")
    filter_lorem_ipsum: bool = Field(True, description="drop documents with 'lorem ipsum'")
    filter_javascript: bool = Field(True, description="remove lines mentioning javascript")
    filter_curly_bracket: bool = Field(True, description="drop documents with '{'")
    filter_policy: bool = Field(True, description="remove cookie and terms-of-use lines")


def _np(values: pa.Array | pa.ChunkedArray, dtype: type = bool) -> np.ndarray:
    return to_numpy(values, dtype)


def _first_per_doc(mask: np.ndarray, parents: np.ndarray, n: int) -> np.ndarray:
    """Index of the first line where ``mask`` holds, per document (a large number if none)."""
    first = np.full(n, np.iinfo(np.int64).max)
    hits = np.flatnonzero(mask)
    np.minimum.at(first, parents[hits], hits)
    return first


def count_sentences(lines: pa.Array) -> np.ndarray:
    """Sentences per line, as spaCy's sentencizer splits them (a line of white space
    alone, or none: 0)."""
    per_line, _ = sentence_ends(lines)  # 0 for an empty or null line already
    return np.where(_np(pc.fill_null(pc.utf8_is_space(lines), False)), 0, per_line)


@register
class C4Quality(MapStage):
    """C4 line and document rules; rewrites the text with the kept lines."""

    name = "c4_quality"
    help = (
        "C4 rules: remove unpunctuated, short, javascript and policy lines; drop lorem ipsum, '{'"
    )
    Params = C4QualityParams
    params: C4QualityParams

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        n = table.num_rows
        lines = split_lines(table[TEXT])
        parents = lines.parents
        stripped = pc.utf8_trim_whitespace(lines.flat)
        word_count, longest = word_counts(stripped)

        text = (
            pc.replace_substring_regex(stripped, CITATION, "") if p.remove_citations else stripped
        )
        lower = pc.utf8_lower(text)
        removed = np.zeros(len(stripped), bool)
        if p.max_word_length != -1:
            removed |= longest > p.max_word_length
        if p.filter_no_terminal_punct:
            ends = np.zeros(len(stripped), bool)
            for mark in p.end_punctuation:
                ends |= _np(pc.ends_with(text, mark))
            removed |= ~ends | _np(pc.ends_with(text, "..."))
        removed |= word_count < p.min_words_per_line
        reached = ~removed
        lorem = (
            reached & _np(pc.match_substring(lower, "lorem ipsum"))
            if p.filter_lorem_ipsum
            else np.zeros_like(reached)
        )
        if p.filter_javascript:
            removed |= _np(pc.match_substring(lower, "javascript"))
        curly = (
            ~removed & ~lorem & _np(pc.match_substring(text, "{"))
            if p.filter_curly_bracket
            else np.zeros_like(reached)
        )
        if p.filter_policy:  # one pattern: 7x faster than a search per phrase
            removed |= _np(pc.match_substring_regex(lower, _POLICY_PATTERN))
        kept = ~removed & ~lorem & ~curly

        first_lorem = _first_per_doc(lorem, parents, n)
        first_curly = _first_per_doc(curly, parents, n)
        kept_index = np.flatnonzero(kept)
        kept_lines = text.take(pa.array(kept_index))
        sentences = np.zeros(n, np.int64)
        if p.min_num_sentences != -1 and len(kept_index):
            sentences = np.bincount(
                parents[kept_index], weights=count_sentences(kept_lines), minlength=n
            ).astype(np.int64)
        kept_per_doc = np.bincount(parents[kept_index], minlength=n)
        offsets = np.r_[0, np.cumsum(kept_per_doc)].astype(np.int32)
        listed = pa.ListArray.from_arrays(pa.array(offsets), kept_lines)
        rebuilt = pc.binary_join(listed, pa.scalar("\n", kept_lines.type))
        new_text = pc.utf8_trim_whitespace(rebuilt).cast(pa.large_string())

        rules = [
            ("lorem_ipsum", first_lorem < first_curly),
            ("curly_bracket", first_curly < first_lorem),
            ("too_few_sentences", sentences < p.min_num_sentences),
        ]
        dropped = np.zeros(n, bool)
        for _, mask in rules:
            dropped |= mask
        # dropped documents keep their text as it came, for inspection
        new_text = pc.if_else(pa.array(dropped), table[TEXT], new_text)
        table = table.set_column(table.column_names.index(TEXT), TEXT, new_text)
        table = table.append_column("c4_lines_removed", pa.array(lines.count - kept_per_doc))
        table = table.append_column("c4_sentences", pa.array(sentences))
        for rule, mask in rules:
            table = with_drop_reason(table, pa.array(mask), self.reason(rule))
        return table
