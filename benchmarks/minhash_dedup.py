"""MinHash near-dedup: ours against datasketch and datatrove, and how it scales.

Data: the real C4 and Pile samples of ../shared/data (each cut to its first
``--max-words`` words), repeated to N documents with random word edits. Each copy
replaces a random share of its words with words of the corpus: 3% for a quarter of the
copies (near duplicates of their source and of each other; ``--near-share`` sets that
share for the scaling table), 40% for the rest (unrelated at the 5-gram level). Written
once as Parquet shards under ``benchmarks/_data/minhash``.

1. Signatures, one core, same texts in memory, 14 x 8 = 112 hash functions:
   ours (text to band keys: the word scanner and the MinHash kernel are compiled with
   numba, loaded before timing) against datasketch's ``MinHash.update_batch`` with its
   default scheme (affine32) and permutations made once, timed alone (sketch creation
   excluded), and with the Python shingling a user writes before it.
2. Whole dedup, one worker each, same Parquet shards: ``curate run`` with the local
   executor (read, signatures, barrier, apply, write kept and dropped) against
   datatrove's four MinHash stages (signature, buckets, cluster, filter with a Parquet
   writer for kept and removed documents) with its local executor.
3. Scaling: our whole dedup at 10^4, 10^5 and 10^6 documents.
4. With ``--against``: the same documents deduplicated against as many others (made the
   same way with another seed, so a share of them are near copies of documents here),
   only against them: ``minhash_dedup`` with ``against`` and ``only_against`` (the
   other documents read and hashed at the barrier, each run) against datatrove's index
   (their signatures and ``MinhashBuildIndex``, made once, then the four stages with
   ``index_folder``, ``only_dedup_in_index`` by default).

Every measurement runs in its own child process, which reports its wall time and peak
resident memory (``ru_maxrss``).

    .venv/bin/python benchmarks/minhash_dedup.py --docs 20000 --scaling 10000,100000,1000000
    # the scaling table alone, optionally on another corpus or with the exact check
    .venv/bin/python benchmarks/minhash_dedup.py --scaling-only --near-share 0
    .venv/bin/python benchmarks/minhash_dedup.py --scaling-only --jaccard-threshold 0.7
    # against another dataset only
    .venv/bin/python benchmarks/minhash_dedup.py --docs 20000 --against --scaling ''
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import one_thread_arrow, report_from_child, run_on_one_core

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "minhash"
RUNS = HERE / "_runs" / "minhash"
BANDS, ROWS = 14, 8
REPEATS = 3  # signature timings: the best of three, on both sides


# ----------------------------------------------------------------------------- corpus


def corpus(count: int, max_words: int = 400, seed: int = 0, near: float = 0.25) -> Path:
    """Parquet shards of ``count`` edited copies of the real samples (made once); a share
    ``near`` of them are near duplicates (3% of words edited), the rest unrelated (40%)."""
    folder = DATA / (f"docs-{count}" if near == 0.25 else f"docs-{count}-near{near:g}")
    if seed:
        folder = folder.with_name(f"{folder.name}-seed{seed}")
    if (folder / "_DONE").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with gzip.open(SHARED / "web" / "c4-sample-1000.jsonl.gz", "rt", encoding="utf-8") as f:
        sources = [json.loads(line)["text"] for line in f]
    with open(SHARED / "web" / "pile-sample-1000.jsonl", encoding="utf-8") as f:
        sources += [json.loads(line)["contents"] for line in f]
    split = [s.split()[:max_words] for s in sources]
    split = [s for s in split if len(s) >= 20]
    vocab_index: dict[str, int] = {}
    encoded = [np.array([vocab_index.setdefault(w, len(vocab_index)) for w in s]) for s in split]
    vocab = np.array(list(vocab_index), dtype=object)
    rng = np.random.default_rng(seed)
    per_shard = min(50_000, math.ceil(count / 4))
    for shard, start in enumerate(range(0, count, per_shard)):
        n = min(per_shard, count - start)
        picks = rng.integers(0, len(encoded), n)
        rates = np.where(rng.random(n) < near, 0.03, 0.40)
        texts = []
        for source, rate in zip(picks, rates, strict=True):
            words = encoded[source].copy()
            hit = rng.random(len(words)) < rate
            words[hit] = rng.integers(0, len(vocab), int(hit.sum()))
            texts.append(" ".join(vocab[words]))
        ids = [f"doc-{i:08d}" for i in range(start, start + n)]
        table = pa.table({"id": ids, "text": pa.array(texts, pa.large_string())})
        pq.write_table(table, folder / f"part-{shard:04d}.parquet", compression="zstd")
    (folder / "_DONE").write_text("")
    return folder


def texts_of(folder: Path) -> list[str]:
    return [
        t for f in sorted(folder.glob("*.parquet")) for t in pq.read_table(f)["text"].to_pylist()
    ]


# ----------------------------------------------------------------------------- jobs


def job_ours_signatures(folder: Path) -> dict:
    from curation.dedup import minhash as mh

    texts = pa.array(texts_of(folder), pa.large_string())
    a, b = mh.permutations(BANDS * ROWS, seed=1)
    mh.signatures(*mh.tokens_of(texts[:10], "word"), 5, 1, a, b)  # load the compiled code
    best = math.inf
    for _ in range(REPEATS):
        started = time.perf_counter()
        for lo in range(0, len(texts), 2000):  # the engine's batches
            tokens, counts = mh.tokens_of(texts[lo : lo + 2000], "word")
            mh.band_keys(mh.signatures(tokens, counts, 5, 1, a, b), BANDS, ROWS)
        best = min(best, time.perf_counter() - started)
    return {"seconds": best, "docs": len(texts)}


def _python_shingles(texts: list[str]) -> list[list[bytes]]:
    import regex

    out = []
    for text in texts:
        words = regex.sub(r"[\p{P}\p{S}]+", "", text.lower()).split()
        out.append([" ".join(words[i : i + 5]).encode() for i in range(max(len(words) - 4, 1))])
    return out


def job_datasketch(folder: Path) -> dict:
    from datasketch import MinHash

    texts = texts_of(folder)
    permutations = MinHash(num_perm=BANDS * ROWS, seed=1).permutations  # made once
    MinHash(num_perm=BANDS * ROWS, permutations=permutations, scheme="affine32").update_batch(
        [b"warm up"]
    )
    best, best_shingling = math.inf, math.inf
    for _ in range(REPEATS):
        started = time.perf_counter()
        shingles = _python_shingles(texts)
        best_shingling = min(best_shingling, time.perf_counter() - started)
        sketches = [
            MinHash(num_perm=BANDS * ROWS, permutations=permutations, scheme="affine32")
            for _ in shingles
        ]
        created = time.perf_counter()
        for sketch, doc in zip(sketches, shingles, strict=True):
            sketch.update_batch(doc)
        best = min(best, time.perf_counter() - created)
    return {"seconds": best, "seconds_with_shingling": best + best_shingling, "docs": len(texts)}


def job_ours_dedup(
    folder: Path, out: Path, jaccard: float | None = None, against: Path | None = None
) -> dict:
    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    check = "" if jaccard is None else f", jaccard_threshold: {jaccard}"
    if against is not None:
        check += f", against: ['{against}'], only_against: true"
    recipe = parse_recipe(
        f"stages:\n  - minhash_dedup: {{num_bands: {BANDS}, rows_per_band: {ROWS}{check}}}\n",
        "bench.yaml",
    ).with_input(paths=[str(folder)], format="parquet", batch_rows=2000)
    started = time.perf_counter()
    stats = run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    seconds = time.perf_counter() - started
    stage = next(s for s in stats["stages"] if s["name"] == "minhash_dedup")
    return {"seconds": seconds, "docs": stats["rows"]["read"], "removed": stage["rows_dropped"]}


def job_datatrove_dedup(folder: Path, out: Path, against: Path | None = None) -> dict:
    """datatrove's four MinHash stages over ``folder``; with ``against``, first its index
    of those documents (signatures and ``MinhashBuildIndex``, timed apart), then the four
    stages against it."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashBuildIndex,
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(out, ignore_errors=True)
    config = MinhashConfig(n_grams=5, num_buckets=BANDS, hashes_per_bucket=ROWS)
    logs = str(out / "logs")

    def reader(source: Path = folder) -> ParquetReader:
        return ParquetReader(str(source), glob_pattern="*.parquet", id_key="id")

    def executor(pipeline: list, name: str, tasks: int = 1) -> LocalPipelineExecutor:
        return LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=f"{logs}/{name}")

    index_seconds = 0.0
    index = None
    if against is not None:
        index = str(out / "index")
        started = time.perf_counter()
        executor(
            [reader(against), MinhashDedupSignature(str(out / "index-sigs"), config=config)], "i1"
        ).run()
        executor(
            [MinhashBuildIndex(str(out / "index-sigs"), index, index_name="other", config=config)],
            "i2",
            tasks=BANDS,
        ).run()
        index_seconds = time.perf_counter() - started
    stages = [
        executor([reader(), MinhashDedupSignature(str(out / "sigs"), config=config)], "1"),
        executor(
            [MinhashDedupBuckets(str(out / "sigs"), str(out / "buckets"), index, config=config)],
            "2",
            tasks=BANDS,
        ),
        executor(
            [MinhashDedupCluster(str(out / "buckets"), str(out / "remove"), config=config)], "3"
        ),
        executor(
            [
                reader(),
                MinhashDedupFilter(
                    str(out / "remove"), exclusion_writer=ParquetWriter(str(out / "removed"))
                ),
                ParquetWriter(str(out / "kept")),
            ],
            "4",
        ),
    ]
    started = time.perf_counter()
    for stage in stages:
        stage.run()
    seconds = time.perf_counter() - started
    removed = sum(pq.ParquetFile(f).metadata.num_rows for f in (out / "removed").glob("*.parquet"))
    return {"seconds": seconds, "index_seconds": index_seconds, "removed": removed}


