"""Sentence dedup: our ``sentence_dedup`` stage against datatrove's three SentenceDedup steps.

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents;
copy r > 0 of a document loses every (r + 6)-th word of each line (so copies share short
sentences, not long ones), and a ``--planted`` share of the documents get a run of 3 to 6
sentences of another document pasted in. Written once as 8 zstd Parquet shards, ids
zero-padded in reading order, so the first copy is the smallest id for both tools.

Jobs, each in a child process pinned to one core:
- ``curation``: ``curate run`` with ``sentence_dedup`` (its defaults: spans of 3
  sentences, a changed text dropped below 50 words or 3 sentences) on the local executor:
  read, split and hash, barrier, apply, write kept and dropped.
- ``datatrove``: ``SentenceDedupSignature`` -> ``SentenceFindDedups`` ->
  ``SentenceDedupFilter`` (its defaults, the same rules; spaCy's English sentencizer), a
  Parquet writer for the kept and one for the removed documents; local executor, one task
  each.

With ``--split lines``, both cut spans of lines instead (ours ``split: lines``,
datatrove's ``split_sentences=False``), and the planted runs are 3 to 6 lines of another
document pasted in at a line break.

Reports seconds, documents per second, peak memory, the documents kept and changed, and
whether both kept the same documents with the same texts.

    .venv/bin/python benchmarks/sentence_dedup.py --docs 20000
    .venv/bin/python benchmarks/sentence_dedup.py --docs 20000 --split lines
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import random
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
    thinned,
    write_parquet_shards,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "sentences"
RUNS = HERE / "_runs" / "sentences"
SHARDS = 8


def corpus(count: int, planted: float, split: str = "sentences", seed: int = 0) -> Path:
    """The Parquet shards of ``count`` documents."""
    real = [text for text, _ in real_documents()]
    cut = ". " if split == "sentences" else "\n"
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        text = thinned(real[i % len(real)], i // len(real))
        if rng.random() < planted:
            pieces = rng.choice(real).split(cut)
            at = rng.randrange(len(pieces))
            pasted = cut.join(pieces[at : at + rng.randint(3, 6)])
            where = text.find(cut, len(text) // 2)
            if where >= 0:
                where += len(cut)
                text = f"{text[:where]}{pasted}{cut}{text[where:]}"
        texts.append(text)
    table = pa.table({"id": [f"d{i:09d}" for i in range(count)], "text": texts})
    return write_parquet_shards(table, DATA / split, SHARDS)


def _digest(table: pa.Table) -> dict:
    pairs = sorted(zip(table["id"].to_pylist(), table["text"].to_pylist(), strict=True))
    digest = hashlib.sha256()
    for key, text in pairs:
        digest.update(f"{key}\0{text}\0".encode())
    return {"kept": len(pairs), "kept_sha256": digest.hexdigest()}


def job_curation(folder: Path, out: Path, split: str) -> dict:
    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    stage = f"stages:\n  - sentence_dedup: {{split: {split}}}\n"
    recipe = parse_recipe(stage, "bench.yaml").with_input(paths=[str(folder)], format="parquet")
    started = time.perf_counter()
    run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    seconds = time.perf_counter() - started
    kept = pq.read_table(out / "kept", columns=["id", "text", "sentence_dedup_removed"])
    changed = sum(1 for n in kept["sentence_dedup_removed"].to_pylist() if n)
    return {"seconds": seconds, "changed": changed, **_digest(kept)}


def job_datatrove(folder: Path, out: Path, split: str) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.sentence_dedup import (
        SentDedupConfig,
        SentenceDedupFilter,
        SentenceDedupSignature,
        SentenceFindDedups,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(out, ignore_errors=True)
    config = SentDedupConfig(split_sentences=split == "sentences")
    logs = str(out / "logs")

    def reader() -> ParquetReader:
        return ParquetReader(str(folder), glob_pattern="*.parquet", id_key="id")

    stages = [
        LocalPipelineExecutor(
            [reader(), SentenceDedupSignature(str(out / "sigs"), config=config)],
            tasks=1,
            logging_dir=f"{logs}/1",
        ),
        LocalPipelineExecutor(
            [SentenceFindDedups(str(out / "sigs"), str(out / "dups"), config=config)],
            tasks=1,
            logging_dir=f"{logs}/2",
        ),
        LocalPipelineExecutor(
            [
                reader(),
                SentenceDedupFilter(
                    str(out / "dups"),
                    config=config,
                    exclusion_writer=ParquetWriter(str(out / "removed")),
                ),
                ParquetWriter(str(out / "kept")),
            ],
            tasks=1,
            logging_dir=f"{logs}/3",
        ),
    ]
    started = time.perf_counter()
    for stage in stages:
        stage.run()
    seconds = time.perf_counter() - started
    kept = pq.read_table(out / "kept", columns=["id", "text"])
    originals = pq.read_table(folder, columns=["id", "text"])
    before = dict(zip(originals["id"].to_pylist(), originals["text"].to_pylist(), strict=True))
    changed = sum(
        1
        for key, text in zip(kept["id"].to_pylist(), kept["text"].to_pylist(), strict=True)
        if before[key] != text
    )
    return {"seconds": seconds, "changed": changed, **_digest(kept)}


JOBS = {"curation": job_curation, "datatrove": job_datatrove}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--planted", type=float, default=0.2)
    parser.add_argument("--split", choices=["sentences", "lines"], default="sentences")
    parser.add_argument("--job", choices=sorted(JOBS))
    parser.add_argument("--folder")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        report_from_child(JOBS[args.job](Path(args.folder), Path(args.out), args.split))
        return

    folder = corpus(args.docs, args.planted, args.split)
    size = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2**20
    print(f"# machine: {platform.machine()}; one core per job")
    print(f"# {args.docs:,} documents ({size:.0f} MiB of zstd Parquet); spans of {args.split}\n")
    results = {}
    for name in ("datatrove", "curation"):
        command = [__file__, "--job", name, "--folder", str(folder), "--out", str(RUNS / name)]
        results[name] = run_on_one_core(name, [*command, "--split", args.split])
    base = results["datatrove"]["seconds"]
    print("| tool | seconds | docs/s | peak MiB | kept | changed | vs datatrove |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        seconds = result["seconds"]
        print(
            f"| {name} | {seconds:.1f} | {args.docs / seconds:,.0f} | {result['peak_mib']:.0f} | "
            f"{result['kept']:,} | {result['changed']:,} | {base / seconds:.1f}x |"
        )
    same = results["datatrove"]["kept_sha256"] == results["curation"]["kept_sha256"]
    print(f"\nsame documents kept, with the same texts: {same}")


if __name__ == "__main__":
    main()
