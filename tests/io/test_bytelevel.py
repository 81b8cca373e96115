"""The piece cache of byte-level BPE tokenizers gives tokenizers' own ids: on generated
text over the characters it takes and those it leaves to tokenizers, on the real
samples (tests/io/test_tokens.py compares whole files with datatrove's), and it stands
aside for tokenizers it does not describe."""

from __future__ import annotations

import gzip
import json
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tokenizers import decoders

from curation.io import bytelevel
from curation.io.tokens import TokenizerSpec, _FastTokenizer
from tests.conftest import shared_file, train_bytelevel_bpe

EOS = "<|endoftext|>"


@pytest.fixture(scope="module", params=["gpt2", "llama3"])
def bpe(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A byte-level BPE of GPT-2's pipeline, then of Llama 3's, trained here on the C4
    sample and text over the characters below, so that they have merges of their own."""
    c4 = shared_file("web/c4-sample-1000.jsonl.gz")
    texts = [json.loads(line)["text"] for line in gzip.open(c4, "rt", encoding="utf-8")]
    texts.append("".join(PIECES) * 3)
    path = tmp_path_factory.mktemp(request.param) / "tokenizer.json"
    split = bytelevel.LLAMA3 if request.param == "llama3" else None
    return train_bytelevel_bpe(texts, 3000, path, EOS, split)


# what the regex and its classes turn on: contractions, every kind of white space (and
# U+001C-U+001F, which Python calls space and tokenizers does not), letters and numbers
# beyond ASCII, punctuation; then characters left to tokenizers (a combining accent, CJK,
# emoji, NEL, a zero-width space, a ligature) and an added token's text
PIECES = [
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'", "''", "s", "re", " ", "  ",
    "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x00", "a", "Z", "word", "0",
    "123", " 4", "!", "?!", "...", "-", "(", "é", "ß", "ª", "µ", "º", "²", "½", "×",
    "\u00a0", "Ł", "ǅ", "ƛ", "ɏ", "—", "“", "”", "…", "\u2028", "\u2029", "\u202f",
    "\u205f", "‰", "⁄", "‿", "⁅", "ſ", "'ſ", "'İ", "'LL", "1234567", "\r\n\n", " \n",
    "\u0301", "日本", "😀", "\u0085", "\u200b", "ﬁ", EOS,
]  # fmt: skip


def encoders(path: Path, spec: TokenizerSpec) -> tuple[_FastTokenizer, _FastTokenizer]:
    return (
        _FastTokenizer(path, "t", spec, False, pieces=True),
        _FastTokenizer(path, "t", spec, False, pieces=False),
    )


def same_ids(path: Path, texts: list[str], spec: TokenizerSpec) -> None:
    """The same ids with the cache as without, and for every text the cache takes, the
    same pieces as the tokenizer's own pre-tokenizer (which ids alone may not show: a
    piece cut in two often has the ids of the whole)."""
    cached, plain = encoders(path, spec)
    assert cached.pieces is not None
    array = pa.array(texts, pa.large_string())
    own = cached._tokenizer.pre_tokenizer
    decode = decoders.ByteLevel().decode
    for text, taken in zip(texts, cached.pieces.cached(array).tolist(), strict=True):
        if taken:
            pieces = [decode([piece]) for piece, _ in own.pre_tokenize_str(text)]
            assert cached.pieces._split(text) == pieces, text
    counts, flat = cached.encode(array)
    want_counts, want_flat = plain.encode(array)
    assert counts.tolist() == want_counts.tolist()
    assert flat.tolist() == want_flat.tolist()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(PIECES) | st.characters(max_codepoint=0x2FFF), max_size=30),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([(None, None), (EOS, None), (EOS, EOS)]),
)
@example([["'s", " ", "\x1c", "a"], ["\u00a0", " ", "x"], []], (EOS, None))
@example([[" ", " ", "'", "re", "\u2028", "\n"]], (None, None))
def test_the_cached_pieces_give_tokenizers_ids(bpe: Path, docs: list[list[str]], ends) -> None:
    same_ids(bpe, ["".join(doc) for doc in docs], TokenizerSpec(str(bpe), *ends))


def test_every_pair_and_triple_of_pieces(bpe: Path) -> None:
    """Every two pieces side by side, and every three of the ones the cache takes: where
    one alternative of the regex meets another."""
    ranges = bytelevel._RANGES
    taken = [
        p for p in PIECES if p != EOS and all(any(a <= ord(c) <= b for a, b in ranges) for c in p)
    ]
    pairs = [a + b for a in PIECES for b in PIECES]
    triples = [a + b + c for a in taken for b in taken for c in taken[::3]]
    same_ids(bpe, pairs + triples, TokenizerSpec(str(bpe), EOS))


def test_the_real_samples_give_tokenizers_ids(bpe: Path) -> None:
    c4 = shared_file("web/c4-sample-1000.jsonl.gz")
    pile = shared_file("web/pile-sample-1000.jsonl")
    texts = [json.loads(line)["text"] for line in gzip.open(c4, "rt", encoding="utf-8")]
    texts += [json.loads(line)["contents"] for line in open(pile, encoding="utf-8")]
    for book in sorted(shared_file("reference").glob("*.txt")):
        texts += book.read_text(encoding="utf-8").split("\n\n")
    cached, _ = encoders(bpe, TokenizerSpec(str(bpe), EOS))
    share = cached.pieces.cached(pa.array(texts, pa.large_string())).mean()  # type: ignore[union-attr]
    assert 0.9 < share < 1.0  # most take the cache, some do not
    same_ids(bpe, texts, TokenizerSpec(str(bpe), EOS))


def test_a_full_cache_starts_again(bpe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bytelevel, "_CACHE_PIECES", 50)
    texts = ["one two three four. " * 20, "five six, seven!", "eight nine ten " * 30]
    cached, _ = encoders(bpe, TokenizerSpec(str(bpe)))
    for _ in range(3):
        same_ids(bpe, texts, TokenizerSpec(str(bpe)))
        cached.encode(pa.array(texts, pa.large_string()))
        assert len(cached.pieces._ids) <= 50 + 40  # type: ignore[union-attr]


def test_the_classes_are_unicode_s_for_every_character_taken() -> None:
    """Letters, numbers and white space as the regex module's Unicode tables say (the
    classes of these characters have not moved across versions), and NFC leaves every
    one alone (so an NFC normalizer changes no text the cache takes)."""
    for low, high in bytelevel._RANGES:
        for code in range(low, high + 1):
            char = chr(code)
            assert unicodedata.normalize("NFC", char) == char
            unicode = (
                "L" if regex.match(r"\p{L}", char) else
                "N" if regex.match(r"\p{N}", char) else
                "S" if regex.match(r"\s", char) and code not in range(0x1C, 0x20) else
                "O"
            )  # fmt: skip
            assert unicode == _our_class(char), hex(code)


def _our_class(char: str) -> str:
    """The class our written-out pattern gives ``char``: its piece beside known others."""
    pattern = bytelevel.written_out(bytelevel.GPT2)
    if pattern.findall("a" + char) == ["a" + char]:
        return "L"
    if pattern.findall("1" + char) == ["1" + char]:
        return "N"
    if pattern.findall("!" + char) == ["!" + char]:
        return "O"
    return "S" if pattern.findall("\t" + char) == ["\t" + char] else "?"


@pytest.mark.parametrize(
    "change",
    [
        {"normalizer": {"type": "NFKC"}},
        {"normalizer": {"type": "Lowercase"}},
        {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                           "use_regex": True}},
        {"pre_tokenizer": {"type": "Whitespace"}},
        {"truncation": {"max_length": 8, "strategy": "LongestFirst", "stride": 0,
                        "direction": "Right"}},
    ],
)  # fmt: skip
def test_other_pipelines_go_to_tokenizers_whole(bpe: Path, tmp_path: Path, change: dict) -> None:
    path = changed(bpe, tmp_path, change)
    cached, plain = encoders(path, TokenizerSpec(str(path), EOS))
    assert cached.pieces is None
    assert np.array_equal(cached.encode(TEXTS)[1], plain.encode(TEXTS)[1])


def test_a_post_processor_of_its_own_takes_the_cache_once_replaced(
    bpe: Path, tmp_path: Path
) -> None:
    """RoBERTa's post-processor adds ids: the cache stands aside, unless --eos or --bos
    replaces it."""
    roberta = {
        "type": "RobertaProcessing",
        "sep": ["</s>", 1],
        "cls": ["<s>", 2],
        "trim_offsets": True,
        "add_prefix_space": False,
    }
    path = changed(bpe, tmp_path, {"post_processor": roberta})
    own, _ = encoders(path, TokenizerSpec(str(path)))
    assert own.pieces is None
    assert own.encode(TEXTS)[1][:1].tolist() == [2]  # its own begin id
    same_ids(path, TEXTS.to_pylist(), TokenizerSpec(str(path), EOS))


TEXTS = pa.array(["Some Text, with 12 numbers and ½ — “quotes”.", "x"], pa.large_string())


def changed(path: Path, folder: Path, change: dict) -> Path:
    """A copy of the tokenizer file ``path`` with the top-level fields of ``change``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(change)
    out = folder / "other.json"
    out.write_text(json.dumps(data), encoding="utf-8")
    return out
