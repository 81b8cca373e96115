"""A run over many small input files: a task and an output file per file, or units.

Each shard's rows are written as parts of their own (a shard is the unit of work and of
resume). Before, every input file was a shard, and every part an output file: a folder of
one-document text files cost a task, a marker and a one-row Parquet file per document.
Now consecutive small files are read together as units (``input.unit_bytes``), and the
run's finish merges, in order, the parts smaller than ``output.min_file_bytes``.

Data: the real C4 and Pile samples of ../shared/data (``--docs`` documents, repeated
past 2,000), one document a file, as ``.txt`` files and as ``.jsonl`` files (for
datatrove, which has no reader of plain text files). The job: keep documents of at least
200 characters, writing the kept and the dropped ones as Parquet, on one core.

Variants, each a child process pinned to one core (the second of two runs each, so that
all find the files in the page cache):
- ``a shard and a file per input file``: ``unit_bytes: 0``, ``min_file_bytes: 0`` (the
  engine before both);
- ``output merged``: ``unit_bytes: 0`` only;
- ``units, output merged``: the defaults (64 MiB units, 32 MiB files);
- ``datatrove``: ``JsonlReader`` -> ``LambdaFilter`` (its ``exclusion_writer`` a
  ``ParquetWriter`` for the dropped) -> ``ParquetWriter``, ``LocalPipelineExecutor``
  with one task, over the ``.jsonl`` files (curation's variants read the ``.txt`` files,
  and its default the ``.jsonl`` files too, the last row).

For each: the run's wall time and peak memory (``/usr/bin/time``), the kept files, their
size on disk, and the best of three ``pyarrow.parquet.read_table`` of ``kept/`` (what
every later step pays).

    .venv/bin/python benchmarks/small_files.py --docs 2000
"""

from __future__ import annotations

import argparse
import json
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


def build(count: int, suffix: str) -> Path:
    """``count`` one-document files, ``.txt`` (the text) or ``.jsonl`` (id and text)."""
    folder = DATA / f"{count}{suffix.replace('.', '-')}"
    if not folder.exists():
        folder.mkdir(parents=True)
        for i, text in enumerate(documents(count)):
            body = text if suffix == ".txt" else json.dumps({"id": f"d{i}", "text": text}) + "\n"
            (folder / f"doc{i:06d}{suffix}").write_text(body, encoding="utf-8")
    return folder


DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import LambdaFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import ParquetWriter
source, out = sys.argv[1], sys.argv[2]
LocalPipelineExecutor(
    pipeline=[
        JsonlReader(source),
        LambdaFilter(
            lambda doc: len(doc.text) >= 200,
            exclusion_writer=ParquetWriter(out + "/dropped", compression="zstd"),
        ),
        ParquetWriter(out + "/kept", compression="zstd"),
    ],
    tasks=1,
    workers=1,
    logging_dir=out + "/logs",
).run()
"""


def timed(command: list[str], out: Path) -> tuple[float, float]:
    """Wall seconds and peak MiB of ``command`` on core 0, the second of two runs (the
    first warms the page cache and compiled kernels), each into an empty ``out``
    (datatrove would skip the tasks its logs mark done)."""
    command = ["taskset", "-c", "0", "/usr/bin/time", "-f", "%e %M", *command]
    for _ in range(2):
        shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds, kib = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024


def read_back(folder: Path) -> tuple[int, float, int, float]:
    """Files, MB and rows of ``folder``'s Parquet files, and the best of three reads."""
    files = sorted(folder.rglob("*.parquet"))
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        rows = pq.read_table(files).num_rows if files else 0
        best = min(best, time.perf_counter() - started)
    return len(files), sum(f.stat().st_size for f in files) / 1e6, rows, best


def one_run(inputs: Path, unit_bytes: int, min_file_bytes: int) -> dict:
    recipe = RUNS / f"u{unit_bytes}-m{min_file_bytes}.yaml"
    recipe.write_text(
        f"input: {{unit_bytes: {unit_bytes}}}\n"
        "stages:\n  - length_filter: {min_chars: 200}\n"
        f"output: {{min_file_bytes: {min_file_bytes}}}\n"
    )
    out = RUNS / f"out-u{unit_bytes}-m{min_file_bytes}"
    command = [CURATE, "run", str(recipe), "--input", str(inputs), "--output", str(out)]
    seconds, peak = timed([*command, "--executor", "local", "--quiet"], out)
    return {"seconds": seconds, "peak_mib": peak, "kept": out / "kept"}


def datatrove_run(inputs: Path) -> dict:
    out = RUNS / "datatrove"
    seconds, peak = timed([sys.executable, "-c", DATATROVE, str(inputs), str(out)], out)
    return {"seconds": seconds, "peak_mib": peak, "kept": out / "kept"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2_000)
    args = parser.parse_args()
    shutil.rmtree(RUNS, ignore_errors=True)
    RUNS.mkdir(parents=True)
    texts, lines = build(args.docs, ".txt"), build(args.docs, ".jsonl")
    print(f"{platform.machine()}, {args.docs:,} one-document files, one core\n")
    print(
        "| variant | run s | vs datatrove | peak MiB | kept files | kept MB | read kept s | kept |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    results = {"datatrove (.jsonl)": datatrove_run(lines)}
    variants = (
        ("curation, a shard and a file per input file", 0, 0),
        ("curation, output merged", 0, 32 * 2**20),
        ("curation, units, output merged (default)", 64 * 2**20, 32 * 2**20),
    )
    for label, unit_bytes, min_file_bytes in variants:
        results[label] = one_run(texts, unit_bytes, min_file_bytes)
    results["curation, default, over the .jsonl files"] = one_run(lines, 64 * 2**20, 32 * 2**20)
    base = results["datatrove (.jsonl)"]["seconds"]
    for label, r in results.items():
        files, mb, rows, read_s = read_back(r["kept"])
        print(
            f"| {label} | {r['seconds']:.2f} | {r['seconds'] / base:.2f}x | "
            f"{r['peak_mib']:.0f} | {files:,} | {mb:.1f} | {read_s:.3f} | {rows:,} |"
        )


if __name__ == "__main__":
    main()
