"""bff_dedup against a plain Python reading of BFF's old-both mode (DCLM's dedup).

The reference below follows BFF's ``process_line_oldboth`` step by step, with exact
n-grams (tuples of words) in a Python set instead of a Bloom filter, each paragraph window
tokenized on its own as BFF does; the stage hashes the n-grams of whole texts at once.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from curation.batch import DROP_REASON
from curation.dedup import bff
from curation.dedup.bff import (
    WHITE_SPACE,
    BffDedup,
    BffDedupParams,
    HeldNgrams,
    shards_apart,
    without_paragraphs,
)
from curation.stage import BarrierTooLarge
from curation.uax29 import is_word, paragraph_ngrams, pieces
from tests.conftest import on_every_executor, read_output, recipe_of, run_local
from tests.test_uax29 import ALPHABET

_BOUNDARY = regex.compile(r"\b", flags=regex.WORD | regex.V1)


def _grams(words: list[str], n: int, least: int) -> list[tuple[str, ...]]:
    if len(words) >= n:
        return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return [tuple(words)] if len(words) >= least else []


def _tokens(paragraph: str) -> list[str]:
    return [w for w in _BOUNDARY.split(paragraph) if w.strip(WHITE_SPACE)]


def _windows(text: str) -> list[str]:
    cuts = [0] + [i for i, ch in enumerate(text) if ch == "\n"] + [len(text)]
    return [text[a:b] for a, b in itertools.pairwise(cuts)]


def reference(
    docs: list[dict],
    n: int = 13,
    least: int = 13,
    threshold: float = 0.8,
    against: list[str] = (),  # type: ignore[assignment]
    update: bool = True,
    documents: bool = True,
) -> dict[str, tuple[str | None, str, int, float | None]]:
    """id -> (drop reason, text, paragraphs removed, contained fraction), BFF's old-both
    over the documents in id order."""
    held: set[tuple[str, ...]] = set()
    for text in against:
        for window in _windows(text):
            held.update(_grams(_tokens(window), n, least))
    out = {}
    for doc in sorted(docs, key=lambda d: d["id"]):
        total = contained = removed = 0
        kept = []
        for window in _windows(doc["text"]):
            grams = _grams(_tokens(window), n, least)
            found = sum(g in held for g in grams)
            total += len(grams)
            contained += found
            if grams and found / len(grams) > threshold:
                removed += 1
            else:
                kept.append(window)
                if update:
                    held.update(grams)
        fraction = contained / total if total else None
        text = "".join(kept)
        if documents and fraction is not None and fraction > threshold:
            out[doc["id"]] = ("bff_dedup:duplicate_document", doc["text"], removed, fraction)
        elif removed and not text.strip(WHITE_SPACE):
            out[doc["id"]] = ("bff_dedup:all_duplicated", doc["text"], removed, fraction)
        else:
            out[doc["id"]] = (None, text, removed, fraction)
    return out


def planted(c4_path: Path, pile_path: Path, folder: Path) -> list[dict]:
    """The C4 and Pile samples, and documents made from them: whole copies with a
    paragraph changed, mixes of others' paragraphs with new ones, copies with a word
    changed in every paragraph, a paragraph repeated within a document, and CRLF copies."""
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        c4 = [json.loads(line)["text"] for line in handle]
    with open(pile_path, encoding="utf-8") as handle:
        pile = [json.loads(line)["contents"] for line in handle][:300]
    docs = [{"id": f"c4-{i:04d}", "text": t} for i, t in enumerate(c4)]
    docs += [{"id": f"pile-{i:04d}", "text": t} for i, t in enumerate(pile)]
    rng = random.Random(7)
    texts = c4 + pile
    for k in range(120):
        source = texts[rng.randrange(len(texts))]
        lines = source.split("\n")
        kind = k % 6
        if kind == 0:  # a copy with one paragraph new
            lines[rng.randrange(len(lines))] = f"A new paragraph number {k} " * 3
        elif kind == 1:  # others' paragraphs among new ones
            other = texts[rng.randrange(len(texts))].split("\n")
            lines = [*lines[: len(lines) // 2], f"Fresh words for mix {k} here.", *other[:3]]
        elif kind == 2:  # a word changed in every paragraph
            lines = [" ".join(["changed", *line.split(" ")[1:]]) for line in lines]
        elif kind == 3:  # a paragraph twice within the document
            lines = lines + lines[:1]
        elif kind == 4:  # CRLF line ends
            lines = [line + "\r" for line in lines[:-1]] + lines[-1:]
        else:  # the first paragraph only
            lines = lines[:1]
        # some planted ids sort before their sources, so the source is the copy that goes
        prefix = "a" if k % 4 == 0 else "z"
        docs.append({"id": f"{prefix}-planted-{k:03d}", "text": "\n".join(lines)})
    folder.mkdir()
    rng.shuffle(docs)
    for shard in range(4):
        pq.write_table(pa.Table.from_pylist(docs[shard::4]), folder / f"part-{shard}.parquet")
    return docs


def _got(out: Path) -> dict[str, tuple[str | None, str, int, float | None]]:
    rows = read_output(out, "kept").to_pylist() + read_output(out, "dropped").to_pylist()
    return {
        r["id"]: (
            r.get(DROP_REASON),
            r["text"],
            r["bff_dedup_paragraphs_removed"],
            r["bff_dedup_contained_fraction"],
        )
        for r in rows
    }


def test_matches_bff_old_both_on_the_samples(
    c4_path: Path, pile_path: Path, tmp_path: Path
) -> None:
    docs = planted(c4_path, pile_path, tmp_path / "in")
    recipe = "input: {batch_rows: 97}\nstages:\n  - bff_dedup: {}\n"
    stats = run_local(recipe_of(recipe, tmp_path / "in"), tmp_path / "out")
    got = _got(tmp_path / "out")
    expected = reference(docs)
    assert got.keys() == expected.keys()
    for key, (reason, text, removed, fraction) in expected.items():
        assert got[key][:3] == (reason, text, removed), key
        assert got[key][3] == pytest.approx(fraction), key
    reasons = [r for r, *_ in expected.values()]
    # the planted copies (and the samples' own repeats) drop documents and cut paragraphs
    assert reasons.count("bff_dedup:duplicate_document") >= 30
    assert sum(1 for r, _, removed, _ in expected.values() if r is None and removed) >= 20
    assert stats["rows"]["read"] == len(docs)
    stage = next(s for s in stats["stages"] if s["name"] == "bff_dedup")
    assert stage["rows_in"] == len(docs)
    by_reason = stage["dropped_by_reason"]
    assert by_reason["bff_dedup:duplicate_document"] == reasons.count(
        "bff_dedup:duplicate_document"
    )
    assert stage["rows_kept"] == reasons.count(None)


def test_other_settings_and_against(c4_path: Path, pile_path: Path, tmp_path: Path) -> None:
    """Shorter n-grams, a lower threshold, and the C4 sample as `against` of the planted
    documents alone (the Pile's among them), with and without `only_against`."""
    docs = planted(c4_path, pile_path, tmp_path / "in")
    held = [d for d in docs if d["id"].startswith("c4-")]
    rest = [d for d in docs if not d["id"].startswith("c4-")]
    (tmp_path / "rest.jsonl").write_text("".join(json.dumps(d) + "\n" for d in rest))
    (tmp_path / "held.jsonl").write_text("".join(json.dumps(d) + "\n" for d in held))
    for only in (False, True):
        out = tmp_path / f"out-{only}"
        recipe = (
            "stages:\n  - bff_dedup: {ngram: 5, min_ngram: 2, threshold: 0.5, "
            f"against: [{tmp_path / 'held.jsonl'}], only_against: {str(only).lower()}}}\n"
        )
        run_local(recipe_of(recipe, tmp_path / "rest.jsonl"), out)
        got = _got(out)
        against = [d["text"] for d in held]
        expected = reference(rest, 5, 2, 0.5, against, update=not only)
        assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in expected.items()}
        gone = sum(1 for v in expected.values() if v[0])
        assert gone >= 20


