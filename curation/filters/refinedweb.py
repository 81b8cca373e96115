"""RefinedWeb's line-wise corrections (Penedo et al. 2023), as DCLM-Baseline runs them.

``refinedweb_lines`` splits each document on ``\\n`` and applies the corrections in
DCLM-Baseline's order (Li et al. 2024, ``dclm_baseline_refinedweb.yaml``), each to
the text the one before it left:

1. remove lines where more than ``max_uppercase_ratio`` of the characters are
   uppercase;
2. remove lines where more than ``max_numeric_ratio`` of the characters are digits
   (0.999999: lines made only of digits, RefinedWeb's rule);
3. remove counter lines (``3 likes``, ``1.2k views``) when ``remove_counters``;
4. remove lines with fewer than ``min_words_per_line`` words (whitespace-separated);
5. for each of ``substrings`` in turn, on lines of at most ``max_substring_line_words``
   words: remove what the pattern matches (case-insensitive, with one whitespace
   character before it, or after it for a prefix), and the whole line when nothing but
   whitespace is left.

After steps 1, 2, 3 and each substring rule the document is stripped of whitespace at
both ends, as DCLM strips it. Empty lines are never removed by a rule. A document is then
dropped (``refinedweb_lines:<rule>``) when:

- ``empty``: nothing is left;
- ``no_words``: it had no word to begin with;
- ``words_removed_ratio``: more than ``max_words_removed_ratio`` of its words went.

Words for that ratio are counted as DCLM counts them: fastText's tokens (split on
ASCII whitespace and NUL) whose first character is a letter or a digit. Kept documents
get the corrected text; dropped ones keep theirs, for inspection.
``refinedweb_lines_removed`` records how many lines went (blank lines at either end
included) and ``refinedweb_words_removed_ratio`` the fraction of words (null when the
document had none).

Characters are classed as Python's ``str.isupper``, ``str.isdigit``, ``str.isspace``
and ``str.isalnum`` class them, and patterns mean what Python's ``re`` makes of DCLM's
(``\\d``, ``\\s`` and ``\\W`` over all of Unicode), so the decisions and texts are
DCLM's: ``tests/filters/test_refinedweb.py`` checks them against a per-document
rendering of DCLM's functions.
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from curation.batch import TEXT, with_drop_reason
from curation.filters.text import split_pieces, to_numpy
from curation.stage import MapStage, StageParams, register
from curation.utf8 import (
    IS_ALNUM,
    IS_DIGIT,
    IS_UPPER,
    char_classes,
    code_point,
    is_unicode_space,
    string_buffers,
)

# Python's str.isspace as an RE2 class, for the patterns (the test checks every code point)
SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f\x85\p{Z}]"
_NOT_WORD = r"[^\p{L}\p{N}_]"  # Python's \W
# a counter line, matched against the lowercased line (DCLM's counter_line_modifier)
COUNTER = (
    rf"^{_NOT_WORD}*\p{{Nd}}[,.\p{{Nd}}]*[kmb]?{SPACE}+"
    r"(likes|shares|comments|retweets|reposts|quotes|bookmarks|upvotes|downvotes|downloads"
    rf"|views|followers){_NOT_WORD}*$"
)


class SubstringRule(BaseModel):
    """A pattern removed from short lines: RE2 syntax, matched case-insensitively."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pattern: str = Field(description="regular expression (RE2), matched case-insensitively")
    location: Literal["any", "prefix", "suffix"] = Field(
        "any", description="where in the line: anywhere (every match), its start or its end"
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            pc.match_substring_regex(pa.array([""]), value)  # compiles it (an empty array does not)
        except pa.ArrowInvalid as error:
            raise ValueError(f"pattern {value!r} is not a valid RE2 expression: {error}") from None
        return value

    def regex(self) -> str:
        """The pattern as DCLM applies it: one optional whitespace character joined."""
        if self.location == "prefix":
            return rf"(?i)^(?:{self.pattern}){SPACE}?"
        if self.location == "suffix":
            return rf"(?i){SPACE}?(?:{self.pattern})$"
        return rf"(?i){SPACE}?(?:{self.pattern})"


# DCLM-Baseline's three: its banlists are regular expressions, so "read more..." ends in
# any three characters ("Read more »»»" as well as "Read more...")
DCLM_SUBSTRINGS = (
    SubstringRule(pattern="items in cart", location="any"),
    SubstringRule(pattern="read more...", location="suffix"),
    SubstringRule(pattern="sign-in", location="prefix"),
)


class RefinedWebLinesParams(StageParams):
    max_uppercase_ratio: float | None = Field(
        0.5, description="remove lines with more uppercase characters; null = off"
    )
    max_numeric_ratio: float | None = Field(
        0.999999, description="remove lines with more digit characters; null = off"
    )
    remove_counters: bool = Field(True, description="remove lines like '3 likes', '1.2k views'")
    min_words_per_line: int | None = Field(
        2, description="remove lines with fewer words (empty lines stay); null = off"
    )
    substrings: list[SubstringRule] = Field(
        list(DCLM_SUBSTRINGS), description="patterns removed from short lines, in order"
    )
    max_substring_line_words: int | None = Field(
        10, description="substrings are removed only from lines this short; null = any"
    )
    max_words_removed_ratio: float | None = Field(
        0.05, description="drop documents that lost more of their words; null = off"
    )


UPPERS, DIGITS, WORDS, TOKENS = range(4)  # the columns of ``line_counts``


def line_counts(lines: pa.Array) -> np.ndarray:
    """Per string of a large-string array, an ``(n, 4)`` array: its uppercase characters
    (``str.isupper``), digit characters (``str.isdigit``), words (``len(line.split())``)
    and words as DCLM counts them (``TOKENS``: fastText's tokens, split on ASCII
    whitespace and NUL, whose first character is alphanumeric, ``str.isalnum``). A
    document's tokens are the sum of its lines' (a newline splits tokens)."""
    return _line_counts(*string_buffers(lines), char_classes())


@numba.njit(cache=True, nogil=True)
def _line_counts(
    data: np.ndarray, offsets: np.ndarray, table: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """``line_counts``, with ``table`` the class bits of every code point."""
    n = len(offsets) - 1
    counts = np.zeros((n, 4), np.int64)
    for row in range(n):
        inside = False  # within a word of str.split()
        separated = True  # after a fastText separator
        i = offsets[row]
        end = offsets[row + 1]
        while i < end:
            b = data[i]
            if b < 0x80:
                point = np.int64(b)
                size = 1
            else:
                point, size = code_point(data, i)
            begins = False
            if b == 0x20 or (b >= 0x09 and b <= 0x0D) or b == 0:
                separated = True
            elif separated:
                separated = False
                begins = True
            if is_unicode_space(point):
                inside = False
            elif not inside:
                inside = True
                counts[row, WORDS] += 1
            bits = table[point]
            if bits & IS_UPPER:
                counts[row, UPPERS] += 1
            if bits & IS_DIGIT:
                counts[row, DIGITS] += 1
            if begins and bits & IS_ALNUM:
                counts[row, TOKENS] += 1
            i += size
    return counts


class _Lines:
    """The lines of a batch as they are corrected: ``flat`` lines (large strings),
    ``parents`` their document (sorted), ``n`` documents, and ``counts`` per line
    (``line_counts``), recounted for every line a step changes."""

    def __init__(self, text: pa.ChunkedArray | pa.Array) -> None:
        pieces = pc.split_pattern(text.cast(pa.large_string()), "\n")
        self.flat, self.parents = split_pieces(pieces)
        self.n = len(text)
        self.counts = line_counts(self.flat)

    def keep(self, mask: np.ndarray) -> None:
        if not mask.all():
            self.flat = self.flat.filter(pa.array(mask))
            self.parents = self.parents[mask]
            self.counts = self.counts[mask]

    @property
    def words(self) -> np.ndarray:
        """Words per line, as ``len(line.split())``."""
        return self.counts[:, WORDS]

    def per_document(self, column: int) -> np.ndarray:
        """The sum of ``line_counts``' ``column`` over each document's lines."""
        sums = np.bincount(self.parents, weights=self.counts[:, column], minlength=self.n)
        return sums.astype(np.int64)

    def length(self) -> np.ndarray:
        """Characters per line."""
        return to_numpy(pc.utf8_length(self.flat))

    def ratio_at_most(self, counts: np.ndarray, limit: float) -> np.ndarray:
        """Lines that are empty or where ``counts`` over characters is at most ``limit``."""
        length = self.length()
        return (length == 0) | (counts / np.maximum(length, 1) <= limit)

    def replace(self, mask: np.ndarray, values: pa.Array) -> None:
        """Put ``values`` in place of the lines at ``mask``, counting them anew."""
        self.flat = pc.replace_with_mask(self.flat, pa.array(mask), values)
        self.counts[mask] = line_counts(values)

    def strip(self) -> None:
        """Strip each document's whitespace at both ends, as ``str.strip`` on the text."""
        inner = np.flatnonzero(self.words > 0)  # lines that are not blank
        if len(inner) == 0:
            self.keep(np.zeros(len(self.flat), bool))
            return
        owners = self.parents[inner]
        starts = np.r_[True, owners[1:] != owners[:-1]]
        ends = np.r_[owners[1:] != owners[:-1], True]
        first = np.full(self.n, -1)
        last = np.full(self.n, -2)
        first[owners[starts]] = inner[starts]
        last[owners[ends]] = inner[ends]
        index = np.arange(len(self.flat))
        inside = (index >= first[self.parents]) & (index <= last[self.parents])
        heads = (index == first[self.parents])[inside]
        tails = (index == last[self.parents])[inside]
        self.keep(inside)
        for at, trim in ((heads, pc.utf8_ltrim_whitespace), (tails, pc.utf8_rtrim_whitespace)):
            values = self.flat.filter(pa.array(at))
            trimmed = trim(values)
            changed = to_numpy(pc.not_equal(trimmed, values), bool)
            if changed.any():  # most lines have no whitespace at their ends: no copy
                at[np.flatnonzero(at)[~changed]] = False
                # recounted: a token that began with a space such as U+00A0 may begin
                # with a letter now
                self.replace(at, trimmed.filter(pa.array(changed)))

    def text(self) -> pa.Array:
        """Each document's lines joined by ``\\n`` ("" for a document with none)."""
        offsets = np.r_[0, np.cumsum(np.bincount(self.parents, minlength=self.n))]
        listed = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), self.flat)
        return pc.binary_join(listed, pa.scalar("\n", self.flat.type))


