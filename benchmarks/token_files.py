"""Token files for training: ``curate tokenize`` against datatrove's ``DocumentTokenizer``.

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents,
written once as 4 zstd Parquet shards. Tokenizer: a byte-level BPE ``tokenizer.json``
(GPT-2's kind) of ``--vocab`` pieces with ``<|endoftext|>``, trained here on the samples
with Hugging Face ``tokenizers`` (nothing is downloaded).

Jobs, each in a child process pinned to one core, the tokenizer on one thread
(``RAYON_NUM_THREADS=1``):
- ``curation``: ``curation.io.tokens.tokenize`` on the local executor: read the shards,
  tokenize with ``<|endoftext|>`` after each document, shuffle the documents within each
  file (seed 0), write ``.ds``, ``.ds.index``, ``.ds.metadata`` and ``tokenize.json``.
- ``datatrove``: ``ParquetReader`` -> ``DocumentTokenizer`` (the same tokenizer file and
  end token, documents shuffled within its file, seed 0) on its local executor, one task.

With ``--merge``, every document is then shuffled across all files: ours with
``merge=True`` (a unit per shard, then one merge), datatrove with a task per shard (4
tasks, one after another) then ``DocumentTokenizerMerger`` (seed 0), as its examples do.

Reports seconds, MB of text and tokens a second, peak memory, and whether both wrote
the same documents (the token bytes of every document, as a multiset: the shuffles
differ).

    .venv/bin/python benchmarks/token_files.py --docs 40000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (
    SHARED,
    documents,
    one_thread_arrow,
    report_from_child,
    run_on_one_core,
    write_parquet_shards,
)
from curation.io.bytelevel import LLAMA3
from tests.conftest import train_bytelevel_bpe

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "tokenize"
RUNS = HERE / "_runs" / "tokenize"
SHARDS = 4
EOS = "<|endoftext|>"


def distinct_texts() -> list[str]:
    """Every real text beside the repository once: the C4 and Pile samples, and the two
    books and WikiText-2's validation text of ../shared/data/reference in pieces of
    about 2,000 characters (cut at line ends; a piece of white space alone left out, as
    our reader sets it aside and datatrove's does not)."""
    texts = documents(2000)
    for path in sorted((SHARED / "reference").glob("*.txt")):
        held: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            held.append(line)
            if sum(map(len, held)) >= 2000:
                texts.append("".join(held))
                held = []
        if held:
            texts.append("".join(held))
    return [text for text in texts if text.strip()]


def corpus(count: int, vocab: int, distinct: bool, pipeline: str) -> tuple[Path, Path, float, int]:
    """The Parquet shards, the tokenizer file, the text's MB (UTF-8) and the documents."""
    texts = distinct_texts() if distinct else documents(count)
    count = len(texts)
    table = pa.table({"id": [f"d{i:09d}" for i in range(count)], "text": texts})
    folder = write_parquet_shards(table, DATA / "shards", SHARDS)
    split = LLAMA3 if pipeline == "llama3" else None
    path = train_bytelevel_bpe(documents(2000), vocab, DATA / "tokenizer.json", EOS, split)
    return folder, path, sum(len(t.encode("utf-8")) for t in texts) / 1e6, count


def written(folder: Path, pattern: str) -> tuple[int, list[str]]:
    """Tokens, and a digest of each document's token bytes (sorted), over the files."""
    from curation.io.tokens import read_token_file

    digests, total = [], 0
    for path in sorted(folder.glob(pattern)):
        ids, ends = read_token_file(path)
        starts = [0, *ends[:-1].tolist()]
        total += len(ids)
        for start, end in zip(starts, ends.tolist(), strict=True):
            digests.append(hashlib.blake2b(ids[start:end].tobytes(), digest_size=8).hexdigest())
    return total, sorted(digests)


def job_curation(folder: Path, tokenizer: Path, out: Path, merge: bool) -> dict:
    from curation.io.tokens import TokenizeOptions, TokenizerSpec, tokenize

    options = TokenizeOptions(TokenizerSpec(str(tokenizer), EOS), seed=0, merge=merge)
    started = time.perf_counter()
    tokenize([str(folder)], out, options, overwrite=True, progress=False)
    seconds = time.perf_counter() - started
    tokens, digests = written(out, "*.ds")
    return {"seconds": seconds, "tokens": tokens, "documents": digests}


def job_datatrove(folder: Path, tokenizer: Path, out: Path, merge: bool) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.tokens import DocumentTokenizer, DocumentTokenizerMerger

    shutil.rmtree(out, ignore_errors=True)
    executors = [
        LocalPipelineExecutor(
            [
                ParquetReader(str(folder), glob_pattern="*.parquet", id_key="id"),
                DocumentTokenizer(
                    str(out / "tokens"),
                    tokenizer_name_or_path=str(tokenizer),
                    eos_token=EOS,
                    seed=0,
                ),
            ],
            tasks=SHARDS if merge else 1,
            workers=1,
            logging_dir=str(out / "logs"),
        )
    ]
    if merge:
        merger = DocumentTokenizerMerger(
            str(out / "tokens"), str(out / "merged"), "merged", seed=0, progress=False
        )
        executors.append(
            LocalPipelineExecutor([merger], tasks=1, logging_dir=str(out / "merge-logs"))
        )
    started = time.perf_counter()
    for executor in executors:
        executor.run()
    seconds = time.perf_counter() - started
    tokens, digests = written(out / ("merged" if merge else "tokens"), "*.ds")
    return {"seconds": seconds, "tokens": tokens, "documents": digests}


JOBS = {"curation": job_curation, "datatrove": job_datatrove}


def add_race_arguments(parser: argparse.ArgumentParser) -> None:
    """The corpus's and tokenizer's options, and a child job's, of this script and
    ``token_count.py``."""
    parser.add_argument("--docs", type=int, default=40_000)
    parser.add_argument("--vocab", type=int, default=16_000)
    parser.add_argument(
        "--pipeline",
        choices=["gpt2", "llama3"],
        default="gpt2",
        help="the tokenizer's: GPT-2's ByteLevel regex, or Llama 3's Split regex",
    )
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="each real text once (no repeats for the piece cache to profit from)",
    )
    parser.add_argument("--job")
    parser.add_argument("--folder")
    parser.add_argument("--tokenizer")
    parser.add_argument("--out")


