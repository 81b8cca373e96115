"""DCLM-Baseline's RefinedWeb line modifiers, one document at a time, as DCLM runs them.

DCLM's code (mlfoundations/dclm, ``baselines/mappers/modifiers.py``) is not a package
on PyPI, so this is a plain rendering of what its functions do, with the same Python
string methods, ``re`` patterns and fastText tokenizer: the reference that the tests of
``refinedweb_lines`` compare against, and the per-document baseline of
``benchmarks/refinedweb_lines.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

COUNTER = re.compile(
    r"^\W*\d(?:,|\.|\d)*(?:K|k|M|m|B|b)?\s+(?:likes|shares|comments|retweets|reposts|quotes"
    r"|bookmarks|upvotes|downvotes|downloads|views|followers)\W*$"
)


def dclm_words(text: str) -> int:
    """Words as DCLM's ``word_counter_enricher`` counts them."""
    import fasttext

    return sum(1 for token in fasttext.tokenize(text) if token[0].isalnum())


def dclm_reference(text: str, upper: float = 0.5, numeric: float = 0.999999) -> str | None:
    """DCLM-Baseline's modifiers from ``word_counter_enricher`` on, one document at a
    time as DCLM runs them (each modifier on the text the last one left, a page that
    becomes empty removed); the corrected text, or None where DCLM removes the page."""
    previous = dclm_words(text)

    def by_line(doc: str, keep: Callable[[str], bool], strip: bool = True) -> str:
        out = "\n".join(line for line in doc.split("\n") if keep(line))
        return out.strip() if strip else out

    doc = by_line(text, lambda s: not s or sum(c.isupper() for c in s) / len(s) <= upper)
    doc = doc and by_line(doc, lambda s: not s or sum(c.isdigit() for c in s) / len(s) <= numeric)
    doc = doc and by_line(doc, lambda s: not COUNTER.search(s.lower()))
    doc = doc and by_line(doc, lambda s: not s or len(s.split()) >= 2, strip=False)
    for pattern in (r"\s?(?:items in cart)", r"\s?(?:read more...)$", r"^(?:sign-in)\s?"):
        if not doc:
            break
        compiled = re.compile(pattern, re.I)
        lines = []
        for line in doc.split("\n"):
            if len(line.split()) <= 10:
                edited = compiled.sub("", line)
                if line and (not edited or edited.isspace()):
                    continue
                line = edited
            lines.append(line)
        doc = "\n".join(lines).strip()
    if not doc or previous == 0:
        return None
    return doc if (previous - dclm_words(doc)) / previous <= 0.05 else None