@pytest.mark.ray
@pytest.mark.slow
def test_same_rows_local_and_ray(c4_path: Path, pile_path: Path, tmp_path: Path) -> None:
    planted(c4_path, pile_path, tmp_path / "in")
    outputs = on_every_executor(
        recipe_of("stages:\n  - bff_dedup: {}\n", tmp_path / "in"), tmp_path
    )
    assert outputs["local"] == outputs["ray1"] == outputs["ray2"]


# "a א b c" holds a Hebrew letter: its text goes to the regex module
PARAGRAPHS = ["", " ", "a b c", "a b c d", "b c d e f", "x y", "a b", "e f g h", "c d e", "a א b c"]


@settings(max_examples=150, deadline=None)
@example(  # a filter sized for 2 n-grams erred on a third (its 128 bits were too few)
    docs=[(["e f g h"], 0)],
    held=[["a b c d"]],
    n=3,
    least=1,
    threshold=0.0,
    only_against=True,
    documents=False,
    from_files=False,
    bloom=True,
)
@given(
    docs=st.lists(
        st.tuples(st.lists(st.sampled_from(PARAGRAPHS), min_size=1, max_size=5), st.integers(0, 2)),
        max_size=10,
    ),
    held=st.lists(st.lists(st.sampled_from(PARAGRAPHS), min_size=1, max_size=3), max_size=3),
    n=st.integers(1, 4),
    least=st.integers(1, 4),
    threshold=st.sampled_from([0.0, 0.3, 0.5, 0.8, 1.0]),
    only_against=st.booleans(),
    documents=st.booleans(),
    from_files=st.booleans(),
    bloom=st.booleans(),
)
def test_stage_matches_the_reference_on_any_paragraphs(
    tmp_path_factory: pytest.TempPathFactory,
    docs: list[tuple[list[str], int]],
    held: list[list[str]],
    n: int,
    least: int,
    threshold: float,
    only_against: bool,
    documents: bool,
    from_files: bool,
    bloom: bool,
) -> None:
    """measure, the barrier and apply, shard by shard and with ids out of shard order,
    against the reference: the same texts, reasons, counts and fractions. The barrier
    reads the keys from the frame, or (``from_files``) a shard's file at a time; it holds
    the n-grams exactly or in a Bloom filter of 1e-9 false positives."""
    folder = tmp_path_factory.mktemp("bff")
    rows = [
        {"id": f"d{(i * 7) % 13:02d}-{i}", "text": "\n".join(lines), "shard": f"s{shard}"}
        for i, (lines, shard) in enumerate(docs)
    ]
    against = ["\n".join(lines) for lines in held]
    params: dict = {"ngram": n, "min_ngram": least, "threshold": threshold}
    params["documents"] = documents
    if bloom:
        params |= {"filter": "bloom", "false_positive_rate": 1e-9}
    if against:
        path = folder / "held.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in against))
        params |= {"against": [str(path)], "only_against": only_against}
    else:
        only_against = False
    stage = BffDedup(BffDedupParams(**params))
    measured = {}
    for shard in sorted({r["shard"] for r in rows}):
        table = pa.Table.from_pylist([r for r in rows if r["shard"] == shard])
        table = table.append_column(DROP_REASON, pa.nulls(table.num_rows, pa.string()))
        measured[shard] = stage.measure(table)
    if from_files:
        (folder / "keys").mkdir()
        for shard, table in measured.items():
            pq.write_table(table.drop_columns(["text", DROP_REASON]), folder / "keys" / shard)
        stage.key_sources = {shard: [folder / "keys" / shard] for shard in measured}
    got = {}
    if measured:
        stage.decide(pl.from_arrow(pa.concat_tables(measured.values())).lazy(), folder / "d")
    for shard, table in measured.items():
        path = folder / "d" / f"{shard}.parquet"
        decisions = pq.read_table(path) if path.exists() else None
        for row in stage.apply(table, decisions).to_pylist():
            got[row["id"]] = (
                row[DROP_REASON],
                row["text"],
                row["bff_dedup_paragraphs_removed"],
                row["bff_dedup_contained_fraction"],
            )
    expected = reference(rows, n, least, threshold, against, not only_against, documents)
    assert got == expected


