"""A stage on some rows only: a recipe's ``where:`` against a datatrove filter that
passes the other documents itself.

Data: ``partitioned_output.py``'s documents (the real C4 and Pile samples repeated to
``--docs``, each with its lid.176 language, English most, and a ``bucket`` of 100
values), 8 zstd Parquet shards.

Jobs, each a child process pinned to one core, reading the shards, running Gopher's
quality rules and writing what they keep:
- ``curation``: ``curate run`` on the local executor with ``gopher_quality`` and, but
  for ``all``, ``where:`` beside it;
- ``datatrove``: ``ParquetReader`` -> ``GopherQualityFilter`` -> ``ParquetWriter``,
  where the filter is, but for ``all``, a subclass that keeps the documents outside the
  condition without looking at them (datatrove's filters have no condition: this is
  what its users write).

Conditions: every row (``all``), English (``lang = 'en'``), half of the buckets
(``bucket < 'b50'``) and every language but English (``lang <> 'en'``). Reports seconds,
peak memory and documents kept per job, curation against datatrove.

    .venv/bin/python benchmarks/stage_where.py --docs 200000
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import one_thread_arrow, report_from_child, run_on_one_core
from benchmarks.partitioned_output import corpus

HERE = Path(__file__).resolve().parent
RUNS = HERE / "_runs" / "stage_where"
#: name -> (the recipe's where, datatrove's test of a document's metadata)
CONDITIONS = {
    "all": (None, None),
    "English": ("lang = 'en'", ("lang", "==", "en")),
    "half the buckets": ("bucket < 'b50'", ("bucket", "<", "b50")),
    "not English": ("lang <> 'en'", ("lang", "!=", "en")),
}


def job_curation(folder: Path, out: Path, condition: str) -> dict:
    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    where = CONDITIONS[condition][0]
    text = "stages:\n  - gopher_quality: {}\n" + (f'    where: "{where}"\n' if where else "")
    recipe = parse_recipe(text, "bench.yaml").with_input(paths=[str(folder)], format="parquet")
    started = time.perf_counter()
    stats = run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    return {"seconds": time.perf_counter() - started, "kept": stats["rows"]["kept"]}


def job_datatrove(folder: Path, out: Path, condition: str) -> dict:
    import shutil

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import GopherQualityFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    test = CONDITIONS[condition][1]

    class Limited(GopherQualityFilter):
        """Gopher's rules on the documents ``test`` holds for; the others kept."""

        def filter(self, doc):  # type: ignore[no-untyped-def]
            key, op, value = test
            seen = doc.metadata.get(key)
            holds = {"==": seen == value, "!=": seen != value, "<": seen < value}[op]
            return super().filter(doc) if holds else True

    shutil.rmtree(out, ignore_errors=True)
    pipeline = [
        ParquetReader(str(folder), glob_pattern="*.parquet", id_key="id"),
        GopherQualityFilter() if test is None else Limited(),
        ParquetWriter(str(out / "kept")),
    ]
    executor = LocalPipelineExecutor(pipeline, tasks=1, logging_dir=str(out / "logs"))
    started = time.perf_counter()
    executor.run()
    seconds = time.perf_counter() - started
    kept = sum(pq.ParquetFile(f).metadata.num_rows for f in (out / "kept").rglob("*.parquet"))
    return {"seconds": seconds, "kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--job", choices=["curation", "datatrove"])
    parser.add_argument("--condition", choices=list(CONDITIONS))
    parser.add_argument("--folder")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        job = job_curation if args.job == "curation" else job_datatrove
        report_from_child(job(Path(args.folder), Path(args.out), args.condition))
        return

    folder = corpus(args.docs)
    langs = pq.read_table(folder, columns=["lang", "bucket"])
    english = sum(1 for v in langs["lang"].to_pylist() if v == "en")
    print(f"# machine: {platform.machine()}, Python {platform.python_version()}; one core per job")
    print(f"# {args.docs:,} documents in 8 zstd Parquet shards, {english:,} English\n")
    print("| rows gopher_quality sees | tool | seconds | peak MiB | kept | vs datatrove |")
    print("|---|---|---:|---:|---:|---:|")
    for condition in CONDITIONS:
        results = {}
        for name in ("datatrove", "curation"):
            command = [__file__, "--job", name, "--condition", condition, "--folder", str(folder)]
            results[name] = run_on_one_core(name, [*command, "--out", str(RUNS / name)])
        base = results["datatrove"]["seconds"]
        for name, r in results.items():
            print(
                f"| {condition} | {name} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | "
                f"{r['kept']:,} | {base / r['seconds']:.2f}x |"
            )


if __name__ == "__main__":
    main()
