"""``url_removal``: DCLM-Baseline's removal of URLs and IPv4 addresses from the text.

DCLM-Baseline (Li et al. 2024, ``dclm_baseline_refinedweb.yaml``) runs its
``url_removal_modifier`` right after the URL filters, before language id. Per document,
in this order:

1. when the text *begins* with the letters of a top-level domain, in any case (``co``,
   ``in``, ``th``: most English pages do), every URL-like span is removed: up to ten
   whitespace characters before it, an optional ``http://``, ``https://`` or ``ftp://``,
   a run of domain characters, a dot, a top-level domain of the list (as written:
   lower case) that ends a word, and the path characters after it;
2. every dotted quad of one to three digits (``10.0.0.1``, and version numbers such as
   ``1.2.3.4``) is removed, with up to ten whitespace characters before it, an optional
   scheme and the path characters after it;
3. a document left empty is dropped (``url_removal:empty``); dropped documents keep
   their text, for inspection.

The whitespace removed before a match can hold line breaks, so a URL alone on its line
joins the lines around it, as in DCLM. ``require_tld_start: false`` removes URLs from
every document, not only those that begin with a TLD's letters (DCLM's check, which is
``re.match`` where ``re.search`` was surely meant). ``remove_ips: false`` leaves the
dotted quads alone.

The list of top-level domains: ``tlds_file`` (one a line; blank lines and lines
starting with ``#`` or ``//`` are skipped; entries are lower-cased), or by default the
last label of every ICANN entry of the public suffix list that ``tldextract`` ships
(about 1,450; DCLM shipped its own copy of IANA's list, which
``tlds_file`` takes as it is). DCLM escapes each name twice, so that a name with a
hyphen (IANA's ``xn--`` names) never matches there; here it does. Neither list holds
one. ``url_removal_urls`` and ``url_removal_ips`` count the spans removed from each
document.

Speed: the patterns are DCLM's, run with Python's ``re`` so that ``\\s``, ``\\b`` and
the order of alternatives mean what they mean in DCLM. They run only where a match can
be: one RE2 scan over the batch finds the documents with a domain character, a dot and
a listed TLD (or a digit, a dot and two more dotted groups of digits), which every match
holds; in those, a compiled pass over the bytes finds the tokens with a dot followed by
a character a TLD begins with, and the URL pattern searches only those tokens and the
whitespace before them. ``tests/filters/test_url_removal.py`` checks the texts against
DCLM's modifier on real and generated documents.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import ClassVar

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curation.batch import TEXT, with_drop_reason
from curation.filters.text import replace_rows, to_numpy
from curation.stage import MapStage, StageParams, register
from curation.utf8 import code_point, is_unicode_space, string_buffers

_DOMAIN = r"[-a-zA-Z0-9@:%._\+~#=]"  # a character of the part before the TLD
_PATH = r"[-a-zA-Z0-9()@:%_\+.~#?&//=]"  # a character of the part after it
# necessary for an IPv4 match: a digit, a dot, two groups of 1-3 digits and dots, a digit
_IPV4_NEEDS = r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]"
IPV4_PATTERN = (
    r"\s{0,10}\b((https?|ftp)://)?(?:[0-2]?[0-9]{1,2}\.){3}[0-2]?[0-9]{1,2}" + _PATH + "*"
)


class UrlRemovalParams(StageParams):
    file_params: ClassVar[tuple[str, ...]] = ("tlds_file",)
    tlds_file: str | None = Field(
        None,
        description="top-level domains, one a line; null: the public suffix list's "
        "(tldextract's copy)",
    )
    require_tld_start: bool = Field(
        True,
        description="as DCLM: remove URLs only from texts that begin with a TLD's letters "
        "(any case); false: from every text",
    )
    remove_ips: bool = Field(True, description="remove dotted quads of digits (IPv4)")

    @field_validator("tlds_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None:
            if not Path(value).is_file():
                raise ValueError(f"TLD list {value!r} does not exist")
            read_tlds(value)  # an empty list is an error now, not on the workers
        return value


def read_tlds(path: str) -> tuple[str, ...]:
    """The top-level domains of a list file, lower-cased, in the file's order, each once;
    blank lines and ``#`` or ``//`` comments skipped. Raises ValueError when none."""
    lines = (line.strip() for line in Path(path).read_text("utf-8").splitlines())
    entries = (line.lstrip(".").lower() for line in lines if not line.startswith(("#", "//")))
    tlds = tuple(dict.fromkeys(entry for entry in entries if entry))
    if not tlds:
        raise ValueError(f"TLD list {path!r} holds no top-level domain")
    return tlds


