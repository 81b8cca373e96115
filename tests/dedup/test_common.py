"""The dedup stages' shared key normalisation against its pyarrow definition."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.dedup.common import normalized_text
from tests.dedup.strategies import texts_with_spaces


def reference(values: list[str | None], digits_to_zero: bool) -> list[str | None]:
    """What the stages computed with pyarrow kernels before the compiled pass."""
    key = pc.replace_substring(pc.utf8_lower(pa.array(values, pa.large_string())), "ς", "σ")
    if digits_to_zero:
        key = pc.replace_substring_regex(key, r"\d", "0")
    key = pc.utf8_trim_whitespace(pc.replace_substring_regex(key, r"\s+", " "))
    return key.to_pylist()


@settings(max_examples=400, deadline=None)
@given(
    texts_with_spaces("aZ09ΣσςÉ€𝔘漢İ٣"),
    st.booleans(),
    st.integers(0, 3),
)
def test_one_pass_equals_the_pyarrow_kernels(
    values: list[str | None], digits_to_zero: bool, skip: int
) -> None:
    array = pa.array(values, pa.large_string())[skip:]  # an offset into the buffers
    got = normalized_text(array, digits_to_zero=digits_to_zero)
    assert got.to_pylist() == reference(values[skip:], digits_to_zero)
    got.validate(full=True)


def test_greek_upper_case_copies_meet() -> None:
    source = "Η έκθεση της Νέας Υόρκης."
    assert normalized_text(pa.array([source, source.upper()])).to_pylist() == [
        "η έκθεση τησ νέασ υόρκησ.",
        "η έκθεση τησ νέασ υόρκησ.",
    ]