JOBS = {
    "ours_signatures": lambda a: job_ours_signatures(Path(a.folder)),
    "datasketch": lambda a: job_datasketch(Path(a.folder)),
    "ours_dedup": lambda a: job_ours_dedup(
        Path(a.folder),
        Path(a.out),
        a.jaccard_threshold,
        a.against_folder and Path(a.against_folder),
    ),
    "datatrove_dedup": lambda a: job_datatrove_dedup(
        Path(a.folder), Path(a.out), a.against_folder and Path(a.against_folder)
    ),
}


def measure(
    name: str,
    folder: Path,
    out: Path | None = None,
    jaccard: float | None = None,
    against: Path | None = None,
) -> dict:
    """Run one job in a child process limited to one core; its result and peak memory."""
    command = [__file__, "--job", name, "--folder", str(folder)]
    if against is not None:
        command += ["--against-folder", str(against)]
    if out is not None:
        command += ["--out", str(out)]
    if jaccard is not None:
        command += ["--jaccard-threshold", str(jaccard)]
    return run_on_one_core(name, command)


def child(args: argparse.Namespace) -> None:
    one_thread_arrow()
    report_from_child(JOBS[args.job](args))


# ----------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--scaling", default="10000,100000,1000000")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument(
        "--scaling-only", action="store_true", help="only the scaling table (no comparisons)"
    )
    parser.add_argument(
        "--near-share", type=float, default=0.25, help="scaling: share of near-duplicate copies"
    )
    parser.add_argument(
        "--jaccard-threshold", type=float, help="scaling: also check candidates' exact Jaccard"
    )
    parser.add_argument(
        "--against", action="store_true", help="only against as many other documents"
    )
    parser.add_argument("--job", choices=sorted(JOBS))
    parser.add_argument("--against-folder")
    parser.add_argument("--folder")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.job:
        child(args)
        return

    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    if args.against:
        compare_against(args)
    elif not args.scaling_only:
        compare(args)
    sizes = [int(s) for s in args.scaling.split(",") if s]
    scaling(sizes, args.near_share, args.jaccard_threshold)


