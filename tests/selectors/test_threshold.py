"""threshold: absolute bounds, and the global top fraction of documents or characters,
exact against a reference over the whole corpus and the same on every executor."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import on_every_executor, read_output, recipe_of, run_local


def scored_corpus(c4_path: Path, folder: Path) -> list[dict]:
    """The C4 sample in four Parquet shards with a score: a fixed mix of the text's own
    measures, with ties (every 7th score repeats the previous one) and three nulls."""
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    docs = []
    for i, row in enumerate(rows):
        text = row["text"]
        score = (len(set(text.split())) * 7919 % 1000) / 10 + text.count(".") / 100
        if i % 7 == 0 and docs:
            score = docs[-1]["score"]
        docs.append(
            {"id": f"c4-{i:04d}", "text": text, "score": None if i in (3, 500, 998) else score}
        )
    folder.mkdir()
    for shard in range(4):
        pq.write_table(pa.Table.from_pylist(docs[shard::4]), folder / f"part-{shard}.parquet")
    return docs


def reference_top(docs: list[dict], fraction: float, by: str) -> set[str]:
    weight = (lambda d: len(d["text"])) if by == "chars" else (lambda d: 1)
    total = sum(weight(d) for d in docs)
    target = fraction * total if by == "chars" else math.ceil(fraction * total)
    ranked = sorted(
        (d for d in docs if d["score"] is not None), key=lambda d: (-d["score"], d["id"])
    )
    kept, through = set(), 0
    for doc in ranked:
        if through >= target:
            break
        kept.add(doc["id"])
        through += weight(doc)
    return kept


@pytest.mark.parametrize(("fraction", "by"), [(0.1, "chars"), (0.1, "count"), (0.37, "chars")])
def test_top_fraction_is_exact(c4_path: Path, tmp_path: Path, fraction: float, by: str) -> None:
    docs = scored_corpus(c4_path, tmp_path / "in")
    recipe = f"stages:\n  - threshold: {{column: score, top_fraction: {fraction}, by: {by}}}\n"
    stats = run_local(recipe_of(recipe, tmp_path / "in"), tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    assert {r["id"] for r in kept} == reference_top(docs, fraction, by)
    chars = sum(len(r["text"]) for r in kept)
    total = sum(len(d["text"]) for d in docs)
    if by == "chars":  # the shortest prefix that reaches the fraction
        last = max(kept, key=lambda r: r["threshold_rank"])
        assert chars >= fraction * total > chars - len(last["text"])
    stage = stats["stages"][1]
    assert stage["dropped_by_reason"]["threshold:no_score"] == 3
    assert stage["rows_kept"] == len(kept)
    ranks = sorted(r["threshold_rank"] for r in kept)
    assert ranks == list(range(1, len(kept) + 1))


def test_lower_is_better_and_absolute_bounds(c4_path: Path, tmp_path: Path) -> None:
    docs = scored_corpus(c4_path, tmp_path / "in")
    recipe = "stages:\n  - threshold: {column: score, top_fraction: 0.2, higher_is_better: false}\n"
    run_local(recipe_of(recipe, tmp_path / "in"), tmp_path / "low")
    negated = [{**d, "score": None if d["score"] is None else -d["score"]} for d in docs]
    kept = {r["id"] for r in read_output(tmp_path / "low", "kept").to_pylist()}
    assert kept == reference_top(negated, 0.2, "count")

    recipe = "stages:\n  - threshold: {column: score, min: 20, max: 80}\n"
    stats = run_local(recipe_of(recipe, tmp_path / "in"), tmp_path / "abs")
    kept = {r["id"] for r in read_output(tmp_path / "abs", "kept").to_pylist()}
    assert kept == {d["id"] for d in docs if d["score"] is not None and 20 <= d["score"] <= 80}
    reasons = stats["stages"][1]["dropped_by_reason"]
    assert set(reasons) == {"threshold:below_min", "threshold:above_max", "threshold:no_score"}


def test_one_mode_at_a_time(tmp_path: Path) -> None:
    from curation.recipe import RecipeError

    with pytest.raises(RecipeError, match="either min and/or max, or top_fraction"):
        recipe_of("stages:\n  - threshold: {column: s, min: 1, top_fraction: 0.1}\n", tmp_path)


@pytest.mark.ray
@pytest.mark.slow
def test_top_chars_agree_on_one_and_two_ray_workers(c4_path: Path, tmp_path: Path) -> None:
    docs = scored_corpus(c4_path, tmp_path / "in")
    recipe = "stages:\n  - threshold: {column: score, top_fraction: 0.1, by: chars}\n"
    outputs = on_every_executor(recipe_of(recipe, tmp_path / "in"), tmp_path)
    assert outputs["local"] == outputs["ray1"] == outputs["ray2"]
    assert {r["id"] for r in outputs["ray2"][0]} == reference_top(docs, 0.1, "chars")


@pytest.mark.parametrize(("fraction", "by"), [(0.1, "count"), (0.25, "chars")])
def test_a_top_fraction_per_group_is_exact_in_each(
    c4_path: Path, tmp_path: Path, fraction: float, by: str
) -> None:
    """per: site: the top fraction of each site's documents (or characters), the rows of
    a null site one group more, each exact against the reference over that group alone;
    ranks count within the group. A plentiful group with high scores no longer takes the
    share of a scarce one."""
    docs = scored_corpus(c4_path, tmp_path / "plain")
    sites = ["big"] * 6 + ["small", None]  # 3 of 4 rows big, 1 in 8 small, 1 in 8 null
    for i, doc in enumerate(docs):
        doc["site"] = sites[i % len(sites)]
        if doc["site"] == "big" and doc["score"] is not None:
            doc["score"] += 1000  # every big score above every other
    folder = tmp_path / "in"
    folder.mkdir()
    for shard in range(4):
        pq.write_table(pa.Table.from_pylist(docs[shard::4]), folder / f"part-{shard}.parquet")
    recipe = (
        f"stages:\n  - threshold: {{column: score, top_fraction: {fraction}, by: {by}, "
        "per: site}\n"
    )
    run_local(recipe_of(recipe, folder), tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    expected = set()
    for site in ("big", "small", None):
        expected |= reference_top([d for d in docs if d["site"] == site], fraction, by)
    assert {r["id"] for r in kept} == expected
    for site in ("big", "small", None):
        ranks = sorted(r["threshold_rank"] for r in kept if r["site"] == site)
        assert ranks == list(range(1, len(ranks) + 1)) and ranks, site
    # without per, the big site takes (nearly) the whole top fraction
    run_local(recipe_of(recipe.replace(", per: site", ""), folder), tmp_path / "flat")
    flat = read_output(tmp_path / "flat", "kept").to_pylist()
    assert all(r["site"] == "big" for r in flat)
    assert {r["site"] for r in kept} == {"big", "small", None}


def test_per_needs_a_top_fraction_and_a_column(c4_path: Path, tmp_path: Path) -> None:
    from curation.recipe import RecipeError
    from curation.runtime.executors import ShardFailed

    with pytest.raises(RecipeError, match="per cuts a top_fraction in each group"):
        recipe_of("stages:\n  - threshold: {column: s, min: 1, per: lang}\n", tmp_path)
    scored_corpus(c4_path, tmp_path / "in")
    recipe = "stages:\n  - threshold: {column: score, top_fraction: 0.1, per: lang}\n"
    with pytest.raises(ShardFailed, match="per: no column 'lang'"):
        run_local(recipe_of(recipe, tmp_path / "in"), tmp_path / "out")


def test_a_threshold_without_per_keeps_the_fingerprint_of_runs_made_before_it(
    c4_path: Path,
) -> None:
    """The run's hashed recipe holds `per` only where given: a threshold stage's entry
    is then what engines before `per` hashed, so their runs resume rather than being
    taken for runs of another recipe."""
    from curation.io.inputs import resolve_inputs
    from curation.runtime.run import _fingerprint
    from curation.runtime.shard import plan_segments

    entries = {}
    for extra in ("", ", per: site"):
        recipe = recipe_of(
            f"stages:\n  - threshold: {{column: score, top_fraction: 0.1{extra}}}\n", c4_path
        )
        shards = resolve_inputs(recipe.input.paths, recipe.input.format)
        entries[extra] = _fingerprint(recipe, shards, plan_segments(recipe))["recipe"]["stages"]
    assert entries[""] == [
        {
            "threshold": {
                "column": "score",
                "min": None,
                "max": None,
                "top_fraction": 0.1,
                "by": "count",
                "higher_is_better": True,
            }
        }
    ]
    assert entries[", per: site"][0]["threshold"]["per"] == "site"
