"""Parquet row groups of a strict filter's output: one per batch against gathered ones.

A web-curation stage often keeps a few percent of what it reads. Written as it comes, each
10,000-row batch leaves a row group of a few hundred rows; the writer now gathers batches
into row groups of ``row_group_bytes`` (64 MiB of Arrow data by default). Setting
``row_group_bytes: 1`` writes every batch as its own row group, which is what the writer
did before, so both layouts come from one build, in one run.

Data: the C4 and Pile samples (2,000 real documents) repeated to ``--docs`` documents with
distinct ids, as ``--shards`` zstd Parquet shards. Recipe: ``sample`` at ``--keep`` (a
reproducible share of rows), local executor, the default 10,000-row batches.

Measured per layout: the run's seconds, the kept folder's row groups, median rows per row
group and bytes on disk, then reading it back (best of 3, each in this process): the whole
kept folder with ``pyarrow.parquet.read_table``, and one numeric question with polars'
lazy scan (``len`` of ``text`` summed), which reads only the ``text`` column.

Run:  .venv/bin/python benchmarks/row_groups.py [--docs 400000] [--shards 8] [--keep 0.02]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import best_of, documents

RUNS = Path(__file__).resolve().parent / "_runs" / "row_groups"
LAYOUTS = {"a row group per batch (before)": 1, "gathered (default)": 64 * 2**20}


def make_input(docs: int, shards: int) -> Path:
    folder = RUNS / f"input-{docs}-{shards}"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    texts = documents(docs)
    per = -(-docs // shards)
    for s in range(shards):
        part = texts[s * per : (s + 1) * per]
        ids = [f"doc-{s * per + i}" for i in range(len(part))]
        table = pa.table({"id": ids, "text": pa.array(part, pa.large_string())})
        pq.write_table(table, folder / f"shard-{s:03d}.parquet", compression="zstd")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=400_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--keep", type=float, default=0.02)
    args = parser.parse_args()
    source = make_input(args.docs, args.shards)
    curate = str(Path(sys.executable).parent / "curate")
    print(f"{args.docs:,} documents in {args.shards} shards, keep {args.keep:.0%}")
    print(
        "| layout | run s | kept row groups | median rows per group | kept MiB on disk "
        "| read_table s | polars text length s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, group_bytes in LAYOUTS.items():
        recipe = RUNS / f"recipe-{group_bytes}.yaml"
        recipe.write_text(
            f"input: {{paths: ['{source}/*.parquet']}}\n"
            f"stages:\n  - sample: {{rate: {args.keep}, seed: 0}}\n"
            f"output: {{row_group_bytes: {group_bytes}}}\n"
        )
        out = RUNS / f"out-{group_bytes}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(
            [curate, "run", str(recipe), "--output", str(out), "--executor=local", "--quiet"],
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - started
        files = sorted((out / "kept").glob("*.parquet"))
        metas = [pq.read_metadata(f) for f in files]
        groups = [m.row_group(i).num_rows for m in metas for i in range(m.num_row_groups)]
        size = sum(f.stat().st_size for f in files) / 2**20
        read, length = best_of(
            3,
            lambda files=files: pa.concat_tables([pq.read_table(f) for f in files]),
            lambda files=files: (
                pl.scan_parquet(files).select(pl.col("text").str.len_chars().sum()).collect()
            ),
        )
        print(
            f"| {label} | {seconds:.2f} | {len(groups):,} | {statistics.median(groups):,.0f} "
            f"| {size:.1f} | {read:.3f} | {length:.3f} |"
        )


if __name__ == "__main__":
    main()
