"""Sentences as spaCy's rule-based ``sentencizer`` cuts them over its blank English
tokenizer: datatrove's English sentence splitter (``load_word_tokenizer("en")``).

spaCy cuts a text into tokens first (``curation.filters.tokenize`` says how). White space
is a token too, except a single space after a token: a run of white space that begins
with a space gives a token of the rest of the run, any other run (or one that opens the
text) a token of the whole run. The sentencizer then walks the tokens: after a token that
is one of its terminal characters (``.``, ``!``, ``?`` and 125 more), the next token that
is neither such a character nor made only of punctuation (Unicode category P) opens a
sentence. So ``Hi.\\n"Quote" here.`` is two sentences (the newline token opens the
second), ``U.S. is big.`` one (``U.S.`` is one token), and ``Wait... no`` one (``...``
is punctuation, not a terminal character).

A sentence ends where its last token ends; ``sentence_ends`` gives those ends as byte
offsets, which is all a caller needs: sentence ``k`` of a text is ``text[end[k-1]:
end[k]]`` (from 0 for the first), the single space before it included, and only that
single space of the text's end is in no sentence. Only the last sentence can be white
space alone (a text that ends ``".\\n"``).

A white-space-free piece with no terminal character that does not open with punctuation
acts as one word whatever its tokens, and never reaches Python. Every other distinct
piece of the batch is split once (``_moves``, cached), which gives where it opens
sentences for either state it is entered in; a compiled pass then walks the texts.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curation.filters.tokenize import _split
from curation.utf8 import code_point, is_unicode_space, large_text, skip_spaces, string_buffers

#: spaCy's ``Sentencizer.default_punct_chars`` (spaCy 3): a token equal to one of these
#: ends a sentence
TERMINALS = frozenset(
    "!.?\u0589\u061f\u06d4\u0700\u0701\u0702\u07f9\u0964\u0965\u104a\u104b\u1362\u1367"
    "\u1368\u166e\u1735\u1736\u1803\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b"
    "\u1b5e\u1b5f\u1c3b\u1c3c\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c\ua4ff"
    "\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f"
    "\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\U00010a56\U00010a57\U00011047"
    "\U00011048\U000110be\U000110bf\U000110c0\U000110c1\U00011141\U00011142\U00011143"
    "\U000111c5\U000111c6\U000111cd\U000111de\U000111df\U00011238\U00011239\U0001123b"
    "\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2\U000115c3\U000115c9\U000115ca"
    "\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf\U000115d0\U000115d1\U000115d2"
    "\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641\U00011642\U0001173c"
    "\U0001173d\U0001173e\U00011a42\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42"
    "\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U0001bc9f\U0001da88"
    "\uff61\u3002"
)
_TERMINAL = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(TERMINALS)) + "]"
_WHITE = 1  # an item that is a white-space token
_PIECE = 0  # an item that is a white-space-free piece of text (one or more tokens)


def _is_punct(token: str) -> bool:
    """spaCy's ``is_punct``: every character is Unicode punctuation (category P)."""
    return all(unicodedata.category(c).startswith("P") for c in token)


@lru_cache(maxsize=1 << 18)
def _moves(piece: str) -> tuple[tuple[int, ...], bool, tuple[int, ...], bool]:
    """For a white-space-free piece entered after no terminal (first pair) or after one
    (second pair): the byte offsets in it where a sentence opens, and whether a terminal
    is pending when it ends."""
    tokens = _split(piece)
    moves: list = []
    for pending in (False, True):
        opens = []
        at = 0
        for token in tokens:
            if token in TERMINALS:
                pending = True
            elif pending and not _is_punct(token):
                opens.append(at)
                pending = False
            at += len(token.encode("utf-8"))
        moves += [tuple(opens), pending]
    return tuple(moves)  # type: ignore[return-value]


def sentence_ends(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Each text's sentences as the sentencizer cuts them: how many each text has (0 for
    an empty or null text; int64) and, text after text, where each sentence ends, in
    bytes from its text's start (int64)."""
    data, offsets = string_buffers(large_text(text))
    counts = _items(data, offsets, np.zeros(0, np.int64), np.zeros(0, np.int64), None)[0]
    total = int(counts.sum())
    starts, stops = np.empty(total, np.int64), np.empty(total, np.int64)
    kinds = np.empty(total, np.uint8)
    _items(data, offsets, starts, stops, kinds)
    pieces = np.flatnonzero(kinds == _PIECE)
    move = np.full(total, -1, np.int64)  # -1: white space, or a piece that acts as a word
    opens = [np.zeros(1, np.int64), np.zeros(1, np.int64)]
    where = [np.zeros(0, np.int64), np.zeros(0, np.int64)]
    after = [np.zeros(0, np.bool_), np.zeros(0, np.bool_)]
    if len(pieces):
        piece_data, piece_offsets = _gather(data, starts[pieces], stops[pieces])
        piece_text = pa.LargeStringArray.from_buffers(
            len(pieces), pa.py_buffer(piece_offsets), pa.py_buffer(piece_data)
        )
        # a piece with no terminal whose first character is not punctuation opens a
        # sentence at its start when one is pending and leaves none pending, as a word does
        pieces_pl = pl.from_arrow(piece_text)
        special = (pieces_pl.str.contains(_TERMINAL) | pieces_pl.str.contains(r"^\p{P}")).to_numpy()
        if special.any():
            chosen = piece_text.filter(pa.array(special))
            distinct = pc.unique(chosen)
            found = [_moves(p) for p in distinct.to_pylist()]
            move[pieces[special]] = np.asarray(pc.index_in(chosen, distinct), dtype=np.int64)
            for state in (0, 1):
                lists = [m[2 * state] for m in found]
                opens[state] = np.zeros(len(lists) + 1, np.int64)
                np.cumsum([len(x) for x in lists], out=opens[state][1:])
                where[state] = np.array([o for x in lists for o in x], np.int64)
                after[state] = np.array([m[2 * state + 1] for m in found], np.bool_)
    ends, per_text = _walk(offsets, counts, starts, stops, kinds, move, *opens, *where, *after)
    return per_text, ends


