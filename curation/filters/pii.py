"""``pii``: replace e-mail addresses and public IP addresses, as datatrove's PIIFormatter.

FineWeb's last step. The stage rewrites ``text`` and drops nothing; it adds
``pii_emails`` and ``pii_ips``, the number of addresses it replaced in each document
(a column only for the kinds it replaces).

What is replaced is exactly what datatrove's ``PIIFormatter`` replaces, with its
patterns and in its order: e-mail addresses first (an RFC 5322-like pattern, IP
literals in brackets included), then, in the result, dotted IPv4 addresses that Python's
``ipaddress`` calls global (``only_remove_public_ips``, the default; private, loopback,
reserved and documentation ranges stay), or without it every one that ``ipaddress``
reads (an octet with a leading zero, ``01.2.3.4``, is not an address and stays). The
IPv4 pattern has no word boundary, as datatrove's, so ``1234.5.6.78`` loses
``234.5.6.78``.

Replacements cycle through ``email_replacement`` / ``ip_replacement`` within each
document: its k-th replaced e-mail becomes ``email_replacement[k % len]``. datatrove keeps
one counter per worker across documents, so which replacement a document gets depends
on what that worker read before; here it depends on the document alone, so the output
is the same whatever the sharding (the replaced spans are the same as datatrove's).

Speed: one compiled pass over the UTF-8 bytes of the batch finds the runs of characters
a match can be made of (ASCII letters, digits and the e-mail punctuation; digits and
dots) that hold an ``@`` (three dots); Python's ``re`` then searches only those runs,
with the text around them as context. No match crosses the end of such a run, so the
matches, ``\\b`` on Unicode text included, are the ones datatrove's search of the whole
text finds, at a small part of its cost: most web documents hold no such run.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Callable, Iterable
from functools import lru_cache

import numba
import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from curation.batch import TEXT
from curation.filters.text import replace_rows
from curation.stage import MapStage, StageParams, register
from curation.utf8 import string_buffers

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
EMAIL_PATTERN = (
    rf"\b{_LOCAL}+(?:\.{_LOCAL}+)*@"
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    rf"|\[(?:{_OCTET}\.){{3}}(?:{_OCTET}|[A-Za-z0-9-]*[A-Za-z0-9]:)])"
)
IPV4_PATTERN = rf"(?:{_OCTET}\.){{3}}{_OCTET}"

# datatrove's defaults: example.com/org are reserved for examples, and the addresses did
# not answer pings when datatrove drew them.
EMAIL_REPLACEMENTS = ("email@example.com", "firstname.lastname@example.org")
IP_REPLACEMENTS = (
    "22.214.171.124",
    "126.96.36.199",
    "188.8.131.52",
    "184.108.40.206",
    "220.127.116.11",
    "18.104.22.168",
)


class PIIParams(StageParams):
    remove_emails: bool = Field(True, description="replace e-mail addresses")
    remove_ips: bool = Field(True, description="replace IPv4 addresses")
    only_remove_public_ips: bool = Field(
        True, description="replace only global IPs (keep private, loopback, reserved)"
    )
    email_replacement: list[str] = Field(
        list(EMAIL_REPLACEMENTS), min_length=1, description="used in turn within a document"
    )
    ip_replacement: list[str] = Field(
        list(IP_REPLACEMENTS), min_length=1, description="used in turn within a document"
    )

    @field_validator("email_replacement", "ip_replacement", mode="before")
    @classmethod
    def _one_string(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _something_to_do(self) -> PIIParams:
        if not (self.remove_emails or self.remove_ips):
            raise ValueError("remove_emails and remove_ips are both false: nothing to replace")
        return self


@lru_cache(maxsize=1 << 16)
def is_ip(address: str) -> bool:
    """Whether ``ipaddress`` reads ``address`` as an IP address (``01.2.3.4`` is not)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1 << 16)
def is_public_ip(address: str) -> bool:
    """Whether ``address`` is an IP address that ``ipaddress`` calls global."""
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def _byte_table(characters: str) -> np.ndarray:
    table = np.zeros(256, np.bool_)
    table[list(characters.encode("ascii"))] = True
    return table


# Every character a match of each pattern can hold (all ASCII), and the one it must hold.
_EMAIL_CHARACTERS = _byte_table(
    string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-" + ".@[]:"
)
_IPV4_CHARACTERS = _byte_table(string.digits + ".")


@numba.njit(cache=True, nogil=True, inline="always")
def _next_run(
    data: np.ndarray, begin: int, i: int, end: int, allowed: np.ndarray, needed: int
) -> tuple[int, int, int]:  # pragma: no cover - compiled
    """The first maximal run of ``allowed`` bytes in ``data[begin:end]`` that holds a
    ``needed`` byte at or after ``i``: its start, its end and how many ``needed`` bytes it
    holds (``end, end, 0`` when there is none)."""
    while i < end and data[i] != needed:
        i += 1
    if i == end:
        return end, end, 0
    low = i
    while low > begin and allowed[data[low - 1]]:
        low -= 1
    high = i
    hits = 0
    while high < end and allowed[data[high]]:
        hits += data[high] == needed
        high += 1
    return low, high, hits


