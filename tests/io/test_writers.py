"""Writers: JSONL output (plain, gzip, zstd) holds the same rows as Parquet output;
parts respect shard_rows; no temporary file survives a finished run."""

from __future__ import annotations

import gzip
import io
import itertools
import json
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.io.writers import PartitionedWriter, partition_folder
from curation.recipe import OutputSpec, RecipeError
from curation.runtime.run import _file_groups
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


def small_files(c4_path: Path, folder: Path, files: int) -> list[dict]:
    """The C4 sample as ``files`` JSONL files (one document in three has an extra
    ``source`` column, so the parts' schemas differ); its rows, in file order."""
    rows = [json.loads(line) for line in gzip.open(c4_path, "rt", encoding="utf-8")]
    folder.mkdir()
    per = -(-len(rows) // files)
    for i in range(files):
        with open(folder / f"f{i:03d}.jsonl", "w", encoding="utf-8") as out:
            for j, row in enumerate(rows[i * per : (i + 1) * per]):
                extra = {"source": f"s{i}"} if (i * per + j) % 3 == 0 else {}
                out.write(json.dumps({**row, **extra}) + "\n")
    return rows


def test_the_parts_of_small_input_files_are_merged_in_order(c4_path: Path, tmp_path: Path) -> None:
    # one output file per input file's part: 1,000 text files gave 1,000 one-row files
    small_files(c4_path, tmp_path / "in", 40)
    stages = "stages:\n  - length_filter: {min_chars: 1500}\n"
    apart = run_local(
        recipe_of(stages + "output: {min_file_bytes: 0}\n", tmp_path / "in"), tmp_path / "a"
    )
    merged = run_local(recipe_of(stages, tmp_path / "in"), tmp_path / "m")
    assert apart["files"]["kept"] == 40 and merged["files"]["kept"] == 1
    assert merged["files"]["dropped"] == 1
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "m", kind) == read_output(tmp_path / "a", kind)
    kept = read_output(tmp_path / "m", "kept")
    assert "source" in kept.column_names and kept["source"].null_count > 0
    # shard_rows still bounds a file; min_file_bytes sets where a merged file closes
    capped = stages + "output: {shard_rows: 100, min_file_bytes: 40000}\n"
    run_local(recipe_of(capped, tmp_path / "in"), tmp_path / "c")
    parts = sorted((tmp_path / "c" / "kept").iterdir())
    rows = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    assert max(rows) <= 100 and sum(rows) == kept.num_rows and len(parts) > 1
    assert len(parts) < 40  # the parts are 20 to 40 kB: about two go to a file
    assert read_output(tmp_path / "c", "kept") == kept
    assert [p for p in (tmp_path / "c").rglob(".tmp-*")] == []


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_merged_jsonl_parts_are_one_valid_file(
    c4_path: Path, tmp_path: Path, compression: str
) -> None:
    small_files(c4_path, tmp_path / "in", 10)
    recipe = f"stages: []\noutput: {{format: jsonl, compression: {compression}}}\n"
    stats = run_local(recipe_of(recipe, tmp_path / "in"), tmp_path / "out")
    [part] = sorted((tmp_path / "out" / "kept").iterdir())
    assert stats["files"]["kept"] == 1
    rows = jsonl_rows(tmp_path / "out" / "kept")
    assert len(rows) == 1000 and [r["id"] for r in rows[:2]] == [
        "in/f000.jsonl/0",
        "in/f000.jsonl/1",
    ]
    if compression == "gzip":  # the standard library reads every member
        assert len(gzip.decompress(part.read_bytes()).splitlines()) == 1000


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 100)), max_size=30),
    min_bytes=st.integers(0, 8000),
    shard_rows=st.integers(100, 300),
)
def test_file_groups_pack_small_parts_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    parts: list[tuple[int, int]],
    min_bytes: int,
    shard_rows: int,
) -> None:
    """Every part lands in exactly one file, in order; a part of at least min_file_bytes
    is a file alone; a file of several parts holds only smaller ones, at most shard_rows
    rows, and closes only when it reached min_file_bytes or the next part would pass
    shard_rows (or a large part or the end comes)."""
    folder = tmp_path_factory.mktemp("parts")
    sources = []
    for i, (size, rows) in enumerate(parts):
        path = folder / f"p{i}"
        path.write_bytes(b"x" * size)
        sources.append((path, rows))
    output = OutputSpec(min_file_bytes=min_bytes, shard_rows=shard_rows)
    groups = _file_groups(sources, output)
    assert [i for group in groups for i in group] == list(range(len(parts)))
    for group in groups:
        sizes = [parts[i][0] for i in group]
        if len(group) > 1:
            assert all(size < min_bytes for size in sizes)
            assert sum(parts[i][1] for i in group) <= shard_rows
            assert sum(sizes[:-1]) < min_bytes  # it was still open for its last part
        after = group[-1] + 1
        if all(size < min_bytes for size in sizes) and after < len(parts):
            nxt_size, nxt_rows = parts[after]
            reached = sum(sizes) >= min_bytes
            too_many = sum(parts[i][1] for i in group) + nxt_rows > shard_rows
            assert reached or too_many or nxt_size >= min_bytes


