"""sentence_dedup against datatrove's SentenceDedup, on real text and on any sentences."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import DROP_REASON
from curation.dedup.lines import repeated_lines
from curation.dedup.sentences import SentenceDedup, SentenceDedupParams
from curation.utf8 import byte_slices, line_bounds, string_buffers
from tests.conftest import on_every_executor, read_output, recipe_of, run_local

REASONS = {f"sentence_dedup:{r}" for r in ("all_duplicated", "too_few_words", "too_few_sentences")}


@pytest.fixture(scope="module")
def datatrove_en() -> object:
    pytest.importorskip("spacy", reason="datatrove's English splitter needs spaCy (dev)")
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    return load_word_tokenizer("en")


def corpus(c4_path: Path, pile_path: Path, each: int, planted: int, cut: str = ". ") -> list[dict]:
    """``each`` C4 and Pile documents, then ``planted`` documents made of a run of
    sentences (pieces between ``cut``s: lines with ``"\n"``) of one of them, one of their
    own and a run of another's; ids sort in this order (datatrove keeps the first copy by
    position, we by id)."""
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle][:each]
    with open(pile_path, encoding="utf-8") as handle:
        texts += [json.loads(line)["contents"] for line in handle][:each]
    rng = random.Random(0)
    for n in range(planted):
        a, b = (t.split(cut) for t in rng.sample(texts[: 2 * each], 2))
        i, j = rng.randrange(len(a)), rng.randrange(len(b))
        own = f"Planted sentence number {n} stands here"
        texts.append(cut.join([*a[i : i + rng.randint(1, 6)], own, *b[j : j + rng.randint(1, 8)]]))
    return [{"id": f"d{i:05d}", "text": t} for i, t in enumerate(texts)]


def datatrove_kept(
    docs: list[dict], folder: Path, split_sentences: bool = True, min_words_to_remove_span: int = 0
) -> dict[str, str]:
    """datatrove's three steps, one task: the kept documents' texts by id."""
    from datatrove.data import Document
    from datatrove.pipeline.dedup.sentence_dedup import (
        SentDedupConfig,
        SentenceDedupFilter,
        SentenceDedupSignature,
        SentenceFindDedups,
    )

    config = SentDedupConfig(
        split_sentences=split_sentences, min_words_to_remove_span=min_words_to_remove_span
    )

    def documents() -> object:
        return (Document(text=d["text"], id=d["id"]) for d in docs)

    SentenceDedupSignature(output_folder=str(folder / "sigs"), config=config).run(documents())
    SentenceFindDedups(str(folder / "sigs"), str(folder / "dups"), config=config).run()
    step = SentenceDedupFilter(data_folder=str(folder / "dups"), config=config)
    return {d.id: d.text for d in step.run(documents())}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("split", "min_words"), [("sentences", 0), ("lines", 0), ("sentences", 8), ("lines", 5)]
)
def test_same_documents_and_texts_as_datatrove(
    c4_path: Path, pile_path: Path, tmp_path: Path, datatrove_en: object, split: str, min_words: int
) -> None:
    """1,200 real documents and 300 planted ones, in 3 shards of several batches: the same
    documents kept, each with the same text, as datatrove's SentenceDedup keeps, with
    spans of sentences or (``split_sentences=False``) of lines, and with its
    ``min_words_to_remove_span``."""
    docs = corpus(
        c4_path, pile_path, each=600, planted=300, cut=". " if split == "sentences" else "\n"
    )
    (tmp_path / "in").mkdir()
    for shard in range(3):
        pq.write_table(
            pa.Table.from_pylist(docs[shard * 500 : (shard + 1) * 500]),
            tmp_path / "in" / f"part-{shard}.parquet",
        )
    recipe = recipe_of(
        f"input: {{batch_rows: 120}}\nstages:\n  - sentence_dedup: {{split: {split}, "
        f"min_words_to_remove_span: {min_words}}}\n",
        tmp_path / "in",
    )
    stats = run_local(recipe, tmp_path / "out")
    kept = {r["id"]: r["text"] for r in read_output(tmp_path / "out", "kept").to_pylist()}
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    theirs = datatrove_kept(docs, tmp_path / "datatrove", split == "sentences", min_words)
    assert kept == theirs
    changed = [i for i, t in kept.items() if t != docs[int(i[1:])]["text"]]
    assert len(changed) >= 20 and len(dropped) >= 100  # the planted spans did something
    assert all(r["text"] == docs[int(r["id"][1:])]["text"] for r in dropped)  # as they came
    stage = next(s for s in stats["stages"] if s["name"] == "sentence_dedup")
    assert set(stage["dropped_by_reason"]) <= REASONS
    assert stage["rows_in"] == 1500 == stage["rows_kept"] + stage["rows_dropped"]
    assert stage["rows_dropped"] == len(dropped) == sum(stage["dropped_by_reason"].values())


# between sentences: spaces and line breaks of every kind str.splitlines knows
GAPS = [" ", "\n", "  ", "\n\n", "\r\n", "\r", " \n ", "\u2028", "\x0c", "\x85"]
SENTENCES = [
    "Alpha beta gamma.",
    "Delta 12 epsilon!",
    "alpha, BETA gamma.",  # the first once simplified
    "Zeta eta?",
    "Théta iota.",
    "Theta iota.",  # the one before without its accent
    "Kappa 7.5 lambda.",
    "Kappa 3,1 lambda.",  # numbers fold to 0
    "...",
    "Mu nu xi",
]


def reference(
    rows: list[dict],
    tokenizer: object,
    n: int,
    min_words: int,
    min_sentences: int,
    split: str = "sentences",
) -> dict[str, tuple[str | None, int]]:
    """id -> (text kept, or None when dropped; units removed), one document at a time as
    datatrove's three steps work, the first copy of a span being the smallest id's; with
    ``split`` lines, as its ``split_sentences=False`` does."""
    from datatrove.utils.text import simplify_text

    def pieces(text: str) -> list[str]:
        if split == "lines":
            return text.splitlines()
        ends = [end for _, end in tokenizer.span_tokenize(text)]  # type: ignore[attr-defined]
        return [text[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=False)]

    spans: dict[str, list[str | None]] = {}
    for row in rows:
        units = pieces(row["text"])
        simple = [simplify_text(p) for p in units if split == "lines" or p.strip()]
        keys = [" ".join(simple[i : i + n]) for i in range(len(simple) - n + 1)]
        spans[row["id"]] = [k if k.strip() else None for k in keys]
    first: dict[str, tuple[str, int]] = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        for i, key in enumerate(spans[row["id"]]):
            if key is not None:
                first.setdefault(key, (row["id"], i))
    expected: dict[str, tuple[str | None, int]] = {}
    for row in rows:
        keys = spans[row["id"]]
        dup = [i for i, k in enumerate(keys) if k is not None and first[k] != (row["id"], i)]
        gone = {j for i in dup for j in range(i, i + n)}
        parts = pieces(row["text"])
        gone &= set(range(len(parts)))
        if not gone:
            expected[row["id"]] = (row["text"], 0)
            continue
        joiner = "\n" if split == "lines" else ""
        new = joiner.join(p for j, p in enumerate(parts) if j not in gone).lstrip()
        words = len(tokenizer.word_tokenize(new)) if new else 0  # type: ignore[attr-defined]
        drop = (
            not new
            or words < min_words
            or (min_sentences and len(tokenizer.span_tokenize(new)) < min_sentences)  # type: ignore[attr-defined]
        )
        expected[row["id"]] = (None if drop else new, len(gone))
    return expected


@settings(max_examples=120, deadline=None)
@given(
    docs=st.lists(
        st.tuples(
            st.lists(
                st.tuples(st.sampled_from(SENTENCES), st.sampled_from(GAPS)),
                max_size=9,
            ),
            st.integers(0, 2),
        ),
        max_size=10,
    ),
    n=st.integers(1, 3),
    min_words=st.sampled_from([0, 6]),
    min_sentences=st.integers(0, 3),
    split=st.sampled_from(["sentences", "lines"]),
)
def test_stage_matches_the_reference_on_any_sentences(
    datatrove_en: object,
    docs: list[tuple[list[tuple[str, str]], int]],
    n: int,
    min_words: int,
    min_sentences: int,
    split: str,
) -> None:
    """measure, the barrier's decision and apply, shard by shard, against the reference:
    same texts kept, same rows dropped, same count of sentences (or lines) removed."""
    rows = [
        {"id": f"d{(i * 7) % 13:02d}-{i}", "text": "".join(s + gap for s, gap in sentences)}
        for i, (sentences, _) in enumerate(docs)
    ]
    shards = [f"s{shard}" for _, shard in docs]
    stage = SentenceDedup(
        SentenceDedupParams(
            n_sentences=n, min_doc_words=min_words, min_num_sentences=min_sentences, split=split
        )
    )
    measured = {}
    for shard in sorted(set(shards)):
        table = pa.Table.from_pylist([r for r, s in zip(rows, shards, strict=True) if s == shard])
        table = table.append_column(DROP_REASON, pa.nulls(table.num_rows, pa.string()))
        measured[shard] = stage.measure(table).append_column(
            "shard", pa.array([shard] * table.num_rows)
        )
    got: dict[str, tuple[str | None, int]] = {}
    if measured:
        decisions = repeated_lines(
            pa.concat_tables(measured.values()), True, "_sentence_dedup_hashes"
        )
        for shard, table in measured.items():
            mine = decisions.filter(pc.equal(decisions["shard"], shard)).drop(["shard"])
            out = stage.apply(table.drop(["shard"]), mine if mine.num_rows else None)
            for row in out.to_pylist():
                text = None if row[DROP_REASON] else row["text"]
                got[row["id"]] = (text, row["sentence_dedup_removed"])
                if row[DROP_REASON]:  # a dropped text is kept as it came
                    assert row["text"] == next(r["text"] for r in rows if r["id"] == row["id"])
    assert got == reference(rows, datatrove_en, n, min_words, min_sentences, split)


ODD = ["a", "Word", " ", "\n", ".", "!", "?", '"', "(", "-", "U.S.", "Mr.", "...", "3", "é"]
ODD += ["\u0301", "\u3002", "\u00a0", "漢", "😀", "Alpha beta gamma. ", "Delta 12 epsilon! "]
ODD += ["\r", "\r\n", "\u2028", "\u2029", "\x0b", "\x1c", "\x1f", "\x85", "\u0085"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(ODD), max_size=25).map("".join), max_size=8))
def test_lines_are_cut_as_str_splitlines(texts: list[str]) -> None:
    text = pa.array(texts, pa.large_string())[0:]
    data, offsets = string_buffers(text)
    per_text, starts, ends = line_bounds(data, offsets)
    pieces = byte_slices(data, offsets, per_text, starts, ends).to_pylist()
    bounds = np.concatenate([[0], np.cumsum(per_text)])
    for i, t in enumerate(texts):
        assert pieces[bounds[i] : bounds[i + 1]] == t.splitlines()


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(st.lists(st.sampled_from(ODD), max_size=25).map("".join), max_size=10),
    n=st.integers(1, 3),
    min_words=st.integers(0, 4),
    min_sentences=st.integers(0, 2),
    split=st.sampled_from(["sentences", "lines"]),
)
def test_any_text_is_accounted_for(
    texts: list[str], n: int, min_words: int, min_sentences: int, split: str
) -> None:
    """Odd texts in one shard: every row comes back, kept or dropped with one of the
    stage's reasons; a dropped text is as it came, and a kept one changed only when it
    lost sentences (lines); no more go than it had."""
    stage = SentenceDedup(
        SentenceDedupParams(
            n_sentences=n, min_doc_words=min_words, min_num_sentences=min_sentences, split=split
        )
    )
    ids = pa.array([f"d{i:02d}" for i in range(len(texts))], pa.string())
    text = pa.array(texts, pa.large_string())
    table = pa.table({"id": ids, "text": text, DROP_REASON: pa.nulls(len(ids), pa.string())})
    measured = stage.measure(table)
    keys = measured.append_column("shard", pa.array(["s"] * len(texts), pa.string()))
    decisions = repeated_lines(keys, True, "_sentence_dedup_hashes").drop(["shard"])
    out = stage.apply(measured, decisions if decisions.num_rows else None)
    if split == "lines":
        sentences = [len(t.splitlines()) for t in texts]
    else:
        sentences = pc.list_value_length(measured["_sentence_dedup_ends"]).to_pylist()
    assert out["id"].to_pylist() == ids.to_pylist()
    rows = zip(texts, sentences, out.to_pylist(), strict=True)
    for text, had, row in rows:
        assert row[DROP_REASON] is None or row[DROP_REASON] in REASONS
        assert 0 <= row["sentence_dedup_removed"] <= had
        if row[DROP_REASON] is not None or not row["sentence_dedup_removed"]:
            assert row["text"] == text


@pytest.mark.ray
@pytest.mark.slow
def test_same_rows_local_and_ray(c4_path: Path, pile_path: Path, tmp_path: Path) -> None:
    docs = corpus(c4_path, pile_path, each=200, planted=100)
    (tmp_path / "in").mkdir()
    for shard in range(2):
        pq.write_table(
            pa.Table.from_pylist(docs[shard::2]), tmp_path / "in" / f"part-{shard}.parquet"
        )
    recipe = recipe_of("stages:\n  - sentence_dedup: {}\n", tmp_path / "in")
    outputs = on_every_executor(recipe, tmp_path)
    assert outputs["local"] == outputs["ray1"] == outputs["ray2"]
    assert len(outputs["local"][1]) >= 20


def datatrove_kept_against(
    docs: list[dict], reference: list[dict], folder: Path, only: bool
) -> dict[str, str]:
    """datatrove's steps with an index built from ``reference`` (SentenceDedupBuildIndex)
    and ``only_dedup_in_index`` = ``only``: the kept documents' texts by id."""
    from datatrove.data import Document
    from datatrove.pipeline.dedup.sentence_dedup import (
        SentDedupConfig,
        SentenceDedupBuildIndex,
        SentenceDedupFilter,
        SentenceDedupSignature,
        SentenceFindDedups,
    )

    config = SentDedupConfig(only_dedup_in_index=only)

    def documents(rows: list[dict]) -> object:
        return (Document(text=d["text"], id=d["id"]) for d in rows)

    SentenceDedupSignature(output_folder=str(folder / "ref"), config=config).run(
        documents(reference)
    )
    SentenceDedupBuildIndex(str(folder / "ref"), str(folder / "index"), "ref", config=config).run()
    SentenceDedupSignature(output_folder=str(folder / "sigs"), config=config).run(documents(docs))
    index = str(folder / "index")
    SentenceFindDedups(str(folder / "sigs"), str(folder / "dups"), index, config=config).run()
    step = SentenceDedupFilter(data_folder=str(folder / "dups"), config=config)
    return {d.id: d.text for d in step.run(documents(docs))}


