"""``url_filter``: drop documents whose URL is on a block list, as datatrove's URLFilter.

Rules, in datatrove's order (``url_filter:<rule>``):

1. ``domain``: the registered domain (``example.co.uk``, by the public suffix list) is
   blocked; 2. ``subdomain``: the full host is blocked; 3. ``url``: the URL is blocked;
4. ``hard_blacklisted``: a banned word is one of the URL's words (runs of ASCII letters
   and digits, case kept); 5. ``soft_blacklisted``: at least ``soft_word_threshold`` soft
   banned words are; 6. ``blacklisted_subword``: a banned subword occurs in the URL
   lower-cased with everything but letters and digits removed.

Lists: with ``use_integrated_lists`` (the default) the UT1 block lists and the word lists
that the datatrove wheel ships (``pip install datatrove``); plus ``*_file`` (one entry a
line, ``#`` lines skipped) and inline ``extra_*`` entries. Domains and URLs are matched
by a compiled binary search over one sorted Arrow array (``SortedStrings``), so the 4.5
million UT1 domains cost one array, not one Python object each, and with the cache (see
``integrated_lists``) the workers of a machine share that array. The registered domain
comes from ``tldextract``'s bundled public suffix list (no download). Rows without a URL
are kept; a batch with no ``url_field`` column is an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tarfile
import warnings
from functools import cache
from pathlib import Path
from typing import ClassVar

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import with_drop_reason
from curation.cache import cache_dir, prune_stale
from curation.filters.text import to_numpy
from curation.stage import MapStage, StageParams, register
from curation.utf8 import string_buffers

_NON_ALNUM = r"[^a-zA-Z0-9]+"


def normalize(word: str) -> str:
    """datatrove's word normalisation: letters and digits only, lower case."""
    return re.sub(_NON_ALNUM, "", word).lower()


def _entries(lines: list[str], words: bool) -> set[str]:
    kept = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    return {normalize(w) for w in kept} - {""} if words else kept


def _datatrove_assets() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("datatrove")
    if spec is None or spec.origin is None:
        raise ValueError(
            "url_filter's integrated lists ship in the datatrove wheel, which is not "
            "installed: `pip install 'curation[url-lists]'` (or datatrove), or set "
            "use_integrated_lists: false and give *_file lists"
        )
    return Path(spec.origin).parent / "assets"


def _list_lines(content: str) -> pa.LargeStringArray:
    """The distinct entries of a list file's text, byte-sorted: lines stripped of white
    space, without empty lines and lines that start with ``#`` (as ``_entries`` without
    word normalisation, vectorised: the UT1 domain list has 4.5 million lines)."""
    data = content.encode("utf-8")
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
    offsets = np.r_[0, ends + 1, len(data)].astype(np.int64)
    lines = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data)
    )
    stripped = pc.utf8_trim_whitespace(lines)
    keep = pc.and_(pc.not_equal(stripped, ""), pc.invert(pc.starts_with(lines, "#")))
    return sorted_strings(stripped.filter(keep))


