"""``fix_text``: repair mojibake and other Unicode damage with ftfy.

The step datatrove's ``FTFYFormatter`` and NeMo Curator's ``UnicodeReformatter`` run
before the filters: text decoded with the wrong codec (``CafÃ©`` for ``Café``,
``â€™`` for ``’``), HTML entities left in plain text, terminal escapes and control
characters. The parameters are ftfy's ``TextFixerConfig`` fields with datatrove's
defaults: the encoding repairs on, the fixes that would force one way of writing off
(ligatures, character widths, curly quotes, line breaks, Unicode normalization).

Text whose characters are all printable ASCII, tab or newline, and hold no ``&``, is
passed over: none of ftfy's fixes changes it (the tests check it). On web text that is
about half the documents, and of the others most lines: ftfy runs only on the lines
that are not plain (``_fix``), with the same result as on the whole text. Nothing is
dropped; ``fix_text_changed`` says whether a document's text changed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT
from curation.filters.text import replace_rows, split_pieces, to_numpy
from curation.stage import MapStage, StageParams, register

# a text made only of these is left as it is by every ftfy fix
UNTOUCHED = r"^[\t\n\x20-\x25\x27-\x7e]*$"


class FixTextParams(StageParams):
    unescape_html: Literal["auto"] | bool = Field(
        "auto", description="decode HTML entities (auto: unless the text holds '<')"
    )
    remove_terminal_escapes: bool = Field(True, description="remove ANSI terminal escapes")
    fix_encoding: bool = Field(True, description="undo text decoded with the wrong codec")
    restore_byte_a0: bool = Field(True, description="also where a 0xA0 byte became a space")
    replace_lossy_sequences: bool = Field(
        True, description="replace mojibake that lost bytes with U+FFFD"
    )
    decode_inconsistent_utf8: bool = Field(True, description="fix mojibake inside good text")
    fix_c1_controls: bool = Field(True, description="C1 controls as Windows-1252 characters")
    fix_latin_ligatures: bool = Field(False, description="split ligatures such as 'ﬁ'")
    fix_character_width: bool = Field(False, description="fullwidth letters to ASCII")
    uncurl_quotes: bool = Field(False, description="curly quotes to straight ones")
    fix_line_breaks: bool = Field(False, description="CRLF, CR and U+2028 to LF")
    fix_surrogates: bool = Field(True, description="join UTF-16 surrogate pairs")
    remove_control_chars: bool = Field(True, description="remove control characters")
    normalization: Literal["NFC", "NFD", "NFKC", "NFKD"] | None = Field(
        None, description="Unicode normalization; null = none"
    )


def ftfy_config(params: FixTextParams) -> Any:
    """ftfy's ``TextFixerConfig`` for ``params`` (without ftfy's explanations)."""
    from ftfy import TextFixerConfig

    return TextFixerConfig(**params.model_dump(), explain=False)


@register
class FixText(MapStage):
    """Repairs Unicode damage with ftfy; adds ``fix_text_changed``, drops nothing."""

    name = "fix_text"
    help = "repair mojibake, HTML entities and control characters with ftfy (datatrove's)"
    Params = FixTextParams
    params: FixTextParams

    def setup(self) -> None:
        self._config = ftfy_config(self.params)
        # how ftfy goes on after the first segment that holds "<" (see _fix)
        self._after_tag = self._config
        if self._config.unescape_html == "auto":
            self._after_tag = self._config._replace(unescape_html=False)

    def process(self, table: pa.Table) -> pa.Table:
        text = table[TEXT]
        untouched = pc.fill_null(pc.match_substring_regex(text, UNTOUCHED), True)
        suspect = np.flatnonzero(~to_numpy(untouched, bool))
        changed = np.zeros(table.num_rows, bool)
        if len(suspect):
            before = text.take(pa.array(suspect)).combine_chunks()
            after = self._fix(before)
            moved = to_numpy(pc.not_equal(after, before), bool)
            changed[suspect[moved]] = True
            if moved.any():
                fixed = replace_rows(text, suspect[moved], after.filter(pa.array(moved)))
                table = table.set_column(table.column_names.index(TEXT), TEXT, fixed)
        return table.append_column("fix_text_changed", pa.array(changed))

    def _fix(self, docs: pa.Array) -> pa.Array:
        """``ftfy.fix_text`` of each document, calling ftfy only on its segments that are
        not plain.

        ftfy fixes a text in independent segments: each line with its ``\n`` (a line
        longer than ``max_decode_length`` in pieces of that length, which a call on the
        line makes alike). The one state carried from segment to segment: with
        ``unescape_html: auto``, entities stay once a segment has held ``<``, that one
        included. So a plain segment is left as it is, and the others are fixed with
        the setting their place gives them.
        """
        from ftfy import fix_text

        lines, parents = split_pieces(pc.split_pattern(docs, "\n"))
        last = np.r_[parents[1:] != parents[:-1], True]  # a document's last line has no \n
        ends = pa.array(np.where(last, "", "\n"), lines.type)
        segments = pc.binary_join_element_wise(lines, ends, pa.scalar("", lines.type))
        plain = to_numpy(pc.match_substring_regex(segments, UNTOUCHED), bool)
        tag = to_numpy(pc.match_substring(segments, "<"), np.int64)
        before = np.cumsum(tag) - tag  # segments with "<" before this one, any document
        first = np.r_[0, np.flatnonzero(last[:-1]) + 1]  # each document's first segment
        seen = before - before[first][parents]  # ... before this one in its document
        todo = np.flatnonzero(~plain)
        if len(todo):
            values = segments.take(pa.array(todo)).to_pylist()
            fixed = [
                fix_text(v, self._after_tag if seen[i] else self._config)
                for v, i in zip(values, todo, strict=True)
            ]
            mask = np.zeros(len(segments), bool)
            mask[todo] = True
            segments = pc.replace_with_mask(segments, pa.array(mask), pa.array(fixed, lines.type))
        offsets = np.r_[0, np.cumsum(np.bincount(parents, minlength=len(docs)))]
        listed = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), segments)
        return pc.binary_join(listed, pa.scalar("", lines.type))
