"""A run over many small input files: a task and an output file per file, or units.

Each shard's rows are written as parts of their own (a shard is the unit of work and of
resume). Before, every input file was a shard, and every part an output file: a folder of
one-document text files cost a task, a marker and a one-row Parquet file per document.
Now consecutive small files are read together as units (``input.unit_bytes``), and the
run's finish merges, in order, the parts smaller than ``output.min_file_bytes``.

Data: the real C4 and Pile samples (``--docs`` documents, repeated past 2,000) written
as one ``.txt`` file each. Recipe: ``length_filter: {min_chars: 200}``, local executor.

Variants, each a ``curate run`` in a child process (the first run of each is left out,
so that all find the files in the page cache):
- ``a shard and a file per input file``: ``unit_bytes: 0``, ``min_file_bytes: 0`` (the
  engine before both);
- ``output merged``: ``unit_bytes: 0`` only;
- ``units, output merged``: the defaults (64 MiB units, 32 MiB files).

For each: the run's wall time and peak memory (``/usr/bin/time``), the kept files, their
size on disk, and the best of three ``pyarrow.parquet.read_table`` of ``kept/`` (what
every later step pays).

    .venv/bin/python benchmarks/small_files.py --docs 2000
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import documents

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "small_files"
RUNS = HERE / "_runs" / "small_files"
CURATE = str(Path(sys.executable).with_name("curate"))


def build(count: int) -> Path:
    folder = DATA / f"{count}"
    if not folder.exists():
        folder.mkdir(parents=True)
        for i, text in enumerate(documents(count)):
            (folder / f"doc{i:06d}.txt").write_text(text, encoding="utf-8")
    return folder


def one_run(inputs: Path, unit_bytes: int, min_file_bytes: int) -> dict:
    recipe = RUNS / f"u{unit_bytes}-m{min_file_bytes}.yaml"
    recipe.write_text(
        f"input: {{unit_bytes: {unit_bytes}}}\n"
        "stages:\n  - length_filter: {min_chars: 200}\n"
        f"output: {{min_file_bytes: {min_file_bytes}}}\n"
    )
    out = RUNS / f"out-u{unit_bytes}-m{min_file_bytes}"
    command = ["/usr/bin/time", "-f", "%e %M", CURATE, "run", str(recipe), "--input", str(inputs)]
    command += ["--output", str(out), "--executor", "local", "--quiet", "--overwrite"]
    for _ in range(2):  # the first warms the page cache and the compiled kernels
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds, kib = done.stderr.strip().splitlines()[-1].split()
    files = sorted((out / "kept").iterdir())
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        rows = pq.read_table(out / "kept").num_rows
        best = min(best, time.perf_counter() - started)
    return {
        "seconds": float(seconds),
        "peak_mib": int(kib) / 1024,
        "files": len(files),
        "mb": sum(f.stat().st_size for f in files) / 1e6,
        "read_s": best,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2_000)
    args = parser.parse_args()
    shutil.rmtree(RUNS, ignore_errors=True)
    RUNS.mkdir(parents=True)
    inputs = build(args.docs)
    print(f"{platform.machine()}, {args.docs:,} text files, local executor\n")
    print("| variant | run s | peak MiB | kept files | kept MB | read kept/ s | rows |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    variants = (
        ("a shard and a file per input file", 0, 0),
        ("output merged", 0, 32 * 2**20),
        ("units, output merged (default)", 64 * 2**20, 32 * 2**20),
    )
    for label, unit_bytes, min_file_bytes in variants:
        r = one_run(inputs, unit_bytes, min_file_bytes)
        print(
            f"| {label} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | {r['files']:,} | "
            f"{r['mb']:.1f} | {r['read_s']:.3f} | {r['rows']:,} |"
        )


if __name__ == "__main__":
    main()
