"""Byte-level access to Arrow strings for compiled (numba) kernels: the buffers of a
string array as numpy views, UTF-8 decoding and white-space tests on them, and Python's
character classes of every code point."""

from __future__ import annotations

from functools import cache

import numba
import numpy as np
import pyarrow as pa

IS_UPPER, IS_DIGIT, IS_ALPHA, IS_ALNUM = 1, 2, 4, 8  # bits of ``char_classes``


@cache
def char_classes() -> np.ndarray:
    """Per code point (0 to 0x10FFFF), Python's ``str.isupper``, ``isdigit``, ``isalpha``
    and ``isalnum`` of it as bits (numpy's string functions, which use the same Unicode
    database: about 35 ms, once a process)."""
    chars = np.arange(0x110000, dtype=np.uint32).view("U1")
    return (
        np.strings.isupper(chars) * IS_UPPER
        | np.strings.isdigit(chars) * IS_DIGIT
        | np.strings.isalpha(chars) * IS_ALPHA
        | np.strings.isalnum(chars) * IS_ALNUM
    ).astype(np.uint8)


def large_text(values: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """``values`` as one large-string array, a null as "" (so its buffers, through
    ``string_buffers``, hold every text and nothing else)."""
    import pyarrow.compute as pc

    values = pc.fill_null(values, "").cast(pa.large_string())
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def string_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a large-string array and its ``len + 1`` offsets into them, as
    numpy views (no copy; the offsets start where the array's slice starts)."""
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[
        values.offset : values.offset + n + 1
    ]
    data = values.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return raw, offsets


@numba.njit(cache=True, nogil=True)
def is_unicode_space(c: int) -> bool:  # pragma: no cover - compiled
    """``str.isspace`` (and pyarrow's ``utf8_is_space``) for one code point."""
    if c <= 0x20:
        return c == 0x20 or 0x09 <= c <= 0x0D or 0x1C <= c <= 0x1F
    if c < 0x85:
        return False
    return (
        c == 0x85
        or c == 0xA0
        or c == 0x1680
        or 0x2000 <= c <= 0x200A
        or c == 0x2028
        or c == 0x2029
        or c == 0x202F
        or c == 0x205F
        or c == 0x3000
    )


@numba.njit(cache=True, nogil=True)
def code_point(data: np.ndarray, i: int) -> tuple[int, int]:  # pragma: no cover
    """The code point of the (valid) UTF-8 character at ``data[i]`` and its byte length."""
    b = data[i]
    if b < 0x80:
        return b, 1
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (data[i + 1] & 0x3F), 2
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F), 3
    return (
        ((b & 0x07) << 18)
        | ((data[i + 1] & 0x3F) << 12)
        | ((data[i + 2] & 0x3F) << 6)
        | (data[i + 3] & 0x3F)
    ), 4


@numba.njit(cache=True, nogil=True)
def skip_spaces(data: np.ndarray, i: int, end: int) -> int:  # pragma: no cover - compiled
    """The first byte at or after ``i`` (before ``end``) that does not begin a white-space
    character (``str.isspace``) of the UTF-8 ``data``; ``end`` when there is none."""
    while i < end:
        c, size = code_point(data, i)
        if not is_unicode_space(c):
            return i
        i += size
    return end


# the bytes that can open a line break: \\n \\v \\f \\r, \\x1c-\\x1e, and the lead bytes of
# NEL (C2 85) and of the line and paragraph separators (E2 80 A8, E2 80 A9)
_BREAK_LEADS = np.zeros(256, dtype=np.bool_)
_BREAK_LEADS[[0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0xC2, 0xE2]] = True


@numba.njit(cache=True, nogil=True, inline="always")
def _line_break(data: np.ndarray, i: int, end: int) -> int:  # pragma: no cover - compiled
    """Bytes of the line break at ``data[i]`` as ``str.splitlines`` sees them (``\\r\\n``
    is one), 0 when there is none: ``\\n``, ``\\r``, ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``,
    NEL, and the line and paragraph separators."""
    b = data[i]
    if b == 0x0D:
        return 2 if i + 1 < end and data[i + 1] == 0x0A else 1
    if b == 0x0A or b == 0x0B or b == 0x0C or 0x1C <= b <= 0x1E:
        return 1
    if b == 0xC2 and i + 1 < end and data[i + 1] == 0x85:
        return 2
    if b == 0xE2 and i + 2 < end and data[i + 1] == 0x80 and (data[i + 2] | 1) == 0xA9:
        return 3
    return 0


@numba.njit(cache=True, nogil=True)
def line_bounds(
    data: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The lines of each text as ``str.splitlines`` cuts them: how many per text, and each
    one's first and end byte (its break left out), from the text's start. One pass over
    the bytes; only those that can open a break are looked at further."""
    leads = _BREAK_LEADS
    docs = len(offsets) - 1
    cap = offsets[-1] - offsets[0] + docs
    starts = np.empty(cap, np.int64)
    ends = np.empty(cap, np.int64)
    per_text = np.zeros(docs, np.int64)
    k = 0
    for d in range(docs):
        base = offsets[d]
        end = offsets[d + 1]
        begin = base
        i = base
        while i < end:
            if not leads[data[i]]:
                i += 1
                continue
            size = _line_break(data, i, end)
            if size == 0:
                i += 1
                continue
            starts[k] = begin - base
            ends[k] = i - base
            k += 1
            per_text[d] += 1
            i += size
            begin = i
        if begin < end:
            starts[k] = begin - base
            ends[k] = end - base
            k += 1
            per_text[d] += 1
    return per_text, starts[:k], ends[:k]


def byte_slices(
    data: np.ndarray,
    offsets: np.ndarray,
    per_text: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
) -> pa.LargeStringArray:
    """The byte ranges ``starts``-``ends`` of each text (``per_text`` of them, from the
    text's start) as one string array."""
    lengths = ends - starts
    bounds = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=bounds[1:])
    out = np.empty(int(bounds[-1]), np.uint8)
    _copy_slices(data, offsets, per_text, starts, ends, out)
    return pa.LargeStringArray.from_buffers(len(lengths), pa.py_buffer(bounds), pa.py_buffer(out))


@numba.njit(cache=True, nogil=True)
def _copy_slices(
    data: np.ndarray,
    offsets: np.ndarray,
    per_text: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``byte_slices``' bytes, one after another, into ``out``."""
    k = 0
    at = 0
    for d in range(len(per_text)):
        base = offsets[d]
        for _ in range(per_text[d]):
            size = ends[k] - starts[k]
            out[at : at + size] = data[base + starts[k] : base + ends[k]]
            at += size
            k += 1


@numba.njit(cache=True, nogil=True)
def join_lines(
    data: np.ndarray,
    offsets: np.ndarray,
    per_text: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    removed: np.ndarray,
    changed: np.ndarray,
    replacement: np.ndarray,
    strip_start: bool,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Each ``changed`` text rebuilt from its lines (``line_bounds``) not ``removed``,
    joined by ``\\n``; each run of removed lines leaves the line ``replacement`` (UTF-8)
    in its place when that is not empty; with ``strip_start``, white space is stripped at
    the text's start (``str.lstrip``). Each other text is left out (empty). New bytes
    and offsets."""
    extra = 1 + len(replacement)
    out = np.empty(offsets[-1] - offsets[0] + len(starts) * extra, np.uint8)
    out_offsets = np.zeros(len(per_text) + 1, np.int64)
    written = 0
    s = 0
    for d in range(len(per_text)):
        start = written
        first = True
        in_run = False
        for _ in range(per_text[d]):
            if changed[d]:
                if removed[s] and (in_run or len(replacement) == 0):
                    in_run = True
                else:
                    if not first:
                        out[written] = 0x0A
                        written += 1
                    first = False
                    if removed[s]:  # the first of a run: its replacement
                        out[written : written + len(replacement)] = replacement
                        written += len(replacement)
                        in_run = True
                    else:
                        begin = offsets[d] + starts[s]
                        end = offsets[d] + ends[s]
                        out[written : written + end - begin] = data[begin:end]
                        written += end - begin
                        in_run = False
            s += 1
        if strip_start:
            cut = skip_spaces(out, start, written)
            if cut > start:
                out[start : start + written - cut] = out[cut:written].copy()
                written -= cut - start
        out_offsets[d + 1] = written
    return out[:written], out_offsets


@numba.njit(cache=True, nogil=True)
def _word_counts(
    data: np.ndarray, offsets: np.ndarray, words: np.ndarray, longest: np.ndarray
) -> None:  # pragma: no cover - compiled
    for d in range(len(offsets) - 1):
        i, end = offsets[d], offsets[d + 1]
        count, most, length = 0, 0, 0
        while i < end:
            c, size = (data[i], 1) if data[i] < 0x80 else code_point(data, i)
            if is_unicode_space(c):
                length = 0
            else:
                if length == 0:
                    count += 1
                length += 1
                most = max(most, length)
            i += size
        words[d], longest[d] = count, most


def word_counts(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Per string, the words ``str.split()`` cuts it into (runs of characters that are not
    Python's white space) and the longest one's length in characters (0 for an empty or
    null string); both int64."""
    data, offsets = string_buffers(large_text(values))
    words = np.zeros(len(offsets) - 1, np.int64)
    longest = np.zeros(len(offsets) - 1, np.int64)
    _word_counts(data, offsets, words, longest)
    return words, longest
