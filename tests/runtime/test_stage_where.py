"""A recipe stage limited to some rows: `where:` beside the stage's name. The stage sees
the rows the condition holds for; the others pass it as they came, in their places."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.cli import main
from curation.recipe import RecipeError, parse_recipe
from curation.runtime.ledger import StageStats
from curation.runtime.shard import _process_where, _stage_columns_replace_input_ones
from tests.conftest import EXECUTORS, read_output, recipe_of, run_local

PILE = "input: {text_field: contents}\nstages:\n  - language: {threshold: 0.3}\n"


def stats_of(run: Path) -> dict:
    return json.loads((run / "stats.json").read_text())


@pytest.mark.parametrize("executor", ["local", "ray1"])
def test_a_filter_for_one_language_drops_only_among_its_rows(
    pile_path: Path, tmp_path: Path, executor: str
) -> None:
    """gopher_quality where lang = 'en' on the Pile sample: of the rows language keeps,
    the English ones are kept or dropped as gopher_quality alone decides them (with the
    same scores), every other row is kept with null scores, all in their order; the
    ledger counts the rows the stage saw."""
    run_local(recipe_of(PILE, pile_path), tmp_path / "language")
    run_local(recipe_of(PILE + "  - gopher_quality: {}\n", pile_path), tmp_path / "all")
    limited = PILE + "  - gopher_quality: {}\n    where: \"lang = 'en'\"\n"
    run_local(recipe_of(limited, pile_path), tmp_path / "where", **EXECUTORS[executor])

    languages = read_output(tmp_path / "language", "kept")
    english = set(pc.filter(languages["id"], pc.equal(languages["lang"], "en")).to_pylist())
    assert 0 < len(english) < languages.num_rows
    everywhere = read_output(tmp_path / "all", "dropped")
    gopher_dropped = {
        i
        for i, r in zip(
            everywhere["id"].to_pylist(), everywhere["drop_reason"].to_pylist(), strict=True
        )
        if r.startswith("gopher_quality:")
    }
    expected = [i for i in languages["id"].to_pylist() if i not in gopher_dropped & english]
    kept = read_output(tmp_path / "where", "kept")
    assert kept["id"].to_pylist() == expected
    assert gopher_dropped - english  # the stage alone would have dropped other rows too

    scored = read_output(tmp_path / "all", "kept")
    score = dict(
        zip(scored["id"].to_pylist(), scored["gopher_word_count"].to_pylist(), strict=True)
    )
    for id_, lang, words in zip(
        kept["id"].to_pylist(),
        kept["lang"].to_pylist(),
        kept["gopher_word_count"].to_pylist(),
        strict=True,
    ):
        assert words == (score[id_] if lang == "en" else None), id_

    stages = {s["name"]: s for s in stats_of(tmp_path / "where")["stages"]}
    gopher = stages["gopher_quality"]
    assert gopher["where"] == "lang = 'en'" and gopher["rows_where"] == len(english)
    assert gopher["rows_in"] == languages.num_rows
    assert gopher["rows_in"] == gopher["rows_kept"] + gopher["rows_dropped"]
    assert "where" not in stages["language"]
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "where")]).output
    assert re.search(rf"where lang = 'en' +{len(english):,}  \(seen\)", shown), shown
    page = tmp_path / "report.html"
    made = CliRunner().invoke(main, ["report", str(tmp_path / "where"), "-o", str(page)])
    assert made.exit_code == 0, made.output
    assert f"where lang = &#x27;en&#x27;</td><td>{len(english):,} seen" in page.read_text()


def test_a_rewrite_changes_only_the_rows_it_sees_and_a_resume_reuses_them(
    tmp_path: Path,
) -> None:
    """pii where source = 'forum': the forum's e-mail addresses are replaced, the others'
    stay as they were; the run's recipe.yaml keeps the where, and running again reuses
    every shard."""
    docs = tmp_path / "docs.jsonl"
    rows = [
        {"id": f"d{i}", "text": f"write to person{i}@example.com now", "source": s}
        for i, s in enumerate(["forum", "news", "forum", None, "news", "forum"])
    ]
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = "stages:\n  - pii: {}\n    where: \"source = 'forum'\"\n"
    out = tmp_path / "run"
    run_local(recipe_of(recipe, docs), out)
    kept = read_output(out, "kept")
    assert kept["id"].to_pylist() == [r["id"] for r in rows]
    for row, text in zip(rows, kept["text"].to_pylist(), strict=True):
        assert (f"person{row['id'][1:]}@" in text) == (row["source"] != "forum"), text
    saved = (out / "recipe.yaml").read_text()
    assert "where: source = 'forum'" in saved
    again = run_local(recipe_of(recipe, docs), out)
    assert again["shards"]["resumed"] == again["shards"]["total"] == 1


def test_a_field_some_batches_lack_reads_as_null(tmp_path: Path) -> None:
    """A where over a JSON field that the documents of one file lack: that file's rows
    pass the stage unseen; the other file's are filtered."""
    (tmp_path / "a.jsonl").write_text(
        "".join(json.dumps({"text": "x" * n, "kind": "short"}) + "\n" for n in (5, 50, 500))
    )
    (tmp_path / "b.jsonl").write_text(
        "".join(json.dumps({"text": "y" * n}) + "\n" for n in (5, 50, 500))
    )
    recipe = "stages:\n  - length_filter: {min_chars: 100}\n    where: \"kind = 'short'\"\n"
    out = tmp_path / "run"
    run_local(recipe_of(recipe, tmp_path), out)
    kept = read_output(out, "kept")
    assert sorted(len(t) for t in kept["text"].to_pylist()) == [5, 50, 500, 500]
    stage = stats_of(out)["stages"][1]
    assert stage["rows_where"] == 3 and stage["dropped_by_reason"] == {"length_filter:too_short": 2}


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 400)), max_size=40),
    st.booleans(),
)
def test_the_rows_come_back_in_their_places(rows: list[tuple[int, int]], measured: bool) -> None:
    """Any batch, any rows chosen: the stage's output for the chosen rows is what it
    gives for them alone, the others are the rows as they came (null in its column, or
    their own value where the input had the column already: a run over a run), and
    every row is in its place."""
    recipe = parse_recipe(
        "stages:\n  - length_filter: {min_chars: 100}\n    where: 'n >= 2'\n", "r.yaml"
    )
    stage = recipe.stages[0].build()
    columns = {
        "id": [f"d{i}" for i in range(len(rows))],
        "text": ["z" * length for _, length in rows],
        "n": pa.array([n for n, _ in rows], pa.int64()),
    }
    if measured:  # the column the stage writes, as an earlier run wrote it
        columns["length_chars"] = pa.array([-1] * len(rows), pa.int64())
    table = conform(pa.table(columns))
    stats = StageStats("length_filter")
    out = _stage_columns_replace_input_ones(stage, _process_where(stage, table, stats), stats)
    chosen = [i for i, (n, _) in enumerate(rows) if n >= 2]
    alone = stage.process(table.take(chosen)) if chosen else None
    if alone is not None:
        alone = _stage_columns_replace_input_ones(stage, alone, StageStats("x"))
    assert out["id"].to_pylist() == table["id"].to_pylist()
    assert stats.rows_where == len(chosen)
    at = {i: k for k, i in enumerate(chosen)}
    for i in range(len(rows)):
        got = out.slice(i, 1).to_pylist()[0]
        if i in at:
            assert alone is not None
            assert got == alone.slice(at[i], 1).to_pylist()[0]
        else:
            before = table.slice(i, 1).to_pylist()[0]
            assert got == {**before, "length_chars": -1 if measured else None}


