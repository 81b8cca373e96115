"""Local and Ray executors (1 and 2 workers) give identical kept and dropped rows."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from curation.runtime.run import RunOptions, run
from tests.conftest import read_output, recipe_of, run_local

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


def killing_runs(c4_path: Path, folder: Path) -> Any:
    """Four JSONL files in ``folder`` (the first 20,750 C4 documents long, so that it runs
    long enough to be killed) and a function that runs them on Ray with 2 workers into an
    output folder, killing each process that starts the first file, up to ``kills``
    processes; it returns the stats, or the ``ShardFailed`` raised, and the killed pids."""
    from curation.runtime.executors import ShardFailed
    from curation.runtime.shard import MAX_STARTS

    folder.mkdir()
    lines = gzip.open(c4_path, "rb").read().splitlines(keepends=True)
    (folder / "part-0.jsonl").write_bytes(b"".join(lines) * 20)
    for i in range(1, 4):
        (folder / f"part-{i}.jsonl").write_bytes(b"".join(lines[i * 250 : (i + 1) * 250]))
    recipe = recipe_of(
        "input: {unit_bytes: 0}\nstages:\n  - length_filter: {min_chars: 100}\n", folder
    )

    def run_killing(out: Path, kills: int) -> tuple[dict | ShardFailed, list[int]]:
        killed: list[int] = []
        stop = threading.Event()

        def kill_the_first_file() -> None:
            starts = out / "_work" / "seg0" / "starts"
            while not stop.is_set():
                for record in starts.glob("in_part-0.jsonl-*.json"):
                    try:
                        start = json.loads(record.read_text())
                    except (OSError, ValueError):
                        continue
                    pid = start["pid"]
                    # a start past the limit runs nothing: a shard would not kill it
                    if pid not in killed and len(killed) < kills and start["count"] <= MAX_STARTS:
                        killed.append(pid)
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.002)

        killer = threading.Thread(target=kill_the_first_file, daemon=True)
        killer.start()
        try:
            return run_local(recipe, out, executor="ray", workers=2), killed
        except ShardFailed as err:
            return err, killed
        finally:
            stop.set()
            killer.join()

    return run_killing


@pytest.mark.ray
@pytest.mark.slow
def test_a_worker_killed_while_it_runs_a_shard_is_replaced(c4_path: Path, tmp_path: Path) -> None:
    run_killing = killing_runs(c4_path, tmp_path / "in")
    stats, killed = run_killing(tmp_path / "out", kills=1)
    assert len(killed) == 1
    assert isinstance(stats, dict) and stats["rows"]["read"] == 20_000 + 750
    assert not list((tmp_path / "out" / "_work" / "seg0" / "starts").glob("*.json"))


@pytest.mark.ray
@pytest.mark.slow
def test_a_shard_whose_worker_keeps_dying_stops_the_run_and_is_named(
    c4_path: Path, tmp_path: Path
) -> None:
    # Ray Data starts a dead worker again and gives it the shard again, without end: a
    # shard that kills its worker (the OOM killer, a crash in native code) would hang the
    # run. Here every process that runs the first file is killed; the others finish.
    from curation.runtime.shard import MAX_STARTS

    run_killing = killing_runs(c4_path, tmp_path / "in")
    out = tmp_path / "out"
    # with a broken limit the run would go on past the kills and finish
    failed, killed = run_killing(out, kills=MAX_STARTS + 1)
    assert len(killed) == MAX_STARTS
    message = str(failed)
    assert message.startswith(
        str(tmp_path / "in" / "part-0.jsonl") + ": its Ray worker died 3 times"
    )
    assert "run the same command to resume" in message
    # run again, nothing killed: the shard is started afresh and the run finishes
    stats, _ = run_killing(out, kills=0)
    assert isinstance(stats, dict) and stats["rows"]["read"] == 20_000 + 750
    assert not list((out / "_work" / "seg0" / "starts").glob("*.json"))


@pytest.mark.ray
def test_a_failed_shard_ends_ray_datas_threads_before_the_cluster_stops(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one file of six cannot be run (no url column): the run stops while the others are
    # being read; a Ray Data thread left inside Ray's core worker when ray.shutdown tears
    # it down can crash the process
    import ray

    from curation.runtime.executors import ShardFailed

    # Ray Data's scheduling loop, block fetchers and prefetcher in the driver
    iteration = ("StreamingExecutor-", "iter_threaded", "Prefetcher")

    folder = tmp_path / "in"
    folder.mkdir()
    lines = gzip.open(c4_path, "rt").read().splitlines(keepends=True)
    (folder / "part-0.jsonl").write_text('{"text": "a document without a url"}\n')
    for i in range(1, 6):
        (folder / f"part-{i}.jsonl").write_text("".join(lines[i * 150 : (i + 1) * 150]))
    recipe = recipe_of(
        "stages:\n  - url_filter: {use_integrated_lists: false}\n  - length_filter: {}\n",
        folder,
    )
    alive_at_shutdown: list[list[str]] = []
    shutdown = ray.shutdown

    def recording_shutdown(*args: Any, **kwargs: Any) -> None:
        names = [t.name for t in threading.enumerate()]
        alive_at_shutdown.append([n for n in names if n.startswith(iteration)])
        shutdown(*args, **kwargs)

    monkeypatch.setattr(ray, "shutdown", recording_shutdown)
    with pytest.raises(ShardFailed, match=r"part-0\.jsonl: url_filter: no column 'url'"):
        run_local(recipe, tmp_path / "out", executor="ray", workers=2)
    assert alive_at_shutdown == [[]]
    assert not ray.is_initialized()


def test_a_worker_under_another_polars_is_another_build() -> None:
    """Its dedup hashes would match none of the driver's: refused, and the message says
    which libraries each side has."""
    from curation.runtime.executors import _same_build, engine_build, other_build_message

    mine = engine_build()
    assert mine["libraries"].startswith("polars ") and ", pyarrow " in mine["libraries"]
    assert _same_build(dict(mine), mine)
    theirs = {**mine, "libraries": "polars 0.0.1, pyarrow 1.0.0"}
    assert not _same_build(theirs, mine)
    message = other_build_message("the Ray node at 10.0.0.2", theirs, mine)
    assert "; polars 0.0.1, pyarrow 1.0.0) than this driver" in message
    assert f"; {mine['libraries']}): install the driver's build" in message
