"""line_dedup on the C4 sample with planted boilerplate, against a plain Python count."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from curation.batch import DROP_REASON
from curation.dedup.lines import (
    LineDedup,
    LineDedupParams,
    _without_lines,
    against_hashes,
    repeated_lines,
)
from curation.utf8 import string_buffers
from tests.conftest import on_every_executor, read_output, recipe_of, run_local

BOILERPLATE = "Share this article on Facebook and Twitter"
# the same line, once upper-cased: Greek final sigma must not tell them apart
GREEK = "Η έκθεση της Νέας Υόρκης."


def planted(c4_path: Path, folder: Path) -> list[dict]:
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    docs = []
    for i, row in enumerate(rows):
        text = row["text"] + (f"\n{BOILERPLATE}" if i % 25 == 0 else "")
        text += {3: f"\n{GREEK}", 7: f"\n{GREEK.upper()}"}.get(i, "")
        docs.append({"id": f"c4-{i:04d}", "text": text})
    folder.mkdir()
    for shard in range(4):
        pq.write_table(
            pa.Table.from_pylist(docs[shard * 250 : (shard + 1) * 250]),
            folder / f"part-{shard}.parquet",
        )
    return docs


def normalize(line: str) -> str:
    folded = line.lower().replace("ς", "σ")
    return re.sub(r"\s+", " ", re.sub(r"\d", "0", folded)).strip()


def reference(
    docs: list[dict],
    keep_first: bool,
    key: Callable[[str], str] = normalize,
    min_chars: int = 0,
    against: set[str] = frozenset(),  # type: ignore[assignment]
    only_against: bool = False,
) -> dict[str, str | None]:
    """id -> expected text (None: dropped), computed one line at a time; a line whose
    key is in ``against`` goes in every copy."""

    def counted(line: str) -> bool:
        return len(key(line)) >= max(min_chars, 1)

    counts = Counter(key(line) for d in docs for line in d["text"].split("\n") if counted(line))
    seen: set[str] = set()
    expected: dict[str, str | None] = {}
    for doc in sorted(docs, key=lambda d: d["id"]):
        kept = []
        for line in doc["text"].split("\n"):
            duplicate = counted(line) and counts[key(line)] > 1 and not only_against
            if duplicate and keep_first and key(line) not in seen:
                duplicate = False
            duplicate |= counted(line) and key(line) in against
            if counted(line):
                seen.add(key(line))
            if not duplicate:
                kept.append(line)
        had = any(counted(line) for line in doc["text"].split("\n"))
        left = any(counted(line) for line in kept)
        expected[doc["id"]] = None if had and not left else "\n".join(kept)
    return expected


@pytest.mark.parametrize("keep_first", [False, True])
def test_matches_a_line_by_line_count(c4_path: Path, tmp_path: Path, keep_first: bool) -> None:
    docs = planted(c4_path, tmp_path / "in")
    flag = str(keep_first).lower()
    recipe = f"input: {{batch_rows: 90}}\nstages:\n  - line_dedup: {{keep_first: {flag}}}\n"
    stats = run_local(recipe_of(recipe, tmp_path / "in"), tmp_path / "out")
    kept = {r["id"]: r["text"] for r in read_output(tmp_path / "out", "kept").to_pylist()}
    dropped = {r["id"] for r in read_output(tmp_path / "out", "dropped").to_pylist()}
    expected = reference(docs, keep_first)
    assert {i for i, t in expected.items() if t is None} == dropped
    assert kept == {i: t for i, t in expected.items() if t is not None}
    planted_docs = [d["id"] for i, d in enumerate(docs) if i % 25 == 0]
    survivors = [i for i in planted_docs if i in kept and BOILERPLATE in kept[i]]
    assert survivors == (planted_docs[:1] if keep_first else [])
    assert GREEK not in kept["c4-0003"] or keep_first
    assert GREEK.upper() not in kept["c4-0007"]
    removed = read_output(tmp_path / "out", "kept")["line_dedup_lines_removed"].to_pylist()
    assert sum(removed) >= 40 - keep_first
    assert stats["rows"]["read"] == 1000


@pytest.mark.ray
@pytest.mark.slow
def test_same_rows_local_and_ray(c4_path: Path, tmp_path: Path) -> None:
    planted(c4_path, tmp_path / "in")
    recipe = recipe_of(
        "stages:\n  - exact_dedup: {}\n  - line_dedup: {keep_first: true}\n", tmp_path / "in"
    )
    outputs = on_every_executor(recipe, tmp_path)
    assert outputs["local"] == outputs["ray1"] == outputs["ray2"]


LINES = ["", " ", "a", "a ", " a", "ab", "Ab", "b1", "b2", "menu", "Menu item", "\t", "x y"]


@settings(max_examples=150, deadline=None)
@given(
    docs=st.lists(
        st.tuples(st.lists(st.sampled_from(LINES), min_size=1, max_size=6), st.integers(0, 2)),
        max_size=12,
    ),
    keep_first=st.booleans(),
    normalize_lines=st.booleans(),
    min_chars=st.integers(0, 3),
)
def test_stage_matches_the_reference_on_any_lines(
    docs: list[tuple[list[str], int]], keep_first: bool, normalize_lines: bool, min_chars: int
) -> None:
    """measure, the barrier's decision and apply, shard by shard, against the reference:
    same texts kept, same rows dropped, same count of lines removed."""
    rows = [
        {"id": f"d{(i * 7) % 13:02d}-{i}", "text": "\n".join(lines), "shard": f"s{shard}"}
        for i, (lines, shard) in enumerate(docs)
    ]
    stage = LineDedup(
        LineDedupParams(keep_first=keep_first, normalize=normalize_lines, min_line_chars=min_chars)
    )
    measured = {}
    for shard in sorted({r["shard"] for r in rows}):
        table = pa.Table.from_pylist([r for r in rows if r["shard"] == shard])
        table = table.append_column(DROP_REASON, pa.nulls(table.num_rows, pa.string()))
        measured[shard] = stage.measure(table)
    keys = pa.concat_tables(measured.values()) if measured else None
    decisions = repeated_lines(keys, keep_first) if keys is not None else None
    got: dict[str, str | None] = {}
    removed: dict[str, int] = {}
    for shard, table in measured.items():
        mine = decisions.filter(pc.equal(decisions["shard"], shard)).drop(["shard"])
        for row in stage.apply(table, mine if mine.num_rows else None).to_pylist():
            got[row["id"]] = None if row.get(DROP_REASON) else row["text"]
            removed[row["id"]] = row["line_dedup_lines_removed"]
    key = normalize if normalize_lines else str.strip
    expected = reference(rows, keep_first, key, min_chars)
    assert got == expected
    for row in rows:
        before = row["text"].split("\n")
        if expected[row["id"]] is None:  # every counted line went, the text stays as it was
            want = sum(len(key(line)) >= max(min_chars, 1) for line in before)
        else:
            want = len(before) - len(expected[row["id"]].split("\n"))
        assert removed[row["id"]] == want


def test_without_lines_keeps_nulls_and_the_texts_set_aside() -> None:
    """The compiled rebuild: null texts and texts marked as they are stay unchanged."""
    text = pa.array(["a\nb\nc", None, "x\ny", "", "p\n\nq"], pa.large_string())
    data, offsets = string_buffers(text)
    lines = np.array([3, 0, 2, 1, 3])
    removed = np.array([False, True, False, True, True, True, True, False, False], dtype=bool)
    as_is = np.array([False, False, True, False, False])
    out, out_offsets = _without_lines(data, offsets, lines, removed, as_is)
    rebuilt = pa.LargeStringArray.from_buffers(5, pa.py_buffer(out_offsets), pa.py_buffer(out))
    assert rebuilt.to_pylist() == ["a\nc", "", "x\ny", "", "\nq"]


@settings(max_examples=100, deadline=None)
@given(
    docs=st.lists(st.lists(st.sampled_from(LINES), min_size=1, max_size=6), max_size=10),
    held=st.lists(st.lists(st.sampled_from(LINES), min_size=1, max_size=4), max_size=4),
    keep_first=st.booleans(),
    only_against=st.booleans(),
)
def test_against_another_dataset(
    docs: list[list[str]], held: list[list[str]], keep_first: bool, only_against: bool
) -> None:
    """Lines of ``against`` documents (read from a JSONL file) go in every copy here;
    with ``only_against`` nothing else does."""
    import tempfile

    assume(held or not only_against)  # only_against alone is refused (tested below)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "held.jsonl"
        path.write_text("".join(json.dumps({"text": "\n".join(d)}) + "\n" for d in held))
        against = [str(path)] if held else []
        params = LineDedupParams(keep_first=keep_first, against=against, only_against=only_against)
        stage = LineDedup(params)
        hashes = against_hashes(stage, "_line_dedup_hashes", Path(folder))
    ids = pa.array([f"d{i:02d}" for i in range(len(docs))], pa.string())
    texts = pa.array(["\n".join(lines) for lines in docs], pa.string())
    table = pa.table({"id": ids, "text": texts, DROP_REASON: pa.nulls(len(ids), pa.string())})
    keys = stage.measure(table).append_column("shard", pa.array(["s"] * len(ids), pa.string()))
    decisions = repeated_lines(keys, keep_first, "_line_dedup_hashes", hashes, only_against)
    decisions = decisions.drop(["shard"])
    out = stage.apply(keys.drop(["shard"]), decisions if decisions.num_rows else None)
    got = {r["id"]: None if r[DROP_REASON] else r["text"] for r in out.to_pylist()}
    held_keys = {normalize(line) for d in held for line in d if normalize(line)}
    rows = [{"id": i, "text": t} for i, t in zip(ids.to_pylist(), texts.to_pylist(), strict=True)]
    assert got == reference(rows, keep_first, against=held_keys, only_against=only_against)


def test_against_is_checked_when_the_recipe_is_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only_against needs"):
        LineDedupParams(only_against=True)
    with pytest.raises(ValueError, match=r"against: .*missing"):
        LineDedupParams(against=[str(tmp_path / "missing")])
