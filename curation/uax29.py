"""Unicode word boundaries (UAX #29) over Arrow strings, for the stages that cut words as
DCLM's tools do: BFF's words (``bff_dedup``: the pieces that are not all white space)
and DCLM's repetition words (``dclm_repetition``: the pieces that begin with a letter or
a digit).

A compiled scan applies UAX #29's rules WB3 to WB13b over the Word_Break classes of the
``regex`` module's Unicode data. A text holding a character of the rarer rules
(combining and format marks inside words, emoji joins, flags, Hebrew, Katakana) is cut
by the ``regex`` module itself (its word-boundary mode, which DCLM's ``uniseg`` and
BFF's Rust crate ``unicode-segmentation`` agree with on the project's samples). Both
ways give the same pieces (checked on every string of four characters of the scan's
classes and on drawn text), and each word gets the hash ``string_hashes`` gives its
bytes, so words compare alike whichever way cut them.

Paragraphs are cut at every ``\\n`` (BFF's): a text of ``k`` line feeds has ``k + 1``.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.minhash import (
    _BYTE_BASE,
    _GOLDEN,
    _document_shingles,
    _finalise,
    string_hashes,
)
from curation.utf8 import IS_ALNUM, char_classes, code_point, large_text, string_buffers

#: Unicode's White_Space characters (Rust's ``char::is_whitespace``)
_SPACES = (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F)
WHITE_SPACE = "".join(map(chr, (*_SPACES, *range(0x2000, 0x200B), 0x205F, 0x3000)))
#: the information separators, white space to Arrow and Python but not to Unicode
_SEPARATORS = "[\x1c-\x1f]"

# Word_Break classes the compiled scan tells apart (``word_classes``); a text with a
# character of a class it leaves to the ``regex`` module is ``_HARD``
_OTHER, _CR, _LF, _NEWLINE, _WSEG, _LETTER, _NUMERIC = 0, 1, 2, 3, 4, 5, 6
_MID_LETTER, _MID_NUM, _MID_NUM_LET, _ENL, _HARD = 7, 8, 9, 10, 11
#: bits of ``word_classes`` beside the class: Unicode's White_Space, and Python's
#: ``str.isalnum``
_SPACE, _ALNUM = 0x80, 0x40
_CLASS = 0x3F
_CLASS_OF = {
    "CR": _CR,
    "LF": _LF,
    "Newline": _NEWLINE,
    "WSegSpace": _WSEG,
    "ALetter": _LETTER,
    "Numeric": _NUMERIC,
    "MidLetter": _MID_LETTER,
    "MidNum": _MID_NUM,
    "MidNumLet": _MID_NUM_LET,
    "Single_Quote": _MID_NUM_LET,  # the rules that matter here take both alike
    "ExtendNumLet": _ENL,
    # rules the scan leaves to the regex module: marks and format characters inside
    # words (WB4), emoji joins (WB3c), flags (WB15-16), Hebrew (WB7a-c), Katakana (WB13)
    "Extend": _HARD,
    "Format": _HARD,
    "ZWJ": _HARD,
    "Regional_Indicator": _HARD,
    "Hebrew_Letter": _HARD,
    "Katakana": _HARD,
}


class Words(NamedTuple):
    """The words of a column of texts, all texts' in turn."""

    hashes: np.ndarray  #: uint64, ``string_hashes`` of each word's UTF-8 bytes
    chars: np.ndarray  #: int64, each word's length in code points
    paragraph: np.ndarray  #: int64, each word's paragraph, numbered over all texts
    paragraph_offsets: np.ndarray  #: int64, each text's first paragraph, and the end
    per_text: np.ndarray  #: int64, each text's number of words


@cache
def boundary() -> Any:
    """The ``regex`` pattern of a Unicode word boundary (UAX #29, its word mode)."""
    import regex

    return regex.compile(r"\b", flags=regex.WORD | regex.V1)


@cache
def word_classes() -> np.ndarray:
    """Per code point (0 to 0x10FFFF), its Word_Break class as the ``regex`` module has
    it (Double_Quote, which only Hebrew rules use, as Other), with ``_SPACE`` set on
    White_Space and ``_ALNUM`` on Python's ``str.isalnum``; about 0.1 s, once a process."""
    import regex

    points = np.r_[np.arange(0xD800), np.arange(0xE000, 0x110000)].astype(np.uint32)
    every = points.view("U1").tobytes().decode("utf-32-le")
    table = np.zeros(0x110000, dtype=np.uint8)
    for name, value in _CLASS_OF.items():
        at = [m.start() for m in regex.finditer(rf"\p{{Word_Break={name}}}", every)]
        table[points[at]] = value
    table[[ord(c) for c in WHITE_SPACE]] |= _SPACE
    table[(char_classes() & IS_ALNUM) > 0] |= _ALNUM
    return table


