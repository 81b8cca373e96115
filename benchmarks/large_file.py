"""One large file on every core: read whole by one worker, or cut into pieces.

A shard is the unit of work, and a file was a shard, so one large file was read by one
worker however many the machine had (datatrove and NeMo Curator also hand out whole
files). Now a file of at least twice the unit size (``input.unit_bytes``, 64 MiB, or 1/64
of the input if less) is cut into pieces read by several workers at once, with the rows,
ids and order of the whole file: a Parquet file into pieces of consecutive row groups (by
its footer), a local uncompressed JSONL file into pieces of whole batches of lines (by
one read of the file that counts its lines, timed here as part of the run), and a local
gzip'd one the same way by its decompressed bytes (the planner decompresses it once to
count its lines while rapidgzip writes a seek index, by which each worker enters the
stream at its piece; also timed as part of the run, and alone below the table), and a
local WARC file gzip'd a member per record into pieces of its bytes on disk, each from
a document's record after whole batches of documents (found by one pass that
decompresses the file and parses its records' headers; timed as part of the run), and a
local zstd'd JSONL file the same way as a gzip'd one, except that there is no index: a
worker decompresses from the start of the zstd frame that holds its piece and passes over
what lies before it, so a file of one frame makes few pieces (all the workers together
pass over at most 4 times the file).

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents
(copy ``r`` > 0 of a document loses every ``(r + 6)``-th word of each line), as one file
of ``id`` and ``text``: ``--format parquet``, zstd, row groups of 1,000 rows, as
datatrove's ``ParquetWriter`` writes them; ``--format jsonl``, uncompressed, a document a
line (the engine's batches of 10,000 lines set the pieces' least size); ``--format
jsonl.gz``, that file gzip'd (level 6, as ``gzip`` does by default); ``--format
jsonl.zst``, that file compressed with zstd (level 3, as ``zstd`` does by default) in one
frame, or with ``--frame-mb N`` in a frame every N MB of text (as ``pzstd`` or the
seekable format write it); ``--format
warc.gz``, the two real WARC samples (37 HTML responses, a gzip member per record, as
Common Crawl ships WARC) repeated to about ``--docs`` documents, their HTML turned into
text by Resiliparse on both sides (datatrove's ``WarcReader``, then a step that calls
Resiliparse's ``extract_plain_text`` with curation's settings: the same extraction, so
that the runs differ in how the file is shared out, not in the extractor); curation
reads it in batches of 1,000 documents (``batch_rows``) in both of its runs, since a
WARC file is cut after whole batches and 10,000 HTML pages are about 120 MB of it.

The job: FineWeb's heuristic filters (Gopher repetition and quality, C4 without the
terminal-punctuation rule, FineWeb quality), the kept and the dropped documents written
as Parquet, on all the machine's cores (``--workers``, default every core):
- ``curation, whole file``: ``unit_bytes: 0`` (a shard per file, the engine before),
  Ray executor with ``--workers`` workers;
- ``curation, pieces (default)``: the same with the default unit size;
- ``datatrove``: the same filters (``GopherRepetitionFilter``, ``GopherQualityFilter``,
  ``C4QualityFilter(filter_no_terminal_punct=False)``, ``FineWebQualityFilter``, the
  dropped through ``exclusion_writer``) between ``ParquetReader`` (or ``JsonlReader``)
  and ``ParquetWriter``, ``LocalPipelineExecutor`` with ``--workers`` tasks and workers.

Each runs as a child process, once, after the file was read once to put it in the page
cache; wall time and peak memory of the process tree's largest process (``/usr/bin/time``).

    .venv/bin/python benchmarks/large_file.py --format parquet --docs 60000
    .venv/bin/python benchmarks/large_file.py --format jsonl --docs 60000
    .venv/bin/python benchmarks/large_file.py --format jsonl.gz --docs 60000
    .venv/bin/python benchmarks/large_file.py --format jsonl.zst --docs 60000
    .venv/bin/python benchmarks/large_file.py --format jsonl.zst --docs 60000 --frame-mb 4
    .venv/bin/python benchmarks/large_file.py --format warc.gz --docs 15000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import SHARED, real_documents, thinned

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "large_file"
RUNS = HERE / "_runs" / "large_file"
CURATE = str(Path(sys.executable).with_name("curate"))
WARC_DOCS = 37  # HTML responses in the two WARC samples

STAGES = """stages:
  - gopher_repetition: {}
  - gopher_quality: {}
  - c4_quality: {filter_no_terminal_punct: false}
  - fineweb_quality: {}