# --- kept rows a folder per value: output.partition_by ---------------------------------

PARTITIONED = "stages:\n  - length_filter: {min_chars: 1500}\noutput: {partition_by: source}\n"


def folder_rows(out: Path) -> dict[str, list[dict]]:
    """The kept rows of each folder below OUT/kept, in file order."""
    return {
        folder.name: read_output(out / "kept", folder.name).to_pylist()
        for folder in sorted((out / "kept").iterdir())
    }


def test_partition_by_writes_each_value_in_its_folder_in_order(
    c4_path: Path, tmp_path: Path
) -> None:
    # 10 files: a third of the rows have a source (s0 ... s9, one a file), the rest null
    small_files(c4_path, tmp_path / "in", 10)
    whole = run_local(
        recipe_of(
            PARTITIONED.replace("partition_by: source", "shard_rows: 100000"), tmp_path / "in"
        ),
        tmp_path / "w",
    )
    stats = run_local(recipe_of(PARTITIONED, tmp_path / "in"), tmp_path / "p")
    kept = read_output(tmp_path / "w", "kept").to_pylist()
    folders = folder_rows(tmp_path / "p")
    assert sorted(folders) == sorted([f"s{i}" for i in range(10)] + ["null"])
    for name, rows in folders.items():
        # the rows of that value, in the order the whole run keeps them
        assert rows == [r for r in kept if (r.get("source") or "null") == name], name
    assert sum(len(rows) for rows in folders.values()) == len(kept) == stats["rows"]["kept"]
    assert stats["rows"] == whole["rows"]
    for ours, theirs in zip(stats["stages"], whole["stages"], strict=True):
        assert ours["dropped_by_reason"] == theirs["dropped_by_reason"]
    assert stats["partitions"]["column"] == "source"
    assert {k: v["rows"] for k, v in stats["partitions"]["folders"].items()} == {
        name: len(rows) for name, rows in folders.items()
    }
    assert stats["files"]["kept"] == sum(
        v["files"] for v in stats["partitions"]["folders"].values()
    )
    # dropped/ is not partitioned; it holds the same rows
    assert [p.name for p in (tmp_path / "p" / "dropped").iterdir()] == ["part-00000.parquet"]
    assert read_output(tmp_path / "p", "dropped") == read_output(tmp_path / "w", "dropped")
    # every file has every column (null where a part had none): one dataset to read whole
    schemas = {pq.read_schema(f) for f in (tmp_path / "p" / "kept").rglob("*.parquet")}
    assert len(schemas) == 1


