"""DCLM-Baseline's Gopher repetition rules: our ``dclm_repetition`` against DCLM's
per-document filters, on one core, in one run; datatrove's rendering (our
``gopher_repetition``) alongside, with how often its decisions differ from DCLM's.

DCLM runs ``massive_web_repetition_filters`` one page at a time in Python
(mlfoundations/dclm, ``content_filters.py``; not a package on PyPI), with ``uniseg``'s
word breaker. The baselines are those checks rendered per document
(``tests/filters/dclm_repetition_reference.py``): with ``uniseg``'s words, as DCLM runs
them, and with the ``regex`` module's word boundaries (the same words, far faster), so
that the gain of the stage itself shows apart from the word breaker's. Data: the real C4
and Pile samples of ../shared/data, repeated to ``--docs`` documents (2,000 by default:
``uniseg`` takes about 25 s for the 1,000 C4 documents).

    taskset -c 0 .venv/bin/python benchmarks/dclm_repetition.py --docs 2000 --repeats 1
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pyarrow as pa
from common import best_of, kept_flags, race_arguments, race_texts, rate_table

from curation.filters.dclm import DclmRepetition, DclmRepetitionParams, dclm_words
from curation.filters.repetition import GopherRepetition, GopherRepetitionParams

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.filters.dclm_repetition_reference import dclm_repetition_reference


def main() -> None:
    args = race_arguments(__doc__.splitlines()[0])
    texts, megabytes, batches = race_texts(args)
    ours_stage = DclmRepetition(DclmRepetitionParams())
    gopher = GopherRepetition(GopherRepetitionParams())
    results: dict[str, list] = {}

    def ours() -> None:
        results["ours"] = kept_flags(ours_stage, batches)

    def dclm() -> None:
        results["dclm"] = [dclm_repetition_reference(text) is None for text in texts]

    def dclm_regex_words() -> None:
        results["regex"] = [dclm_repetition_reference(text, dclm_words) is None for text in texts]

    def datatrove_rules() -> None:
        results["gopher"] = kept_flags(gopher, batches)

    kept_flags(
        ours_stage, batches
    )  # compiled before the clock starts, as gopher_repetition's kernels are
    seconds = best_of(args.repeats, ours, dclm, dclm_regex_words, datatrove_rules)
    same = sum(a == b for a, b in zip(results["ours"], results["dclm"], strict=True))
    gopher_same = sum(a == b for a, b in zip(results["gopher"], results["dclm"], strict=True))
    print(f"{platform.machine()}, {platform.python_version()}, pyarrow {pa.__version__}")
    print(f"{len(texts):,} documents, {megabytes:.1f} MB; best of {args.repeats}")
    print(
        f"DCLM keeps {sum(results['dclm']):,}; dclm_repetition decides as DCLM for "
        f"{same:,}, gopher_repetition (datatrove's rules) for {gopher_same:,}"
    )
    names = [  # in the order best_of ran them
        "dclm_repetition",
        "DCLM, per document (uniseg words)",
        "DCLM's checks, per document, with regex words",
        "gopher_repetition (datatrove's rules, other decisions)",
    ]
    timed = dict(zip(names, seconds, strict=True))
    shown = [names[1], names[0], names[2], names[3]]  # DCLM's own first
    rate_table(
        "implementation",
        {name: timed[name] for name in shown},
        names[1],
        len(texts),
        megabytes,
    )


if __name__ == "__main__":
    main()
