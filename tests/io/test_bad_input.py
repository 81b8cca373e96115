"""Every kind of bad input has a defined outcome: a clear error, or a row set aside."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.io.inputs import InputError
from curation.io.readers import CorruptInputError
from curation.io.writers import SchemaConflictError
from curation.recipe import parse_recipe
from tests.conftest import read_output, recipe_of, run_local, shared_file, warc_record

ROOT = Path(__file__).resolve().parents[2]
PASS = "stages: []\n"
LENGTH = "stages:\n  - length_filter: {min_chars: 1}\n"


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def reasons_by_id(out: Path) -> dict[str, str]:
    dropped = read_output(out, "dropped")
    if dropped.num_rows == 0:
        return {}
    return dict(zip(dropped["id"].to_pylist(), dropped["drop_reason"].to_pylist(), strict=True))


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(InputError, match=r"nope\.jsonl.*does not exist"):
        run_local(recipe_of(PASS, missing), tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing is written before inputs are checked"


def test_glob_that_matches_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"matched no files"):
        run_local(recipe_of(PASS, tmp_path / "*.parquet"), tmp_path / "out")


def test_unknown_extension_asks_for_format(tmp_path: Path) -> None:
    path = tmp_path / "docs.dat"
    path.write_text('{"text": "x"}\n')
    with pytest.raises(InputError, match=r"--format"):
        run_local(recipe_of(PASS, path), tmp_path / "out")


def test_a_file_named_as_another_container_format_is_refused(tmp_path: Path) -> None:
    # a Parquet file read as JSONL became 3 rows of garbage, every one dropped
    parquet = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a"], "text": ["a document"]}), parquet)
    with pytest.raises(InputError, match=r"docs\.parquet' is named as parquet.*--format parquet"):
        run_local(recipe_of(PASS, parquet, format="jsonl"), tmp_path / "out")
    jsonl = write_lines(tmp_path / "docs.jsonl", [b'{"text": "a document"}'])
    with pytest.raises(InputError, match=r"docs\.jsonl' is named as jsonl.*read as warc"):
        run_local(recipe_of(PASS, jsonl, format="warc"), tmp_path / "out")
    # JSONL in a file named .txt is read as asked: neither format is a container
    text = write_lines(tmp_path / "docs.txt", [b'{"text": "one"}', b'{"text": "two"}'])
    assert run_local(recipe_of(PASS, text, format="jsonl"), tmp_path / "o3")["rows"]["read"] == 2


def test_a_folder_or_glob_read_in_a_container_format_passes_over_other_files(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "dataset"
    folder.mkdir()
    pq.write_table(pa.table({"text": ["one", "two"]}), folder / "train-0.parquet")
    (folder / "README.md").write_text("# a dataset card, not a shard\n")
    write_lines(folder / "extra.jsonl", [b'{"text": "not asked for"}'])
    for source in (folder, folder / "*"):
        stats = run_local(
            recipe_of(PASS, source, format="parquet"), tmp_path / "out", overwrite=True
        )
        assert stats["rows"]["read"] == 2
    with pytest.raises(InputError, match=r"holds only files named as another format than warc"):
        run_local(recipe_of(PASS, folder, format="warc"), tmp_path / "out2")
    with pytest.raises(InputError, match=r"matched only files named as another format"):
        run_local(recipe_of(PASS, folder / "[Re]*", format="parquet"), tmp_path / "o3")


def test_a_file_whose_name_tells_no_format_is_read_as_a_container_only_if_it_is_one(
    tmp_path: Path,
) -> None:
    # Common Crawl's warc.paths.gz beside the WARC files it lists was read as a WARC and
    # stopped the run as "damaged: fetch it again"
    folder = tmp_path / "crawl"
    folder.mkdir()
    warc = shared_file("warc/sample-0000.warc.gz")
    paths = b"crawl-data/CC-MAIN-2024-10/segments/1/warc/CC-MAIN-00000.warc.gz\n"
    (folder / "warc.paths.gz").write_bytes(gzip.compress(paths))
    (folder / "sample-0000.warc.gz").write_bytes(warc.read_bytes())
    (folder / "renamed.bin").write_bytes(gzip.decompress(warc.read_bytes()))  # WARC, no name
    alone = run_local(recipe_of(PASS, warc, format="warc"), tmp_path / "alone")
    stats = run_local(recipe_of(PASS, folder, format="warc"), tmp_path / "out")
    assert stats["rows"]["read"] == 2 * alone["rows"]["read"] > 0
    assert stats["shards"]["total"] == 2
    with pytest.raises(InputError, match=r"warc\.paths\.gz' is not a WARC file: it begins"):
        run_local(recipe_of(PASS, folder / "warc.paths.gz", format="warc"), tmp_path / "o2")
    # the same for Parquet: a dataset card without a name that says so
    (folder / "CARD").write_text("# not a shard\n")
    pq.write_table(pa.table({"text": ["one"]}), folder / "part-0")
    stats = run_local(recipe_of(PASS, folder / "[Cp]*", format="parquet"), tmp_path / "o3")
    assert stats["rows"]["read"] == 1


def test_the_quickstart_recipe_reads_the_formats_the_readme_points_it_at(tmp_path: Path) -> None:
    # the README runs it on '*.parquet' shards; the recipe said format: jsonl
    recipe = parse_recipe((ROOT / "pipelines" / "quickstart.yaml").read_text(), "quickstart.yaml")
    parquet = tmp_path / "crawl.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x" * 300, "y" * 400]}), parquet)
    stats = run_local(recipe.with_input(paths=[str(parquet)]), tmp_path / "out")
    assert stats["rows"]["read"] == 2
    assert stats["stages"][0]["rows_dropped"] == 0


def test_an_arc_file_is_refused_by_name_not_read_as_a_damaged_warc(tmp_path: Path) -> None:
    # FastWARC reads WARC only: an ARC file failed as "damaged, fetch it again"
    body = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<p>an archived page</p>"
    head = b"http://example.com/ 192.0.2.1 20040101000000 text/html %d\n" % len(body)
    path = tmp_path / "IA-2004.arc.gz"
    path.write_bytes(gzip.compress(head + body + b"\n"))
    for source in (path, tmp_path):
        with pytest.raises(InputError, match=r"IA-2004\.arc\.gz' is an ARC file.*convert it"):
            run_local(recipe_of(PASS, source), tmp_path / "out")


def test_corrupt_parquet(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file at all")
    with pytest.raises(CorruptInputError, match=r"bad\.parquet.*on_corrupt_file"):
        run_local(recipe_of(PASS, bad), tmp_path / "out")


def test_corrupt_parquet_skipped_is_recorded(tmp_path: Path) -> None:
    good = tmp_path / "in" / "good.parquet"
    good.parent.mkdir()
    pq.write_table(pa.table({"text": ["a real document"], "id": ["g0"]}), good)
    (tmp_path / "in" / "bad.parquet").write_bytes(b"garbage")
    recipe = recipe_of("input: {on_corrupt_file: skip}\n" + PASS, tmp_path / "in")
    stats = run_local(recipe, tmp_path / "out")
    assert stats["rows"]["kept"] == 1
    [skipped] = stats["shards"]["corrupt_skipped"]
    assert "bad.parquet" in skipped["url"] and "bad.parquet" in skipped["error"]


def test_truncated_gzip(c4_path: Path, tmp_path: Path) -> None:
    data = c4_path.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptInputError, match=r"cut\.jsonl\.gz: cannot read past line \d+"):
        run_local(recipe_of(PASS, cut), tmp_path / "out")


def test_truncated_gzip_skip_keeps_rows_read(c4_path: Path, tmp_path: Path) -> None:
    data = c4_path.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    recipe = recipe_of("input: {on_corrupt_file: skip, batch_rows: 50}\n" + PASS, cut)
    stats = run_local(recipe, tmp_path / "out")
    assert 300 < stats["rows"]["read"] < 700
    assert stats["rows"]["read"] == stats["rows"]["kept"] + stats["rows"]["dropped"]
    assert stats["shards"]["corrupt_skipped"][0]["url"].endswith("cut.jsonl.gz")


@pytest.mark.parametrize("cut_at", [3_000, 200_000, 600_000])
def test_a_truncated_gzip_keeps_every_whole_line_before_the_damage(
    c4_path: Path, tmp_path: Path, cut_at: int
) -> None:
    """With the default batch of 10,000 rows the damage falls inside the first block, and
    (at 200 kB) inside the first MiB ISA-L's file reader inflated in one bite: both used
    to lose those rows. Now every line that decompresses whole is read, and the broken
    last line is the damage recorded with the file."""
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(c4_path.read_bytes()[:cut_at])
    readable = zlib.decompressobj(wbits=31).decompress(cut.read_bytes())
    whole = readable.count(b"\n")
    assert whole > 0
    recipe = recipe_of("input: {on_corrupt_file: skip}\n" + PASS, cut)
    stats = run_local(recipe, tmp_path / "out")
    assert stats["rows"]["read"] == stats["rows"]["kept"] == whole
    kept = read_output(tmp_path / "out", "kept")
    first = [json.loads(line)["text"] for line in readable.split(b"\n")[:whole]]
    assert kept["text"].to_pylist() == first
    [skipped] = stats["shards"]["corrupt_skipped"]
    assert skipped["error"].startswith(f"{cut}: cannot read past ")
    assert skipped["error"].endswith("end-of-stream marker was reached")  # no advice to skip
    with pytest.raises(CorruptInputError, match=r"on_corrupt_file: skip"):
        run_local(recipe_of(PASS, cut), tmp_path / "out2")


@pytest.mark.parametrize("suffix", [".bz2", ".xz", ".zst"])
def test_a_truncated_bz2_xz_or_zstd_file_keeps_every_whole_line_before_the_damage(
    c4_path: Path, tmp_path: Path, suffix: str
) -> None:
    # the oracle: what each format's own incremental decompressor gives of the cut file
    codecs = {
        ".bz2": (bz2.compress, lambda: bz2.BZ2Decompressor()),
        ".xz": (lzma.compress, lambda: lzma.LZMADecompressor()),
        ".zst": (
            lambda b: zstandard.ZstdCompressor().compress(b),
            lambda: zstandard.ZstdDecompressor().decompressobj(),
        ),
    }
    compress, decompressor = codecs[suffix]
    body = gzip.decompress(c4_path.read_bytes()) * 2  # bz2's blocks are 900 kB
    data = compress(body)
    cut = tmp_path / f"cut.jsonl{suffix}"
    cut.write_bytes(data[: len(data) * 3 // 4])
    readable = decompressor().decompress(cut.read_bytes())
    whole = readable.count(b"\n")
    assert 0 < whole < body.count(b"\n")
    stats = run_local(recipe_of("input: {on_corrupt_file: skip}\n" + PASS, cut), tmp_path / "out")
    assert stats["shards"]["corrupt_skipped"], "a cut file must be recorded as damaged"
    assert stats["rows"]["read"] == whole


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_truncated_text_file_is_damaged_not_a_shorter_document(
    tmp_path: Path, suffix: str
) -> None:
    # fsspec's zstd reader ended quietly at the cut: half the text was read as the whole
    body = b"a line of plain text\n" * 20_000
    data = gzip.compress(body) if suffix == ".gz" else zstandard.ZstdCompressor().compress(body)
    path = tmp_path / f"cut.txt{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptInputError, match=r"cut\.txt\.(gz|zst): cannot read past its start"):
        run_local(recipe_of(PASS, path), tmp_path / "out")


def test_gzip_members_and_zero_padding_read_as_the_gzip_module_does(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"document {i} " * 30}).encode() for i in range(4000)]
    body = b"\n".join(lines) + b"\n"
    members = gzip.compress(body[:70_001]) + b"\0" * 512 + gzip.compress(body[70_001:])
    path = tmp_path / "members.jsonl.gz"
    path.write_bytes(members + b"\0" * 100)
    assert gzip.decompress(path.read_bytes()) == body
    stats = run_local(recipe_of(PASS, path), tmp_path / "out")
    assert stats["rows"]["read"] == 4000
    assert read_output(tmp_path / "out", "kept")["text"].to_pylist() == [
        json.loads(line)["text"] for line in lines
    ]
    path.write_bytes(members + b"trailing bytes")
    with pytest.raises(CorruptInputError, match=r"members\.jsonl\.gz: cannot read past line"):
        run_local(recipe_of(PASS, path), tmp_path / "out2")


def test_truncated_warc_gzip(warc_dir: Path, tmp_path: Path) -> None:
    data = (warc_dir / "sample-0000.warc.gz").read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptInputError, match=r"cut\.warc\.gz: cannot read past record"):
        run_local(recipe_of(PASS, cut), tmp_path / "out")
    # skipped: the records before the damage are kept, however few for a whole batch
    stats = run_local(recipe_of("input: {on_corrupt_file: skip}\n" + PASS, cut), tmp_path / "o2")
    [skipped] = stats["shards"]["corrupt_skipped"]
    broken = int(re.search(r"cannot read past record (\d+)", skipped["error"]).group(1))
    assert broken > 1
    assert stats["rows"]["read"] == broken - 1


def whole_responses(data: bytes) -> int:
    """How many response records the whole gzip members at the start of ``data`` hold
    (zlib and FastWARC on the complete members only: the reader's oracle)."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    whole = b""
    while data:
        member = zlib.decompressobj(wbits=31)
        out = member.decompress(data)
        if not member.eof:
            break
        whole, data = whole + out, member.unused_data
    records = ArchiveIterator(io.BytesIO(whole), record_types=WarcRecordType.response)
    return sum(1 for _ in records)


@pytest.mark.parametrize("cut", [20_000, 50_000, 100_000, 150_000, 200_000])
def test_a_truncated_warc_gzip_keeps_every_whole_record_before_the_damage(
    warc_dir: Path, tmp_path: Path, cut: int
) -> None:
    # Python's gzip module raised before returning what its last read had inflated, so a
    # cut lost the one to four whole records before it (2 of 6 kept at 50 kB)
    data = (warc_dir / "sample-0000.warc.gz").read_bytes()
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(data[:cut])
    recipe = recipe_of("input: {on_corrupt_file: skip, batch_rows: 5}\n" + PASS, path)
    stats = run_local(recipe, tmp_path / "out")
    assert stats["shards"]["corrupt_skipped"], "a cut file must be recorded as damaged"
    assert stats["rows"]["read"] == whole_responses(data[:cut]) > 0


def test_invalid_json_utf8_null_empty_missing(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            json.dumps({"id": "ok", "text": "a fine document"}).encode(),
            b'{"id": "broken", "text": "no closing brace"',
            b'{"id": "latin1", "text": "caf\xe9"}',
            json.dumps({"id": "null", "text": None}).encode(),
            json.dumps({"id": "empty", "text": ""}).encode(),
            json.dumps({"id": "blank", "text": " \n\t "}).encode(),
            json.dumps({"id": "nofield", "body": "text under another name"}).encode(),
            json.dumps({"id": "number", "text": 42}).encode(),
            b"[1, 2, 3]",
        ],
    )
    stats = run_local(recipe_of(LENGTH, path), tmp_path / "out")
    reasons = reasons_by_id(tmp_path / "out")
    assert reasons == {
        "mixed.jsonl/1": "read:invalid_json",
        "latin1": "read:invalid_utf8",
        "null": "read:null_text",
        "empty": "read:empty_text",
        "blank": "read:empty_text",
        "nofield": "read:missing_text_field",
        "number": "read:text_not_string",
        "mixed.jsonl/8": "read:invalid_json",
    }
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    broken = next(r for r in dropped if r["id"] == "mixed.jsonl/1")
    assert broken["text"] == '{"id": "broken", "text": "no closing brace"', "raw line kept"
    latin = next(r for r in dropped if r["id"] == "latin1")
    assert latin["text"] == "caf\ufffd"
    assert stats["rows"] == {"read": 9, "kept": 1, "dropped": 8}


