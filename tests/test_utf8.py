"""curation.utf8: Python's character classes of every code point."""

from __future__ import annotations

import sys

from curation.utf8 import IS_ALNUM, IS_ALPHA, IS_DIGIT, IS_UPPER, char_classes


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
