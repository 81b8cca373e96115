"""Small input files read together as units of work: the same rows, ids, order and
accounting as one file at a time, far fewer tasks, markers and parts."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from curation.io import inputs
from curation.io.inputs import InputError, InputShard, plan_units, resolve_inputs
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
    shards = plan_units(files, unit_bytes)
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
        # the same columns, rows and values; where the columns stand may differ: a unit
        # gathers a text file's row with the JSONL rows after it, so the input column n
        # can come before the stages' columns, where a text file's batch alone put it after
        together, alone_rows = (read_output(tmp_path / d, kind) for d in ("u", "a"))
        names = sorted(alone_rows.column_names)
        assert sorted(together.column_names) == names
        assert together.select(names) == alone_rows.select(names)
    ids = read_output(tmp_path / "u", "kept")["id"].to_pylist()
    files = [i.split("/")[1] for i in ids]
    assert files == sorted(files)


_VALUES = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.integers(-(2**64), 2**64),  # past 64 bits: text, or a line orjson refuses
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=2),
    st.fixed_dictionaries({"k": st.integers(0, 9)}),
)
_LINES = st.one_of(
    st.fixed_dictionaries(
        {"text": st.one_of(st.text(max_size=4), st.integers(0, 9), st.none())},
        optional={
            "id": st.one_of(st.text(min_size=1, max_size=3), st.integers(0, 99), st.none()),
            "a": _VALUES,
            "b": _VALUES,
            "source": _VALUES,  # kept as source_source
        },
    ).map(json.dumps),
    st.sampled_from(["", "   ", "not json", "[1, 2]", '{"other": 1}']),
)


@settings(max_examples=150, deadline=None)
@given(
    files=st.lists(st.lists(_LINES, max_size=4), min_size=1, max_size=6),
    batch_rows=st.integers(1, 8),
)
def test_a_unit_gathers_small_jsonl_files_as_each_file_alone_reads(
    tmp_path_factory: pytest.TempPathFactory, files: list[list[str]], batch_rows: int
) -> None:
    """The rows of a unit's small JSONL files, gathered into shared batches, are the rows
    each file gives read alone: ids, texts, reasons and every field with its value and
    type, in order (or the same error). Files whose fields each hold one scalar type
    throughout share their batches, whatever fields each of them has."""
    import pyarrow as pa

    from curation.io.readers import read_shard
    from curation.recipe import InputSpec

    folder = tmp_path_factory.mktemp("unit")
    for i, lines in enumerate(files):
        (folder / f"f{i}.jsonl").write_text("".join(f"{line}\n" for line in lines))
    alone = resolve_inputs([str(folder)])
    spec = InputSpec(paths=[str(folder)], batch_rows=batch_rows)
    unit = InputShard(f"{alone[0].url} (+)", "unit", "unit", members=tuple(alone))

    def rows_of(tables: Iterator[pa.Table]) -> tuple[list[dict], list[int]]:
        rows, sizes = [], []
        for table in tables:
            assert table.num_rows <= batch_rows
            sizes.append(table.num_rows)
            rows += [{k: v for k, v in row.items() if v is not None} for row in table.to_pylist()]
        return rows, sizes

    def typed(rows: list[dict]) -> list[dict]:  # 1 and 1.0 and True differ
        return [{k: (type(v).__name__, v) for k, v in row.items()} for row in rows]

    try:
        expected = [row for f in alone for row in rows_of(read_shard(f, spec))[0]]
    except InputError as err:
        with pytest.raises(InputError) as raised:
            rows_of(read_shard(unit, spec))
        assert str(raised.value) == str(err)
        return
    got, sizes = rows_of(read_shard(unit, spec))
    assert typed(got) == typed(expected)
    fields = [json.loads(line) for lines in files for line in lines if line.startswith("{")]
    kinds: dict[str, set[type]] = {}
    for obj in fields:
        for name, value in obj.items():
            if name not in ("id", "text") and value is not None:
                kinds.setdefault(name, set()).add(type(value))
    if all(len(k) == 1 and next(iter(k)) in (str, float, bool) for k in kinds.values()):
        # one scalar type a field (ints left out: past 64 bits they are not gathered):
        # each file's blocks of batch_rows lines join the batch while its rows fit
        packed = [0]
        for lines in files:
            for first in range(0, len(lines), batch_rows):
                rows = sum(bool(line.strip()) for line in lines[first : first + batch_rows])
                if rows and packed[-1] + rows > batch_rows:
                    packed.append(0)
                packed[-1] += rows
        assert sizes == [n for n in packed if n]


# --------------------------------------------------------------- large Parquet files


def one_large_parquet(c4_path: Path, pile_path: Path, path: Path, group_rows: int = 200) -> int:
    """The C4 and Pile samples as one Parquet file of row groups of ``group_rows`` rows,
    without ids (so they are generated from row numbers), the first 100 C4 documents
    again at the end (exact duplicates across the file); its row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [json.loads(line)["text"] for line in gzip.open(c4_path, "rt", encoding="utf-8")]
    texts += [json.loads(line)["contents"] for line in open(pile_path, encoding="utf-8")]
    texts += texts[:100]
    table = pa.table({"text": texts, "n": list(range(len(texts)))})
    pq.write_table(table, path, row_group_size=group_rows)
    return len(texts)


LARGE_STAGES = STAGES + "  - exact_dedup: {}\n"


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_pieces_of_a_large_parquet_file_give_the_rows_the_whole_file_gives(
    c4_path: Path, pile_path: Path, tmp_path: Path, executor: str
) -> None:
    rows = one_large_parquet(c4_path, pile_path, tmp_path / "big.parquet")
    whole = recipe_of("input: {unit_bytes: 0}\n" + LARGE_STAGES, tmp_path / "big.parquet")
    pieces = recipe_of(LARGE_STAGES, tmp_path / "big.parquet")
    first = run_local(whole, tmp_path / "whole")
    second = run_local(pieces, tmp_path / "pieces", **EXECUTORS[executor])
    assert first["shards"]["total"] == 1
    assert second["shards"]["total"] == 11 and second["shards"]["input_files"] == 1
    assert second["rows"] == first["rows"] and first["rows"]["read"] == rows
    counts = ("name", "rows_in", "rows_kept", "dropped_by_reason", "bytes_in")
    assert [[s[c] for c in counts] for s in second["stages"]] == [
        [s[c] for c in counts] for s in first["stages"]
    ]
    # the repeats at the end of the file meet their first copies in other pieces
    assert second["stages"][-1]["dropped_by_reason"]["exact_dedup:duplicate"] > 30
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "pieces", kind) == read_output(tmp_path / "whole", kind)
    ids = read_output(tmp_path / "pieces", "kept")["id"].to_pylist()
    numbers = read_output(tmp_path / "pieces", "kept")["n"].to_pylist()
    assert ids == [f"big.parquet/{n}" for n in numbers]  # row numbers of the whole file


