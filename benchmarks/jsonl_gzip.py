"""Reading gzip'd JSONL: our reader with ISA-L against zlib, and pyarrow.

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents
with distinct ids, written as one ``.jsonl.gz`` file (gzip level 6, as most crawls
ship).

Variants, one process, best of five, each on one thread:
- ``pyarrow``: ``pyarrow.json.read_json`` over a gzip input stream; no ids, no
  accounting, one bad line fails the file.
- ``curation, zlib``: ``read_shard`` with the standard library's ``zlib`` (what the
  gzip module inflates with) put in place of ISA-L.
- ``curation, ISA-L file reader``: ``read_shard`` reading through ISA-L's ``IGzipFile``
  in pieces of 1 MiB, as it did before it inflated the stream itself (a file reader
  that takes large bites loses the rows of a bite that ends in a truncation).
- ``curation, ISA-L``: ``read_shard`` as shipped: ISA-L's inflate fed 64 KiB of the
  file at a time.

    .venv/bin/python benchmarks/jsonl_gzip.py --docs 50000
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from unittest import mock

import pyarrow as pa
import pyarrow.json as pajson
from isal import igzip

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import curation.io.readers as readers
from benchmarks.common import documents, speed_table
from curation.io.inputs import resolve_inputs
from curation.recipe import InputSpec

DATA = Path(__file__).resolve().parent / "_data" / "jsonl_gzip"


def build(count: int) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"docs-{count}.jsonl.gz"
    if not path.exists():
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as out:
            for i, text in enumerate(documents(count)):
                out.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=50_000)
    args = parser.parse_args()
    path = build(args.docs)
    spec = InputSpec(paths=[str(path)])
    [shard] = resolve_inputs([str(path)])

    def ours() -> int:
        return sum(t.num_rows for t in readers.read_shard(shard, spec))

    def ours_zlib() -> int:
        with mock.patch.object(readers, "isal_zlib", zlib):
            return ours()

    def file_reader_chunks(raw: BinaryIO) -> Iterator[bytes]:
        with igzip.IGzipFile(fileobj=raw, mode="rb") as handle:
            yield from iter(lambda: handle.read1(readers._GZIP_PIECE_BYTES), b"")

    def ours_file_reader() -> int:
        with mock.patch.object(readers, "_gzip_chunks", file_reader_chunks):
            return ours()

    def plain_pyarrow() -> int:
        options = pajson.ReadOptions(use_threads=False)
        with pa.input_stream(str(path), compression="gzip") as stream:
            return pajson.read_json(stream, read_options=options).num_rows

    assert ours() == ours_zlib() == ours_file_reader() == plain_pyarrow() == args.docs
    runs = {
        "pyarrow `read_json`": plain_pyarrow,
        "curation, zlib": ours_zlib,
        "curation, ISA-L file reader": ours_file_reader,
        "curation, ISA-L": ours,
    }
    size = path.stat().st_size / 2**20
    print(f"# {platform.machine()}; {args.docs:,} documents, {size:.1f} MiB of gzip\n")
    speed_table(runs, 5, "pyarrow `read_json`", "docs/s", args.docs)


if __name__ == "__main__":
    main()
