"""Hypothesis strategies the dedup tests share."""

from __future__ import annotations

from hypothesis import strategies as st

#: every kind of white space the normalisations treat differently: RE2's ``\s`` (ASCII),
#: Python's ``str.isspace`` beyond it, and look-alikes that are neither (U+200B)
SPACES = " \t\n\x0b\x0c\r\x1c\x1f\x85\xa0\u1680\u2003\u200b\u2028\u202f\u3000"


def texts_with_spaces(letters: str) -> st.SearchStrategy[list[str | None]]:
    """Up to 8 texts (or nulls) of ``letters`` mixed with every kind of white space, and
    arbitrary ones."""
    return st.lists(
        st.one_of(
            st.none(),
            st.text(alphabet=st.sampled_from(SPACES + letters), max_size=30),
            st.text(max_size=20),
        ),
        max_size=8,
    )
