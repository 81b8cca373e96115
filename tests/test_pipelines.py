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


@pytest.mark.slow
def test_dclm_from_warc(warc_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from curation.scoring.classifier import train_classifier
    from tests.conftest import shared_file

    rows = [
        json.loads(line)
        for line in shared_file("quality/dclm-human-quality-majority.jsonl")
        .read_text()
        .splitlines()
    ]
    monkeypatch.chdir(tmp_path)  # the recipe names models/dclm-quality.bin
    train_classifier(
        [r["text"] for r in rows if r["label"] == 1],
        [r["text"] for r in rows if r["label"] == 0],
        Path("models/dclm-quality.bin"),
    )
    recipe = load_recipe(PIPELINES / "dclm.yaml").with_input(paths=[str(warc_dir)])
    stats = run_local(recipe, tmp_path / "out")
    names = [s["name"] for s in stats["stages"]]
    assert names[-3:] == ["minhash_dedup", "fasttext_classifier", "threshold"]
    assert stats["rows"]["read"] == 37
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    before = stats["stages"][-1]["rows_in"]
    assert 1 <= len(kept) < before
    # the kept documents are the best-scored ones and hold at least 10% of the characters
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    cut = [r for r in dropped if r["drop_reason"] == "threshold:below_cut"]
    assert min(r["quality_hq_prob"] for r in kept) >= max(r["quality_hq_prob"] for r in cut)
    chars = sum(len(r["text"]) for r in kept)
    assert chars >= 0.1 * (chars + sum(len(r["text"]) for r in cut))
