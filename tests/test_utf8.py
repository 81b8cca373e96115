"""curation.utf8: Python's character classes of every code point, and word counts."""

from __future__ import annotations

import sys

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.utf8 import IS_ALNUM, IS_ALPHA, IS_DIGIT, IS_UPPER, char_classes, word_counts


def test_char_classes_are_pythons_for_every_code_point() -> None:
    table = char_classes()
    assert len(table) == sys.maxunicode + 1
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        expected = (
            char.isupper() * IS_UPPER
            | char.isdigit() * IS_DIGIT
            | char.isalpha() * IS_ALPHA
            | char.isalnum() * IS_ALNUM
        )
        assert table[point] == expected, hex(point)


# white space of every kind Python knows (\x1c-\x1f and U+0085 among them, which
# Unicode's White_Space property and pyarrow's utf8_split_whitespace disagree on)
_SPACES = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u3000"
_TEXT = st.text(alphabet=st.sampled_from(_SPACES) | st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None)  # the first call compiles the kernel
@given(st.lists(st.none() | _TEXT, max_size=8))
def test_word_counts_are_str_splits(texts: list[str | None]) -> None:
    words, longest = word_counts(pa.array(texts, pa.string()))
    for text, count, most in zip(texts, words, longest, strict=True):
        split = (text or "").split()
        assert count == len(split), text
        assert most == max(map(len, split), default=0), text
