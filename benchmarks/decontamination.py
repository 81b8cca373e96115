"""Benchmark decontamination: our ``decontaminate`` stage against datatrove's n-gram filter.

Data: the real C4 and Pile samples of ../shared/data, repeated to ``--docs`` documents,
with ``--planted`` of them given a benchmark item (its question and gold answer, upper-
cased, with punctuation added) in the middle of their text. Index: all 9,156 items of
``../shared/data/benchmarks`` (ARC easy and challenge, BoolQ, OpenBookQA, PIQA).

Both sides index the n-grams of 13 words of each item's question followed by its gold
answer (datatrove: ``NGramsDecontConfig(n_grams=13, find_query_ngrams=True)``, its hashes
computed by its own ``NGramsDecontIndexer.compute_hashes``; the indexer's ``run`` needs
lighteval and a download, so the hashes are written to its index folder here) and drop a
document that holds one of them. Both run on one core, in this process.

Reports index build time, seconds and documents per second of the filtering, the ratio,
recall on the planted documents, and how far the two agree on the others (they
normalise words differently: datatrove with spaCy's tokenizer and its number and
diacritics folding, we with the MinHash stage's white-space words).

    .venv/bin/python benchmarks/decontamination.py --docs 20000 --planted 200
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import SHARED  # noqa: E402
from benchmarks.common import documents as real_documents  # noqa: E402
from curation.batch import conform  # noqa: E402
from curation.dedup.decontaminate import Decontaminate, DecontaminateParams  # noqa: E402

BENCHMARKS = SHARED / "benchmarks"
WORK = HERE / "_runs" / "decontamination"


def items() -> list[tuple[str, str, str]]:
    """(task, query, gold answer) of every benchmark item."""
    out = []
    for path in sorted(BENCHMARKS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.append((path.stem, row["query"], row["choices"][row["gold"]]))
    return out


def documents(count: int, planted: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``count`` texts and the indices of the ``planted`` ones."""
    texts = real_documents(count)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(count, planted, replace=False))
    pool = [item for item in items() if len(item[1].split()) >= 20]
    for at, pick in zip(chosen, rng.choice(len(pool), planted), strict=True):
        _, query, answer = pool[pick]
        text = texts[at]
        texts[at] = f"{text[: len(text) // 2]} {query.upper()}, {answer}! {text[len(text) // 2 :]}"
    return texts, chosen


def run_datatrove(texts: list[str]) -> tuple[float, float, np.ndarray]:
    from datatrove.data import Document
    from datatrove.pipeline.decont.n_grams import (
        NGramsDecontConfig,
        NGramsDecontFilter,
        NGramsDecontIndexer,
    )
    from datatrove.utils.hashing import create_hash_func
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    config = NGramsDecontConfig(n_grams=13, find_query_ngrams=True)
    folder = WORK / "datatrove-index"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    indexer = types.SimpleNamespace(  # what compute_hashes reads from its instance
        tokenizer=load_word_tokenizer("en"),
        config=config,
        hash_func=create_hash_func(config.hash_config),
    )
    by_task: dict[str, set[int]] = {}
    for task, query, answer in items():
        hashes = NGramsDecontIndexer.compute_hashes(indexer, answer, query)  # type: ignore[arg-type]
        by_task.setdefault(task, set()).update(hashes)
    for task, hashes in by_task.items():
        array = np.array(sorted(hashes), dtype=config.hash_config.np_descr)
        array.tofile(folder / f"{task}.index.hashes")
    decont = NGramsDecontFilter(str(folder), config=config)
    decont.load_index_hashes()
    index_seconds = time.perf_counter() - started
    started = time.perf_counter()
    dropped = []
    for i, text in enumerate(texts):
        result = decont.filter(Document(text=text, id=str(i)))
        dropped.append(result is not True)
    return index_seconds, time.perf_counter() - started, np.array(dropped)


def run_ours(texts: list[str], batch: int = 10_000) -> tuple[float, float, np.ndarray]:
    started = time.perf_counter()
    stage = Decontaminate(DecontaminateParams(benchmarks=[str(BENCHMARKS)]))
    stage.setup()
    index_seconds = time.perf_counter() - started
    warm = conform(pa.table({"id": ["w"], "text": [texts[0]]}))
    stage.process(warm)  # load the compiled kernels from numba's cache
    started = time.perf_counter()
    dropped = []
    for lo in range(0, len(texts), batch):
        part = texts[lo : lo + batch]
        table = conform(pa.table({"id": [str(i) for i in range(len(part))], "text": part}))
        out = stage.process(table)
        dropped.append(out["drop_reason"].is_valid().to_numpy(zero_copy_only=False))
    return index_seconds, time.perf_counter() - started, np.concatenate(dropped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--planted", type=int, default=200)
    args = parser.parse_args()
    texts, planted = documents(args.docs, args.planted)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}; "
        f"{args.docs:,} documents ({mb:.1f} MB), {args.planted} planted; "
        f"{len(items()):,} benchmark items\n"
    )
    results = {"datatrove": run_datatrove(texts), "curation": run_ours(texts)}
    base = results["datatrove"][1]
    print("| tool | index s | filter s | docs/s | vs datatrove | planted found | others dropped |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    is_planted = np.zeros(args.docs, dtype=bool)
    is_planted[planted] = True
    for name, (index_s, seconds, dropped) in results.items():
        print(
            f"| {name} | {index_s:.2f} | {seconds:.2f} | {args.docs / seconds:,.0f} | "
            f"{base / seconds:.1f}x | {dropped[is_planted].sum()}/{args.planted} | "
            f"{dropped[~is_planted].sum()} |"
        )
    theirs, ours = results["datatrove"][2], results["curation"][2]
    print(
        f"\nagreement: both drop {int((theirs & ours).sum())}, only datatrove "
        f"{int((theirs & ~ours).sum())}, only curation {int((~theirs & ours).sum())}, "
        f"neither {int((~theirs & ~ours).sum())}"
    )


if __name__ == "__main__":
    main()