def words(texts: pa.ChunkedArray | pa.Array, alnum_first: bool = False) -> Words:
    """The words of ``texts`` (a null text has none and one paragraph): the pieces between
    Unicode word boundaries that are not all White_Space, or with ``alnum_first`` those
    whose first character is a letter or a digit (``str.isalnum``). Cut by the compiled
    scan, and a text of the rarer rules by the regex module (``regex_words``)."""
    text = large_text(texts)
    hashes, chars, local, counts, paragraphs_of, hard = _scan(
        *string_buffers(text), word_classes(), alnum_first
    )
    theirs_hashes = np.empty(0, np.uint64)
    theirs_chars = theirs_paragraph = np.empty(0, np.int64)
    if hard.any():
        which = np.flatnonzero(hard)
        theirs = regex_words(text.filter(pa.array(hard)), alnum_first)
        paragraphs_of[which] = np.diff(theirs.paragraph_offsets)
        counts[which] = theirs.per_text
        theirs_hashes, theirs_chars, theirs_paragraph = theirs[:3]
    offsets = np.r_[0, np.cumsum(paragraphs_of)]
    # each text's words from the scan or (a hard text) the regex module, in text order,
    # their paragraphs numbered over all texts
    hashes, chars, paragraph = _spliced(
        hard, counts, offsets, hashes, chars, local, theirs_hashes, theirs_chars, theirs_paragraph
    )
    return Words(hashes, chars, paragraph, offsets, counts)


