"""``doc_stats``: datatrove's document statistics (``DocStats``) as columns.

Each row gets its text's length in characters (code points) and six ratios over it, as
datatrove's ``DocStats.extract_stats`` computes them (a ratio of an empty text is 0.0):

- ``doc_stats_length``: characters;
- ``doc_stats_white_space_ratio``: characters that are ``str.isspace``;
- ``doc_stats_non_alpha_digit_ratio``: characters neither ``isalpha`` nor ``isdigit``;
- ``doc_stats_digit_ratio``: ``isdigit`` characters;
- ``doc_stats_uppercase_ratio``: ``isupper`` characters;
- ``doc_stats_ellipsis_ratio``: characters in ellipses, ``...`` (a run of dots counts
  three for each whole three) and ``…`` (datatrove spells it ``elipsis_ratio``);
- ``doc_stats_punctuation_ratio``: characters of datatrove's ``PUNCTUATION``.

Nothing is dropped: the columns are for ``curate inspect`` (quantiles, histograms, and
``--by`` per domain), ``sql_filter`` and ``threshold``. One compiled pass over the UTF-8
bytes; the character classes are Python's (``curation.utf8.char_classes``).
"""

from __future__ import annotations

from functools import cache

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.batch import TEXT
from curation.filters.punctuation import PUNCTUATION
from curation.stage import MapStage, StageParams, register
from curation.utf8 import IS_ALPHA, IS_DIGIT, IS_UPPER, char_classes, code_point, string_buffers

IS_SPACE, IS_PUNCTUATION = 16, 32  # bits beside char_classes' four

#: the columns, in order, after the stage's prefix
METRICS = (
    "length",
    "white_space_ratio",
    "non_alpha_digit_ratio",
    "digit_ratio",
    "uppercase_ratio",
    "ellipsis_ratio",
    "punctuation_ratio",
)
_LENGTH, _SPACE, _NON_ALNUM, _DIGIT, _UPPER, _ELLIPSIS, _PUNCTUATION = range(len(METRICS))


@cache
def classes() -> np.ndarray:
    """``char_classes`` with ``str.isspace`` (``IS_SPACE``) and datatrove's punctuation
    (``IS_PUNCTUATION``) as two more bits, per code point."""
    table = char_classes().copy()
    chars = np.arange(0x110000, dtype=np.uint32).view("U1")
    table |= (np.strings.isspace(chars) * IS_SPACE).astype(np.uint8)
    table[[ord(c) for c in PUNCTUATION]] |= IS_PUNCTUATION
    return table


@numba.njit(cache=True, nogil=True)
def document_counts(
    data: np.ndarray, offsets: np.ndarray, table: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """Per document, its characters, then those of each ratio's kind (``METRICS``' order)."""
    n = len(offsets) - 1
    out = np.zeros((n, len(METRICS)), np.int64)
    for d in range(n):
        i, end = offsets[d], offsets[d + 1]
        dots = 0  # the run of '.' just before i
        while i < end:
            c, size = code_point(data, i)
            i += size
            kind = table[c]
            out[d, _LENGTH] += 1
            if kind & IS_SPACE:
                out[d, _SPACE] += 1
            if not kind & (IS_ALPHA | IS_DIGIT):
                out[d, _NON_ALNUM] += 1
            if kind & IS_DIGIT:
                out[d, _DIGIT] += 1
            if kind & IS_UPPER:
                out[d, _UPPER] += 1
            if kind & IS_PUNCTUATION:
                out[d, _PUNCTUATION] += 1
            if c == 0x2E:  # '.': every third of a run closes an ellipsis
                dots += 1
                if dots == 3:
                    out[d, _ELLIPSIS] += 3
                    dots = 0
            else:
                dots = 0
                if c == 0x2026:  # '…'
                    out[d, _ELLIPSIS] += 1
    return out


@register
class DocStats(MapStage):
    """Adds datatrove's document statistics (``METRICS``, each prefixed ``doc_stats_``):
    the length in characters (int64) and six ratios over it (float64, 0.0 for an empty
    text); drops nothing."""

    name = "doc_stats"
    help = "datatrove's DocStats as columns: length; space, digit, uppercase, punctuation ratios"
    Params = StageParams

    def setup(self) -> None:
        self.table = classes()

    def process(self, table: pa.Table) -> pa.Table:
        text = pc.fill_null(table[TEXT], "")
        parts = [document_counts(*string_buffers(chunk), self.table) for chunk in text.chunks]
        counts = np.concatenate(parts) if parts else np.zeros((0, len(METRICS)), np.int64)
        length = counts[:, _LENGTH]
        some = np.maximum(length, 1)
        for index, metric in enumerate(METRICS):
            column = f"{self.name}_{metric}"
            values = length if index == _LENGTH else counts[:, index] / some
            table = table.append_column(column, pa.array(values))
        return table