def test_whole_file_without_text_field_names_the_fields(pile_path: Path, tmp_path: Path) -> None:
    expected = r"no line has the text field 'text'.*'contents'.*--text-field"
    with pytest.raises(InputError, match=expected):
        run_local(recipe_of(PASS, pile_path), tmp_path / "out")


def test_parquet_without_text_column(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(InputError, match=r"t\.parquet: no column 'text'.*\['body'\]"):
        run_local(recipe_of(PASS, path), tmp_path / "out")


def test_parquet_binary_text_with_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"text": pa.array([b"good text", b"bad \xff byte", None])}), path)
    run_local(recipe_of(PASS, path), tmp_path / "out")
    assert reasons_by_id(tmp_path / "out") == {
        "b.parquet/1": "read:invalid_utf8",
        "b.parquet/2": "read:null_text",
    }


def test_parquet_with_dictionary_and_view_columns(c4_path: Path, tmp_path: Path) -> None:
    """pandas' category and polars' Categorical write dictionary columns, Arrow's view
    layouts are string_view and binary_view: the text, the id and passed-through columns
    in those layouts read as their plain values, and a column that is a dictionary in one
    file and plain strings in another still makes one output column."""
    from curation.io.inputs import resolve_inputs
    from curation.io.readers import read_shard
    from curation.recipe import InputSpec

    c4 = pa.concat_tables(
        list(read_shard(resolve_inputs([str(c4_path)])[0], InputSpec(batch_rows=10_000)))
    )
    half = c4.num_rows // 2
    texts, urls = c4["text"].combine_chunks(), c4["url"].combine_chunks()
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(
        pa.table(
            {
                "text": texts[:half].dictionary_encode(),
                "id": pa.array([f"c4-{i}" for i in range(half)]).dictionary_encode(),
                "url": urls[:half].cast(pa.string_view()),
                "lang": pa.array(["en"] * half).dictionary_encode(),
            }
        ),
        folder / "a.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "text": texts[half:].cast(pa.string()).cast(pa.binary()).cast(pa.binary_view()),
                "url": urls[half:],
                "lang": pa.array(["en"] * (c4.num_rows - half)),
            }
        ),
        folder / "b.parquet",
    )
    recipe = recipe_of("stages:\n  - length_filter: {min_chars: 2000}\n", folder)
    stats = run_local(recipe, tmp_path / "out")
    kept, dropped = read_output(tmp_path / "out", "kept"), read_output(tmp_path / "out", "dropped")
    assert stats["rows"]["read"] == c4.num_rows == kept.num_rows + dropped.num_rows
    assert 0 < kept.num_rows < c4.num_rows
    both = pa.concat_tables(
        [kept, dropped.drop_columns(["drop_reason"])], promote_options="default"
    )
    by_id = dict(zip(both["id"].to_pylist(), both["text"].to_pylist(), strict=True))
    assert [by_id[f"c4-{i}"] for i in range(half)] == texts[:half].to_pylist()
    later = [by_id[f"in/b.parquet/{i}"] for i in range(c4.num_rows - half)]
    assert later == texts[half:].to_pylist()
    assert sorted(both["url"].to_pylist()) == sorted(urls.to_pylist())
    assert kept.schema.field("lang").type == pa.string() and set(kept["lang"].to_pylist()) == {"en"}