def test_the_bloom_filter_holds_every_n_gram_and_errs_at_its_rate() -> None:
    """Each n-gram a paragraph alone, at threshold 0 (a paragraph goes when its n-gram is
    found): every held n-gram is found, and fresh ones at about the rate asked."""
    rng = np.random.default_rng(0)
    held = rng.integers(0, 2**63, size=100_000, dtype=np.uint64)
    fresh = rng.integers(0, 2**63, size=100_000, dtype=np.uint64) | np.uint64(2**63)
    keys = np.r_[held, fresh]
    ones = np.ones(len(keys), dtype=np.int64)
    bounds = np.array([0, len(keys)])
    for rate in (0.01, 0.05):
        table = HeldNgrams(held, len(held), rate)
        # the optimal size: -ln(p) / ln(2)^2 bits an n-gram, 1.2 bytes at 1%
        assert table.bits.nbytes < len(held) * 1.3 * math.log(1 / rate) / math.log(100)
        _, found = table.take(keys, bounds, ones, bounds, np.array([0]), 0.0, False)
        assert found[: len(held)].all()
        assert rate * 0.7 < found[len(held) :].mean() < rate * 1.3


def test_a_bloom_filter_decides_as_the_reference_at_a_tiny_rate_and_more_at_a_large(
    c4_path: Path, pile_path: Path, tmp_path: Path
) -> None:
    """The planted samples through the stage with its n-grams in a Bloom filter: at 1e-9
    false positives the reference's decisions; at 0.9 many more paragraphs go."""
    docs = planted(c4_path, pile_path, tmp_path / "in")
    expected = reference(docs)
    removed = {}
    for rate in (1e-9, 0.9):
        out = tmp_path / f"out-{rate}"
        stage = f"bff_dedup: {{filter: bloom, false_positive_rate: {rate}}}"
        run_local(recipe_of(f"stages:\n  - {stage}\n", tmp_path / "in"), out)
        got = _got(out)
        removed[rate] = sum(v[2] for v in got.values())
        if rate < 0.01:
            assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in expected.items()}
    # false positives take paragraphs whose n-grams were never seen
    assert removed[0.9] > removed[1e-9] * 1.5


