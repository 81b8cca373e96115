"""Bad input passes through every heuristic filter without an exception and gets a reason."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curation.batch import conform
from curation.stage import registry

FILTERS = [
    "gopher_quality",
    "gopher_repetition",
    "c4_quality",
    "fineweb_quality",
    "refinedweb_lines",
    "c4_paragraphs",
]
EMPTYISH = {
    "empty": "",
    "whitespace": " \n\t\r\n \u00a0 ",
    "no words": "!!! ??? ... --- ### \n ;;; ,,,",
    "replacement characters": "\ufffd\ufffd\ufffd \ufffd",
}


def process(name: str, texts: list[str]) -> pa.Table:
    cls = registry()[name]
    stage = cls(cls.Params())
    stage.setup()
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    return stage.process(table)


@pytest.mark.parametrize("name", FILTERS)
def test_degenerate_documents_get_a_reason(name: str) -> None:
    out = process(name, list(EMPTYISH.values()))
    assert out.num_rows == len(EMPTYISH)
    reasons = dict(zip(EMPTYISH, out["drop_reason"].to_pylist(), strict=True))
    assert all(r is not None and r.startswith(f"{name}:") for r in reasons.values()), reasons


@pytest.mark.slow
def test_fifty_megabyte_document_through_the_chain() -> None:
    line = "The committee met on Tuesday and agreed on the budget for next year.\n"
    big = line * (50_000_000 // len(line))
    reasons = {}
    for name in FILTERS:
        out = process(name, [big, "A short document."])
        assert out.num_rows == 2
        reasons[name] = out["drop_reason"][0].as_py()
    # valid prose: C4's line rules keep it, but no chain lets a 9-million-word page through
    assert reasons["gopher_quality"] == "gopher_quality:max_doc_words"
    assert reasons["gopher_repetition"] is not None


def test_list_filters_take_degenerate_documents_without_error(tmp_path) -> None:
    """A word list or a URL block list has nothing to say about an empty text: those rows
    pass (the reader and the quality filters give them their reasons), without error."""
    words = tmp_path / "words.txt"
    words.write_text("badword\n")
    texts = [*EMPTYISH.values(), "big " * 2_000_000]
    for name, params in (
        ("c4_badwords", {"words_file": str(words)}),
        ("url_filter", {"use_integrated_lists": False, "banned_words": ["casino"]}),
    ):
        cls = registry()[name]
        stage = cls(cls.Params(**params))
        stage.setup()
        table = conform(
            pa.table(
                {
                    "id": [str(i) for i in range(len(texts))],
                    "text": texts,
                    "url": ["https://example.com/"] * len(texts),
                }
            )
        )
        assert stage.process(table)["drop_reason"].null_count == len(texts)


def test_symbol_lines_on_degenerate_documents() -> None:
    """Only the text made of symbol lines goes (left empty); white space alone, no text
    and replacement characters stay as they came; a 20 MB one-line text passes."""
    texts = [*EMPTYISH.values(), "- " * 10_000_000]
    out = process("symbol_lines", texts)
    reasons = dict(zip([*EMPTYISH, "big"], out["drop_reason"].to_pylist(), strict=True))
    assert reasons == {
        "empty": None,
        "whitespace": None,
        "no words": "symbol_lines:empty",
        "replacement characters": None,
        "big": "symbol_lines:empty",
    }
    assert out["text"].to_pylist() == texts  # a dropped text stays as it came
