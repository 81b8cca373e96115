"""gopher_quality against datatrove's GopherQualityFilter on the real samples."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curation.batch import conform
from curation.filters.gopher import GopherQuality, GopherQualityParams
from tests.filters.parity import compare, real_documents


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["c4", "pile"])
def test_parity_with_datatrove(sample: str) -> None:
    from datatrove.pipeline.filters import GopherQualityFilter

    texts = real_documents()[sample]
    parity = compare(GopherQualityFilter(), "gopher_quality", texts)
    assert parity.agreement >= 0.99, parity.disagreements()
    # and with other thresholds, the same parameter names mean the same thing
    strict = compare(
        GopherQualityFilter(min_doc_words=200, min_stop_words=4),
        "gopher_quality",
        texts,
        min_doc_words=200,
        min_stop_words=4,
    )
    assert strict.agreement >= 0.99, strict.disagreements()
    assert sum(strict.ours) < sum(parity.ours)


def run(texts: list[str], **params: object) -> list[str | None]:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    stage = GopherQuality(GopherQualityParams(**params))  # type: ignore[arg-type]
    return stage.process(table)["drop_reason"].to_pylist()


def test_each_rule_names_itself() -> None:
    prose = "The cat sat on the mat and looked at the dog with great interest. " * 10
    assert run([prose]) == [None]
    assert run(["The cat and the dog."]) == ["gopher_quality:min_doc_words"]
    assert run(["#tag " * 60 + prose]) == ["gopher_quality:max_hash_ratio"]
    bullets = "\n".join("- the item of a list with words" for _ in range(30))
    assert run([bullets]) == ["gopher_quality:max_bullet_lines_ratio"]
    ellipses = "\n".join("and the story goes on and on to the end ..." for _ in range(20))
    assert run([ellipses], max_symbol_word_ratio=None) == [
        "gopher_quality:max_ellipsis_lines_ratio"
    ]
    numbers = " ".join(str(i) for i in range(10_000, 10_400)) + " " + prose
    assert run([numbers]) == ["gopher_quality:min_alpha_words_ratio"]
    assert run(["cat dog " * 60]) == ["gopher_quality:min_stop_words"]


def test_bad_input_passes_through_with_a_reason() -> None:
    texts = ["", "   \n\t ", "!!! ... ???", "\ufffd\ufffd", "word " * 2_000_000]
    reasons = run(texts)
    assert reasons[:4] == ["gopher_quality:min_doc_words"] * 4
    assert reasons[4] == "gopher_quality:max_doc_words"