@numba.njit(cache=True, nogil=True)
def _windows(
    data: np.ndarray, offsets: np.ndarray, allowed: np.ndarray, needed: int, at_least: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Every maximal run of ``allowed`` bytes within a row that holds ``needed`` at least
    ``at_least`` times (``needed`` is an allowed byte; all allowed bytes are ASCII): its
    row and its start and end as character (code point) offsets in the row."""
    n = len(offsets) - 1
    counts = np.zeros(n, np.int64)
    for row in range(n):
        begin, end = offsets[row], offsets[row + 1]
        i = begin
        while i < end:
            _, i, hits = _next_run(data, begin, i, end, allowed, needed)
            counts[row] += hits >= at_least
    total = counts.sum()
    rows = np.empty(total, np.int64)
    starts = np.empty(total, np.int64)
    ends = np.empty(total, np.int64)
    k = 0
    for row in np.flatnonzero(counts):
        begin, end = offsets[row], offsets[row + 1]
        i = begin
        chars = 0  # code points in data[begin:i]
        while i < end:
            low, high, hits = _next_run(data, begin, i, end, allowed, needed)
            if hits >= at_least:
                for j in range(i, low):
                    chars += (data[j] & 0xC0) != 0x80
                rows[k] = row
                starts[k] = chars
                ends[k] = chars + high - low
                k += 1
                chars += high - low
            else:
                for j in range(i, high):
                    chars += (data[j] & 0xC0) != 0x80
            i = high
    return rows, starts, ends


class Replacer:
    """Replaces the matches of one pattern in documents, cycling through replacements.

    ``accept`` (optional) decides per matched string; a refused match stays as it is and
    does not advance the cycle. ``characters`` is every character a match can hold and
    ``needed`` one it holds at least ``at_least`` times: the pattern then only runs over
    the runs of such characters that hold it (from their first character to their last,
    with the text around them as context, so ``\\b`` sees what precedes a run). As no
    match crosses the end of a run, that finds the matches a search of the whole text
    finds.
    """

    def __init__(
        self,
        pattern: str,
        replacements: list[str],
        characters: np.ndarray,
        needed: str,
        at_least: int = 1,
        accept: Callable[[str], bool] | None = None,
    ) -> None:
        self.regex = re.compile(pattern)
        self.replacements = tuple(replacements)
        self.characters = characters
        self.needed = ord(needed)
        self.at_least = at_least
        self.accept = accept

    def replace(self, text: str, windows: Iterable[tuple[int, int]]) -> tuple[str, int]:
        """``text`` with the accepted matches inside ``windows`` (character offsets, in
        order) replaced, and how many were replaced."""
        pieces = []
        done = 0
        count = 0
        for start, end in windows:
            for match in self.regex.finditer(text, start, end):
                if self.accept is not None and not self.accept(match.group(0)):
                    continue
                pieces += (
                    text[done : match.start()],
                    self.replacements[count % len(self.replacements)],
                )
                done = match.end()
                count += 1
        if count == 0:
            return text, 0
        pieces.append(text[done:])
        return "".join(pieces), count

    def apply(self, texts: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
        """Every text with its matches replaced, and the count per text (int64)."""
        counts = np.zeros(len(texts), np.int64)
        chunks = []
        first_row = 0
        for chunk in texts.chunks:
            rows, starts, ends = _windows(
                *string_buffers(chunk), self.characters, self.needed, self.at_least
            )
            chunks.append(self._replace_rows(chunk, rows, starts, ends, counts[first_row:]))
            first_row += len(chunk)
        return pa.chunked_array(chunks, texts.type), counts

    def _replace_rows(
        self,
        chunk: pa.Array,
        rows: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        counts: np.ndarray,
    ) -> pa.Array:
        if len(rows) == 0:
            return chunk
        candidates, first = np.unique(rows, return_index=True)
        last = np.r_[first[1:], len(rows)]
        texts = chunk.take(pa.array(candidates)).to_pylist()
        replaced = {}
        for row, text, lo, hi in zip(candidates, texts, first, last, strict=True):
            windows = zip(starts[lo:hi].tolist(), ends[lo:hi].tolist(), strict=True)
            new_text, counts[row] = self.replace(text, windows)
            if counts[row]:
                replaced[row] = new_text
        if not replaced:
            return chunk
        return replace_rows(chunk, list(replaced), list(replaced.values()))


@register
class PIIFormatter(MapStage):
    """Replaces e-mail and public IP addresses in ``text``; counts them per document."""

    name = "pii"
    help = "replace e-mail and public IPv4 addresses in the text (datatrove's PIIFormatter)"
    Params = PIIParams
    params: PIIParams

    def setup(self) -> None:
        p = self.params
        self.replacers: list[tuple[str, Replacer]] = []
        if p.remove_emails:
            emails = Replacer(EMAIL_PATTERN, p.email_replacement, _EMAIL_CHARACTERS, "@")
            self.replacers.append(("pii_emails", emails))
        if p.remove_ips:
            accept = is_public_ip if p.only_remove_public_ips else is_ip
            ips = Replacer(IPV4_PATTERN, p.ip_replacement, _IPV4_CHARACTERS, ".", 3, accept)
            self.replacers.append(("pii_ips", ips))

    def process(self, table: pa.Table) -> pa.Table:
        text = table[TEXT]
        counts = []
        for column, replacer in self.replacers:
            text, count = replacer.apply(text)
            counts.append((column, count))
        table = table.set_column(table.column_names.index(TEXT), TEXT, text)
        for column, count in counts:
            table = table.append_column(column, pa.array(count))
        return table
