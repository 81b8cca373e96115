"""sql_filter: row-wise SQL conditions over a document's columns."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.sql import SqlFilter, SqlFilterParams
from curation.recipe import RecipeError, load_recipe, parse_recipe
from tests.conftest import read_output, run_local


def c4_rows(c4_path: Path) -> list[dict]:
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        return [{"id": str(i), **json.loads(line)} for i, line in enumerate(handle)]


def table_of(rows: list[dict]) -> pa.Table:
    return conform(pa.Table.from_pylist(rows))


def reasons(table: pa.Table, **params: object) -> list[str | None]:
    stage = SqlFilter(SqlFilterParams(**params))  # type: ignore[arg-type]
    stage.setup()
    return stage.process(table)["drop_reason"].to_pylist()


def test_keep_and_drop_decide_as_python_on_real_documents(c4_path: Path) -> None:
    rows = c4_rows(c4_path)
    table = table_of(rows)
    keep = reasons(table, keep="length(text) > 2000 AND url LIKE '%.com/%'")
    expected = [len(r["text"]) > 2000 and ".com/" in r["url"] for r in rows]
    assert [reason is None for reason in keep] == expected
    assert {r for r in keep if r} == {"sql_filter:condition"}
    assert 0 < sum(expected) < len(rows)
    drop = reasons(table, drop="lower(text) LIKE '%cookie%'", rule="cookies")
    expected = ["cookie" in r["text"].lower() for r in rows]
    assert [reason == "sql_filter:cookies" for reason in drop] == expected
    assert any(expected)


def test_null_drops_under_keep_and_keeps_under_drop() -> None:
    table = table_of([{"id": "a", "text": "x", "score": 0.9}, {"id": "b", "text": "y"}])
    assert reasons(table, keep="score > 0.5") == [None, "sql_filter:condition"]
    assert reasons(table, drop="score > 0.5") == ["sql_filter:condition", None]
    assert reasons(table, keep="true") == [None, None]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6))
def test_same_decisions_whatever_the_batches(cuts: list[int]) -> None:
    rows = [{"id": str(i), "text": "w " * (i % 17), "score": i % 5 or None} for i in range(60)]
    table = table_of(rows)
    condition = dict(keep="score >= 2 AND length(text) BETWEEN 4 AND 20 OR id IN ('3', '7')")
    whole = reasons(table, **condition)
    parts, start = [], 0
    for cut in [*cuts, len(rows)]:
        end = min(len(rows), start + cut)
        if end > start:
            parts += reasons(table.slice(start, end - start), **condition)
        start = end
    assert parts == whole


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("score > avg(score)", "looks at other rows (Agg)"),
        ("count(*) > 1", "looks at other rows (Len)"),
        ("row_number() OVER () > 3", "looks at other rows"),
        ("sum(score) OVER (PARTITION BY lang) > 2", "looks at other rows (Over)"),
        ("score > (SELECT 1)", "looks at other rows (SubPlan)"),
        ("score > ", "is not a SQL condition polars can read"),
    ],
)
def test_conditions_that_are_not_row_wise_are_refused_when_the_recipe_is_read(
    condition: str, problem: str
) -> None:
    recipe = f"stages:\n  - sql_filter: {{keep: {json.dumps(condition)}}}\n"
    with pytest.raises(RecipeError, match="sql_filter") as error:
        parse_recipe(recipe)
    assert problem in str(error.value)


def test_one_condition_and_a_plain_rule_name() -> None:
    with pytest.raises(ValueError, match="give either keep or drop"):
        SqlFilterParams(keep="true", drop="false")
    with pytest.raises(ValueError, match="give either keep or drop"):
        SqlFilterParams()
    with pytest.raises(ValueError, match="rule"):
        SqlFilterParams(keep="true", rule="Not A Name")


def test_a_missing_column_or_a_value_that_is_not_boolean_is_a_clear_error() -> None:
    table = table_of([{"id": "a", "text": "x"}])
    with pytest.raises(ValueError, match=r"names column\(s\) lang_score .* before sql_filter"):
        reasons(table, keep="lang_score > 0.5")
    # the integer type is polars' choice (UInt32 to polars 2.1, Int64 from 2.2)
    not_boolean = r"'length\(text\) \+ 1' gives U?Int\d+, not true or false"
    with pytest.raises(ValueError, match=not_boolean):
        reasons(table, keep="length(text) + 1")


def test_in_a_run_after_the_stage_that_measures(c4_path: Path, tmp_path: Path) -> None:
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        "stages:\n"
        "  - length_filter: {min_chars: 100}\n"
        "  - sql_filter: {drop: \"length_chars > 3000 OR url LIKE '%.org/%'\", rule: long_or_org}\n"
    )
    recipe = load_recipe(recipe_file).with_input(paths=[str(c4_path)])
    stats = run_local(recipe, tmp_path / "out")
    stage = stats["stages"][2]
    assert stage["name"] == "sql_filter"
    rows = c4_rows(c4_path)
    live = [r for r in rows if len(r["text"]) >= 100]
    expected = sum(len(r["text"]) > 3000 or ".org/" in r["url"] for r in live)
    assert stage["dropped_by_reason"] == {"sql_filter:long_or_org": expected}
    assert stage["rows_in"] == len(live) == stage["rows_kept"] + expected
    kept = read_output(tmp_path / "out", "kept")
    assert kept.num_rows == len(live) - expected
    assert max(kept["length_chars"].to_pylist()) <= 3000


@pytest.mark.parametrize(
    ("pattern", "dropped"),
    [(r"(?i)cookies?", 7), (r"\d{3}-\d{4}", 49), (r"(?m)^\s*$", 638), (r"\bjavascript\b", 0)],
)
def test_regexp_like_is_datatroves_regex_filter(pattern: str, dropped: int) -> None:
    """``drop: "regexp_like(text, PATTERN)"`` drops what datatrove's ``RegexFilter``
    drops (a search anywhere in the text), on the 2,000 documents of the real samples."""
    from datatrove.pipeline.filters import RegexFilter

    from tests.filters.parity import compare, real_documents

    texts = [t for sample in real_documents().values() for t in sample]
    quoted = pattern.replace("'", "''")
    parity = compare(
        RegexFilter(pattern), "sql_filter", texts, drop=f"regexp_like(text, '{quoted}')"
    )
    assert parity.disagreements() == []
    assert parity.ours.count(False) == dropped