@pytest.mark.parametrize(
    ("entry", "message", "line"),
    [
        ("  - exact_dedup: {}\n    where: \"lang = 'en'\"\n", "decides over the whole dataset", 4),
        ("  - sample: {rate: 0.5}\n    where: 'lang ='\n", "stage sample: where 'lang ='", 4),
        ("  - sample: {rate: 0.5}\n    where: 3\n", "'where' is a SQL condition", 4),
        ("  - sample: {rate: 0.5}\n    wher: 'x = 1'\n", "(unknown key 'wher')", 3),
        (
            "  - sample: {rate: 0.5}\n    where: 'x = 1'\n    also: 1\n",
            "each stage is a one-key mapping",
            3,
        ),
    ],
)
def test_recipe_refuses_a_where_it_cannot_use(entry: str, message: str, line: int) -> None:
    """Each refusal names the recipe's line: the where's own, or the stage entry's."""
    with pytest.raises(RecipeError) as caught:
        parse_recipe("stages:\n  - language: {}\n" + entry, "r.yaml")
    assert message in str(caught.value) and f"r.yaml line {line}:" in str(caught.value)


def test_a_recipe_without_where_resolves_as_before() -> None:
    """No `where` key in a stage's resolved entry unless given, so a run begun before
    `where` existed keeps its fingerprint."""
    plain = parse_recipe("stages:\n  - sample: {rate: 0.5}\n", "r.yaml")
    assert plain.resolved()["stages"] == [{"sample": {"rate": 0.5, "seed": 0}}]
    limited = parse_recipe("stages:\n  - sample: {rate: 0.5}\n    where: 'n > 1'\n", "r.yaml")
    assert limited.resolved()["stages"] == [{"sample": {"rate": 0.5, "seed": 0}, "where": "n > 1"}]


def test_one_stage_twice_by_language_measures_every_row_once(
    pile_path: Path, tmp_path: Path
) -> None:
    """The README's recipe: gopher_quality on the English rows, and again with other
    settings on the others. Every row language keeps is seen by one of them, whose
    values it holds; the run says nothing of input columns replaced (the second stage
    writes anew what the first wrote, not what the input held)."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        PILE
        + "  - gopher_quality: {}\n    where: \"lang = 'en'\"\n"
        + "  - gopher_quality: {min_stop_words: 0}\n    where: \"lang <> 'en'\"\n"
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(recipe),
            "--input",
            str(pile_path),
            "--output",
            str(out),
            "--executor",
            "local",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "input already had columns" not in result.output
    stages = stats_of(out)["stages"]
    # the second sees every row the first did not (language kept: each has a language)
    assert stages[3]["rows_where"] == stages[2]["rows_in"] - stages[2]["rows_where"] > 0
    kept = read_output(out, "kept")
    assert kept.num_rows and kept["gopher_stop_words"].null_count == 0
    assert set(kept["lang"].to_pylist()) > {"en"}
