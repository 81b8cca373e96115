"""A mixture of a dataset's parts in given shares: the ``mix`` stage against what its
users would write instead, Hugging Face ``datasets``' ``interleave_datasets`` and a
polars script.

Data: the real C4 and Pile samples repeated to ``--docs`` documents in 8 zstd Parquet
shards, each with its ``source``: ``c4``, or the Pile document's subset (``Pile-CC``,
``Github``, ``Wikipedia (en)`` ...). The mixture asks for 40% C4, 30% Pile-CC, 15%
GitHub and 15% Wikipedia, by documents:

- ``down-sample``: ``--total`` documents (25,000 by default; every part has more);
- ``with repeats``: four times as many, so that the scarce parts repeat their rows
  (``max_copies: 4`` for the engine).

Jobs, each a child process pinned to one core, reading the shards and writing the
mixture as Parquet:
- ``curation``: ``curate run`` on the local executor with the ``mix`` stage (``by:
  count``); its kept rows carry ``mix_copies`` and are written once, every other row to
  ``dropped/`` with its reason (``dropped_text: false``: without its text);
  ``curation (by chars)`` asks the same shares of characters (no other job can);
- ``datasets``: ``load_dataset('parquet')``, a ``filter`` per part, then
  ``interleave_datasets`` with the shares as probabilities (``first_exhausted``; with
  repeats ``all_exhausted``), the first ``total`` rows, ``to_parquet``;
- ``polars``: the shards read whole, each part's rows sampled (``sample(n, seed)``;
  whole copies and a sample of the rest where it has too few), ``write_parquet``.

Reports seconds, peak memory, rows written and the largest gap between a part's share
asked and got (documents; for ``by chars`` characters), curation against each.

    .venv/bin/python benchmarks/mix.py --docs 200000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (
    SHARED,
    one_thread_arrow,
    real_documents,
    report_from_child,
    run_on_one_core,
    write_parquet_shards,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "mix"
RUNS = HERE / "_runs" / "mix"
WEIGHTS = {"c4": 0.4, "Pile-CC": 0.3, "Github": 0.15, "Wikipedia (en)": 0.15}
JOBS = ("datasets", "polars", "curation", "curation (dropped_text: false)", "curation (by chars)")


def corpus(count: int) -> Path:
    """The Parquet shards: id, text and source."""
    texts = [text for text, _ in real_documents()]
    with open(SHARED / "web" / "pile-sample-1000.jsonl", encoding="utf-8") as f:
        subsets = [json.loads(line)["metadata"]["pile_set_name"] for line in f]
    sources = ["c4"] * (len(texts) - len(subsets)) + subsets
    rows = range(count)
    table = pa.table(
        {
            "id": [f"d{i:09d}" for i in rows],
            "text": [texts[i % len(texts)] for i in rows],
            "source": [sources[i % len(texts)] for i in rows],
        }
    )
    return write_parquet_shards(table, DATA, 8)


def job_curation(
    folder: Path, out: Path, total: int, copies: int, by: str, texts: bool = True
) -> dict:
    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    params = {"column": "source", "weights": WEIGHTS, "by": by, "max_copies": copies}
    if by == "count":
        params["total"] = total
    text = f"stages:\n  - mix: {json.dumps(params)}\n"
    if not texts:
        text += "output: {dropped_text: false}\n"
    recipe = parse_recipe(text, "bench.yaml").with_input(paths=[str(folder)], format="parquet")
    started = time.perf_counter()
    stats = run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    seconds = time.perf_counter() - started
    kept = pq.read_table(out / "kept", columns=["source", "text", "mix_copies"])
    return {"seconds": seconds, "rows": stats["rows"]["kept"], **shares(kept, by)}


def job_datasets(folder: Path, out: Path, total: int, copies: int, by: str) -> dict:
    import datasets

    datasets.disable_progress_bars()
    started = time.perf_counter()
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    whole = datasets.load_dataset(
        "parquet", data_files=files, split="train", cache_dir=str(out / "cache")
    )
    parts = [whole.filter(lambda row, s=source: row["source"] == s) for source in WEIGHTS]
    mixed = datasets.interleave_datasets(
        parts,
        probabilities=list(WEIGHTS.values()),
        seed=0,
        stopping_strategy="all_exhausted" if copies > 1 else "first_exhausted",
    )
    mixed = mixed.select(range(min(total, len(mixed))))
    mixed.to_parquet(str(out / "mix.parquet"))
    seconds = time.perf_counter() - started
    table = pq.read_table(out / "mix.parquet", columns=["source", "text"])
    return {"seconds": seconds, "rows": table.num_rows, **shares(table, by)}


def job_polars(folder: Path, out: Path, total: int, copies: int, by: str) -> dict:
    import polars as pl

    started = time.perf_counter()
    frame = pl.read_parquet(folder / "*.parquet")
    drawn = []
    for source, weight in WEIGHTS.items():
        part = frame.filter(pl.col("source") == source)
        want = round(total * weight)
        whole, rest = divmod(want, part.height)
        drawn += [part] * min(whole, copies) + [part.sample(rest, seed=0)]
    mixed = pl.concat(drawn).sample(fraction=1.0, shuffle=True, seed=0)
    out.mkdir(parents=True, exist_ok=True)
    mixed.write_parquet(out / "mix.parquet")
    seconds = time.perf_counter() - started
    table = pq.read_table(out / "mix.parquet", columns=["source", "text"])
    return {"seconds": seconds, "rows": table.num_rows, **shares(table, by)}


def shares(table: pa.Table, by: str) -> dict:
    """Each part's share of the mixture (in documents, or characters with ``by: chars``;
    ``mix_copies`` counts each row that many times) and the largest gap from its weight,
    in percentage points; and the documents the mixture holds, repeats included."""
    sizes: dict[str, float] = {}
    times = table["mix_copies"].to_pylist() if "mix_copies" in table.column_names else None
    size = (lambda text: len(text)) if by == "chars" else (lambda text: 1)
    documents = 0
    for i, (source, text) in enumerate(
        zip(table["source"].to_pylist(), table["text"].to_pylist(), strict=True)
    ):
        n = times[i] if times else 1
        sizes[source] = sizes.get(source, 0) + size(text) * n
        documents += n
    whole = sum(sizes.values())
    gap = max(abs(sizes.get(s, 0) / whole - w) for s, w in WEIGHTS.items())
    return {"documents": documents, "gap_pp": round(100 * gap, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--total", type=int, default=25_000)
    parser.add_argument("--job", choices=JOBS)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--folder")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        job = {"datasets": job_datasets, "polars": job_polars}.get(args.job, job_curation)
        by = "chars" if args.job == "curation (by chars)" else "count"
        extra = {"texts": False} if "dropped_text" in args.job else {}
        result = job(Path(args.folder), Path(args.out), args.total, args.copies, by, **extra)
        report_from_child(result)
        return

    folder = corpus(args.docs)
    counts = pq.read_table(folder, columns=["source"])["source"].value_counts().to_pylist()
    held = {c["values"]: c["counts"] for c in counts}
    print(f"# machine: {platform.machine()}, Python {platform.python_version()}; one core per job")
    print(
        f"# {args.docs:,} documents in 8 zstd Parquet shards; parts held: "
        + ", ".join(f"{s} {held[s]:,}" for s in WEIGHTS)
        + "\n"
    )
    print("| mixture | tool | seconds | peak MiB | rows written | documents | gap pp | vs it |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, total, copies in (
        ("down-sample", args.total, 1),
        ("with repeats", 4 * args.total, 4),
    ):
        results = {}
        for name in JOBS:
            command = [__file__, "--job", name, "--folder", str(folder), "--total", str(total)]
            out = RUNS / "".join(c if c.isalnum() else "_" for c in name)
            command += ["--copies", str(copies), "--out", str(out)]
            results[name] = run_on_one_core(name, command)
        ours = results["curation"]["seconds"]
        for name, r in results.items():
            versus = "" if name.startswith("curation") else f"{r['seconds'] / ours:.2f}x"
            print(
                f"| {label} ({total:,}) | {name} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | "
                f"{r['rows']:,} | {r['documents']:,} | {r['gap_pp']:.3f} | {versus} |"
            )


if __name__ == "__main__":
    main()
