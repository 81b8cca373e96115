"""Resume: a run killed with SIGKILL and run again gives the uninterrupted run's rows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.io.inputs import InputShard, resolve_inputs
from curation.recipe import Recipe, parse_recipe
from curation.runtime.run import RunFolderError
from curation.runtime.shard import SegmentPlan, plan_segments, process_shard, shard_folder
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

    # kill when a given number of shards has finished, while the finishing step links
    # files into kept/, and at a moment late in the run
    moments = [("shards", 1), ("shards", 10), ("shards", 25), ("shards", 39), ("kept", 0)]
    finished_at_kill = []
    for index, (what, count) in enumerate(moments):
        out = tmp_path / f"killed-{index}"
        proc = cli_run(recipe_file, inputs, out)
        wait_for(out, what, count, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        finished_at_kill.append(len(list(out.glob("_work/seg0/shards/*/_SUCCESS.json"))))
        # whatever is visible in kept/ right after the kill is a complete file
        for part in (out / "kept").glob("part-*") if (out / "kept").exists() else []:
            pq.read_metadata(part)
        rerun = cli_run(recipe_file, inputs, out)
        _, err = rerun.communicate()
        assert rerun.returncode == 0, err.decode()
        assert snapshot(out) == expected, f"killed at {what} {count}"
        stats = json.loads((out / "stats.json").read_text())
        assert stats["rows"]["read"] == 1000
    print("shards finished at each kill:", finished_at_kill)
    mid_run = [n for n in finished_at_kill if 0 < n < 40]
    assert len(mid_run) >= 3, f"kills did not land mid-run: {finished_at_kill}"


def wait_for(out: Path, what: str, count: int, proc: subprocess.Popen) -> None:
    """Return once ``count`` shards are done (or kept/ has a file); give up after 60 s."""
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and proc.poll() is None:
        if what == "shards" and len(list(out.glob("_work/seg0/shards/*/_SUCCESS.json"))) >= count:
            return
        if what == "kept" and (out / "kept").exists() and any((out / "kept").iterdir()):
            return
        time.sleep(0.002)


def test_rerun_skips_finished_shards_and_overwrite_starts_again(
    c4_path: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    make_shards(c4_path, inputs, 4)
    recipe = recipe_of(RECIPE, inputs)
    first = run_local(recipe, tmp_path / "out")
    assert first["shards"]["resumed"] == 0
    second = run_local(recipe, tmp_path / "out")
    assert second["shards"]["resumed"] == first["shards"]["total"] == 20  # 4 files cut in 5
    assert second["rows"] == first["rows"]
    third = run_local(recipe, tmp_path / "out", overwrite=True)
    assert third["shards"]["resumed"] == 0
    # how small parts are merged is the finish's alone: another value still resumes
    unmerged = recipe_of(
        RECIPE.replace("shard_rows: 100", "shard_rows: 100, min_file_bytes: 0"), inputs
    )
    fourth = run_local(unmerged, tmp_path / "out")
    assert fourth["shards"]["resumed"] == 20 and fourth["rows"] == first["rows"]


def test_output_folder_guards(c4_path: Path, tmp_path: Path, monkeypatch) -> None:
    recipe = recipe_of(RECIPE, c4_path)
    run_local(recipe, tmp_path / "out")
    other = recipe_of(RECIPE.replace("rate: 0.7", "rate: 0.5"), c4_path)
    # the refusal says which settings differ
    with pytest.raises(
        RunFolderError,
        match=r"holds a run with other settings \(stages\[1\]\.sample\.rate: 0\.7 -> 0\.5\)"
        r": pass --overwrite",
    ):
        run_local(other, tmp_path / "out")
    added = recipe_of(
        RECIPE.replace("  - sample", "  - length_filter: {max_chars: 5000}\n  - sample"), c4_path
    )
    with pytest.raises(
        RunFolderError,
        match=r"other stages \(length_filter, sample -> length_filter, length_filter, sample\)",
    ):
        run_local(added, tmp_path / "out")
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(RunFolderError, match="holds no curation run"):
        run_local(recipe, precious, overwrite=True)
    assert (precious / "thesis.tex").exists()
    # under a file: a plain error, not NotADirectoryError's traceback
    with pytest.raises(RunFolderError, match=r"cannot write the output folder .*Not a directory"):
        run_local(recipe, precious / "thesis.tex" / "out")
    # an object store URL: Path() made of it a local folder named "s3:"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunFolderError, match=r"s3://bucket/run is a URL, but the run folder"):
        run_local(recipe, "s3://bucket/run")
    assert not (tmp_path / "s3:").exists()


def test_a_run_over_other_inputs_is_refused_naming_the_files(c4_path: Path, tmp_path: Path) -> None:
    from curation.runtime.run import RUN_MARKER

    inputs = tmp_path / "in"
    make_shards(c4_path, inputs, 5)
    recipe = recipe_of(RECIPE, inputs)
    run_local(recipe, tmp_path / "out")
    (inputs / "c4-001.parquet").rename(tmp_path / "away.parquet")
    shutil.copy(inputs / "c4-000.parquet", inputs / "c4-new.parquet")
    with pytest.raises(
        RunFolderError,
        match=rf"over other inputs \(1 file added: {inputs}/c4-new.parquet; 1 file gone: "
        rf"{inputs}/c4-001.parquet\): pass --overwrite",
    ):
        run_local(recipe, tmp_path / "out")
    for i in range(2, 5):
        (inputs / f"c4-{i:03d}.parquet").unlink()
    with pytest.raises(RunFolderError, match=r"1 file added: .*; 4 files gone: .*, \.\.\.\)"):
        run_local(recipe, tmp_path / "out")
    # a marker of an engine that recorded neither: the message it gave
    marker = tmp_path / "out" / "_work" / RUN_MARKER
    written = json.loads(marker.read_text())
    marker.write_text(json.dumps({k: v for k, v in written.items() if k != "recipe"}))
    with pytest.raises(RunFolderError, match="holds a run of another recipe or other inputs"):
        run_local(recipe, tmp_path / "out")


def test_a_finished_run_keeps_no_handed_on_rows(c4_path: Path, tmp_path: Path) -> None:
    # Two passes (exact_dedup is a barrier): the rows pass 1 handed to pass 2 are deleted
    # once the run is finished, and running it again still skips everything and gives the
    # same output.
    recipe = recipe_of(
        "stages:\n  - length_filter: {min_chars: 400}\n  - exact_dedup: {}\n", c4_path
    )
    out = tmp_path / "out"
    first = run_local(recipe, out)
    expected = snapshot(out)
    handed_on = list((out / "_work" / "seg0").rglob("kept-*"))
    assert handed_on == []
    assert list((out / "_work" / "seg0").rglob("dropped-*")), "dropped/ links these: they stay"
    assert list((out / "_work" / "seg1").rglob("kept-*")), "kept/ links these: they stay"
    second = run_local(recipe, out)
    assert second["shards"]["resumed"] == 2 * first["shards"]["total"]
    assert second["rows"] == first["rows"] and snapshot(out) == expected
    # the second pass's results gone: the first pass runs again to hand on its rows
    # (before, an error said to start again with --overwrite)
    shutil.rmtree(out / "_work" / "seg1" / "shards")
    third = run_local(recipe, out)
    assert third["shards"]["resumed"] == 0
    assert third["rows"] == first["rows"] and snapshot(out) == expected


def test_a_finished_run_of_three_passes_makes_the_rows_a_lost_pass_needs(
    c4_path: Path, tmp_path: Path
) -> None:
    # pass 3's results gone: pass 2 runs again, and so does pass 1, whose handed-on rows
    # pass 2 needs (a finished run deleted both)
    recipe = recipe_of(
        "stages:\n  - length_filter: {min_chars: 400}\n  - exact_dedup: {}\n"
        "  - minhash_dedup: {}\n",
        c4_path,
    )
    out = tmp_path / "out"
    first = run_local(recipe, out)
    assert first["shards"]["passes"] == 3
    expected = snapshot(out)
    shutil.rmtree(out / "_work" / "seg2" / "shards")
    again = run_local(recipe, out)
    assert again["shards"]["resumed"] == 0
    assert again["rows"] == first["rows"] and snapshot(out) == expected


def test_a_barrier_over_more_rows_than_polars_can_number_stops_and_resumes(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Polars' default runtime numbers rows with 32 bits: past 4,294,967,295 rows a global
    # stage's decision would panic inside polars. The run stops before the barrier, says
    # what to install, and the same command then goes on from the finished shards.
    from curation.runtime import run as run_module

    inputs = tmp_path / "in"
    make_shards(c4_path, inputs, 4)
    stages = "stages:\n  - length_filter: {min_chars: 400}\n  - minhash_dedup: {}\n"
    recipe = parse_recipe(stages).with_input(paths=[str(inputs)])
    fresh = run_local(recipe, tmp_path / "fresh")
    reaching = next(s["rows_in"] for s in fresh["stages"] if s["name"] == "minhash_dedup")
    assert run_module.polars_row_limit() in (2**32 - 1, 2**64 - 1)

    out = tmp_path / "out"
    monkeypatch.setattr(run_module, "polars_row_limit", lambda: reaching - 1)
    with pytest.raises(run_module.BarrierTooLarge) as caught:
        run_local(recipe, out)
    message = str(caught.value)
    assert f"barrier before pass 2: {reaching:,} rows reach minhash_dedup" in message
    assert f"more than the {reaching - 1:,}" in message
    assert "pip install 'polars[rt64]==" in message and "the same curate run command" in message
    monkeypatch.setattr(run_module, "polars_row_limit", lambda: reaching)
    again = run_local(recipe, out)
    assert again["shards"]["resumed"] == fresh["shards"]["total"]  # every shard of pass 1
    assert again["rows"] == fresh["rows"] and snapshot(out) == snapshot(tmp_path / "fresh")


@pytest.mark.parametrize("codec, stored", [("none", "UNCOMPRESSED"), ("lz4", "LZ4")])
def test_work_compression_sets_the_handed_on_parts_only(
    c4_path: Path, tmp_path: Path, codec: str, stored: str
) -> None:
    stages = "stages:\n  - length_filter: {min_chars: 400}\n  - exact_dedup: {}\n"
    recipe = parse_recipe(stages + f"output: {{work_compression: {codec}}}\n")
    recipe = recipe.with_input(paths=[str(c4_path)])
    plan = SegmentPlan(recipe, plan_segments(recipe)[0], tmp_path / "work")
    shard = InputShard(str(c4_path), "c4", "jsonl")
    result = process_shard(shard, plan, *plan.build())
    folder = shard_folder(tmp_path / "work", shard, 0)
    (kept, _), (dropped, _) = result.kept_parts[0], result.dropped_parts[0]
    assert pq.ParquetFile(folder / kept).metadata.row_group(0).column(0).compression == stored
    assert pq.ParquetFile(folder / dropped).metadata.row_group(0).column(0).compression == "ZSTD"
    # the output does not depend on it
    default = run_local(recipe_of(stages, c4_path), tmp_path / "default")
    chosen = run_local(recipe, tmp_path / "chosen")
    assert chosen["rows"] == default["rows"]
    assert snapshot(tmp_path / "chosen") == snapshot(tmp_path / "default")


def test_a_run_whose_passes_were_cut_otherwise_is_not_resumed(
    c4_path: Path, tmp_path: Path
) -> None:
    # The marker records how many stages each pass holds, and pass results are resumed by
    # index: a run folder begun by an engine that cut the passes otherwise is refused.
    from curation.runtime.run import RUN_MARKER, _fingerprint

    marker = tmp_path / "out" / "_work" / RUN_MARKER
    recipe = recipe_of(
        "stages:\n  - length_filter: {min_chars: 400}\n  - exact_dedup: {}\n", c4_path
    )
    run_local(recipe, tmp_path / "out")
    written = json.loads(marker.read_text())
    assert written["passes"] == [1, 1] and written["gpu_cut"] is False
    marker.write_text(json.dumps({**written, "passes": [2]}))
    with pytest.raises(RunFolderError, match=r"another version of the engine.*\[2\].*\[1, 1\]"):
        run_local(recipe, tmp_path / "out")
    # a marker of an engine that recorded no passes: its cuts were the global stages only,
    # the same as now for a recipe without a model, so the run resumes
    marker.write_text(json.dumps({k: written[k] for k in ("fingerprint", "shards")}))
    assert run_local(recipe, tmp_path / "out")["shards"]["resumed"] == 2  # 1 shard, 2 passes

    # with a model after CPU stages the passes are cut otherwise now: refused, before
    # anything (the model) is loaded
    model = parse_recipe(
        "models:\n  m/lm: {train_lm: {input: $input}}\n"  # pending: never trained here
        "stages:\n  - length_filter: {min_chars: 400}\n  - lm_loss: {model: m/lm}\n"
    ).with_input(paths=[str(c4_path)])
    shards = resolve_inputs(model.input.paths, model.input.format)
    legacy = _fingerprint(model, shards, plan_segments(model))
    assert legacy["passes"] == [1, 1] and legacy["gpu_cut"] is True
    folder = tmp_path / "model-run"
    (folder / "_work").mkdir(parents=True)
    (folder / "_work" / RUN_MARKER).write_text(
        json.dumps({k: legacy[k] for k in ("fingerprint", "shards")})
    )
    with pytest.raises(RunFolderError, match=r"unrecorded stages a pass there, \[1, 1\] now"):
        run_local(model, folder)


BARRIER = """\
input: {batch_rows: 64, unit_bytes: 0}
stages:
  - length_filter: {min_chars: 400}
  - exact_dedup: {}
  - sample: {rate: 0.7, seed: 3}