@pytest.mark.slow
@pytest.mark.parametrize("only", [True, False])
def test_against_another_dataset_as_datatroves_index(
    c4_path: Path, pile_path: Path, tmp_path: Path, datatrove_en: object, only: bool
) -> None:
    """``against`` a reference dataset (JSONL) is datatrove's index: the same documents
    kept with the same texts, deduplicated against the index only (``only_against``, its
    ``only_dedup_in_index``) or against it and within the data."""
    docs = corpus(c4_path, pile_path, each=400, planted=200)
    reference = docs[:300] + docs[800:900]  # C4 documents and planted ones
    held = {d["id"] for d in reference}
    data = [d for d in docs if d["id"] not in held]
    with open(tmp_path / "reference.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(d) + "\n" for d in reference)
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(data), tmp_path / "in" / "part.parquet")
    flag = str(only).lower()
    recipe = recipe_of(
        f"stages:\n  - sentence_dedup: {{against: ['{tmp_path / 'reference.jsonl'}'], "
        f"only_against: {flag}}}\n",
        tmp_path / "in",
    )
    run_local(recipe, tmp_path / "out")
    kept = {r["id"]: r["text"] for r in read_output(tmp_path / "out", "kept").to_pylist()}
    assert kept == datatrove_kept_against(data, reference, tmp_path / "datatrove", only)
    changed = [d for d in data if kept.get(d["id"], d["text"]) != d["text"]]
    assert len(data) - len(kept) >= 30 and len(changed) >= 20


def test_against_needs_readable_documents(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only_against needs `against`"):
        SentenceDedupParams(only_against=True)
    with pytest.raises(ValueError, match=r"against: .*nowhere"):
        SentenceDedupParams(against=[str(tmp_path / "nowhere.jsonl")])
