"""Progress on stderr: each pass's shards and rates, and every barrier while it decides."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import recipe_of, run_local

RECIPE = "stages:\n  - length_filter: {min_chars: 300}\n  - exact_dedup: {}\n"


def test_passes_and_barriers_say_what_they_do(
    c4_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = run_local(recipe_of(RECIPE, c4_path), tmp_path / "out", progress=True)
    lines = capsys.readouterr().err.splitlines()
    kept_before = next(s for s in stats["stages"] if s["name"] == "length_filter")["rows_kept"]
    barrier = "progress: barrier before pass 2: exact_dedup"
    start = f"{barrier} deciding over {kept_before:,} rows of 1 shard"
    end = [i for i, line in enumerate(lines) if "exact_dedup decided over" in line]
    assert len(end) == 1 and lines[end[0]].endswith(" s")
    first = [i for i, line in enumerate(lines) if line.startswith("progress: pass 1/2 1/1 shards")]
    second = [i for i, line in enumerate(lines) if line.startswith("progress: pass 2/2 1/1 shards")]
    # the first pass ends, the barrier starts and ends, then the second pass runs
    assert first and second
    assert first[-1] < lines.index(start) < end[0] < second[0]


def test_a_long_barrier_says_how_far_it_has_gone(
    c4_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MinHash's barrier says each band as it buckets it, then the documents it ranks, the
    pairs it checks and the clusters, each on the barrier's line."""
    with gzip.open(c4_path, "rt", encoding="utf-8") as f:
        pages = [json.loads(line)["text"] for line in f][:50]
    data = tmp_path / "twice.jsonl"  # each page twice, the copy with a word more
    data.write_text("".join(json.dumps({"text": t}) + "\n" for p in pages for t in (p, p + " x")))
    recipe = (
        "stages:\n  - minhash_dedup: {num_bands: 3, rows_per_band: 4, jaccard_threshold: 0.5}\n"
    )
    stats = run_local(recipe_of(recipe, data), tmp_path / "out", progress=True)
    assert stats["rows"]["dropped"] >= 45  # the copies go
    doing = "progress: barrier before pass 2: minhash_dedup deciding over 100 rows of 1 shard"
    said = [line[len(doing) + 2 :] for line in capsys.readouterr().err.splitlines()
            if line.startswith(f"{doing}: ")]  # fmt: skip
    assert said == [
        "buckets of band 1 of 3",
        "buckets of band 2 of 3",
        "buckets of band 3 of 3",
        "ranking 100 documents that share a bucket",
        "the Jaccard similarity of 50 pairs",
        "clusters",
    ]


def test_quiet_runs_print_nothing(
    c4_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_local(recipe_of(RECIPE, c4_path), tmp_path / "out")
    assert capsys.readouterr().err == ""


def test_cutting_a_large_jsonl_file_says_so(
    c4_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gzip

    from curation.io import inputs

    monkeypatch.setattr(inputs, "_MIN_LINE_PIECE_BYTES", 100_000)
    path = tmp_path / "c4.jsonl"
    path.write_bytes(gzip.open(c4_path).read())
    stats = run_local(
        recipe_of("input: {batch_rows: 100}\n" + RECIPE, path), tmp_path / "out", progress=True
    )
    lines = capsys.readouterr().err.splitlines()
    mb = path.stat().st_size / 1e6
    start = lines.index(
        f"progress: counting the lines of 1 JSONL file ({mb:,.0f} MB) to cut it into pieces"
    )
    end = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("progress: counted the lines of 1 JSONL file in ")
    )
    first = next(i for i, line in enumerate(lines) if line.startswith("progress: pass 1/2"))
    assert start < end < first and stats["shards"]["total"] > 1
    pieces = stats["shards"]["total"]
    assert f"progress: pass 1/2 {pieces}/{pieces} shards (1 file)  " in "\n".join(lines)


def test_units_of_small_files_say_how_many_files(
    c4_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import gzip

    folder = tmp_path / "docs"
    folder.mkdir()
    lines = gzip.open(c4_path).read().splitlines(keepends=True)[:200]
    for i, line in enumerate(lines):
        (folder / f"{i:03d}.jsonl").write_bytes(line)
    stats = run_local(recipe_of(RECIPE, folder), tmp_path / "out", progress=True)
    units = stats["shards"]["total"]
    assert 1 < units < 200 and stats["shards"]["input_files"] == 200
    err = capsys.readouterr().err
    # the shards are units of files: the line says how many files they read
    assert f"progress: pass 1/2 {units}/{units} shards (200 files)  " in err
    assert f"progress: pass 2/2 {units}/{units} shards (200 files)  " in err
