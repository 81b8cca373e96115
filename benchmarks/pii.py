"""Benchmark PII replacement: our ``pii`` stage against datatrove's PIIFormatter.

Data: the real C4 and Pile samples of ../shared/data, repeated to ``--docs`` documents,
as they are (3% of the C4 documents and 7% of the Pile ones hold an ``@``) and, for the
worst case, with an e-mail address and a public IP (all different) planted in the middle of every
document (``--planted 1``: every document goes through the patterns).

Both sides replace e-mail addresses, then public IPv4 addresses, with one replacement
each (``email@example.com``, ``22.214.171.124``), so their outputs must be identical
(datatrove cycles its replacements across documents, we within one; with one replacement
the two agree). One core (this process pinned to core 0, Arrow on one thread); best of
``--repeats`` rounds, both tools in each round.

    .venv/bin/python benchmarks/pii.py --docs 50000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import best_of, one_thread_arrow  # noqa: E402
from benchmarks.common import documents as real_documents  # noqa: E402
from curation.batch import conform  # noqa: E402
from curation.filters.pii import PIIFormatter, PIIParams, is_public_ip  # noqa: E402

EMAIL, IP = "email@example.com", "22.214.171.124"


def documents(count: int, planted: float) -> list[str]:
    """``count`` real texts; the first ``planted`` fraction of every 100 gets an address
    and an IP in its middle."""
    texts = real_documents(count)
    for i, text in enumerate(texts):
        if i % 100 < planted * 100:
            half = len(text) // 2
            address = f"jane.roe{i}@mail.example.net from 8.{i // 250 % 250}.{i % 250}.4"
            texts[i] = f"{text[:half]} write to {address} {text[half:]}"
    return texts


def run_datatrove(texts: list[str]) -> list[str]:
    from datatrove.pipeline.formatters import PIIFormatter as Reference

    formatter = Reference(email_replacement=EMAIL, ip_replacement=IP)
    return [formatter.format(text) for text in texts]


def run_ours(texts: list[str], batch: int = 10_000) -> list[str]:
    is_public_ip.cache_clear()  # each round starts as a fresh worker would
    stage = PIIFormatter(PIIParams(email_replacement=EMAIL, ip_replacement=IP))
    stage.setup()
    out: list[str] = []
    for lo in range(0, len(texts), batch):
        part = texts[lo : lo + batch]
        table = conform(pa.table({"id": [str(i) for i in range(len(part))], "text": part}))
        out += stage.process(table)["text"].to_pylist()
    return out


def measure(texts: list[str], repeats: int) -> dict[str, float | int]:
    theirs, ours = run_datatrove(texts), run_ours(texts)
    differ = sum(a != b for a, b in zip(theirs, ours, strict=True))
    changed = sum(a != b for a, b in zip(texts, ours, strict=True))
    datatrove_s, ours_s = best_of(repeats, lambda: run_datatrove(texts), lambda: run_ours(texts))
    return {"datatrove_s": datatrove_s, "ours_s": ours_s, "changed": changed, "differ": differ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    one_thread_arrow()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs (pinned to one), "
        f"Python {platform.python_version()}; {args.docs:,} documents\n"
    )
    print(
        "| documents | MB | datatrove s | curation s | docs/s (curation) | vs datatrove "
        "| documents changed | outputs that differ |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, planted in (("as they are", 0.0), ("every one with an address", 1.0)):
        texts = documents(args.docs, planted)
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        r = measure(texts, args.repeats)
        print(
            f"| {label} | {mb:.1f} | {r['datatrove_s']:.2f} | {r['ours_s']:.2f} | "
            f"{args.docs / r['ours_s']:,.0f} | {r['datatrove_s'] / r['ours_s']:.1f}x | "
            f"{r['changed']:,} | {r['differ']} |"
        )


if __name__ == "__main__":
    main()
