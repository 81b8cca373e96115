"""`curate inspect` on a one-million-row scored shard, side by side with pandas.

The shard: 1,000,000 rows of real text (the C4 and Pile samples, cut to 300 characters
and cycled), four score columns and a ``drop_reason`` (about a third of the rows
dropped, under four reasons), zstd Parquet in row groups of 100,000.

Questions, each answered in a fresh process (the time is the question's own, imports
excluded; peak memory is the process's maximum resident set):

- ``summary``: rows by drop reason, quantiles and a 20-bin histogram of every score column;
- ``where``: the first 10 rows of ``quality > 0.95 AND drop_reason IS NULL``;
- ``sort``: the 10 highest ``quality``;
- ``around``: 5 rows just below and 5 at or above ``quality = 0.5``.

The pandas side is what a user would write instead: ``read_parquet`` then ``describe``,
``value_counts``, a boolean mask, ``nlargest``. The CLI line is the whole
``curate inspect`` command as a user runs it, interpreter start and imports included.

Run:  .venv/bin/python benchmarks/inspect_speed.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import documents

DATA = Path(__file__).resolve().parent / "_data" / "inspect"
SCORES = ("quality", "perplexity", "lang_score", "length_chars")
REASONS = (
    None,
    None,
    None,
    None,
    None,
    None,
    "gopher_quality:min_doc_words",
    "kenlm_perplexity:too_high",
    "exact_dedup:duplicate",
    "language:not_en",
)
TASKS = ("summary", "where", "sort", "around")


def make_shard(rows: int) -> Path:
    path = DATA / f"scored-{rows}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    texts = [t[:300] for t in documents(2000)]
    rng = np.random.default_rng(0)
    text = pa.array([texts[i % len(texts)] for i in range(rows)], pa.large_string())
    table = pa.table(
        {
            "id": pa.array([f"shard-0/{i}" for i in range(rows)]),
            "text": text,
            "drop_reason": pa.array(
                [REASONS[i] for i in rng.integers(0, len(REASONS), rows)], pa.string()
            ),
            "quality": rng.beta(2, 5, rows),
            "perplexity": rng.lognormal(6, 0.6, rows),
            "lang_score": 1 - rng.beta(1, 20, rows),
            "length_chars": pa.compute.utf8_length(text).cast(pa.int64()),
        }
    )
    pq.write_table(table, path, compression="zstd", row_group_size=100_000)
    return path


def run_curation(path: Path, task: str) -> None:
    from curation.inspect import shards

    source = shards.open_source(path)
    if task == "summary":
        shards.funnel(source)
        shards.summarize(source.scan(), shards.score_columns(source.schema()))
    elif task == "where":
        shards.browse(source, where="quality > 0.95 AND drop_reason IS NULL", limit=10)
    elif task == "sort":
        shards.browse(source, sort="-quality", limit=10)
    else:
        shards.browse(source, around="quality=0.5", limit=10)


def run_pandas(path: Path, task: str) -> None:
    import pandas as pd

    df = pd.read_parquet(path)
    if task == "summary":
        df["drop_reason"].value_counts(dropna=False)
        df[list(SCORES)].describe(percentiles=[0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
        for column in SCORES:
            np.histogram(df[column].dropna(), bins=20)
    elif task == "where":
        df[(df["quality"] > 0.95) & df["drop_reason"].isna()].head(10)
    elif task == "sort":
        df.nlargest(10, "quality")
    else:
        below = df[df["quality"] < 0.5].nlargest(5, "quality")
        above = df[df["quality"] >= 0.5].nsmallest(5, "quality")
        pd.concat([below, above])


def worker(tool: str, path: Path, task: str) -> None:
    import pandas  # noqa: F401  (both sides import it first, so imports are not timed)

    import curation.inspect.shards  # noqa: F401

    started = time.perf_counter()
    (run_curation if tool == "curation" else run_pandas)(path, task)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib}))


def measure(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument(
        "--worker", nargs=3, metavar=("TOOL", "PATH", "TASK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), args.worker[2])
        return
    path = make_shard(args.rows)
    size = path.stat().st_size / 2**20
    print(f"{args.rows:,} rows, {size:,.0f} MiB Parquet ({path})")
    print("| question | curate inspect (s) | pandas (s) | speed-up | peak MiB curation / pandas |")
    print("|---|---:|---:|---:|---|")
    for task in TASKS:
        ours = [measure(["--worker", "curation", str(path), task]) for _ in range(args.repeat)]
        theirs = [measure(["--worker", "pandas", str(path), task]) for _ in range(args.repeat)]
        a, b = min(r["seconds"] for r in ours), min(r["seconds"] for r in theirs)
        ma, mb = min(r["peak_mib"] for r in ours), min(r["peak_mib"] for r in theirs)
        print(f"| {task} | {a:.2f} | {b:.2f} | {b / a:.1f}x | {ma:,.0f} / {mb:,.0f} |")
    curate = str(Path(sys.executable).parent / "curate")
    for extra in ([], ["--around", "quality=0.5"]):
        started = time.perf_counter()
        subprocess.run([curate, "inspect", str(path), *extra], capture_output=True, check=True)
        wall = time.perf_counter() - started
        print(
            f"`curate inspect {path.name} {' '.join(extra)}`: {wall:.2f} s wall, "
            "interpreter start and imports included"
        )


if __name__ == "__main__":
    main()
