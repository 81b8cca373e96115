"""JSONL: the whole-block pyarrow parse gives exactly what the line-by-line path gives.

``read_jsonl`` parses a block of lines with pyarrow when it can prove the result equal to
the orjson line path, and falls back to the line path otherwise. These tests draw files
full of the cases where the two parsers disagree and compare the two paths batch by
batch: same rows, ids, texts, drop reasons, column order and types.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.io import readers
from curation.io.inputs import InputError, resolve_inputs
from curation.recipe import InputSpec


@pytest.fixture(autouse=True)
def fast_path_for_every_block() -> Iterator[None]:
    """The reader sends blocks of few lines to the line path without trying pyarrow; these
    tests draw small files, so the whole-block parse is tried on every block here."""
    with mock.patch.object(readers, "_FEW_ROWS", 1):
        yield


@contextmanager
def counting_fast_path() -> Iterator[list[bool]]:
    """Record for each batch whether the whole-block parse was used."""
    used: list[bool] = []
    real = readers._fast_jsonl_batch

    def spy(*args: object) -> pa.Table | None:
        table = real(*args)  # type: ignore[arg-type]
        used.append(table is not None)
        return table

    with mock.patch.object(readers, "_fast_jsonl_batch", spy):
        yield used


def read_batches(
    path: Path, *, line_path: bool = False, chunk: int | None = None, **spec: object
) -> list[pa.Table]:
    """The batches of ``path``; ``line_path`` forces orjson, ``chunk`` the read size."""
    spec_obj = InputSpec(paths=[str(path)], **spec)  # type: ignore[arg-type]
    [shard] = resolve_inputs([str(path)], "auto")
    with (
        mock.patch.object(readers, "_fast_jsonl_batch", lambda *a: None)
        if line_path
        else mock.patch.object(readers, "_fast_jsonl_batch", readers._fast_jsonl_batch),
        mock.patch.object(readers, "_CHUNK_BYTES", chunk or readers._CHUNK_BYTES),
    ):
        return list(readers.read_shard(shard, spec_obj))


def assert_same_outcome(path: Path, chunk: int | None = None, **spec: object) -> None:
    """Both paths read ``path`` into the same batches, or both refuse it alike."""
    try:
        slow = read_batches(path, line_path=True, **spec)
    except readers.InputError as err:
        with pytest.raises(readers.InputError) as fast_err:
            read_batches(path, chunk=chunk, **spec)
        assert str(fast_err.value) == str(err)
        return
    assert_same_batches(read_batches(path, chunk=chunk, **spec), slow)


def assert_same_batches(fast: list[pa.Table], slow: list[pa.Table]) -> None:
    assert [t.num_rows for t in fast] == [t.num_rows for t in slow]
    for got, want in zip(fast, slow, strict=True):
        assert got.schema.equals(want.schema), f"{got.schema}\n!=\n{want.schema}"
        assert got.to_pylist() == want.to_pylist()


# ----------------------------------------------------------------- drawn files

DATES = ["2019-04-25T12:57:54Z", "2019-04-25", "2019-04-25 12:57:54", "1999-12-31T23:59:59"]
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "  ", "\t\n", "\x0b", "plain words", "ünïcödé ✓", "a\u0000b", *DATES]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**53 + 1, 2**63 - 1, 2**63, -(2**63), 1.0, -0.0, 1e300, 5e-324]),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "date"]), inner, max_size=2),
    ),
    max_leaves=4,
)
KEYS = ["text", "id", "url", "date", "meta", "score", "drop_reason", "source_drop_reason", "n"]
objects = st.dictionaries(st.sampled_from(KEYS), values, max_size=5)
ID_KINDS = [
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=6),
    st.sampled_from(DATES),
    st.none(),
]
OPTIONAL = {
    "date": st.sampled_from(DATES),
    "score": st.one_of(st.floats(-1, 1), st.integers(-5, 5)),
    "url": st.text(max_size=8),
    "meta": st.fixed_dictionaries(
        {"a": st.integers(0, 9)}, optional={"date": st.sampled_from(DATES)}
    ),
    "tags": st.lists(st.integers(-(2**64), 2**64), max_size=2),
    "drop_reason": st.text(max_size=3),
    "source_drop_reason": st.text(max_size=3),
}
ODD_LINES = [
    b"",
    b"   ",
    b"\x0b",
    b"\r",
    b"not json",
    b"[1, 2]",
    b"5",
    b"null",  # pyarrow 26 crashed the process on a block that begins with one
    b" null",
    b'{"text": "a"}{"text": "b"}',
    b'{"text": "a", "score": NaN}',
    b'{"text": "a", "score": Infinity}',
    b'\xef\xbb\xbf{"text": "after a byte order mark"}',
    b'{"text": "bad \xff byte"}',
    b'{"text": "lone \\ud800 surrogate"}',
    b'{"text": "a", "text": "twice"}',
    b'{"text": "a", "score": 1e400}',
    b'  {"text": "leading spaces"}  ',
]


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    """Lines of one shape (the id's type and the optional fields are drawn per file), a
    few of them replaced by free-form objects or by lines the two parsers disagree on."""
    optional = draw(st.sets(st.sampled_from(sorted(OPTIONAL)), max_size=4))
    shape = st.fixed_dictionaries(
        {"id": draw(st.sampled_from(ID_KINDS)), "text": texts},
        optional={key: OPTIONAL[key] for key in sorted(optional)},
    )
    ascii_only = draw(st.booleans())
    lines = [
        json.dumps(line, ensure_ascii=ascii_only).encode()
        for line in draw(st.lists(shape, min_size=1, max_size=24))
    ]
    odd = st.one_of(st.sampled_from(ODD_LINES), objects.map(lambda o: json.dumps(o).encode()))
    for _ in range(draw(st.integers(0, 2))):
        lines[draw(st.integers(0, len(lines) - 1))] = draw(odd)
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = newline.join(lines)
    return data + newline if draw(st.booleans()) else data


@settings(max_examples=300, deadline=None)
@given(
    data=jsonl_files(),
    batch_rows=st.integers(1, 9),
    chunk=st.integers(1, 80),
    max_doc_chars=st.sampled_from([None, 4]),
)
def test_block_parse_equals_line_parse(
    tmp_path_factory: pytest.TempPathFactory,
    data: bytes,
    batch_rows: int,
    chunk: int,
    max_doc_chars: int | None,
) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "drawn.jsonl"
    path.write_bytes(data)
    assert_same_outcome(path, chunk, batch_rows=batch_rows, max_doc_chars=max_doc_chars)


# ----------------------------------------------------------------- known files

GOOD = [json.dumps({"id": i, "text": f"document {i}", "score": i / 4}).encode() for i in range(5)]


@pytest.mark.parametrize("odd", ODD_LINES, ids=lambda line: repr(line)[:40])
@pytest.mark.parametrize("batch_rows", [1, 3, 10])
def test_each_disagreement_among_good_lines(tmp_path: Path, odd: bytes, batch_rows: int) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"\n".join([*GOOD[:2], odd, *GOOD[2:]]) + b"\n")
    fast = read_batches(path, batch_rows=batch_rows)
    assert_same_batches(fast, read_batches(path, line_path=True, batch_rows=batch_rows))


@pytest.mark.parametrize(
    "lines",
    [
        # fields that would clash once renamed (drop_reason becomes source_drop_reason):
        # refused, in one line or in two
        [{"text": "a", "drop_reason": "x", "source_drop_reason": "y"}],
        [{"text": "a", "drop_reason": "x"}, {"text": "b", "source_drop_reason": "y"}],
        # a date field read as text in the first block, absent from the second
        [{"text": "a", "date": DATES[0]}, {"text": "b"}],
        # ... and null in the whole second block: a column of nulls, not no column
        [{"text": "a", "date": DATES[0]}, {"text": "b", "date": None}],
        # integer ids past int64, double and boolean ids
        [{"text": "a", "id": 2**64}, {"text": "b", "id": 1.5}, {"text": "c", "id": True}],
        # keys in another order on each line: columns in order of first appearance
        [{"b": 1, "text": "x"}, {"a": 2, "text": "y", "c": 3}, {"c": 1, "a": 5, "text": "z"}],
        # a date nested in a struct
        [{"text": "a", "meta": {"date": DATES[1]}}],
        # a date field first seen after the first line; the order of appearance stays
        [{"text": "a", "url": "u", "date": DATES[0]}, {"date": DATES[1], "n": 1, "text": "b"}],
    ],
)
def test_values_pyarrow_reads_differently(tmp_path: Path, lines: list[dict]) -> None:
    path = tmp_path / "values.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert_same_outcome(path, batch_rows=1)
    assert_same_outcome(path, batch_rows=10)


def test_real_samples_take_the_block_path(c4_path: Path, pile_path: Path) -> None:
    """C4 (with ISO dates, which pyarrow would read as timestamps) and the Pile (integer
    ids, nested metadata) are parsed whole, and equal the line path's batches."""
    for path, spec in ((c4_path, {}), (pile_path, {"text_field": "contents"})):
        with counting_fast_path() as used:
            fast = read_batches(path, batch_rows=300, **spec)
        assert used == [True] * 4, f"{path.name}: batches parsed line by line: {used}"
        assert_same_batches(fast, read_batches(path, line_path=True, batch_rows=300, **spec))
    assert pa.types.is_string(fast[0]["id"].type)
    c4 = read_batches(c4_path)[0]
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        first = json.loads(handle.readline())
    assert c4["date"][0].as_py() == first["date"], "a date stays the text it was"


def test_a_bad_line_costs_only_its_block(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "text": f"document {i}"}) for i in range(40)]
    lines[25] = '{"id": 25, "text": "cut in the mid'
    path = tmp_path / "one-bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with counting_fast_path() as used:
        batches = read_batches(path, batch_rows=10)
    assert used == [True, True, False, True]
    reasons = pa.concat_tables(batches)["drop_reason"].to_pylist()
    assert reasons[25] == "read:invalid_json" and reasons.count(None) == 39


