"""refinedweb_lines against a per-document rendering of DCLM-Baseline's line modifiers."""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import TEXT, conform
from curation.filters.refinedweb import (
    SPACE,
    RefinedWebLines,
    RefinedWebLinesParams,
    SubstringRule,
    line_counts,
)
from curation.io.inputs import resolve_inputs
from curation.io.readers import read_shard
from curation.recipe import InputSpec, RecipeError, parse_recipe
from tests.conftest import shared_file
from tests.filters.parity import real_documents
from tests.filters.refinedweb_reference import dclm_reference, dclm_words


def run(texts: list[str], **params: object) -> pa.Table:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    return RefinedWebLines(RefinedWebLinesParams(**params)).process(table)  # type: ignore[arg-type]


def decisions(texts: list[str]) -> tuple[list[str | None], list[str | None]]:
    """(ours, DCLM's): each document's corrected text, or None where it is dropped."""
    rows = run(texts).to_pylist()
    ours = [row["text"] if row["drop_reason"] is None else None for row in rows]
    return ours, [dclm_reference(text) for text in texts]


def warc_texts() -> list[str]:
    """The text Resiliparse extracts from the two real WARC files' pages."""
    spec = InputSpec(format="warc")
    texts: list[str] = []
    for shard in resolve_inputs([str(shared_file("warc"))], "warc"):
        for batch in read_shard(shard, spec):
            texts += batch[TEXT].to_pylist()
    return texts


@pytest.mark.parametrize("sample", ["c4", "pile", "dclm_human", "warc"])
def test_same_texts_and_decisions_as_dclm_on_real_documents(sample: str) -> None:
    if sample == "dclm_human":
        path = shared_file("quality/dclm-human-quality-majority.jsonl")
        lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028
        texts = [json.loads(line)["text"] for line in lines if line.strip()]
    elif sample == "warc":
        texts = warc_texts()
    else:
        texts = real_documents()[sample]
    ours, theirs = decisions(texts)
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    assert differ == [], [(i, ours[i], theirs[i]) for i in differ[:3]]
    # the rules reach the sample: lines removed (or documents dropped) somewhere
    pairs = zip(theirs, texts, strict=True)
    assert any(t is None or t.count("\n") < s.strip().count("\n") for t, s in pairs)


LINE = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "A fine line of text with enough words in it.",
        "SHOUTING IN CAPITALS HERE",
        "Mostly Upper CASE Words",
        "12345",
        "2024",
        " 42 ",
        "3 likes",
        "1.2k views",
        "• 10,000 followers •",
        "word",
        "two words",
        "Items in cart: 0",
        "Your items in cart",
        "Read more...",
        "The story goes on. Read more »»»",
        "Sign-in to comment",
        "SIGN-IN",
        "a line that is long enough to be left alone by the substring rules, read more...",
        "Ⅻ Ⓐ ½ ² ³ ① 𝟘 ٣ accented é É",
        "x\u00a0y\u2003z\x0bw",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(LINE, max_size=12).map("\n".join), min_size=1, max_size=8))
def test_any_mix_of_lines_matches_dclm(texts: list[str]) -> None:
    ours, theirs = decisions(texts)
    assert ours == theirs


PIECE = st.sampled_from(
    [
        "a",
        "B",
        "7",
        " ",
        "\n",
        "\t",
        "\u00a0",
        "\u2003",
        ".",
        "-",
        "…",
        "Ⅻ",
        "²",
        "_",
        "k",
        " likes",
        "read more",
        "Sign-in",
        "items in cart",
        "\x0b",
        "\x1c",
        "\r",
        "\x85",
        "\u2028",
        "\x00",
        "𝐀",
        "🙂",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(PIECE, max_size=30).map("".join), min_size=1, max_size=6))
def test_any_text_matches_dclm(texts: list[str]) -> None:
    """Edges the whole lines above do not reach: whitespace at the ends of a document
    and of lines, runs of blank lines, patterns inside words."""
    ours, theirs = decisions(texts)
    assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_counts_are_dclms_and_pythons(text: str) -> None:
    upper, digit, words, tokens = line_counts(pa.array([text], pa.large_string()))[0]
    assert upper == sum(c.isupper() for c in text)
    assert digit == sum(c.isdigit() for c in text)
    assert words == len(text.split())
    assert tokens == dclm_words(text)


def test_space_class_is_pythons() -> None:
    """SPACE, in the patterns, matches exactly what str.isspace accepts."""
    points = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    chars = pa.array([chr(c) for c in points])
    re2 = np.asarray(pc.match_substring_regex(chars, f"^{SPACE}$"))
    python = np.array([chr(c).isspace() for c in points])
    assert (re2 == python).all()


def test_rules_and_columns() -> None:
    good = "\n".join(f"Line {i} of a page that reads well and says a lot." for i in range(30))
    rows = run(
        [
            good + "\nSHARE THIS PAGE\n12\n5 comments",
            good + "\n" + "\n".join(f"menu{i}" for i in range(40)),
            "",
            "!!! ???",
        ]
    ).to_pylist()
    assert rows[0]["drop_reason"] is None
    assert rows[0]["text"] == good
    assert rows[0]["refinedweb_lines_removed"] == 3
    assert 0 < rows[0]["refinedweb_words_removed_ratio"] <= 0.05
    assert rows[1]["drop_reason"] == "refinedweb_lines:words_removed_ratio"
    assert rows[1]["text"].endswith("menu39")  # a dropped document keeps its text
    assert rows[2]["drop_reason"] == "refinedweb_lines:empty"
    assert rows[3]["drop_reason"] == "refinedweb_lines:no_words"
    assert rows[3]["refinedweb_words_removed_ratio"] is None


def test_rules_switch_off_and_take_other_patterns() -> None:
    text = "PAGE TITLE\nA sentence of a page that reads well.\n2024\nSubscribe now"
    rows = run(
        [text],
        max_uppercase_ratio=None,
        max_numeric_ratio=None,
        min_words_per_line=None,
        max_words_removed_ratio=None,
        substrings=[{"pattern": r"subscribe\s+now", "location": "any"}],
    ).to_pylist()
    assert rows[0]["text"] == "PAGE TITLE\nA sentence of a page that reads well.\n2024"
    assert rows[0]["drop_reason"] is None


def test_a_bad_pattern_is_an_error_that_names_it() -> None:
    with pytest.raises(ValueError, match=r"pattern '\(unclosed' is not a valid RE2"):
        SubstringRule(pattern="(unclosed")
    recipe = "stages:\n  - refinedweb_lines: {substrings: [{pattern: '(x'}]}\n"
    with pytest.raises(RecipeError, match="refinedweb_lines") as error:
        parse_recipe(recipe)
    assert "'(x' is not a valid RE2" in str(error.value)


def test_batches_of_several_chunks_and_slices_give_dclms_texts() -> None:
    """Arrow hands a stage a text column in chunks, or a slice of a larger one: the
    compiled counts read each piece's own bytes."""
    texts = real_documents()["pile"][:300]
    table = conform(pa.table({"id": [str(i) for i in range(300)], "text": texts}))
    chunked = pa.concat_tables([table.slice(0, 100), table.slice(100, 200)])
    assert chunked["text"].num_chunks == 2
    for batch in (chunked, table.slice(37, 150)):
        stage = RefinedWebLines(RefinedWebLinesParams())
        rows = stage.process(batch).to_pylist()
        ours = [r["text"] if r["drop_reason"] is None else None for r in rows]
        assert ours == [dclm_reference(texts[int(r["id"])]) for r in rows]