def test_a_partitioned_run_is_read_whole_by_the_engine_and_by_pyarrow(
    c4_path: Path, tmp_path: Path
) -> None:
    from curation.inspect.shards import open_source
    from curation.io.inputs import kept_of_runs

    small_files(c4_path, tmp_path / "in", 10)
    stats = run_local(recipe_of(PARTITIONED, tmp_path / "in"), tmp_path / "p")
    rows = stats["rows"]["kept"]
    source = open_source(tmp_path / "p")
    assert len(source.kept_files) == stats["files"]["kept"] == 11
    # the kept/ folder of a run read as the input of another
    [kept] = kept_of_runs([str(tmp_path / "p")], "tokenize")
    again = run_local(recipe_of("stages: []\n", kept), tmp_path / "again")
    assert again["rows"]["read"] == rows
    # plain folder names, no column=value: pyarrow reads the folder as one table
    table = pq.read_table(tmp_path / "p" / "kept")
    assert table.num_rows == rows and table.schema.field("source").type == "string"


def test_a_resumed_finish_leaves_only_the_files_it_writes(c4_path: Path, tmp_path: Path) -> None:
    small_files(c4_path, tmp_path / "in", 10)
    apart = PARTITIONED.replace("partition_by: source", "partition_by: source, min_file_bytes: 0")
    first = run_local(recipe_of(apart, tmp_path / "in"), tmp_path / "p")
    before = folder_rows(tmp_path / "p")
    assert len(list((tmp_path / "p" / "kept" / "null").iterdir())) == 10  # a part a file
    # what a finish killed midway leaves: a temporary file, a folder of another finish
    kept = tmp_path / "p" / "kept"
    (kept / "null" / ".tmp-0a1b2c3d-part-00003.parquet").write_bytes(b"PAR1")
    (kept / "gone").mkdir()
    (kept / "gone" / "part-00000.parquet").write_bytes(b"PAR1")
    # how parts are merged is the finish's alone: the run goes on, merging them
    second = run_local(recipe_of(PARTITIONED, tmp_path / "in"), tmp_path / "p")
    assert not (kept / "gone").exists()
    assert second["shards"]["resumed"] == first["shards"]["total"]
    assert [p.name for p in (tmp_path / "p" / "kept" / "null").iterdir()] == ["part-00000.parquet"]
    assert folder_rows(tmp_path / "p") == before
    assert second["files"]["kept"] == 11


def test_more_values_than_max_partitions_is_an_error_that_says_what_to_do(
    c4_path: Path, tmp_path: Path
) -> None:
    from curation.io.writers import PartitionError

    small_files(c4_path, tmp_path / "in", 10)
    capped = PARTITIONED.replace("partition_by: source", "partition_by: source, max_partitions: 5")
    # each file has 2 values (its own and null), the run 11
    with pytest.raises(PartitionError, match=r"11 values of 'source', more than output.max"):
        run_local(recipe_of(capped, tmp_path / "in"), tmp_path / "p")
    # the guard is no part of what the run is: raised, the run goes on from its shards
    stats = run_local(recipe_of(PARTITIONED, tmp_path / "in"), tmp_path / "p")
    assert stats["shards"]["resumed"] == 10 and len(stats["partitions"]["folders"]) == 11
    # a shard's values are counted as it writes them
    one = PARTITIONED.replace("partition_by: source", "partition_by: source, max_partitions: 1")
    with pytest.raises(Exception, match=r"f000.jsonl: its kept rows hold more than output.max"):
        run_local(recipe_of(one, tmp_path / "in"), tmp_path / "one")