def race(
    script: str, args: argparse.Namespace, runs: Path, extra: list[str], what: str
) -> tuple[dict[str, dict], float, int]:
    """Make the corpus and tokenizer, print the header (``what``: the jobs' work), and run
    ``script``'s ``datatrove`` and ``curation`` jobs in children pinned to one core, the
    tokenizer on one thread. Returns their results, the text's MB and the documents."""
    folder, tokenizer, megabytes, count = corpus(
        args.docs, args.vocab, args.distinct, args.pipeline
    )
    os.environ["RAYON_NUM_THREADS"] = "1"  # the tokenizer's threads, in both children
    print(f"# machine: {platform.machine()}, {platform.processor() or 'cpu'}; one core per job")
    kind = "each real text once" if args.distinct else "the C4 and Pile samples repeated"
    print(f"# {count:,} documents ({kind}), {megabytes:.1f} MB of text")
    print(f"# byte-level BPE of {args.vocab:,} pieces, {args.pipeline}'s pipeline")
    print(f"# {what}\n")
    results = {}
    for name in ("datatrove", "curation"):
        command = [script, "--job", name, "--folder", str(folder)]
        command += ["--tokenizer", str(tokenizer), "--out", str(runs / name), *extra]
        results[name] = run_on_one_core(name, command)
    return results, megabytes, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_race_arguments(parser)
    parser.add_argument("--merge", action="store_true", help="then shuffle across all files")
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        result = JOBS[args.job](Path(args.folder), Path(args.tokenizer), Path(args.out), args.merge)
        report_from_child(result)
        return

    what = "tokenize, then merge all files" if args.merge else "tokenize"
    extra = ["--merge"] if args.merge else []
    results, megabytes, _ = race(__file__, args, RUNS, extra, what)
    base = results["datatrove"]["seconds"]
    print("| tool | seconds | MB/s | tokens/s | peak MiB | tokens | vs datatrove |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        seconds = result["seconds"]
        print(
            f"| {name} | {seconds:.2f} | {megabytes / seconds:.2f} | "
            f"{result['tokens'] / seconds:,.0f} | {result['peak_mib']:.0f} | "
            f"{result['tokens']:,} | {base / seconds:.2f}x |"
        )
    same = results["datatrove"]["documents"] == results["curation"]["documents"]
    print(f"\nsame documents (token bytes, as a multiset): {same}")
    count = np.unique(results["curation"]["documents"]).size
    print(f"distinct documents: {count:,}")


if __name__ == "__main__":
    main()
