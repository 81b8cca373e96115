"""CCNet's text normalisation, vectorised over an Arrow array of lines.

Per line, in CCNet's order: trim white space, lower-case, strip accents (Unicode NFD,
then drop non-spacing marks), every digit to ``0``, a fixed list of Unicode punctuation
to its ASCII form, and control characters removed. The language models of
``curate train-kenlm`` are trained on text normalised this way, and the perplexity
stage normalises the same way before scoring.

Most lines of web text take one compiled pass over the bytes, which splits documents
into lines, trims, lower-cases, maps digits, drops control characters and replaces table
punctuation at once: every line whose characters are ASCII, table punctuation, or others
that the Unicode steps leave alone (lower case, no accent to strip, not a digit or white
space). The other lines keep their raw bytes from that pass and go through pyarrow's
Unicode kernels, one step at a time over those lines only.
"""

from __future__ import annotations

import functools
import unicodedata

import numba
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
# ASCII characters that pyarrow's utf8_trim_whitespace (and str.strip) trim
_BYTE_SPACE = np.zeros(256, dtype=bool)
_BYTE_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


@functools.cache
def _code_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the Unicode steps do to each character of the Basic Multilingual Plane on its
    own: ``-1`` for characters they change in other ways (upper case, accents, digits,
    white space, C1 controls: such lines take pyarrow's kernels), ``0`` for characters
    they leave alone, ``k`` for the punctuation entry ``k - 1``, whose UTF-8
    replacements are in the second and third arrays (offsets, bytes). About 0.1 s, once
    per process."""
    table = np.full(0x10000, -1, dtype=np.int16)
    replacements = [target.encode() for target in PUNCTUATION.values()]
    if any(len(t) > len(s.encode()) for s, t in zip(PUNCTUATION, replacements, strict=True)):
        raise ValueError("a punctuation replacement is longer than its source in UTF-8")
    index = {source: k + 1 for k, source in enumerate(PUNCTUATION)}
    for code in range(0x80, 0x10000):
        if 0xD800 <= code < 0xE000 or code < 0xA0:
            continue
        char = chr(code)
        if char in index:
            table[code] = index[char]
        elif (
            char.lower() == char
            and not char.isspace()
            and unicodedata.category(char) not in ("Mn", "Nd")
            and unicodedata.normalize("NFD", char) == char
        ):
            table[code] = 0
    offsets = np.cumsum([0] + [len(r) for r in replacements]).astype(np.int64)
    data = np.frombuffer(b"".join(replacements), dtype=np.uint8).copy()
    return table, offsets, data


@numba.njit(cache=True, nogil=True)
def _decode(data: np.ndarray, k: int, stop: int) -> tuple[int, int]:
    """The code point at ``data[k]`` (a byte >= 0x80) and its length in bytes; code point
    -1 for one outside the Basic Multilingual Plane or bytes that are not UTF-8."""
    lead = data[k]
    if lead >= 0xE0 and lead < 0xF0 and k + 2 < stop:
        return ((lead & 0x0F) << 12) | ((data[k + 1] & 0x3F) << 6) | (data[k + 2] & 0x3F), 3
    if lead >= 0xC0 and lead < 0xE0 and k + 1 < stop:
        return ((lead & 0x1F) << 6) | (data[k + 1] & 0x3F), 2
    return -1, 1


@numba.njit(cache=True, nogil=True)
def _fast_lines(
    offsets: np.ndarray,
    data: np.ndarray,
    split: bool,
    drop_empty: bool,
    byte_map: np.ndarray,
    byte_keep: np.ndarray,
    byte_space: np.ndarray,
    code_class: np.ndarray,
    repl_offsets: np.ndarray,
    repl_data: np.ndarray,
    out_offsets: np.ndarray,
    out_data: np.ndarray,
    owner: np.ndarray,
    wide: np.ndarray,
) -> int:
    """One pass over every text: cut at ``\\n`` when ``split``; per line either its
    normalised bytes or, when it has a character that ``code_class`` marks -1, its raw
    bytes with ``wide`` set. A normalised line is trimmed of ASCII white space (its other
    characters are not white space), ASCII bytes are mapped or dropped (controls), table
    punctuation is replaced, and every other character is kept; empty normalised lines
    are left out when ``drop_empty``. Fills the output arrays and returns the number of
    lines written."""
    count = 0
    pos = 0
    out_offsets[0] = 0
    for text in range(len(offsets) - 1):
        start = offsets[text]
        end = offsets[text + 1]
        while True:
            stop = end
            if split:
                for k in range(start, end):
                    if data[k] == 10:
                        stop = k
                        break
            is_wide = False
            k = start
            while k < stop:
                if data[k] < 128:
                    k += 1
                    continue
                code, size = _decode(data, k, stop)
                if code < 0 or code_class[code] < 0:
                    is_wide = True
                    break
                k += size
            if is_wide:
                for k in range(start, stop):
                    out_data[pos] = data[k]
                    pos += 1
            else:
                a = start
                b = stop
                while a < b and byte_space[data[a]]:
                    a += 1
                while b > a and byte_space[data[b - 1]]:
                    b -= 1
                k = a
                while k < b:
                    c = data[k]
                    if c < 128:
                        if byte_keep[c]:
                            out_data[pos] = byte_map[c]
                            pos += 1
                        k += 1
                        continue
                    code, size = _decode(data, k, b)
                    entry = code_class[code]
                    if entry == 0:
                        for j in range(k, k + size):
                            out_data[pos] = data[j]
                            pos += 1
                    else:
                        for j in range(repl_offsets[entry - 1], repl_offsets[entry]):
                            out_data[pos] = repl_data[j]
                            pos += 1
                    k += size
            if is_wide or pos > out_offsets[count] or not drop_empty:
                owner[count] = text
                wide[count] = is_wide
                count += 1
                out_offsets[count] = pos
            if stop >= end:
                break
            start = stop + 1
    return count


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


def _unicode_steps(lines: pa.Array) -> pa.Array:
    """The whole normalisation for lines that hold non-ASCII characters: trim, the ASCII
    byte pass, then lower case, NFD and its marks, other digits, the punctuation table
    (only the entries that occur) and C1 controls, each one pyarrow kernel."""
    lines = pc.utf8_normalize(
        pc.utf8_lower(_ascii_pass(pc.utf8_trim_whitespace(lines))), form="NFD"
    )
    lines = pc.replace_substring_regex(lines, r"\p{Mn}+", "")
    lines = pc.replace_substring_regex(lines, r"\p{Nd}", "0")
    raw = bytes(lines.buffers()[2] or b"")
    for source, target in PUNCTUATION.items():
        if source.encode() in raw:
            lines = pc.replace_substring(lines, source, target)
    return pc.replace_substring_regex(lines, r"[\x{80}-\x{9f}]", "")


def _normalise(
    texts: pa.Array | pa.ChunkedArray, split: bool, drop_empty: bool
) -> tuple[pa.Array, np.ndarray]:
    """Normalised lines (of each text, or each text as one line) and their text's index."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = pc.fill_null(texts.cast(pa.large_string()), "")
    n = len(texts)
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[texts.offset : texts.offset + n + 1]
    raw = texts.buffers()[2]
    data = np.frombuffer(raw, dtype=np.uint8) if raw else np.zeros(0, np.uint8)
    data = data[: offsets[-1]] if n else data[:0]
    most = n + (int(np.count_nonzero(data[offsets[0] :] == 10)) if split and n else 0)
    out_offsets = np.empty(most + 1, dtype=np.int64)
    out_data = np.empty(max(len(data) - (offsets[0] if n else 0), 1), dtype=np.uint8)
    owner = np.empty(most, dtype=np.int64)
    wide = np.empty(most, dtype=np.bool_)
    count = _fast_lines(
        offsets, data, split, drop_empty, _BYTE_MAP, _BYTE_KEEP, _BYTE_SPACE, *_code_table(),
        out_offsets, out_data, owner, wide,
    )  # fmt: skip
    lines = pa.LargeStringArray.from_buffers(
        count,
        pa.py_buffer(out_offsets[: count + 1]),
        pa.py_buffer(out_data[: out_offsets[count]]),
    )
    owner, wide = owner[:count], wide[:count]
    if wide.any():
        mask = pa.array(wide)
        lines = pc.replace_with_mask(lines, mask, _unicode_steps(lines.filter(mask)))
        if drop_empty:
            keep = np.asarray(pc.greater(pc.binary_length(lines), 0))
            if not keep.all():
                lines, owner = lines.filter(pa.array(keep)), owner[keep]
    return lines, owner


def normalize_lines(lines: pa.Array | pa.ChunkedArray) -> pa.Array:
    """CCNet-normalised copy of each line (nulls become empty lines), one per input."""
    return _normalise(lines, split=False, drop_empty=False)[0]


def split_paragraphs(texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """CCNet-normalised non-empty lines (``\n``-separated) of every text, flat, and the
    index of the text each comes from (int64, ascending)."""
    return _normalise(texts, split=True, drop_empty=True)


def normalize_text(text: str) -> str:
    """``normalize_lines`` for one string (tools and tests)."""
    return str(normalize_lines(pa.array([text], pa.large_string()))[0].as_py())
