"""substring_dedup: the window hashes against a plain window count, and whole runs on
the C4 and Pile samples with planted passages, on every executor."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.dedup.substrings import duplicate_spans
from tests.conftest import on_every_executor, read_output, recipe_of, run_local


def reference_spans(
    texts: list[str],
    length: int,
    keep_first: bool,
    held: list[str] = (),  # type: ignore[assignment]
    only_against: bool = False,
) -> list[tuple[int, int, int]]:
    """Every window of ``length`` bytes counted in a dict: the spans to strike, merged and
    widened to whole characters, as (row, start, end). A window ``held`` texts hold goes
    from every text; with ``only_against`` no other does."""
    encoded = [t.encode() for t in texts]
    seen: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for row, data in enumerate(encoded):
        for start in range(len(data) - length + 1):
            seen[data[start : start + length]].append((row, start))
    theirs = {
        data[start : start + length]
        for data in (t.encode() for t in held)
        for start in range(len(data) - length + 1)
    }
    struck = [bytearray(len(data)) for data in encoded]
    for window, places in seen.items():
        if window in theirs:
            gone = places
        elif only_against or len(places) < 2:
            gone = []
        else:
            gone = places[1:] if keep_first else places
        for row, start in gone:
            struck[row][start : start + length] = b"\1" * length
    spans = []
    for row, data in enumerate(encoded):
        flags = struck[row]
        at = 0
        for char in texts[row]:  # a character with one struck byte goes whole
            size = len(char.encode())
            if any(flags[at : at + size]):
                flags[at : at + size] = b"\1" * size
            at += size
        start = None
        for at in range(len(data) + 1):
            on = at < len(data) and flags[at]
            if on and start is None:
                start = at
            elif not on and start is not None:
                spans.append((row, start, at))
                start = None
    return spans


TEXTS = st.lists(st.text(alphabet="ab é€\n", max_size=40), max_size=6)


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.integers(2, 7), st.booleans(), st.integers(0, 4), st.integers(1, 3))
def test_spans_match_a_plain_window_count(
    texts: list[str], length: int, keep_first: bool, parts: int, threads: int
) -> None:
    """With suffix arrays (0 parts), or window hashes in one part or several (windows
    grouped by hash), one after another or several at once."""
    rows, starts, ends = duplicate_spans(
        pa.array(texts, pa.large_string()), length, keep_first, parts=parts, threads=threads
    )
    found = list(zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True))
    assert found == reference_spans(texts, length, keep_first)


@settings(max_examples=300, deadline=None)
@given(TEXTS, TEXTS, st.integers(2, 7), st.booleans(), st.booleans(), st.integers(0, 4))
def test_spans_held_elsewhere_match_a_plain_window_count(
    texts: list[str],
    held: list[str],
    length: int,
    keep_first: bool,
    only_against: bool,
    parts: int,
) -> None:
    rows, starts, ends = duplicate_spans(
        pa.array(texts, pa.large_string()),
        length,
        keep_first,
        pa.array(held, pa.large_string()),
        only_against,
        parts,
    )
    found = list(zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True))
    assert found == reference_spans(texts, length, keep_first, held, only_against)


@settings(max_examples=200, deadline=None)
@given(
    TEXTS.flatmap(lambda t: st.tuples(st.just(t), st.permutations(range(len(t))))),
    st.sampled_from([0, 1, 3]),
)
def test_the_first_copy_is_first_in_the_order_given(
    drawn: tuple[list[str], list[int]], parts: int
) -> None:
    """With ``order`` (the rows by id at the barrier), the texts stand where they are and
    the first copy is the first in that order: the spans of the texts put in that order."""
    texts, order = drawn
    rows, starts, ends = duplicate_spans(
        pa.array(texts, pa.large_string()),
        3,
        True,
        parts=parts,
        order=np.array(order, dtype=np.int64),
    )
    found = list(zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True))
    ordered = reference_spans([texts[i] for i in order], 3, True)
    assert found == sorted((order[row], start, end) for row, start, end in ordered)


def test_a_shared_phrase_goes_from_both_texts() -> None:
    texts = ["Alice wanted to go to the store", "Bob wanted to go to the park", ""]
    rows, starts, ends = duplicate_spans(pa.array(texts, pa.large_string()), 10, False)
    assert (rows.tolist(), starts.tolist(), ends.tolist()) == ([0, 1], [5, 3], [26, 24])
    assert texts[0][:5] + texts[0][26:] == "Alicestore"
    rows, starts, ends = duplicate_spans(pa.array(texts, pa.large_string()), 10, True)
    assert (rows.tolist(), starts.tolist(), ends.tolist()) == ([1], [3], [24])


def _samples(c4_path: Path, pile_path: Path, folder: Path) -> tuple[dict[str, str], dict]:
    """300 C4 pages and 300 Pile documents in two JSONL files, and 20 documents made of
    Pile text with a 400-character passage of a C4 page (of the first 20 with a line that
    long) planted in the middle. Returns
    the texts by id and, per planted id, its passage and the C4 page it came from."""
    with gzip.open(c4_path, "rt", encoding="utf-8") as f:
        c4 = [json.loads(line)["text"] for line in f][:300]
    with open(pile_path, encoding="utf-8") as f:
        pile = [json.loads(line)["contents"] for line in f][:340]
    rows = {f"a-c4-{i:03d}": text for i, text in enumerate(c4)}
    rows |= {f"b-pile-{i:03d}": text for i, text in enumerate(pile[:300])}
    planted = {}
    long_lines = [(i, max(t.split("\n"), key=len)) for i, t in enumerate(c4)]
    sources = [(i, line[:400]) for i, line in long_lines if len(line) >= 400][:20]
    for j, (i, passage) in enumerate(sources):
        source = f"a-c4-{i:03d}"
        host = pile[300 + j]
        middle = len(host) // 2
        rows[f"c-planted-{j:02d}"] = host[:middle] + " " + passage + " " + host[middle:]
        planted[f"c-planted-{j:02d}"] = (passage, source)
    folder.mkdir()
    items = list(rows.items())
    for part in range(2):
        lines = [json.dumps({"id": i, "text": t}) + "\n" for i, t in items[part::2]]
        (folder / f"part-{part}.jsonl").write_text("".join(lines))
    return rows, planted


@pytest.mark.parametrize("keep_first", [True, False])
def test_planted_passages_go_and_every_byte_is_counted(
    c4_path: Path, pile_path: Path, tmp_path: Path, keep_first: bool
) -> None:
    rows, planted = _samples(c4_path, pile_path, tmp_path / "in")
    stage = f"{{min_length: 100, keep_first: {str(keep_first).lower()}}}"
    recipe = recipe_of(f"stages:\n  - substring_dedup: {stage}\n", tmp_path / "in")
    stats = run_local(recipe, tmp_path / "out")
    assert stats["rows"]["read"] == len(rows) == stats["rows"]["kept"] + stats["rows"]["dropped"]
    out = {
        r["id"]: r
        for kind in ("kept", "dropped")
        for r in read_output(tmp_path / "out", kind).to_pylist()
    }
    for row_id, row in out.items():  # the bytes lost are the bytes removed
        lost = len(rows[row_id].encode()) - len(row["text"].encode())
        if row["drop_reason"] is None:
            assert lost == row["substring_dedup_bytes_removed"]
    for row_id, (passage, source) in planted.items():
        text = out[row_id]["text"]
        assert passage not in text and passage[100:-100] not in text, row_id
        assert out[row_id]["substring_dedup_bytes_removed"] >= len(passage.encode())
        if keep_first:  # the C4 page came first: it keeps its passage
            assert passage in out[source]["text"], source
        else:  # every copy goes
            assert passage[100:-100] not in out[source]["text"], source
    # texts with nothing repeated are as they came
    untouched = [r for r in out.values() if r["substring_dedup_bytes_removed"] == 0]
    assert len(untouched) > 400
    assert all(r["text"] == rows[r["id"]] for r in untouched)


def test_a_whole_copy_is_dropped_with_its_text(tmp_path: Path) -> None:
    page = "This paragraph is long enough to be a repeated span of more than twenty bytes."
    docs = [
        {"id": "1", "text": page},
        {"id": "2", "text": f"  {page}\n"},  # nothing but white space is left
        {"id": "3", "text": f"Before. {page} After."},
        {"id": "4", "text": "Nothing here is repeated anywhere else."},
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    recipe = recipe_of("stages:\n  - substring_dedup: {min_length: 20, keep_first: true}\n", path)
    stats = run_local(recipe, tmp_path / "out")
    kept = {r["id"]: r for r in read_output(tmp_path / "out", "kept").to_pylist()}
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    assert [(r["id"], r["drop_reason"], r["text"]) for r in dropped] == [
        ("2", "substring_dedup:all_duplicated", f"  {page}\n")
    ]
    assert kept["1"]["text"] == page and kept["1"]["substring_dedup_bytes_removed"] == 0
    # the space before the page goes with it: row 2 holds " " + page as well
    assert kept["3"]["text"] == "Before. After."
    assert kept["4"]["substring_dedup_bytes_removed"] == 0
    stage = stats["stages"][-1]
    assert stage["rows_in"] == 4 and stage["rows_dropped"] == 1


def test_every_executor_strikes_the_same_bytes(
    c4_path: Path, pile_path: Path, tmp_path: Path
) -> None:
    _samples(c4_path, pile_path, tmp_path / "in")
    recipe = recipe_of(
        "input: {batch_rows: 64}\nstages:\n  - substring_dedup: {min_length: 60}\n"
        "output: {shard_rows: 100}\n",
        tmp_path / "in",
    )
    outputs = on_every_executor(recipe, tmp_path)
    first = next(iter(outputs.values()))
    assert sum(r["substring_dedup_bytes_removed"] for r in first[0]) > 0
    for kept, dropped in outputs.values():
        assert (kept, dropped) == first


def test_passages_of_a_benchmark_go_from_the_pages_that_quote_them(
    c4_path: Path, tmp_path: Path
) -> None:
    """C4 pages 163 and 429 quote BoolQ passages (``decontaminate`` drops them for it):
    with the BoolQ items ``against`` and ``only_against``, those pages lose the quoted
    spans, and nothing else changes."""
    from tests.conftest import shared_file

    boolq = shared_file("benchmarks/boolq.jsonl")
    stage = (
        f"{{min_length: 100, against: ['{boolq}'], against_text_field: query, only_against: true}}"
    )
    recipe = recipe_of(f"stages:\n  - substring_dedup: {stage}\n", c4_path)
    stats = run_local(recipe, tmp_path / "out")
    assert stats["rows"]["kept"] == 1000
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    cut = {r["id"]: r for r in kept if r["substring_dedup_bytes_removed"]}
    assert sorted(cut) == ["c4-sample-1000.jsonl.gz/163", "c4-sample-1000.jsonl.gz/429"]
    with gzip.open(c4_path, "rt", encoding="utf-8") as f:
        pages = [json.loads(line)["text"] for line in f]
    items = [json.loads(line)["query"] for line in boolq.read_text("utf-8").splitlines()]
    windows = {
        data[at : at + 100]
        for data in (items[3050].encode(), items[384].encode())
        for at in range(len(data) - 99)
    }
    for row_id, row in cut.items():
        before = pages[int(row_id.rsplit("/", 1)[1])].encode()
        after = row["text"].encode()
        assert any(before[at : at + 100] in windows for at in range(len(before) - 99))
        assert not any(after[at : at + 100] in windows for at in range(len(after) - 99))
        assert len(before) - len(after) == row["substring_dedup_bytes_removed"] >= 100
    assert all(
        r["text"] == pages[int(r["id"].rsplit("/", 1)[1])] for r in kept if r["id"] not in cut
    )


def test_a_barrier_past_the_memory_stops_before_it_and_resumes_in_parts(
    c4_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Windows that would not fit in the memory available even in the most parts stop
    the run at the barrier with what to do; the same command goes on from the finished
    shards, and where the memory holds the fewest bytes that suffice, the windows go in
    that many parts and strike what one part strikes."""
    from curation.dedup import substrings
    from curation.runtime.run import BarrierTooLarge

    recipe = recipe_of("stages:\n  - substring_dedup: {}\n", c4_path)
    fresh = run_local(recipe, tmp_path / "fresh", progress=True)
    with gzip.open(c4_path, "rt", encoding="utf-8") as f:
        sizes = [len(json.loads(line)["text"].encode()) for line in f]
    # the texts and a byte between two, and every window of 100 bytes in a text
    size, windows = sum(n + 1 for n in sizes), sum(max(0, n - 99) for n in sizes)
    doing = "progress: barrier before pass 2: substring_dedup deciding over 1,000 rows of 1 shard"
    assert f"{doing}: suffix arrays over {size / 1e6:,.1f} MB of text" in capsys.readouterr().err
    least = substrings.least_bytes(size, windows)
    monkeypatch.setattr(substrings, "available_bytes", lambda: least - 1)
    with pytest.raises(BarrierTooLarge) as caught:
        run_local(recipe, tmp_path / "out")
    message = str(caught.value)
    assert f"the windows of {size / 1e9:,.2f} GB of text need about" in message
    assert "with the same curate run command: the shards finished" in message
    monkeypatch.setattr(substrings, "available_bytes", lambda: least)
    capsys.readouterr()
    again = run_local(recipe, tmp_path / "out", progress=True)
    said = capsys.readouterr().err.splitlines()
    parts = substrings.MAX_PARTS
    assert f"{doing}: window hashes in {parts} parts, over {size / 1e6:,.1f} MB of text" in said
    assert [line for line in said if "windows of part" in line] == [
        f"{doing}: windows of part {k} of {parts}" for k in range(1, parts + 1)
    ]
    assert again["shards"]["resumed"] == again["shards"]["total"]
    assert again["rows"] == fresh["rows"]
    for kind in ("kept", "dropped"):
        assert read_output(tmp_path / "out", kind).equals(read_output(tmp_path / "fresh", kind))