def test_shards_whose_ids_interleave_are_grouped_in_id_order() -> None:
    index = pl.DataFrame(
        {
            "shard": ["s1", "s1", "s2", "s2", "s3", "s4", "s4", "s5", "s6"],
            "id": ["b", "c", "a", "a0", "bb", "d", "f", "e", "f"],
        }
    )
    # s2 is first; s1 and s3 interleave; s4 spans s5; s6 shares s4's last id
    assert shards_apart(index) == [["s2"], ["s1", "s3"], ["s4", "s5", "s6"]]
    assert shards_apart(index.head(0)) == []


def test_files_of_disjoint_ids_give_the_reference_a_group_at_a_time(
    c4_path: Path, pile_path: Path, tmp_path: Path
) -> None:
    """Files named against the order of their ids, each of its own range but two that
    interleave, with copies across files: the barrier takes them a group at a time and
    decides as the reference does over all documents in id order."""
    docs = sorted(planted(c4_path, pile_path, tmp_path / "all"), key=lambda d: d["id"])
    folder = tmp_path / "in"
    folder.mkdir()
    quarter = len(docs) // 4
    ranges = [docs[:quarter], docs[quarter : 2 * quarter], docs[2 * quarter :]]
    files = {"z.parquet": ranges[0], "y.parquet": ranges[1][::2], "x.parquet": ranges[1][1::2]}
    files["a.parquet"] = ranges[2]
    for name, part in files.items():
        pq.write_table(pa.Table.from_pylist(part), folder / name)
    progress: list[str] = []
    original = BffDedup.decide

    def decide(self: BffDedup, keys: object, out: Path) -> None:
        self.progress = progress.append
        original(self, keys, out)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BffDedup, "decide", decide)
        run_local(recipe_of("stages:\n  - bff_dedup: {}\n", folder), tmp_path / "out")
    assert progress[-1].endswith("(group 3 of 3: shards whose ids interleave go together)")
    got = _got(tmp_path / "out")
    expected = reference(docs)
    assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in expected.items()}
    assert sum(1 for v in expected.values() if v[0]) >= 30


