"""Each document's token count: the ``token_count`` stage against datatrove's
``TokensCounter`` (what wrote FineWeb's ``token_count``).

Data and tokenizer as ``token_files.py``: the real C4 and Pile samples repeated to
``--docs`` documents (``--distinct``: every real text beside the repository once) in 4
zstd Parquet shards, and a byte-level BPE ``tokenizer.json``
(GPT-2's kind, or Llama 3's with ``--pipeline llama3``) trained here on the samples.

Jobs, each in a child process pinned to one core, the tokenizer on one thread
(``RAYON_NUM_THREADS=1``), each reading the shards and writing every document with its
count as Parquet:
- ``curation``: ``curate run`` of ``token_count: {tokenizer: ..., eos: <|endoftext|>}``
  on the local executor.
- ``datatrove``: ``ParquetReader`` -> ``TokensCounter(count_eos_token=True)`` ->
  ``ParquetWriter`` on its local executor, one task.

Reports seconds, MB of text and documents a second, peak memory, and whether both gave
every document the same count.

    .venv/bin/python benchmarks/token_count.py --docs 40000
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import one_thread_arrow, report_from_child
from benchmarks.token_files import EOS, add_race_arguments, race

RUNS = Path(__file__).resolve().parent / "_runs" / "token_count"


def digest(ids: list[str], counts: list[int]) -> str:
    """One digest of every (id, count) pair, in id order."""
    pairs = sorted(zip(ids, counts, strict=True))
    return hashlib.blake2b(repr(pairs).encode(), digest_size=16).hexdigest()


def job_curation(folder: Path, tokenizer: Path, out: Path) -> dict:
    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    text = f"stages:\n  - token_count: {{tokenizer: '{tokenizer}', eos: '{EOS}'}}\n"
    recipe = parse_recipe(text).with_input(paths=[str(folder)])
    started = time.perf_counter()
    run(recipe, out, RunOptions("local", progress=False, overwrite=True))
    seconds = time.perf_counter() - started
    table = ds.dataset(out / "kept").to_table(columns=["id", "token_count"])
    counts = table["token_count"].to_pylist()
    pairs = digest(table["id"].to_pylist(), counts)
    return {"seconds": seconds, "tokens": sum(counts), "pairs": pairs}


def job_datatrove(folder: Path, tokenizer: Path, out: Path) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.tokens import TokensCounter
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(out, ignore_errors=True)
    executor = LocalPipelineExecutor(
        [
            ParquetReader(str(folder), glob_pattern="*.parquet", id_key="id"),
            TokensCounter(str(tokenizer), count_eos_token=True),
            ParquetWriter(str(out / "kept")),
        ],
        tasks=1,
        workers=1,
        logging_dir=str(out / "logs"),
    )
    started = time.perf_counter()
    executor.run()
    seconds = time.perf_counter() - started
    table = ds.dataset(out / "kept").to_table(columns=["id", "metadata"])
    counts = pc.struct_field(table["metadata"], "token_count").to_pylist()
    pairs = digest(table["id"].to_pylist(), counts)
    return {"seconds": seconds, "tokens": sum(counts), "pairs": pairs}


JOBS = {"curation": job_curation, "datatrove": job_datatrove}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_race_arguments(parser)
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        result = JOBS[args.job](Path(args.folder), Path(args.tokenizer), Path(args.out))
        report_from_child(result)
        return

    results, megabytes, count = race(__file__, args, RUNS, [], "count the tokens")
    base = results["datatrove"]["seconds"]
    print("| tool | seconds | MB/s | docs/s | peak MiB | tokens | vs datatrove |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        seconds = result["seconds"]
        print(
            f"| {name} | {seconds:.2f} | {megabytes / seconds:.2f} | {count / seconds:,.0f} | "
            f"{result['peak_mib']:.0f} | {result['tokens']:,} | {base / seconds:.2f}x |"
        )
    same = results["datatrove"]["pairs"] == results["curation"]["pairs"]
    print(f"\nthe same count for every document: {same}")


if __name__ == "__main__":
    main()
