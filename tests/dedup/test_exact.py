"""exact_dedup on the C4 sample with planted copies: the right rows, on every executor."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import on_every_executor, read_output, recipe_of, run_local

RECIPE = """\
input: {batch_rows: 100}
stages:
  - length_filter: {min_chars: 100}
  - exact_dedup: {}
  - sample: {rate: 0.9, seed: 1}
output: {shard_rows: 120}
"""


def planted(c4_path: Path, folder: Path) -> dict[str, str]:
    """Four Parquet shards of the C4 sample; shards 1-3 also hold edited copies of the
    first documents of shard 0 (upper case, extra white space). Returns copy id -> original
    id."""
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    folder.mkdir()
    expected = {}
    for shard in range(4):
        chunk = [{"id": f"s{shard}-{i:04d}", **r} for i, r in enumerate(rows[shard * 250 :][:250])]
        if shard:
            for j in range(shard * 5):
                copy_id = f"s{shard}-copy-{j}"
                text = "  " + rows[j]["text"].upper().replace(" ", "   ") + "\n"
                chunk.append({"id": copy_id, "text": text, "url": "x", "timestamp": "t"})
                expected[copy_id] = f"s0-{j:04d}"
        pq.write_table(pa.Table.from_pylist(chunk), folder / f"part-{shard}.parquet")
    return expected


def duplicates(out: Path) -> dict[str, str]:
    dropped = read_output(out, "dropped").to_pylist()
    return {
        r["id"]: r["duplicate_of"] for r in dropped if r["drop_reason"] == "exact_dedup:duplicate"
    }


def test_planted_copies_are_found(c4_path: Path, tmp_path: Path) -> None:
    expected = planted(c4_path, tmp_path / "in")
    stats = run_local(recipe_of(RECIPE, tmp_path / "in"), tmp_path / "out")
    found = duplicates(tmp_path / "out")
    # the C4 sample itself has no exact duplicate among its documents of 100+ characters
    assert found == expected
    stage = next(s for s in stats["stages"] if s["name"] == "exact_dedup")
    assert stage["dropped_by_reason"] == {"exact_dedup:duplicate": 30}
    kept = read_output(tmp_path / "out", "kept")
    assert "_exact_dedup_h1" not in kept.column_names
    sizes = dict(
        zip(kept["id"].to_pylist(), kept["exact_dedup_cluster_size"].to_pylist(), strict=True)
    )
    assert sizes.get("s0-0000", 4) == 4  # the original and its three copies (if sampled)
    assert stats["rows"]["read"] == stats["rows"]["kept"] + stats["rows"]["dropped"]


def test_priority_column_chooses_the_survivor(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    docs = [
        {"id": "a", "text": "Same text here.", "quality": 0.1},
        {"id": "b", "text": "same   TEXT here.", "quality": 0.9},
        {"id": "c", "text": "Other text.", "quality": 0.5},
        {"id": "d", "text": "Other text.", "quality": 0.5},
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    recipe = "stages:\n  - exact_dedup: {priority_column: quality}\n"
    run_local(recipe_of(recipe, path), tmp_path / "out")
    assert duplicates(tmp_path / "out") == {"a": "b", "d": "c"}


def test_case_changes_in_greek_still_match(tmp_path: Path) -> None:
    """An upper-cased copy of Greek text: "ΝΈΑΣ" lower-cases to "νέασ" in Arrow, its
    source has the final sigma "νέας"; both must give one key."""
    path = tmp_path / "greek.jsonl"
    source = "Η έκθεση της Νέας Υόρκης."
    docs = [{"id": "a", "text": source}, {"id": "b", "text": source.upper()}]
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    run_local(recipe_of("stages:\n  - exact_dedup: {}\n", path), tmp_path / "out")
    assert duplicates(tmp_path / "out") == {"b": "a"}


def test_dedup_on_url_ignores_nulls(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    docs = [
        {"id": "1", "text": "one", "url": "http://a"},
        {"id": "2", "text": "two", "url": "http://a"},
        {"id": "3", "text": "three", "url": None},
        {"id": "4", "text": "four"},
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    recipe = "stages:\n  - exact_dedup: {column: url, normalize: false}\n"
    run_local(recipe_of(recipe, path), tmp_path / "out")
    assert duplicates(tmp_path / "out") == {"2": "1"}


def test_urls_compared_as_c4_compared_them(tmp_path: Path) -> None:
    """normalize_url: C4's normalize_url (scheme and www. out, a utm/ref/feed query out,
    trailing slashes out); other paths, queries and hosts stay apart."""
    import re

    urls = {
        "a1": "https://www.x.org/news/a",
        "a2": "http://x.org/news/a/",
        "a3": "https://x.org/news/a?utm_source=feed",
        "a4": "http://www.x.org/news/a/?ref=home",
        "b1": "https://x.org/news/b",
        "b2": "https://x.org/news/a?page=2",
        "b3": "https://y.x.org/news/a",
        "b4": "https://x.org/News/a",
    }
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": k, "text": f"page {k}", "url": u}) + "\n" for k, u in urls.items()
        )
    )
    recipe = "stages:\n  - exact_dedup: {column: url, normalize: false, normalize_url: true}\n"
    run_local(recipe_of(recipe, path), tmp_path / "out")
    assert duplicates(tmp_path / "out") == {"a2": "a1", "a3": "a1", "a4": "a1"}

    def c4s(url: str) -> str:  # TFDS c4_utils' rule, written out as its code runs it
        url = re.sub(r"https?:\/\/(www\.)?", "", url)
        return re.sub(r"\?(utm_|ref|feed).*", "", url).rstrip("/")

    from curation.dedup.exact import normalized_key

    keys = normalized_key(pa.array(list(urls.values())), normalize=False, normalize_url=True)
    assert keys.to_pylist() == [c4s(u) for u in urls.values()]


@pytest.mark.ray
@pytest.mark.slow
def test_same_rows_local_and_ray(c4_path: Path, tmp_path: Path) -> None:
    planted(c4_path, tmp_path / "in")
    recipe = recipe_of(RECIPE, tmp_path / "in")
    outputs = on_every_executor(recipe, tmp_path)
    assert outputs["local"] == outputs["ray1"] == outputs["ray2"]


class _Killed(Exception):
    """Stands for a kill: not an error the executors turn into a message."""


def test_rerun_resumes_after_the_barrier(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted(c4_path, tmp_path / "in")
    recipe = recipe_of(RECIPE, tmp_path / "in")
    first = run_local(recipe, tmp_path / "clean")
    expected = read_output(tmp_path / "clean", "kept").to_pylist()
    # killed in the second pass, after the barrier decided
    from curation.dedup.exact import ExactDedup

    def killed(self: ExactDedup, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(ExactDedup, "apply", killed)
        with pytest.raises(_Killed):
            run_local(recipe, tmp_path / "out")
    assert list((tmp_path / "out" / "_work" / "seg1" / "decisions").glob("_SUCCESS"))
    assert not (tmp_path / "out" / "kept").exists()
    second = run_local(recipe, tmp_path / "out")
    assert second["rows"] == first["rows"]
    assert read_output(tmp_path / "out", "kept").to_pylist() == expected
    assert second["shards"]["resumed"] == 4  # pass 1 was not run again


@pytest.mark.parametrize("only_against", [False, True])
def test_against_another_dataset(c4_path: Path, tmp_path: Path, only_against: bool) -> None:
    """Documents held by ``against`` (here: 3 of shard 0's that shards 1-3 copy and 37 of
    shard 2's, re-cased and re-spaced, in another field of a JSONL file) go as
    ``exact_dedup:in_against``, all their copies; the dataset's own copies go as
    duplicates unless ``only_against``."""
    expected = planted(c4_path, tmp_path / "in")
    held = pq.read_table(tmp_path / "in" / "part-0.parquet").to_pylist()[:3]  # copied ones
    held += pq.read_table(tmp_path / "in" / "part-2.parquet").to_pylist()[:37]
    with open(tmp_path / "held.jsonl", "w", encoding="utf-8") as handle:
        for row in held:
            handle.write(json.dumps({"contents": row["text"].lower() + "  "}) + "\n")
    held_ids = {row["id"] for row in held}
    flag = str(only_against).lower()
    stage = f"{{against: ['{tmp_path / 'held.jsonl'}'], against_text_field: contents, "
    stage += f"only_against: {flag}}}"
    recipe = recipe_of(f"stages:\n  - exact_dedup: {stage}\n", tmp_path / "in")
    stats = run_local(recipe, tmp_path / "out")
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    by_reason: dict[str, set[str]] = {}
    for row in dropped:
        by_reason.setdefault(row["drop_reason"], set()).add(row["id"])
    held_copies = {c for c, o in expected.items() if o in held_ids}
    assert len(held_copies) == 9  # s0-0000..2, copied by each of shards 1, 2 and 3
    assert by_reason.get("exact_dedup:in_against") == held_ids | held_copies
    own = {c for c in expected if c not in held_copies}
    assert by_reason.get("exact_dedup:duplicate", set()) == (set() if only_against else own)
    stage = next(s for s in stats["stages"] if s["name"] == "exact_dedup")
    assert stage["rows_in"] == stage["rows_kept"] + stage["rows_dropped"]


def test_against_with_a_priority_column(tmp_path: Path) -> None:
    """The priority column is the dataset's: ``against`` documents need only the key."""
    rows = [
        {"id": "a", "text": "Held elsewhere.", "quality": 0.9},
        {"id": "b", "text": "Twice here.", "quality": 0.1},
        {"id": "c", "text": "twice  here.", "quality": 0.8},
    ]
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "part.parquet")
    (tmp_path / "held.jsonl").write_text(json.dumps({"text": "HELD ELSEWHERE."}) + "\n")
    stage = f"{{against: ['{tmp_path / 'held.jsonl'}'], priority_column: quality}}"
    run_local(recipe_of(f"stages:\n  - exact_dedup: {stage}\n", tmp_path / "in"), tmp_path / "out")
    rows_out = read_output(tmp_path / "out", "dropped").to_pylist()
    dropped = {r["id"]: r["drop_reason"] for r in rows_out}
    assert dropped == {"a": "exact_dedup:in_against", "b": "exact_dedup:duplicate"}


def test_a_date_priority_keeps_the_newest_copy(tmp_path: Path) -> None:
    """WARC-Dates as text: the newest copy of a URL stays (C4's rule), whatever its zone
    or id; a copy without a date goes before any dated one."""
    path = tmp_path / "docs.jsonl"
    docs = [
        {"id": "a", "text": "1", "url": "http://x.org/p", "date": "2019-04-18T12:00:00Z"},
        {"id": "b", "text": "2", "url": "https://www.x.org/p/", "date": "2020-01-01T00:00:00Z"},
        {"id": "c", "text": "3", "url": "http://x.org/p", "date": "2020-01-01T03:00:00+02:00"},
        {"id": "d", "text": "4", "url": "http://y.org", "date": None},
        {"id": "e", "text": "5", "url": "http://y.org", "date": "2001-01-01T00:00:00Z"},
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    stage = "{column: url, normalize_url: true, priority_column: date}"
    run_local(recipe_of(f"stages:\n  - exact_dedup: {stage}\n", path), tmp_path / "out")
    # c is 01:00 UTC on the first of January, an hour after b
    assert duplicates(tmp_path / "out") == {"a": "c", "b": "c", "d": "e"}