"""

DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import (
    C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter,
)
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader, ParquetReader, WarcReader
from datatrove.pipeline.writers import ParquetWriter
source, out, workers, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


class ResiliparseText(PipelineStep):
    # HTML to text as curation's WARC reader does it (Resiliparse, main content only); a
    # document left without text is dropped
    name = "resiliparse"

    def run(self, data, rank=0, world_size=1):
        from resiliparse.extract.html2text import extract_plain_text

        for document in data:
            document.text = extract_plain_text(document.text, main_content=True)
            if document.text.strip():
                yield document


readers = {"parquet": ParquetReader, "warc.gz": WarcReader}
read = [readers.get(kind, JsonlReader)(source, glob_pattern=f"*.{kind}")]
if kind == "warc.gz":
    read.append(ResiliparseText())
dropped = lambda name: ParquetWriter(f"{out}/dropped/{name}", compression="zstd")
LocalPipelineExecutor(
    pipeline=[
        *read,
        GopherRepetitionFilter(exclusion_writer=dropped("gopher_repetition")),
        GopherQualityFilter(exclusion_writer=dropped("gopher_quality")),
        C4QualityFilter(filter_no_terminal_punct=False, exclusion_writer=dropped("c4")),
        FineWebQualityFilter(exclusion_writer=dropped("fineweb")),
        ParquetWriter(out + "/kept", compression="zstd"),
    ],
    tasks=workers,
    workers=workers,
    logging_dir=out + "/logs",
).run()
"""


