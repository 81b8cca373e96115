"""dclm_quality against a per-document rendering of DCLM-Baseline's quality filters."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.dclm import (
    DclmQuality,
    DclmQualityParams,
    DclmRepetition,
    DclmRepetitionParams,
    dclm_words,
    document_counts,
)
from curation.recipe import RecipeError, parse_recipe
from curation.utf8 import string_buffers
from tests.filters.dclm_quality_reference import STOP_WORDS, dclm_quality_reference
from tests.filters.dclm_repetition_reference import dclm_repetition_reference, uniseg_words
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


# --------------------------------------------------------------------------- repetition


def repetition(texts: list[str], **params: object) -> pa.Table:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    return DclmRepetition(DclmRepetitionParams(**params)).process(table)  # type: ignore[arg-type]


def repetition_decisions(texts: list[str]) -> list[str | None]:
    return [
        None if reason is None else reason.removeprefix("dclm_repetition:")
        for reason in repetition(texts)["drop_reason"].to_pylist()
    ]


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["c4", "pile", "dclm_human", "warc"])
def test_words_are_uniseg_s_on_real_documents(sample: str) -> None:
    # uniseg, DCLM's word breaker, takes about 25 s for the 1,000 C4 documents
    texts = sample_texts(sample)
    differ = [i for i, text in enumerate(texts) if dclm_words(text) != uniseg_words(text)]
    assert differ == []


@pytest.mark.parametrize("sample", ["c4", "pile", "dclm_human", "warc"])
def test_same_repetition_decisions_as_dclm_on_real_documents(sample: str) -> None:
    texts = sample_texts(sample)
    ours = repetition_decisions(texts)
    # DCLM's checks with our words, which the test above shows are uniseg's on these
    theirs = [dclm_repetition_reference(text, dclm_words) for text in texts]
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    assert differ == [], [(i, ours[i], theirs[i]) for i in differ[:5]]
    assert any(theirs)
    if sample in ("c4", "pile"):
        assert len(set(theirs)) >= 4
    if sample == "warc":  # and with uniseg's own words, end to end
        assert ours == [dclm_repetition_reference(text) for text in texts]


CHUNK = st.sampled_from(
    [
        "the cat",
        "The cat",
        "sat on the mat",
        "don't",
        "3.14",
        "e.g.",
        "U.S.A.",
        "foo_bar",
        "שָׁלוֹם",
        'ה"ה',
        "アイウ",
        "\U0001f1e6\U0001f1e7\U0001f1e8",
        "\U0001f468\u200d\U0001f469",
        "e\u0301",
        "中文字",
        "١٢٣",
        "x²",
        ",",
        ".",
        "'",
        "-",
        "  ",
        " ",
        "\n",
        "\n\n",
        "\r\n",
        "\t",
        "\u00a0",
        "\u2028",
    ]
)


@st.composite
def repeated_texts(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(CHUNK, max_size=12))
    times = draw(st.integers(1, 4))
    tail = draw(st.lists(CHUNK, max_size=6))
    joiner = draw(st.sampled_from([" ", "\n", "\n\n", ""]))
    return joiner.join(["".join(pieces)] * times) + "".join(tail)


@settings(max_examples=300, deadline=None)
@given(st.lists(repeated_texts(), min_size=1, max_size=4))
def test_any_text_is_decided_as_dclm_decides_repetition(batch: list[str]) -> None:
    assert [dclm_words(text) for text in batch] == [uniseg_words(text) for text in batch]
    assert repetition_decisions(batch) == [dclm_repetition_reference(text) for text in batch]


def ngram_fraction(words: list[str], n: int, top: bool) -> float:
    """DCLM's measured share for one n (0 where no n-gram repeats)."""
    grams = list(zip(*(words[i:] for i in range(n)), strict=False))
    counts = Counter(grams)
    if not grams or max(counts.values()) == 1:
        return 0.0
    total = sum(len(w) for w in words)
    if top:
        most = max(counts.values())
        return most * max(sum(map(len, g)) for g, c in counts.items() if c == most) / total
    covered = {i + k for i, g in enumerate(grams) if counts[g] > 1 for k in range(n)}
    return sum(len(words[i]) for i in covered) / total


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "bb", "ccc", "a1"]), max_size=40), min_size=1))
def test_ngram_fractions_are_dclms(docs: list[list[str]]) -> None:
    texts = [" ".join(words) for words in docs]
    table = repetition(texts, dup_line_frac=None, dup_para_frac=None)
    for n, top in [(2, True), (3, True), (4, True), (5, False), (7, False), (10, False)]:
        column = f"dclm_{'top' if top else 'dup'}_{n}_gram_frac"
        got = table[column].to_pylist()
        expected = [ngram_fraction(words, n, top) if words else None for words in docs]
        assert got == pytest.approx(expected), column


def test_repetition_switches_and_empty_texts() -> None:
    text = "\n".join(["the same line of words"] * 4 + ["another line of words here"])
    rows = repetition([text, "   \n ", "one line"]).to_pylist()
    assert rows[0]["drop_reason"] == "dclm_repetition:dup_line_frac"
    assert rows[0]["dclm_dup_line_frac"] == pytest.approx(4 / 5)
    assert rows[1]["drop_reason"] == "dclm_repetition:empty"
    assert rows[1]["dclm_dup_line_frac"] is None
    assert rows[2]["drop_reason"] is None
    off = repetition([text], dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=None)
    assert off["drop_reason"].to_pylist() == ["dclm_repetition:top_2_gram"]
    with pytest.raises(RecipeError, match="n-gram sizes run from 2 to 64"):
        parse_recipe("stages:\n  - dclm_repetition: {top_n_grams: [[1, 0.2]]}\n")