def bff_words(text: str) -> list[list[str]]:
    """BFF's words of ``text`` as the regex module cuts them, paragraph by paragraph."""
    flat, _, paragraph, paragraph_offsets = pieces(pa.array([text], pa.large_string()))
    word = is_word(flat)
    out: list[list[str]] = [[] for _ in range(paragraph_offsets[-1])]
    for piece, number in zip(
        flat.filter(pa.array(word)).to_pylist(), paragraph[word].tolist(), strict=True
    ):
        out[number].append(piece)
    return out


def test_words_are_bffs() -> None:
    """Pieces between UAX #29 word boundaries, punctuation kept, white space out (Rust's
    White_Space: the information separators U+001C-U+001F are words there, where Python's
    str.isspace and Arrow call them space); paragraphs cut at \\n and \\r\\n only."""
    text = "Don't stop, 3.14 times!\r\nNext\u2028line\u00a0\u00a0x\x1c\n\nend."
    assert bff_words(text) == [
        ["Don't", "stop", ",", "3.14", "times", "!"],
        ["Next", "line", "x", "\x1c"],
        [],
        ["end", "."],
    ]
    assert without_paragraphs("p0\np1\np2\np3", [0, 2]) == "\np1\np3"
    assert without_paragraphs("p0\np1", []) == "p0\np1"


def test_order_decides_which_copy_stays() -> None:
    """The first in the order given keeps its paragraph; a paragraph repeated within one
    document goes the second time; a paragraph of the held set goes everywhere."""
    a, b, c = np.uint64(11), np.uint64(22), np.uint64(33)
    # row 0: paragraphs [a b] [c]; row 1: [a b] [a b]
    hashes = np.array([a, b, c, a, b, a, b], dtype=np.uint64)
    hash_offsets = np.array([0, 3, 7])
    counts = np.array([2, 1, 2, 2])
    count_offsets = np.array([0, 2, 4])
    held = np.empty(0, np.uint64)
    contained, removed = HeldNgrams(held).take(
        hashes, hash_offsets, counts, count_offsets, np.array([0, 1]), 0.8, True
    )
    assert contained.tolist() == [0, 4] and removed.tolist() == [False, False, True, True]
    contained, removed = HeldNgrams(held).take(
        hashes, hash_offsets, counts, count_offsets, np.array([1, 0]), 0.8, True
    )
    assert contained.tolist() == [2, 2] and removed.tolist() == [True, False, False, True]
    contained, removed = HeldNgrams(np.array([c])).take(
        hashes, hash_offsets, counts, count_offsets, np.array([0, 1]), 0.8, False
    )
    assert contained.tolist() == [1, 0] and removed.tolist() == [False, True, False, False]


