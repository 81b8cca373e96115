"""DCLM-Baseline's URL and newline clean-up: our ``url_removal`` and ``regex_replace``
against DCLM's per-document modifiers, on one core, in one run.

DCLM-Baseline runs ``url_removal_modifier`` and ``newline_removal_modifier`` one page at
a time in Python (mlfoundations/dclm, ``baselines/mappers/modifiers.py``; not a package
on PyPI). The baselines here are those modifiers rendered per document with the same
``retrie`` TLD pattern and ``re`` patterns (``tests/filters/url_removal_reference.py``,
which the tests check our stage against) and the same ``re.sub`` for newlines, with the
TLD list our stage uses by default. Data: the real C4 and Pile samples of
../shared/data, repeated to ``--docs`` documents. Ours runs as map stages over Arrow
batches of ``--batch-rows`` with pyarrow on one thread.

    .venv/bin/python benchmarks/url_removal.py --docs 10000
"""

from __future__ import annotations

import platform
import re
import sys
from pathlib import Path

import pyarrow as pa
from common import best_of, kept_texts, race_arguments, race_texts, rate_table

from curation.filters.replace import RegexReplace, RegexReplaceParams
from curation.filters.url_removal import UrlRemoval, UrlRemovalParams, public_suffix_tlds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.filters.url_removal_reference import dclm_url_removal


def main() -> None:
    args = race_arguments(__doc__.splitlines()[0])
    texts, megabytes, batches = race_texts(args)
    urls = UrlRemoval(UrlRemovalParams())
    urls.setup()
    newlines = RegexReplace(
        RegexReplaceParams(rules=[{"pattern": r"\n{3,}", "replacement": "\n\n"}])  # type: ignore[list-item]
    )
    reference = dclm_url_removal(public_suffix_tlds())
    newline_pattern = re.compile(r"\n{3,}")
    results: dict[str, list] = {}

    def ours_urls() -> None:
        results["ours_urls"] = kept_texts([urls.process(batch) for batch in batches])

    def dclm_urls() -> None:
        results["dclm_urls"] = [reference(text) for text in texts]

    def ours_newlines() -> None:
        results["ours_newlines"] = kept_texts([newlines.process(batch) for batch in batches])

    def dclm_newlines() -> None:
        results["dclm_newlines"] = [newline_pattern.sub("\n\n", text) for text in texts]

    ours_s, dclm_s, ours_n, dclm_n = best_of(
        args.repeats, ours_urls, dclm_urls, ours_newlines, dclm_newlines
    )
    same_urls = sum(a == b for a, b in zip(results["ours_urls"], results["dclm_urls"], strict=True))
    changed = sum(a != b for a, b in zip(results["ours_urls"], texts, strict=True))
    same_newlines = results["ours_newlines"] == results["dclm_newlines"]
    print(f"{platform.machine()}, {platform.python_version()}, pyarrow {pa.__version__}")
    print(f"{len(texts):,} documents, {megabytes:.1f} MB; best of {args.repeats}")
    print(f"URLs: same text and decision {same_urls:,} of {len(texts):,}; changed {changed:,}")
    print(f"newlines: all the same {same_newlines}")
    rate_table(
        "implementation",
        {"DCLM url_removal_modifier, per document": dclm_s, "url_removal": ours_s},
        "DCLM url_removal_modifier, per document",
        len(texts),
        megabytes,
    )
    rate_table(
        "implementation",
        {"DCLM newline_removal_modifier, per document": dclm_n, "regex_replace": ours_n},
        "DCLM newline_removal_modifier, per document",
        len(texts),
        megabytes,
    )


if __name__ == "__main__":
    main()
