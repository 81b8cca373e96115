"""Readers on the real samples: counts, ids and text of known records."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from curation.io.inputs import resolve_inputs
from curation.io.readers import read_shard
from curation.recipe import InputSpec
from tests.conftest import shared_file, warc_record
from tests.io.test_bad_input import warc_response


def read_all(path: Path | str, **spec: object) -> pa.Table:
    spec_obj = InputSpec(**spec)  # type: ignore[arg-type]
    tables = []
    for shard in resolve_inputs([str(path)], spec_obj.format):
        tables.extend(read_shard(shard, spec_obj))
    return pa.concat_tables(tables, promote_options="default")


def test_c4_jsonl_gz(c4_path: Path) -> None:
    table = read_all(c4_path, batch_rows=300)
    assert table.num_rows == 1000
    assert table["id"][0].as_py() == "c4-sample-1000.jsonl.gz/0"
    assert table["id"][999].as_py() == "c4-sample-1000.jsonl.gz/999"
    assert (
        table["text"][0]
        .as_py()
        .startswith(
            "The woman who died after falling from a bridge over the A21 has been identified"
        )
    )
    assert table["text"][999].as_py().startswith("I guess it is better to set -DGC_THREADS")
    assert table.column_names == ["id", "text", "drop_reason", "url", "date"]
    assert table["drop_reason"].null_count == 1000
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        first = json.loads(handle.readline())
    assert table["url"][0].as_py() == first["url"]


def test_pile_contents_field(pile_path: Path) -> None:
    table = read_all(pile_path, text_field="contents")
    assert table.num_rows == 1000
    # the Pile sample has integer ids 0..999: they become the string id
    assert table["id"].to_pylist()[:3] == ["0", "1", "2"]
    assert table["text"][0].as_py().startswith("/*\n * Copyright (c) 2015 Kaprica Security")
    domains = Counter(m["pile_set_name"] for m in table["metadata"].to_pylist())
    assert domains["Pile-CC"] == 200
    assert domains["StackExchange"] == 131
    assert domains["Github"] == 85


def test_warc_records_and_extraction(warc_dir: Path) -> None:
    table = read_all(warc_dir)
    assert table.num_rows == 22 + 15
    by_id = {row["id"]: row for row in table.to_pylist()}
    team = by_id["urn:uuid:283E41D7-F686-4C3E-B7DA-E8D248A100C1"]
    assert team["url"] == "https://www.semanticscholar.org/research/research-team"
    assert team["date"] == "2024-04-25T16:24:44Z"
    assert "Semantic Scholar Research Team" in team["text"]
    assert "<div" not in team["text"]
    # a chunked HTTP body: the chunk sizes must not leak into the text
    cc = by_id["urn:uuid:9879E7FD-A3D9-40CB-A53E-AE1F2B860DE7"]
    assert cc["url"] == "https://creativecommons.org/"
    assert cc["text"].startswith("Better Sharing, Brighter Future")
    assert "7d72" not in cc["text"]
    kept = [row for row in table.to_pylist() if row["drop_reason"] is None]
    assert len(kept) >= 30


def test_warc_pages_are_decoded_as_utf8_where_they_are_and_as_their_header_says(
    warc_dir: Path, tmp_path: Path
) -> None:
    """A page whose bytes are UTF-8 is read as UTF-8 (a guess from the bytes read 3 of
    the 37 sample pages as ISO-8859-7 or cp1252: mojibake); other bytes as the charset
    the HTTP header names."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.http import iterate_http_chunks

    by_id = {row["id"]: row["text"] for row in read_all(warc_dir).to_pylist()}
    utf8 = 0
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f, record_types=WarcRecordType.response):
                chunked = record.http_headers.get("Transfer-Encoding") == "chunked"
                body = (
                    b"".join(iterate_http_chunks(record.reader))
                    if chunked
                    else record.reader.read()
                )
                try:
                    html = body.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                utf8 += 1
                expected = extract_plain_text(html, main_content=True)
                assert by_id[record.record_id.strip("<>")] == expected, record.record_id
    assert utf8 == 37
    assert "Hello, visitor! \U0001f44b" in by_id["urn:uuid:72AB4D6D-3203-4B01-ABE3-DD5E224EF904"]

    page = "<html><body><p>" + "Un café – naïve “déjà vu”. " * 8 + "</p></body></html>"
    records = [
        warc_response(uri, "200 OK", {"Content-Type": kind}, page.encode(encoding))
        for uri, kind, encoding in [
            ("http://e.org/cp1252", "text/html; charset=windows-1252", "cp1252"),
            ("http://e.org/quoted", 'text/html; Charset="UTF-16"', "utf-16"),
            ("http://e.org/utf8", "text/html; charset=iso-8859-1", "utf-8"),
        ]
    ]
    path = tmp_path / "encodings.warc"
    path.write_bytes(b"".join(records))
    texts = [row["text"] for row in read_all(path).to_pylist()]
    assert all("Un café – naïve “déjà vu”." in text for text in texts), texts


