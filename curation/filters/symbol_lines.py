"""``symbol_lines``: remove the lines made only of symbols (datatrove's
``SymbolLinesFormatter``).

A line (as ``str.splitlines`` cuts the text) goes when every character of it is one of
``symbols`` or a space and it is not white space alone: ``* * *``, ``----``, ``>>>``,
the rules of ASCII tables (``|---|---|``). ``symbols`` are datatrove's punctuation by
default (ASCII and CJK punctuation, arrows and quotes, the control characters, and the
sentence terminals of every script). A text that lost lines is rebuilt from the others
joined by ``\\n``, each run of removed lines replaced by the line ``replace_char`` when
it is not empty (datatrove's option: ``"\\n"`` leaves a blank line);
``symbol_lines_removed`` counts the lines removed. A text left empty is dropped
(``symbol_lines:empty``), as it came, unless ``drop_empty`` is false.

One difference from datatrove, on purpose: a text with no such line is left exactly as
it came; datatrove rewrites every text it sees, its line breaks made ``\\n`` and a final
one dropped.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT, with_drop_reason
from curation.filters.punctuation import punctuation_set
from curation.stage import MapStage, StageParams, register
from curation.utf8 import code_point, is_unicode_space, join_lines, line_bounds, string_buffers


class SymbolLinesParams(StageParams):
    symbols: str | None = Field(
        None, description="the characters a removed line is made of (default: datatrove's)"
    )
    replace_char: str = Field(
        "", description="a line put in place of each run of removed lines (empty: none)"
    )
    drop_empty: bool = Field(True, description="drop a document left without text")


@register
class SymbolLines(MapStage):
    """Removes the lines made only of symbols and spaces; adds ``symbol_lines_removed``."""

    name = "symbol_lines"
    help = "remove lines made only of symbols (datatrove's SymbolLinesFormatter)"
    Params = SymbolLinesParams
    params: SymbolLinesParams

    def __init__(self, params: SymbolLinesParams) -> None:  # type: ignore[override]
        super().__init__(params)
        chosen = punctuation_set() if params.symbols is None else set(params.symbols)
        points = np.array(sorted({ord(c) for c in chosen} | {0x20}), dtype=np.int64)
        self._symbols = np.zeros(int(points.max()) + 1, dtype=np.bool_)
        self._symbols[points] = True
        self._replacement = np.frombuffer(params.replace_char.encode("utf-8"), np.uint8)

    def process(self, table: pa.Table) -> pa.Table:
        text = pc.fill_null(table[TEXT], "").cast(pa.large_string())
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        data, offsets = string_buffers(text)
        per_text, starts, ends = line_bounds(data, offsets)
        removed = _symbol_only(data, offsets, per_text, starts, ends, self._symbols)
        n = table.num_rows
        lost = np.bincount(np.repeat(np.arange(n), per_text)[removed], minlength=n)
        changed = lost > 0
        out, out_offsets = join_lines(
            data, offsets, per_text, starts, ends, removed, changed, self._replacement, False
        )
        rebuilt = pa.LargeStringArray.from_buffers(n, pa.py_buffer(out_offsets), pa.py_buffer(out))
        dropped = changed & (np.diff(out_offsets) == 0) & self.params.drop_empty
        new = pa.array(changed & ~dropped)  # a dropped text stays as it came
        final = pc.if_else(new, rebuilt, table[TEXT].cast(pa.large_string()))
        index = table.column_names.index(TEXT)
        table = table.set_column(index, TEXT, final.cast(table.schema.field(TEXT).type))
        table = table.append_column("symbol_lines_removed", pa.array(lost.astype(np.int64)))
        return with_drop_reason(table, pa.array(dropped), self.reason("empty"))


@numba.njit(cache=True, nogil=True)
def _symbol_only(
    data: np.ndarray,
    offsets: np.ndarray,
    per_text: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    symbols: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    """Per line: whether every character of it is marked in ``symbols`` (by code point;
    the space is) and one of them is not white space (``str.isspace``)."""
    out = np.zeros(len(starts), np.bool_)
    s = 0
    for d in range(len(per_text)):
        for _ in range(per_text[d]):
            i = offsets[d] + starts[s]
            end = offsets[d] + ends[s]
            only = True
            visible = False
            while i < end:
                c, size = code_point(data, i)
                if c >= len(symbols) or not symbols[c]:
                    only = False
                    break
                if not is_unicode_space(c):
                    visible = True
                i += size
            out[s] = only and visible
            s += 1
    return out
