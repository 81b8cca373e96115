"""How a recipe is cut into passes: at global stages, and before a model's GPU work; a
stage's column in place of an input column of the same name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from curation.recipe import parse_recipe
from curation.runtime import shard as shard_module
from curation.runtime.shard import SegmentPlan, plan_segments
from tests.conftest import read_output, recipe_of, run_local

# models the recipe would build: the stages' checks of them wait, so no training here
MODELS = """\
models:
  m/prior: {train_lm: {input: $input}}
  m/conditional: {train_lm: {input: [t.jsonl], init: m/prior}}
"""
COLOR = "color_filter: {prior: m/prior, conditional: m/conditional, tau: 4}"


def passes(stages: str) -> list[tuple[list[str], str | None, bool, bool, float]]:
    """Each pass: its stage names, the stage it measures for, whether a barrier opens it,
    whether it writes the kept rows, and the GPUs its actors ask for."""
    recipe = parse_recipe(MODELS + "stages:\n" + stages)
    return [
        (
            [s.name for s in segment.stages],
            segment.measure.name if segment.measure else None,
            segment.opens_with_global(),
            segment.last,
            SegmentPlan(recipe, segment, Path("/unused")).gpus(),
        )
        for segment in plan_segments(recipe)
    ]


def test_map_stages_fuse_and_global_stages_cut() -> None:
    assert passes("  - length_filter: {}\n  - exact_dedup: {}\n  - sample: {rate: 0.5}\n") == [
        (["length_filter"], "exact_dedup", False, False, 0.0),
        (["exact_dedup", "sample"], None, True, True, 0.0),
    ]


def test_the_cpu_stages_before_a_model_get_a_pass_of_their_own() -> None:
    assert passes(
        "  - length_filter: {}\n  - sample: {rate: 0.5}\n"
        "  - lm_loss: {model: m/prior}\n  - pii: {}\n"
    ) == [
        (["length_filter", "sample"], None, False, False, 0.0),
        (["lm_loss", "pii"], None, False, True, 1.0),
    ]
    # the model first: nothing to cut (the first pass reads)
    assert passes("  - lm_loss: {model: m/prior}\n  - length_filter: {}\n") == [
        (["lm_loss", "length_filter"], None, False, True, 1.0),
    ]


def test_a_global_selector_measures_on_gpus_and_applies_on_cpus() -> None:
    assert passes(f"  - length_filter: {{}}\n  - {COLOR}\n  - sample: {{rate: 0.5}}\n") == [
        (["length_filter"], None, False, False, 0.0),
        ([], "color_filter", False, False, 1.0),
        (["color_filter", "sample"], None, True, True, 0.0),  # applies: no model
    ]
    assert passes(f"  - {COLOR}\n") == [
        ([], "color_filter", False, False, 1.0),
        (["color_filter"], None, True, True, 0.0),
    ]
    # after a barrier: the global stage's decisions and the CPU stages, then the model
    assert passes(
        "  - exact_dedup: {}\n  - length_filter: {}\n  - lm_loss: {model: m/prior}\n"
    ) == [
        ([], "exact_dedup", False, False, 0.0),
        (["exact_dedup", "length_filter"], None, True, False, 0.0),
        (["lm_loss"], None, False, True, 1.0),
    ]


RECURATE = """\
stages:
  - language: {languages: [en], threshold: 0.5}
  - gopher_quality: {}
  - exact_dedup: {}
  - minhash_dedup: {}
"""


def test_a_recipe_runs_again_over_its_own_output(c4_path: Path, tmp_path: Path) -> None:
    """The kept output of a run already holds the columns its stages write. A run of the
    same recipe over it measures them anew in their place (Arrow would hold both, and the
    barrier's polars and any Parquet reader refuse a file with a name twice): the same
    documents come out with the same values, and stats.json names what was replaced."""
    first = run_local(recipe_of(RECURATE, c4_path), tmp_path / "first")
    again = recipe_of(RECURATE, tmp_path / "first" / "kept", format="parquet")
    second = run_local(again, tmp_path / "second")
    before = read_output(tmp_path / "first", "kept")
    after = read_output(tmp_path / "second", "kept")
    assert before.num_rows > 500 and sorted(after.column_names) == sorted(before.column_names)
    assert after.select(before.column_names).to_pylist() == before.to_pylist()
    assert second["rows"]["kept"] == first["rows"]["kept"]
    replaced = {stage["name"]: stage["replaced_columns"] for stage in second["stages"]}
    assert replaced["language"] == ["lang", "lang_score"]
    assert "gopher_word_count" in replaced["gopher_quality"]
    assert replaced["minhash_dedup"] == ["minhash_cluster_id", "minhash_cluster_size"]
    assert all(not stage["replaced_columns"] for stage in first["stages"])
    # and again: the kept files' drop_reason (null on every row) is not read back as a
    # source_drop_reason, which the third run would have found beside a second one
    third = recipe_of(RECURATE, tmp_path / "second" / "kept", format="parquet")
    run_local(third, tmp_path / "third")
    assert read_output(tmp_path / "third", "kept").to_pylist() == after.to_pylist()


NOTHING_REACHES = """\
stages:
  - length_filter: {min_chars: 10000000}
  - exact_dedup: {}
  - minhash_dedup: {}
  - line_dedup: {}
  - threshold: {column: length_chars, top_fraction: 0.5}
"""


def test_global_stages_that_no_row_reaches(c4_path: Path, tmp_path: Path) -> None:
    """Every document dropped before the global stages, or an empty input: each barrier
    has nothing to decide and the run ends with its ledger. Before, the first barrier
    failed, its stage's key columns missing from the rows it had (none)."""
    stats = run_local(recipe_of(NOTHING_REACHES, c4_path), tmp_path / "dropped")
    assert (stats["rows"]["read"], stats["rows"]["kept"]) == (1000, 0)
    assert [s["rows_in"] for s in stats["stages"][2:]] == [0, 0, 0, 0]
    assert read_output(tmp_path / "dropped", "dropped").num_rows == 1000
    (tmp_path / "empty.jsonl").write_bytes(b"")
    stats = run_local(recipe_of(NOTHING_REACHES, tmp_path / "empty.jsonl"), tmp_path / "none")
    assert (stats["rows"]["read"], stats["rows"]["kept"], stats["rows"]["dropped"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("stage", "read"),
    [
        ("bff_dedup: {}", {"_bff_dedup_counts"}),  # not its n-gram hashes: 8 bytes a word
        ("exact_dedup: {}", set()),
        ("minhash_dedup: {jaccard_threshold: 0.5}", set()),  # not its shingle hashes
        ("line_dedup: {}", {"_line_dedup_hashes"}),
    ],
)
def test_the_pass_after_a_barrier_reads_only_the_keys_its_stage_applies(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str, read: set[str]
) -> None:
    seen: set[str] = set()
    previous = shard_module._previous_batches

    def spied(*args: object, **kwargs: object) -> Iterator[pa.Table]:
        for table in previous(*args, **kwargs):  # type: ignore[arg-type]
            seen.update(table.column_names)
            yield table

    monkeypatch.setattr(shard_module, "_previous_batches", spied)
    recipe = recipe_of(f"stages:\n  - {stage}\n  - length_filter: {{min_chars: 1}}\n", c4_path)
    stats = run_local(recipe, tmp_path / "out")
    assert stats["rows"]["read"] == 1000
    assert "text" in seen  # the pass after the barrier ran
    assert {c for c in seen if c.startswith("_")} == read