def test_a_run_goes_on_with_other_pieces(c4_path: Path, pile_path: Path, tmp_path: Path) -> None:
    # a run begun with the file whole resumes cut in pieces (read again, since none is
    # found) and one begun in pieces resumes whole: the output is the same each time
    one_large_parquet(c4_path, pile_path, tmp_path / "big.parquet")
    whole = recipe_of("input: {unit_bytes: 0}\n" + LARGE_STAGES, tmp_path / "big.parquet")
    pieces = recipe_of(LARGE_STAGES, tmp_path / "big.parquet")
    reference = run_local(whole, tmp_path / "ref")
    assert run_local(pieces, tmp_path / "ref")["shards"]["resumed"] == 0
    again = run_local(pieces, tmp_path / "ref")
    assert again["shards"]["passes"] == 2
    assert again["shards"]["resumed"] == 2 * again["shards"]["total"] == 22
    assert again["rows"] == reference["rows"]  # the barrier decided again, over the pieces
    run_local(whole, tmp_path / "fresh")
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "ref", kind) == read_output(tmp_path / "fresh", kind)
    back = run_local(whole, tmp_path / "ref")  # and back: decided over the whole file again
    assert back["rows"] == reference["rows"]


def test_a_piece_of_a_file_that_changed_is_an_error(
    c4_path: Path, pile_path: Path, tmp_path: Path
) -> None:
    from curation.io.readers import read_shard
    from curation.recipe import InputSpec

    path = tmp_path / "big.parquet"
    one_large_parquet(c4_path, pile_path, path)
    [file] = resolve_inputs([str(path)])
    pieces = plan_units([file], 64 * 2**20)
    assert [p.row_groups for p in pieces][-2:] == [(9, 10), (10, 11)]
    one_large_parquet(c4_path, pile_path, path, group_rows=1000)  # now 3 row groups
    with pytest.raises(InputError, match=r"row groups 10-10\): the file now has 3 row groups"):
        list(read_shard(pieces[-1], InputSpec(paths=[str(path)])))