def test_blank_lines_and_crlf_keep_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b'{"text": "a"}\r\n\r\n  \n{"text": "b"}\n\n{"text": "c"}')
    with counting_fast_path() as used:
        batches = read_batches(path, batch_rows=3)
    assert used == [True, True]  # lines 1-3 hold one row, lines 4-6 two
    assert [t["id"].to_pylist() for t in batches] == [
        ["blank.jsonl/0"],
        ["blank.jsonl/1", "blank.jsonl/2"],
    ]


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from([b"a", b"bc", b"\n", b"\r\n", b" ", b"\x0b", b"xyz\n"]), max_size=40
    ),
    lines=st.integers(1, 5),
    cuts=st.lists(st.integers(0, 60), max_size=6),
)
def test_line_blocks_cut_whole_lines(pieces: list[bytes], lines: int, cuts: list[int]) -> None:
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    cut = list(readers._LineBlocks(lines).cut(chunks))
    blocks = [block for block, _ in cut]
    assert b"".join(blocks) == data
    for block, newlines in cut:
        assert newlines.tolist() == [i for i, byte in enumerate(block) if byte == ord("\n")]
    for block in blocks[:-1]:
        assert block.count(b"\n") == lines and block.endswith(b"\n")
    if blocks:
        assert 0 < blocks[-1].count(b"\n") + (not blocks[-1].endswith(b"\n")) <= lines
    for block, newlines in cut:
        nonblank = sum(bool(line.strip()) for line in block.split(b"\n"))
        assert readers._nonblank_lines(block, newlines) == nonblank


