"""CCNet's text normalisation, vectorised over an Arrow array of lines.

Per line, in CCNet's order: trim white space, lower-case, strip accents (Unicode NFD,
then drop non-spacing marks), every digit to ``0``, a fixed list of Unicode punctuation
to its ASCII form, and control characters removed. The language models of
``curate train-kenlm`` are trained on text normalised this way, and the perplexity
stage normalises the same way before scoring.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

#: Unicode punctuation and its ASCII replacement (CCNet's table).
PUNCTUATION = {
    "，": ",",
    "。": ".",
    "、": ",",
    "„": '"',
    "”": '"',
    "“": '"',
    "«": '"',
    "»": '"',
    "１": '"',
    "」": '"',
    "「": '"',
    "《": '"',
    "》": '"',
    "´": "'",
    "∶": ":",
    "：": ":",
    "？": "?",
    "！": "!",
    "（": "(",
    "）": ")",
    "；": ";",
    "–": "-",
    "—": " - ",
    "．": ". ",
    "～": "~",
    "’": "'",
    "…": "...",
    "━": "-",
    "〈": "<",
    "〉": ">",
    "【": "[",
    "】": "]",
    "％": "%",
    "►": "-",
}

_TRANSLATION = str.maketrans(PUNCTUATION)
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"


def normalize_lines(lines: pa.Array | pa.ChunkedArray) -> pa.Array:
    """CCNet-normalised copy of each line (nulls stay null).

    ASCII lines (most web text) only need their digits and control characters handled;
    the Unicode steps (NFD, marks, Unicode digits, the punctuation table) run on the
    other lines alone, the punctuation table as one ``str.translate`` per line.
    """
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    out = pc.utf8_lower(pc.utf8_trim_whitespace(lines.cast(pa.large_string())))
    wide = pc.invert(pc.fill_null(pc.string_is_ascii(out), True))
    result = pc.replace_substring_regex(
        pc.replace_substring_regex(out, "[0-9]", "0"), r"[\x00-\x1f\x7f]", ""
    )
    if not pc.any(wide).as_py():
        return result
    subset = pc.utf8_normalize(out.filter(wide), form="NFD")
    subset = pc.replace_substring_regex(subset, r"\p{Mn}+", "")
    subset = pc.replace_substring_regex(subset, r"\p{Nd}", "0")
    translated = pa.array(
        [None if v is None else v.translate(_TRANSLATION) for v in subset.to_pylist()],
        pa.large_string(),
    )
    subset = pc.replace_substring_regex(translated, _CONTROL, "")
    return pc.replace_with_mask(result, wide, subset)


def normalize_text(text: str) -> str:
    """``normalize_lines`` for one string (tools and tests)."""
    return str(normalize_lines(pa.array([text], pa.large_string()))[0].as_py())