def test_partition_by_a_column_the_rows_lack_or_of_floats_is_a_clear_error(
    c4_path: Path, tmp_path: Path
) -> None:
    missing = "stages: []\noutput: {partition_by: lang}\n"
    with pytest.raises(
        Exception,
        match=r"names the column 'lang', which no kept row has \(they have id, text, "
        r".*\): name an input field or a column a stage writes",
    ):
        run_local(recipe_of(missing, c4_path), tmp_path / "m")
    assert not (tmp_path / "m" / "kept").exists() or not any((tmp_path / "m" / "kept").iterdir())
    floats = "stages:\n  - doc_stats: {}\noutput: {partition_by: doc_stats_uppercase_ratio}\n"
    with pytest.raises(
        Exception, match=r"'doc_stats_uppercase_ratio' is double; partition by a column of"
    ):
        run_local(recipe_of(floats, c4_path), tmp_path / "f")
    with pytest.raises(RecipeError, match=r"partition_by: 'text' would give every kept row"):
        recipe_of("stages: []\noutput: {partition_by: text}\n", c4_path)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(min_size=1, max_size=60), st.integers(), st.booleans()))
def test_partition_folders_are_plain_names_that_give_back_their_value(value: object) -> None:
    name = partition_folder(value)
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    # one value a folder: the name decodes to the value, so no two values share one
    assert name != "null" and unquote(name) == text
    assert "/" not in name and "\\" not in name and "=" not in name and name not in (".", "..")
    assert not name.startswith((".", "_")) and len(name.encode("utf-8")) <= 255
    assert not any(ord(ch) < 0x20 for ch in name)
    assert partition_folder(None) == partition_folder("") == "null"


@pytest.mark.parametrize(
    "values",
    [
        pa.array(["en", None, "fr", "en"], pa.large_string()),
        pa.array(["en", None, "fr", "en"]).dictionary_encode(),
        pa.array([3, None, -1, 3], pa.int16()),
        pa.array([True, None, False, True]),
        pa.array([19000, None, 19001, 19000], pa.date32()),
    ],
)
def test_each_kind_of_column_is_cut_by_its_values(tmp_path: Path, values: pa.Array) -> None:
    writer = PartitionedWriter(tmp_path, "kept", OutputSpec(partition_by="v"), "shard")
    writer.write(pa.table({"v": values, "at": [0, 1, 2, 3]}))
    got = {p.path.parent.name: pq.read_table(p.path)["at"].to_pylist() for p in writer.close()}
    first, other = values.to_pylist()[0], values.to_pylist()[2]
    assert got == {partition_folder(first): [0, 3], "null": [1], partition_folder(other): [2]}
    assert partition_folder(pa.scalar(19000, pa.date32()).as_py()) == "2022-01-08"


def test_a_partitioned_writer_holds_at_most_one_row_group_over_its_values(tmp_path: Path) -> None:
    output = OutputSpec(partition_by="v", row_group_bytes=50_000)
    writer = PartitionedWriter(tmp_path, "kept", output, "shard")
    values = [f"v{i % 37}" for i in range(2000)]
    for start in range(0, 2000, 100):
        chunk = values[start : start + 100]
        writer.write(pa.table({"v": chunk, "text": ["x" * 200] * len(chunk)}))
        assert sum(w.held_bytes for w in writer.writers.values()) <= 50_000
    parts = writer.close()
    assert sum(p.rows for p in parts) == 2000 and len({p.path.parent for p in parts}) == 37
    for part in parts:
        assert set(pq.read_table(part.path)["v"].to_pylist()) == {part.path.parent.name}


def test_languages_a_folder_each_on_ray_as_locally(pile_path: Path, tmp_path: Path) -> None:
    # FineWeb-2's layout, a folder per language, on the Pile sample (16 languages)
    recipe = recipe_of(
        "stages:\n  - language: {threshold: 0.3}\noutput: {partition_by: lang}\n",
        pile_path,
        text_field="contents",
    )
    local = run_local(recipe, tmp_path / "local")
    ray = run_local(recipe, tmp_path / "ray", executor="ray", workers=2)
    assert folder_rows(tmp_path / "ray") == folder_rows(tmp_path / "local")
    assert ray["partitions"] == local["partitions"]
    folders = folder_rows(tmp_path / "local")
    assert len(folders) > 5 and max(folders, key=lambda k: len(folders[k])) == "en"
    for name, rows in folders.items():
        assert {r["lang"] for r in rows} == {name}