output: {shard_rows: 100}
"""


def shard_entries(out: Path) -> list[str]:
    """What the run keeps under _work for shards: folders and start records, by pass."""
    work = out / "_work"
    return sorted(str(p.relative_to(work)) for p in work.glob("seg*/s*/*"))


def barrier_run(c4_path: Path, tmp_path: Path, files: int) -> tuple[Path, Recipe, Path]:
    """The C4 sample as ``files`` Parquet files, run through ``BARRIER`` into ``out``:
    the inputs, the recipe and the run folder."""
    inputs = tmp_path / "in"
    make_shards(c4_path, inputs, files)
    recipe = recipe_of(BARRIER, inputs)
    run_local(recipe, tmp_path / "out")
    return inputs, recipe, tmp_path / "out"


def test_a_file_changed_since_the_run_began_is_read_again(
    c4_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, a resumed run reused what it had made of a file by its name alone: rows
    # appended to an input since were never read, and nothing said so. A shard's key now
    # holds its files' sizes and modification times.
    inputs, recipe, out = barrier_run(c4_path, tmp_path, 4)
    before = shard_entries(out)
    assert len(before) == 4 * 2  # 4 shards, 2 passes (the dedup barrier between)

    # c4-001 gains a copy of a c4-000 document (an exact duplicate the barrier must
    # find) and a document of its own
    changed = inputs / "c4-001.parquet"
    copy = next(
        r for r in pq.read_table(inputs / "c4-000.parquet").to_pylist() if len(r["text"]) > 400
    )
    rows = [*pq.read_table(changed).to_pylist(), copy, {**copy, "text": "fresh " * 120}]
    pq.write_table(pa.Table.from_pylist(rows), changed, row_group_size=50)
    capsys.readouterr()

    again = run_local(recipe, out)
    fresh = run_local(recipe, tmp_path / "fresh")
    assert again["rows"] == fresh["rows"]
    assert again["rows"]["read"] == 1000 + 2
    assert snapshot(out) == snapshot(tmp_path / "fresh")
    dropped = read_output(out, "dropped").to_pylist()
    assert [
        r["drop_reason"] for r in dropped if r["id"] == f"in/c4-001.parquet/{len(rows) - 2}"
    ] == ["exact_dedup:duplicate"]
    # the barrier decides again over the new keys, and a finished run deleted the rows
    # pass 1 hands on: every shard runs both passes again
    assert again["shards"]["resumed"] == 0
    note = capsys.readouterr().err
    assert f"note: {changed} changed since this run began" in note
    assert "c4-000" not in note and "it is read again" in note
    # what the run made of the old content is gone; the others' folders stand
    after = shard_entries(out)
    assert len(after) == 4 * 2 and len(set(after) & set(before)) == 3 * 2
    assert after == shard_entries(tmp_path / "fresh")
    # a run of unchanged files reads nothing again, and says nothing
    assert run_local(recipe, out)["shards"]["resumed"] == 4 * 2
    assert capsys.readouterr().err == ""

    # without a barrier only the changed file is read again: here one touched (the same
    # bytes, a later modification time), to the same rows
    plain = recipe_of(RECIPE, inputs, unit_bytes=0)
    run_local(plain, tmp_path / "plain")
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    touched = run_local(plain, tmp_path / "plain")
    assert touched["shards"]["resumed"] == 3
    run_local(plain, tmp_path / "plain-fresh")
    assert snapshot(tmp_path / "plain") == snapshot(tmp_path / "plain-fresh")


def test_a_run_begun_before_keys_held_versions_is_read_again_once(
    c4_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run folder of the engine before 2026-11-25: shard folders named by the label
    # alone, a marker without ``shard_keys``. It goes on, reads every shard again (it
    # cannot know which files changed), says why, and leaves only this engine's folders.
    import xxhash

    from curation.runtime.run import RUN_MARKER

    inputs, recipe, out = barrier_run(c4_path, tmp_path, 3)
    expected, entries = snapshot(out), shard_entries(out)
    marker = out / "_work" / RUN_MARKER
    written = json.loads(marker.read_text())
    assert written["shard_keys"] == "label+versions"
    marker.write_text(json.dumps({k: v for k, v in written.items() if k != "shard_keys"}))
    for shard in resolve_inputs([str(inputs)]):
        old = f"{shard.key.rsplit('-', 1)[0]}-{xxhash.xxh64_hexdigest(shard.label)[:12]}"
        for folder in (out / "_work").glob(f"seg*/shards/{shard.key}"):
            folder.rename(folder.with_name(old))
    capsys.readouterr()

    again = run_local(recipe, out)
    assert again["shards"]["resumed"] == 0 and snapshot(out) == expected
    assert "begun by an earlier version of the engine" in capsys.readouterr().err
    assert shard_entries(out) == entries
    assert json.loads(marker.read_text()) == written
    assert run_local(recipe, out)["shards"]["resumed"] == 3 * 2


def test_a_run_whose_stage_files_changed_is_not_resumed(c4_path: Path, tmp_path: Path) -> None:
    # A model, word list or benchmark read by a stage, changed between a kill and the
    # resume, would leave the shards finished before and after judged by two versions of
    # it: the run folder records their versions, and the run refuses to go on.
    words = tmp_path / "words.txt"
    words.write_text("fuck\nshit\n")
    stages = f"stages:\n  - c4_badwords: {{words_file: {words}}}\n"
    recipe = recipe_of(stages, c4_path)
    out = tmp_path / "out"
    first = run_local(recipe, out)
    was = os.stat(words)
    assert run_local(recipe, out)["shards"]["resumed"] == 1  # unchanged: resumed

    words.write_text("fuck\nshit\ndamn\n")
    with pytest.raises(RunFolderError, match=rf"read, {words}, changed \(size or modif"):
        run_local(recipe, out)
    words.write_text("fuck\nshit\n")  # the same bytes again, but written later
    with pytest.raises(RunFolderError, match="--overwrite to start again"):
        run_local(recipe, out)
    os.utime(words, ns=(was.st_atime_ns, was.st_mtime_ns))  # put back as it was
    assert run_local(recipe, out)["rows"] == first["rows"]

    words.write_text("fuck\nshit\ndamn\n")
    again = run_local(recipe, out, overwrite=True)
    assert again["shards"]["resumed"] == 0 and again["rows"] != first["rows"]


def test_stage_file_params_name_parameters_of_their_stage() -> None:
    from curation.stage import stage_class, stage_names

    named = {n: stage_class(n).Params.file_params for n in stage_names()}
    for name, fields in named.items():
        assert set(fields) <= set(stage_class(name).Params.model_fields), name
    # the language stage's default model is a file it reads too
    language = parse_recipe("stages:\n  - language: {languages: [en]}\n").stages[0]
    assert language.params.files()[0].endswith("lid.176.ftz")
    assert {n for n, f in named.items() if f} == {
        "bff_dedup",  # against
        "c4_badwords",
        "color_filter",
        "decontaminate",
        "exact_dedup",  # against
        "fasttext_classifier",
        "kenlm_perplexity",
        "language",
        "line_dedup",  # against
        "lm_loss",
        "minhash_dedup",  # against
        "preselect",
        "sentence_dedup",  # against
        "substring_dedup",  # against
        "token_count",
        "url_filter",
        "url_removal",
    }


def test_a_run_begun_by_another_build_says_so_and_goes_on(
    c4_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A resume after an upgrade keeps the shards the other build finished (a fix need not
    # void a long run) but says so, and what makes every shard with this build.
    from curation.runtime.executors import engine_build
    from curation.runtime.run import RUN_MARKER

    recipe = recipe_of(RECIPE, c4_path)
    out = tmp_path / "out"
    run_local(recipe, out)
    marker = out / "_work" / RUN_MARKER
    written = json.loads(marker.read_text())
    from curation.cache import hashing_libraries

    mine = {k: engine_build()[k] for k in ("version", "source")}
    mine["libraries"] = hashing_libraries()
    assert written["builds"] == [mine]
    capsys.readouterr()
    run_local(recipe, out)
    assert capsys.readouterr().err == ""  # the same build: nothing to say

    other = {"version": "0.0.9", "source": "0123456789ab"}
    marker.write_text(json.dumps({**written, "builds": [other]}))
    again = run_local(recipe, out)
    assert again["shards"]["resumed"] == again["shards"]["total"]
    note = capsys.readouterr().err
    assert "begun by another build of curation (0.0.9, source 0123456789ab)" in note
    assert f"source {mine['source']}" in note and "--overwrite" in note
    assert "other libraries" not in note  # the marker's build names none
    assert json.loads(marker.read_text())["builds"] == [other, mine]
    run_local(recipe, out)  # said again while the other build's shards stand
    assert "another build of curation (0.0.9" in capsys.readouterr().err
    run_local(recipe, out, overwrite=True)
    assert json.loads(marker.read_text())["builds"] == [mine]

    # the same engine under another polars: its hashes differ, and the note says which
    upgraded = {**mine, "libraries": {**mine["libraries"], "polars": "0.0.1"}}
    marker.write_text(json.dumps({**written, "builds": [upgraded]}))
    run_local(recipe, out)
    note = capsys.readouterr().err
    assert f"source {mine['source']}, polars 0.0.1, pyarrow" in note
    assert "hashes made under other libraries" in note


def test_keys_made_under_other_libraries_are_made_again_before_their_barrier(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # A run stopped before exact_dedup's barrier, resumed after a polars upgrade: the
    # shards finished under the old polars hold keys the new one would not make (polars'
    # hash is stable within a version only), so they run that pass again; those
    # finished under this polars stand. Their keys are garbled here, as another
    # polars's would be: without the redo, the copies in them would not be found.
    import numpy as np

    from curation.cache import hashing_libraries
    from curation.runtime import run as run_module
    from curation.runtime.run import RUN_MARKER
    from curation.runtime.shard import SUCCESS

    inputs = tmp_path / "in"
    make_shards(c4_path, inputs, 4)
    first = pq.read_table(inputs / "c4-000.parquet").slice(0, 20)
    pq.write_table(first, inputs / "c4-004-copies.parquet")  # copies of shard 0's rows
    stages = "stages:\n  - length_filter: {min_chars: 400}\n  - exact_dedup: {}\n"
    recipe = parse_recipe(stages).with_input(paths=[str(inputs)])
    fresh = run_local(recipe, tmp_path / "fresh")
    found = next(s for s in fresh["stages"] if s["name"] == "exact_dedup")["rows_dropped"]
    assert found > 0

    out = tmp_path / "out"
    reaching = next(s["rows_in"] for s in fresh["stages"] if s["name"] == "exact_dedup")
    monkeypatch.setattr(run_module, "polars_row_limit", lambda: reaching - 1)
    with pytest.raises(run_module.BarrierTooLarge):
        run_local(recipe, out)
    monkeypatch.setattr(run_module, "polars_row_limit", lambda: reaching)
    old = {**hashing_libraries(), "polars": "0.0.1"}
    folders = sorted((out / "_work" / "seg0" / "shards").iterdir())  # one a row-group piece
    assert folders[-1].name.startswith("in_c4-004-copies")
    for folder in folders[-2:]:  # the copies' shard and one more, made under "polars 0.0.1"
        result = json.loads((folder / SUCCESS).read_text())
        (folder / SUCCESS).write_text(json.dumps({**result, "libraries": old}))
        for name, _ in result["kept_parts"]:
            part = pq.read_table(folder / name)
            other = pa.array(np.arange(part.num_rows, dtype=np.uint64) + np.uint64(7))
            index = part.column_names.index("_exact_dedup_h1")
            pq.write_table(part.set_column(index, "_exact_dedup_h1", other), folder / name)
    marker = out / "_work" / RUN_MARKER
    written = json.loads(marker.read_text())
    upgraded = {**written["builds"][0], "libraries": old}
    marker.write_text(json.dumps({**written, "builds": [upgraded]}))
    capsys.readouterr()
    again = run_local(recipe, out)
    note = capsys.readouterr().err
    assert "2 finished shard(s) of pass 1 made their dedup keys under other libraries" in note
    assert "polars 0.0.1" in note and "they run again" in note
    assert again["shards"]["resumed"] == len(folders) - 2  # pass 1's other shards stand
    assert again["rows"] == fresh["rows"] and snapshot(out) == snapshot(tmp_path / "fresh")
