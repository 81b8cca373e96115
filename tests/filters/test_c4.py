"""c4_quality against datatrove's C4QualityFilter: decisions and rewritten text."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curation.batch import conform
from curation.filters.c4 import C4Quality, C4QualityParams, count_sentences
from tests.filters.parity import compare, real_documents


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["c4", "pile"])
def test_parity_with_datatrove(sample: str) -> None:
    from datatrove.pipeline.filters import C4QualityFilter

    texts = real_documents()[sample]
    parity = compare(C4QualityFilter(), "c4_quality", texts)
    assert parity.agreement >= 0.99, parity.disagreements()
    assert len(parity.text_mismatches()) <= len(texts) // 100, parity.text_mismatches()
    options = dict(min_num_sentences=2, min_words_per_line=5, filter_curly_bracket=False)
    other = compare(C4QualityFilter(**options), "c4_quality", texts, **options)
    assert other.agreement >= 0.99, other.disagreements()


def run(texts: list[str], **params: object) -> pa.Table:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    return C4Quality(C4QualityParams(**params)).process(table)  # type: ignore[arg-type]


GOOD = "\n".join(f"This is sentence number {i} of a fine page." for i in range(6))


def test_lines_removed_and_documents_dropped() -> None:
    noisy = (
        GOOD
        + "\nShare this\nEnable javascript to see the comments on this page.\n"
        + ("We use cookies to improve your experience on this site.")
    )
    out = run(
        [
            noisy,
            GOOD + "\nlorem ipsum dolor sit amet.",
            GOOD + "\nfoo { bar } baz.",
            "Only one sentence here.",
        ]
    )
    rows = out.to_pylist()
    assert rows[0]["drop_reason"] is None
    assert rows[0]["text"] == GOOD
    assert rows[0]["c4_lines_removed"] == 3
    assert [r["drop_reason"] for r in rows[1:]] == [
        "c4_quality:lorem_ipsum",
        "c4_quality:curly_bracket",
        "c4_quality:too_few_sentences",
    ]
    assert rows[3]["text"] == "Only one sentence here.", "dropped rows keep their text"


def test_sentence_count_follows_spacy() -> None:
    lines = pa.array(
        ["One. Two! Three?", "Mr. Smith went home.", "Wait... what?", 'He said "stop." Then.', ""],
        pa.large_string(),
    )
    # as datatrove's split_into_sentences (spaCy) splits them: '...' ends no sentence
    assert count_sentences(lines).tolist() == [3, 1, 1, 2, 0]


def test_c4s_own_end_marks_and_limits() -> None:
    """TFDS's c4_utils: no ' among the end marks, 5 words a line, 3 sentences a page."""
    good = GOOD.splitlines()
    page = "\n".join([*good[:3], "He said it was 'fine'", "Four words end here."])
    four = "\n".join(good[:4])
    c4s = dict(end_punctuation=[".", "?", "!", '"'], min_words_per_line=5, min_num_sentences=3)
    datatroves = run([page, four]).to_pylist()
    assert [r["c4_lines_removed"] for r in datatroves] == [0, 0]
    assert [r["drop_reason"] for r in datatroves] == [None, "c4_quality:too_few_sentences"]
    c4 = run([page, four], **c4s).to_pylist()
    assert [r["c4_lines_removed"] for r in c4] == [2, 0]
    assert [r["drop_reason"] for r in c4] == [None, None]
    assert c4[0]["text"] == "\n".join(good[:3])
