"""CCNet's text normalisation, vectorised over an Arrow array of lines.

Per line, in CCNet's order: trim white space, lower-case, strip accents (Unicode NFD,
then drop non-spacing marks), every digit to ``0``, a fixed list of Unicode punctuation
to its ASCII form, and control characters removed. The language models of
``curate train-kenlm`` are trained on text normalised this way, and the perplexity
stage normalises the same way before scoring.
"""

from __future__ import annotations

import numpy as np
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

# Byte tables for the ASCII part, safe on any UTF-8 (bytes below 0x80 are always ASCII
# characters): upper case to lower, every digit to 0; control characters dropped.
_BYTE_MAP = np.arange(256, dtype=np.uint8)
_BYTE_MAP[ord("A") : ord("Z") + 1] += 32
_BYTE_MAP[ord("0") : ord("9") + 1] = ord("0")
_BYTE_KEEP = np.ones(256, dtype=bool)
_BYTE_KEEP[:32] = False
_BYTE_KEEP[127] = False


def _ascii_pass(lines: pa.Array) -> pa.Array:
    """Lower-case ASCII letters, ASCII digits to 0, ASCII controls removed, in numpy."""
    n = len(lines)
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + n + 1]
    raw = lines.buffers()[2]
    data = (
        np.frombuffer(raw, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if raw
        else np.zeros(0, np.uint8)
    )
    mapped = _BYTE_MAP[data]
    keep = _BYTE_KEEP[data]
    local = offsets - offsets[0]
    if not keep.all():
        local = np.concatenate([[0], np.cumsum(keep)])[local]
        mapped = mapped[keep]
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(local.astype(np.int64)), pa.py_buffer(mapped.tobytes())
    )


def normalize_lines(lines: pa.Array | pa.ChunkedArray) -> pa.Array:
    """CCNet-normalised copy of each line (nulls become empty lines).

    The ASCII steps (lower case, digits, control characters) are one numpy pass over the
    bytes of every line; the Unicode steps (lower case, NFD and its marks, other digits,
    the punctuation table, C1 controls) run on the lines that are not ASCII alone.
    """
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    trimmed = pc.utf8_trim_whitespace(pc.fill_null(lines.cast(pa.large_string()), ""))
    out = _ascii_pass(trimmed)
    wide = pc.invert(pc.string_is_ascii(out))
    if not pc.any(wide).as_py():
        return out
    subset = pc.utf8_normalize(pc.utf8_lower(out.filter(wide)), form="NFD")
    subset = pc.replace_substring_regex(subset, r"\p{Mn}+", "")
    subset = pc.replace_substring_regex(subset, r"\p{Nd}", "0")
    for source, target in PUNCTUATION.items():
        subset = pc.replace_substring(subset, source, target)
    subset = pc.replace_substring_regex(subset, r"[\x{80}-\x{9f}]", "")
    return pc.replace_with_mask(out, wide, subset)


def normalize_text(text: str) -> str:
    """``normalize_lines`` for one string (tools and tests)."""
    return str(normalize_lines(pa.array([text], pa.large_string()))[0].as_py())