@register
class RefinedWebLines(MapStage):
    """RefinedWeb's line corrections and DCLM's 5% word-removal rule; rewrites the text."""

    name = "refinedweb_lines"
    help = (
        "RefinedWeb line fixes (DCLM-Baseline): uppercase, numeric, counter, one-word and "
        "boilerplate lines; drop documents that lose over 5% of words"
    )
    Params = RefinedWebLinesParams
    params: RefinedWebLinesParams

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        n = table.num_rows
        text = table[TEXT]
        lines = _Lines(text)
        before = lines.per_document(TOKENS)
        original_lines = np.bincount(lines.parents, minlength=n)
        if p.max_uppercase_ratio is not None:
            lines.keep(lines.ratio_at_most(lines.counts[:, UPPERS], p.max_uppercase_ratio))
            lines.strip()
        if p.max_numeric_ratio is not None:
            lines.keep(lines.ratio_at_most(lines.counts[:, DIGITS], p.max_numeric_ratio))
            lines.strip()
        if p.remove_counters:
            counter = to_numpy(pc.match_substring_regex(pc.utf8_lower(lines.flat), COUNTER), bool)
            lines.keep(~counter)
            lines.strip()
        if p.min_words_per_line is not None:
            lines.keep((lines.length() == 0) | (lines.words >= p.min_words_per_line))
        for rule in p.substrings:
            self._remove_substring(lines, rule.regex())
            lines.strip()

        new_text = lines.text()
        after = lines.per_document(TOKENS)
        ratio = (before - after) / np.maximum(before, 1)
        rules = [
            ("empty", to_numpy(pc.equal(pc.binary_length(new_text), 0), bool)),
            ("no_words", before == 0),
            (
                "words_removed_ratio",
                ratio > p.max_words_removed_ratio
                if p.max_words_removed_ratio is not None
                else np.zeros(n, bool),
            ),
        ]
        dropped = np.zeros(n, bool)
        for _, mask in rules:
            dropped |= mask
        # dropped documents keep their text as it came, for inspection
        new_text = pc.if_else(pa.array(dropped), text, new_text.cast(text.type))
        table = table.set_column(table.column_names.index(TEXT), TEXT, new_text)
        removed = original_lines - np.bincount(lines.parents, minlength=n)
        table = table.append_column("refinedweb_lines_removed", pa.array(removed))
        table = table.append_column(
            "refinedweb_words_removed_ratio", pa.array(ratio, mask=before == 0)
        )
        for rule, mask in rules:
            table = with_drop_reason(table, pa.array(mask), self.reason(rule))
        return table

    def _remove_substring(self, lines: _Lines, pattern: str) -> None:
        """Remove ``pattern`` from the short lines; a non-empty line left blank goes."""
        limit = self.params.max_substring_line_words
        short = np.ones(len(lines.flat), bool) if limit is None else lines.words <= limit
        if not short.any():
            return
        candidates = lines.flat.filter(pa.array(short))
        edited = pc.replace_substring_regex(candidates, pattern, "")
        changed = to_numpy(pc.not_equal(edited, candidates), bool)
        rows = np.flatnonzero(short)
        at = np.zeros(len(lines.flat), bool)
        at[rows[changed]] = True
        was_empty = lines.length() == 0
        lines.replace(at, edited.filter(pa.array(changed)))
        # as DCLM: a short line left blank goes, even one that was blank (not empty) before
        gone = short & (lines.words == 0) & ~was_empty
        lines.keep(~gone)