def test_suffix_arrays_where_they_fit_else_the_fewest_parts() -> None:
    from curation.dedup.substrings import MAX_PARTS, array_bytes, least_bytes, plan_parts
    from curation.runtime.run import BarrierTooLarge

    size, windows = 1000, 900
    assert array_bytes(size) == 15_000
    assert plan_parts(size, windows, have=15_000) == 0
    assert plan_parts(size, windows, have=14_999) == 4  # 900 * 56 bytes in 13,999
    assert plan_parts(size, windows, have=size + 900 * 56 // 10) == 10
    assert plan_parts(size, windows, have=least_bytes(size, windows)) == MAX_PARTS
    with pytest.raises(BarrierTooLarge):
        plan_parts(size, windows, have=least_bytes(size, windows) - 1)


def test_parts_short_of_memory_run_as_many_at_once_as_there_are_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the suffix arrays do not fit, each part the memory allows is cut into one
    for each CPU, run at once in the same memory: the spans of the window count."""
    from curation.dedup import substrings

    texts = [f"{'shared words and more shared words ' * 3}{n}" for n in range(40)]
    data = pa.array(texts, pa.large_string())
    size = sum(len(t) + 1 for t in texts)
    windows = sum(len(t) - 9 for t in texts)
    have = size + -(-windows * substrings.WINDOW_BYTES // 4)  # four parts one after another
    monkeypatch.setattr(substrings, "available_bytes", lambda: have)
    monkeypatch.setattr(substrings, "usable_cpus", lambda: 3)
    said: list[str] = []
    rows, starts, ends = duplicate_spans(data, 10, True, say=said.append)
    assert said[0] == f"window hashes in 12 parts, 3 at once, over {size / 1e6:,.1f} MB of text"
    assert sorted(said[1:]) == sorted(f"windows of part {k} of 12" for k in range(1, 13))
    found = list(zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True))
    assert found == reference_spans(texts, 10, True) and found


def test_windows_that_only_share_a_hash_are_told_apart() -> None:
    """A group of places shares a hash; windows in it with other bytes (a collision of
    the hash, which no test text finds) are not taken for copies of one another."""
    from curation.dedup.substrings import _flag

    ours = np.frombuffer(b"abcXabcYabdZabdWxyz", dtype=np.uint8)
    theirs = np.frombuffer(b"xyz", dtype=np.uint8)
    places = np.array([0, 4, 8, 12, 16, 19], dtype=np.int64)  # abc abc abd abd xyz | xyz
    for keep_first, only_against, want in [
        (False, False, [0, 4, 8, 12, 16]),
        (True, False, [4, 12, 16]),
        (False, True, [16]),
    ]:
        flags = np.zeros(len(ours), dtype=np.bool_)
        bounds = np.array([0, len(places)], dtype=np.int64)
        _flag(ours, theirs, 3, bounds, places, keep_first, only_against, flags)
        assert np.flatnonzero(flags).tolist() == want


def test_a_text_mostly_struck_is_dropped_as_it_came(tmp_path: Path) -> None:
    shared = "This sentence is shared by two documents and is long enough to go."  # 67 bytes
    mostly = f"{shared} Ten more."  # loses 68 of 77 bytes: the shared one and a space
    tail = "Words found nowhere else: a heron, two kettles, the seventh lighthouse and a map."
    little = f"{shared} {tail} {tail.upper()}"  # loses 68 of 233 bytes
    path = tmp_path / "docs.jsonl"
    docs = [{"id": "1", "text": mostly}, {"id": "2", "text": little}]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    stage = "{min_length: 30, max_removed_fraction: 0.5}"
    run_local(recipe_of(f"stages:\n  - substring_dedup: {stage}\n", path), tmp_path / "out")
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    assert [(r["id"], r["drop_reason"], r["text"]) for r in dropped] == [
        ("1", "substring_dedup:mostly_duplicated", mostly)
    ]
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    assert [r["id"] for r in kept] == ["2"]
    assert kept[0]["text"] == little[len(shared) + 1 :]
    assert kept[0]["substring_dedup_bytes_removed"] == len(shared) + 1


def test_against_parquet_of_plain_strings(tmp_path: Path) -> None:
    """Documents kept elsewhere as Parquet whose text is Arrow's 32-bit ``string``."""
    import pyarrow.parquet as pq

    quote = "A passage that an earlier dump already holds, word for word, in full."
    held = tmp_path / "held.parquet"
    pq.write_table(pa.table({"text": pa.array([f"Before. {quote}"], pa.string())}), held)
    path = tmp_path / "docs.jsonl"
    docs = [{"id": "1", "text": f"{quote} After."}, {"id": "2", "text": "Nothing held here."}]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    stage = f"{{min_length: 30, against: ['{held}'], only_against: true}}"
    run_local(recipe_of(f"stages:\n  - substring_dedup: {stage}\n", path), tmp_path / "out")
    kept = {r["id"]: r["text"] for r in read_output(tmp_path / "out", "kept").to_pylist()}
    assert kept == {"1": " After.", "2": "Nothing held here."}
