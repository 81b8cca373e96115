"""Line dedup: our ``line_dedup`` stage against Dolma's paragraph dedup (Rust, Bloom filter).

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents.
Copy r > 0 of a document loses every (r + 6)-th word of each line, so long lines differ
between copies while lines shorter than r + 6 words (headings, menu items, code) repeat
as boilerplate does in a crawl. Written once as 8 gzip'd JSONL shards under
``benchmarks/_data/line_dedup/documents`` (Dolma wants that folder name), ids
zero-padded in file order so that the first occurrence is also the smallest id.

Jobs, each in a child process pinned to core 0 (Dolma's processes inherit the pinning):
- ``curation``: ``curate run`` on the local executor with ``line_dedup: {keep_first:
  true, normalize: false}``: read the shards, hash every line, barrier, remove the
  repeats of each line but its first occurrence, write kept and dropped Parquet.
- ``dolma``: Dolma 1.2.1's ``dolma dedupe`` with paragraph dedup (a Bloom filter sized
  for the corpus' lines at a false-positive rate of 1e-6, empty lines skipped; it marks
  the spans of lines seen before) and ``dolma mix``, which removes those spans and writes
  the documents as gzip'd JSONL: Dolma's way to the same result. One process each.
  Dolma pins numpy below 2, which the project cannot, so it lives in its own virtual
  environment, ``benchmarks/_runs/dolma-venv``, made on the first run from PyPI.

Reports seconds, MB per second, peak memory, lines removed, and how many documents end
with the same lines. The two differ by design in one way: we compare lines with white
space trimmed at both ends, Dolma compares them as they are.

    .venv/bin/python benchmarks/line_dedup.py --docs 100000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

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
    timed_local_run,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "line_dedup" / "documents"
RUNS = HERE / "_runs" / "line_dedup"
DOLMA_VENV = HERE / "_runs" / "dolma-venv"
SHARDS = 8
# dolma 1.2.1 installed without its pins on boto3/s3fs (not used on local files, and
# their resolution backtracks for minutes); the rest of what its import needs
DOLMA_PACKAGES = [
    "numpy<2", "msgspec", "omegaconf", "smart-open", "rich", "tqdm", "necessary",
    "platformdirs", "python-dotenv", "pyyaml", "requests", "uniseg", "zstandard", "anyascii",
    "charset-normalizer", "fsspec", "jsonpath-ng", "boto3", "fasttext-numpy2", "blingfire",
    "nltk", "jq", "tokenizers<=0.19.1",
]  # fmt: skip


def corpus(count: int) -> tuple[int, int]:
    """Write the shards; the number of lines and of bytes of text."""
    base = real_documents()
    shutil.rmtree(DATA.parent, ignore_errors=True)
    DATA.mkdir(parents=True)
    per = -(-count // SHARDS)
    lines = size = 0
    for shard in range(SHARDS):
        with gzip.open(DATA / f"shard-{shard:02d}.jsonl.gz", "wt", encoding="utf-8") as f:
            for i in range(shard * per, min(count, (shard + 1) * per)):
                text = thinned(base[i % len(base)][0], i // len(base))
                lines += text.count("\n") + 1
                size += len(text.encode("utf-8"))
                f.write(json.dumps({"id": f"d{i:09d}", "text": text, "source": "bench"}) + "\n")
    return lines, size


def job_curation(out: Path) -> dict:
    stages = "  - line_dedup: {keep_first: true, normalize: false}\n"
    seconds, table = timed_local_run(stages, DATA, out, ["line_dedup_lines_removed"])
    return {"seconds": seconds, "lines_removed": int(pc.sum(table.column(0)).as_py())}


def dolma_python() -> Path:
    """The Python of Dolma's own virtual environment, made when missing."""
    python = DOLMA_VENV / "bin" / "python"
    if not (DOLMA_VENV / ".installed").exists():
        print("making Dolma's virtual environment (once; about two minutes)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(DOLMA_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--no-deps", "dolma==1.2.1"], check=True)
        subprocess.run([*pip, *DOLMA_PACKAGES], check=True)
        (DOLMA_VENV / ".installed").touch()
    return python


