"""Sentences as spaCy's sentencizer cuts them (datatrove's English splitter)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.filters.sentences import sentence_ends

CASES = {
    "Hello. World": [6, 12],
    " Hello. World": [7, 13],  # white space opening a text is a token of its own
    "  Hello.  World": [8, 15],
    'Hi.\n"Quote" here.': [3, 17],  # the newline token opens the sentence, quote and all
    'Hi. "Quote" here.': [5, 17],  # without it the quote stays with the sentence before
    "Item one.\n- Item two. ": [9, 21],
    "end.The next": [4, 12],
    "U.S. is big. Mr. Smith went.": [12, 28],
    "Wow?! Yes... no. ok": [5, 16, 19],
    "Hello. \n": [6, 8],  # the last sentence may be white space alone
    "a.\n\n  b": [7],  # "a." is one token
    "x (y.) z": [8],
    "Sen. Carl Levin, D-Mich. said so.": [33],  # "Mich." joined again after the hyphen
    "the i.MX chip. Then": [14, 19],
    "mail john@example.com. Now": [22, 26],
    "Café. Été": [6, 12],  # byte offsets
    "!a": [1, 2],  # one piece, two sentences
    "?!b! c": [2, 4, 6],
    "": [],
    "   ": [3],
}


@pytest.mark.parametrize("text", list(CASES))
def test_cases_cut_as_spacy_cuts_them(text: str) -> None:
    per_text, ends = sentence_ends(pa.array([text], pa.large_string()))
    assert per_text.tolist() == [len(CASES[text])]
    assert ends.tolist() == CASES[text]


def test_cases_are_spacys(spacy_sentences: object) -> None:
    """The expected ends above are spaCy's own (its character offsets, as bytes)."""
    for text, ends in CASES.items():
        theirs = [len(text[:end].encode()) for _, end in spacy_sentences(text)]
        assert theirs == ends, text


@pytest.fixture(scope="module")
def spacy_sentences() -> object:
    pytest.importorskip("spacy", reason="spaCy (a dev dependency) checks the cases")
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    tokenizer = load_word_tokenizer("en")
    return tokenizer.span_tokenize


def test_real_text_cut_as_spacy_cuts_it(
    c4_path: Path, pile_path: Path, spacy_sentences: object
) -> None:
    """On the C4 and Pile samples (2,000 documents, 27,851 sentences) every sentence
    ends where spaCy ends it but in at most 2 documents (one is known: a Windows path
    spaCy reads as two words)."""
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    with open(pile_path, encoding="utf-8") as handle:
        texts += [json.loads(line)["contents"] for line in handle]
    per_text, ends = sentence_ends(pa.array(texts, pa.large_string()))
    assert per_text.sum() > 25_000
    differ, at = 0, 0
    for text, count in zip(texts, per_text.tolist(), strict=True):
        raw = text.encode()
        mine = [len(raw[:e].decode()) for e in ends[at : at + count].tolist()]
        at += count
        differ += mine != [end for _, end in spacy_sentences(text)]
    assert differ <= 2


PIECES = ["Hello", "world", ".", "!", "?", "...", '"', "(", ")", "U.S.", "Mr.", "-", "é", "3.5"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(st.sampled_from(PIECES), st.sampled_from(["", " ", "  ", "\n", " \n"])),
            max_size=12,
        ),
        max_size=6,
    )
)
def test_sentences_tile_the_text(docs: list[list[tuple[str, str]]]) -> None:
    """Ends rise strictly within each text; the last is where its last token ends (only a
    single trailing space is in no sentence); every sentence but the last holds a
    character other than white space."""
    texts = ["".join(p + s for p, s in doc) for doc in docs]
    per_text, ends = sentence_ends(pa.array(texts, pa.large_string()))
    at = 0
    for text, count in zip(texts, per_text.tolist(), strict=True):
        mine = ends[at : at + count].tolist()
        at += count
        raw = text.encode()
        assert mine == sorted(set(mine))
        if not raw:
            assert mine == []
            continue
        single_space_after_a_token = (
            len(raw) > 1 and raw.endswith(b" ") and not raw[:-1].decode()[-1].isspace()
        )
        assert mine[-1] == len(raw) - single_space_after_a_token
        starts = [0, *mine[:-1]]
        assert all(raw[s:e].strip() for s, e in zip(starts[:-1], mine[:-1], strict=True))


def test_more_sentences_than_pieces() -> None:
    """A piece may open a sentence and a text ends one more: "!a" is one piece of two
    sentences. The batch's sentences outnumber its pieces (this wrote past its buffer)."""
    per_text, ends = sentence_ends(pa.array(["!a"] * 1000 + ["?!b! c"], pa.large_string()))
    assert per_text.tolist() == [2] * 1000 + [3]
    assert ends.tolist() == [1, 2] * 1000 + [2, 4, 6]


ODD = ["a", "Word", " ", "\n", "\t", ".", "!", "?", '"', "(", ")", "-", ",", "U.S.", "Mr."]
ODD += ["...", "e.g.", "3", "é", "\u0301", "\u3002", "\u00a0", "\u2003", "漢", "😀", "\x85"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(ODD), max_size=30).map("".join), max_size=8))
def test_any_text_is_cut_on_character_boundaries(texts: list[str]) -> None:
    """Odd mixes (combining accents, CJK stops, emoji, Unicode spaces): ends rise
    strictly, fall on character boundaries, and end within the text."""
    per_text, ends = sentence_ends(pa.array(texts, pa.large_string()))
    assert len(ends) == per_text.sum()
    at = 0
    for text, count in zip(texts, per_text.tolist(), strict=True):
        mine = ends[at : at + count].tolist()
        at += count
        raw = text.encode()
        assert mine == sorted(set(mine)) and (not mine or 0 < mine[-1] <= len(raw))
        for end in mine:
            raw[:end].decode()  # a cut inside a character raises
