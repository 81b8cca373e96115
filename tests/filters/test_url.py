"""url_filter against datatrove's URLFilter: C4's real URLs plus URLs built from the UT1
list and datatrove's word lists, compared decision by decision and reason by reason."""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.cache import STALE_AFTER
from curation.filters import url as url_module
from curation.filters.url import (
    SortedStrings,
    UrlFilter,
    UrlFilterParams,
    _datatrove_assets,
    _entries,
    _list_lines,
    _ut1_cache_files,
    integrated_lists,
)
from tests.conftest import shared_file


def urls_to_check() -> list[str]:
    with gzip.open(shared_file("web/c4-sample-1000.jsonl.gz"), "rt", encoding="utf-8") as f:
        urls = [json.loads(line)["url"] for line in f]
    lists = integrated_lists()
    domains = lists["domains"].to_pylist()
    for domain in domains[:: len(domains) // 40]:
        urls += [f"https://{domain}/page", f"http://www.{domain}/a?b=c", f"https://x.y.{domain}/"]
    for url in lists["urls"].to_pylist()[::2000]:
        urls += [url, f"http://{url}"]
    for word in lists["banned_words"].to_pylist()[::10]:
        urls.append(f"https://example.org/{word}/index.html")
    soft = lists["soft_banned_words"].to_pylist()
    for first, second in zip(soft[::9], soft[1::9], strict=False):
        urls += [f"https://example.net/{first}-{second}", f"https://example.net/{first}-blog"]
    for sub in lists["banned_subwords"].to_pylist()[::7]:
        urls.append(f"https://shop.example.com/items/x{sub}y")
    return urls


@pytest.mark.slow
def test_same_decisions_and_reasons_as_datatrove() -> None:
    from datatrove.data import Document
    from datatrove.pipeline.filters import URLFilter

    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    urls = urls_to_check()
    reference = URLFilter()
    theirs = []
    for i, url in enumerate(urls):
        result = reference.filter(Document(text="x", id=str(i), metadata={"url": url}))
        theirs.append(None if result is True else f"url_filter:{result[1]}")
    stage = UrlFilter(UrlFilterParams())
    stage.setup()
    table = conform(
        pa.table({"id": [str(i) for i in range(len(urls))], "text": ["x"] * len(urls), "url": urls})
    )
    ours = stage.process(table)["drop_reason"].to_pylist()
    assert sum(r is not None for r in theirs) > 100, "the planted URLs are blocked"
    mismatches = [
        (urls[i], a, b) for i, (a, b) in enumerate(zip(theirs, ours, strict=True)) if a != b
    ]
    assert len(mismatches) <= len(urls) // 100, mismatches[:10]


def test_own_lists_without_integrated_ones(tmp_path) -> None:
    domains = tmp_path / "domains.txt"
    domains.write_text("# a comment\nbad-site.com\n")
    stage = UrlFilter(
        UrlFilterParams(
            use_integrated_lists=False,
            domains_file=str(domains),
            banned_words=["casino"],
            soft_banned_words=["free", "win"],
        )
    )
    stage.setup()
    urls = [
        "https://bad-site.com/x",
        "https://www.bad-site.com/",
        "https://good-site.org/casino",
        "https://good-site.org/free-win",
        "https://good-site.org/free",
        None,
    ]
    table = conform(pa.table({"id": [str(i) for i in range(6)], "text": ["x"] * 6, "url": urls}))
    out = stage.process(table)
    assert out["drop_reason"].to_pylist() == [
        "url_filter:domain",
        "url_filter:domain",
        "url_filter:hard_blacklisted",
        "url_filter:soft_blacklisted",
        None,
        None,
    ]
    assert out["url_domain"].to_pylist()[:2] == ["bad-site.com", "bad-site.com"]


def test_a_run_records_every_list_file_the_filter_reads(tmp_path) -> None:
    # A run records the versions of the files its stages read and will not resume once
    # one changed: the filter's own lists, and the integrated ones in datatrove's wheel.
    domains, words = tmp_path / "domains.txt", tmp_path / "words.txt"
    given = {"domains_file": str(domains), "soft_banned_words_file": str(words)}
    own = UrlFilterParams(use_integrated_lists=False, **given).files()
    assert own == [str(domains), str(words)]
    both = UrlFilterParams(**given).files()
    assert both[:2] == own
    names = sorted(Path(f).name for f in both[2:])
    assert names == [
        "banned_subwords.txt",
        "banned_words.txt",
        "soft_banned_words.txt",
        "url_filterblacklistsv0_3_0.tar.gz",
    ]
    assert all(Path(f).is_file() for f in both[2:])


def test_missing_url_column_is_a_clear_error() -> None:
    stage = UrlFilter(UrlFilterParams(use_integrated_lists=False))
    stage.setup()
    with pytest.raises(ValueError, match=r"url_filter: no column 'url'"):
        stage.process(conform(pa.table({"id": ["1"], "text": ["x"]})))


def test_integrated_lists_without_their_wheel_say_what_to_install(monkeypatch) -> None:
    # `pip install curation` without the url-lists extra (datatrove is not a dependency)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "datatrove" else real(name, *a),
    )
    integrated_lists.cache_clear()  # what an earlier test loaded in this process
    stage = UrlFilter(UrlFilterParams())
    with pytest.raises(ValueError) as caught:
        stage.setup()
    message = str(caught.value)
    assert "`pip install 'curation[url-lists]'`" in message
    assert "use_integrated_lists: false" in message