def test_a_json_array_file_is_read_as_its_elements(tmp_path: Path) -> None:
    # a .json export that is one array, pretty-printed: every line was a row of garbage
    docs = [
        {"id": "a", "text": "first document", "url": "http://a.example/"},
        {"text": "second document", "score": 0.5},
        42,
        {"title": "no text here"},
        {"id": "e", "text": "fifth document"},
    ]
    path = tmp_path / "export.json.gz"
    path.write_bytes(gzip.compress(("\ufeff" + json.dumps(docs, indent=2)).encode()))
    batches = read_batches(path, batch_rows=2)
    assert [batch.num_rows for batch in batches] == [2, 2, 1]
    table = pa.concat_tables(batches, promote_options="default")
    assert table["id"].to_pylist() == [
        "a",
        "export.json.gz/1",
        "export.json.gz/2",
        "export.json.gz/3",
        "e",
    ]
    assert table["text"].to_pylist() == [
        "first document",
        "second document",
        "42",
        "",
        "fifth document",
    ]
    assert table["drop_reason"].to_pylist() == [
        None,
        None,
        "read:invalid_json",
        "read:missing_text_field",
        None,
    ]
    assert table["url"].to_pylist() == ["http://a.example/", None, None, None, None]
    assert table["score"].to_pylist() == [None, 0.5, None, None, None]
    # the same objects as JSON lines give the same rows
    lines = tmp_path / "export.jsonl"
    lines.write_text("".join(json.dumps(d) + "\n" for d in docs))
    as_lines = pa.concat_tables(read_batches(lines, batch_rows=2), promote_options="default")
    for column in ("text", "drop_reason", "url", "score"):
        assert as_lines[column].to_pylist() == table[column].to_pylist()


