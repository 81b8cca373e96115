"""Local and Ray executors (1 and 2 workers) give identical kept and dropped rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.runtime.run import RunOptions, run
from tests.conftest import read_output, recipe_of

RECIPE = """\
input: {batch_rows: 200}
stages:
  - length_filter: {min_chars: 300, max_chars: 20000}
  - sample: {rate: 0.6, seed: 7}
output: {shard_rows: 150}
"""


def snapshot(out: Path) -> tuple[list[dict], list[dict]]:
    return read_output(out, "kept").to_pylist(), read_output(out, "dropped").to_pylist()


@pytest.mark.ray
@pytest.mark.slow
def test_local_and_ray_agree(
    c4_path: Path, pile_path: Path, warc_dir: Path, tmp_path: Path
) -> None:
    recipe = recipe_of(RECIPE, c4_path, warc_dir)
    pile = recipe_of(RECIPE, pile_path, text_field="contents")
    outputs = {}
    for name, options in {
        "local": RunOptions("local", progress=False),
        "ray1": RunOptions("ray", workers=1, progress=False),
        "ray2": RunOptions("ray", workers=2, progress=False),
    }.items():
        stats = run(recipe, tmp_path / name, options)
        run(pile, tmp_path / f"{name}-pile", options)
        outputs[name] = (snapshot(tmp_path / name), snapshot(tmp_path / f"{name}-pile"))
        assert stats["engine"]["executor"] == options.executor
    assert outputs["local"] == outputs["ray1"] == outputs["ray2"]
    (kept, dropped), _ = outputs["local"]
    assert len(kept) + len(dropped) == 1000 + 37
    assert {r["drop_reason"].split(":")[0] for r in dropped} >= {"length_filter", "sample"}
    # same files, same names, same row counts
    names = {n: sorted(p.name for p in (tmp_path / n / "kept").iterdir()) for n in outputs}
    assert names["local"] == names["ray1"] == names["ray2"]
    assert (
        max(
            pq.ParquetFile(tmp_path / "local" / "kept" / f).metadata.num_rows
            for f in names["local"]
        )
        <= 150
    )
    stats = json.loads((tmp_path / "ray2" / "stats.json").read_text())
    assert stats["engine"]["workers"] == 2


def test_fused_pass_accounting(c4_path: Path, tmp_path: Path) -> None:
    stats = run(recipe_of(RECIPE, c4_path), tmp_path / "out", RunOptions("local", progress=False))
    read, length, sample = stats["stages"]
    assert read["rows_in"] == 1000
    assert length["rows_in"] == read["rows_kept"]
    assert sample["rows_in"] == length["rows_kept"]
    for stage in stats["stages"]:
        assert stage["rows_in"] == stage["rows_kept"] + sum(stage["dropped_by_reason"].values())
    assert stats["rows"]["kept"] == sample["rows_kept"]
    assert length["summaries"]["length_chars"]["count"] == 1000
    assert set(stats["stages"][1]) >= {"seconds", "docs_per_s", "mb_per_s"}


def test_a_local_run_does_not_import_ray(c4_path: Path, tmp_path: Path) -> None:
    # Importing Ray costs about half a second; a local run, global stages included, has
    # no use for it (a fresh interpreter: this test process has Ray loaded already).
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - minhash_dedup: {}\n  - exact_dedup: {}\n")
    probe = (
        "import sys\n"
        "from curation.recipe import load_recipe\n"
        "from curation.runtime.run import RunOptions, run\n"
        f"r = load_recipe({str(recipe)!r}).with_input(paths=[{str(c4_path)!r}])\n"
        f"stats = run(r, {str(tmp_path / 'out')!r}, RunOptions('local', progress=False))\n"
        "print(stats['rows']['read'], 'ray' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["1000", "False"]