@numba.njit(cache=True, nogil=True)
def _spliced(
    hard: np.ndarray,
    counts: np.ndarray,
    offsets: np.ndarray,
    hashes: np.ndarray,
    chars: np.ndarray,
    local: np.ndarray,
    their_hashes: np.ndarray,
    their_chars: np.ndarray,
    their_paragraph: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``words``' arrays: text ``d``'s ``counts[d]`` words taken in turn from the scan's
    (``hashes``, ``chars``, paragraph within the text ``local``) or, where ``hard[d]``,
    from the regex module's (paragraphs numbered over the hard texts alone), each word's
    paragraph numbered over all texts (``offsets``: each text's first)."""
    total = counts.sum()
    out_hashes = np.empty(total, dtype=np.uint64)
    out_chars = np.empty(total, dtype=np.int64)
    out_paragraph = np.empty(total, dtype=np.int64)
    k = easy = theirs = 0
    their_first = 0  # the first paragraph of the hard text in the regex module's numbering
    for d in range(len(counts)):
        if hard[d]:
            from_hashes, from_chars, from_paragraph = their_hashes, their_chars, their_paragraph
            at, first = theirs, offsets[d] - their_first
            theirs += counts[d]
            their_first += offsets[d + 1] - offsets[d]
        else:
            from_hashes, from_chars, from_paragraph = hashes, chars, local
            at, first = easy, offsets[d]
            easy += counts[d]
        for i in range(at, at + counts[d]):
            out_hashes[k] = from_hashes[i]
            out_chars[k] = from_chars[i]
            out_paragraph[k] = first + from_paragraph[i]
            k += 1
    return out_hashes, out_chars, out_paragraph


def pieces(
    texts: pa.ChunkedArray | pa.Array,
) -> tuple[pa.LargeStringArray, np.ndarray, np.ndarray, np.ndarray]:
    """The regex module's pieces of ``texts`` between Unicode word boundaries, all texts'
    in turn (none empty); each piece's text and paragraph, numbered over all texts; and
    each text's first paragraph (offsets, one more than the texts)."""
    split = boundary().split
    cut: list[str] = []
    per_text = np.zeros(len(texts), dtype=np.int64)
    for row, text in enumerate(texts.to_pylist()):
        parts = [p for p in split(text) if p] if text else []
        cut += parts
        per_text[row] = len(parts)
    flat = pa.array(cut, pa.large_string())
    # word boundaries surround every line break, so "\n" (or "\r\n") is a piece alone
    breaks = np.asarray(pc.match_substring(flat, "\n"), dtype=bool)
    text_of = np.repeat(np.arange(len(texts)), per_text)
    paragraphs_of = 1 + np.bincount(text_of[breaks], minlength=len(texts))
    paragraph_offsets = np.r_[0, np.cumsum(paragraphs_of)]
    seen = np.r_[0, np.cumsum(breaks)]  # breaks before each piece
    local = seen[:-1] - np.repeat(seen[np.r_[0, np.cumsum(per_text)][:-1]], per_text)
    return flat, text_of, paragraph_offsets[:-1][text_of] + local, paragraph_offsets


def is_word(flat: pa.LargeStringArray, alnum_first: bool = False) -> np.ndarray:
    """Which of the pieces ``flat`` are words (``words``' two kinds)."""
    if alnum_first:
        return np.array([p[:1].isalnum() for p in flat.to_pylist()], dtype=bool)
    word = ~np.asarray(pc.utf8_is_space(flat), dtype=bool)
    if len(flat) and pc.any(pc.match_substring_regex(flat, _SEPARATORS)).as_py():
        # Arrow's white space has U+001C-U+001F, Unicode's White_Space (and Rust's) not
        word |= np.asarray(pc.match_substring_regex(flat, _SEPARATORS), dtype=bool)
    return word


def regex_words(texts: pa.ChunkedArray | pa.Array, alnum_first: bool = False) -> Words:
    """``words`` cut by the regex module alone (the slower way; the reference)."""
    flat, text_of, paragraph, paragraph_offsets = pieces(texts)
    word = is_word(flat, alnum_first)
    chosen = flat.filter(pa.array(word))
    return Words(
        string_hashes(chosen),
        np.asarray(pc.utf8_length(chosen), dtype=np.int64),
        paragraph[word],
        paragraph_offsets,
        np.bincount(text_of[word], minlength=len(texts)).astype(np.int64),
    )


@numba.njit(cache=True, nogil=True, inline="always")
def _joined(before: int, left: int, right: int, after: int) -> bool:  # pragma: no cover
    """Whether UAX #29 keeps ``left`` and ``right`` in one piece (WB3 to WB13b, for the
    classes of ``word_classes`` but ``_HARD``), ``before`` and ``after`` the classes
    around them (``_OTHER`` past the ends)."""
    if left == _CR and right == _LF:
        return True
    if _CR <= left <= _NEWLINE or _CR <= right <= _NEWLINE:
        return False
    if left == _WSEG and right == _WSEG:
        return True
    mid_letter = right == _MID_LETTER or right == _MID_NUM_LET
    if left == _LETTER:
        if right == _LETTER or right == _NUMERIC or right == _ENL:
            return True
        if mid_letter and after == _LETTER:
            return True
    if left == _NUMERIC:
        if right == _NUMERIC or right == _LETTER or right == _ENL:
            return True
        if (right == _MID_NUM or right == _MID_NUM_LET) and after == _NUMERIC:
            return True
    if left == _MID_LETTER or left == _MID_NUM_LET:
        if before == _LETTER and right == _LETTER:
            return True
    if left == _MID_NUM or left == _MID_NUM_LET:
        if before == _NUMERIC and right == _NUMERIC:
            return True
    if left == _ENL:
        return right == _ENL or right == _LETTER or right == _NUMERIC
    return False


@numba.njit(cache=True, nogil=True, inline="always")
def _text_words(
    data: np.ndarray,
    text_begin: int,
    text_end: int,
    table: np.ndarray,
    alnum_first: bool,
    classes: np.ndarray,
    starts: np.ndarray,
    hashes: np.ndarray,
    chars: np.ndarray,
    paragraphs: np.ndarray,
    k: int,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """The words of the text ``data[text_begin:text_end]`` written into ``hashes``,
    ``chars`` and ``paragraphs`` (within the text) from ``k``; returns how many and the
    text's paragraphs, or ``(-1, 1)`` for a text of a ``_HARD`` character (left to the
    regex module). ``classes`` and ``starts`` are scratch of at least the text's bytes
    + 1."""
    # the text's characters: their classes and first bytes
    m = 0
    i = text_begin
    while i < text_end:
        c, length = code_point(data, i)
        classes[m] = table[c]
        starts[m] = i
        if classes[m] & _CLASS == _HARD:
            return -1, 1
        m += 1
        i += length
    starts[m] = text_end
    first = k
    paragraph = 0
    begin = 0
    wordy = False
    for j in range(m + 1):
        if j > 0:
            cut = j == m
            if not cut:
                before = classes[j - 2] & _CLASS if j >= 2 else _OTHER
                after = classes[j + 1] & _CLASS if j + 1 < m else _OTHER
                cut = not _joined(before, classes[j - 1] & _CLASS, classes[j] & _CLASS, after)
            if cut:
                if classes[j - 1] & _CLASS == _LF:  # "\n" or "\r\n", alone
                    paragraph += 1
                elif (classes[begin] & _ALNUM) if alnum_first else wordy:
                    total = np.uint64(0)
                    power = np.uint64(1)
                    for b in range(starts[begin], starts[j]):
                        total += (np.uint64(data[b]) + np.uint64(1)) * power
                        power *= _BYTE_BASE
                    length = np.uint64(starts[j] - starts[begin])
                    hashes[k] = _finalise(total ^ (length * _GOLDEN))
                    chars[k] = j - begin
                    paragraphs[k] = paragraph
                    k += 1
                begin = j
                wordy = False
        if j < m and not classes[j] & _SPACE:
            wordy = True
    return k - first, paragraph + 1


@numba.njit(cache=True, nogil=True)
def _longest(offsets: np.ndarray) -> int:  # pragma: no cover - compiled
    """The most bytes of one text."""
    longest = 0
    for d in range(len(offsets) - 1):
        longest = max(longest, offsets[d + 1] - offsets[d])
    return longest


@numba.njit(cache=True, nogil=True)
def _scan(
    data: np.ndarray, offsets: np.ndarray, table: np.ndarray, alnum_first: bool
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:  # pragma: no cover - compiled
    """The words of every text (``words``): each word's hash (``string_hashes``' of its
    bytes), length in code points and paragraph within its text, each text's words and
    paragraphs, and the texts left to the ``regex`` module (a ``_HARD`` character: no
    words, one paragraph)."""
    n = len(offsets) - 1
    size = offsets[n] - offsets[0]
    hashes = np.empty(size, dtype=np.uint64)
    chars = np.empty(size, dtype=np.int64)
    paragraphs = np.empty(size, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    paragraphs_of = np.ones(n, dtype=np.int64)
    hard = np.zeros(n, dtype=np.bool_)
    longest = _longest(offsets)
    classes = np.empty(longest + 1, dtype=np.uint8)
    starts = np.empty(longest + 1, dtype=np.int64)
    k = 0
    for d in range(n):
        made, paragraphs_of_d = _text_words(
            data,
            offsets[d],
            offsets[d + 1],
            table,
            alnum_first,
            classes,
            starts,
            hashes,
            chars,
            paragraphs,
            k,
        )
        paragraphs_of[d] = paragraphs_of_d
        if made < 0:
            hard[d] = True
        else:
            counts[d] = made
            k += made
    return hashes[:k], chars[:k], paragraphs[:k], counts, paragraphs_of, hard


def paragraph_ngrams(
    texts: pa.ChunkedArray | pa.Array, weights: np.ndarray, least: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The n-gram hashes of each paragraph of each text, from ``words`` (its white-space
    kind) without holding them: runs of ``len(weights)`` words within a paragraph
    hashed as ``minhash.shingle_hashes`` does, a paragraph of ``least`` to ``n - 1`` words
    one n-gram of all of them and a shorter one none. Returns the hashes, flat; each
    text's offsets into them; each paragraph's number of n-grams, flat; each text's
    offsets into those; and the texts left to the regex module (``hard``: no paragraph
    here). One compiled pass; it allocates only what it returns."""
    data, offsets = string_buffers(large_text(texts))
    return _scan_ngrams(data, offsets, word_classes(), weights, least)


@numba.njit(cache=True, nogil=True)
def _scan_ngrams(
    data: np.ndarray, offsets: np.ndarray, table: np.ndarray, weights: np.ndarray, least: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """``paragraph_ngrams``' arrays: each text's words cut into scratch, then each of
    its paragraphs' n-grams hashed straight into the result."""
    n = len(offsets) - 1
    size = offsets[n] - offsets[0]
    longest = _longest(offsets)
    classes = np.empty(longest + 1, dtype=np.uint8)
    starts = np.empty(longest + 1, dtype=np.int64)
    hashes = np.empty(longest + 1, dtype=np.uint64)  # one text's words
    chars = np.empty(longest + 1, dtype=np.int64)
    local = np.empty(longest + 1, dtype=np.int64)
    # n-grams are at most the words, which are at most the bytes (pages never written
    # are never resident); paragraphs at most the bytes and one per text
    out = np.empty(size, dtype=np.uint64)
    made = np.empty(size + n, dtype=np.int64)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    made_offsets = np.zeros(n + 1, dtype=np.int64)
    hard = np.zeros(n, dtype=np.bool_)
    at = 0
    p = 0
    for d in range(n):
        words, paragraphs = _text_words(
            data,
            offsets[d],
            offsets[d + 1],
            table,
            False,
            classes,
            starts,
            hashes,
            chars,
            local,
            0,
        )
        if words < 0:
            hard[d] = True
        else:
            first = 0
            for q in range(paragraphs):
                last = first
                while last < words and local[last] == q:
                    last += 1
                count = last - first
                made[p] = 0
                if count > 0 and count >= least:
                    made[p] = _document_shingles(hashes, first, count, weights, out, at)
                    at += made[p]
                p += 1
                first = last
        out_offsets[d + 1] = at
        made_offsets[d + 1] = p
    return out[:at], out_offsets, made[:p], made_offsets, hard