@numba.njit(cache=True, nogil=True)
def _items(
    data: np.ndarray,
    offsets: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    kinds: np.ndarray | None,
) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
    """Cut each text into white-space tokens and white-space-free pieces, in order. With
    ``kinds`` None only count them (items per text); else also write each one's byte
    range and kind into the arrays given."""
    n = len(offsets) - 1
    counts = np.zeros(n, np.int64)
    k = 0
    for d in range(n):
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            c, size = code_point(data, i)
            space = is_unicode_space(c)
            j = i + size
            while j < end:
                c2, size2 = code_point(data, j)
                if is_unicode_space(c2) != space:
                    break
                j += size2
            begin = i
            if space and i > offsets[d] and data[i] == 0x20:
                begin = i + 1  # a single space after a token belongs to that token
            if begin < j:
                if kinds is not None:
                    starts[k] = begin
                    stops[k] = j
                    kinds[k] = 1 if space else 0
                k += 1
                counts[d] += 1
            i = j
    return counts, k


@numba.njit(cache=True, nogil=True)
def _gather(
    data: np.ndarray, starts: np.ndarray, stops: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The byte ranges ``starts``..``stops`` of ``data`` one after another: bytes and
    offsets of a string array."""
    offsets = np.zeros(len(starts) + 1, np.int64)
    for i in range(len(starts)):
        offsets[i + 1] = offsets[i] + stops[i] - starts[i]
    out = np.empty(offsets[-1], np.uint8)
    for i in range(len(starts)):
        out[offsets[i] : offsets[i + 1]] = data[starts[i] : stops[i]]
    return out, offsets


@numba.njit(cache=True, nogil=True)
def _walk(
    offsets: np.ndarray,
    counts: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    kinds: np.ndarray,
    move: np.ndarray,
    opens0: np.ndarray,
    opens1: np.ndarray,
    where0: np.ndarray,
    where1: np.ndarray,
    after0: np.ndarray,
    after1: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The sentencizer over the items of each text: sentence ends (bytes from the text's
    start) and sentences per text."""
    # a sentence ends before each item that opens one (a piece may open several) and at
    # each text's end
    most = len(starts) + len(counts)
    for m in move[move >= 0]:
        most += max(opens0[m + 1] - opens0[m], opens1[m + 1] - opens1[m])
    ends = np.empty(most, np.int64)
    per_text = np.zeros(len(counts), np.int64)
    written = 0
    item = 0
    for d in range(len(counts)):
        base = offsets[d]
        pending = False
        last = base  # where the last token so far ends
        for _ in range(counts[d]):
            m = move[item]
            if kinds[item] == 1 or m < 0:  # white space, or a piece that acts as a word
                if pending:
                    ends[written] = last - base
                    written += 1
                    per_text[d] += 1
                    pending = False
            else:
                if pending:
                    first, stop, at = opens1[m], opens1[m + 1], where1
                    pending = after1[m]
                else:
                    first, stop, at = opens0[m], opens0[m + 1], where0
                    pending = after0[m]
                for o in range(first, stop):
                    ends[written] = (starts[item] + at[o] if at[o] > 0 else last) - base
                    written += 1
                    per_text[d] += 1
            last = stops[item]
            item += 1
        if counts[d]:
            ends[written] = last - base
            written += 1
            per_text[d] += 1
    return ends[:written], per_text


def sentence_texts(
    data: np.ndarray, offsets: np.ndarray, per_text: np.ndarray, ends: np.ndarray
) -> tuple[pa.LargeStringArray, np.ndarray]:
    """Every sentence of the texts (``string_buffers``) whose sentences end at ``ends``
    (``sentence_ends``), text after text: its text, from the previous sentence's end (the
    white space before it included), and whether it is white space only."""
    bytes_, starts, blank = _sentence_bytes(data, offsets, per_text, ends)
    texts = pa.LargeStringArray.from_buffers(len(blank), pa.py_buffer(starts), pa.py_buffer(bytes_))
    return texts, blank


@numba.njit(cache=True, nogil=True)
def _sentence_bytes(
    data: np.ndarray, offsets: np.ndarray, per_text: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``sentence_texts``' bytes and offsets, and whether each sentence is white space
    only."""
    out = np.empty(offsets[-1] - offsets[0], np.uint8)
    out_offsets = np.zeros(len(ends) + 1, np.int64)
    blank = np.zeros(len(ends), np.bool_)
    s = 0
    written = 0
    for d in range(len(per_text)):
        previous = 0
        for _ in range(per_text[d]):
            begin = offsets[d] + previous
            end = offsets[d] + ends[s]
            out[written : written + end - begin] = data[begin:end]
            written += end - begin
            out_offsets[s + 1] = written
            blank[s] = skip_spaces(data, begin, end) == end
            previous = ends[s]
            s += 1
    return out[:written], out_offsets, blank