def test_json_ids_that_are_not_strings_are_their_json_text(tmp_path: Path) -> None:
    # an object id was kept as Python's repr, "{'shard': 1}", and true as "True"
    path = write_lines(
        tmp_path / "ids.jsonl",
        [
            b'{"id": 7, "text": "one"}',
            b'{"id": true, "text": "two"}',
            b'{"id": {"shard": 1, "row": "\xc3\xa9"}, "text": "three"}',
            b'{"id": [1, 2], "text": "four"}',
            b'{"id": 2.5, "text": "five"}',
            b'{"id": null, "text": "six"}',
        ],
    )
    run_local(recipe_of(PASS, path), tmp_path / "out")
    ids = read_output(tmp_path / "out", "kept")["id"].to_pylist()
    assert ids == ["7", "true", '{"shard": 1, "row": "\u00e9"}', "[1, 2]", "2.5", "ids.jsonl/5"]
    assert [json.loads(i) for i in ids[:5]] == [7, True, {"shard": 1, "row": "é"}, [1, 2], 2.5]


def test_parquet_id_column_that_cannot_be_an_id(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"text": ["a document"], "id": [{"shard": 1, "row": 2}]}), path)
    with pytest.raises(InputError, match=r"s\.parquet: column 'id' is struct<.*pass --id-field"):
        run_local(recipe_of(PASS, path), tmp_path / "out")


