"""Kept rows a folder per value of a column: ``output: {partition_by: ...}`` against
datatrove's ``ParquetWriter(output_filename="${lang}/${rank}.parquet")``.

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents
(ids unique), each with its language as lid.176 gives it (the ``language`` stage run
once over the 2,000 real documents: about 20 languages, English most) and a ``bucket``
of 100 values (the row number modulo 100), written once as 8 zstd Parquet shards.

Jobs, each in a child process pinned to one core, reading the shards and writing each
document into the folder of its value, nothing dropped:
- ``curation``: ``curate run`` with ``stages: []`` and ``partition_by`` on the local
  executor (read, conform, account, write kept/<value>/, finish, stats);
- ``curation-flat``: the same without ``partition_by`` (what the folders cost);
- ``datatrove``: ``ParquetReader`` -> ``ParquetWriter`` with the value in its file name
  template (the reader puts the column in each document's metadata), one task.

Reports seconds, documents per second, peak memory, the folders written and whether
both tools put the same number of documents in each folder.

    .venv/bin/python benchmarks/partitioned_output.py --docs 200000
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (
    one_thread_arrow,
    real_documents,
    report_from_child,
    run_on_one_core,
    write_parquet_shards,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "partitioned"
RUNS = HERE / "_runs" / "partitioned"
SHARDS = 8


def corpus(count: int) -> Path:
    """The Parquet shards: id, text, lang (lid.176's label of each real document) and
    bucket (the row number modulo 100, as text)."""
    from curation.batch import conform
    from curation.filters.language import Language, LanguageParams

    texts = [text for text, _ in real_documents()]
    stage = Language(LanguageParams(threshold=0.0))
    stage.setup()
    batch = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    langs = stage.process(batch)["lang"].to_pylist()
    rows = range(count)
    table = pa.table(
        {
            "id": [f"d{i:09d}" for i in rows],
            "text": [texts[i % len(texts)] for i in rows],
            "lang": [langs[i % len(texts)] for i in rows],
            "bucket": [f"b{i % 100:02d}" for i in rows],
        }
    )
    return write_parquet_shards(table, DATA, SHARDS)


def folder_counts(root: Path) -> dict[str, int]:
    """Rows in the Parquet files of each folder below ``root``."""
    counts: dict[str, int] = {}
    for file in root.rglob("*.parquet"):
        name = file.parent.name
        counts[name] = counts.get(name, 0) + pq.ParquetFile(file).metadata.num_rows
    return counts


def job_curation(folder: Path, out: Path, column: str | None) -> dict:
    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    output = f"output: {{partition_by: {column}}}\n" if column else ""
    recipe = parse_recipe("stages: []\n" + output, "bench.yaml").with_input(
        paths=[str(folder)], format="parquet"
    )
    started = time.perf_counter()
    stats = run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    seconds = time.perf_counter() - started
    counts = folder_counts(out / "kept") if column else {}
    return {"seconds": seconds, "files": stats["files"]["kept"], "counts": counts}


def job_datatrove(folder: Path, out: Path, column: str) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(out, ignore_errors=True)
    pipeline = [
        ParquetReader(str(folder), glob_pattern="*.parquet", id_key="id"),
        ParquetWriter(str(out / "kept"), output_filename=f"${{{column}}}/${{rank}}.parquet"),
    ]
    executor = LocalPipelineExecutor(pipeline, tasks=1, logging_dir=str(out / "logs"))
    started = time.perf_counter()
    executor.run()
    seconds = time.perf_counter() - started
    counts = folder_counts(out / "kept")
    return {
        "seconds": seconds,
        "files": sum(1 for _ in (out / "kept").rglob("*.parquet")),
        "counts": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--job", choices=["curation", "curation-flat", "datatrove"])
    parser.add_argument("--column")
    parser.add_argument("--folder")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        folder, out = Path(args.folder), Path(args.out)
        if args.job == "datatrove":
            result = job_datatrove(folder, out, args.column)
        else:
            result = job_curation(folder, out, None if args.job == "curation-flat" else args.column)
        report_from_child(result)
        return

    folder = corpus(args.docs)
    size = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2**20
    print(f"# machine: {platform.machine()}, Python {platform.python_version()}; one core per job")
    print(f"# {args.docs:,} documents ({size:.0f} MiB of zstd Parquet in {SHARDS} shards)\n")
    print("| column | tool | seconds | docs/s | peak MiB | folders | files | vs datatrove |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    same = {}
    for column in ("lang", "bucket"):
        results = {}
        for name in ("datatrove", "curation", "curation-flat"):
            command = [__file__, "--job", name, "--column", column, "--folder", str(folder)]
            results[name] = run_on_one_core(name, [*command, "--out", str(RUNS / name)])
        base = results["datatrove"]["seconds"]
        for name, r in results.items():
            print(
                f"| {column} | {name} | {r['seconds']:.2f} | {args.docs / r['seconds']:,.0f} | "
                f"{r['peak_mib']:.0f} | {len(r['counts']) or '-'} | {r['files']} | "
                f"{base / r['seconds']:.2f}x |"
            )
        same[column] = results["datatrove"]["counts"] == results["curation"]["counts"]
    print(f"\nsame documents in each folder as datatrove: {same}")


if __name__ == "__main__":
    main()
