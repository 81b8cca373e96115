"""DCLM-Baseline's Gopher repetition filters, one document at a time, as DCLM runs them.

A plain rendering of ``massive_web_repetition_filters`` and ``repetition_filter``
(mlfoundations/dclm, ``baselines/mappers/filters/content_filters.py``; not a package on
PyPI), with the word splitter DCLM uses, ``uniseg``'s ``words`` (its
``split_words(model='uniseg', ignore_punctuation=True)``): the reference that the tests
of ``dclm_repetition`` compare against, and the baseline of ``benchmarks/dclm_quality.py``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable


def uniseg_words(text: str) -> list[str]:
    from uniseg.wordbreak import words

    return [word for word in words(text) if word[0].isalnum()]


def _passes(
    text: str,
    granularity: str | int,
    max_fraction: float,
    cache: dict,
    count_characters: bool = True,
    split_words: Callable[[str], list[str]] = uniseg_words,
) -> bool:
    if text == "":
        return False
    if isinstance(granularity, str):
        end = "\n\n" if granularity == "paragraph" else "\n"
        segments = [s for part in re.split(end, text) if (s := part.strip())]
        if len(segments) == 1:
            return True
        if not segments:
            return False
        counts = Counter(segments)
        if count_characters:
            repeated = sum(len(s) * c for s, c in counts.items() if c > 1)
            fraction = repeated / sum(len(s) for s in segments)
        else:
            fraction = sum(c for c in counts.values() if c > 1) / len(segments)
        return fraction <= max_fraction
    if "words" not in cache:
        cache["words"] = split_words(text)
        cache["chars"] = sum(len(w) for w in cache["words"])
    words, total = cache["words"], cache["chars"]
    n_grams = list(zip(*(words[i:] for i in range(granularity)), strict=False))
    if not n_grams:
        return True
    counts = Counter(n_grams)
    ordered = counts.most_common()
    first, most = ordered[0]
    if most == 1:
        return True
    if granularity in (2, 3, 4):
        longest = sum(len(w) for w in first)
        for gram, count in ordered:
            if count != most:
                break
            longest = max(longest, sum(len(w) for w in gram))
        fraction = longest * most / total
    else:
        covered: set[int] = set()
        for index, gram in enumerate(n_grams):
            if counts[gram] > 1:
                covered.update(range(index, index + granularity))
        fraction = sum(len(words[i]) for i in covered) / total
    return fraction <= max_fraction


def dclm_repetition_reference(
    text: str, split_words: Callable[[str], list[str]] = uniseg_words
) -> str | None:
    """The first of DCLM's repetition checks that removes the page (the stage's rule
    name), or None where it passes them all."""
    cache: dict = {}
    if text == "" or not text.strip():
        return "empty"
    checks: list[tuple[str, str | int, float, bool]] = [
        ("dup_line_frac", "line", 0.3, False),
        ("dup_para_frac", "paragraph", 0.3, False),
        ("dup_line_char_frac", "line", 0.2, True),
        ("dup_para_char_frac", "paragraph", 0.2, True),
    ]
    checks += [(f"top_{n}_gram", n, f, True) for n, f in [(2, 0.2), (3, 0.18), (4, 0.16)]]
    checks += [
        (f"dup_{n}_gram", n, f, True)
        for n, f in [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]
    ]
    for name, granularity, limit, chars in checks:
        if not _passes(text, granularity, limit, cache, chars, split_words):
            return name
    return None
