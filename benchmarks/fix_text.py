"""``fix_text`` against datatrove's ``FTFYFormatter``, on one core, in one run.

Both call ftfy with datatrove's settings over the real C4 and Pile samples repeated to
``--docs`` documents, a tenth of them damaged as a page decoded with Windows-1252
instead of UTF-8 shows it. datatrove formats each ``Document``'s text; ours is one map
stage over Arrow batches of ``--batch-rows``, which passes over the documents no ftfy
fix can change (printable ASCII without ``&``).

    taskset -c 0 .venv/bin/python benchmarks/fix_text.py --docs 10000
"""

from __future__ import annotations

import re

from common import best_of, documents, race_arguments, rate_table, text_batches

from curation.filters.fix_text import UNTOUCHED, FixText, FixTextParams


def main() -> None:
    args = race_arguments(__doc__.splitlines()[0])
    from datatrove.pipeline.formatters import FTFYFormatter

    texts = documents(args.docs)
    texts = [
        t.encode("utf-8").decode("cp1252", errors="replace") if i % 10 == 0 else t
        for i, t in enumerate(texts)
    ]
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    batches = text_batches(texts, args.batch_rows)
    stage = FixText(FixTextParams())
    stage.setup()
    formatter = FTFYFormatter()
    out: dict[str, list[str]] = {}

    def ours() -> None:
        out["ours"] = [t for b in batches for t in stage.process(b)["text"].to_pylist()]

    def datatrove() -> None:
        out["datatrove"] = [formatter.format(t) for t in texts]

    ours_s, theirs_s = best_of(args.repeats, ours, datatrove)
    assert out["ours"] == out["datatrove"]
    changed = sum(a != b for a, b in zip(out["ours"], texts, strict=True))
    plain = sum(bool(re.match(UNTOUCHED, t)) for t in texts)
    print(f"{len(texts):,} documents, {megabytes:.1f} MB; {changed:,} changed, same text")
    print(f"passed over (printable ASCII, tab and newline without '&'): {plain:,}")
    rate_table(
        "formatter",
        {"datatrove FTFYFormatter": theirs_s, "fix_text": ours_s},
        "datatrove FTFYFormatter",
        len(texts),
        megabytes,
    )


if __name__ == "__main__":
    main()
