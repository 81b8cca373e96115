"""What several benchmarks share: the real samples beside the repository."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def real_documents() -> list[tuple[str, str | None]]:
    """(text, url) of the C4 and Pile samples (2,000 real documents, C4's first); the
    Pile documents have no URL."""
    with gzip.open(SHARED / "web" / "c4-sample-1000.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    base: list[tuple[str, str | None]] = [(row["text"], row["url"]) for row in rows]
    with open(SHARED / "web" / "pile-sample-1000.jsonl", encoding="utf-8") as f:
        base += [(json.loads(line)["contents"], None) for line in f]
    return base


def documents(count: int) -> list[str]:
    """``count`` texts: the C4 and Pile samples (2,000 real documents), repeated in order."""
    base = [text for text, _ in real_documents()]
    return [base[i % len(base)] for i in range(count)]


def race_arguments(description: str) -> argparse.Namespace:
    """The options of a one-core race of a text stage against a per-document baseline
    (``--docs``, ``--batch-rows``, ``--repeats``), parsed; Arrow set to one thread."""
    import pyarrow as pa

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    return args


def race_texts(args: argparse.Namespace) -> tuple[list[str], float, list[pyarrow.Table]]:
    """The race's texts (``documents(args.docs)``), their size in MB and their batches
    of ``args.batch_rows``."""
    texts = documents(args.docs)
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    return texts, megabytes, text_batches(texts, args.batch_rows)


def kept_flags(stage: Any, batches: list[pyarrow.Table]) -> list[bool]:
    """Whether ``stage`` keeps each row of ``batches``, in order."""
    return [
        reason is None
        for batch in batches
        for reason in stage.process(batch)["drop_reason"].to_pylist()
    ]


def kept_texts(tables: list[pyarrow.Table]) -> list[str | None]:
    """Each row's text, or None where the stage dropped it, over ``tables`` in order."""
    return [
        row["text"] if row["drop_reason"] is None else None
        for table in tables
        for row in table.select(["text", "drop_reason"]).to_pylist()
    ]


def text_batches(texts: list[str], rows: int) -> list[pyarrow.Table]:
    """``texts`` as conformed batches of ``rows`` documents (ids ``0``, ``1``, ... in each)."""
    import pyarrow as pa

    from curation.batch import conform

    return [
        conform(pa.table({"id": [str(i) for i in range(len(chunk))], "text": chunk}))
        for chunk in (texts[i : i + rows] for i in range(0, len(texts), rows))
    ]


def rate_table(kind: str, seconds: dict[str, float], base: str, docs: int, mb: float) -> None:
    """Print a Markdown table of ``seconds`` by implementation (``kind`` heads its column):
    seconds, documents and MB a second, and how many times faster than ``base``."""
    print(f"| {kind} | seconds | docs/s | MB/s | vs {base} |")
    print("|---|---:|---:|---:|---:|")
    for name, value in seconds.items():
        rate = f"{docs / value:,.0f} | {mb / value:.1f}"
        print(f"| {name} | {value:.4f} | {rate} | {seconds[base] / value:.2f}x |")


def thinned(text: str, copy: int) -> str:
    """``text`` with every ``(copy + 6)``-th word of each line removed (copy 0: as is), so
    repeated copies of a document differ in their long lines."""
    if copy == 0:
        return text
    step = copy + 6
    return "\n".join(
        " ".join(w for i, w in enumerate(line.split(" ")) if (i + 1) % step)
        for line in text.split("\n")
    )


def write_parquet_shards(table: pyarrow.Table, folder: Path, shards: int) -> Path:
    """``table`` as ``shards`` zstd Parquet files of about equal rows in a fresh ``folder``
    (``shard-00.parquet`` ...)."""
    import pyarrow.parquet as pq

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    per = -(-table.num_rows // shards)
    for shard in range(shards):
        part = table.slice(shard * per, per)
        pq.write_table(part, folder / f"shard-{shard:02d}.parquet", compression="zstd")
    return folder


def best_of(repeats: int, *runs: object) -> list[float]:
    """Best time of each run over ``repeats`` rounds; every round runs each once, in turn,
    so a burst of noise on the machine hits all of them alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            run()  # type: ignore[operator]
            best[index] = min(best[index], time.perf_counter() - started)
    return best


def speed_table(
    runs: dict[str, Any], repeats: int, base: str, rate: str, amount: float
) -> dict[str, float]:
    """Time each of ``runs`` (name: callable) with ``best_of`` and print a Markdown table
    of seconds, ``amount`` / seconds as ``rate``, and each time as a multiple of
    ``base``'s; returns the seconds by name."""
    seconds = dict(zip(runs, best_of(repeats, *runs.values()), strict=True))
    print(f"| reader | seconds | {rate} | vs {base} |")
    print("|---|---:|---:|---:|")
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {amount / value:,.0f} | {value / seconds[base]:.2f}x |")
    return seconds


def timed_local_run(
    stages: str, data: Path, out: Path, columns: list[str]
) -> tuple[float, pyarrow.Table]:
    """``curate run`` of a recipe of ``stages`` (YAML, the lines after ``stages:``) over
    the JSONL files in ``data`` into ``out`` on the local executor; its seconds (from the
    recipe's start) and ``columns`` of every kept and dropped row."""
    import pyarrow.parquet as pq

    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    recipe = parse_recipe(f"stages:\n{stages}", "bench.yaml").with_input(
        paths=[str(data)], format="jsonl"
    )
    started = time.perf_counter()
    stats = run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    seconds = time.perf_counter() - started
    assert stats["rows"]["read"] > 0
    files = [*(out / "kept").glob("*.parquet"), *(out / "dropped").glob("*.parquet")]
    return seconds, pq.read_table(files, columns=columns)


def run_on_one_core(name: str, command: list[str]) -> dict:
    """Run a benchmark job (``command``: a script and its arguments) in a child process
    pinned to core 0, with polars, OpenMP and Arrow on one thread; the JSON object it
    printed last. Raises with the child's error output when it fails."""
    env = {**os.environ, "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "RAY_DISABLE": "1"}
    done = subprocess.run(
        ["taskset", "-c", "0", sys.executable, *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report_from_child(result: dict) -> None:
    """Print a job's result as the JSON line ``run_on_one_core`` reads, with the peak
    resident memory of this process and its children in MiB.

    This process's peak is ``VmHWM``, which starts afresh at ``exec``; ``ru_maxrss``
    does not: it would report the parent's size when it started the child.
    """
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["peak_mib"] = round(max(own_peak_mib(), kids), 1)
    print(json.dumps(result))


def own_peak_mib() -> float:
    """This process's peak resident memory so far, in MiB (``VmHWM``)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def one_thread_arrow() -> None:
    """Keep pyarrow's compute and I/O pools to one thread (one core per job)."""
    import pyarrow

    pyarrow.set_cpu_count(1)
    pyarrow.set_io_thread_count(1)


def pipeline_table(results: dict[str, dict], docs: int, base: str = "datatrove") -> None:
    """Print the Markdown table of a race of whole pipelines: per tool (``results``, each
    with ``seconds``, ``peak_mib`` and its ``kept`` documents) its seconds, documents per
    second, peak memory, speed against ``base`` and documents kept."""
    print("| tool | seconds | docs/s | peak MiB | vs datatrove | kept |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['seconds']:.1f} | {docs / r['seconds']:,.0f} | "
            f"{r['peak_mib']:.0f} | {results[base]['seconds'] / r['seconds']:.1f}x | "
            f"{len(r['kept']):,} |"
        )
