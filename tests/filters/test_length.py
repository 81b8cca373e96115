"""length_filter: bounds in Unicode characters, measured column, reasons."""

from __future__ import annotations

import pyarrow as pa

from curation.batch import conform
from curation.filters.length import LengthFilter, LengthFilterParams


def test_bounds_in_characters_not_bytes() -> None:
    table = conform(pa.table({"id": ["a", "b", "c", "d"], "text": ["ab", "ééé", "abcd", "abcdef"]}))
    stage = LengthFilter(LengthFilterParams(min_chars=3, max_chars=4))
    out = stage.process(table)
    assert out["length_chars"].to_pylist() == [2, 3, 4, 6]
    assert out["drop_reason"].to_pylist() == [
        "length_filter:too_short",
        None,
        None,
        "length_filter:too_long",
    ]
