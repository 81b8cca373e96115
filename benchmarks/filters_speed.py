"""Heuristic filters, line formatters and document statistics: ours against datatrove's,
on one core each, in one run.

Data: the real C4 and Pile samples of ../shared/data, repeated to ``--docs`` documents.
For each filter pair (datatrove class, our stage) the same parameters (the defaults) run
over the same texts: datatrove's ``filter`` per ``Document``, ours as one map stage over
Arrow batches of ``--batch-rows``. Both run in this process with pyarrow limited to one
thread. The limit is one pyarrow pass that only measures string lengths.

    .venv/bin/python benchmarks/filters_speed.py --docs 10000
    # the cheap ones, best of 5 (each side's time is a few hundredths of a second)
    .venv/bin/python benchmarks/filters_speed.py --repeats 5 --only c4_paragraphs,symbol_lines
    .venv/bin/python benchmarks/filters_speed.py --repeats 5 \
        --only doc_stats,line_stats,paragraph_stats,word_stats,sentence_stats
"""

from __future__ import annotations

import argparse
import os
import platform
import time

# polars (the stats stages' counting) on one thread too; set before it is imported
os.environ.setdefault("POLARS_MAX_THREADS", "1")

import pyarrow as pa
import pyarrow.compute as pc
from common import documents, text_batches

from curation.stage import registry


def pairs() -> list[tuple[str, object]]:
    """(our stage, datatrove filter or formatter) for every one both sides have."""
    from datatrove.pipeline import filters, formatters, stats

    known = {
        "gopher_quality": filters.GopherQualityFilter,
        "gopher_repetition": filters.GopherRepetitionFilter,
        "c4_quality": filters.C4QualityFilter,
        "fineweb_quality": filters.FineWebQualityFilter,
        "c4_paragraphs": filters.C4ParagraphFilter,
        "symbol_lines": formatters.SymbolLinesFormatter,
        # its statistics of each document (what it adds to the metadata), not the files
        # of sums it writes at the end
        "doc_stats": lambda: stats.DocStats(output_folder="/nonexistent"),
        "line_stats": lambda: stats.LineStats(output_folder="/nonexistent"),
        "paragraph_stats": lambda: stats.ParagraphStats(output_folder="/nonexistent"),
        "word_stats": lambda: stats.WordStats(output_folder="/nonexistent"),
        "sentence_stats": lambda: stats.SentenceStats(output_folder="/nonexistent"),
    }
    ours = registry()
    return [(name, make()) for name, make in known.items() if name in ours]


def time_datatrove(reference: object, texts: list[str]) -> float:
    from datatrove.data import Document

    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    started = time.perf_counter()
    if hasattr(reference, "extract_stats"):  # statistics: each document's
        for doc in docs:
            reference.extract_stats(doc)
    elif hasattr(reference, "format"):  # a formatter: the text it makes of each document
        for doc in docs:
            doc.text = reference.format(doc.text)
    else:
        for doc in docs:
            reference.filter(doc)  # type: ignore[attr-defined]
    return time.perf_counter() - started


def time_ours(stage_name: str, texts: list[str], batch_rows: int) -> float:
    cls = registry()[stage_name]
    stage = cls(cls.Params())
    stage.setup()
    stage.process(text_batches(texts[:10], 10)[0])  # load the compiled kernels first
    batches = text_batches(texts, batch_rows)
    started = time.perf_counter()
    for batch in batches:
        stage.process(batch)
    return time.perf_counter() - started


def time_limit(texts: list[str], batch_rows: int) -> float:
    arrays = [
        pa.array(texts[i : i + batch_rows], pa.large_string())
        for i in range(0, len(texts), batch_rows)
    ]
    started = time.perf_counter()
    for array in arrays:
        pc.sum(pc.utf8_length(array))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--only", help="these filters alone (our stage names, comma-separated)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs each")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # and anything else: one core
    texts = documents(args.docs)
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, one core; "
        f"{args.docs:,} documents, {megabytes:.1f} MB\n"
    )
    print(
        "| filter | datatrove s | ours s | datatrove docs/s | ours docs/s | ours MB/s | speed-up |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    total_theirs = total_ours = 0.0
    for name, reference in pairs():
        if only is not None and name not in only:
            continue
        theirs = min(time_datatrove(reference, texts) for _ in range(args.repeats))
        ours = min(time_ours(name, texts, args.batch_rows) for _ in range(args.repeats))
        total_theirs += theirs
        total_ours += ours
        print(
            f"| {name} | {theirs:.2f} | {ours:.3f} | {args.docs / theirs:,.0f} | "
            f"{args.docs / ours:,.0f} | {megabytes / ours:,.1f} | {theirs / ours:.1f}x |"
        )
    limit = time_limit(texts, args.batch_rows)
    print(
        f"| chain | {total_theirs:.2f} | {total_ours:.3f} | {args.docs / total_theirs:,.0f} | "
        f"{args.docs / total_ours:,.0f} | {megabytes / total_ours:,.1f} | "
        f"{total_theirs / total_ours:.1f}x |"
    )
    print(
        f"\nlimit (one pyarrow pass of utf8_length): {limit:.4f} s, "
        f"{megabytes / limit:,.0f} MB/s; our chain takes {total_ours / limit:,.0f}x the limit"
    )


if __name__ == "__main__":
    main()
