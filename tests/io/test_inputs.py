"""Small input files read together as units of work: the same rows, ids, order and
accounting as one file at a time, far fewer tasks, markers and parts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.io import inputs
from curation.io.inputs import InputShard, group_small_files, resolve_inputs
from curation.io.readers import CorruptInputError
from tests.conftest import EXECUTORS, read_output, recipe_of, run_local

STAGES = "stages:\n  - length_filter: {min_chars: 1500}\n"


def one_document_files(c4_path: Path, folder: Path) -> list[dict]:
    """The C4 sample as one text file a document (the first 300) and three JSONL files of
    the rest, whose fields differ (one has ``source``): a folder of many small files."""
    rows = [json.loads(line) for line in gzip.open(c4_path, "rt", encoding="utf-8")]
    folder.mkdir()
    for i, row in enumerate(rows[:300]):
        (folder / f"a-{i:04d}.txt").write_text(row["text"], encoding="utf-8")
    for j, start in enumerate(range(300, 1000, 250)):
        with open(folder / f"b-{j}.jsonl", "w", encoding="utf-8") as out:
            for row in rows[start : start + 250]:
                extra = {"source": "c4"} if j == 1 else {}
                out.write(json.dumps({**row, **extra}) + "\n")
    return rows


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_units_of_small_files_give_the_rows_files_one_at_a_time_give(
    c4_path: Path, tmp_path: Path, executor: str
) -> None:
    one_document_files(c4_path, tmp_path / "in")
    alone = recipe_of("input: {unit_bytes: 0}\n" + STAGES, tmp_path / "in")
    units = recipe_of(STAGES, tmp_path / "in")
    first = run_local(alone, tmp_path / "alone", executor="local")
    second = run_local(units, tmp_path / "units", **EXECUTORS[executor])
    assert first["shards"]["total"] == first["shards"]["input_files"] == 303
    assert second["shards"]["input_files"] == 303
    assert 4 < second["shards"]["total"] < 100  # the text files share units
    assert second["rows"] == first["rows"]
    for a, b in zip(first["stages"], second["stages"], strict=True):
        assert (a["rows_in"], a["rows_kept"], a["dropped_by_reason"]) == (
            b["rows_in"],
            b["rows_kept"],
            b["dropped_by_reason"],
        )
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "units", kind) == read_output(tmp_path / "alone", kind)
    every_id = set(read_output(tmp_path / "units", "kept")["id"].to_pylist())
    every_id |= set(read_output(tmp_path / "units", "dropped")["id"].to_pylist())
    assert {f"in/a-{i:04d}.txt" for i in range(300)} <= every_id  # a text file's id: its name


def test_a_run_goes_on_with_other_units(c4_path: Path, tmp_path: Path) -> None:
    # how files are gathered changes no row: a run begun with a unit per file resumes
    # with units (those not found are read again) to the same result
    one_document_files(c4_path, tmp_path / "in")
    alone = run_local(
        recipe_of("input: {unit_bytes: 0}\n" + STAGES, tmp_path / "in"), tmp_path / "o"
    )
    again = run_local(recipe_of(STAGES, tmp_path / "in"), tmp_path / "o")
    assert again["rows"] == alone["rows"]
    assert 0 < again["shards"]["resumed"] < again["shards"]["total"]  # the large files
    run_local(recipe_of(STAGES, tmp_path / "in"), tmp_path / "fresh")
    assert read_output(tmp_path / "o", "kept") == read_output(tmp_path / "fresh", "kept")


def test_a_barrier_decides_again_over_other_units(c4_path: Path, tmp_path: Path) -> None:
    # a finished run of a global stage goes on with units: its barrier's decisions named
    # the files, so it decides again over the units (the files' handed-on rows, which the
    # finished run deleted, are made again); before, the old decisions stood and dropped
    # nothing
    one_document_files(c4_path, tmp_path / "in")
    for i in range(60):  # copies of documents, in text files that units gather
        text = (tmp_path / "in" / f"a-{i:04d}.txt").read_text(encoding="utf-8")
        (tmp_path / "in" / f"c-{i:04d}.txt").write_text(text, encoding="utf-8")
    stages = STAGES + "  - exact_dedup: {}\n"
    alone = recipe_of("input: {unit_bytes: 0}\n" + stages, tmp_path / "in")
    first = run_local(alone, tmp_path / "o")
    assert first["stages"][-1]["dropped_by_reason"]["exact_dedup:duplicate"] > 0
    units = run_local(recipe_of(stages, tmp_path / "in"), tmp_path / "o")
    assert units["rows"] == first["rows"] and units["shards"]["total"] < 363
    run_local(recipe_of(stages, tmp_path / "in"), tmp_path / "fresh")
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "o", kind) == read_output(tmp_path / "fresh", kind)
    back = run_local(alone, tmp_path / "o")  # and back: decided over the files again
    assert back["rows"] == first["rows"]


def test_a_damaged_file_in_a_unit(c4_path: Path, tmp_path: Path) -> None:
    one_document_files(c4_path, tmp_path / "in")
    for name in ("a-0100.txt", "a-0200.txt"):  # two small zstd text files, cut short
        (tmp_path / "in" / f"{name}.zst").write_bytes(b"\x28\xb5\x2f\xfd\x04\x58garbage")
    with pytest.raises(CorruptInputError, match=r"a-0100\.txt\.zst: cannot read past"):
        run_local(recipe_of(STAGES, tmp_path / "in"), tmp_path / "stop")
    skip = "input: {on_corrupt_file: skip}\n" + STAGES
    stats = run_local(recipe_of(skip, tmp_path / "in"), tmp_path / "skip")
    assert stats["rows"]["read"] == 1000  # every other file of the units is read
    damaged = stats["shards"]["corrupt_skipped"]
    assert [d["error"].split(":")[0].rsplit("/", 1)[-1] for d in damaged] == [
        "a-0100.txt.zst",
        "a-0200.txt.zst",
    ]


def test_globs_and_folders_list_each_file_s_size(c4_path: Path) -> None:
    [by_glob] = resolve_inputs([str(c4_path.parent / "c4-*.jsonl.gz")])
    [alone] = resolve_inputs([str(c4_path)])
    in_folder = [s for s in resolve_inputs([str(c4_path.parent)]) if s.url == alone.url]
    assert by_glob.size == alone.size == in_folder[0].size == c4_path.stat().st_size


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.one_of(st.none(), st.integers(0, 5000)), max_size=40),
    unit_bytes=st.integers(0, 20_000),
)
def test_units_keep_every_file_once_in_order(sizes: list[int | None], unit_bytes: int) -> None:
    """Every file in exactly one shard, in order; a unit holds only files below the
    target, closes once its files reach it (or before a file that is not small), and
    is named by its first file; a file of unknown size or the target's size is alone."""
    files = [
        InputShard(f"/d/f{i:03d}", f"d/f{i:03d}", "text", size) for i, size in enumerate(sizes)
    ]
    shards = group_small_files(files, unit_bytes)
    assert [f for s in shards for f in s.files] == files
    if unit_bytes == 0 or len(files) < 2:
        assert shards == files
        return
    target = min(unit_bytes, max(1, sum(s or 0 for s in sizes) // 64))
    for index, shard in enumerate(shards):
        if not shard.members:
            continue
        member_sizes = [m.size for m in shard.members]
        assert len(member_sizes) > 1 and all(s is not None and s < target for s in member_sizes)
        assert sum(member_sizes[:-1]) < target  # still open when its last file came
        assert shard.name == f"{shard.members[0].name}+{len(member_sizes) - 1}"
        if index + 1 < len(shards) and sum(member_sizes) < target:
            after = shards[index + 1].files[0]
            assert after.size is None or after.size >= target
    units = [s for s in shards if s.members]
    assert len({s.key for s in shards}) == len(shards)
    assert all(InputShard.from_dict(json.loads(json.dumps(s.to_dict()))) == s for s in units)


@pytest.mark.parametrize("batch_rows", [1, 3, 7, 10_000])
def test_a_unit_of_mixed_small_files_keeps_their_order(
    c4_path: Path, tmp_path: Path, batch_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # text files gather into one table, JSONL and Parquet files' batches join theirs:
    # whatever the batch size, the rows come out in file order, as one file at a time
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in gzip.open(c4_path, "rt", encoding="utf-8")][:90]
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(30):
        kind = i % 3
        chunk = rows[3 * i : 3 * i + 3]
        if kind == 0:
            (folder / f"f{i:02d}.txt").write_text(chunk[0]["text"], encoding="utf-8")
        elif kind == 1:
            lines = "".join(json.dumps({"text": r["text"], "n": i}) + "\n" for r in chunk)
            (folder / f"f{i:02d}.jsonl").write_text(lines, encoding="utf-8")
        else:
            pq.write_table(
                pa.table({"text": [r["text"] for r in chunk]}), folder / f"f{i:02d}.parquet"
            )
    monkeypatch.setattr(inputs, "_MIN_UNITS", 1)  # all 30 files in one unit
    recipe = f"input: {{batch_rows: {batch_rows}, unit_bytes: UNIT}}\n" + STAGES
    alone = run_local(recipe_of(recipe.replace("UNIT", "0"), folder), tmp_path / "a")
    units = run_local(recipe_of(recipe.replace("UNIT", "100000000"), folder), tmp_path / "u")
    assert units["shards"]["total"] == 1 and alone["shards"]["total"] == 30
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "u", kind) == read_output(tmp_path / "a", kind)
    ids = read_output(tmp_path / "u", "kept")["id"].to_pylist()
    files = [i.split("/")[1] for i in ids]
    assert files == sorted(files)
