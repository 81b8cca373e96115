"""fix_text against datatrove's FTFYFormatter, on real and damaged text."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.fix_text import FixText, FixTextParams, ftfy_config
from tests.conftest import shared_file
from tests.filters.parity import real_documents
from tests.filters.test_refinedweb import warc_texts


def run(texts: list[str], **params: object) -> pa.Table:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    stage = FixText(FixTextParams(**params))  # type: ignore[arg-type]
    stage.setup()
    return stage.process(table)


def datatrove_texts(texts: list[str], **params: object) -> list[str]:
    from datatrove.pipeline.formatters import FTFYFormatter

    formatter = FTFYFormatter(**params)  # type: ignore[arg-type]
    return [formatter.format(text) for text in texts]


def mojibake(text: str) -> str:
    """``text`` as a page decoded with Windows-1252 instead of UTF-8 shows it."""
    return text.encode("utf-8").decode("cp1252", errors="replace")


@pytest.mark.parametrize("sample", ["c4", "pile", "dclm_human", "warc"])
def test_same_texts_as_datatrove_on_real_and_damaged_documents(sample: str) -> None:
    if sample == "dclm_human":
        path = shared_file("quality/dclm-human-quality-majority.jsonl")
        lines = path.read_text(encoding="utf-8").split("\n")
        texts = [json.loads(line)["text"] for line in lines if line.strip()]
    elif sample == "warc":
        texts = warc_texts()
    else:
        texts = real_documents()[sample]
    damaged = [mojibake(t) for t in texts if not t.isascii()][:100]
    everything = texts + damaged
    out = run(everything)
    assert out["text"].to_pylist() == datatrove_texts(everything)
    assert out.num_rows == len(everything) and out["drop_reason"].null_count == out.num_rows
    changed = out["fix_text_changed"].to_pylist()
    assert changed[len(texts) :] == [True] * len(damaged)
    assert changed == [a != b for a, b in zip(out["text"].to_pylist(), everything, strict=True)]


def test_mojibake_comes_back_as_it_was_written() -> None:
    texts = ["Café «déjà vu» — naïve résumé", "Grüße aus Köln", "Plain &amp; simple"]
    out = run([mojibake(texts[0]), mojibake(texts[1]), texts[2]])
    assert out["text"].to_pylist() == [texts[0], texts[1], "Plain & simple"]
    assert out["fix_text_changed"].to_pylist() == [True, True, True]


def test_options_reach_ftfy() -> None:
    text = "“Curly” quotes and the ﬁle"
    assert run([text])["text"].to_pylist() == [text]  # datatrove's defaults keep them
    fixed = run([text], uncurl_quotes=True, fix_latin_ligatures=True)["text"].to_pylist()
    assert fixed == ['"Curly" quotes and the file']
    assert fixed == datatrove_texts([text], uncurl_quotes=True, fix_latin_ligatures=True)


UNTOUCHED_ALPHABET = st.characters(
    min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="&"
) | st.sampled_from(["\t", "\n", "lt;", "#39;", "amp;", "<b>"])


@settings(max_examples=300, deadline=None)
@given(st.lists(UNTOUCHED_ALPHABET, max_size=80).map("".join), st.booleans())
def test_text_the_stage_passes_over_is_left_as_it_is_by_every_fix(text: str, all_on: bool) -> None:
    """The stage skips printable ASCII, tab and newline without '&': ftfy, with
    datatrove's settings or with every fix and NFKC on, leaves such text alone."""
    import ftfy

    if all_on:
        config = ftfy.TextFixerConfig(normalization="NFKC")
    else:
        config = ftfy_config(FixTextParams())
    assert ftfy.fix_text(text, config) == text


PIECE = st.sampled_from(
    [
        "plain words ",
        "\n",
        "\r\n",
        "\r",
        "<b>",
        "&amp;",
        "&lt;",
        "Ã©",
        "â€™",
        "Â ",
        "\x1b[31m",
        "\x07",
        "\u2028",
        "\x85",
        "ﬁ",
        "“q”",
        "é",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(PIECE, max_size=25).map("".join), min_size=1, max_size=5),
    st.sampled_from(["auto", True, False]),
    st.booleans(),
)
def test_segments_fixed_alone_give_ftfy_on_the_whole_document(
    texts: list[str], unescape_html: str | bool, fix_line_breaks: bool
) -> None:
    """The stage calls ftfy only on the lines that are not plain; the result is ftfy's
    on the whole text, '<' switching entities off for the rest of it included."""
    import ftfy

    params = FixTextParams(unescape_html=unescape_html, fix_line_breaks=fix_line_breaks)
    config = ftfy_config(params)
    out = run(texts, unescape_html=unescape_html, fix_line_breaks=fix_line_breaks)
    assert out["text"].to_pylist() == [ftfy.fix_text(t, config) for t in texts]