def test_fifty_megabyte_document(tmp_path: Path) -> None:
    big = "word " * 10_000_000  # 50 MB
    path = tmp_path / "big.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "big", "text": big}) + "\n")
        handle.write(json.dumps({"id": "small", "text": "a small document"}) + "\n")
    run_local(recipe_of(LENGTH, path), tmp_path / "out")
    dropped = read_output(tmp_path / "out", "dropped")
    assert dropped["id"].to_pylist() == ["big"]
    assert dropped["drop_reason"].to_pylist() == ["read:too_long"]
    assert len(dropped["text"][0].as_py()) == len(big), "the text is kept for inspection"
    # the limit is a setting: without it the document passes
    recipe = recipe_of("input: {max_doc_chars: null}\n" + LENGTH, path)
    stats = run_local(recipe, tmp_path / "out2")
    assert stats["rows"]["kept"] == 2


@pytest.mark.parametrize("batch_rows", [2, 100])
def test_a_field_and_its_source_name_are_an_error(tmp_path: Path, batch_rows: int) -> None:
    """`drop_reason` in the input is kept as `source_drop_reason`; a file that also has a
    `source_drop_reason` field would see the two merged, so it is refused, naming the row."""
    lines = [{"text": f"doc {i}"} for i in range(6)]
    lines[1]["drop_reason"] = "spam"
    lines[4]["source_drop_reason"] = "crawler"
    path = tmp_path / "clash.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    expected = (
        r"clash\.jsonl: fields 'drop_reason' and 'source_drop_reason' both occur "
        r"\(the second by row 4\)"
    )
    with pytest.raises(InputError, match=expected):
        run_local(recipe_of(PASS, path, batch_rows=batch_rows), tmp_path / "out")
    table = pa.table({"text": ["a"], "drop_reason": ["x"], "source_drop_reason": ["y"]})
    pq.write_table(table, tmp_path / "clash.parquet")
    with pytest.raises(InputError, match=r"clash\.parquet: fields 'drop_reason' and 'sou"):
        run_local(recipe_of(PASS, tmp_path / "clash.parquet"), tmp_path / "out2")


