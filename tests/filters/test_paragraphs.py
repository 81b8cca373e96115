"""c4_paragraphs against datatrove's C4ParagraphFilter: the real samples and any lines."""

from __future__ import annotations

import heapq

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.paragraphs import C4Paragraphs, C4ParagraphsParams
from tests.conftest import read_output, recipe_of, run_local
from tests.filters.parity import compare, real_documents


@pytest.mark.parametrize("sample", ["c4", "pile"])
def test_same_decisions_as_datatrove(sample: str) -> None:
    from datatrove.pipeline.filters import C4ParagraphFilter

    texts = real_documents()[sample]
    parity = compare(C4ParagraphFilter(), "c4_paragraphs", texts)
    assert parity.disagreements() == []
    assert (
        20 < sum(parity.ours) < len(texts) - 20
    )  # both decisions occur (C4 keeps 424, the Pile 42)


def mc4(text: str, count: int, length: int) -> bool:
    """TFDS's ``paragraph_filter``, as datatrove runs it."""
    lines = text.split("\n")
    return not (len(lines) < count or min(heapq.nlargest(count, map(len, lines))) < length)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["a", "é", "漢", "😀", " ", "\r", "\u2028"]), max_size=12).map(
            "".join
        ),
        max_size=8,
    ).map("\n".join),
    st.integers(1, 4),
    st.integers(0, 6),
)
def test_any_lines_as_the_mc4_rule(text: str, count: int, length: int) -> None:
    stage = C4Paragraphs(C4ParagraphsParams(min_paragraphs=count, min_paragraph_len=length))
    out = stage.process(conform(pa.table({"id": ["0"], "text": [text]})))
    assert (out["drop_reason"][0].as_py() is None) == mc4(text, count, length)
    assert out["c4_paragraphs"][0].as_py() == sum(len(x) >= length for x in text.split("\n"))


def test_a_run_accounts_for_every_document(c4_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stats = run_local(recipe_of("stages:\n  - c4_paragraphs: {}\n", c4_path), tmp_path / "out")
    stage = next(s for s in stats["stages"] if s["name"] == "c4_paragraphs")
    assert stage["rows_in"] == 1000 == stage["rows_kept"] + stage["rows_dropped"]
    assert stage["dropped_by_reason"] == {"c4_paragraphs:too_few": stage["rows_dropped"]}
    kept = read_output(tmp_path / "out", "kept")
    assert min(kept["c4_paragraphs"].to_pylist()) >= 3
