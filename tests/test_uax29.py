"""The compiled word scan against the regex module's Unicode word boundaries."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.uax29 import regex_words, words

# a character of every Word_Break class: letters, digits and the marks between them,
# spaces and line breaks of every kind, and those left to the regex module (combining
# and format marks, joiners, emoji, flags, Hebrew, Katakana)
ALPHABET = (
    "aZé中ж7٣_.,;:'\"!-/ \t\n\r\x0b\x0c\x85\u2028\x1c\u00a0\u2000\u3000\u202f"
    "\u00b7\u2019\uff0e\u0301\u00ad\u200d😀\U0001f1eb\U0001f1f7אア"
)


def _cut_alike(column: pa.LargeStringArray, alnum_first: bool) -> None:
    """The scan's words (hashes, lengths, paragraphs, counts) are the regex module's."""
    ours, theirs = words(column, alnum_first), regex_words(column, alnum_first)
    for name in ("hashes", "chars", "paragraph", "paragraph_offsets", "per_text"):
        assert getattr(ours, name).tolist() == getattr(theirs, name).tolist(), name


@pytest.mark.parametrize("alnum_first", [False, True])
def test_every_string_of_four_classes(alnum_first: bool) -> None:
    """Every string of four characters drawn from one of each Word_Break class the scan
    decides itself (the rules look two characters back and one ahead)."""
    representatives = "aé7٣:·,;.'’_\u202f \u3000\t\n\r\x0b-中"
    texts = ["".join(t) for t in itertools.product(representatives, repeat=4)]
    _cut_alike(pa.array(texts, pa.large_string()), alnum_first)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(st.sampled_from(ALPHABET), max_size=30), st.text(max_size=10)),
        max_size=8,
    ),
    st.booleans(),
)
def test_drawn_text(texts: list[str], alnum_first: bool) -> None:
    """Drawn texts, some of them handed to the regex module, in any mix and order."""
    texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
    _cut_alike(pa.array([*texts, None], pa.large_string()), alnum_first)


def test_the_kinds_of_words() -> None:
    text = "Don't stop, 3.14 times!\r\nNext\u2028line\u00a0\u00a0x\x1c\n\n_end."
    column = pa.array([text], pa.large_string())
    spaced = words(column)
    assert spaced.per_text.tolist() == [12]  # punctuation and U+001C count, spaces not
    assert spaced.paragraph.tolist() == [0] * 6 + [1] * 4 + [3] * 2
    assert spaced.paragraph_offsets.tolist() == [0, 4]
    alnum = words(column, alnum_first=True)
    assert alnum.chars.tolist() == [5, 4, 4, 5, 4, 4, 1]  # "_end" begins with "_"
