"""The shipped recipes run end to end on real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.recipe import load_recipe
from tests.conftest import read_output, run_local

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


@pytest.mark.slow
def test_fineweb_from_warc(warc_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(PIPELINES / "fineweb.yaml").with_input(paths=[str(warc_dir)])
    stats = run_local(recipe, tmp_path / "out")
    names = [s["name"] for s in stats["stages"]]
    assert names == [
        "read",
        "url_filter",
        "language",
        "gopher_repetition",
        "gopher_quality",
        "c4_quality",
        "fineweb_quality",
        "exact_dedup",
        "minhash_dedup",
    ]
    assert stats["rows"]["read"] == 37
    kept = read_output(tmp_path / "out", "kept")
    assert 10 <= kept.num_rows < 37
    assert set(kept["lang"].to_pylist()) == {"en"}
    assert {
        "gopher_word_count",
        "fineweb_list_ratio",
        "exact_dedup_cluster_size",
        "minhash_cluster_size",
        "duplicate_of",
    } <= set(kept.column_names)
    dropped = read_output(tmp_path / "out", "dropped")
    assert dropped.num_rows == 37 - kept.num_rows
    assert dropped["drop_reason"].null_count == 0