def compare(args: argparse.Namespace) -> None:
    """Signatures against datasketch, the whole dedup against datatrove's."""
    folder = corpus(args.docs)
    size = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 1e6
    print(f"# {args.docs:,} documents, {size:.0f} MB of zstd Parquet, one core per job\n")

    ours = measure("ours_signatures", folder)
    sketch = measure("datasketch", folder)
    print("| signatures (112 hashes) | seconds | docs/s | peak MiB | ours is faster by |")
    print("|---|---:|---:|---:|---:|")
    rows = [
        ("curation (text to band keys)", ours["seconds"], ours["peak_mib"], None),
        ("datasketch update_batch", sketch["seconds"], sketch["peak_mib"], sketch["seconds"]),
        (
            "datasketch + Python shingling",
            sketch["seconds_with_shingling"],
            sketch["peak_mib"],
            sketch["seconds_with_shingling"],
        ),
    ]
    for label, seconds, peak, other in rows:
        ratio = f"{other / ours['seconds']:.1f}x" if other else ""
        print(f"| {label} | {seconds:.2f} | {args.docs / seconds:,.0f} | {peak} | {ratio} |")

    print("\n| whole dedup | seconds | docs/s | peak MiB | removed | ours is faster by |")
    print("|---|---:|---:|---:|---:|---:|")
    mine = measure("ours_dedup", folder, RUNS / f"ours-{args.docs}")
    print(
        f"| curation local executor | {mine['seconds']:.1f} | "
        f"{args.docs / mine['seconds']:,.0f} | {mine['peak_mib']} | {mine['removed']:,} | |"
    )
    if not args.skip_datatrove:
        theirs = measure("datatrove_dedup", folder, RUNS / f"datatrove-{args.docs}")
        print(
            f"| datatrove 4 stages, local | {theirs['seconds']:.1f} | "
            f"{args.docs / theirs['seconds']:,.0f} | {theirs['peak_mib']} | "
            f"{theirs['removed']:,} | {theirs['seconds'] / mine['seconds']:.1f}x |"
        )