def two_copies(stage: BffDedup, words: int) -> tuple[pa.Table, pa.Table]:
    """Two documents of the same ``words`` distinct words, and their keys (one shard)."""
    text = " ".join(f"w{i}" for i in range(words))
    table = pa.table({"id": ["a", "b"], "text": [text, text], DROP_REASON: pa.nulls(2)})
    return table, stage.measure(table).append_column("shard", pa.array(["s", "s"]))


def test_the_barrier_stops_where_its_table_would_not_fit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stage = BffDedup(BffDedupParams())
    table, keys = two_copies(stage, 200)
    monkeypatch.setattr(bff, "available_bytes", lambda: 4096)
    with pytest.raises(BarrierTooLarge, match=r"2 documents with 376 n-grams"):
        stage.decide(pl.from_arrow(keys).lazy(), tmp_path / "d")
    assert not (tmp_path / "d").exists()
    monkeypatch.setattr(bff, "available_bytes", lambda: 2**30)
    stage.decide(pl.from_arrow(keys).lazy(), tmp_path / "d")
    out = stage.apply(
        table.append_column(bff._HASHES, keys[bff._HASHES]).append_column(
            bff._COUNTS, keys[bff._COUNTS]
        ),
        pq.read_table(tmp_path / "d" / "s.parquet"),
    )
    assert out[DROP_REASON].to_pylist() == [None, "bff_dedup:duplicate_document"]
    # where the exact table would not fit, a Bloom filter of the same n-grams does: 40,000
    # n-grams take a table of 1 MiB and their hashes 0.6, the filter 48 KiB
    _, keys = two_copies(stage, 20_000)
    monkeypatch.setattr(bff, "available_bytes", lambda: 1_000_000)
    with pytest.raises(BarrierTooLarge, match=r"up to 0\.0 GiB.*Hold them in BFF's Bloom"):
        stage.decide(pl.from_arrow(keys).lazy(), tmp_path / "e")
    bloom = BffDedup(BffDedupParams(filter="bloom"))
    bloom.decide(pl.from_arrow(keys).lazy(), tmp_path / "e")
    assert pq.read_table(tmp_path / "e" / "s.parquet")["contained"].to_pylist() == [19_988]


def _same_ngrams(texts: pa.Array, n: int, least: int) -> None:
    """The n-grams hashed within the word scan are those of the words' arrays."""
    ours, theirs = bff.ngrams(texts, n, least), bff.ngrams_of_words(texts, n, least)
    assert ours[0].to_pylist() == theirs[0].to_pylist()  # the n-grams' hashes, per text
    assert ours[1].to_pylist() == theirs[1].to_pylist()  # n-grams per paragraph, per text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.text(st.sampled_from(ALPHABET), max_size=40), st.text(max_size=10)),
        max_size=8,
    ),
    st.integers(1, 5),
    st.integers(1, 5),
)
def test_ngrams_hashed_in_the_scan_are_those_of_the_words(
    texts: list[str | None], n: int, least: int
) -> None:
    """Drawn texts, some left to the regex module (their n-grams put back in place)."""
    texts = [t if t is None else t.encode("utf-8", "replace").decode("utf-8") for t in texts]
    _same_ngrams(pa.array(texts, pa.large_string()), n, least)


@pytest.mark.parametrize(("n", "least"), [(13, 13), (5, 2)])
def test_ngrams_hashed_in_the_scan_on_real_text(
    c4_path: Path, pile_path: Path, n: int, least: int
) -> None:
    with gzip.open(c4_path, "rt", encoding="utf-8") as c4:
        rows = [json.loads(line)["text"] for line in c4]
    rows += [json.loads(line)["contents"] for line in pile_path.read_text("utf-8").splitlines()]
    texts = pa.array(rows)
    assert paragraph_ngrams(texts, np.ones(n, np.uint64), least)[-1].sum() > 0  # some hard
    _same_ngrams(texts, n, least)
