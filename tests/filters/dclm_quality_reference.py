"""DCLM-Baseline's Gopher quality filters, one document at a time, as DCLM runs them.

DCLM's code (mlfoundations/dclm, ``baselines/mappers/filters/content_filters.py``) is
not a package on PyPI, so this is a plain rendering of what its functions do, in the
order and with the settings of ``dclm_baseline_refinedweb.yaml``: the reference that the
tests of ``dclm_quality`` compare against, and the per-document baseline of
``benchmarks/dclm_quality.py``.
"""

from __future__ import annotations

import re

STOP_WORDS = {"the", "be", "to", "of", "and", "that", "have", "with"}


def _lines(text: str) -> list[str]:
    """DCLM's ``split_paragraphs(text, paragraph_end='\\n')``: stripped, blank ones out."""
    return [line for part in re.split("\n", text) if (line := part.strip())]


def dclm_quality_reference(text: str) -> str | None:
    """The first of DCLM's quality filters that removes the page (the stage's rule
    name), or None where the page passes them all."""
    import fasttext

    tokens = [token for token in fasttext.tokenize(text) if token[0].isalnum()]
    if not 50 <= len(tokens) <= 100_000:
        return "page_length"
    words = text.split()
    if not words or not 3 <= sum(len(w) for w in words) / len(words) <= 10:
        return "word_length"
    symbols = sum(text.count(s) for s in ["#", "...", ". . .", "\u2026"])
    if symbols / len(words) > 0.1:
        return "symbol_ratio"
    lines = _lines(text)
    bullets = sum(any(line.startswith(b) for b in ["●", "•", "*", "-"]) for line in lines)
    if bullets > 0.9 * len(lines):
        return "bullet_lines"
    ellipses = sum(any(line.endswith(e) for e in ["...", ". . .", "\u2026"]) for line in lines)
    if ellipses > 0.3 * len(lines):
        return "ellipsis_lines"
    non_alpha = sum(1 for word in words if not any(char.isalpha() for char in word))
    if non_alpha / len(words) > 0.2:
        return "non_alpha_words"
    if sum(1 for word in words if word.lower() in STOP_WORDS) < 2:
        return "stop_words"
    return None
