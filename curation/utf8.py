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
