"""Writers: JSONL output (plain, gzip, zstd) holds the same rows as Parquet output;
parts respect shard_rows; no temporary file survives a finished run."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard

from tests.conftest import read_output, recipe_of, run_local

RECIPE = (
    "stages:\n  - length_filter: {{min_chars: 500}}\n"
    "output: {{format: {fmt}, compression: {c}, shard_rows: 300}}\n"
)


def jsonl_rows(folder: Path) -> list[dict]:
    rows = []
    for part in sorted(folder.iterdir()):
        data = part.read_bytes()
        if part.name.endswith(".zst"):
            data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
        elif part.name.endswith(".gz"):
            data = gzip.decompress(data)
        rows.extend(json.loads(line) for line in data.splitlines())
    return rows


@pytest.mark.parametrize(
    "compression, suffix",
    [
        ("zstd", ".jsonl.zst"),
        ("gzip", ".jsonl.gz"),
        ("none", ".jsonl"),
    ],
)
def test_jsonl_output_matches_parquet(
    c4_path: Path, tmp_path: Path, compression: str, suffix: str
) -> None:
    run_local(recipe_of(RECIPE.format(fmt="parquet", c="zstd"), c4_path), tmp_path / "pq")
    stats = run_local(
        recipe_of(RECIPE.format(fmt="jsonl", c=compression), c4_path), tmp_path / "js"
    )
    kept_files = sorted((tmp_path / "js" / "kept").iterdir())
    assert all(f.name.endswith(suffix) for f in kept_files)
    expected = read_output(tmp_path / "pq", "kept").to_pylist()
    got = jsonl_rows(tmp_path / "js" / "kept")
    assert got == expected
    assert len(jsonl_rows(tmp_path / "js" / "dropped")) == stats["rows"]["dropped"]
    assert len(kept_files) == -(-len(expected) // 300)


def test_parts_split_at_shard_rows_and_no_temporaries(c4_path: Path, tmp_path: Path) -> None:
    recipe = recipe_of("input: {batch_rows: 77}\nstages: []\noutput: {shard_rows: 250}\n", c4_path)
    run_local(recipe, tmp_path / "out")
    sizes = [
        pq.ParquetFile(f).metadata.num_rows for f in sorted((tmp_path / "out" / "kept").iterdir())
    ]
    assert sizes == [250, 250, 250, 250]
    leftovers = [p for p in (tmp_path / "out").rglob(".tmp-*")]
    assert leftovers == []


def test_row_groups_gather_small_batches_up_to_row_group_bytes(
    c4_path: Path, tmp_path: Path
) -> None:
    # A strict filter keeps a few rows of every 50-row batch: by default they are written
    # together (one row group per part), and with a small row_group_bytes in groups that
    # reach it. The rows and their order are the same either way.
    stages = "stages:\n  - length_filter: {min_chars: 3000}\n"
    base = "input: {batch_rows: 50}\n" + stages
    run_local(recipe_of(base, c4_path), tmp_path / "big")
    small = base + "output: {row_group_bytes: 20000}\n"
    run_local(recipe_of(small, c4_path), tmp_path / "small")
    for folder in ("kept", "dropped"):
        big = [pq.ParquetFile(f) for f in sorted((tmp_path / "big" / folder).iterdir())]
        assert [f.metadata.num_row_groups for f in big] == [1] * len(big)
        assert read_output(tmp_path / "big", folder) == read_output(tmp_path / "small", folder)
        for part in sorted((tmp_path / "small" / folder).iterdir()):
            meta = pq.ParquetFile(part).metadata
            groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
            assert sum(g.num_rows for g in groups) == meta.num_rows
            # every group but the last reached the target
            table = pq.read_table(part)
            start = 0
            for g in groups[:-1]:
                assert table.slice(start, g.num_rows).nbytes >= 20000
                start += g.num_rows
    kept = pq.ParquetFile(sorted((tmp_path / "small" / "kept").iterdir())[0]).metadata
    assert kept.num_row_groups > 1
