"""Parquet files joined by their bytes: the joined file reads as the files one after
another (pyarrow and polars), keeps each row group's statistics, and files that cannot
be joined so are refused before anything is written; the run's finish joins large parts
and gives the rows a decoding merge gives."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.io import concat, writers
from curation.io.concat import NotJoinable, join_parquet
from tests.conftest import read_output, recipe_of, run_local, shared_file


def c4_table() -> pa.Table:
    path = shared_file("web/c4-sample-1000.jsonl.gz")
    rows = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    return pa.Table.from_pylist(rows)


def footer_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    (length,) = struct.unpack("<I", data[-8:-4])
    return data[-8 - length : -8]


TYPES = {
    "i64": (st.integers(-(2**63), 2**63 - 1), pa.int64()),
    "f64": (st.floats(allow_nan=False), pa.float64()),
    "text": (st.text(max_size=30), pa.large_string()),
    "flag": (st.booleans(), pa.bool_()),
    "words": (st.lists(st.text(max_size=5), max_size=4), pa.list_(pa.string())),
    "meta": (
        st.fixed_dictionaries({"a": st.integers(0, 9), "b": st.text(max_size=4)}),
        pa.struct([("a", pa.int32()), ("b", pa.string())]),
    ),
}


@settings(max_examples=60, deadline=None)
@given(
    columns=st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=4, unique=True),
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=5),
    group=st.integers(1, 25),
    compression=st.sampled_from(["zstd", "snappy", "gzip", "none"]),
    dictionary=st.booleans(),
    data=st.data(),
)
def test_joined_file_reads_as_the_files_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    columns: list[str],
    sizes: list[int],
    group: int,
    compression: str,
    dictionary: bool,
    data: st.DataObject,
) -> None:
    folder = tmp_path_factory.mktemp("join")
    schema = pa.schema([(name, TYPES[name][1]) for name in columns])
    tables, paths = [], []
    for index, size in enumerate(sizes):
        rows = {
            name: data.draw(st.lists(st.none() | TYPES[name][0], min_size=size, max_size=size))
            for name in columns
        }
        table = pa.table(rows, schema=schema)
        path = folder / f"p{index}.parquet"
        pq.write_table(
            table,
            path,
            row_group_size=group,
            compression=compression,
            use_dictionary=dictionary,
        )
        # the footer reads and writes back to the same bytes
        fields, _ = concat._footer(path)
        writer = concat._Writer()
        writer.struct(fields)
        assert bytes(writer.out) == footer_bytes(path)
        tables.append(table)
        paths.append(path)
    target = folder / "joined.parquet"
    assert join_parquet(paths, target) == sum(sizes)
    whole = pa.concat_tables(tables)
    assert pq.read_table(target).equals(whole)
    assert pl.read_parquet(target).equals(pl.from_arrow(whole))
    joined = pq.ParquetFile(target).metadata
    groups = [pq.ParquetFile(p).metadata for p in paths]
    assert joined.num_row_groups == sum(m.num_row_groups for m in groups)
    theirs = [m.row_group(i) for m in groups for i in range(m.num_row_groups)]
    for index, original in enumerate(theirs):  # each row group's statistics as they were
        mine = joined.row_group(index)
        assert mine.num_rows == original.num_rows
        for column in range(original.num_columns):
            before, after = original.column(column), mine.column(column)
            assert after.statistics == before.statistics
            assert after.total_compressed_size == before.total_compressed_size


def test_real_text_joined_and_filtered_by_statistics(tmp_path: Path) -> None:
    table = c4_table()
    paths = []
    for index in range(4):
        path = tmp_path / f"p{index}.parquet"
        pq.write_table(table.slice(index * 250, 250), path, row_group_size=100)
        paths.append(path)
    join_parquet(paths, tmp_path / "all.parquet")
    assert pq.read_table(tmp_path / "all.parquet").equals(table)
    urls = table["url"].to_pylist()
    found = pq.read_table(tmp_path / "all.parquet", filters=[("url", "=", urls[777])])
    assert found["url"].to_pylist() == [urls[777]]
    frame = pl.scan_parquet(tmp_path / "all.parquet").slice(600, 5).collect()
    assert frame["url"].to_list() == urls[600:605]


def test_files_that_cannot_be_joined_are_refused(tmp_path: Path) -> None:
    table = c4_table().slice(0, 50)
    pq.write_table(table, tmp_path / "a.parquet")
    pq.write_table(table.drop_columns(["url"]), tmp_path / "other.parquet")
    pq.write_table(table, tmp_path / "indexed.parquet", write_page_index=True)
    (tmp_path / "text.parquet").write_text("not parquet")
    target = tmp_path / "out.parquet"
    for other, message in [
        ("other.parquet", "schema differs"),
        ("indexed.parquet", "page index"),
        ("text.parquet", "not a plain Parquet file"),
    ]:
        with pytest.raises(NotJoinable, match=message):
            join_parquet([tmp_path / "a.parquet", tmp_path / other], target)
        assert not target.exists()
    meta = table.schema.with_metadata({"note": "another"})
    pq.write_table(table.cast(meta), tmp_path / "meta.parquet")
    with pytest.raises(NotJoinable, match="schema differs"):
        join_parquet([tmp_path / "a.parquet", tmp_path / "meta.parquet"], target)


def test_the_finish_joins_large_parts_and_gathers_small_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts whose row groups are large are joined by their bytes: the file holds each
    part's pages as they were, and the rows a decoding merge writes. Small ones are
    gathered into row groups anew."""
    table = c4_table()
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(8):
        pq.write_table(table.slice(index * 125, 125), folder / f"s{index}.parquet")
    joins: list[int] = []

    def counted(sources: list[Path], target: Path) -> int:
        joins.append(len(sources))
        return join_parquet(sources, target)

    monkeypatch.setattr(concat, "join_parquet", counted)
    recipe = "stages:\n  - length_filter: {min_chars: 1000}\noutput: {row_group_bytes: 20000}\n"
    stats = run_local(recipe_of(recipe, folder), tmp_path / "joined")
    assert stats["files"] == {"kept": 1, "dropped": 1}
    assert joins == [8, 8]  # kept/ and dropped/: each a file of the 8 shards' parts
    [joined] = (tmp_path / "joined" / "kept").iterdir()
    data = joined.read_bytes()
    parts = sorted((tmp_path / "joined" / "_work").rglob("kept-*.parquet"))
    assert len(parts) == 8
    for part in parts:
        pages = part.read_bytes()
        (length,) = struct.unpack("<I", pages[-8:-4])
        assert pages[4 : -8 - length] in data
    monkeypatch.setattr(writers, "JOIN_GROUP_SHARE", float("inf"))  # always decode
    run_local(recipe_of(recipe, folder), tmp_path / "decoded")
    assert joins == [8, 8]
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "joined", kind) == read_output(tmp_path / "decoded", kind)
    monkeypatch.undo()
    small = recipe.replace("row_group_bytes: 20000", "row_group_bytes: 10000000")
    run_local(recipe_of(small, folder), tmp_path / "small")
    [gathered] = (tmp_path / "small" / "kept").iterdir()
    assert pq.ParquetFile(gathered).metadata.num_row_groups == 1
    assert read_output(tmp_path / "small", "kept") == read_output(tmp_path / "joined", "kept")