def test_json_lines_that_hold_arrays_are_still_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "arrays.jsonl"
    path.write_text('[1, 2]\n{"text": "a real document"}\n[3]\n')
    [table] = read_batches(path)
    assert table["drop_reason"].to_pylist() == ["read:invalid_json", None, "read:invalid_json"]
    assert table["text"].to_pylist() == ["[1, 2]", "a real document", "[3]"]


def outcome(path: Path, batch_rows: int) -> list[pa.Table] | str:
    """The batches of ``path``, or the input error it raises with the file's name taken
    out."""
    try:
        return read_batches(path, batch_rows=batch_rows)
    except InputError as err:
        return str(err).replace(str(path), "FILE")


def assert_reads_as_its_elements(folder: Path, whole: str, elements: list, rows: int) -> None:
    """``whole``, written as ``docs.json``, gives the batches ``elements`` give as JSON
    lines: same rows, reasons, columns and types; only the text of a row dropped as
    invalid JSON may be written differently."""
    array = folder / "docs.json"
    array.write_text(whole)
    lines = folder / "docs.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in elements))
    got, want = (outcome(path, rows) for path in (array, lines))
    if isinstance(want, str):  # no element has the text field: the same error for both
        assert got == want
        return
    assert isinstance(got, list)
    assert [t.num_rows for t in got] == [t.num_rows for t in want]
    assert sum(t.num_rows for t in got) == len(elements)
    for ours, theirs in zip(got, want, strict=True):
        assert ours.schema == theirs.schema
        invalid = [r == "read:invalid_json" for r in ours["drop_reason"].to_pylist()]
        for name in ours.column_names:
            mine, other = ours[name].to_pylist(), theirs[name].to_pylist()
            if name == "id":
                mine = [i.replace("docs.json/", "") for i in mine]
                other = [i.replace("docs.jsonl/", "") for i in other]
            if name == "text":
                mine = [None if bad else t for t, bad in zip(mine, invalid, strict=True)]
                other = [None if bad else t for t, bad in zip(other, invalid, strict=True)]
            assert mine == other, name


@settings(max_examples=200, deadline=None)
@given(
    elements=st.lists(st.one_of(objects, values), min_size=1, max_size=12),
    indent=st.sampled_from([None, 2]),
    batch_rows=st.integers(1, 5),
)
def test_a_json_array_reads_as_its_elements_would_as_lines(
    tmp_path_factory: pytest.TempPathFactory, elements: list, indent: int | None, batch_rows: int
) -> None:
    """Whatever the elements (integers past 64 bits, lone surrogates, dates, non-objects),
    an array reads as its elements would as JSON lines."""
    whole = json.dumps(elements, indent=indent)
    assert_reads_as_its_elements(tmp_path_factory.mktemp("array"), whole, elements, batch_rows)


@settings(max_examples=100, deadline=None)
@given(
    elements=st.lists(objects, min_size=1, max_size=8),
    key=st.sampled_from(["data", "rows", "documents"]),
    extra=st.dictionaries(st.sampled_from(["version", "source"]), st.integers(), max_size=2),
    indent=st.sampled_from([None, 2]),
    batch_rows=st.integers(1, 5),
)
def test_records_wrapped_in_one_object_read_as_its_elements_would_as_lines(
    tmp_path_factory: pytest.TempPathFactory,
    elements: list,
    key: str,
    extra: dict,
    indent: int | None,
    batch_rows: int,
) -> None:
    """``{"data": [{...}, ...], "version": 1}``, pretty-printed or on one line, reads as
    its records would as JSON lines."""
    whole = json.dumps({**extra, key: elements}, indent=indent)
    assert_reads_as_its_elements(tmp_path_factory.mktemp("wrapped"), whole, elements, batch_rows)