def build(count: int, kind: str, frame_mb: float | None = None) -> Path:
    """One file of ``count`` documents in a folder: Parquet of row groups of 1,000 rows,
    JSONL, gzip'd JSONL, or zstd'd JSONL (one frame, or one every ``frame_mb`` MB of
    text)."""
    folder = DATA / kind / (f"{count}-frames-{frame_mb}MB" if frame_mb else str(count))
    path = folder / f"docs.{kind}"
    if kind == "jsonl.zst" and not path.exists():
        import zstandard

        lines = (build(count, "jsonl") / "docs.jsonl").read_bytes()
        folder.mkdir(parents=True, exist_ok=True)
        compressor = zstandard.ZstdCompressor(level=3)
        step = int(frame_mb * 1e6) if frame_mb else len(lines)
        frames = [compressor.compress(lines[i : i + step]) for i in range(0, len(lines), step)]
        path.write_bytes(b"".join(frames))
    if kind == "warc.gz" and not path.exists():
        samples = b"".join(f.read_bytes() for f in sorted((SHARED / "warc").glob("*.warc.gz")))
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(samples * max(1, round(count / WARC_DOCS)))
    if kind == "jsonl.gz" and not path.exists():
        lines = (build(count, "jsonl") / "docs.jsonl").read_bytes()
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(lines, compresslevel=6))
    if not path.exists():
        base = [text for text, _ in real_documents()]
        texts = [thinned(base[i % len(base)], i // len(base)) for i in range(count)]
        folder.mkdir(parents=True, exist_ok=True)
        ids = [f"d{i}" for i in range(count)]
        if kind == "parquet":
            table = pa.table({"id": ids, "text": texts})
            pq.write_table(table, path, row_group_size=1_000, compression="zstd")
        else:
            with open(path, "w", encoding="utf-8") as out:
                for doc_id, text in zip(ids, texts, strict=True):
                    out.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    return folder


def timed(command: list[str], out: Path) -> tuple[float, float]:
    """Wall seconds and peak MiB of ``command``, into an empty ``out`` (datatrove would
    skip the tasks its logs mark done)."""
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *command], capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    seconds, kib = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024


def curation_run(folder: Path, workers: int, unit_bytes: int | None, batch: int | None) -> dict:
    name = "default" if unit_bytes is None else f"u{unit_bytes}"
    recipe = RUNS / f"{name}.yaml"
    given = {"unit_bytes": unit_bytes, "batch_rows": batch}
    head = ", ".join(f"{key}: {value}" for key, value in given.items() if value is not None)
    recipe.write_text((f"input: {{{head}}}\n" if head else "") + STAGES)
    out = RUNS / f"out-{name}"
    command = [CURATE, "run", str(recipe), "--input", str(folder), "--output", str(out)]
    command += ["--executor", "ray", "--workers", str(workers), "--quiet"]
    seconds, peak = timed(command, out)
    kept = pq.read_table(out / "kept").num_rows
    return {"seconds": seconds, "peak_mib": peak, "kept": kept, "shards": _shards(out)}


def _shards(out: Path) -> int:
    return json.loads((out / "stats.json").read_text())["shards"]["total"]


def datatrove_run(folder: Path, workers: int, kind: str) -> dict:
    out = RUNS / "datatrove"
    command = [sys.executable, "-c", DATATROVE, str(folder), str(out), str(workers), kind]
    seconds, peak = timed(command, out)
    kept = pq.read_table(sorted((out / "kept").rglob("*.parquet"))).num_rows
    return {"seconds": seconds, "peak_mib": peak, "kept": kept, "shards": 1}


def planning(path: Path, batch: int | None) -> str:
    """What finding a compressed file's pieces costs alone: the planner's pass (gzip'd
    JSONL: lines counted, seek index written; zstd'd JSONL: lines and frames counted;
    WARC: records' headers parsed) against decompressing the file once with the reader's
    decompressor."""
    from curation.io.inputs import plan_units, resolve_inputs
    from curation.io.readers import _gzip_chunks, _zstd_chunks

    files = resolve_inputs([str(path)])
    started = time.perf_counter()
    with open(path, "rb") as raw:
        chunks = _zstd_chunks(raw) if path.name.endswith(".zst") else _gzip_chunks(raw)
        text = sum(len(chunk) for chunk in chunks)
    inflate = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        pieces = plan_units(files, 64 << 20, batch_rows=batch or 10_000, index_folder=folder)
        planned = time.perf_counter() - started
        index = sum(f.stat().st_size for f in Path(folder).iterdir())
    passed = sum(p.byte_range[0] - p.zstd_frame[1] for p in pieces if p.zstd_frame)
    return (
        f"Planning alone: {len(pieces)} pieces of {text / 1e6:.1f} MB decompressed in "
        f"{planned:.2f} s ({text / 1e6 / planned:.0f} MB/s; decompressing it once with the "
        f"reader's decompressor: {inflate:.2f} s), seek index and blocks "
        f"{index / 1e3:.1f} kB ({index / path.stat().st_size:.2%} of the file)"
        + (f"; the pieces' readers pass over {passed / text:.2f} times the file" if passed else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--format",
        choices=("parquet", "jsonl", "jsonl.gz", "jsonl.zst", "warc.gz"),
        default="parquet",
    )
    parser.add_argument(
        "--frame-mb",
        type=float,
        default=None,
        help="jsonl.zst: a zstd frame every this many MB of text (default: one frame)",
    )
    parser.add_argument("--docs", type=int, default=60_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    shutil.rmtree(RUNS, ignore_errors=True)
    RUNS.mkdir(parents=True)
    folder = build(args.docs, args.format, args.frame_mb)
    size = len((folder / f"docs.{args.format}").read_bytes()) / 1e6  # now in the page cache
    layout = {
        "parquet": "row groups of 1,000 rows",
        "jsonl": "a document a line",
        "jsonl.gz": "a document a line, gzip level 6",
        "jsonl.zst": "a document a line, zstd level 3, "
        + (f"a frame every {args.frame_mb:g} MB of text" if args.frame_mb else "one frame"),
        "warc.gz": f"the WARC samples {round(args.docs / WARC_DOCS)} times, a member a record",
    }[args.format]
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, one {args.format} file of "
        f"{args.docs:,} documents ({size:.1f} MB, {layout}), {args.workers} workers\n"
    )
    # a WARC file is cut after whole batches of documents, and 10,000 HTML pages are about
    # 120 MB of gzip'd WARC: batches of 1,000 let the file be cut at all
    batch = 1_000 if args.format == "warc.gz" else None
    results = {
        "datatrove": datatrove_run(folder, args.workers, args.format),
        "curation, whole file (unit_bytes: 0)": curation_run(folder, args.workers, 0, batch),
        "curation, pieces (default)": curation_run(folder, args.workers, None, batch),
    }
    whole = results["curation, whole file (unit_bytes: 0)"]["seconds"]
    base = results["datatrove"]["seconds"]
    print("| variant | shards | run s | vs whole file | vs datatrove | peak MiB | kept |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        print(
            f"| {label} | {r['shards']} | {r['seconds']:.2f} | {whole / r['seconds']:.2f}x | "
            f"{base / r['seconds']:.2f}x | {r['peak_mib']:.0f} | {r['kept']:,} |"
        )
    if args.format.endswith((".gz", ".zst")):
        print("\n" + planning(folder / f"docs.{args.format}", batch))


if __name__ == "__main__":
    main()