def sorted_strings(values: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """The distinct non-null ``values`` in byte order, as one large-string array (the
    order ``SortedStrings`` searches; for UTF-8 it is code-point order). Sorted first and
    then rid of equal neighbours: cheaper than hashing millions of strings."""
    values = values.cast(pa.large_string()).drop_null()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if (
        len(values) < 2
        or pc.all(pc.greater(values.slice(1), values.slice(0, len(values) - 1))).as_py()
    ):
        return values  # already distinct and in order (the integrated lists)
    ordered = values.take(pc.array_sort_indices(values))
    changed = pc.not_equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    return ordered.filter(pa.concat_arrays([pa.array([True]), changed]))


def integrated_list_files() -> dict[str, Path]:
    """The files of the integrated lists in the installed datatrove: ``ut1`` (the UT1
    archive, which holds the domains and URLs) and the three word lists by name."""
    assets = _datatrove_assets()
    words = ("banned_words", "banned_subwords", "soft_banned_words")
    return {"ut1": assets / "url_filterblacklistsv0_3_0.tar.gz"} | {
        name: assets / f"{name}.txt" for name in words
    }


#: bumped when what the cache holds changes
_CACHE_FORMAT = 1


@cache
def integrated_lists() -> dict[str, pa.Array]:
    """UT1 domains and URLs and datatrove's word lists, as Arrow string arrays (the UT1
    lists distinct and byte-sorted).

    Reading the UT1 archive takes about 2 s and 150 MiB; the sorted lists are kept as
    uncompressed Arrow files under ``cache_dir()/url_filter`` (named by a hash of the
    archive's bytes and the cache format) and memory-mapped from there: a later worker's
    setup takes about 0.2 s, most of it checking the order, and the workers of one
    machine share the pages, whichever environment they run in. Writing a new copy
    deletes cached lists that went unused for 30 days. A cache that cannot be written or
    read is rebuilt, or done without, with a warning.
    """
    sources = integrated_list_files()
    files = _ut1_cache_files(sources["ut1"])
    lists = _cached_ut1(files)
    if lists is None:
        lists = {}
        with tarfile.open(sources["ut1"]) as tar:
            for member in ("domains", "urls"):
                handle = tar.extractfile(member)
                assert handle is not None
                lists[member] = _list_lines(handle.read().decode("utf-8", "replace"))
        _write_ut1_cache(files, lists)
    for name in ("banned_words", "banned_subwords", "soft_banned_words"):
        lines = sources[name].read_text("utf-8").split("\n")
        lists[name] = pa.array(sorted(_entries(lines, words=True)), pa.string())
    return lists


def _ut1_cache_files(archive: Path) -> dict[str, Path]:
    """The cache files for ``archive``, named by a hash of its bytes (about 30 ms for the
    18 MB archive) and the cache format, so that every environment that installs the same
    datatrove assets shares one copy."""
    with archive.open("rb") as handle:  # streamed, not 18 MB held at once
        digest = hashlib.file_digest(handle, "sha256")
    digest.update(f"|{_CACHE_FORMAT}".encode())
    key = digest.hexdigest()[:16]
    folder = cache_dir() / "url_filter"
    return {member: folder / f"ut1-{member}-{key}.arrow" for member in ("domains", "urls")}


def _cached_ut1(files: dict[str, Path]) -> dict[str, pa.Array] | None:
    """The UT1 lists memory-mapped from the cache, or None where it has no good copy."""
    if not all(path.is_file() for path in files.values()):
        return None
    try:
        lists = {}
        for member, path in files.items():
            with pa.ipc.open_file(pa.memory_map(str(path))) as reader:
                column = reader.read_all().column(0)
            if column.type != pa.large_string() or column.num_chunks != 1:
                raise ValueError(f"unexpected column {column.type} in {column.num_chunks}")
            lists[member] = column.chunk(0)
            with contextlib.suppress(OSError):  # marks it in use; a read-only cache is fine
                os.utime(path)
        return lists
    except (OSError, ValueError, pa.ArrowException) as error:
        warnings.warn(
            f"url_filter: ignoring the unreadable list cache in {files['domains'].parent} "
            f"({error}); reading the UT1 archive again",
            stacklevel=3,
        )
        return None


def _write_ut1_cache(files: dict[str, Path], lists: dict[str, pa.Array]) -> None:
    """Write each list under a temporary name, then rename it into place (workers that
    race write the same bytes); a failed write leaves no temporary file behind."""
    tmp = None
    try:
        for member, path in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            table = pa.table({member: lists[member]})
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table)
            os.replace(tmp, path)
            tmp = None
        prune_stale(path.parent, "ut1-*.arrow", {p.name for p in files.values()})
    except OSError as error:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        warnings.warn(
            f"url_filter: cannot keep the UT1 lists in {files['domains'].parent} ({error}); "
            "every worker reads the archive (about 2 s). Set CURATION_CACHE_DIR to a "
            "writable folder to cache them",
            stacklevel=3,
        )


