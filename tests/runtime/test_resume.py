"""Resume: a run killed with SIGKILL and run again gives the uninterrupted run's rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.runtime.run import RunFolderError
from tests.conftest import read_output, recipe_of, run_local

RECIPE = """\
input: {batch_rows: 64}
stages:
  - length_filter: {min_chars: 400}
  - sample: {rate: 0.7, seed: 3}
output: {shard_rows: 100}
"""


def make_shards(c4_path: Path, folder: Path, count: int) -> None:
    """Split the real C4 sample into ``count`` Parquet shards."""
    import gzip

    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    folder.mkdir(parents=True)
    per = -(-len(rows) // count)
    for i in range(count):
        chunk = rows[i * per : (i + 1) * per]
        pq.write_table(
            pa.Table.from_pylist(chunk), folder / f"c4-{i:03d}.parquet", row_group_size=50
        )


def cli_run(recipe: Path, inputs: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "curation.cli",
            "run",
            str(recipe),
            "--input",
            str(inputs),
            "--output",
            str(out),
            "--executor",
            "local",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def snapshot(out: Path) -> tuple[list, list, list]:
    names = sorted(p.name for p in (out / "kept").iterdir())
    return read_output(out, "kept").to_pylist(), read_output(out, "dropped").to_pylist(), names


@pytest.mark.slow
def test_sigkill_at_many_moments_then_resume(c4_path: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    make_shards(c4_path, inputs, 40)
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(RECIPE)
    reference = tmp_path / "reference"
    assert cli_run(recipe_file, inputs, reference).wait() == 0
    expected = snapshot(reference)

    started = time.perf_counter()
    proc = cli_run(recipe_file, inputs, tmp_path / "probe")
    assert proc.wait() == 0
    full = time.perf_counter() - started
    # kill at spread-out moments of the run, including during the finishing step
    finished_at_kill = []
    for index, fraction in enumerate((0.35, 0.55, 0.7, 0.8, 0.9, 0.97)):
        out = tmp_path / f"killed-{index}"
        proc = cli_run(recipe_file, inputs, out)
        time.sleep(full * fraction)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        finished_at_kill.append(len(list(out.glob("_work/shards/*/_SUCCESS.json"))))
        # whatever is visible in kept/ right after the kill is a complete file
        for part in (out / "kept").glob("part-*") if (out / "kept").exists() else []:
            pq.read_metadata(part)
        rerun = cli_run(recipe_file, inputs, out)
        _, err = rerun.communicate()
        assert rerun.returncode == 0, err.decode()
        assert snapshot(out) == expected, f"killed at {fraction:.0%} of the run"
        stats = json.loads((out / "stats.json").read_text())
        assert stats["rows"]["read"] == 1000
    assert any(0 < n < 40 for n in finished_at_kill), f"no kill landed mid-run: {finished_at_kill}"


def test_rerun_skips_finished_shards_and_overwrite_starts_again(
    c4_path: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    make_shards(c4_path, inputs, 4)
    recipe = recipe_of(RECIPE, inputs)
    first = run_local(recipe, tmp_path / "out")
    assert first["shards"]["resumed"] == 0
    second = run_local(recipe, tmp_path / "out")
    assert second["shards"]["resumed"] == 4
    assert second["rows"] == first["rows"]
    third = run_local(recipe, tmp_path / "out", overwrite=True)
    assert third["shards"]["resumed"] == 0


def test_output_folder_guards(c4_path: Path, tmp_path: Path) -> None:
    recipe = recipe_of(RECIPE, c4_path)
    run_local(recipe, tmp_path / "out")
    other = recipe_of(RECIPE.replace("rate: 0.7", "rate: 0.5"), c4_path)
    with pytest.raises(RunFolderError, match=r"another recipe.*--overwrite"):
        run_local(other, tmp_path / "out")
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(RunFolderError, match="holds no curation run"):
        run_local(recipe, precious, overwrite=True)
    assert (precious / "thesis.tex").exists()