def test_warc_one_file(warc_dir: Path) -> None:
    assert read_all(warc_dir / "sample-0000.warc.gz").num_rows == 22
    assert read_all(warc_dir / "sample-0001.warc.gz").num_rows == 15


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [
        ("", lambda b: b),
        (".bz2", bz2.compress),
        (".xz", lzma.compress),
        (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_warc_in_every_compression_reads_as_its_gzip(
    warc_dir: Path, tmp_path: Path, suffix: str, compress: object
) -> None:
    # .warc.bz2 and .warc.xz were taken for WARC by name and then reported as damaged
    source = warc_dir / "sample-0000.warc.gz"
    path = tmp_path / f"sample-0000.warc{suffix}"
    path.write_bytes(compress(gzip.decompress(source.read_bytes())))  # type: ignore[operator]
    table, expected = read_all(path), read_all(source)
    assert table.num_rows == 22
    for column in ("id", "text", "drop_reason", "url", "date"):
        assert table[column].to_pylist() == expected[column].to_pylist()


def wet_record(kind: str, headers: dict[str, str], block: bytes) -> bytes:
    """One gzip member holding a WARC record as Common Crawl's WET files write them."""
    return gzip.compress(warc_record(kind, headers, block))


def test_wet_conversion_records_are_documents(warc_dir: Path, tmp_path: Path) -> None:
    # a .warc.wet.gz was not taken for WARC by name, and with --format warc its
    # conversion records (the text Common Crawl extracted) gave no document at all
    responses = read_all(warc_dir / "sample-0000.warc.gz").to_pylist()
    pages = [row for row in responses if row["drop_reason"] is None]
    info = b"software: test\r\ndescription: Wet files of a sample\r\n"
    members = [wet_record("warcinfo", {"WARC-Record-ID": "<urn:uuid:info>"}, info)]
    for row in pages:
        headers = {
            "WARC-Target-URI": row["url"],
            "WARC-Date": row["date"],
            "WARC-Record-ID": f"<urn:uuid:wet-{row['id'][9:]}>",
            "WARC-Refers-To": f"<{row['id']}>",
            "Content-Type": "text/plain",
        }
        members.append(wet_record("conversion", headers, row["text"].encode()))
    bad = {"WARC-Record-ID": "<urn:uuid:latin1>", "Content-Type": "text/plain"}
    members.append(wet_record("conversion", bad, "caf\xe9 au lait".encode("latin-1")))
    path = tmp_path / "CC-MAIN-sample.warc.wet.gz"
    path.write_bytes(b"".join(members))
    table = read_all(path)
    assert table.num_rows == len(pages) + 1 > 5
    assert table["id"].to_pylist()[:-1] == [f"urn:uuid:wet-{r['id'][9:]}" for r in pages]
    assert table["url"].to_pylist()[:-1] == [r["url"] for r in pages]
    assert table["date"].to_pylist()[:-1] == [r["date"] for r in pages]
    assert table["text"].to_pylist()[:-1] == [r["text"] for r in pages]
    assert table["drop_reason"].to_pylist() == [None] * len(pages) + ["read:invalid_utf8"]
    assert table["text"][-1].as_py() == "caf\ufffd au lait"


def test_parquet_by_row_group(c4_path: Path, tmp_path: Path) -> None:
    source = read_all(c4_path).drop_columns(["drop_reason"])
    path = tmp_path / "c4.parquet"
    pq.write_table(source, path, row_group_size=128)
    table = read_all(path, batch_rows=100)
    assert table.num_rows == 1000
    assert table["id"].to_pylist() == source["id"].to_pylist()
    assert table["text"].to_pylist() == source["text"].to_pylist()


def test_parquet_without_ids_gets_stable_ids(c4_path: Path, tmp_path: Path) -> None:
    source = read_all(c4_path).select(["text", "url"])
    pq.write_table(source, tmp_path / "c4.parquet", row_group_size=300)
    table = read_all(tmp_path / "c4.parquet", batch_rows=128)
    assert table["id"].to_pylist() == [f"c4.parquet/{i}" for i in range(1000)]


def test_plain_text_one_document_per_file() -> None:
    book = shared_file("reference/gutenberg-1342-pride-and-prejudice.txt")
    table = read_all(book.parent, format="auto")
    names = table["id"].to_pylist()
    assert "reference/gutenberg-1342-pride-and-prejudice.txt" in names
    assert table.num_rows == 3
    text = table.filter(pa.compute.equal(table["id"], names[0]))["text"][0].as_py()
    assert len(text) > 100_000


def test_directory_glob_and_names(c4_path: Path, pile_path: Path) -> None:
    shards = resolve_inputs([str(c4_path.parent)])
    assert [s.name for s in shards] == ["web/c4-sample-1000.jsonl.gz", "web/pile-sample-1000.jsonl"]
    shards = resolve_inputs([str(c4_path.parent / "*.jsonl*")])
    assert [s.format for s in shards] == ["jsonl", "jsonl"]
    assert [s.name for s in shards] == ["c4-sample-1000.jsonl.gz", "pile-sample-1000.jsonl"]
