"""An input file that grows between a run and the same command run again.

A run folder is resumed by running the same command: finished work is skipped. This
measures what each tool then does when one of its input files has gained documents
since (a crawl's last file still being written, a shard fetched again): curation reads
the changed file again, since a shard's key holds its files' sizes and modification
times; datatrove's executor skips every task it has a completion marker for.

Data: the real C4 and Pile samples of ../shared/data (2,000 documents) as 4 JSONL files;
``--append`` documents (the samples' first ones again, with new ids) are added to the
last file after the first run. The job: read, keep documents of at least 200 characters,
write Parquet (curation) or JSONL (datatrove: ``JsonlReader`` -> ``LambdaFilter`` ->
``JsonlWriter``, ``LocalPipelineExecutor`` with 4 tasks, one a file). Each tool runs three
times into one folder: first, again unchanged, and again after the append; the table
gives the documents read and written by each and by a fresh run over the grown files,
and the wall time of each run (one core, ``taskset -c 1``).

    .venv/bin/python benchmarks/changed_input.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import real_documents

HERE = Path(__file__).resolve().parent
RUNS = HERE / "_runs" / "changed_input"
CURATE = str(Path(sys.executable).with_name("curate"))
RECIPE = "stages:\n  - length_filter: {min_chars: 200}\n"

DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import LambdaFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

inputs, out = sys.argv[1], sys.argv[2]
LocalPipelineExecutor(
    pipeline=[
        JsonlReader(inputs),
        LambdaFilter(lambda doc: len(doc.text) >= 200),
        JsonlWriter(out + "/kept"),
    ],
    tasks=4,
    workers=1,
    logging_dir=out + "/logs",
).run()
"""


def write_inputs(folder: Path) -> list[str]:
    """The 2,000 documents as 4 JSONL files; returns the texts."""
    texts = [text for text, _ in real_documents()]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for part in range(4):
        with open(folder / f"part-{part}.jsonl", "w", encoding="utf-8") as out:
            for i in range(part * 500, (part + 1) * 500):
                out.write(json.dumps({"id": f"d{i}", "text": texts[i]}) + "\n")
    return texts


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["taskset", "-c", "1", *command], check=True, capture_output=True)
    return time.perf_counter() - start


def curation(inputs: Path, out: Path) -> tuple[float, int, int]:
    """Run curation into ``out``; (seconds, documents read, documents kept)."""
    recipe = RUNS / "recipe.yaml"
    recipe.write_text(RECIPE)
    command = [CURATE, "run", str(recipe), "--input", str(inputs), "--output", str(out)]
    seconds = timed([*command, "--executor", "local", "--quiet"])
    stats = json.loads((out / "stats.json").read_text())
    kept = sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "kept").glob("*.parquet"))
    return seconds, stats["rows"]["read"], kept


def datatrove(inputs: Path, out: Path) -> tuple[float, int | None, int]:
    """Run datatrove into ``out``; (seconds, documents read, documents kept). It reports
    no count of a run that skipped every task, so documents read is then None."""
    script = RUNS / "datatrove_job.py"
    script.write_text(DATATROVE)
    stats = out / "logs" / "stats.json"
    stats.unlink(missing_ok=True)
    seconds = timed([sys.executable, str(script), str(inputs), str(out)])
    read = None
    if stats.exists():
        merged = json.loads(stats.read_text())
        read = next(s["stats"]["documents"] for s in merged if "READER" in s["name"])
        read = read["total"] if isinstance(read, dict) else read
    kept = 0
    for path in (out / "kept").glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            kept += sum(1 for _ in handle)
    return seconds, read, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--append", type=int, default=100, help="documents appended")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    inputs = RUNS / "in"
    texts = write_inputs(inputs)
    tools = {"curation": curation, "datatrove": datatrove}
    rows = []
    for name, tool in tools.items():
        out = RUNS / name
        shutil.rmtree(out, ignore_errors=True)
        write_inputs(inputs)
        first = tool(inputs, out)
        again = tool(inputs, out)
        with open(inputs / "part-3.jsonl", "a", encoding="utf-8") as handle:
            for i in range(args.append):
                handle.write(json.dumps({"id": f"appended-{i}", "text": texts[i]}) + "\n")
        grown = tool(inputs, out)
        fresh_out = RUNS / f"{name}-fresh"
        shutil.rmtree(fresh_out, ignore_errors=True)
        fresh = tool(inputs, fresh_out)
        rows.append({"tool": name, "first": first, "again": again, "grown": grown, "fresh": fresh})
    print(f"machine: {platform.machine()}, {platform.processor() or platform.platform()}")
    print(f"{2000 + args.append:,} documents after {args.append} appended to one of 4 files")
    header = "| tool | run | seconds | read | kept | kept by a fresh run |"
    print(header + "\n|---|---|---:|---:|---:|---:|")
    for row in rows:
        for run in ("first", "again", "grown"):
            seconds, read, kept = row[run]
            shown = "-" if read is None else f"{read:,}"
            print(
                f"| {row['tool']} | {run} | {seconds:.2f} | {shown} | {kept:,} | "
                f"{row['fresh'][2]:,} |"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