def kept_as_jsonl_and_parquet(folder: Path, name: str, lines: list[dict]) -> list[pa.Table]:
    """The kept rows of a pass-through run over ``lines`` written as JSONL, then as Parquet
    (with every key of every line: ``from_pylist`` would take the first line's keys)."""
    keys = dict.fromkeys(key for line in lines for key in line)
    parquet = folder / f"{name}.parquet"
    pq.write_table(pa.table({k: [line.get(k) for line in lines] for k in keys}), parquet)
    jsonl = write_lines(folder / f"{name}.jsonl", [json.dumps(line).encode() for line in lines])
    kept = []
    for path in (jsonl, parquet):
        run_local(recipe_of(PASS, path), folder / f"out-{path.name}")
        kept.append(read_output(folder / f"out-{path.name}", "kept"))
    return kept


@pytest.mark.parametrize("rows", [6, 300])  # the line path; pyarrow's block parse
def test_a_drop_reason_that_is_null_is_not_carried(tmp_path: Path, rows: int) -> None:
    """A run's own kept output has a `drop_reason` that is null on every row. It records
    no reason, so it is not carried as `source_drop_reason`, and so cannot clash with one
    the input has; a batch where one row has a reason keeps the column, null elsewhere."""
    lines = [{"text": f"doc {i}", "drop_reason": None} for i in range(rows)]
    lines[3]["source_drop_reason"] = "crawler"
    for kept in kept_as_jsonl_and_parquet(tmp_path, "quiet", lines):
        assert kept.num_rows == rows and "drop_reason" in kept.column_names
        assert kept["source_drop_reason"].to_pylist() == [
            "crawler" if i == 3 else None for i in range(rows)
        ]
    lines = [{"text": f"doc {i}", "drop_reason": None} for i in range(rows)]
    lines[1]["drop_reason"] = "spam"
    for kept in kept_as_jsonl_and_parquet(tmp_path, "mixed", lines):
        assert kept["source_drop_reason"].to_pylist() == [
            "spam" if i == 1 else None for i in range(rows)
        ]


