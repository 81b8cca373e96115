"""dclm_quality against a per-document rendering of DCLM-Baseline's quality filters."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.dclm import DclmQuality, DclmQualityParams, document_counts
from curation.recipe import RecipeError, parse_recipe
from curation.utf8 import string_buffers
from tests.filters.dclm_quality_reference import STOP_WORDS, dclm_quality_reference
from tests.filters.test_url_removal import sample_texts


def run(texts: list[str], **params: object) -> pa.Table:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    stage = DclmQuality(DclmQualityParams(**params))  # type: ignore[arg-type]
    stage.setup()
    return stage.process(table)


def decisions(texts: list[str]) -> list[str | None]:
    return [
        None if reason is None else reason.removeprefix("dclm_quality:")
        for reason in run(texts)["drop_reason"].to_pylist()
    ]


@pytest.mark.parametrize("sample", ["c4", "pile", "dclm_human", "warc"])
def test_same_decisions_as_dclm_on_real_documents(sample: str) -> None:
    texts = sample_texts(sample)
    ours = decisions(texts)
    theirs = [dclm_quality_reference(text) for text in texts]
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    assert differ == [], [(i, ours[i], theirs[i]) for i in differ[:5]]
    assert any(theirs)  # the rules reach the sample
    if sample in ("c4", "pile"):
        assert len(set(theirs)) >= 4


WORD = st.sampled_from(
    [
        "the",
        "The",
        "THE",
        "with,",
        "and",
        "Ünïcödé",
        "Straße",
        "word",
        "extraordinarily",
        "a",
        "12345",
        "3.14",
        "--",
        "#",
        "#tag",
        "...",
        ". . .",
        "\u2026",
        "●",
        "•",
        "*",
        "-",
        "𝐀𝐁𝐂",
        "😀",
        "٣٤",
        "x\x00y",
        "\u212athe",
    ]
)
GAP = st.sampled_from(
    [
        " ",
        "  ",
        "\n",
        "\n\n",
        "\t",
        "\r\n",
        "\x0b",
        "\x0c",
        "\x1c",
        "\xa0",
        "\u2028",
        "\u3000",
        " \n ",
        "\x00",
    ]
)


@st.composite
def texts(draw: st.DrawFn) -> str:
    n = draw(st.integers(0, 90))
    pieces = [draw(GAP) if i % 2 else draw(WORD) for i in range(2 * n)]
    return "".join(pieces)


@settings(max_examples=400, deadline=None)
@given(st.lists(texts(), min_size=1, max_size=5))
def test_any_text_is_decided_as_dclm_decides(batch: list[str]) -> None:
    assert decisions(batch) == [dclm_quality_reference(text) for text in batch]


def python_counts(text: str) -> list[int]:
    """What ``document_counts`` counts, by Python's and fastText's own functions."""
    import fasttext

    words = text.split()
    lines = [line for part in text.split("\n") if (line := part.strip())]
    return [
        sum(1 for token in fasttext.tokenize(text) if token[0].isalnum()),
        len(words),
        sum(len(w) for w in words),
        sum(1 for w in words if not any(c.isalpha() for c in w)),
        sum(1 for w in words if w.lower() in STOP_WORDS),
        len(lines),
        sum(line[0] in "●•*-" for line in lines),
        sum(line.endswith(("...", ". . .", "\u2026")) for line in lines),
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(texts(), min_size=1, max_size=4))
def test_counts_are_pythons(batch: list[str]) -> None:
    stage = DclmQuality(DclmQualityParams())
    stage.setup()
    array = pa.array(batch, pa.large_string())
    counts = document_counts(*string_buffers(array), stage.classes, stage.stops)
    assert counts.tolist() == [python_counts(text) for text in batch]


def test_counts_and_switches() -> None:
    text = "The cat and the dog " * 12 + "\n" + "- these list items hold words\n" * 2
    table = run([text, "tiny"])
    rows = table.to_pylist()
    assert rows[0]["drop_reason"] is None and rows[0]["dclm_quality_words"] == 60 + 10
    assert rows[0]["dclm_quality_non_alpha_ratio"] == pytest.approx(2 / 72)
    assert rows[1]["drop_reason"] == "dclm_quality:page_length"
    # every rule off: nothing is dropped, the columns stay
    off = {name: None for name in DclmQualityParams.model_fields if name != "stop_words"}
    assert run(["tiny", ""], **off)["drop_reason"].to_pylist() == [None, None]
    assert run([""], **off)["dclm_quality_non_alpha_ratio"].to_pylist() == [None]


def test_a_bad_stop_word_list_is_refused() -> None:
    with pytest.raises(RecipeError, match="stop words must be lower-case ASCII"):
        parse_recipe("stages:\n  - dclm_quality: {stop_words: [The]}\n")
