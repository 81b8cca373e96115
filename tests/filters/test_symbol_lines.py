"""symbol_lines against datatrove's SymbolLinesFormatter: real documents and any lines."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.symbol_lines import SymbolLines, SymbolLinesParams
from tests.conftest import read_output, recipe_of, run_local
from tests.filters.parity import real_documents


def ours(texts: list[str], **params: object) -> list[dict]:
    stage = SymbolLines(SymbolLinesParams(**params))
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    return stage.process(table).to_pylist()


def theirs(texts: list[str], replace_char: str = "") -> list[str]:
    from datatrove.pipeline.formatters import SymbolLinesFormatter

    formatter = SymbolLinesFormatter(replace_char=replace_char)
    return [formatter.format(t) for t in texts]


def expected(text: str, formatted: str, drop_empty: bool = True) -> tuple[str, bool]:
    """What we keep of ``text``, given datatrove's ``formatted``: the text as it came when
    no line went (datatrove rewrites its line breaks), else datatrove's; and whether it
    is dropped (nothing left)."""
    lines = text.splitlines()
    if formatted == "\n".join(lines):  # no line went
        return text, False
    return formatted, drop_empty and formatted == ""


@pytest.mark.parametrize("replace_char", ["", "\n"])
def test_real_documents_as_datatrove(replace_char: str) -> None:
    """The C4 and Pile samples, with lines of symbols (``***``, ``----``, ``>>> <<<``,
    ``| |``) put between some of their lines."""
    texts = [t for sample in real_documents().values() for t in sample]
    planted, touched = [], 0
    for i, text in enumerate(texts):
        lines = text.split("\n")
        if i % 3 == 0 and len(lines) > 2:
            filler = ["***", "----", ">>> <<<", "| | |", "。。。"][i % 5]
            lines[1:1] = [filler, filler + " " + filler]
            touched += 1
        planted.append("\n".join(lines))
    rows = ours(planted, replace_char=replace_char)
    formatted = theirs(planted, replace_char)
    for text, row, want in zip(planted, rows, formatted, strict=True):
        text_kept, dropped = expected(text, want)
        assert row["text"] == (text if dropped else text_kept)
        assert (row["drop_reason"] is not None) == dropped
    assert sum(r["symbol_lines_removed"] > 0 for r in rows) >= touched > 300


# datatrove's symbols (and the space), then characters that are not: a line of the first
# alone goes, unless it is white space alone (the space, the unit separator \x1f)
SYMBOLS = ["*", "-", "|", " ", "。", "►", "‼", "\x1f", "\x01", "."]
SYMBOLS_AND_TEXT = [*SYMBOLS, "\t", "a", "é", "\r"]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.lists(
            st.lists(st.sampled_from(SYMBOLS_AND_TEXT), max_size=6).map("".join), max_size=6
        ).map("\n".join),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["", "\n", "<removed>"]),
    st.booleans(),
)
def test_any_lines_as_datatrove(texts: list[str], replace_char: str, drop_empty: bool) -> None:
    rows = ours(texts, replace_char=replace_char, drop_empty=drop_empty)
    for text, row, want in zip(texts, rows, theirs(texts, replace_char), strict=True):
        text_kept, dropped = expected(text, want, drop_empty)
        assert (row["drop_reason"] is not None) == dropped
        assert row["text"] == (text if dropped else text_kept)
        gone = sum(
            1 for line in text.splitlines() if line.strip() and all(c in SYMBOLS for c in line)
        )
        assert row["symbol_lines_removed"] == gone


def test_a_run_accounts_for_every_document(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"id": "a", "text": "Title\n* * *\nBody text."},
        {"id": "b", "text": "----\n===="},
        {"id": "c", "text": "Nothing to remove.\r\n"},
    ]
    import json

    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats = run_local(recipe_of("stages:\n  - symbol_lines: {}\n", path), tmp_path / "out")
    kept = {r["id"]: r for r in read_output(tmp_path / "out", "kept").to_pylist()}
    assert kept["a"]["text"] == "Title\nBody text." and kept["a"]["symbol_lines_removed"] == 1
    assert kept["c"]["text"] == "Nothing to remove.\r\n"  # left as it came
    (dropped,) = read_output(tmp_path / "out", "dropped").to_pylist()
    assert dropped["id"] == "b" and dropped["drop_reason"] == "symbol_lines:empty"
    assert dropped["text"] == "----\n===="  # as it came
    stage = next(s for s in stats["stages"] if s["name"] == "symbol_lines")
    assert stage["rows_in"] == 3 == stage["rows_kept"] + stage["rows_dropped"]
