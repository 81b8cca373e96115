"""``fix_text``: repair mojibake and other Unicode damage with ftfy.

The step datatrove's ``FTFYFormatter`` and NeMo Curator's ``UnicodeReformatter`` run
before the filters: text decoded with the wrong codec (``CafÃ©`` for ``Café``,
``â€™`` for ``’``), HTML entities left in plain text, terminal escapes and control
characters. The parameters are ftfy's ``TextFixerConfig`` fields with datatrove's
defaults: the encoding repairs on, the fixes that would force one way of writing off
(ligatures, character widths, curly quotes, line breaks, Unicode normalization).

Documents whose characters are all printable ASCII, tab or newline, and hold no ``&``,
are passed over: none of ftfy's fixes changes such a text (the tests check it), and on
web text they are about half the documents. The rest go through ``ftfy.fix_text``, one
at a time. Nothing is dropped; ``fix_text_changed`` says whether a document's text
changed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT
from curation.filters.text import to_numpy
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

    def process(self, table: pa.Table) -> pa.Table:
        from ftfy import fix_text

        text = table[TEXT]
        untouched = pc.fill_null(pc.match_substring_regex(text, UNTOUCHED), True)
        suspect = np.flatnonzero(~to_numpy(untouched, bool))
        changed = np.zeros(table.num_rows, bool)
        if len(suspect):
            before = text.take(pa.array(suspect)).to_pylist()
            after = [fix_text(t, self._config) for t in before]
            moved = np.array([a != b for a, b in zip(after, before, strict=True)], bool)
            changed[suspect[moved]] = True
            if moved.any():
                values = pa.array([a for a, m in zip(after, moved, strict=True) if m], text.type)
                fixed = pc.replace_with_mask(text.combine_chunks(), pa.array(changed), values)
                table = table.set_column(table.column_names.index(TEXT), TEXT, fixed)
        return table.append_column("fix_text_changed", pa.array(changed))
