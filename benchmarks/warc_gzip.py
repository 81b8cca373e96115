"""Reading gzip'd WARC: our stream against FastWARC's own gzip and fsspec's ISA-L file.

Data: the two real WARC samples of ../shared/data/warc (37 HTML responses, 4,920 gzip
members per 120 copies: a member per record, as Common Crawl ships) repeated ``--copies``
times into one ``.warc.gz`` file.

Variants, one process, best of five, one thread:
- parse only (every response record's HTTP headers and body read, no HTML extraction):
  - ``FastWARC, its own gzip``: ``ArchiveIterator`` over the open file, decompressing
    it itself (what a FastWARC user writes; a truncation is an end, not an error);
  - ``FastWARC over fsspec's gzip``: over ``fsspec.open(..., compression="gzip")``, an
    ISA-L file reader (how ``read_warc`` read before; its large bites lose the whole
    records of a bite that ends in a truncation);
  - ``FastWARC over our stream``: over ``_ChunkFile(_gzip_chunks(...))``, ISA-L's
    inflate fed 64 KiB of the file at a time (now).
- ``read_shard``, with Resiliparse's HTML extraction, before and now.

    .venv/bin/python benchmarks/warc_gzip.py --copies 60
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import fsspec
from fastwarc.warc import ArchiveIterator, WarcRecordType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import curation.io.readers as readers
from benchmarks.common import speed_table
from curation.io.inputs import resolve_inputs
from curation.recipe import InputSpec

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "warc"
DATA = Path(__file__).resolve().parent / "_data" / "warc_gzip"


def build(copies: int) -> Path:
    samples = sorted(SAMPLES.glob("*.warc.gz"))
    if not samples:
        sys.exit(f"no WARC samples under {SAMPLES}: this benchmark reads ../shared/data/warc")
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"samples-x{copies}.warc.gz"
    if not path.exists():
        path.write_bytes(b"".join(p.read_bytes() for p in samples) * copies)
    return path


def parse(stream: Any) -> int:
    records = ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True)
    count = 0
    for record in records:
        record.reader.read()
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=60)
    args = parser.parse_args()
    path = build(args.copies)
    spec = InputSpec(format="warc")
    [shard] = resolve_inputs([str(path)])

    def fastwarc_own() -> int:
        with open(path, "rb") as raw:
            return parse(raw)

    def fastwarc_fsspec() -> int:
        with fsspec.open(str(path), "rb", compression="gzip") as handle:
            return parse(handle)

    def fastwarc_ours() -> int:
        with open(path, "rb") as raw:
            return parse(readers._ChunkFile(readers._gzip_chunks(raw)))

    @contextlib.contextmanager
    def fsspec_handle(url: str) -> Iterator[Any]:
        with fsspec.open(url, "rb", compression="gzip") as handle:
            yield handle

    def read_now() -> int:
        return sum(t.num_rows for t in readers.read_shard(shard, spec))

    def read_before() -> int:
        with (
            mock.patch.object(readers, "open_chunks", fsspec_handle),
            mock.patch.object(readers, "_ChunkFile", lambda handle: handle),
        ):
            return read_now()

    runs: dict[str, Callable[[], int]] = {
        "parse: FastWARC, its own gzip": fastwarc_own,
        "parse: FastWARC over fsspec's gzip (before)": fastwarc_fsspec,
        "parse: FastWARC over our stream (now)": fastwarc_ours,
        "read_shard with extraction (before)": read_before,
        "read_shard with extraction (now)": read_now,
    }
    counts = {name: run() for name, run in runs.items()}
    assert len(set(counts.values())) == 1, counts
    size = path.stat().st_size / 2**20
    records = next(iter(counts.values()))
    print(f"# {platform.machine()}; {records:,} responses, {size:.1f} MiB of gzip\n")
    speed_table(runs, 5, "parse: FastWARC, its own gzip", "MiB/s of gzip", size)


if __name__ == "__main__":
    main()