def test_columns_that_differ_between_shards(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_lines(folder / "a.jsonl", [json.dumps({"text": "doc a", "url": "u"}).encode()])
    write_lines(folder / "b.jsonl", [json.dumps({"text": "doc b", "year": 2020}).encode()])
    pq.write_table(pa.table({"text": ["doc c"], "lang": ["en"]}), folder / "c.parquet")
    run_local(recipe_of(PASS, folder), tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept")
    schemas = {str(pq.read_schema(f)) for f in (tmp_path / "out" / "kept").glob("*.parquet")}
    assert len(schemas) == 1, "every output file has the unified schema"
    rows = {r["id"]: r for r in kept.to_pylist()}
    assert rows["in/a.jsonl/0"]["url"] == "u" and rows["in/a.jsonl/0"]["year"] is None
    assert rows["in/b.jsonl/0"]["year"] == 2020 and rows["in/b.jsonl/0"]["lang"] is None
    assert rows["in/c.parquet/0"]["lang"] == "en"


def test_columns_of_incompatible_types_fail_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_lines(folder / "a.jsonl", [json.dumps({"text": "doc a", "year": 2020}).encode()])
    write_lines(folder / "b.jsonl", [json.dumps({"text": "doc b", "year": [1, 2]}).encode()])
    expected = r"'year' has type list<element: int64> in .*b\.jsonl but int64 in .*a\.jsonl"
    with pytest.raises(SchemaConflictError, match=expected):
        run_local(recipe_of(PASS, folder), tmp_path / "out")


def test_zstd_jsonl_whole_multi_frame_and_truncated(tmp_path: Path) -> None:
    lines = b"".join(
        json.dumps({"text": f"document {i} " * 20}).encode() + b"\n" for i in range(3000)
    )
    frames = zstandard.ZstdCompressor().compress(lines)
    whole = tmp_path / "whole.jsonl.zst"
    whole.write_bytes(frames + zstandard.ZstdCompressor().compress(lines[:500]))
    stats = run_local(recipe_of(PASS, whole), tmp_path / "out")
    # the second frame ends in the middle of a line: that last line is invalid JSON
    assert stats["rows"]["read"] == 3000 + lines[:500].count(b"\n") + 1
    assert stats["stages"][0]["dropped_by_reason"] == {"read:invalid_json": 1}
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(frames[: len(frames) // 2])
    with pytest.raises(CorruptInputError, match=r"cut\.jsonl\.zst: cannot read past line"):
        run_local(recipe_of(PASS, cut), tmp_path / "out2")


def warc_response(uri: str, status: str, headers: dict[str, str], body: bytes) -> bytes:
    http = f"HTTP/1.1 {status}\r\n".encode()
    http += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n" + body
    warc_headers = {
        "WARC-Record-ID": f"<urn:uuid:{uri.rsplit('/', 1)[-1]}>",
        "WARC-Target-URI": uri,
        "WARC-Date": "2024-05-01T00:00:00Z",
        "Content-Type": "application/http; msgtype=response",
    }
    return warc_record("response", warc_headers, http)


def test_warc_status_content_type_and_encoding(tmp_path: Path) -> None:
    page = (
        b"<html><body><p>"
        + b"A paragraph of real words for the extractor. " * 8
        + b"</p></body></html>"
    )
    records = [
        warc_response("http://e.org/ok", "200 OK", {"Content-Type": "text/html"}, page),
        warc_response(
            "http://e.org/gz",
            "200 OK",
            {"Content-Type": "text/html", "Content-Encoding": "gzip"},
            gzip.compress(page),
        ),
        warc_response("http://e.org/missing", "404 Not Found", {"Content-Type": "text/html"}, page),
        warc_response(
            "http://e.org/logo",
            "200 OK",
            {"Content-Type": "image/png"},
            b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        ),
    ]
    path = tmp_path / "crawl.warc.gz"
    path.write_bytes(gzip.compress(b"".join(records)))
    run_local(recipe_of(PASS, path), tmp_path / "out")
    kept = {r["id"]: r for r in read_output(tmp_path / "out", "kept").to_pylist()}
    assert set(kept) == {"urn:uuid:ok", "urn:uuid:gz"}
    assert kept["urn:uuid:gz"]["text"] == kept["urn:uuid:ok"]["text"]
    assert "A paragraph of real words" in kept["urn:uuid:ok"]["text"]
    assert reasons_by_id(tmp_path / "out") == {
        "urn:uuid:missing": "read:http_status",
        "urn:uuid:logo": "read:not_html",
    }


def test_a_damaged_row_group_of_a_file_cut_in_pieces(tmp_path: Path) -> None:
    # a large Parquet file is read in pieces of row groups: a damaged row group costs the
    # rest of its piece only, where read whole the file's rows after it were lost too
    path = tmp_path / "big.parquet"
    texts = [f"document {i} " * 40 for i in range(1000)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=100, compression="none")
    chunk = pq.read_metadata(path).row_group(3).column(0)
    data = bytearray(path.read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start : start + 64] = b"\xff" * 64  # the page header of row group 3
    path.write_bytes(bytes(data))
    skip = "input: {on_corrupt_file: skip}\n" + PASS
    whole = run_local(
        recipe_of("input: {unit_bytes: 0, on_corrupt_file: skip}\n" + PASS, path),
        tmp_path / "whole",
    )
    pieces = run_local(recipe_of(skip, path), tmp_path / "pieces")
    assert whole["rows"]["read"] == 300
    # Arrow's message has three lines; a unit's problems are a line each: one entry
    assert len(whole["shards"]["corrupt_skipped"]) == 1
    assert pieces["rows"]["read"] == 900 and pieces["shards"]["total"] == 10
    [skipped] = pieces["shards"]["corrupt_skipped"]
    assert skipped["url"].endswith("big.parquet (row groups 3-3)")
    assert "cannot read past row group 3 (row 300)" in skipped["error"]
    ids = read_output(tmp_path / "pieces", "kept")["id"].to_pylist()
    assert ids == [f"big.parquet/{i}" for i in range(1000) if not 300 <= i < 400]


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(st.none() | st.text(max_size=12), max_size=30),
    chars=st.integers(1, 10),
    cut=st.integers(0, 30),
)
def test_too_long_counts_characters_not_bytes(
    texts: list[str | None], chars: int, cut: int
) -> None:
    """Only texts of more bytes than the limit have their characters counted: the same
    rows as counting every text's characters, whole or in chunks, multi-byte ones too."""
    from curation.io.readers import _longer_than

    want = [t is not None and len(t) > chars for t in texts]
    whole = pa.array(texts, pa.large_string())
    chunked = pa.chunked_array([whole.slice(0, cut), whole.slice(cut)], pa.large_string())
    for column in (whole, chunked):
        got = pc.fill_null(_longer_than(column, chars), False).to_pylist()
        assert got == want
