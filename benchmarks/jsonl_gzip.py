"""Reading gzip'd JSONL: our reader with ISA-L against the gzip module, and pyarrow.

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents
with distinct ids, written as one ``.jsonl.gz`` file (gzip level 6, as most crawls
ship).

Variants, one process, best of five, each on one thread:
- ``pyarrow``: ``pyarrow.json.read_json`` over a gzip input stream; no ids, no
  accounting, one bad line fails the file.
- ``curation, gzip module``: ``read_shard`` with Python's ``gzip.GzipFile`` put back
  in place of ISA-L (the reader before this change).
- ``curation, ISA-L``: ``read_shard`` as shipped.

    .venv/bin/python benchmarks/jsonl_gzip.py --docs 50000
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.json as pajson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import curation.io.readers as readers
from benchmarks.common import best_of, documents
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

    def ours_gzip_module() -> int:
        with (
            mock.patch.object(readers.igzip, "IGzipFile", gzip.GzipFile),
            mock.patch.object(readers, "_GZIP_PIECE_BYTES", readers._CHUNK_BYTES),
        ):
            return ours()

    def plain_pyarrow() -> int:
        options = pajson.ReadOptions(use_threads=False)
        with pa.input_stream(str(path), compression="gzip") as stream:
            return pajson.read_json(stream, read_options=options).num_rows

    assert ours() == ours_gzip_module() == plain_pyarrow() == args.docs
    runs = {
        "pyarrow `read_json`": plain_pyarrow,
        "curation, gzip module": ours_gzip_module,
        "curation, ISA-L": ours,
    }
    seconds = dict(zip(runs, best_of(5, *runs.values()), strict=True))
    size = path.stat().st_size / 2**20
    print(f"# {platform.machine()}; {args.docs:,} documents, {size:.1f} MiB of gzip\n")
    print("| reader | seconds | docs/s | vs pyarrow |")
    print("|---|---:|---:|---:|")
    base = seconds["pyarrow `read_json`"]
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {args.docs / value:,.0f} | {value / base:.2f}x |")


if __name__ == "__main__":
    main()