some_strings = st.lists(
    st.one_of(
        st.none(), st.text(alphabet="ab.-é\u00ff\U0001f600", max_size=6), st.text(max_size=4)
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(some_strings, some_strings)
def test_sorted_strings_answer_as_is_in(keys: list[str | None], queries: list[str | None]) -> None:
    lookup = SortedStrings(pa.array(keys, pa.string()))
    assert lookup.keys.to_pylist() == sorted({k for k in keys if k is not None})
    expected = pc.is_in(pa.array(queries, pa.string()), pa.array(keys, pa.string()))
    assert lookup.contains(pa.array(queries, pa.string())).to_pylist() == [
        bool(e) and q is not None for e, q in zip(expected.to_pylist(), queries, strict=True)
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["a.com", " b.org", "#c", "# c", "", " ", "\r", "a.com\r", "é.fr", "\u2003x"]
        ),
        max_size=20,
    )
)
def test_list_files_read_as_the_line_by_line_reading(lines: list[str]) -> None:
    content = "\n".join(lines)
    assert _list_lines(content).to_pylist() == sorted(_entries(content.split("\n"), words=False))


def test_extra_entries_join_the_integrated_lists() -> None:
    ut1 = integrated_lists()["domains"][1000].as_py()
    stage = UrlFilter(
        UrlFilterParams(extra_domains=["my-blocked-site.com"], extra_urls=["x.org/a"])
    )
    stage.setup()
    urls = [f"https://{ut1}/", "https://my-blocked-site.com/x", "x.org/a", "https://x.org/b"]
    table = conform(pa.table({"id": ["1", "2", "3", "4"], "text": ["x"] * 4, "url": urls}))
    reasons = stage.process(table)["drop_reason"].to_pylist()
    # a UT1 entry can be a host under a registered domain that is not listed itself
    assert reasons[0] in ("url_filter:domain", "url_filter:subdomain")
    assert reasons[1:] == ["url_filter:domain", "url_filter:url", None]


@pytest.mark.slow
def test_the_ut1_lists_are_cached_mapped_and_rebuilt_when_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First load writes the cache; the next maps it (same lists, pages of the file); a
    damaged cache is read again from the archive with a warning; a failed write leaves no
    temporary file; an unwritable cache folder only warns."""
    archive = _datatrove_assets() / "url_filterblacklistsv0_3_0.tar.gz"
    monkeypatch.setenv("CURATION_CACHE_DIR", str(tmp_path / "cache"))
    integrated_lists.cache_clear()
    built = integrated_lists()
    files = _ut1_cache_files(archive)
    assert all(path.is_file() for path in files.values())
    integrated_lists.cache_clear()
    heap = pa.total_allocated_bytes()
    mapped = integrated_lists()
    assert pa.total_allocated_bytes() - heap < 1 << 20  # the file's pages, not Arrow's heap
    for name in ("domains", "urls", "banned_words"):
        assert mapped[name].equals(built[name])
    assert len(mapped["domains"]) > 4_000_000

    files["domains"].write_bytes(files["domains"].read_bytes()[:1000])
    integrated_lists.cache_clear()
    with pytest.warns(UserWarning, match="unreadable list cache"):
        again = integrated_lists()
    assert again["domains"].equals(built["domains"])
    integrated_lists.cache_clear()
    assert integrated_lists()["domains"].equals(built["domains"])  # rewritten whole

    # a write that fails after its temporary file was made leaves nothing behind
    monkeypatch.setenv("CURATION_CACHE_DIR", str(tmp_path / "blocked"))
    blocked = _ut1_cache_files(archive)
    blocked["urls"].mkdir(parents=True)  # a folder where the file should go
    integrated_lists.cache_clear()
    with pytest.warns(UserWarning, match="cannot keep the UT1 lists"):
        assert integrated_lists()["urls"].equals(built["urls"])
    assert sorted(p.name for p in blocked["urls"].parent.iterdir()) == sorted(
        p.name for p in blocked.values()
    )

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("CURATION_CACHE_DIR", str(tmp_path / "file"))
    integrated_lists.cache_clear()
    with pytest.warns(UserWarning, match="CURATION_CACHE_DIR"):
        assert integrated_lists()["urls"].equals(built["urls"])
    integrated_lists.cache_clear()


def test_the_ut1_cache_is_shared_by_every_copy_of_the_archive_and_pruned_when_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache key is the archive's content, so another environment's copy of the same
    archive (another path, another install time) finds the same files; writing a cache
    deletes other cached lists unused for 30 days and keeps recent ones."""
    archive = _datatrove_assets() / "url_filterblacklistsv0_3_0.tar.gz"
    copy = tmp_path / "other-venv" / archive.name
    copy.parent.mkdir()
    copy.write_bytes(archive.read_bytes())
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    monkeypatch.setenv("CURATION_CACHE_DIR", str(tmp_path / "cache"))
    files = _ut1_cache_files(archive)
    assert _ut1_cache_files(copy) == files
    changed = tmp_path / "changed.tar.gz"
    changed.write_bytes(archive.read_bytes() + b"\0")
    assert _ut1_cache_files(changed)["domains"] != files["domains"]

    folder = files["domains"].parent
    folder.mkdir(parents=True)
    stale, recent = folder / "ut1-domains-0000000000000000.arrow", folder / "ut1-urls-1.arrow"
    for path in (stale, recent):
        path.write_bytes(b"an older cache")
    old = time.time() - STALE_AFTER - 60
    os.utime(stale, (old, old))
    other = folder / "notes.txt"
    other.write_text("not ours")
    os.utime(other, (old, old))
    lists = {"domains": pa.array(["a.example"]), "urls": pa.array(["a.example/x"])}
    url_module._write_ut1_cache(files, lists)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [files["domains"].name, files["urls"].name, recent.name, other.name]
    )