def test_a_rare_value_holds_its_own_rows_not_the_batches_they_came_in(tmp_path: Path) -> None:
    # one French row in each batch of English: what the French writer holds for its row
    # group must be that row, not the batch it was cut from (1,000 batches of 100 kB)
    output = OutputSpec(partition_by="lang", row_group_bytes=1_000_000)
    writer = PartitionedWriter(tmp_path, "kept", output, "shard")
    before = pa.total_allocated_bytes()
    held = 0
    for batch in range(1000):
        langs = ["en"] * 99 + ["fr"]
        texts = [f"{batch} {row} " + "x" * 1000 for row in range(100)]
        writer.write(pa.table({"lang": langs, "text": texts}))
        held = max(held, pa.total_allocated_bytes() - before)
    assert held < 4_000_000, f"{held:,} bytes of Arrow memory held"
    parts = writer.close()
    assert [p.rows for p in parts] == [99_000, 1_000]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["en", "fr", "", None, "a/b"]), st.integers(-2, 2)),
        min_size=1,
        max_size=60,
    ),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    row_group_bytes=st.sampled_from([1, 200, 10**6]),
)
def test_nested_folders_hold_their_values_rows_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str | None, int]],
    cuts: list[int],
    row_group_bytes: int,
) -> None:
    folder = tmp_path_factory.mktemp("nested")
    output = OutputSpec(partition_by=["lang", "n"], row_group_bytes=row_group_bytes)
    writer = PartitionedWriter(folder, "kept", output, "shard")
    table = pa.table(
        {"lang": [r[0] for r in rows], "n": [r[1] for r in rows], "at": list(range(len(rows)))}
    )
    bounds = sorted({0, len(rows), *[c for c in cuts if c < len(rows)]})
    for start, end in itertools.pairwise(bounds):
        writer.write(table.slice(start, end - start))
    parts = writer.close()
    got: dict[str, list[int]] = {}
    for part in parts:
        below = part.path.parent.relative_to(folder).as_posix()
        got.setdefault(below, []).extend(pq.read_table(part.path)["at"].to_pylist())
    expected: dict[str, list[int]] = {}
    for at, (lang, n) in enumerate(rows):
        expected.setdefault(f"{partition_folder(lang)}/{partition_folder(n)}", []).append(at)
    assert got == expected
    # close() gives the parts as their folders sort, as the run's finish places them
    names = [p.path.parent.relative_to(folder).as_posix() for p in parts]
    assert names == sorted(names)


def test_two_columns_nest_their_folders(c4_path: Path, tmp_path: Path) -> None:
    small_files(c4_path, tmp_path / "in", 4)
    recipe = (
        "stages:\n  - language: {threshold: 0.0}\n"
        "output: {partition_by: [lang, source], min_file_bytes: 0}\n"
    )
    stats = run_local(recipe_of(recipe, tmp_path / "in"), tmp_path / "p")
    kept = tmp_path / "p" / "kept"
    folders = stats["partitions"]["folders"]
    assert stats["partitions"]["column"] == ["lang", "source"]
    assert {"en/null", "en/s0", "en/s3"} <= set(folders)
    for below, counted in folders.items():
        lang, source = below.split("/")
        table = pa.concat_tables([pq.read_table(f) for f in sorted((kept / below).iterdir())])
        assert table.num_rows == counted["rows"]
        assert set(table["lang"].to_pylist()) == {lang}
        assert set(table["source"].to_pylist()) == ({None} if source == "null" else {source})
    assert sum(v["rows"] for v in folders.values()) == stats["rows"]["kept"] == 1000
    with pytest.raises(RecipeError, match=r"partition_by: \['lang', 'lang'\] names a column twice"):
        recipe_of("stages: []\noutput: {partition_by: [lang, lang]}\n", c4_path)
    with pytest.raises(RecipeError, match=r"partition_by: give a column name or a list"):
        recipe_of("stages: []\noutput: {partition_by: []}\n", c4_path)


