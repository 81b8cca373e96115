"""DCLM-Baseline's ``url_removal_modifier``, one document at a time, as DCLM runs it.

DCLM's code (mlfoundations/dclm, ``baselines/mappers/modifiers.py``) is not a package
on PyPI, so this is a plain rendering of what the modifier does: the TLD check is the
``retrie`` Blacklist pattern DCLM builds (case-insensitive, matched at the start of the
page), and the URL and IPv4 patterns are DCLM's, run with Python's ``re``. It is the
reference that the tests of ``url_removal`` compare against, and the per-document
baseline of ``benchmarks/url_removal.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable


def dclm_url_removal(
    tlds: Iterable[str], start_check: bool = True, ips: bool = True
) -> Callable[[str], str | None]:
    """DCLM's modifier for this TLD list: the page's new text, or None where DCLM
    removes the page (nothing left). ``start_check=False`` removes URLs from every page
    and ``ips=False`` leaves IPv4 addresses, as the stage's switches do."""
    from retrie.retrie import Blacklist

    tlds_regex = Blacklist([re.escape(tld) for tld in tlds], match_substrings=True).compiled
    url_regex = re.compile(
        r"\s{0,10}(?:((https?|ftp)://))?[-a-zA-Z0-9@:%._\+~#=]{1,256}\.("
        + tlds_regex.pattern
        + r")\b([-a-zA-Z0-9()@:%_\+.~#?&//=]*)"
    )
    ipv4_regex = re.compile(
        r"\s{0,10}\b((https?|ftp)://)?(?:[0-2]?[0-9]{1,2}\.){3}[0-2]?[0-9]{1,2}"
        r"[-a-zA-Z0-9()@:%_\+.~#?&//=]*"
    )

    def modify(text: str) -> str | None:
        if tlds_regex.match(text) or not start_check:
            text = url_regex.sub("", text)
        if ips:
            text = ipv4_regex.sub("", text)
        return text or None

    return modify
