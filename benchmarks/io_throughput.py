"""Read/write throughput of `curate run` with a pass-through recipe against plain pyarrow.

Data: the real C4 and Pile samples of ../shared/data, repeated (with distinct ids) to
``--docs`` documents, split into ``--shards`` files, once as Parquet and once as JSONL.

Variants, each in a fresh subprocess so that imports and memory do not leak between them:
- ``pyarrow``: the limit. Read each shard (``pq.read_table`` / ``pyarrow.json.read_json``)
  and write it as zstd Parquet. No accounting, no ids, no bad-row handling.
- ``pyarrow1``: the same on one thread (``use_threads=False``), the per-core limit.
- ``local``: ``curate run`` with the local executor and ``stages: []``.
- ``local-lines`` (JSONL only): the same with the whole-block JSON parse turned off, so
  that every line is parsed on its own with orjson (the reader before the block parse).
- ``ray1`` / ``ray2``: ``curate run`` on the embedded Ray cluster with 1 and 2 workers.
  ``ray.init`` is timed on its own (start-up column) and left out of ``seconds``; the
  actor pool's start (about 3 s here) is inside ``seconds``.

Prints a Markdown table (docs/s, MB/s of text, seconds, peak RSS of the driver process,
ratio to the pyarrow limit) for ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/io_throughput.py --docs 100000 --shards 8
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
DATA = HERE / "_data"
RUNS = HERE / "_runs"
VARIANTS = ("pyarrow", "pyarrow1", "local", "local-lines", "ray1", "ray2")


def build_inputs(docs: int, shards: int) -> tuple[Path, Path, int]:
    """Write the Parquet and JSONL inputs; return their folders and the text bytes."""
    c4 = SHARED / "web" / "c4-sample-1000.jsonl.gz"
    pile = SHARED / "web" / "pile-sample-1000.jsonl"
    if not c4.exists() or not pile.exists():
        sys.exit(f"real samples not found under {SHARED}: the benchmark needs ../shared/data")
    with gzip.open(c4, "rt", encoding="utf-8") as handle:
        base = [
            {"text": r["text"], "url": r["url"], "source": "c4"} for r in map(json.loads, handle)
        ]
    with open(pile, encoding="utf-8") as handle:
        base += [
            {"text": r["contents"], "url": None, "source": r["metadata"]["pile_set_name"]}
            for r in map(json.loads, handle)
        ]
    rows = [
        {"id": f"r{i // len(base)}/{i % len(base)}", **base[i % len(base)]} for i in range(docs)
    ]
    parquet_dir, jsonl_dir = DATA / "parquet", DATA / "jsonl"
    for folder in (parquet_dir, jsonl_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    per = -(-docs // shards)
    for i in range(shards):
        chunk = rows[i * per : (i + 1) * per]
        pq.write_table(
            pa.Table.from_pylist(chunk),
            parquet_dir / f"shard-{i:03d}.parquet",
            compression="zstd",
            row_group_size=10_000,
        )
        with open(jsonl_dir / f"shard-{i:03d}.jsonl", "w", encoding="utf-8") as out:
            for row in chunk:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    text_bytes = sum(len(r["text"].encode("utf-8")) for r in rows)
    return parquet_dir, jsonl_dir, text_bytes


def run_variant(variant: str, fmt: str, inputs: Path) -> dict:
    """Run one variant in this process; return seconds, startup seconds and peak RSS."""
    out = RUNS / f"{fmt}-{variant}"
    shutil.rmtree(out, ignore_errors=True)
    startup = 0.0
    started = time.perf_counter()
    if variant.startswith("pyarrow"):
        import pyarrow.json as pj

        threads = variant == "pyarrow"
        out.mkdir(parents=True)
        for shard in sorted(inputs.iterdir()):
            if fmt == "parquet":
                table = pq.read_table(shard, use_threads=threads)
            else:
                table = pj.read_json(shard, read_options=pj.ReadOptions(use_threads=threads))
            pq.write_table(table, out / f"{shard.stem}.parquet", compression="zstd")
    else:
        from curation.recipe import parse_recipe
        from curation.runtime.run import RunOptions, run

        recipe = parse_recipe("stages: []\n").with_input(paths=[str(inputs)])
        if variant.startswith("ray"):
            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=int(variant[3:]), include_dashboard=False, log_to_driver=False)
            startup = time.perf_counter() - t0
            options = RunOptions("ray", workers=int(variant[3:]), progress=False)
        else:
            options = RunOptions("local", progress=False)
        if variant == "local-lines":
            from unittest import mock

            import curation.io.readers

            mock.patch.object(curation.io.readers, "_fast_jsonl_batch", lambda *a: None).start()
        started = time.perf_counter()
        run(recipe, out, options)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "startup": startup, "peak_rss": peak_rss()}


def peak_rss() -> int:
    """Peak resident memory of this process in bytes (VmHWM; ru_maxrss survives exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--format", choices=("parquet", "jsonl"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:  # child process
        inputs = DATA / args.format
        print(json.dumps(run_variant(args.variant, args.format, inputs)))
        return

    _, _, text_bytes = build_inputs(args.docs, args.shards)
    print(
        f"machine: {platform.machine()}, {platform.python_version()}, "
        f"{__import__('os').cpu_count()} CPUs; {args.docs:,} docs in {args.shards} shards, "
        f"{text_bytes / 1e6:.1f} MB of text\n"
    )
    print(
        "| input | variant | seconds | docs/s | MB/s | vs pyarrow | Ray start-up s | "
        "peak RSS (driver) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for fmt in ("parquet", "jsonl"):
        limit = None
        for variant in VARIANTS:
            if variant == "local-lines" and fmt != "jsonl":
                continue
            child = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--format", fmt],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            seconds = result["seconds"]
            limit = limit or seconds
            print(
                f"| {fmt} | {variant} | {seconds:.2f} | {args.docs / seconds:,.0f} | "
                f"{text_bytes / 1e6 / seconds:,.1f} | {seconds / limit:.2f}x | "
                f"{result['startup']:.1f} | {result['peak_rss'] / 2**20:,.0f} MiB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
