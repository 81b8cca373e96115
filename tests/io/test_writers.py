"""Writers: JSONL output (plain, gzip, zstd) holds the same rows as Parquet output;
parts respect shard_rows; no temporary file survives a finished run."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

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
    import pyarrow.parquet as pq

    sizes = [
        pq.ParquetFile(f).metadata.num_rows for f in sorted((tmp_path / "out" / "kept").iterdir())
    ]
    assert sizes == [250, 250, 250, 250]
    leftovers = [p for p in (tmp_path / "out").rglob(".tmp-*")]
    assert leftovers == []
