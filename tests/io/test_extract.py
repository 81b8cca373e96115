"""Trafilatura extraction of WARC pages in a sandbox process, as FineWeb ran it."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from curation.io import extract
from curation.io.extract import TrafilaturaSandbox, extract_page
from curation.recipe import RecipeError, parse_recipe
from tests.io.test_readers import read_all


def test_the_texts_of_the_warc_pages_are_fineweb_s(warc_dir: Path) -> None:
    """datatrove's WarcReader and Trafilatura step (FineWeb's extraction) and ours give
    the same text for every page datatrove reads; ours also reads the two it leaves out,
    and its texts are not Resiliparse's."""
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    pages = WarcReader(str(warc_dir)).run()
    theirs = {doc.id.strip("<>"): doc.text for doc in Trafilatura(timeout=30).run(pages)}
    table = read_all(warc_dir, warc_extractor="trafilatura")
    ours = {row["id"]: row for row in table.to_pylist()}
    assert len(theirs) == 35 and set(theirs) < set(ours) and len(ours) == 37
    assert {i: ours[i]["text"] for i in theirs} == theirs
    assert all(ours[i]["drop_reason"] is None for i in theirs)
    resiliparse = {row["id"]: row["text"] for row in read_all(warc_dir).to_pylist()}
    assert sum(resiliparse[i] != ours[i]["text"] for i in theirs) > 25


def test_a_pages_text_does_not_depend_on_the_pages_before_it() -> None:
    """Trafilatura's deduplicate remembers text across pages in a process; the sandbox
    forgets it before each page, so a page's text is the same whatever came before."""
    boiler = "<p>" + "A long shared paragraph that many pages of a site repeat. " * 6 + "</p>"
    page = "<html><body><article>{}<p>{}</p></article></body></html>"
    first = page.format(boiler, "Words that only the first page holds, in a sentence. " * 6)
    second = page.format(boiler, "Words that only the second page holds, in a sentence. " * 6)
    sandbox = TrafilaturaSandbox(30.0)
    try:
        alone = sandbox.extract(second)
        after = [sandbox.extract(first), sandbox.extract(second)]
    finally:
        sandbox.close()
    assert alone == after[1] == (extract_page(second), None)
    assert "A long shared paragraph" in alone[0]


FAKE_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from curation.io import extract

    def page(html):
        if "SLOW" in html:
            time.sleep(60)
        if "DIE" in html:
            os._exit(3)
        if "RAISE" in html:
            raise ValueError("the parser gave up")
        if "HALF" in html:  # an answer begun, then a hang
            answers.write(b"\\x00" + extract._LENGTH.pack(100) + b"abc")
            answers.flush()
            time.sleep(60)
        print("noise from a library")  # goes to stderr, not into the answers
        return html.upper()

    extract.extract_page = page
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    extract.serve(sys.stdin.buffer, answers)
    """
)


def test_a_page_over_the_deadline_or_killing_the_child_costs_that_page_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(TrafilaturaSandbox, "command", (sys.executable, "-c", FAKE_CHILD))
    monkeypatch.setattr(extract, "ANSWER_GRACE_S", 1.0)
    sandbox = TrafilaturaSandbox(2.0)
    pages = ["one", "SLOW", "two", "DIE", "three", "RAISE", "four \ud800 é", "HALF", "five"]
    try:
        answers = [sandbox.extract(html) for html in pages]
    finally:
        sandbox.close()
    assert answers == [
        ("ONE", None),
        ("", "read:extract_timeout"),
        ("TWO", None),
        ("", "read:extract_failed"),
        ("THREE", None),
        ("", "read:extract_failed"),
        ("FOUR \ud800 É", None),
        ("", "read:extract_timeout"),
        ("FIVE", None),
    ]
    assert sandbox.starts == 4  # the first, after the timeout, the death and the hang


def test_a_sandbox_that_cannot_start_says_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TrafilaturaSandbox, "command", (sys.executable, "-c", "print('hi')"))
    with pytest.raises(RuntimeError, match=r"other than ready; check that .*import trafilatura"):
        TrafilaturaSandbox(1.0).extract("<p>x</p>")
    monkeypatch.setattr(extract, "STARTUP_S", 0.5)
    slow = (sys.executable, "-c", "import time; time.sleep(30)")
    monkeypatch.setattr(TrafilaturaSandbox, "command", slow)
    with pytest.raises(RuntimeError, match="import trafilatura"):
        TrafilaturaSandbox(1.0).extract("<p>x</p>")


def test_the_recipe_names_the_extractor_and_checks_the_deadline() -> None:
    recipe = parse_recipe("input: {format: warc, warc_extractor: trafilatura}\nstages: []\n")
    assert recipe.input.warc_extractor == "trafilatura"
    assert recipe.input.warc_extract_timeout_s == 1.0
    with pytest.raises(RecipeError, match="warc_extractor"):
        parse_recipe("input: {warc_extractor: readability}\nstages: []\n")
    with pytest.raises(RecipeError, match="warc_extract_timeout_s"):
        parse_recipe("input: {warc_extract_timeout_s: 0}\nstages: []\n")
