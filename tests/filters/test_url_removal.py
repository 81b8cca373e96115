"""url_removal against a per-document rendering of DCLM-Baseline's url_removal_modifier."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.url_removal import (
    UrlRemoval,
    UrlRemovalParams,
    public_suffix_tlds,
    read_tlds,
    trie_pattern,
)
from curation.recipe import RecipeError, parse_recipe
from tests.conftest import shared_file
from tests.filters.parity import real_documents
from tests.filters.test_refinedweb import warc_texts
from tests.filters.url_removal_reference import dclm_url_removal


def run(texts: list[str], **params: object) -> pa.Table:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    stage = UrlRemoval(UrlRemovalParams(**params))  # type: ignore[arg-type]
    stage.setup()
    return stage.process(table)


def ours(texts: list[str], **params: object) -> list[str | None]:
    """Each document's new text, or None where the stage drops it."""
    rows = run(texts, **params).to_pylist()
    return [row["text"] if row["drop_reason"] is None else None for row in rows]


def differences(texts: list[str], **params: object) -> list[tuple[int, str | None, str | None]]:
    tlds = read_tlds(params["tlds_file"]) if "tlds_file" in params else public_suffix_tlds()  # type: ignore[arg-type]
    reference = dclm_url_removal(
        tlds,
        start_check=params.get("require_tld_start", True),  # type: ignore[arg-type]
        ips=params.get("remove_ips", True),  # type: ignore[arg-type]
    )
    theirs = [reference(text) for text in texts]
    mine = ours(texts, **params)
    return [(i, a, b) for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b]


def sample_texts(sample: str) -> list[str]:
    if sample == "dclm_human":
        path = shared_file("quality/dclm-human-quality-majority.jsonl")
        lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028
        return [json.loads(line)["text"] for line in lines if line.strip()]
    if sample == "warc":
        return warc_texts()
    return real_documents()[sample]


@pytest.mark.parametrize("sample", ["c4", "pile", "dclm_human", "warc"])
@pytest.mark.parametrize("require_tld_start", [True, False])
def test_same_texts_as_dclm_on_real_documents(sample: str, require_tld_start: bool) -> None:
    texts = sample_texts(sample)
    assert differences(texts, require_tld_start=require_tld_start) == []
    changed = run(texts, require_tld_start=require_tld_start)
    removed = sum(changed["url_removal_urls"].to_pylist())
    if sample in ("c4", "pile"):  # the samples hold URLs that the stage removes
        assert removed > 10


PIECE = st.sampled_from(
    [
        "The ",
        "in ",
        "Co",
        "see ",
        "http://",
        "https://",
        "ftp://",
        "www.",
        "example",
        "mail@host",
        ".com",
        ".co",
        ".uk",
        ".org/path?q=1&x=(2)",
        ".comx",
        ".COM",
        ".中国",
        ".xn--p1ai",
        "é",
        "_",
        "-",
        ".",
        ",",
        "/",
        " ",
        "  ",
        "\n",
        "\n\n",
        "\t",
        "\xa0",
        "\u2028",
        "\x1c",
        "1.2.3.4",
        "192.168.0.1",
        "299.1.1",
        "3.5",
        "0",
        "x" * 300,
        "Ünïcode",
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.lists(PIECE, max_size=25).map("".join), min_size=1, max_size=6),
    st.booleans(),
    st.booleans(),
)
def test_any_text_matches_dclm(texts: list[str], require_tld_start: bool, ips: bool) -> None:
    assert differences(texts, require_tld_start=require_tld_start, remove_ips=ips) == []


def test_what_is_removed_counted_and_dropped(tmp_path) -> None:
    texts = [
        "The site is at https://www.example.com/a?b=1 and\n  mirror.example.org, now.",
        "Go to https://www.example.com/a today.",  # does not begin with a TLD's letters
        "Server 10.0.0.1 and version 1.2.3.4 here",
        "co.uk/shop",  # begins with "co"; nothing is left
        "Plain text without any address.",
    ]
    table = run(texts)
    rows = table.to_pylist()
    assert rows[0]["text"] == "The site is at and, now."
    assert rows[0]["url_removal_urls"] == 2
    assert rows[1]["text"] == texts[1] and rows[1]["url_removal_urls"] == 0
    assert rows[2]["text"] == "Server and version here" and rows[2]["url_removal_ips"] == 2
    assert rows[3]["drop_reason"] == "url_removal:empty" and rows[3]["text"] == texts[3]
    assert rows[4]["text"] == texts[4] and rows[4]["drop_reason"] is None
    assert [r["drop_reason"] for r in rows].count(None) == 4
    everywhere = run(texts, require_tld_start=False, remove_ips=False).to_pylist()
    assert everywhere[1]["text"] == "Go to today."
    assert everywhere[2]["text"] == texts[2] and everywhere[2]["url_removal_ips"] == 0


def test_a_tld_file_as_iana_writes_it(tmp_path) -> None:
    # IANA's tlds-alpha-by-domain.txt: a comment, then upper-case names
    path = tmp_path / "tlds.txt"
    path.write_text("# Version 2024, Last Updated\nCOM\nORG\n\nXN--P1AI\n", encoding="utf-8")
    assert read_tlds(str(path)) == ("com", "org", "xn--p1ai")
    # "The" begins with no TLD of this list: DCLM removes no URL from such a text
    texts = ["Org: shop example.com and example.net.", "The shop example.com."]
    rows = run(texts, tlds_file=str(path)).to_pylist()
    assert [row["text"] for row in rows] == ["Org: shop and example.net.", texts[1]]
    assert differences(["Com a.com b.org c.net", "org.net x.org"], tlds_file=str(path)) == []
    # the one difference, on purpose: DCLM escapes each TLD twice (re.escape, then
    # retrie), so a name with a hyphen, as IANA's xn-- names, never matches there
    assert ours(["org x.xn--p1ai"], tlds_file=str(path)) == ["org"]
    assert differences(["org x.xn--p1ai"], tlds_file=str(path)) == [(0, "org", "org x.xn--p1ai")]


def test_a_bad_tld_file_stops_the_recipe_naming_it(tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n", encoding="utf-8")
    for path, problem in (
        (empty, "holds no top-level domain"),
        (tmp_path / "no.txt", "does not exist"),
    ):
        recipe = f"stages:\n  - url_removal: {{tlds_file: '{path}'}}\n"
        with pytest.raises(RecipeError, match=problem) as error:
            parse_recipe(recipe)
        assert str(path) in str(error.value)


def test_default_list_is_the_public_suffix_lists_tlds() -> None:
    tlds = public_suffix_tlds()
    assert len(tlds) > 1000
    assert {"com", "org", "uk", "中国", "рф"} <= set(tlds)
    assert all("." not in tld and tld == tld.strip() and tld for tld in tlds)


@settings(max_examples=200, deadline=None)
@given(
    st.sets(st.text("abcé.-", min_size=1, max_size=5), min_size=1, max_size=30),
    st.lists(st.text("abcé.-", max_size=6), max_size=30),
)
def test_trie_pattern_matches_exactly_its_words(words: set[str], probes: list[str]) -> None:
    pattern = re.compile(trie_pattern(tuple(sorted(words))))
    for probe in [*words, *probes]:
        assert bool(pattern.fullmatch(probe)) == (probe in words), probe
