"""Exact dedup: our ``exact_dedup`` stage against datatrove's three exact-dedup stages.

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents,
each copy made unique by a numbered last line, except a ``--dup-share`` of them that
repeat an earlier document with its case and white space changed (upper-cased, spaces
doubled): the duplicates a normalised exact dedup must find. Written once as 8 zstd
Parquet shards, ids zero-padded so that the smallest id is the first occurrence.

Jobs, each in a child process pinned to one core:
- ``curation``: ``curate run`` with ``exact_dedup`` (lower-case, fold white space) on
  the local executor: read, hash, barrier, apply, write kept and dropped.
- ``datatrove``: ``ExactDedupSignature`` -> ``ExactFindDedups`` -> ``ExactDedupFilter``
  (with a Parquet writer for the removed and one for the kept documents), local
  executor, one task each; its content getter normalises as ours does, in Python.

Reports seconds, documents per second, peak memory and the documents removed, and
whether both removed the same ids.

    .venv/bin/python benchmarks/exact_dedup.py --docs 200000
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (
    documents,
    one_thread_arrow,
    report_from_child,
    run_on_one_core,
    write_parquet_shards,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "exact"
RUNS = HERE / "_runs" / "exact"
SHARDS = 8


def corpus(count: int, dup_share: float, seed: int = 0) -> tuple[Path, int]:
    """The Parquet shards and the number of planted duplicates."""
    rng = np.random.default_rng(seed)
    texts = [f"{text}\n[{i}]" for i, text in enumerate(documents(count))]
    planted = np.flatnonzero(rng.random(count) < dup_share)
    planted = planted[planted > 0]
    for at in planted.tolist():
        source = texts[int(rng.integers(0, at))]
        texts[at] = source.upper().replace(" ", "  ")
    table = pa.table({"id": [f"d{i:09d}" for i in range(count)], "text": texts})
    return write_parquet_shards(table, DATA, SHARDS), len(planted)


def job_curation(folder: Path, out: Path) -> dict:
    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    recipe = parse_recipe("stages:\n  - exact_dedup: {}\n", "bench.yaml").with_input(
        paths=[str(folder)], format="parquet"
    )
    started = time.perf_counter()
    run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    seconds = time.perf_counter() - started
    removed = pq.read_table(out / "dropped", columns=["id"])["id"].to_pylist()
    return {"seconds": seconds, "removed": sorted(removed)}


def job_datatrove(folder: Path, out: Path) -> dict:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.exact_dedup import (
        ExactDedupConfig,
        ExactDedupFilter,
        ExactDedupSignature,
        ExactFindDedups,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    def content(doc: Document) -> str:  # our normalisation: lower-case, fold white space
        return " ".join(doc.text.lower().split())

    shutil.rmtree(out, ignore_errors=True)
    config = ExactDedupConfig(content_getter=content)
    logs = str(out / "logs")

    def reader() -> ParquetReader:
        return ParquetReader(str(folder), glob_pattern="*.parquet", id_key="id")

    stages = [
        LocalPipelineExecutor(
            [reader(), ExactDedupSignature(str(out / "sigs"), config=config)],
            tasks=1,
            logging_dir=f"{logs}/1",
        ),
        LocalPipelineExecutor(
            [ExactFindDedups(str(out / "sigs"), str(out / "dups"), config=config)],
            tasks=1,
            logging_dir=f"{logs}/2",
        ),
        LocalPipelineExecutor(
            [
                reader(),
                ExactDedupFilter(
                    str(out / "dups"),
                    config=config,
                    exclusion_writer=ParquetWriter(str(out / "removed")),
                ),
                ParquetWriter(str(out / "kept")),
            ],
            tasks=1,
            logging_dir=f"{logs}/3",
        ),
    ]
    started = time.perf_counter()
    for stage in stages:
        stage.run()
    seconds = time.perf_counter() - started
    removed_folder = out / "removed"  # datatrove writes it only when it removes something
    removed = (
        pq.read_table(removed_folder, columns=["id"])["id"].to_pylist()
        if removed_folder.exists()
        else []
    )
    return {"seconds": seconds, "removed": sorted(removed)}


JOBS = {"curation": job_curation, "datatrove": job_datatrove}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--dup-share", type=float, default=0.1)
    parser.add_argument("--job", choices=sorted(JOBS))
    parser.add_argument("--folder")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        report_from_child(JOBS[args.job](Path(args.folder), Path(args.out)))
        return

    folder, planted = corpus(args.docs, args.dup_share)
    size = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2**20
    print(f"# machine: {platform.machine()}; one core per job")
    print(f"# {args.docs:,} documents ({size:.0f} MiB of zstd Parquet), {planted:,} planted\n")
    results = {
        name: run_on_one_core(
            name, [__file__, "--job", name, "--folder", str(folder), "--out", str(RUNS / name)]
        )
        for name in ("datatrove", "curation")
    }
    base = results["datatrove"]["seconds"]
    print("| tool | seconds | docs/s | peak MiB | removed | vs datatrove |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        seconds = result["seconds"]
        print(
            f"| {name} | {seconds:.1f} | {args.docs / seconds:,.0f} | {result['peak_mib']:.0f} | "
            f"{len(result['removed']):,} | {base / seconds:.1f}x |"
        )
    same = results["datatrove"]["removed"] == results["curation"]["removed"]
    print(f"\nsame removed ids: {same}")


if __name__ == "__main__":
    main()
