"""Paragraph dedup by n-gram overlap: our ``bff_dedup`` against Dolma's ``by_ngram``
paragraph dedup (Rust, Bloom filter), the pip-installable descendant of DCLM's BFF.

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents.
Copy r > 0 of a document keeps two lines in three as they are and loses every 9th word
of the third (so those paragraphs are new), except every fifth copy, which is exact.
Written once as 8 gzip'd JSONL shards under ``benchmarks/_data/bff_dedup/documents``
(Dolma wants that folder name), ids zero-padded in file order so that the first
occurrence is also the smallest id.

Jobs, each in a child process pinned to core 0 (Dolma's processes inherit the pinning):
- ``curation``: ``curate run`` on the local executor with ``bff_dedup: {}`` (DCLM's
  13-grams at 0.8, paragraphs then documents, exact hashes in id order): read the
  shards, hash every n-gram, barrier, cut the paragraphs, write kept and dropped Parquet.
- ``curation (bloom 1%)``: the same with ``filter: bloom`` (BFF's Bloom filter, sized
  for every n-gram read at 1% false positives, as DCLM ran BFF).
- ``dolma``: Dolma 1.2.1's ``dolma dedupe`` with paragraph dedup ``by_ngram`` (13-grams
  of its Unicode words, overlap threshold 0.8, a Bloom filter sized for the corpus'
  words at DCLM's false-positive rate of 1%), then ``dolma mix``, which removes the
  marked paragraphs and writes the documents as gzip'd JSONL. One process each, in
  Dolma's own virtual environment (``benchmarks/line_dedup.py`` makes it on first use).

The two do not decide alike, by design: Dolma adds each n-gram as it reads it (so a
paragraph's own repeats count), compares paragraphs of one n-gram whole, marks a
paragraph at ``>=`` the threshold, and has no document rule; BFF and this stage check a
paragraph's n-grams before adding them, mark it above the threshold, and drop a document
whose n-grams were mostly held. The table gives each tool's paragraphs removed and
documents dropped (Dolma: documents left empty).

    .venv/bin/python benchmarks/bff_dedup.py --docs 100000

``--held N`` times the barrier's pass alone over N distinct n-grams (none repeated, as
in a corpus with little duplication), holding them exactly and in the Bloom filter at
1%, and the memory each adds.

    .venv/bin/python benchmarks/bff_dedup.py --held 22934843
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import (  # noqa: E402
    one_thread_arrow,
    own_peak_mib,
    real_documents,
    report_from_child,
    run_on_one_core,
    timed_local_run,
)
from benchmarks.line_dedup import dolma_paragraph_dedup, dolma_python  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "bff_dedup" / "documents"
RUNS = HERE / "_runs" / "bff_dedup"
SHARDS = 8
#: our jobs: the stage as DCLM ran it, with the n-grams held exactly (the default) or in
#: BFF's Bloom filter at DCLM's 1% false positives
JOBS = {
    "curation": "bff_dedup: {}",
    "curation (bloom 1%)": "bff_dedup: {filter: bloom, false_positive_rate: 0.01}",
}


def copy_of(text: str, copy: int) -> str:
    """Copy ``copy`` of ``text``: as it is for copy 0 and every fifth copy; otherwise
    every third line (from the ``copy``-th) loses every 9th word."""
    if copy % 5 == 0:
        return text
    lines = text.split("\n")
    for i in range(copy % 3, len(lines), 3):
        lines[i] = " ".join(w for k, w in enumerate(lines[i].split(" ")) if (k + 1) % 9)
    return "\n".join(lines)


def corpus(count: int) -> tuple[int, int]:
    """Write the shards; the number of words (about the n-grams) and of bytes of text."""
    base = real_documents()
    shutil.rmtree(DATA.parent, ignore_errors=True)
    DATA.mkdir(parents=True)
    per = -(-count // SHARDS)
    words = size = 0
    for shard in range(SHARDS):
        with gzip.open(DATA / f"shard-{shard:02d}.jsonl.gz", "wt", encoding="utf-8") as f:
            for i in range(shard * per, min(count, (shard + 1) * per)):
                text = copy_of(base[i % len(base)][0], i // len(base))
                words += len(text.split())
                size += len(text.encode("utf-8"))
                f.write(json.dumps({"id": f"d{i:09d}", "text": text, "source": "bench"}) + "\n")
    return words, size


def job_curation(out: Path, stage: str = "bff_dedup: {}") -> dict:
    columns = ["bff_dedup_paragraphs_removed", "drop_reason"]
    seconds, table = timed_local_run(f"  - {stage}\n", DATA, out, columns)
    return {
        "seconds": seconds,
        "paragraphs_removed": int(pc.sum(table["bff_dedup_paragraphs_removed"]).as_py()),
        "documents_dropped": table.num_rows - table["drop_reason"].null_count,
    }


def job_dolma(out: Path, words: int) -> dict:
    by_ngram = {"ngram_length": 13, "stride": 0, "overlap_threshold": 0.8}
    seconds, removed = dolma_paragraph_dedup(out, DATA, {"by_ngram": by_ngram}, words, 0.01, 0.8)
    kept = 0
    for path in (out / "kept").glob("*.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            kept += sum(1 for line in f if json.loads(line)["text"].strip())
    return {"seconds": seconds, "paragraphs_removed": removed, "kept": kept}


def job_held(kind: str, count: int) -> dict:
    """The barrier's pass alone over ``count`` distinct n-gram hashes (paragraphs of 13,
    drawn at random, so none is held twice): its seconds and the memory it added."""
    import numpy as np

    from curation.dedup.bff import HeldNgrams

    keys = np.random.default_rng(0).integers(1, 2**63, size=count, dtype=np.uint64)
    counts = np.full(count // 13, 13, dtype=np.int64)
    counts[-1] += count - counts.sum()
    rate = 0.01 if kind == "bloom" else None
    warm = HeldNgrams(keys[:0], 13, rate)  # compile before timing
    warm.take(keys[:13], np.array([0, 13]), counts[:1], np.array([0, 1]), np.array([0]), 0.8, True)
    before = own_peak_mib()
    started = time.perf_counter()
    held = HeldNgrams(keys[:0], count, rate)
    bounds = np.array([0, len(counts)])
    _, gone = held.take(keys, np.array([0, count]), counts, bounds, np.array([0]), 0.8, True)
    seconds = time.perf_counter() - started
    assert not gone.any()
    size = (held.table.nbytes + held.bits.nbytes) / 2**20
    return {"seconds": seconds, "held_mib": size, "before_mib": before}


def slug(name: str) -> str:
    """A job's folder name: its name with each run of other characters as ``-``."""
    return re.sub(r"\W+", "-", name).strip("-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument(
        "--held",
        type=int,
        help="instead: the barrier's pass alone over this many distinct n-grams, exact "
        "against the Bloom filter at 1%%",
    )
    parser.add_argument("--job", choices=[*JOBS, "dolma", "exact", "bloom"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--words", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        out = Path(args.out)
        stage = JOBS.get(args.job)
        if args.job in ("exact", "bloom"):
            report_from_child(job_held(args.job, args.words))
        else:
            report_from_child(job_curation(out, stage) if stage else job_dolma(out, args.words))
        return
    if args.held:
        print(f"the barrier's pass alone over {args.held:,} distinct n-grams, one core\n")
        print("| held as | seconds | structure MiB | peak MiB added |")
        print("|---|---:|---:|---:|")
        for kind in ("exact", "bloom"):
            r = run_on_one_core(
                kind, [__file__, "--job", kind, "--out", "-", "--words", str(args.held)]
            )
            print(
                f"| {kind} | {r['seconds']:.2f} | {r['held_mib']:.0f} | "
                f"{r['peak_mib'] - r['before_mib']:.0f} |"
            )
        return
    dolma_python()
    words, size = corpus(args.docs)
    mb = size / 1e6
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {args.docs:,} documents, {words:,} words, "
        f"{mb:.1f} MB of text, one core per job\n"
    )
    results = {
        name: run_on_one_core(
            name,
            [__file__, "--job", name, "--out", str(RUNS / slug(name)), "--words", str(words)],
        )
        for name in (*JOBS, "dolma")
    }
    results["dolma"]["documents_dropped"] = args.docs - results["dolma"].pop("kept")
    base = results["dolma"]["seconds"]
    print("| tool | seconds | MB/s | peak MiB | vs Dolma | paragraphs removed | docs dropped |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['seconds']:.1f} | {mb / r['seconds']:.1f} | {r['peak_mib']:.0f} | "
            f"{base / r['seconds']:.2f}x | {r['paragraphs_removed']:,} | "
            f"{r['documents_dropped']:,} |"
        )


if __name__ == "__main__":
    main()
