"""Exact substring dedup (``substring_dedup``): its cost, its memory and what it strikes.

The tool a user would pick instead, Lee et al.'s ``deduplicate-text-datasets`` (Rust,
run by datatrove's ``ExactSubstr`` steps and by ``text-dedup``), is not on any package
registry: it cannot be built on a machine that reaches only PyPI, Debian and npm, so it
is not run here. What is compared instead, one core each:
- ``curation``: ``curate run`` of ``substring_dedup: {min_length: 100}`` on the local
  executor (read, barrier, strike, write kept and dropped Parquet), with the suffix
  arrays, which fit here;
- ``in 8 parts``: the same run with the memory available set so that the windows go in
  8 parts by hash, one after another (what a machine short of memory does);
- ``pass-through``: the same run with no stage, so the difference is the stage's own
  cost;
- ``window count``: the plain way, every window of 100 bytes of every text counted in a
  Python dict (the tests' reference), on the first ``--check`` documents, against the
  spans of both ways, suffix arrays and window hashes, for the same texts (they must be
  equal).

Data: the real C4 and Pile samples repeated to ``--docs`` documents; copy r > 0 of a
document loses every (r + 6)-th word of each line, so copies share their short lines
and the spans between the words taken out. 8 zstd Parquet shards.

    .venv/bin/python benchmarks/substring_dedup.py --docs 20000
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import (  # noqa: E402
    one_thread_arrow,
    real_documents,
    report_from_child,
    run_on_one_core,
    thinned,
    write_parquet_shards,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "substring_dedup"
RUNS = HERE / "_runs" / "substring_dedup"
LENGTH = 100


def corpus(count: int) -> Path:
    base = [text for text, _ in real_documents()]
    texts = [thinned(base[i % len(base)], i // len(base)) for i in range(count)]
    table = pa.table({"id": [f"d{i:09d}" for i in range(count)], "text": texts})
    return write_parquet_shards(table, DATA, 8)


def job_run(folder: Path, out: Path, stages: str) -> dict:
    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    recipe = parse_recipe(f"input: {{format: parquet}}\nstages: {stages}\n", "bench.yaml")
    recipe = recipe.with_input(paths=[str(folder)])
    started = time.perf_counter()
    stats = run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    seconds = time.perf_counter() - started
    kept = pq.read_table(out / "kept")
    removed = (
        pc.sum(kept["substring_dedup_bytes_removed"]).as_py()
        if "substring_dedup_bytes_removed" in kept.column_names
        else 0
    )
    dropped = stats["rows"]["dropped"]
    return {"seconds": seconds, "removed": removed, "dropped": dropped}


def job_curation(folder: Path, out: Path) -> dict:
    return job_run(folder, out, f"[substring_dedup: {{min_length: {LENGTH}}}]")


def job_parts(folder: Path, out: Path) -> dict:
    from curation.dedup import substrings

    texts = pq.read_table(folder, columns=["text"])["text"]
    sizes = pc.binary_length(texts.cast(pa.large_binary()))
    size = pc.sum(sizes).as_py()
    windows = pc.sum(pc.max_element_wise(pc.subtract(sizes, LENGTH - 1), 0)).as_py()
    have = size + windows * substrings.WINDOW_BYTES // 8
    substrings.available_bytes = lambda: have
    return job_curation(folder, out)


def job_passthrough(folder: Path, out: Path) -> dict:
    return job_run(folder, out, "[]")


def check(folder: Path, count: int) -> dict:
    """The stage's spans against the window count on the first ``count`` texts."""
    from curation.dedup.substrings import duplicate_spans
    from tests.dedup.test_substrings import reference_spans

    texts = pq.read_table(folder, columns=["text"])["text"].to_pylist()[:count]
    started = time.perf_counter()
    expected = reference_spans(texts, LENGTH, False)
    result = {"docs": count, "spans": len(expected), "plain": time.perf_counter() - started}
    for name, parts in (("suffix arrays", 0), ("window hashes", 1)):
        started = time.perf_counter()
        rows, starts, ends = duplicate_spans(
            pa.array(texts, pa.large_string()), LENGTH, False, parts=parts
        )
        result[name] = time.perf_counter() - started
        found = list(zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True))
        result[f"{name} same"] = found == expected
    return result


JOBS = {"curation": job_curation, "in 8 parts": job_parts, "pass-through": job_passthrough}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--check", type=int, default=2_000)
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        report_from_child(JOBS[args.job](Path(args.folder), Path(args.out)))
        return
    folder = corpus(args.docs)
    texts = pq.read_table(folder, columns=["text"])["text"]
    mb = pc.sum(pc.binary_length(texts.cast(pa.large_binary()))).as_py() / 1e6
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}; "
        f"{args.docs:,} documents ({mb:.1f} MB of UTF-8), one core per job\n"
    )
    results = {}
    for name in JOBS:
        out = RUNS / name.replace(" ", "-")
        command = [__file__, "--job", name, "--folder", str(folder), "--out", str(out)]
        results[name] = run_on_one_core(name, command)
    print("| job | seconds | MB/s | peak MiB | bytes struck | rows dropped |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['seconds']:.1f} | {mb / r['seconds']:.1f} | {r['peak_mib']:.0f} | "
            f"{r['removed']:,} ({r['removed'] / mb / 1e4:.1f}%) | {r['dropped']:,} |"
        )
    own = results["curation"]["seconds"] - results["pass-through"]["seconds"]
    print(f"\nthe stage's own time: {own:.1f} s, {mb / own:.1f} MB/s")
    c = check(folder, min(args.check, args.docs))
    print(f"\nfirst {c['docs']:,} documents, {c['spans']:,} spans by the window count:")
    for name in ("suffix arrays", "window hashes"):
        print(
            f"- {name}: the same spans: {c[name + ' same']}; {c[name]:.2f} s, the window "
            f"count {c['plain']:.2f} s ({c['plain'] / c[name]:.0f}x)"
        )


if __name__ == "__main__":
    main()