@numba.njit(cache=True, nogil=True, inline="always")
def _compare(
    a: np.ndarray, a_start: int, a_end: int, b: np.ndarray, b_start: int, b_end: int
) -> int:  # pragma: no cover - compiled
    """-1, 0 or 1 as the bytes ``a[a_start:a_end]`` sort before, equal or after ``b``'s."""
    length = min(a_end - a_start, b_end - b_start)
    for k in range(length):
        x, y = a[a_start + k], b[b_start + k]
        if x != y:
            return -1 if x < y else 1
    a_length, b_length = a_end - a_start, b_end - b_start
    return -1 if a_length < b_length else (1 if a_length > b_length else 0)


@numba.njit(cache=True, nogil=True)
def _search(
    keys: np.ndarray, key_offsets: np.ndarray, data: np.ndarray, offsets: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """For each string of ``data``/``offsets``, whether the sorted keys hold it."""
    count = len(key_offsets) - 1
    found = np.zeros(len(offsets) - 1, np.bool_)
    for i in range(len(offsets) - 1):
        lo, hi = 0, count
        while lo < hi:
            mid = (lo + hi) // 2
            order = _compare(
                keys, key_offsets[mid], key_offsets[mid + 1], data, offsets[i], offsets[i + 1]
            )
            if order < 0:
                lo = mid + 1
            else:
                hi = mid
        found[i] = lo < count and (
            _compare(keys, key_offsets[lo], key_offsets[lo + 1], data, offsets[i], offsets[i + 1])
            == 0
        )
    return found


class SortedStrings:
    """A set of strings for membership tests of whole Arrow columns: the strings sorted
    once, each test a compiled binary search (about 22 comparisons of a few bytes for
    the 4.5 million UT1 domains). ``pc.is_in`` would hash the whole set again at every
    call: 1.7 s a batch for those domains."""

    def __init__(self, values: pa.Array | pa.ChunkedArray) -> None:
        self.keys = sorted_strings(values)

    def contains(self, values: pa.Array | pa.ChunkedArray) -> pa.BooleanArray:
        """Whether each value is in the set (false for nulls), as ``pc.is_in`` answers."""
        values = values.cast(pa.large_string())
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        found = _search(*string_buffers(self.keys), *string_buffers(values))
        return pc.and_(pa.array(found), pc.is_valid(values))


@cache
def _suffix_extractor() -> object:
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class UrlFilterParams(StageParams):
    file_params: ClassVar[tuple[str, ...]] = (
        "domains_file",
        "urls_file",
        "banned_words_file",
        "banned_subwords_file",
        "soft_banned_words_file",
    )
    url_field: str = Field("url", description="the column holding the URL")
    use_integrated_lists: bool = Field(True, description="UT1 and datatrove's word lists")
    soft_word_threshold: int = Field(2, description="soft banned words that drop a URL")
    domains_file: str | None = Field(None, description="blocked domains, one a line")
    urls_file: str | None = Field(None, description="blocked URLs, one a line")
    banned_words_file: str | None = Field(None, description="banned URL words, one a line")
    banned_subwords_file: str | None = Field(None, description="banned URL substrings")
    soft_banned_words_file: str | None = Field(None, description="soft banned URL words")
    extra_domains: list[str] = Field([], description="more blocked domains")
    extra_urls: list[str] = Field([], description="more blocked URLs")
    banned_words: list[str] = Field([], description="more banned words")
    banned_subwords: list[str] = Field([], description="more banned substrings")
    soft_banned_words: list[str] = Field([], description="more soft banned words")

    def files(self) -> list[str]:
        """The list files given, and with ``use_integrated_lists`` the integrated lists'
        files in the installed datatrove (the UT1 archive and the three word lists), so
        that a run resumed after datatrove's lists changed says so instead of judging
        its shards by two sets of lists."""
        given = super().files()
        if not self.use_integrated_lists:
            return given
        return given + [str(path) for path in integrated_list_files().values()]


@register
class UrlFilter(MapStage):
    """Block-list URL filter; adds ``url_domain`` (the registered domain)."""

    name = "url_filter"
    help = "drop documents whose URL, domain or URL words are on block lists (UT1 by default)"
    Params = UrlFilterParams
    params: UrlFilterParams

    def setup(self) -> None:
        p = self.params
        base = integrated_lists() if p.use_integrated_lists else {}
        self._lists: dict[str, pa.Array] = {}
        sources = {
            "domains": (p.domains_file, p.extra_domains, False),
            "urls": (p.urls_file, p.extra_urls, False),
            "banned_words": (p.banned_words_file, p.banned_words, True),
            "banned_subwords": (p.banned_subwords_file, p.banned_subwords, True),
            "soft_banned_words": (p.soft_banned_words_file, p.soft_banned_words, True),
        }
        for name, (file, extra, words) in sources.items():
            entries = _entries(list(extra), words)
            if file is not None:
                if not Path(file).is_file():
                    raise ValueError(f"url_filter: list {file} does not exist")
                entries |= _entries(Path(file).read_text("utf-8").split("\n"), words)
            added = pa.array(sorted(entries), pa.string())
            if name in base:  # no copy of the (mapped) list when nothing is added
                added = (
                    pa.concat_arrays([base[name], added.cast(base[name].type)])
                    if len(added)
                    else base[name]
                )
            self._lists[name] = added
        # the lists of whole domains and URLs are kept only as the sets searched
        self._domains_set = SortedStrings(self._lists.pop("domains"))
        self._urls_set = SortedStrings(self._lists.pop("urls"))
        subwords = self._lists["banned_subwords"].to_pylist()
        self._subword_pattern = "|".join(re.escape(w) for w in subwords) if subwords else None

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        if p.url_field not in table.column_names:
            raise ValueError(
                f"url_filter: no column {p.url_field!r} (columns: {table.column_names}); set "
                "url_field, or put url_filter only on inputs that carry URLs"
            )
        urls = table[p.url_field].cast(pa.string())
        hosts, registered = self._domains(urls)
        table = table.append_column("url_domain", registered)
        lists = self._lists
        rules = [
            ("domain", self._domains_set.contains(registered)),
            ("subdomain", self._domains_set.contains(hosts)),
            ("url", self._urls_set.contains(urls)),
        ]
        words = pc.split_pattern_regex(pc.fill_null(urls, ""), _NON_ALNUM).combine_chunks()
        flat = words.flatten()
        parents = np.asarray(pc.list_parent_indices(words).to_numpy(zero_copy_only=False))
        n = table.num_rows
        hard = np.bincount(
            parents[to_numpy(pc.is_in(flat, lists["banned_words"]), bool)], minlength=n
        )
        rules.append(("hard_blacklisted", pa.array(hard > 0)))
        index = np.asarray(
            pc.fill_null(pc.index_in(flat, lists["soft_banned_words"]), -1).to_numpy(
                zero_copy_only=False
            )
        )
        hit = index >= 0
        distinct = np.unique(parents[hit].astype(np.int64) * (len(index) + 1) + index[hit])
        soft = np.bincount(distinct // (len(index) + 1), minlength=n)
        rules.append(("soft_blacklisted", pa.array(soft >= p.soft_word_threshold)))
        if self._subword_pattern is not None:
            squashed = pc.utf8_lower(pc.replace_substring_regex(urls, _NON_ALNUM, ""))
            rules.append(
                ("blacklisted_subword", pc.match_substring_regex(squashed, self._subword_pattern))
            )
        for rule, mask in rules:
            table = with_drop_reason(table, mask, self.reason(rule))
        return table

    @staticmethod
    def _domains(urls: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
        """Host and registered domain of each URL (null where there is no URL)."""
        extract = _suffix_extractor()
        unique = pc.unique(urls).drop_null()
        hosts, registered = [], []
        for url in unique.to_pylist():
            info = extract(url)  # type: ignore[operator]
            hosts.append(info.fqdn)
            registered.append(info.top_domain_under_public_suffix)
        where = pc.index_in(urls, unique)
        return (
            pc.take(pa.array(hosts, pa.string()), where),
            pc.take(pa.array(registered, pa.string()), where),
        )
