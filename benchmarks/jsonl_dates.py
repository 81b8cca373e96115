"""Reading JSONL whose records carry ISO dates (C4's ``date``), in files of a few blocks.

pyarrow's JSON reader makes a string that reads as an ISO 8601 date a timestamp; the
reader keeps the text, as orjson would, by naming such fields as strings in the parse.
It used to find them by parsing a file's first block, then parsing it again; it now
looks at the first line for them, so each block is parsed once. A file of one block
(the shards of many Hub datasets) paid twice for its whole parse.

Data: the real C4 sample of ../shared/data (1,000 documents with ``url`` and ``date``)
repeated with distinct ids into ``--files`` plain ``.jsonl`` files of ``--rows`` rows.

Variants, one process, one thread each, best of five:
- ``pyarrow``: ``pyarrow.json.read_json`` of each file, the tool a user would reach for
  (dates become timestamps; no ids, no accounting, one bad line fails the file).
- ``curation, first block twice``: ``read_shard`` with the first-line look turned off
  (the reader before this change).
- ``curation``: ``read_shard`` as shipped.

    .venv/bin/python benchmarks/jsonl_dates.py --files 20 --rows 5000
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
from benchmarks.common import SHARED, speed_table
from curation.io.inputs import resolve_inputs
from curation.recipe import InputSpec

DATA = Path(__file__).resolve().parent / "_data" / "jsonl_dates"


def build(files: int, rows: int) -> list[Path]:
    """``files`` JSONL files of ``rows`` C4 records each (written once, then reused)."""
    folder = DATA / f"{files}x{rows}"
    paths = [folder / f"part-{i:03d}.jsonl" for i in range(files)]
    if all(p.exists() for p in paths):
        return paths
    source = SHARED / "web" / "c4-sample-1000.jsonl.gz"
    if not source.exists():
        sys.exit(f"{source} not found: the benchmark needs ../shared/data")
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        c4 = [json.loads(line) for line in handle]
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths):
        with open(path, "w", encoding="utf-8") as out:
            for j in range(rows):
                record = c4[(i * rows + j) % len(c4)]
                out.write(json.dumps({"id": f"f{i}/{j}", **record}, ensure_ascii=False) + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    paths = build(args.files, args.rows)
    shards = resolve_inputs([str(p) for p in paths])
    spec = InputSpec(batch_rows=10_000)
    megabytes = sum(p.stat().st_size for p in paths) / 1e6

    def ours() -> None:
        for shard in shards:
            for _ in readers.read_shard(shard, spec):
                pass

    def twice() -> None:
        with mock.patch.object(readers, "_date_like_fields", lambda *a: []):
            ours()

    def arrow() -> None:
        options = pajson.ReadOptions(use_threads=False)
        for path in paths:
            pajson.read_json(path, read_options=options)

    print(
        f"{platform.processor() or platform.machine()}, {args.files} files x {args.rows:,} "
        f"rows ({megabytes:.1f} MB), batch_rows 10,000, best of {args.repeats}\n"
    )
    speed_table(
        {"pyarrow": arrow, "curation, first block twice": twice, "curation": ours},
        args.repeats,
        "pyarrow",
        "MB/s",
        megabytes,
    )


if __name__ == "__main__":
    main()
