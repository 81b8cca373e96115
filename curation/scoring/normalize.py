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

_ANY_PUNCTUATION = "[" + "".join(PUNCTUATION) + "]"


def normalize_lines(lines: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """CCNet-normalised copy of each line (nulls stay null)."""
    out = pc.utf8_lower(pc.utf8_trim_whitespace(lines))
    out = pc.utf8_normalize(out, form="NFD")
    out = pc.replace_substring_regex(out, r"\p{Mn}+", "")
    out = pc.replace_substring_regex(out, r"\p{Nd}", "0")
    if pc.any(pc.match_substring_regex(out, _ANY_PUNCTUATION)).as_py():
        for source, target in PUNCTUATION.items():
            out = pc.replace_substring(out, source, target)
    return pc.replace_substring_regex(out, r"[\x00-\x1f\x7f-\x9f]", "")


def normalize_text(text: str) -> str:
    """``normalize_lines`` for one string (tools and tests)."""
    return str(normalize_lines(pa.array([text], pa.large_string()))[0].as_py())