@cache
def public_suffix_tlds() -> tuple[str, ...]:
    """The top-level domains of the ICANN section of the public suffix list that
    ``tldextract`` ships (the last label of each entry), sorted."""
    import tldextract

    snapshot = Path(tldextract.__file__).parent / ".tld_set_snapshot"
    text = snapshot.read_text("utf-8")
    icann = text.split("===BEGIN ICANN DOMAINS===")[1].split("===END ICANN DOMAINS===")[0]
    labels = set()
    for line in icann.splitlines():
        line = line.strip()
        if line and not line.startswith("//"):
            labels.add(line.rsplit(".", 1)[-1].lstrip("!*"))
    return tuple(sorted(labels))


def trie_pattern(words: tuple[str, ...]) -> str:
    """A regular expression matching exactly ``words``, factored by common prefixes
    (``co(?:m(?:pany)?)?``), which Python's ``re`` tries far faster than a flat
    alternation; as in the ``retrie`` pattern DCLM builds, the longer word is tried
    first where one word begins another."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict) -> str:
        ends = "" in node
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return f"(?:{body})?" if len(branches) == 1 else body + "?"
        return body

    return render(trie)


class _Patterns:
    """The compiled patterns for one TLD list."""

    def __init__(self, tlds: tuple[str, ...]) -> None:
        tld = trie_pattern(tlds)
        self.starts = re.compile(tld, re.IGNORECASE)
        self.url = re.compile(
            rf"\s{{0,10}}(?:((https?|ftp)://))?{_DOMAIN}{{1,256}}\.({tld})\b({_PATH}*)"
        )
        self.ipv4 = re.compile(IPV4_PATTERN)
        # RE2: a domain character, a dot and a TLD (no word end), found in every URL match
        self.url_needs = _DOMAIN + r"\.(?:" + "|".join(re.escape(t) for t in tlds) + ")"
        # the ASCII characters a TLD begins with (any non-ASCII one may begin one)
        self.first = np.zeros(128, np.bool_)
        self.first[[ord(t[0]) for t in tlds if ord(t[0]) < 128]] = True


@register
class UrlRemoval(MapStage):
    """Removes URLs and dotted quads from ``text`` as DCLM-Baseline does; drops documents
    left empty. Adds ``url_removal_urls`` and ``url_removal_ips`` (int64)."""

    name = "url_removal"
    help = "remove URLs and IPv4 addresses from the text (DCLM-Baseline's url_removal_modifier)"
    Params = UrlRemovalParams
    params: UrlRemovalParams

    def setup(self) -> None:
        self.tlds = self._tlds()
        self.patterns = _Patterns(self.tlds)

    def _tlds(self) -> tuple[str, ...]:
        path = self.params.tlds_file
        return public_suffix_tlds() if path is None else read_tlds(path)

    def versions(self) -> dict[str, str]:
        listed = "\n".join(self._tlds()).encode()
        return {"tlds_sha256": hashlib.sha256(listed).hexdigest()}

    def process(self, table: pa.Table) -> pa.Table:
        text = table[TEXT]
        n = table.num_rows
        urls = np.zeros(n, np.int64)
        ips = np.zeros(n, np.int64)
        new_text = self._remove(text, self.patterns.url_needs, urls, self._urls)
        if self.params.remove_ips:
            new_text = self._remove(new_text, _IPV4_NEEDS, ips, self._ips)
        empty = pc.equal(pc.binary_length(new_text), 0)
        new_text = pc.if_else(empty, text, new_text)  # dropped ones keep their text
        table = table.set_column(table.column_names.index(TEXT), TEXT, new_text)
        table = table.append_column("url_removal_urls", pa.array(urls))
        table = table.append_column("url_removal_ips", pa.array(ips))
        return with_drop_reason(table, empty, self.reason("empty"))

    def _urls(self, candidates: pa.Array) -> list[tuple[str, int]]:
        """Each candidate's text without its URLs, and how many went. The pattern runs
        only over the tokens (whitespace-free runs, with the whitespace before them) that
        hold a dot followed by a character a TLD begins with: a match is at most ten
        whitespace characters and then characters of one token, and it ends where the
        token does or before, so these are the matches a search of the whole text finds."""
        texts = candidates.to_pylist()
        results = [(text, 0) for text in texts]
        rows, starts, ends = _token_windows(*string_buffers(candidates), self.patterns.first)
        bounds = np.searchsorted(rows, np.arange(len(texts) + 1))
        url, check = self.patterns.url, self.params.require_tld_start
        for k, text in enumerate(texts):
            lo, hi = bounds[k], bounds[k + 1]
            if lo == hi or (check and not self.patterns.starts.match(text)):
                continue
            pieces, done = [], 0
            for start, end in zip(starts[lo:hi].tolist(), ends[lo:hi].tolist(), strict=True):
                for match in url.finditer(text, start, end):
                    pieces.append(text[done : match.start()])
                    done = match.end()
            if pieces:
                pieces.append(text[done:])
                results[k] = ("".join(pieces), len(pieces) - 1)
        return results

    def _ips(self, candidates: pa.Array) -> list[tuple[str, int]]:
        return [self.patterns.ipv4.subn("", text) for text in candidates.to_pylist()]

    @staticmethod
    def _remove(
        text: pa.ChunkedArray,
        needs: str,
        counts: np.ndarray,
        remove: Callable[[pa.Array], list[tuple[str, int]]],
    ) -> pa.ChunkedArray:
        """``text`` with ``remove`` (texts -> new texts and spans removed) applied to the
        rows that hold ``needs``; the spans counted into ``counts``."""
        candidate = to_numpy(pc.match_substring_regex(text, needs), bool)
        rows = np.flatnonzero(candidate)
        if len(rows) == 0:
            return text
        changed = {}
        removed = remove(text.take(pa.array(rows)).combine_chunks())
        for row, (value, count) in zip(rows.tolist(), removed, strict=True):
            counts[row] = count
            if count:
                changed[row] = value
        if not changed:
            return text
        return pa.chunked_array([replace_rows(text, list(changed), list(changed.values()))])


@numba.njit(cache=True, nogil=True)
def _token_windows(
    data: np.ndarray, offsets: np.ndarray, first: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The tokens of each row (maximal runs of characters that are not ``str.isspace``)
    that hold a dot followed by a non-ASCII character or an ASCII one marked in
    ``first``: their row, and as character offsets the start of the whitespace before
    them (or of the token, where none is) and their end. Rows in order."""
    n = len(offsets) - 1
    total = 0
    rows = np.empty(0, np.int64)
    starts = np.empty(0, np.int64)
    ends = np.empty(0, np.int64)
    for fill in range(2):
        if fill:
            rows = np.empty(total, np.int64)
            starts = np.empty(total, np.int64)
            ends = np.empty(total, np.int64)
        k = 0
        for row in range(n):
            i, end = offsets[row], offsets[row + 1]
            chars = 0
            space_start = 0  # where the whitespace before the current token began
            in_token = False
            hit = False
            after_dot = False
            while i <= end:
                if i < end:
                    c, width = code_point(data, i)
                    space = is_unicode_space(c)
                else:  # the row's end closes its last token
                    c, width, space = 0, 1, True
                if space:
                    if in_token:
                        if hit:
                            if fill:
                                rows[k] = row
                                starts[k] = space_start
                                ends[k] = chars
                            k += 1
                        in_token = False
                        hit = False
                        space_start = chars
                else:
                    in_token = True
                    if after_dot and (c >= 128 or first[c]):
                        hit = True
                after_dot = c == 0x2E
                i += width
                chars += 1
        total = k
    return rows, starts, ends
