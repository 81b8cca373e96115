"""line_dedup on the C4 sample with planted boilerplate, against a plain Python count."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


def reference(docs: list[dict], keep_first: bool) -> dict[str, str | None]:
    """id -> expected text (None: dropped), computed one line at a time."""
    counts = Counter(
        normalize(line) for d in docs for line in d["text"].split("\n") if normalize(line)
    )
    seen: set[str] = set()
    expected: dict[str, str | None] = {}
    for doc in sorted(docs, key=lambda d: d["id"]):
        kept = []
        for line in doc["text"].split("\n"):
            key = normalize(line)
            duplicate = bool(key) and counts[key] > 1
            if duplicate and keep_first and key not in seen:
                duplicate = False
            if key:
                seen.add(key)
            if not duplicate:
                kept.append(line)
        left = [line for line in kept if normalize(line)]
        expected[doc["id"]] = "\n".join(kept) if left else None
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
