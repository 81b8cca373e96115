"""line_stats and paragraph_stats against datatrove's LineStats and ParagraphStats: the
real samples, any text, every parameter, and a run over several batches."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.stage import registry
from tests.conftest import read_output, recipe_of, run_local
from tests.filters.parity import real_documents

#: each of our stages' datatrove class and how its parameters are called there
THEIRS = {
    "line_stats": (
        "LineStats",
        {
            "short_line_chars": "max_k_chars_per_line_tresholds",
            "long_line_chars": "min_k_chars_per_line_thresholds",
            "ignore_empty_lines": "ignore_empty_lines",
        },
    ),
    "paragraph_stats": (
        "ParagraphStats",
        {
            "short_paragraph_chars": "short_paragraph_max_chars_threshold",
            "long_paragraph_chars": "long_paragraph_max_chars_threshold",
        },
    ),
    "word_stats": (
        "WordStats",
        {
            "short_word_chars": "short_word_max_chars_threshold",
            "long_word_chars": "long_word_max_chars_threshold",
            "stop_words": "stop_words",
        },
    ),
    "sentence_stats": (
        "SentenceStats",
        {
            "short_sentence_chars": "short_sentence_max_chars_threshold",
            "long_sentence_chars": "long_sentence_max_chars_threshold",
        },
    ),
}


def ours(stage_name: str, texts: list[str | None], **params: Any) -> list[dict[str, Any]]:
    cls = registry()[stage_name]
    stage = cls(cls.Params(**params))
    stage.setup()
    # two chunks: the pieces' documents are counted across them
    half = len(texts) // 2
    ids = [str(i) for i in range(len(texts))]
    table = pa.concat_tables(
        [
            conform(pa.table({"id": ids[:half], "text": pa.array(texts[:half], pa.string())})),
            conform(pa.table({"id": ids[half:], "text": pa.array(texts[half:], pa.string())})),
        ]
    )
    out = stage.process(table)
    assert out["drop_reason"].null_count == len(texts)  # nothing dropped
    prefix = f"{stage_name}_"
    names = [n for n in out.column_names if n.startswith(prefix)]
    columns = {n[len(prefix) :]: out[n].to_pylist() for n in names}
    return [{n: values[i] for n, values in columns.items()} for i in range(len(texts))]


def theirs(stage_name: str, texts: list[str], **params: Any) -> list[dict[str, Any]]:
    from datatrove.data import Document
    from datatrove.pipeline import stats

    cls_name, names = THEIRS[stage_name]
    reference = getattr(stats, cls_name)(
        output_folder="/nonexistent", **{names[k]: v for k, v in params.items()}
    )
    return [reference.extract_stats(Document(text=t, id=str(i))) for i, t in enumerate(texts)]


SETTINGS = [
    ("line_stats", {}),
    ("line_stats", {"ignore_empty_lines": True, "short_line_chars": [5, 80]}),
    ("line_stats", {"long_line_chars": [100, 300, 1000]}),
    ("paragraph_stats", {}),
    ("paragraph_stats", {"short_paragraph_chars": [20, 200], "long_paragraph_chars": [400]}),
    ("word_stats", {}),
    ("word_stats", {"short_word_chars": [1, 4], "long_word_chars": [5, 12], "stop_words": ["The"]}),
    ("sentence_stats", {}),
    ("sentence_stats", {"short_sentence_chars": [40], "long_sentence_chars": [10, 200]}),
]


@pytest.mark.parametrize("sample", ["c4", "pile"])
@pytest.mark.parametrize(("stage_name", "params"), SETTINGS)
def test_same_statistics_as_datatrove(sample: str, stage_name: str, params: dict) -> None:
    texts = real_documents()[sample]
    mine, reference = ours(stage_name, texts, **params), theirs(stage_name, texts, **params)
    assert set(mine[0]) == set(reference[0])  # the same statistics, named as datatrove's
    assert [i for i, (a, b) in enumerate(zip(mine, reference, strict=True)) if a != b] == []


@pytest.mark.parametrize(("stage_name", "params"), SETTINGS)
def test_the_samples_exercise_every_statistic(stage_name: str, params: dict) -> None:
    documents = real_documents()
    mine = ours(stage_name, documents["c4"] + documents["pile"], **params)
    varying = {k for k in mine[0] if len({row[k] for row in mine}) > 1}
    # no line of the samples has 10,000 characters (the third setting's limits are met)
    assert varying == set(mine[0]) - {"long_line_ratio_chars_10000"}


# pieces that hit each rule: line and paragraph breaks, white space of every kind (the
# separators of str.isspace that Unicode does not call white space: \x1c to \x1f),
# bullets, terminal marks, repeats
PIECES = ["\n", "\n\n", "a", "bb", "é", "漢", " ", "\t", "\r", "\x1c", "\u2003", "\u3000"]
PIECES += ["-", "*", "•", ".", "!", '"', "'", "?", "x" * 12, "y" * 40]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(PIECES), max_size=25).map("".join), min_size=1, max_size=6),
    st.sampled_from(SETTINGS),
)
def test_any_text_as_datatrove(texts: list[str], setting: tuple[str, dict]) -> None:
    stage_name, params = setting
    assert ours(stage_name, texts, **params) == theirs(stage_name, texts, **params)


def test_missing_text_and_repeated_limits() -> None:
    rows = ours("line_stats", [None, ""], short_line_chars=[10, 10], ignore_empty_lines=True)
    assert rows[0] == rows[1]
    assert rows[0]["n_lines"] == 1 and rows[0]["avg_line_length"] == 0.0
    assert [k for k in rows[0] if k.startswith("short")] == ["short_line_ratio_chars_10"]
    # datatrove takes an empty list of paragraph limits for its default
    row = ours("paragraph_stats", ["a"], short_paragraph_chars=[])[0]
    assert "short_paragraph_ratio_100" in row


def test_a_run_adds_the_columns(c4_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    recipe = recipe_of(
        "input: {batch_rows: 300}\nstages:\n  - line_stats: {}\n  - paragraph_stats: {}\n"
        "  - word_stats: {}\n  - sentence_stats: {}\n",
        c4_path,
    )
    stats = run_local(recipe, tmp_path / "out")
    assert stats["rows"]["read"] == stats["rows"]["kept"] == 1000
    kept = read_output(tmp_path / "out", "kept")
    texts = kept["text"].to_pylist()
    assert kept["line_stats_n_lines"].to_pylist() == [len(t.split("\n")) for t in texts]
    paragraphs = [len([p for p in t.split("\n\n") if p.strip()]) for t in texts]
    assert kept["paragraph_stats_n_paragraphs"].to_pylist() == paragraphs
    # the batches' statistics are each document's own
    alone = ours("word_stats", texts[:5]) + ours("sentence_stats", texts[:5])
    for i, row in enumerate(alone):
        stage = "word_stats" if i < 5 else "sentence_stats"
        for name, value in row.items():
            assert kept[f"{stage}_{name}"][i % 5].as_py() == value