def test_a_parquet_footer_that_cannot_be_read_leaves_the_file_whole(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1" + b"\0" * 5000)
    files = [InputShard(str(bad), "bad.parquet", "parquet", 5004)]
    assert inputs.parquet_row_groups(files) == [None]
    assert plan_units(files, 64 * 2**20) == files


@settings(max_examples=300, deadline=None)
@given(
    groups=st.lists(
        st.lists(st.tuples(st.integers(0, 50), st.integers(0, 3000)), max_size=12), max_size=6
    ),
    unit_bytes=st.integers(1, 20_000),
)
def test_pieces_keep_every_row_group_once_in_order(
    groups: list[list[tuple[int, int]]], unit_bytes: int
) -> None:
    """Each Parquet file's row groups lie in exactly one piece, in order, and each piece
    counts its first row on from the rows before it; every piece holds at least the
    target's bytes; a file below twice the target, or of one row group, stays whole."""
    files = [
        InputShard(f"/d/f{i}.parquet", f"d/f{i}.parquet", "parquet", sum(b for _, b in g) + 100)
        for i, g in enumerate(groups)
    ]
    footers = {f.url: g or None for f, g in zip(files, groups, strict=True)}
    shards = plan_units(files, unit_bytes, lambda large: [footers[f.url] for f in large])
    order = [f.url for s in shards for f in s.files]
    assert [u for i, u in enumerate(order) if i == 0 or order[i - 1] != u] == [f.url for f in files]
    target = min(unit_bytes, max(1, sum(f.size or 0 for f in files) // 64))
    for file, file_groups in zip(files, groups, strict=True):
        pieces = [s for s in shards if s.row_groups and s.url == file.url]
        sizes = [b for _, b in file_groups]
        first = next((k for k in range(1, len(sizes) + 1) if sum(sizes[:k]) >= target), None)
        # two pieces need a first prefix of the target's bytes and the target's after it
        can_cut = (file.size or 0) >= 2 * target and first is not None
        can_cut = can_cut and sum(sizes[first:]) >= target
        assert bool(pieces) == can_cut
        if not pieces:
            assert sum(file in s.files for s in shards) == 1  # whole, alone or in a unit
            continue
        assert pieces[0].row_groups[0] == 0 and pieces[-1].row_groups[1] == len(file_groups)
        for before, after in itertools.pairwise(pieces):
            assert before.row_groups[1] == after.row_groups[0]
        for piece in pieces:
            start, stop = piece.row_groups
            assert start < stop
            assert piece.first_row == sum(n for n, _ in file_groups[:start])
            assert piece.size == sum(b for _, b in file_groups[start:stop]) >= target
        assert len(pieces) >= 2
    assert len({s.key for s in shards}) == len(shards)
    assert all(InputShard.from_dict(json.loads(json.dumps(s.to_dict()))) == s for s in shards)


# --------------------------------------------------------------- large JSONL files


def one_large_jsonl(c4_path: Path, pile_path: Path, path: Path) -> list[bytes]:
    """The C4 and Pile samples as one JSONL file of what readers meet: ids on every other
    C4 line (the rest generated from row numbers), blank and whitespace-only lines, CRLF
    line ends, lines that are not JSON or not objects, a stretch of 700 lines whose text
    is under another field (no line of a piece may have the text field), the first 100
    C4 documents again at the end (exact duplicates across the file), and no newline
    after the last line; its lines."""
    c4 = [json.loads(line) for line in gzip.open(c4_path, "rt", encoding="utf-8")]
    pile = [json.loads(line) for line in open(pile_path, encoding="utf-8")]
    lines: list[bytes] = []
    for i, row in enumerate(c4):
        record = {"text": row["text"], "n": i}
        if i % 2:
            record = {"id": f"c4-{i}", **record}
        lines.append(json.dumps(record).encode() + (b"\r\n" if i % 7 == 0 else b"\n"))
        if i % 97 == 0:
            lines.append(b"   \t\n" if i % 2 else b"\n")
        if i % 331 == 5:
            lines.append(b'{"text": "broken\n' if i % 2 else b"[1, 2]\n")
    for j, row in enumerate(pile[:700]):
        lines.append(json.dumps({"body": row["contents"], "n": 10_000 + j}).encode() + b"\n")
    for j, row in enumerate(pile[700:]):
        lines.append(json.dumps({"text": row["contents"], "n": 20_000 + j}).encode() + b"\n")
    lines += [
        json.dumps({"text": row["text"], "n": 30_000 + i}).encode() + b"\n"
        for i, row in enumerate(c4[:100])
    ]
    lines[-1] = lines[-1].rstrip(b"\n")
    path.write_bytes(b"".join(lines))
    return lines


# the reader's batches: a JSONL file is cut between them (2,900 lines make 29)
BLOCK = 100


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_pieces_of_a_large_jsonl_file_give_the_rows_the_whole_file_gives(
    c4_path: Path, pile_path: Path, tmp_path: Path, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.jsonl"
    lines, planned = large_jsonl_pieces(c4_path, pile_path, path, monkeypatch)
    assert len(planned) == 10 and all(p.byte_range for p in planned)
    # some piece lies inside the stretch without the text field: it is no error there
    bodies = [p for p in planned if b'"text"' not in path.read_bytes()[slice(*p.byte_range)]]
    assert bodies
    second = pieces_give_the_whole_file_s_rows(path, lines, tmp_path, executor)
    assert second["shards"]["total"] == 10 and second["shards"]["input_files"] == 1
    table = read_output(tmp_path / "pieces", "dropped")
    # generated ids count the non-blank lines of the whole file: a broken line's row
    rows = [line for line in lines if line.strip()]
    broken = [i for i, line in enumerate(rows) if line.startswith((b"[", b'{"text": "broken'))]
    dropped_ids = set(table["id"].to_pylist())
    assert {f"big.jsonl/{i}" for i in broken} <= dropped_ids


def pieces_give_the_whole_file_s_rows(
    path: Path, lines: list[bytes], tmp_path: Path, executor: str
) -> dict:
    """Run ``LARGE_STAGES`` over the ``one_large_jsonl`` file at ``path`` whole and in
    pieces (on ``executor``); check that the pieces give the whole file's rows, counts and
    output; the pieces' stats."""
    whole = recipe_of(f"input: {{unit_bytes: 0, batch_rows: {BLOCK}}}\n" + LARGE_STAGES, path)
    pieces = recipe_of(f"input: {{batch_rows: {BLOCK}}}\n" + LARGE_STAGES, path)
    first = run_local(whole, tmp_path / "whole")
    second = run_local(pieces, tmp_path / "pieces", **EXECUTORS[executor])
    assert first["shards"]["total"] == 1
    assert second["rows"] == first["rows"]
    assert first["rows"]["read"] == sum(1 for line in lines if line.strip())
    counts = ("name", "rows_in", "rows_kept", "dropped_by_reason", "bytes_in")
    assert [[s[c] for c in counts] for s in second["stages"]] == [
        [s[c] for c in counts] for s in first["stages"]
    ]
    reasons = second["stages"][0]["dropped_by_reason"]
    assert reasons["read:missing_text_field"] == 700 and reasons["read:invalid_json"] == 4
    assert second["stages"][-1]["dropped_by_reason"]["exact_dedup:duplicate"] > 30
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "pieces", kind) == read_output(tmp_path / "whole", kind)
    return second


def test_a_run_over_jsonl_pieces_resumes_the_pieces_it_lost(
    c4_path: Path, pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the planner reads the file again on resume and finds the same pieces: those whose
    # results were lost (a killed run) are read again, the others are not
    path = tmp_path / "big.jsonl"
    _, planned = large_jsonl_pieces(c4_path, pile_path, path, monkeypatch)
    whole = recipe_of(f"input: {{unit_bytes: 0, batch_rows: {BLOCK}}}\n" + LARGE_STAGES, path)
    pieces = recipe_of(f"input: {{batch_rows: {BLOCK}}}\n" + LARGE_STAGES, path)
    run_local(whole, tmp_path / "whole")
    first = run_local(pieces, tmp_path / "pieces")
    shards = tmp_path / "pieces" / "_work" / "seg1" / "shards"
    assert len(list(shards.glob("*/_SUCCESS.json"))) == len(planned) == 10
    for piece in planned[::3]:  # 4 of the last pass's results lost, each with rows kept
        (shards / piece.key / "_SUCCESS.json").unlink()
    again = run_local(pieces, tmp_path / "pieces")
    # the 4 are read again in both passes (a finished run deleted the rows pass 1 hands
    # on); the barrier's decisions stand, made over the same pieces
    assert again["shards"]["resumed"] == 6 + 6 and again["rows"] == first["rows"]
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "pieces", kind) == read_output(tmp_path / "whole", kind)


def test_jsonl_files_are_read_for_pieces_only_where_the_input_needs_them() -> None:
    # one large file among small ones is cut; hundreds of large files make shards
    # enough, and are not read twice to find pieces
    asked: list[list[str]] = []

    def line_pieces(files: list[InputShard], target: int, block_lines: int) -> list:
        asked.append([f.name for f in files])
        return [[] for _ in files]

    def jsonl(name: str, size: int) -> InputShard:
        return InputShard(f"/d/{name}", name, "jsonl", size)

    mixed = [jsonl(f"s{i}.jsonl", 10 << 20) for i in range(100)] + [jsonl("big.jsonl", 5 << 30)]
    plan_units(mixed, 64 << 20, line_pieces=line_pieces)
    assert asked == [["big.jsonl"]]
    asked.clear()
    many = [jsonl(f"l{i}.jsonl", 500 << 20) for i in range(600)]
    assert plan_units(many, 64 << 20, line_pieces=line_pieces) == many
    assert asked == []
    for name in ("big.jsonl.bz2", "big.jsonl.xz", "https://h/big.jsonl.zst"):
        compressed = [InputShard(name, name, "jsonl", 5 << 30)]
        assert plan_units(compressed, 64 << 20, line_pieces=line_pieces) == compressed
        assert plan_units(compressed, 64 << 20, line_pieces=line_pieces, index_folder="/i") == (
            compressed
        )
    assert asked == []
    # zstd: entered at its frames, no index needed
    zstd = [InputShard("/d/big.jsonl.zst", "big.jsonl.zst", "jsonl", 5 << 30)]
    plan_units(zstd, 64 << 20, line_pieces=line_pieces)
    assert asked == [["big.jsonl.zst"]]
    asked.clear()
    gzipped = [InputShard("/d/big.jsonl.gz", "big.jsonl.gz", "jsonl", 5 << 30)]
    assert plan_units(gzipped, 64 << 20, line_pieces=line_pieces) == gzipped
    assert asked == []
    plan_units(gzipped, 64 << 20, line_pieces=line_pieces, index_folder="/i")
    assert asked == [["big.jsonl.gz"]]
    asked.clear()
    # WARC: plain or gzip'd (a member per record needs no index), not compressed otherwise
    warc = [
        InputShard(f"/d/{name}", name, "warc", 5 << 30)
        for name in ("a.warc", "b.warc.gz", "c.warc.zst", "d.warc.wet.gz")
    ]
    plan_units(warc, 64 << 20, line_pieces=line_pieces)
    assert asked == [["a.warc", "b.warc.gz", "d.warc.wet.gz"]]


def test_a_jsonl_file_is_cut_only_where_it_can_be_read_from_the_middle(
    c4_path: Path, pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "_MIN_LINE_PIECE_BYTES", 250_000)
    lines = one_large_jsonl(c4_path, pile_path, tmp_path / "lines.jsonl")
    (tmp_path / "lines.json").write_bytes(b"".join(lines))  # JSON lines named .json
    (tmp_path / "array.json").write_bytes(
        b"[" + b",".join(line for line in lines if line.startswith(b'{"')) + b"]"
    )
    (tmp_path / "pretty.json").write_bytes(b"{\n" + b"\n" * 3_000_000 + b'"text": "x"}\n')
    # one object on its first line, then only blank lines: one value, its records the rows
    wrapped = b'{"data": [{"text": "a"}, {"text": "b"}]}\n'
    (tmp_path / "wrapped.json").write_bytes(wrapped + b"\n" * 3_000_000)
    with gzip.open(tmp_path / "lines.jsonl.gz", "wb") as out:
        out.write(b"".join(lines))
    for name, cut in [
        ("lines.jsonl", True),
        ("lines.json", True),
        ("array.json", False),
        ("pretty.json", False),
        ("wrapped.json", False),
        ("lines.jsonl.gz", False),
    ]:
        files = resolve_inputs([str(tmp_path / name)])
        planned = plan_units(files, 64 * 2**20, batch_rows=BLOCK)
        assert (len(planned) > 1) == cut, name
        if not cut:
            assert planned == files
        assert all(InputShard.from_dict(json.loads(json.dumps(p.to_dict()))) == p for p in planned)
    # a .json file of JSON lines gives the rows the same file named .jsonl gives
    recipe = f"input: {{unit_bytes: UNIT, batch_rows: {BLOCK}}}\n" + STAGES
    as_json = run_local(
        recipe_of(recipe.replace("UNIT", str(64 * 2**20)), tmp_path / "lines.json"), tmp_path / "j"
    )
    as_jsonl = run_local(
        recipe_of(recipe.replace("UNIT", "0"), tmp_path / "lines.jsonl"), tmp_path / "l"
    )
    assert as_json["shards"]["total"] > 1 and as_json["rows"] == as_jsonl["rows"]
    kept = read_output(tmp_path / "j", "kept")["id"].to_pylist()
    assert kept == [
        i.replace("lines.jsonl", "lines.json")
        for i in read_output(tmp_path / "l", "kept")["id"].to_pylist()
    ]


def large_jsonl_pieces(
    c4_path: Path, pile_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[bytes], list[InputShard]]:
    """``one_large_jsonl`` at ``path``, its lines and its 10 pieces."""
    monkeypatch.setattr(inputs, "_MIN_LINE_PIECE_BYTES", 250_000)
    lines = one_large_jsonl(c4_path, pile_path, path)
    pieces = plan_units(resolve_inputs([str(path)]), 64 * 2**20, batch_rows=BLOCK)
    return lines, pieces


def test_a_piece_of_a_jsonl_file_that_changed_is_an_error(
    c4_path: Path, pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curation.io.readers import read_shard
    from curation.recipe import InputSpec

    path = tmp_path / "big.jsonl"
    lines, pieces = large_jsonl_pieces(c4_path, pile_path, path, monkeypatch)
    spec = InputSpec(paths=[str(path)], batch_rows=BLOCK)
    path.write_bytes(b"".join(lines[1:]))  # the first line removed: every cut moves
    with pytest.raises(
        InputError,
        match=r"\(bytes \d+-\d+\): the file is now [\d,]+ bytes and has no line break where",
    ):
        list(read_shard(pieces[3], spec))
    path.write_bytes(b"".join(lines[: len(lines) // 2]))  # cut short
    with pytest.raises(
        InputError,
        match="changed after the run was planned: run the command again with --overwrite",
    ):
        list(read_shard(pieces[-1], spec))


def test_a_damaged_piece_names_the_line_of_the_file(
    c4_path: Path, pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curation.io import readers
    from curation.recipe import InputSpec

    path = tmp_path / "big.jsonl"
    lines, pieces = large_jsonl_pieces(c4_path, pile_path, path, monkeypatch)
    piece = pieces[4]
    data = path.read_bytes()[slice(*piece.byte_range)]
    assert piece.first_line == path.read_bytes()[: piece.byte_range[0]].count(b"\n")
    within = data.index(b"\n", len(data) // 2) + 1  # whole lines, then a disk error

    def failing() -> Iterator[bytes]:
        yield data[:within]
        raise OSError("Input/output error")

    @contextlib.contextmanager
    def broken(shard: InputShard) -> Iterator[Iterator[bytes]]:
        yield failing()

    monkeypatch.setattr(readers, "_piece_chunks", broken)
    line = piece.first_line + data[:within].count(b"\n") + 1
    with pytest.raises(
        CorruptInputError, match=rf"big.jsonl: cannot read past line {line}: OSError"
    ):
        list(readers.read_shard(piece, InputSpec(paths=[str(path)], batch_rows=BLOCK)))
    assert len(lines) > line


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.sampled_from(["response", "request", "metadata", "conversion"]),
            st.integers(0, 400),  # the page's length
            st.booleans(),  # shares a gzip member with the record before it
        ),
        max_size=40,
    ),
    gzipped=st.booleans(),
    target=st.integers(1, 3_000),
    block=st.integers(1, 5),
)
def test_warc_pieces_begin_at_documents_that_begin_a_member_after_whole_blocks(
    records: list[tuple[str, int, bool]], gzipped: bool, target: int, block: int
) -> None:
    """The pieces tile the file on disk; each after the first begins at a document's
    record that begins a gzip member (in a ``.gz`` file) after a whole number of blocks
    of documents, counts the documents before it, and holds at least the target's bytes;
    read one after another they give the whole file's rows."""
    import tempfile

    from curation.io.readers import read_shard, warc_record_pieces
    from curation.recipe import InputSpec
    from tests.conftest import warc_record

    members: list[bytes] = []  # uncompressed, one per gzip member
    starts: list[tuple[bool, int]] = []  # a document record: begins a member, docs before
    docs = 0
    for i, (kind, length, shares) in enumerate(records):
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
        page = f"<html><body><p>page {i} {'x' * length}</p></body></html>".encode()
        body = http + page if kind == "response" else page
        headers = {"WARC-Record-ID": f"<urn:uuid:{i:08d}>", "WARC-Target-URI": f"https://e/{i}"}
        record = warc_record(kind, headers, body)
        begins = not (shares and members)
        if kind in ("response", "conversion"):
            starts.append((begins or not gzipped, docs))
            docs += 1
        if begins:
            members.append(record)
        else:
            members[-1] += record
    data = b"".join(gzip.compress(m) for m in members) if gzipped else b"".join(members)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("x.warc.gz" if gzipped else "x.warc")
        path.write_bytes(data)
        [file] = resolve_inputs([str(path)])
        pieces = warc_record_pieces(file, target, block)
        spec = InputSpec(paths=[str(path)], batch_rows=block)
        whole = [row for batch in read_shard(file, spec) for row in batch.to_pylist()]
        assert len(whole) == docs
        event("cut" if pieces else "whole")
        if not pieces:
            return
        assert len(pieces) >= 2 and pieces[0][:3] == (0, pieces[0][1], 0)
        assert pieces[-1][1] == len(data)
        for (_, stop, _, _), (start, _, _, _) in itertools.pairwise(pieces):
            assert stop == start
        for start, stop, before, _ in pieces:
            assert stop - start >= target and before % block == 0
            assert start == 0 or (True, before) in starts
        shards = inputs._line_shards(file, pieces, None)
        assert [s.first_row for s in shards] == [before for _, _, before, _ in pieces]
        parts = [row for s in shards for batch in read_shard(s, spec) for row in batch.to_pylist()]
        assert parts == whole


# ------------------------------------------------------- large gzip'd JSONL files


def gzip_members(data: bytes, path: Path, members: int = 3, padding: bytes = b"") -> None:
    """``data`` gzip'd into ``members`` members one after another (as ``cat a.gz b.gz``
    makes), ``padding`` between them."""
    cut = len(data) // members
    parts = [data[i * cut : (i + 1) * cut if i < members - 1 else None] for i in range(members)]
    path.write_bytes(padding.join(gzip.compress(part, compresslevel=6) for part in parts))


def large_gzip_pieces(
    c4_path: Path, pile_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, list[bytes], list[InputShard]]:
    """``one_large_jsonl`` gzip'd in three members as ``folder/big.jsonl.gz``; the path,
    its lines and its pieces, their seek index written to ``folder/index``."""
    monkeypatch.setattr(inputs, "_MIN_LINE_PIECE_BYTES", 150_000)
    lines = one_large_jsonl(c4_path, pile_path, folder / "big.jsonl")
    path = folder / "big.jsonl.gz"
    gzip_members(b"".join(lines), path)
    index = str(folder / "index")
    pieces = plan_units(resolve_inputs([str(path)]), 64 << 20, batch_rows=BLOCK, index_folder=index)
    return path, lines, pieces


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_pieces_of_a_large_gzipped_jsonl_file_give_the_rows_the_whole_file_gives(
    c4_path: Path, pile_path: Path, tmp_path: Path, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each worker enters the stream at its piece by the seek index the planner wrote; the
    # rows, ids, order and counts are those of the file read whole by the gzip reader
    path, lines, planned = large_gzip_pieces(c4_path, pile_path, tmp_path, monkeypatch)
    data = b"".join(lines)
    assert len(planned) >= 6
    assert planned[0].byte_range[0] == 0 and planned[-1].byte_range[1] == len(data)
    for piece in planned:
        start, stop = piece.byte_range
        assert piece.first_line == data[:start].count(b"\n") and piece.first_line % BLOCK == 0
        assert "(decompressed bytes " in piece.label and piece.gzip_index
        # each piece about its share of the file on disk
        assert piece.size == pytest.approx((stop - start) * path.stat().st_size / len(data), 1)
    second = pieces_give_the_whole_file_s_rows(path, lines, tmp_path, executor)
    assert second["shards"]["total"] == len(planned)
    # the run's own index, beside its record of the blocks, under _work/
    written = sorted(p.name for p in (tmp_path / "pieces" / "_work" / "gzip_index").iterdir())
    assert len(written) == 2 and written[0].endswith(".gzindex")


def test_a_gzipped_file_is_decompressed_once_to_find_its_pieces(
    c4_path: Path, pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a run that goes on finds the pieces from the blocks kept beside the index; a file
    # changed since is decompressed and indexed again, and its old index deleted
    from curation.io import readers

    path, lines, planned = large_gzip_pieces(c4_path, pile_path, tmp_path, monkeypatch)
    decompressed: list[str] = []
    plain = readers._gzip_chunks

    def counted(raw: object, *args: object) -> Iterator[bytes]:
        decompressed.append(getattr(raw, "name", ""))
        return plain(raw, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(readers, "_gzip_chunks", counted)
    changed = functools.partial(gzip_members, b"".join(lines[:-200]), path)
    before, after = planned_once_until_changed(path, planned, tmp_path, decompressed, changed)
    assert len(after) == 2 and not set(after) & set(before)


def planned_once_until_changed(
    path: Path,
    planned: list[InputShard],
    tmp_path: Path,
    passes: list[str],
    change: Callable[[], None],
) -> tuple[list[Path], list[Path]]:
    """Run ``LARGE_STAGES`` over the compressed file at ``path`` (its ``planned`` pieces);
    lose every third piece's result and run again; ``change`` the file (200 lines fewer)
    and run again. ``passes`` gets the file each time the planner decompresses it (the
    caller counts): once for the first two runs, once more for the changed file. What
    ``_work/gzip_index/`` held before and after the change."""
    recipe = recipe_of(f"input: {{batch_rows: {BLOCK}}}\n" + LARGE_STAGES, path)
    first = run_local(recipe, tmp_path / "run")
    assert passes == [str(path)] and first["shards"]["total"] == len(planned)
    shards = tmp_path / "run" / "_work" / "seg1" / "shards"
    for piece in planned[::3]:
        (shards / piece.key / "_SUCCESS.json").unlink()
    again = run_local(recipe, tmp_path / "run")
    assert passes == [str(path)]  # not again
    assert again["shards"]["resumed"] > 0 and again["rows"] == first["rows"]
    kept = tmp_path / "run" / "_work" / "gzip_index"
    before = sorted(kept.iterdir())
    change()
    third = run_local(recipe, tmp_path / "run")
    assert passes == [str(path)] * 2
    assert third["rows"]["read"] < first["rows"]["read"]
    return before, sorted(kept.iterdir())


def test_a_gzipped_file_that_cannot_be_indexed_is_read_whole(
    c4_path: Path, pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "_MIN_LINE_PIECE_BYTES", 150_000)
    lines = one_large_jsonl(c4_path, pile_path, tmp_path / "big.jsonl")
    data = b"".join(lines)
    index = str(tmp_path / "index")
    # zero bytes between members, which the reader passes over as gzip does and the
    # indexer refuses: read whole, the rows the plain file gives
    padded = tmp_path / "padded.jsonl.gz"
    gzip_members(data, padded, padding=b"\0" * 512)
    files = resolve_inputs([str(padded)])
    assert plan_units(files, 64 << 20, batch_rows=BLOCK, index_folder=index) == files
    recipe = f"input: {{batch_rows: {BLOCK}}}\n" + STAGES
    read = run_local(recipe_of(recipe, padded), tmp_path / "padded")
    plain = run_local(recipe_of(recipe, tmp_path / "big.jsonl"), tmp_path / "plain")
    assert read["shards"]["total"] == 1 and read["rows"] == plain["rows"]
    # a truncated file: read whole, and its reader names the line where it breaks off
    truncated = tmp_path / "truncated.jsonl.gz"
    gzip_members(data, truncated, members=1)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size * 2 // 3])
    files = resolve_inputs([str(truncated)])
    assert plan_units(files, 64 << 20, batch_rows=BLOCK, index_folder=index) == files
    with pytest.raises(CorruptInputError, match=r"truncated.jsonl.gz: cannot read past line"):
        run_local(recipe_of(recipe, truncated), tmp_path / "truncated")
    assert not list(Path(index).glob("*.gzindex"))  # nothing left of either


def test_a_piece_of_a_gzipped_file_that_changed_is_an_error(
    c4_path: Path, pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curation.io.readers import read_shard
    from curation.recipe import InputSpec

    path, lines, pieces = large_gzip_pieces(c4_path, pile_path, tmp_path, monkeypatch)
    spec = InputSpec(paths=[str(path)], batch_rows=BLOCK)
    assert sum(len(b) for p in pieces for b in read_shard(p, spec)) > 2000
    # the first line removed: every cut moves, and the index no longer fits the file
    gzip_members(b"".join(lines[1:]), path)
    with pytest.raises(
        InputError,
        match=r"\(decompressed bytes \d+-\d+\): the file does not fit the seek index the run "
        r"wrote for it \(.+\), so it changed after the run was planned",
    ):
        list(read_shard(pieces[3], spec))
    # a piece that begins or ends inside a line, as a file changed otherwise would give
    gzip_members(b"".join(lines), path)
    start, stop = pieces[3].byte_range
    for moved in [(start + 1, stop), (start, stop - 1)]:
        with pytest.raises(
            InputError,
            match=r"its decompressed bytes have no line break where this piece of them begins "
            "or ends, so it changed after the run was planned",
        ):
            list(read_shard(dataclasses.replace(pieces[3], byte_range=moved), spec))
    Path(pieces[3].gzip_index).unlink()
    with pytest.raises(InputError, match=r"the seek index its run wrote for it, .* is gone"):
        list(read_shard(pieces[3], spec))


# -------------------------------------------------------- large zstd'd JSONL files


def zstd_frames(data: bytes, path: Path, frame_bytes: int | None = None) -> None:
    """``data`` compressed with zstd at ``path``: one frame (as ``zstd`` writes a file), or
    a frame every ``frame_bytes`` of it (as ``pzstd`` and the seekable format write),
    with a skippable frame after the first."""
    import struct

    import zstandard

    compressor = zstandard.ZstdCompressor(level=3)
    if frame_bytes is None:
        path.write_bytes(compressor.compress(data))
        return
    frames = [
        compressor.compress(data[i : i + frame_bytes]) for i in range(0, len(data), frame_bytes)
    ]
    skippable = struct.pack("<II", 0x184D2A5E, 6) + b"seekit"
    path.write_bytes(b"".join([*frames[:1], skippable, *frames[1:]]))


def large_zstd_pieces(
    c4_path: Path,
    pile_path: Path,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    frame_bytes: int | None,
) -> tuple[Path, list[bytes], list[InputShard]]:
    """``one_large_jsonl`` as ``folder/big.jsonl.zst`` (see ``zstd_frames``); the path, its
    lines and its pieces, their record written to ``folder/index``."""
    monkeypatch.setattr(inputs, "_MIN_LINE_PIECE_BYTES", 50_000)
    lines = one_large_jsonl(c4_path, pile_path, folder / "big.jsonl")
    path = folder / "big.jsonl.zst"
    zstd_frames(b"".join(lines), path, frame_bytes)
    index = str(folder / "index")
    pieces = plan_units(resolve_inputs([str(path)]), 64 << 20, batch_rows=BLOCK, index_folder=index)
    return path, lines, pieces


def passed_over(pieces: list[InputShard]) -> int:
    """The decompressed bytes the readers of ``pieces`` pass over before their starts."""
    return sum(p.byte_range[0] - p.zstd_frame[1] for p in pieces)


@pytest.mark.parametrize(
    ("executor", "frame_bytes"), [("local", None), ("local", 100_000), ("ray2", 100_000)]
)
def test_pieces_of_a_large_zstd_jsonl_file_give_the_rows_the_whole_file_gives(
    c4_path: Path,
    pile_path: Path,
    tmp_path: Path,
    executor: str,
    frame_bytes: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # each worker decompresses from the frame that holds its piece's start; the rows, ids,
    # order and counts are those of the file read whole by the zstd reader
    from curation.io.readers import ZSTD_PASSED_OVER

    path, lines, planned = large_zstd_pieces(c4_path, pile_path, tmp_path, monkeypatch, frame_bytes)
    data = b"".join(lines)
    disk = path.read_bytes()
    assert planned[0].byte_range[0] == 0 and planned[-1].byte_range[1] == len(data)
    for piece in planned:
        start = piece.byte_range[0]
        assert piece.first_line == data[:start].count(b"\n") and piece.first_line % BLOCK == 0
        assert "(decompressed bytes " in piece.label and piece.gzip_index is None
        at, first = piece.zstd_frame
        assert disk[at : at + 4] == b"\x28\xb5\x2f\xfd" and first <= start
        if frame_bytes:  # the last frame that begins at or before the piece
            assert start - first < frame_bytes
    if frame_bytes is None:
        # one frame: each reader decompresses the file from its start, so the pieces are
        # fewer and larger than the target asks (2 * 4 + 1 at most)
        assert 2 <= len(planned) <= 2 * ZSTD_PASSED_OVER + 1
        assert {p.zstd_frame for p in planned} == {(0, 0)}
    else:
        assert len(planned) >= 12 and len({p.zstd_frame for p in planned}) == len(planned)
    assert passed_over(planned) <= ZSTD_PASSED_OVER * len(data)
    sizes = [p.size for p in planned]
    assert sum(sizes) == pytest.approx(path.stat().st_size, rel=0.01)
    second = pieces_give_the_whole_file_s_rows(path, lines, tmp_path, executor)
    assert second["shards"]["total"] == len(planned)
    # the blocks and frames the planner found are kept under _work/ for a run that goes on
    [record] = (tmp_path / "pieces" / "_work" / "gzip_index").iterdir()
    assert record.name.endswith(".zstd.json")


@settings(max_examples=80, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 120), min_size=10, max_size=80),
    frame_bytes=st.one_of(st.none(), st.integers(1, 2_000)),
    block=st.integers(1, 5),
    target=st.integers(1, 300),
)
def test_zstd_pieces_read_every_line_once_in_order(
    lengths: list[int], frame_bytes: int | None, block: int, target: int
) -> None:
    """Whatever the frames, blocks and target: the pieces tile the decompressed bytes; each
    enters at the last frame that begins at or before it; all pass over at most
    ``ZSTD_PASSED_OVER`` times the file; and read one after another, they give the lines
    the whole file gives, in order."""
    import hashlib
    import tempfile

    from curation.io.readers import ZSTD_PASSED_OVER, _piece_chunks, _zstd_line_pieces

    # text that compresses little, so that the target on disk makes several pieces
    words = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(8)).hex().encode()
    data = b"".join(words[i : i + n] + b"\n" for i, n in enumerate(lengths))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.jsonl.zst"
        zstd_frames(data, path, frame_bytes)
        [file] = resolve_inputs([str(path)])
        pieces = _zstd_line_pieces(file, target, block, None)
        event(f"pieces: {min(len(pieces), 5)}")
        if not pieces:
            return
        shards = inputs._line_shards(file, pieces, None)
        assert shards[0].byte_range[0] == 0 and shards[-1].byte_range[1] == len(data)
        for one, two in itertools.pairwise(shards):
            assert one.byte_range[1] == two.byte_range[0]
        read = b""
        for shard in shards:
            start = shard.byte_range[0]
            first = shard.zstd_frame[1]
            assert first <= start
            if frame_bytes:
                assert start - first < frame_bytes
            with _piece_chunks(shard) as chunks:
                read += b"".join(chunks)
        assert read == data
        assert passed_over(shards) <= ZSTD_PASSED_OVER * len(data)


def test_a_zstd_file_is_decompressed_once_to_find_its_pieces(
    c4_path: Path, pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a run that goes on finds the pieces from the record of the blocks and frames; a file
    # changed since is decompressed again, and its old record deleted
    from curation.io import readers

    path, lines, planned = large_zstd_pieces(c4_path, pile_path, tmp_path, monkeypatch, 100_000)
    planned_from: list[str] = []
    plain = readers._zstd_chunks

    def counted(raw: object, *args: object, **kwargs: object) -> Iterator[bytes]:
        if "frames" in kwargs:  # the planner's pass, not a reader's
            planned_from.append(getattr(raw, "name", ""))
        return plain(raw, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(readers, "_zstd_chunks", counted)
    changed = functools.partial(zstd_frames, b"".join(lines[:-200]), path, 100_000)
    before, after = planned_once_until_changed(path, planned, tmp_path, planned_from, changed)
    assert len(after) == 1 and after != before


def test_a_zstd_file_that_cannot_be_read_to_its_end_is_read_whole(
    c4_path: Path, pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "_MIN_LINE_PIECE_BYTES", 150_000)
    lines = one_large_jsonl(c4_path, pile_path, tmp_path / "big.jsonl")
    truncated = tmp_path / "truncated.jsonl.zst"
    zstd_frames(b"".join(lines), truncated, 100_000)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size * 2 // 3])
    index = str(tmp_path / "index")
    files = resolve_inputs([str(truncated)])
    assert plan_units(files, 64 << 20, batch_rows=BLOCK, index_folder=index) == files
    assert not Path(index).exists()  # nothing kept of it
    recipe = f"input: {{batch_rows: {BLOCK}}}\n" + STAGES
    with pytest.raises(CorruptInputError, match=r"truncated.jsonl.zst: cannot read past line"):
        run_local(recipe_of(recipe, truncated), tmp_path / "truncated")


@pytest.mark.parametrize("frame_bytes", [None, 100_000])
def test_a_piece_of_a_zstd_file_that_changed_is_an_error(
    c4_path: Path,
    pile_path: Path,
    tmp_path: Path,
    frame_bytes: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from curation.io.readers import read_shard
    from curation.recipe import InputSpec

    path, lines, pieces = large_zstd_pieces(c4_path, pile_path, tmp_path, monkeypatch, frame_bytes)
    spec = InputSpec(paths=[str(path)], batch_rows=BLOCK)
    assert sum(len(b) for p in pieces for b in read_shard(p, spec)) > 2000
    piece = pieces[3]
    # the first line removed: every cut moves (and the frames, when there are several)
    zstd_frames(b"".join(lines[1:]), path, frame_bytes)
    problem = (
        "its decompressed bytes have no line break where this piece of them begins or ends"
        if frame_bytes is None
        else r"no zstd frame begins at byte [\d,]+ of the file, where the run found one"
    )
    with pytest.raises(
        InputError,
        match=rf"\(decompressed bytes \d+-\d+\): {problem}, so it changed after the run was "
        "planned: run the command again with --overwrite",
    ):
        list(read_shard(piece, spec))
    # a piece that begins or ends inside a line, as a file changed otherwise would give
    zstd_frames(b"".join(lines), path, frame_bytes)
    start, stop = piece.byte_range
    for moved in [(start + 1, stop), (start, stop - 1)]:
        with pytest.raises(InputError, match="have no line break where this piece of them"):
            list(read_shard(dataclasses.replace(piece, byte_range=moved), spec))
    # cut short before the piece begins
    path.write_bytes(path.read_bytes()[: piece.size])
    with pytest.raises(InputError, match="changed after the run was planned"):
        list(read_shard(piece, spec))


# ------------------------------------------------------------------ large WARC files


def large_warc(warc_dir: Path, path: Path, copies: int = 30) -> bytes:
    """The two WARC samples ``copies`` times over as one file at ``path``: gzip'd a member
    per record as they are (as Common Crawl ships WARC), or decompressed for a ``.warc``
    path; the file's bytes."""
    members = b"".join(f.read_bytes() for f in sorted(warc_dir.glob("*.warc.gz"))) * copies
    data = members if path.name.endswith(".gz") else gzip.decompress(members)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize(
    ("name", "executor"),
    [("big.warc.gz", "local"), ("big.warc.gz", "ray2"), ("big.warc", "local")],
)
def test_pieces_of_a_large_warc_file_give_the_rows_the_whole_file_gives(
    warc_dir: Path, tmp_path: Path, name: str, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each piece begins at a document's record (its own gzip member) after whole batches
    # of documents: its rows are those the whole file gives, in the same batches
    monkeypatch.setattr(inputs, "_MIN_LINE_PIECE_BYTES", 400_000)
    path = tmp_path / name
    data = large_warc(warc_dir, path)
    batch = 20
    planned = plan_units(resolve_inputs([str(path)]), 64 << 20, batch_rows=batch)
    assert len(planned) >= 6 and all(p.byte_range and not p.gzip_index for p in planned)
    assert planned[0].byte_range[0] == 0 and planned[-1].byte_range[1] == len(data)
    for piece, after in itertools.pairwise(planned):
        assert piece.byte_range[1] == after.byte_range[0]
        assert after.first_row % batch == 0 and after.first_row > piece.first_row
    whole = recipe_of(f"input: {{unit_bytes: 0, batch_rows: {batch}}}\n" + STAGES, path)
    pieces = recipe_of(f"input: {{batch_rows: {batch}}}\n" + STAGES, path)
    first = run_local(whole, tmp_path / "whole")
    second = run_local(pieces, tmp_path / "pieces", **EXECUTORS[executor])
    assert first["shards"]["total"] == 1 and second["shards"]["total"] == len(planned)
    assert second["rows"] == first["rows"] and first["rows"]["read"] == 37 * 30
    counts = ("name", "rows_in", "rows_kept", "dropped_by_reason", "bytes_in")
    assert [[s[c] for c in counts] for s in second["stages"]] == [
        [s[c] for c in counts] for s in first["stages"]
    ]
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "pieces", kind) == read_output(tmp_path / "whole", kind)


def test_a_warc_file_is_cut_only_where_a_record_begins_on_disk(
    warc_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curation.io.readers import read_shard
    from curation.recipe import InputSpec

    monkeypatch.setattr(inputs, "_MIN_LINE_PIECE_BYTES", 400_000)
    # gzip'd whole, one member: no record begins a member but the first
    text = large_warc(warc_dir, tmp_path / "big.warc")
    (tmp_path / "whole.warc.gz").write_bytes(gzip.compress(text))
    files = resolve_inputs([str(tmp_path / "whole.warc.gz")])
    assert plan_units(files, 64 << 20, batch_rows=20) == files
    # a piece of a file changed since the run was planned
    path = tmp_path / "big.warc.gz"
    data = large_warc(warc_dir, path)
    pieces = plan_units(resolve_inputs([str(path)]), 64 << 20, batch_rows=20)
    spec = InputSpec(paths=[str(path)], batch_rows=20)
    path.write_bytes(data[100:])
    with pytest.raises(
        InputError,
        match=r"\(bytes \d+-\d+\): the file is now [\d,]+ bytes and no gzip member begins at "
        "byte [\\d,]+, so it changed after the run was planned",
    ):
        list(read_shard(pieces[3], spec))


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(
        st.sampled_from([b"{}", b'{"a": 1}', b"", b" ", b"\t \r", b"\r", b"x" * 40, b" {}"]),
        max_size=60,
    ),
    ends=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=60, max_size=60),
    last_newline=st.booleans(),
    chunk=st.integers(1, 50),
    target=st.integers(1, 300),
    block=st.integers(1, 4),
)
def test_line_pieces_cut_whole_lines_and_count_the_rows_before_them(
    lines: list[bytes], ends: list[bytes], last_newline: bool, chunk: int, target: int, block: int
) -> None:
    """The pieces tile the bytes, each begins at the start or after a whole number of
    blocks of lines and holds at least the target's bytes; each counts the lines, and the
    non-blank lines (the reader's rows), before it; chunking does not change them."""
    from curation.io.readers import _joined, line_pieces

    data = b"".join(line + end for line, end in zip(lines, ends, strict=False))
    if not last_newline and data.endswith(b"\n"):
        data = data[:-1]
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    pieces = line_pieces(iter(chunks), target, block)
    assert pieces == line_pieces(iter([data]), target, block)
    # a gzip'd file's blocks, found once and joined for a target, are the same pieces
    blocks = line_pieces(iter(chunks), 1, block)
    assert (_joined(blocks, target) if blocks else []) == pieces
    if not pieces:
        # no block start lies at least target in, with at least target after it
        starts = [i + 1 for i, b in enumerate(data) if b == 10]
        starts = starts[block - 1 :: block]
        assert not any(s >= target and len(data) - s >= target for s in starts)
        return
    assert len(pieces) >= 2
    assert pieces[0][0] == 0 and pieces[-1][1] == len(data)
    for (_, stop, _, _), (start, _, _, _) in itertools.pairwise(pieces):
        assert stop == start
    for start, stop, rows, count in pieces:
        assert stop - start >= target
        assert start == 0 or data[start - 1] == 10
        before = data[:start].split(b"\n")[:-1] if start else []
        assert count == len(before) and count % block == 0
        assert rows == sum(1 for line in before if line.strip())


def test_a_shards_key_changes_with_the_version_of_any_file_it_reads(tmp_path: Path) -> None:
    # A resumed run finds a shard's results by its key: the key must change when a file
    # it reads does (size or modification time), and only then, for whole files, units
    # of small files and pieces of a large one alike.
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.jsonl").write_text(json.dumps({"text": f"document {i}"}) + "\n")

    def listed() -> list[InputShard]:
        return resolve_inputs([str(folder)])

    files = listed()
    stat = os.stat(folder / "f1.jsonl")
    assert files[1].version == f"{stat.st_size}/{stat.st_mtime}"
    [unit] = inputs._gather_small(files, 1 << 20)  # as plan_units does for many
    assert unit.members == tuple(files)
    assert [f.key for f in listed()] == [f.key for f in files]  # listing again: the same

    later = stat.st_mtime_ns + 10**9
    os.utime(folder / "f1.jsonl", ns=(later, later))  # touched: same bytes, later
    touched = listed()
    assert [f.key == g.key for f, g in zip(files, touched, strict=True)] == [True, False, True]
    assert [f.label for f in touched] == [f.label for f in files]
    [touched_unit] = inputs._gather_small(touched, 1 << 20)
    assert touched_unit.label == unit.label and touched_unit.key != unit.key

    with open(folder / "f2.jsonl", "a") as out:  # grown
        out.write(json.dumps({"text": "one more"}) + "\n")
    assert listed()[2].key != touched[2].key

    # the pieces of a large file carry its version, and keep it across processes
    def two_pieces(large: list[InputShard], target: int, block_lines: int) -> list:
        return [[(0, 10, 0, 0), (10, 20, 5, 5)] for _ in large]

    big = [InputShard("/d/big.jsonl", "big.jsonl", "jsonl", 1 << 30, version="1073741824/7.5")]
    pieces = plan_units(big, 64 << 20, line_pieces=two_pieces)
    assert len(pieces) == 2 and {p.version for p in pieces} == {"1073741824/7.5"}
    assert all(InputShard.from_dict(json.loads(json.dumps(p.to_dict()))) == p for p in pieces)
    newer = [InputShard("/d/big.jsonl", "big.jsonl", "jsonl", 1 << 30, version="1073741824/8.5")]
    again = plan_units(newer, 64 << 20, line_pieces=two_pieces)
    assert [p.label for p in again] == [p.label for p in pieces]
    assert not {p.key for p in again} & {p.key for p in pieces}
