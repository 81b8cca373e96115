"""``sql_filter`` against datatrove's ``LambdaFilter``, the filter a user writes instead,
on one core, in one run.

Both decide the same conditions over the real C4 and Pile samples repeated to ``--docs``
documents: a length bound and a URL pattern (cheap per document), and a phrase anywhere
in the lowercased text (a pass over every character). datatrove calls the lambda once per
``Document`` (built beforehand, not timed); ours is one map stage over one Arrow batch,
with pyarrow on one thread.

    taskset -c 0 .venv/bin/python benchmarks/sql_filter.py --docs 100000
"""

from __future__ import annotations

import argparse

import pyarrow as pa
from common import best_of, real_documents

from curation.batch import conform
from curation.filters.sql import SqlFilter, SqlFilterParams

# each condition in SQL, and the lambda a datatrove user writes for it
CONDITIONS = {
    "length(text) > 2000 AND url LIKE '%.com/%'": lambda d: (
        len(d.text) > 2000 and ".com/" in (d.metadata["url"] or "")
    ),
    "lower(text) LIKE '%cookie%'": lambda d: "cookie" in d.text.lower(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    from datatrove.data import Document
    from datatrove.pipeline.filters import LambdaFilter

    base = real_documents()
    rows = [base[i % len(base)] for i in range(args.docs)]
    table = conform(
        pa.table(
            {
                "id": [str(i) for i in range(len(rows))],
                "text": [text for text, _ in rows],
                "url": [url for _, url in rows],
            }
        )
    )
    docs = [Document(text=t, id=str(i), metadata={"url": u}) for i, (t, u) in enumerate(rows)]
    for condition, function in CONDITIONS.items():
        stage = SqlFilter(SqlFilterParams(keep=condition))
        stage.setup()
        lambda_filter = LambdaFilter(function)
        kept: dict[str, int] = {}

        def ours(stage: SqlFilter = stage, kept: dict[str, int] = kept) -> None:
            kept["ours"] = stage.process(table)["drop_reason"].null_count

        def datatrove(check: LambdaFilter = lambda_filter, kept: dict[str, int] = kept) -> None:
            kept["datatrove"] = sum(bool(check.filter(doc)) for doc in docs)

        ours_s, theirs_s = best_of(args.repeats, ours, datatrove)
        assert kept["ours"] == kept["datatrove"], kept
        print(f"\n{len(rows):,} documents, {condition!r}: {kept['ours']:,} kept by both")
        print("| filter | seconds | docs/s | vs LambdaFilter |")
        print("|---|---:|---:|---:|")
        for name, seconds in (("datatrove LambdaFilter", theirs_s), ("sql_filter", ours_s)):
            rate = len(rows) / seconds
            print(f"| {name} | {seconds:.4f} | {rate:,.0f} | {theirs_s / seconds:.2f}x |")


if __name__ == "__main__":
    main()
