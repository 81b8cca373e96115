"""doc_stats against datatrove's DocStats: the real samples, any text, and a run."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.doc_stats import METRICS, DocStats
from curation.stage import StageParams
from tests.conftest import read_output, recipe_of, run_local
from tests.filters.parity import real_documents

#: datatrove's name of each of our metrics
THEIR_NAMES = {"ellipsis_ratio": "elipsis_ratio"}


def ours(texts: list[str | None]) -> list[dict[str, float]]:
    stage = DocStats(StageParams())
    stage.setup()
    table = stage.process(
        conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    )
    assert table["drop_reason"].null_count == len(texts)  # nothing dropped
    columns = {m: table[f"doc_stats_{m}"].to_pylist() for m in METRICS}
    return [{m: columns[m][i] for m in METRICS} for i in range(len(texts))]


def theirs(texts: list[str]) -> list[dict[str, float]]:
    from datatrove.data import Document
    from datatrove.pipeline.stats import DocStats as TheirDocStats

    reference = TheirDocStats(output_folder="/nonexistent")  # extract_stats writes nothing
    out = []
    for i, text in enumerate(texts):
        stats = reference.extract_stats(Document(text=text, id=str(i)))
        out.append({m: stats[THEIR_NAMES.get(m, m)] for m in METRICS})
    return out


@pytest.mark.parametrize("sample", ["c4", "pile"])
def test_same_statistics_as_datatrove(sample: str) -> None:
    texts = real_documents()[sample]
    mine, reference = ours(texts), theirs(texts)
    differing = [i for i, (a, b) in enumerate(zip(mine, reference, strict=True)) if a != b]
    assert differing == []
    # the samples exercise every metric
    for metric in METRICS:
        assert sum(row[metric] > 0 for row in mine) > 100, metric
    assert sum(row["ellipsis_ratio"] > 0 for row in mine) > 20


# pieces that hit each rule: runs of dots, '…', digits of other scripts, cased letters of
# other scripts, datatrove's punctuation (ASCII, CJK, controls), spaces of every kind
PIECES = ["a", "Z", "é", "Σ", "ß", "7", "٣", "²", "½", ".", "..", "…", "!", "，", "%", "\x01"]
PIECES += [" ", "\n", "\t", "\u2028", "\u3000", "\x85", "漢", "😀", "Ⅻ", "ǅ", "_", "-"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=20).map("".join), max_size=8))
def test_any_text_as_datatrove(texts: list[str]) -> None:
    assert ours(texts) == theirs(texts)


def test_an_empty_or_missing_text_has_zero_ratios() -> None:
    rows = ours(["", None, "..."])
    assert rows[0] == rows[1] == {m: 0 for m in METRICS}
    assert rows[2]["ellipsis_ratio"] == rows[2]["punctuation_ratio"] == 1.0


def test_a_run_adds_the_columns_and_inspect_summarises_them(c4_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from curation.cli import main

    recipe = recipe_of("stages:\n  - doc_stats: {}\n", c4_path)
    stats = run_local(recipe, tmp_path / "out")
    assert stats["rows"]["read"] == stats["rows"]["kept"] == 1000
    kept = read_output(tmp_path / "out", "kept")
    assert kept["doc_stats_length"].to_pylist() == [len(t) for t in kept["text"].to_pylist()]
    assert kept.schema.field("doc_stats_length").type == pa.int64()
    assert kept.schema.field("doc_stats_digit_ratio").type == pa.float64()
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "out")])
    assert shown.exit_code == 0, shown.output
    assert "doc_stats_uppercase_ratio" in shown.output