def dolma_paragraph_dedup(
    out: Path, data: Path, paragraphs: dict, expected: int, fp_rate: float, min_score: float
) -> tuple[float, int]:
    """Dolma's way to paragraph-deduplicated documents: ``dolma dedupe`` of the gzip'd
    JSONL shards in ``data`` (a folder named ``documents``) with ``paragraphs`` (its
    paragraph options) and a Bloom filter for ``expected`` keys at ``fp_rate``, then
    ``dolma mix``, which removes the spans marked with a score of ``min_score`` or more and
    writes ``out/kept``. One process each. Seconds taken and spans marked."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(data.parent / "attributes", ignore_errors=True)
    out.mkdir(parents=True)
    documents = [str(data / "*.jsonl.gz")]
    spans = "bff_duplicate_paragraph_spans"
    dedupe = {
        "documents": documents,
        "dedupe": {
            "name": "dups",
            "paragraphs": {"attribute_name": spans, **paragraphs},
            "skip_empty": True,
        },
        "bloom_filter": {
            "file": str(out / "bloom.bin"),
            "read_only": False,
            "estimated_doc_count": expected,
            "desired_false_positive_rate": fp_rate,
        },
        "processes": 1,
    }
    mix = {
        "streams": [
            {
                "name": "kept",
                "documents": documents,
                "attributes": ["dups"],
                "output": {"path": str(out / "kept"), "max_size_in_bytes": 1 << 40},
                "span_replacement": [
                    {"span": f"$.attributes.{spans}", "min_score": min_score, "replacement": ""}
                ],
            }
        ],
        "processes": 1,
    }
    dolma = str(DOLMA_VENV / "bin" / "dolma")
    started = time.perf_counter()
    for command, config in (("dedupe", dedupe), ("mix", mix)):
        path = out / f"{command}.json"
        path.write_text(json.dumps(config))
        done = subprocess.run(
            [dolma, "-c", str(path), command], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"dolma {command} failed:\n{done.stderr[-3000:]}")
    seconds = time.perf_counter() - started
    marked = 0
    for attributes in (data.parent / "attributes" / "dups").glob("*.gz"):
        with gzip.open(attributes, "rt") as f:
            marked += sum(len(json.loads(line)["attributes"].get(spans) or []) for line in f)
    return seconds, marked


def job_dolma(out: Path, lines: int) -> dict:
    seconds, removed = dolma_paragraph_dedup(out, DATA, {}, lines, 1e-6, 0.5)
    return {"seconds": seconds, "lines_removed": removed}


def kept_lines_curation(out: Path) -> dict[str, list[str]]:
    """The trimmed non-blank lines of each kept document (a document whose lines all went
    is in ``dropped/``, with its text kept as it came)."""
    table = pq.read_table(out / "kept", columns=["id", "text"])
    return {
        i: [line.strip() for line in t.split("\n") if line.strip()]
        for i, t in zip(table["id"].to_pylist(), table["text"].to_pylist(), strict=True)
    }


def kept_lines_dolma(out: Path) -> dict[str, list[str]]:
    kept = {}
    for path in sorted((out / "kept").glob("*.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                lines = [x.strip() for x in row["text"].split("\n") if x.strip()]
                if lines:
                    kept[row["id"]] = lines
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--job", choices=["curation", "dolma"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--lines", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        out = Path(args.out)
        report_from_child(
            job_curation(out) if args.job == "curation" else job_dolma(out, args.lines)
        )
        return
    dolma_python()
    lines, size = corpus(args.docs)
    mb = size / 1e6
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {args.docs:,} documents, {lines:,} lines, "
        f"{mb:.1f} MB of text, one core per job\n"
    )
    results = {
        name: run_on_one_core(
            name,
            [__file__, "--job", name, "--out", str(RUNS / name), "--lines", str(lines)],
        )
        for name in ("curation", "dolma")
    }
    base = results["dolma"]["seconds"]
    print("| tool | seconds | MB/s | peak MiB | vs Dolma | lines removed |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['seconds']:.1f} | {mb / r['seconds']:.1f} | {r['peak_mib']:.0f} | "
            f"{base / r['seconds']:.2f}x | {r['lines_removed']:,} |"
        )
    ours, theirs = kept_lines_curation(RUNS / "curation"), kept_lines_dolma(RUNS / "dolma")
    same = sum(ours.get(i) == lines for i, lines in theirs.items())
    print(
        f"\ndocuments with lines left: curation {len(ours):,}, Dolma {len(theirs):,}; "
        f"the same lines left (trimmed) in {same:,}"
    )


if __name__ == "__main__":
    main()
