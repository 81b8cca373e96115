"""gopher_repetition against datatrove's GopherRepetitionFilter on the real samples."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.repetition import (
    GopherRepetition,
    GopherRepetitionParams,
    _greedy_repeats,
    _ngram_measure,
)
from tests.filters.parity import compare, real_documents


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["c4", "pile"])
def test_parity_with_datatrove(sample: str) -> None:
    from datatrove.pipeline.filters import GopherRepetitionFilter

    texts = real_documents()[sample]
    parity = compare(GopherRepetitionFilter(), "gopher_repetition", texts)
    assert parity.agreement >= 0.99, parity.disagreements()
    loose = dict(dup_line_frac=0.5, top_n_grams=[(2, 0.3)], dup_n_grams=[(6, 0.2)])
    other = compare(GopherRepetitionFilter(**loose), "gopher_repetition", texts, **loose)
    assert other.agreement >= 0.99, other.disagreements()


def run(texts: list[str], **params: object) -> pa.Table:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    return GopherRepetition(GopherRepetitionParams(**params)).process(table)  # type: ignore[arg-type]


def test_rules_name_themselves() -> None:
    # long enough that no single n-gram is a large part of it, and nothing repeats
    prose = " ".join(f"w{i}" for i in range(600))
    out = run(
        [
            prose,
            "\n\n".join(["A repeated paragraph of text here."] * 4 + [prose]),
            "\n".join(["same line"] * 5 + [prose]),
            "",
        ]
    )
    assert out["drop_reason"].to_pylist() == [
        None,
        "gopher_repetition:dup_para_frac",
        "gopher_repetition:dup_line_frac",
        "gopher_repetition:empty",
    ]
    assert out["gopher_dup_para_frac"][1].as_py() == pytest.approx(3 / 5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=0, max_size=60), st.integers(2, 6))
def test_greedy_count_never_exceeds_the_vectorised_bound(words: list[int], size: int) -> None:
    """The bound that lets us skip the exact count must never be below it."""
    hashes = np.array(words, dtype=np.uint64)
    length = np.ones(len(words), dtype=np.int64)
    starts = np.array([0, len(words)])
    bound = _ngram_measure(hashes, length, starts, np.array([0]), size, False)[0]
    assert _greedy_repeats(hashes, length, size) <= bound


def measures_in_python(words: list[tuple[int, int]], size: int) -> tuple[int, int]:
    """A document's top n-gram characters (``Counter.most_common``, words joined by
    spaces) times its count, and the characters of the words that n-grams seen before
    cover; words are (hash, characters) pairs."""
    grams = [tuple(words[i : i + size]) for i in range(len(words) - size + 1)]
    if not grams:
        return 0, 0
    gram, count = Counter(grams).most_common(1)[0]
    top = count * (sum(chars for _, chars in gram) + size - 1)
    covered: set[int] = set()
    for i, g in enumerate(grams):
        if g in grams[:i]:
            covered.update(range(i, i + size))
    return top, sum(words[w][1] for w in covered)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([(0, 3), (1, 1), (2, 5), (3, 2)]), max_size=40), max_size=5),
    st.integers(1, 6),
    st.data(),
)
def test_ngram_measures_as_python_counts(
    documents: list[list[tuple[int, int]]], size: int, data: st.DataObject
) -> None:
    """Per document, for all documents or any subset: the compiled table's counts equal
    Python's (same word hash means same word, and the same characters)."""
    hashes = np.array([h for doc in documents for h, _ in doc], np.uint64) * np.uint64(
        0x9E3779B97F4A7C15
    )
    length = np.array([c for doc in documents for _, c in doc], np.int64)
    starts = np.r_[0, np.cumsum([len(doc) for doc in documents])].astype(np.int64)
    chosen = data.draw(
        st.lists(st.sampled_from(range(len(documents))), unique=True) if documents else st.just([])
    )
    docs = np.array(sorted(chosen), np.int64)
    top = _ngram_measure(hashes, length, starts, docs, size, True)
    covered = _ngram_measure(hashes, length, starts, docs, size, False)
    expected = [measures_in_python(documents[d], size) for d in docs]
    assert list(zip(top.tolist(), covered.tolist(), strict=True)) == expected


def greedy_repeats_in_python(hashes: np.ndarray, length: np.ndarray, size: int) -> int:
    """datatrove's loop, over tuples of word hashes."""
    seen: set[tuple[int, ...]] = set()
    keys = hashes.tolist()
    total, index = 0, 0
    while index < len(keys) - size + 1:
        gram = tuple(keys[index : index + size])
        if gram in seen:
            total += int(length[index : index + size].sum())
            index += size
        else:
            seen.add(gram)
            index += 1
    return total


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 9)), max_size=80), st.integers(1, 10))
def test_greedy_count_as_datatrove_loop(words: list[tuple[int, int]], size: int) -> None:
    hashes = np.array([w for w, _ in words], np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    length = np.array([n for _, n in words], np.int64)
    assert _greedy_repeats(hashes, length, size) == greedy_repeats_in_python(hashes, length, size)