def test_a_field_that_a_whole_batch_lacks_puts_its_rows_in_null(tmp_path: Path) -> None:
    # a sparse JSON field: no row of the first batches has it, so they have no such column
    docs = tmp_path / "sparse.jsonl"
    lines = [
        {"text": f"document {i}", **({"source": "web"} if i >= 250 else {})} for i in range(300)
    ]
    docs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    recipe = "input: {batch_rows: 100}\nstages: []\noutput: {partition_by: source}\n"
    stats = run_local(recipe_of(recipe, docs), tmp_path / "p")
    folders = folder_rows(tmp_path / "p")
    assert [r["text"] for r in folders["null"]] == [f"document {i}" for i in range(250)]
    assert [r["text"] for r in folders["web"]] == [f"document {i}" for i in range(250, 300)]
    assert stats["partitions"]["folders"] == {
        "null": {"rows": 250, "files": 1},
        "web": {"rows": 50, "files": 1},
    }


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_partitioned_json_lines_hold_the_rows_of_partitioned_parquet(
    c4_path: Path, tmp_path: Path, compression: str
) -> None:
    # each write a whole frame (member) of its own, so no value holds a compressor open
    small_files(c4_path, tmp_path / "in", 4)
    run_local(recipe_of(PARTITIONED, tmp_path / "in"), tmp_path / "pq")
    lines = PARTITIONED.replace(
        "partition_by: source",
        f"partition_by: source, format: jsonl, compression: {compression}, min_file_bytes: 0",
    )
    stats = run_local(recipe_of(lines, tmp_path / "in"), tmp_path / "js")
    expected = folder_rows(tmp_path / "pq")
    got = {f.name: jsonl_rows(f) for f in sorted((tmp_path / "js" / "kept").iterdir())}
    assert got == expected and len(got) == 5
    assert stats["partitions"]["folders"]["null"]["files"] == 4  # a part of each input file
    if compression != "none":
        for part in (tmp_path / "js" / "kept" / "s0").iterdir():
            data = part.read_bytes()
            if compression == "gzip":  # the standard library reads every member
                rows = gzip.decompress(data).splitlines()
            else:
                rows = (
                    zstandard.ZstdDecompressor()
                    .stream_reader(data, read_across_frames=True)
                    .read()
                    .splitlines()
                )
            assert [json.loads(r)["id"] for r in rows] == [r["id"] for r in expected["s0"]]


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_a_partitioned_json_lines_write_leaves_nothing_in_a_compressor(
    tmp_path: Path, compression: str
) -> None:
    # what each value's writer wrote is already whole on disk: it holds no compressor
    # (about 1 MB of zstd state each, 1.2 GB for 1,000 values)
    output = OutputSpec(partition_by="v", format="jsonl", compression=compression)
    writer = PartitionedWriter(tmp_path, "kept", output, "shard")
    writer.write(pa.table({"v": ["a", "b", "a"], "text": ["one", "two", "three"]}))
    for name, texts in (("a", ["one", "three"]), ("b", ["two"])):
        [pending] = (tmp_path / name).iterdir()  # the part being written
        data = pending.read_bytes()
        if compression == "gzip":
            data = gzip.decompress(data)
        else:
            data = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
        assert [json.loads(line)["text"] for line in data.splitlines()] == texts
    assert sum(p.rows for p in writer.close()) == 3


def test_the_finish_rewrites_files_on_threads_and_stops_at_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    from curation.runtime import run as run_module

    monkeypatch.setattr(run_module.os, "cpu_count", lambda: 4)
    names: set[str] = set()
    done: list[int] = []

    def rewrite(index: int) -> None:
        names.add(threading.current_thread().name)
        time.sleep(0.01)
        done.append(index)

    run_module._in_parallel([lambda i=i: rewrite(i) for i in range(8)])
    assert sorted(done) == list(range(8)) and len(names) > 1

    def fails() -> None:
        raise ValueError("part-00001.parquet: cannot be cast to the unified schema")

    done.clear()
    slow = [lambda i=i: rewrite(i) for i in range(40)]
    with pytest.raises(ValueError, match="cannot be cast"):
        run_module._in_parallel([fails, *slow])
    assert len(done) < 40  # the rewrites not begun were not run


