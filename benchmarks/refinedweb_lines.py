"""RefinedWeb's line corrections: our ``refinedweb_lines`` against DCLM's per-document
modifiers, on one core, in one run.

DCLM-Baseline runs its line modifiers one page at a time in Python (mlfoundations/dclm,
``baselines/mappers/modifiers.py``; not a package on PyPI). The baseline here is that
same chain rendered per document with the same string methods, ``re`` patterns and
fastText tokenizer (``tests/filters/refinedweb_reference.py``, which the tests check our
stage against). Data: the real C4 and Pile samples of ../shared/data, repeated to
``--docs`` documents. Ours runs as one map stage over Arrow batches of ``--batch-rows``
with pyarrow on one thread.

    .venv/bin/python benchmarks/refinedweb_lines.py --docs 10000
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pyarrow as pa
from common import best_of, kept_texts, race_arguments, race_texts, rate_table

from curation.filters.refinedweb import RefinedWebLines, RefinedWebLinesParams

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.filters.refinedweb_reference import dclm_reference


def main() -> None:
    args = race_arguments(__doc__.splitlines()[0])
    texts, megabytes, batches = race_texts(args)
    stage = RefinedWebLines(RefinedWebLinesParams())
    stage.setup()
    results: dict[str, list] = {}

    def ours() -> None:
        results["ours"] = kept_texts([stage.process(batch) for batch in batches])

    def dclm() -> None:
        results["dclm"] = [dclm_reference(text) for text in texts]

    ours_s, dclm_s = best_of(args.repeats, ours, dclm)
    same = sum(a == b for a, b in zip(results["ours"], results["dclm"], strict=True))
    dropped = sum(a is None for a in results["ours"])
    print(f"{platform.machine()}, {platform.python_version()}, pyarrow {pa.__version__}")
    print(f"{len(texts):,} documents, {megabytes:.1f} MB; best of {args.repeats}")
    print(f"same text and decision: {same:,} of {len(texts):,}; dropped {dropped:,}")
    rate_table(
        "implementation",
        {"DCLM, per document": dclm_s, "refinedweb_lines": ours_s},
        "DCLM, per document",
        len(texts),
        megabytes,
    )


if __name__ == "__main__":
    main()