def test_a_pretty_printed_json_object_is_one_document(tmp_path: Path) -> None:
    # one document a file, pretty-printed: each of its lines was a row of invalid JSON
    folder = tmp_path / "docs"
    folder.mkdir()
    docs = [
        {"id": f"doc-{i}", "text": f"document number {i}\nwith two lines", "meta": {"n": i}}
        for i in range(3)
    ]
    for i, doc in enumerate(docs):
        (folder / f"{i}.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    spec = InputSpec(paths=[str(folder)])
    table = pa.concat_tables(
        [b for shard in resolve_inputs([str(folder)]) for b in readers.read_shard(shard, spec)]
    )
    assert table["id"].to_pylist() == ["doc-0", "doc-1", "doc-2"]
    assert table["text"].to_pylist() == [d["text"] for d in docs]
    assert table["drop_reason"].to_pylist() == [None] * 3
    assert table["meta"].to_pylist() == [{"n": 0}, {"n": 1}, {"n": 2}]
    # an object with the text field is one document even when a field holds records
    nested = tmp_path / "one.json"
    nested.write_text(json.dumps({"text": "the document", "links": [{"href": "x"}]}, indent=1))
    [one] = read_batches(nested)
    assert one["text"].to_pylist() == ["the document"]
    assert one["links"].to_pylist() == [[{"href": "x"}]]


def test_json_lines_in_a_json_file_are_read_line_by_line(tmp_path: Path) -> None:
    # the first line is a whole object and more follows: JSON lines, whatever the name
    path = tmp_path / "export.json"
    rows = [{"text": f"row {i}", "data": [{"a": 1}]} for i in range(4)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    [table] = read_batches(path)
    assert table["text"].to_pylist() == [f"row {i}" for i in range(4)]
    # a damaged first line: the lines are still read one by one, the bad one set aside
    path.write_text('{"text": "cut\n' + "".join(json.dumps(r) + "\n" for r in rows))
    [table] = read_batches(path)
    assert table["drop_reason"].to_pylist() == ["read:invalid_json"] + [None] * 4


def test_a_block_that_begins_with_null_is_a_dropped_row_not_a_crash(tmp_path: Path) -> None:
    # pyarrow 26's JSON reader ends the process with a segmentation fault on such a block
    path = tmp_path / "nulls.jsonl"
    path.write_bytes(b'null\n{"text": "a document"}\n null\n')
    [table] = read_batches(path)
    assert table["drop_reason"].to_pylist() == ["read:invalid_json", None, "read:invalid_json"]
    assert table["text"].to_pylist() == ["null", "a document", " null"]


def test_dates_in_the_first_line_cost_no_second_parse(c4_path: Path) -> None:
    # C4's `date` is an ISO date that pyarrow reads as a timestamp: the first block
    # of every file was parsed twice (a file of one block: its whole parse cost doubled)
    calls: list[int] = []
    real = readers._parse_block

    def spy(block: bytes, as_text: dict[str, None]) -> pa.Table:
        calls.append(len(block))
        return real(block, as_text)

    with mock.patch.object(readers, "_parse_block", spy):
        fast = read_batches(c4_path, batch_rows=400)
    assert len(calls) == len(fast) == 3
    slow = read_batches(c4_path, batch_rows=400, line_path=True)
    for ours, theirs in zip(fast, slow, strict=True):
        assert ours.equals(theirs)
    assert fast[0].schema.field("date").type == pa.string()
    assert fast[0]["date"][0].as_py() == "2019-04-21T18:54:04Z"


def test_a_block_of_few_lines_skips_the_whole_block_parse(c4_path: Path) -> None:
    # pyarrow's reader costs about 0.5 ms a call: a one-document JSONL file took 0.6 ms
    # to read on the block path and 0.05 ms on the line path, the same batch
    with mock.patch.object(readers, "_FEW_ROWS", 128), counting_fast_path() as used:
        few = read_batches(c4_path, batch_rows=100)
        many = read_batches(c4_path, batch_rows=500)
    assert used == [True, True]  # only the blocks of 500 lines were offered to pyarrow
    slow = read_batches(c4_path, batch_rows=100, line_path=True)
    assert all(a.equals(b) for a, b in zip(few, slow, strict=True))
    assert pa.concat_tables(few).equals(pa.concat_tables(many))