def compare_against(args: argparse.Namespace) -> None:
    """Only against another dataset of as many documents: ours against datatrove's index.
    Ours runs twice: first making their keys (into a fresh cache), then reading them.
    datatrove with its index made before is compared with the second, datatrove making
    its index too with the first."""
    folder, other = corpus(args.docs), corpus(args.docs, seed=1)
    print(f"# {args.docs:,} documents against {args.docs:,} others, one core per job\n")
    print("| only against others | seconds | docs/s | peak MiB | removed | ours is faster by |")
    print("|---|---:|---:|---:|---:|---:|")
    cache = RUNS / "against-cache"  # the engine's cache of their keys, empty at first
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["CURATION_CACHE_DIR"] = str(cache)
    runs = []
    for label in ("their keys made and cached", "their keys read from the cache"):
        mine = measure("ours_dedup", folder, RUNS / f"ours-against-{args.docs}", against=other)
        runs.append(mine)
        print(
            f"| curation `against`, {label} | {mine['seconds']:.1f} | "
            f"{args.docs / mine['seconds']:,.0f} | {mine['peak_mib']} | {mine['removed']:,} | |"
        )
    if args.skip_datatrove:
        return
    theirs = measure(
        "datatrove_dedup", folder, RUNS / f"datatrove-against-{args.docs}", against=other
    )
    total = theirs["seconds"] + theirs["index_seconds"]
    print(
        f"| datatrove, 4 stages with its index made before | {theirs['seconds']:.1f} | "
        f"{args.docs / theirs['seconds']:,.0f} | {theirs['peak_mib']} | {theirs['removed']:,} | "
        f"{theirs['seconds'] / mine['seconds']:.1f}x |"
    )
    print(
        f"| datatrove, making its index too | {total:.1f} | {args.docs / total:,.0f} | "
        f"{theirs['peak_mib']} | {theirs['removed']:,} | {total / runs[0]['seconds']:.1f}x |"
    )


def scaling(sizes: list[int], near: float, jaccard: float | None) -> None:
    """Our whole dedup at each size, one core."""
    if sizes:
        check = "" if jaccard is None else f"; jaccard_threshold {jaccard:g}"
        print(f"\n# a share {near:g} of the copies are near duplicates{check}")
        print("\n| documents | seconds | us/doc | peak MiB | removed |")
        print("|---:|---:|---:|---:|---:|")
    for count in sizes:
        data = corpus(count, near=near)
        result = measure("ours_dedup", data, RUNS / f"scale-{count}", jaccard)
        print(
            f"| {count:,} | {result['seconds']:.1f} | {result['seconds'] / count * 1e6:.0f} | "
            f"{result['peak_mib']} | {result['removed']:,} |",
            flush=True,
        )
        shutil.rmtree(RUNS / f"scale-{count}", ignore_errors=True)


if __name__ == "__main__":
    main()