def test_a_field_of_a_struct_column_names_folders(pile_path: Path, tmp_path: Path) -> None:
    # the Pile's subset, in each record's metadata: {"pile_set_name": "Github"}
    recipe = "stages: []\noutput: {partition_by: metadata.pile_set_name}\n"
    stats = run_local(recipe_of(recipe, pile_path, text_field="contents"), tmp_path / "p")
    records = [json.loads(line) for line in pile_path.read_text(encoding="utf-8").splitlines()]
    expected: dict[str, int] = {}
    for record in records:
        name = record["metadata"]["pile_set_name"]
        expected[name] = expected.get(name, 0) + 1
    assert {k: v["rows"] for k, v in stats["partitions"]["folders"].items()} == expected
    assert len(expected) > 10 and "Wikipedia (en)" in expected
    for name, rows in folder_rows(tmp_path / "p").items():
        assert {r["metadata"]["pile_set_name"] for r in rows} == {name}
    # a field that no struct has is a name no kept row has
    recipe = "stages: []\noutput: {partition_by: metadata.subset}\n"
    with pytest.raises(Exception, match=r"names the column 'metadata.subset', which no kept row"):
        run_local(recipe_of(recipe, pile_path, text_field="contents"), tmp_path / "q")


def test_dropped_rows_written_without_their_texts(c4_path: Path, tmp_path: Path) -> None:
    """output.dropped_text false: dropped/ holds each dropped row's id, reason and columns
    but not its text; the kept rows and the counts are those of a run that writes it;
    inspect and report show the rows without text; the default fingerprint is as it was
    before the setting, and a run folder begun with the texts is not finished without."""
    from curation.inspect.report import build_report
    from curation.inspect.shards import examples_by_reason, open_source
    from curation.io.inputs import resolve_inputs
    from curation.runtime.run import RunFolderError, _fingerprint
    from curation.runtime.shard import plan_segments

    stages = "stages:\n  - length_filter: {min_chars: 1500}\n  - doc_stats: {}\n"
    whole = run_local(recipe_of(stages, c4_path), tmp_path / "whole")
    bare = recipe_of(stages + "output: {dropped_text: false}\n", c4_path)
    lean = run_local(bare, tmp_path / "lean")
    assert lean["rows"] == whole["rows"]
    for mine, theirs in zip(lean["stages"], whole["stages"], strict=True):
        assert mine["dropped_by_reason"] == theirs["dropped_by_reason"]
    assert read_output(tmp_path / "lean", "kept") == read_output(tmp_path / "whole", "kept")
    texts = read_output(tmp_path / "whole", "dropped")
    dropped = read_output(tmp_path / "lean", "dropped")
    assert dropped == texts.drop_columns(["text"])
    assert dropped.num_rows == whole["rows"]["dropped"] > 0
    disk = [
        sum(f.stat().st_size for f in (tmp_path / r / "dropped").iterdir())
        for r in ("lean", "whole")
    ]
    assert disk[0] * 5 < disk[1]
    found = examples_by_reason(open_source(tmp_path / "lean"))
    assert found and all(frame["text"].null_count() == frame.height for frame in found.values())
    assert examples_by_reason(open_source(tmp_path / "lean" / "dropped"))
    assert "(no text" in build_report(open_source(tmp_path / "lean"))
    shards = resolve_inputs([str(c4_path)], "auto")
    plain = recipe_of(stages, c4_path)
    assert (
        "dropped_text" not in _fingerprint(plain, shards, plan_segments(plain))["recipe"]["output"]
    )
    with pytest.raises(RunFolderError):
        run_local(bare, tmp_path / "whole")
