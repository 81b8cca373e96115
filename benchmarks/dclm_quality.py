"""DCLM-Baseline's Gopher quality rules: our ``dclm_quality`` against DCLM's
per-document filters, on one core, in one run; datatrove's rendering of the same rules
(our ``gopher_quality``) alongside, with how often its decisions differ from DCLM's.

DCLM runs its quality filters one page at a time in Python (mlfoundations/dclm,
``baselines/mappers/filters/content_filters.py``; not a package on PyPI). The baseline
here is those filters rendered per document with the same string methods and fastText
tokenizer (``tests/filters/dclm_quality_reference.py``, which the tests check our stage
against). Data: the real C4 and Pile samples of ../shared/data, repeated to ``--docs``
documents. Ours runs as a map stage over Arrow batches of ``--batch-rows`` with pyarrow
on one thread.

    taskset -c 0 .venv/bin/python benchmarks/dclm_quality.py --docs 10000
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pyarrow as pa
from common import best_of, kept_flags, race_arguments, race_texts, rate_table

from curation.filters.dclm import DclmQuality, DclmQualityParams
from curation.filters.gopher import GopherQuality, GopherQualityParams

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.filters.dclm_quality_reference import dclm_quality_reference


def main() -> None:
    args = race_arguments(__doc__.splitlines()[0])
    texts, megabytes, batches = race_texts(args)
    ours_stage = DclmQuality(DclmQualityParams())
    ours_stage.setup()
    gopher = GopherQuality(GopherQualityParams())
    gopher.setup()
    results: dict[str, list] = {}

    def ours() -> None:
        results["ours"] = kept_flags(ours_stage, batches)

    def dclm() -> None:
        results["dclm"] = [dclm_quality_reference(text) is None for text in texts]

    def datatrove_rules() -> None:
        results["gopher"] = kept_flags(gopher, batches)

    ours_s, dclm_s, gopher_s = best_of(args.repeats, ours, dclm, datatrove_rules)
    same = sum(a == b for a, b in zip(results["ours"], results["dclm"], strict=True))
    gopher_same = sum(a == b for a, b in zip(results["gopher"], results["dclm"], strict=True))
    print(f"{platform.machine()}, {platform.python_version()}, pyarrow {pa.__version__}")
    print(f"{len(texts):,} documents, {megabytes:.1f} MB; best of {args.repeats}")
    print(
        f"DCLM keeps {sum(results['dclm']):,}; dclm_quality decides as DCLM for {same:,}, "
        f"gopher_quality (datatrove's rules) for {gopher_same:,}"
    )
    rate_table(
        "implementation",
        {
            "DCLM, per document": dclm_s,
            "dclm_quality": ours_s,
            "gopher_quality (datatrove's rules, other decisions)": gopher_s,
        },
        "DCLM, per document",
        len(texts),
        megabytes,
    )


if __name__ == "__main__":
    main()
