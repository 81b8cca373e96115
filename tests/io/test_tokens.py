"""`curate tokenize`: token files in datatrove's format, byte for byte what datatrove's
DocumentTokenizer writes, read back by its DatatroveFolderDataset; every document
written or set aside with its reason; the same files on every executor."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.cli import main
from curation.io import tokens
from curation.io.inputs import InputError
from curation.io.tokens import (
    TokenizeError,
    TokenizeOptions,
    TokenizerSpec,
    read_token_file,
    tokenize,
)
from curation.lm.tokenizer import train_lm_tokenizer
from curation.recipe import InputSpec
from tests.conftest import (
    c4_texts,
    read_output,
    recipe_of,
    run_local,
    run_that_kept_nothing,
    shared_file,
    train_bytelevel_bpe,
)

EOS = "<|endoftext|>"


@pytest.fixture(scope="module")
def bpe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer.json (GPT-2's kind) trained here on the C4 sample."""
    texts = [json.loads(line)["text"] for line in gzip.open(c4(), "rt", encoding="utf-8")]
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    return train_bytelevel_bpe(texts, 4000, path, EOS)


def c4() -> Path:
    return shared_file("web/c4-sample-1000.jsonl.gz")


def documents(folder: Path) -> list[bytes]:
    """Every document of every token file of ``folder``, in file order, as token bytes."""
    files = [*folder.glob("*.ds"), *folder.glob("*.bin")]
    return [doc for path in sorted(files) for doc in documents_in(path)]


def documents_in(path: Path) -> list[bytes]:
    """The documents of one token file, in order, as token bytes."""
    ids, ends = read_token_file(path)
    starts = [0, *ends[:-1].tolist()]
    return [ids[s:e].tobytes() for s, e in zip(starts, ends.tolist(), strict=True)]


def quiet(paths: list, out: Path, options: TokenizeOptions, **kw: object) -> dict:
    return tokenize([str(p) for p in paths], out, options, progress=False, **kw)  # type: ignore[arg-type]


def test_same_files_as_datatrove_document_tokenizer(
    bpe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte for byte, with the text encoded a few documents at a time (one longer than
    that alone)."""
    monkeypatch.setattr(tokens, "_ENCODE_BYTES", 20_000)
    datatrove = pytest.importorskip("datatrove")
    del datatrove
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    theirs = tmp_path / "datatrove"
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(c4().parent), glob_pattern=c4().name),
            DocumentTokenizer(
                str(theirs), tokenizer_name_or_path=str(bpe), eos_token=EOS, shuffle_documents=False
            ),
        ],
        tasks=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    ours = tmp_path / "ours"
    data = quiet([c4()], ours, TokenizeOptions(TokenizerSpec(str(bpe), EOS), shuffle=False))
    assert data["documents"] == {"read": 1000, "written": 1000, "repeats": 0, "set_aside": {}}
    for suffix in ("", ".index", ".metadata"):
        mine = (ours / f"part-00000-000.ds{suffix}").read_bytes()
        assert mine == (theirs / f"00000_unshuffled.ds{suffix}").read_bytes(), suffix
    ids, ends = read_token_file(ours / "part-00000-000.ds")
    assert len(ends) == 1000 and int(ends[-1]) == len(ids) == data["tokens"]
    assert (ids[ends - 1] == data["tokenizer"]["eos_id"]).all()  # every document ends so


def test_megatron_files_are_datatrove_megatron_tokenizers(bpe: Path, tmp_path: Path) -> None:
    """--output-format megatron: .bin and .idx byte for byte what datatrove's
    MegatronDocumentTokenizer writes; shuffled, the documents of the .ds layout."""
    pytest.importorskip("datatrove")
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens.megatron_tokenizer import MegatronDocumentTokenizer

    theirs = tmp_path / "datatrove"
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(c4().parent), glob_pattern=c4().name),
            MegatronDocumentTokenizer(str(theirs), tokenizer_name_or_path=str(bpe), eos_token=EOS),
        ],
        tasks=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    spec = TokenizerSpec(str(bpe), EOS)
    ours = tmp_path / "ours"
    data = quiet([c4()], ours, TokenizeOptions(spec, shuffle=False, format="megatron"))
    assert data["format"] == "megatron" and data["dtype"] == "uint16"
    assert [f["name"] for f in data["files"]] == ["part-00000-000.bin"]
    for suffix in (".bin", ".idx"):
        mine = (ours / f"part-00000-000{suffix}").read_bytes()
        assert mine == (theirs / f"00000_tokens{suffix}").read_bytes(), suffix
    index = (ours / "part-00000-000.idx").read_bytes()
    assert index[:9] == b"MMIDIDX\x00\x00" and len(index) == 9 + 8 + 1 + 8 + 8 + 20 * 1000 + 8

    options = TokenizeOptions(spec, seed=2, max_tokens_per_file=200_000)
    cut = documents_of(tmp_path / "ds", options)
    megatron = documents_of(tmp_path / "bin", dataclasses.replace(options, format="megatron"))
    assert megatron == cut and len(cut) == 1000


def test_a_vocabulary_over_65536_ids_writes_four_byte_ids(bpe: Path, tmp_path: Path) -> None:
    """Over 65,536 ids (added tokens count): uint32 in .ds, int32 in .bin, as datatrove
    writes them, and an added token among the text's ids."""
    pytest.importorskip("datatrove")
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.pipeline.tokens.megatron_tokenizer import MegatronDocumentTokenizer
    from tokenizers import Tokenizer

    wide = Tokenizer.from_file(str(bpe))
    wide.add_tokens([f"<extra_{i}>" for i in range(62_000)])
    assert wide.get_vocab_size() > 65_536
    path = tmp_path / "wide.json"
    wide.save(str(path))
    texts = [json.loads(line)["text"] for line in gzip.open(c4(), "rt", encoding="utf-8")]
    source = tmp_path / "in" / "docs.jsonl"
    source.parent.mkdir()
    texts = [texts[0] + " <extra_61999>", *texts[1:200]]
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    theirs = tmp_path / "datatrove"
    writers = [
        DocumentTokenizer(str(theirs), str(path), eos_token=EOS, shuffle_documents=False),
        MegatronDocumentTokenizer(str(theirs), tokenizer_name_or_path=str(path), eos_token=EOS),
    ]
    for step, writer in enumerate(writers):
        LocalPipelineExecutor(
            pipeline=[JsonlReader(str(source.parent)), writer],
            tasks=1,
            logging_dir=str(tmp_path / f"logs{step}"),
        ).run()
    spec = TokenizerSpec(str(path), EOS)
    ds = quiet([source], tmp_path / "ds", TokenizeOptions(spec, shuffle=False))
    assert ds["dtype"] == "uint32"
    for suffix in ("", ".index", ".metadata"):
        mine = (tmp_path / "ds" / f"part-00000-000.ds{suffix}").read_bytes()
        assert mine == (theirs / f"00000_unshuffled.ds{suffix}").read_bytes(), suffix
    options = TokenizeOptions(spec, shuffle=False, format="megatron")
    assert quiet([source], tmp_path / "bin", options)["dtype"] == "int32"
    for suffix in (".bin", ".idx"):
        mine = (tmp_path / "bin" / f"part-00000-000{suffix}").read_bytes()
        assert mine == (theirs / f"00000_tokens{suffix}").read_bytes(), suffix
    ids, _ = read_token_file(tmp_path / "ds" / "part-00000-000.ds")
    assert wide.token_to_id("<extra_61999>") in ids.tolist()
    assert documents(tmp_path / "ds") == documents(tmp_path / "bin")


def two_sources(tmp_path: Path) -> Path:
    """A folder of the C4 and the Pile samples as two JSONL files (two units of work)."""
    pile = shared_file("web/pile-sample-1000.jsonl")
    inputs = tmp_path / "in"
    inputs.mkdir(exist_ok=True)
    rows = [json.loads(line) for line in gzip.open(c4(), "rt", encoding="utf-8")]
    (inputs / "a.jsonl").write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in rows))
    (inputs / "b.jsonl").write_text(
        "".join(json.dumps({"text": json.loads(line)["contents"]}) + "\n" for line in open(pile))
    )
    return inputs


@pytest.mark.parametrize("layout", ["datatrove", "megatron"])
def test_merge_mixes_the_units_documents(bpe: Path, tmp_path: Path, layout: str) -> None:
    """--merge: every document once, the sources mixed through the files, seeded, the
    units' files gone; without a shuffle, the units' documents in order."""
    inputs = two_sources(tmp_path)
    spec = TokenizerSpec(str(bpe), EOS)
    options = TokenizeOptions(spec, seed=1, max_tokens_per_file=120_000, format=layout)
    units = documents_of(tmp_path / "units", options, inputs)
    merge = dataclasses.replace(options, merge=True)
    data = quiet([inputs], tmp_path / "merged", merge)
    merged = documents(tmp_path / "merged")
    assert Counter(merged) == Counter(units) and len(merged) == 2000
    assert all(f["name"].startswith("merged-") for f in data["files"])
    assert not list((tmp_path / "merged").glob("part-*"))
    assert all(f["tokens"] <= 120_000 or f["documents"] == 1 for f in data["files"])
    assert len(data["units"]) == 2 and data["documents"]["written"] == 2000
    # the first merged file holds documents of both sources (a unit's files hold one)
    c4_docs = set(documents_of(tmp_path / "c4", options, inputs / "a.jsonl"))
    first_docs = documents_in(tmp_path / "merged" / data["files"][0]["name"])
    assert 0 < sum(d in c4_docs for d in first_docs) < len(first_docs)
    assert documents_of(tmp_path / "again", merge, inputs) == merged
    in_order = dataclasses.replace(merge, shuffle=False)
    plain = dataclasses.replace(options, shuffle=False)
    assert documents_of(tmp_path / "m2", in_order, inputs) == documents_of(
        tmp_path / "u2", plain, inputs
    )


def test_ids_files_say_which_document_is_where(bpe: Path, tmp_path: Path) -> None:
    """--ids: beside each merged file, its documents' ids and token counts in its order;
    each id's text, tokenized, is the document at that place."""
    from tokenizers import Tokenizer

    from curation.io.inputs import resolve_inputs
    from curation.io.readers import read_shard

    inputs = two_sources(tmp_path)
    options = TokenizeOptions(
        TokenizerSpec(str(bpe), EOS), seed=3, max_tokens_per_file=300_000, merge=True, ids=True
    )
    data = quiet([inputs], tmp_path / "out", options)
    texts = {}
    for shard in resolve_inputs([str(inputs)]):
        for table in read_shard(shard, InputSpec()):
            texts.update(zip(table["id"].to_pylist(), table["text"].to_pylist(), strict=True))
    tokenizer = Tokenizer.from_file(str(bpe))
    eos = tokenizer.token_to_id(EOS)
    seen = []
    for entry in data["files"]:
        path = tmp_path / "out" / entry["name"]
        named = pq.read_table(path.with_name(path.stem + ".ids.parquet")).to_pydict()
        docs = documents_in(path)
        assert len(named["id"]) == len(docs) == entry["documents"]
        assert named["tokens"] == [len(d) // 2 for d in docs]
        for doc_id, doc in zip(named["id"][:40], docs[:40], strict=True):
            ids = tokenizer.encode(texts[doc_id], add_special_tokens=False).ids
            assert doc == np.array([*ids, eos], "<u2").tobytes(), doc_id
        seen += named["id"]
    assert sorted(seen) == sorted(texts) and len(seen) == 2000
    assert not list((tmp_path / "out").glob("part-*"))  # the units' ids files went too


def test_datatrove_folder_dataset_reads_the_shuffled_files(bpe: Path, tmp_path: Path) -> None:
    pytest.importorskip("datatrove")
    from datatrove.utils.dataset import DatatroveFolderDataset

    out = tmp_path / "tokens"
    options = TokenizeOptions(TokenizerSpec(str(bpe), EOS), seed=3, max_tokens_per_file=100_000)
    data = quiet([c4()], out, options)
    assert len(data["files"]) >= 5
    assert all(f["tokens"] <= 100_000 for f in data["files"])
    seq = 512
    dataset = DatatroveFolderDataset(str(out), seq_len=seq, token_size=2)
    names = sorted(f["name"] for f in data["files"])
    assert [Path(f.file_path).name for f in dataset.files] == names
    assert len(dataset) == sum(f["tokens"] // (seq + 1) for f in data["files"])
    first, _ = read_token_file(out / names[0])
    window = dataset[1]["input_ids"].numpy()
    assert (window == first[seq + 1 : 2 * (seq + 1)]).all()


def test_shuffle_moves_documents_and_loses_none(bpe: Path, tmp_path: Path) -> None:
    spec = TokenizerSpec(str(bpe), EOS)
    plain = documents_of(tmp_path / "plain", TokenizeOptions(spec, shuffle=False))
    one = documents_of(tmp_path / "one", TokenizeOptions(spec, seed=1))
    again = documents_of(tmp_path / "again", TokenizeOptions(spec, seed=1))
    other = documents_of(tmp_path / "other", TokenizeOptions(spec, seed=2))
    assert one == again  # seeded
    assert one != plain and one != other
    assert Counter(one) == Counter(plain) == Counter(other)
    cut = documents_of(tmp_path / "cut", TokenizeOptions(spec, seed=1, max_tokens_per_file=50_000))
    assert cut == one  # cutting into files keeps the order


def documents_of(out: Path, options: TokenizeOptions, source: Path | None = None) -> list[bytes]:
    quiet([source or c4()], out, options)
    return documents(out)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=60),
    max_tokens=st.none() | st.integers(1, 120),
    seed=st.integers(0, 2**16),
    gather=st.sampled_from([1, 7, 64, 1 << 22]),
)
def test_parts_hold_each_document_once_in_the_shuffled_order(
    counts: list[int], max_tokens: int | None, seed: int, gather: int, tmp_path_factory
) -> None:
    """The gathered bytes of the files are the documents in the permutation's order, the
    index their ends, the ids' files the documents' ids in that order, and no file over
    ``max_tokens`` unless it holds one document."""
    out = tmp_path_factory.mktemp("parts")
    lengths = np.array(counts, np.int64)
    flat = np.arange(int(lengths.sum()), dtype=np.uint16)
    raw = out / "raw"
    raw.write_bytes(flat.tobytes())
    ids = pa.array([f"doc{i}" for i in range(len(counts))], pa.large_string())

    class Fixed(tokens.TextTokenizer):
        name, vocab_size, bos_id, eos_id = "fixed", 100, None, None

        def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
            raise AssertionError("the parts are written from tokens already made")

    options = TokenizeOptions(TokenizerSpec("x"), seed=seed, max_tokens_per_file=max_tokens)
    old = tokens._GATHER_TOKENS
    tokens._GATHER_TOKENS = gather
    try:
        files = tokens._write_parts(raw, lengths, Fixed(), options, 7, out, ids)
    finally:
        tokens._GATHER_TOKENS = old
    order = np.random.default_rng([seed, 7]).permutation(len(counts))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    want = [flat[starts[i] : starts[i] + lengths[i]].tobytes() for i in order]
    assert documents(out) == want
    assert sum(f["documents"] for f in files) == len(counts)
    for f in files:
        assert f["tokens"] <= (max_tokens or f["tokens"]) or f["documents"] == 1
    named = pq.read_table(sorted(out.glob("*.ids.parquet"))).to_pydict()
    assert named == {"id": [f"doc{i}" for i in order], "tokens": lengths[order].tolist()}


def test_begin_and_end_tokens_around_every_document(bpe: Path, tmp_path: Path) -> None:
    """--bos and --eos: each document is the begin token, the tokenizer's ids of its text
    without special tokens, and the end token, for both kinds of tokenizer."""
    from tokenizers import Tokenizer

    texts = [json.loads(line)["text"] for line in gzip.open(c4(), "rt", encoding="utf-8")]
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:50]))
    with_bos = Tokenizer.from_file(str(bpe))
    with_bos.add_special_tokens(["<s>"])
    path = tmp_path / "bos.json"
    with_bos.save(str(path))
    bos, eos = with_bos.token_to_id("<s>"), with_bos.token_to_id(EOS)
    options = TokenizeOptions(TokenizerSpec(str(path), EOS, "<s>"), shuffle=False)
    data = quiet([source], tmp_path / "bpe", options)
    assert (data["tokenizer"]["bos_id"], data["tokenizer"]["eos_id"]) == (bos, eos)
    plain = with_bos.encode_batch(texts[:50], add_special_tokens=False)
    want = [np.array([bos, *e.ids, eos], "<u2").tobytes() for e in plain]
    assert documents(tmp_path / "bpe") == want
    only_bos = TokenizeOptions(TokenizerSpec(str(path), bos="<s>"), shuffle=False)
    quiet([source], tmp_path / "bos", only_bos)
    assert documents(tmp_path / "bos") == [w[:-2] for w in want]

    processor = train_lm_tokenizer(texts[:300], tmp_path / "sp", vocab_size=1000)
    options = TokenizeOptions(TokenizerSpec(str(tmp_path / "sp"), "</s>", "<s>"), shuffle=False)
    quiet([source], tmp_path / "spm", options)
    b, e = processor.bos_id(), processor.eos_id()
    want = [np.array([b, *processor.encode(t), e], "<u2").tobytes() for t in texts[:50]]
    assert documents(tmp_path / "spm") == want
    with pytest.raises(TokenizeError, match=r"no token '<bos>' to begin documents.*--bos"):
        quiet([source], tmp_path / "x", TokenizeOptions(TokenizerSpec(str(bpe), bos="<bos>")))
    with pytest.raises(TokenizeError, match=r"no token '<eot>' to end documents.*--eos"):
        quiet(
            [source], tmp_path / "x", TokenizeOptions(TokenizerSpec(str(tmp_path / "sp"), "<eot>"))
        )


def test_sentencepiece_checkpoint_folder(tmp_path: Path) -> None:
    """A `curate train-lm` tokenizer (a folder's tokenizer.model): each document is
    SentencePiece's own ids and then </s>."""
    from curation.lm.tokenizer import EOS_ID

    texts = [json.loads(line)["text"] for line in gzip.open(c4(), "rt", encoding="utf-8")]
    processor = train_lm_tokenizer(texts[:300], tmp_path / "ckpt", vocab_size=2000)
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[300:400]))
    out = tmp_path / "tokens"
    options = TokenizeOptions(TokenizerSpec(str(tmp_path / "ckpt"), "</s>"), shuffle=False)
    data = quiet([source], out, options)
    assert data["tokenizer"]["eos_id"] == EOS_ID and data["dtype"] == "uint16"
    want = [np.array([*processor.encode(t), EOS_ID], "<u2").tobytes() for t in texts[300:400]]
    assert documents(out) == want


def test_every_document_written_or_set_aside_with_its_reason(bpe: Path, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": f"document number {i}"}) for i in range(6)]
    lines[1] = '{"text": "broken'
    lines[3] = json.dumps({"text": " "})
    lines[4] = json.dumps({"text": "\u200b"})  # SentencePiece makes no token of it
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "tokens"
    data = quiet([source], out, TokenizeOptions(TokenizerSpec(str(bpe)), shuffle=False))
    assert data["documents"] == {
        "read": 6,
        "written": 4,
        "repeats": 0,
        "set_aside": {"read:invalid_json": 1, "read:empty_text": 1},
    }
    assert len(documents(out)) == 4
    # a document of no token is set aside (with an end token it has one and is written)
    texts = [json.loads(line)["text"] for line in gzip.open(c4(), "rt", encoding="utf-8")]
    train_lm_tokenizer(texts[:200], tmp_path / "sp", vocab_size=1000)
    sp = str(tmp_path / "sp")
    data = quiet([source], out, TokenizeOptions(TokenizerSpec(sp)), overwrite=True)
    assert data["documents"]["written"] == 3
    assert data["documents"]["set_aside"][tokens.NO_TOKENS] == 1
    data = quiet([source], out, TokenizeOptions(TokenizerSpec(sp, "</s>")), overwrite=True)
    assert (
        data["documents"]["written"] == 4 and tokens.NO_TOKENS not in data["documents"]["set_aside"]
    )
    # the reader's limits apply
    data = quiet(
        [source],
        out,
        TokenizeOptions(TokenizerSpec(str(bpe))),
        spec=InputSpec(max_doc_chars=15),
        overwrite=True,
    )
    assert data["documents"]["set_aside"]["read:too_long"] == 3


def test_a_run_folder_gives_its_kept_documents(bpe: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    stats = run_local(recipe_of("stages:\n  - length_filter: {min_chars: 2000}\n", c4()), run)
    out = tmp_path / "tokens"
    data = quiet([run], out, TokenizeOptions(TokenizerSpec(str(bpe), EOS)))
    assert data["sources"] == [str(run / "kept")]
    assert data["documents"]["written"] == stats["rows"]["kept"] == 303


def test_where_tokenizes_the_documents_it_holds_for_and_sets_aside_the_rest(
    bpe: Path, tmp_path: Path
) -> None:
    """--where over a run's kept documents: those it is true for are written, in the
    files a run of just them gives; the others, and those whose value is null, are set
    aside as tokenize:where; the reader's own reasons stay theirs."""
    run = tmp_path / "run"
    run_local(recipe_of("stages:\n  - length_filter: {min_chars: 500}\n", c4()), run)
    kept = pq.read_table(run / "kept")
    long = kept.filter(pa.compute.greater(kept["length_chars"], 3000))
    options = TokenizeOptions(TokenizerSpec(str(bpe), EOS), shuffle=False)
    where = dataclasses.replace(options, where="length_chars > 3000")
    data = quiet([run], tmp_path / "where", where)
    assert data["where"] == "length_chars > 3000"
    assert data["documents"] == {
        "read": kept.num_rows,
        "written": long.num_rows,
        "repeats": 0,
        "set_aside": {tokens.NOT_WHERE: kept.num_rows - long.num_rows},
    }
    only = tmp_path / "only.parquet"  # the same documents, tokenized without a condition
    pq.write_table(long.select(["id", "text"]), only)
    quiet([only], tmp_path / "plain", options)
    assert documents(tmp_path / "where") == documents(tmp_path / "plain")

    source = tmp_path / "scored.jsonl"
    rows = [{"text": "kept one", "score": 0.9}, {"text": "no score"}]
    rows += [{"text": "low one", "score": 0.1}, {"text": "", "score": 0.99}]
    rows += [{"text": "null score", "score": None}]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = quiet([source], tmp_path / "scored", dataclasses.replace(where, where="score > 0.5"))
    assert data["documents"] == {
        "read": 5,
        "written": 1,
        "repeats": 0,
        "set_aside": {tokens.NOT_WHERE: 3, "read:empty_text": 1},
    }


def test_where_that_cannot_be_used_is_refused(bpe: Path, tmp_path: Path) -> None:
    options = TokenizeOptions(TokenizerSpec(str(bpe), EOS), where="score > avg(score)")
    with pytest.raises(TokenizeError, match="looks at other rows"):
        quiet([c4()], tmp_path / "a", options)
    options = dataclasses.replace(options, where="lang = 'en'")
    with pytest.raises(TokenizeError, match=r"names column\(s\) lang that the rows do not have"):
        quiet([c4()], tmp_path / "b", options)


def test_ray_tasks_write_the_same_files(bpe: Path, tmp_path: Path) -> None:
    inputs = two_sources(tmp_path)
    options = TokenizeOptions(TokenizerSpec(str(bpe), EOS), seed=5, max_tokens_per_file=200_000)
    local = quiet([inputs], tmp_path / "local", options)
    ray = quiet([inputs], tmp_path / "ray", options, executor="ray", workers=2)
    assert [f["name"] for f in local["files"]] == [f["name"] for f in ray["files"]]
    assert {f["source"] for f in local["files"]} == {
        str(inputs / "a.jsonl"),
        str(inputs / "b.jsonl"),
    }
    for f in local["files"]:
        for suffix in ("", ".index", ".metadata"):
            name = f["name"] + suffix
            assert (tmp_path / "local" / name).read_bytes() == (
                tmp_path / "ray" / name
            ).read_bytes()
    assert local["documents"] == ray["documents"]
    assert local["documents"]["read"] == 2000


def test_clear_errors(bpe: Path, tmp_path: Path) -> None:
    out = tmp_path / "tokens"
    with pytest.raises(TokenizeError, match=r"has no token '<eot>'.*--eos"):
        quiet([c4()], out, TokenizeOptions(TokenizerSpec(str(bpe), "<eot>")))
    with pytest.raises(TokenizeError, match="tokenizer file is missing"):
        quiet([c4()], out, TokenizeOptions(TokenizerSpec(str(tmp_path / "nope.json"))))
    with pytest.raises(TokenizeError, match=r"holds no tokenizer\.json or tokenizer\.model"):
        quiet([c4()], out, TokenizeOptions(TokenizerSpec(str(tmp_path))))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(TokenizeError, match=r"bad\.json is not a tokenizers JSON file"):
        quiet([c4()], out, TokenizeOptions(TokenizerSpec(str(bad))))
    with pytest.raises(InputError):
        quiet([tmp_path / "missing.jsonl"], out, TokenizeOptions(TokenizerSpec(str(bpe))))
    wrong = InputSpec(text_field="contents")
    with pytest.raises(InputError, match="no line has the text field 'contents'"):
        quiet([c4()], out, TokenizeOptions(TokenizerSpec(str(bpe))), spec=wrong)
    # a run that stopped before it finished a unit leaves nothing to resume: another may start
    options = TokenizeOptions(TokenizerSpec(str(bpe)), max_tokens_per_file=100_000)
    quiet([c4()], out, options)
    mine = out / "notes.txt"
    mine.write_text("the user's own file")
    with pytest.raises(TokenizeError, match=r"finished tokenization.*--overwrite"):
        quiet([c4()], out, TokenizeOptions(TokenizerSpec(str(bpe))))
    (out / tokens.MANIFEST).unlink()  # token files of no known plan
    with pytest.raises(TokenizeError, match=r"earlier tokenization \(part-00000-000.*--overwrite"):
        quiet([c4()], out, TokenizeOptions(TokenizerSpec(str(bpe))))
    data = quiet([c4()], out, TokenizeOptions(TokenizerSpec(str(bpe))), overwrite=True)
    assert sorted(p.name for p in out.glob("part-*")) == [
        "part-00000-000.ds",
        "part-00000-000.ds.index",
        "part-00000-000.ds.metadata",
    ]  # the earlier run's other files are gone, the user's file stays
    assert mine.exists() and len(data["files"]) == 1
    assert not (out / "_work").exists()


def test_a_stopped_tokenization_resumes_from_its_finished_units(
    bpe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped in its second unit (after one of that unit's files) is finished by
    the same call: the first unit is not tokenized again, the second's stray file is
    replaced, and the files are those of a run that never stopped."""
    inputs = two_sources(tmp_path)
    options = TokenizeOptions(TokenizerSpec(str(bpe), EOS), seed=4, max_tokens_per_file=150_000)
    clean = quiet([inputs], tmp_path / "clean", options)
    assert [f["name"][:10] for f in clean["files"]].count("part-00001") >= 2

    out = tmp_path / "stopped"
    stopped_writing(monkeypatch, "part-00001-001.ds", lambda: quiet([inputs], out, options))
    assert (out / "part-00001-000.ds").exists() and not (out / tokens.MANIFEST).exists()
    with pytest.raises(TokenizeError, match="unfinished tokenization of other inputs or options"):
        quiet([inputs], out, dataclasses.replace(options, seed=5))

    units: list[int] = []
    real_unit = tokens.tokenize_unit

    def counted(unit: int, *args: object, **kwargs: object) -> tokens.UnitResult:
        units.append(unit)
        return real_unit(unit, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tokens, "tokenize_unit", counted)
    resumed = quiet([inputs], out, options)
    assert units == [1]
    assert resumed["documents"] == clean["documents"] and resumed["files"] == clean["files"]
    assert_same_files(out, tmp_path / "clean")
    with pytest.raises(TokenizeError, match="holds a finished tokenization"):
        quiet([inputs], out, options)


@pytest.mark.parametrize("stop_at", ["merged-00001.ds", tokens.MANIFEST])
def test_a_merge_stopped_finishes_with_the_same_files(
    bpe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_at: str
) -> None:
    """Stopped while merging (before every merged file is written: merged again) or after
    (the units' files gone: the merged files kept), the same call finishes it."""
    inputs = two_sources(tmp_path)
    options = TokenizeOptions(
        TokenizerSpec(str(bpe), EOS), seed=6, max_tokens_per_file=150_000, merge=True
    )
    clean = quiet([inputs], tmp_path / "clean", options)
    out = tmp_path / "stopped"
    stopped_writing(monkeypatch, stop_at, lambda: quiet([inputs], out, options))
    resumed = quiet([inputs], out, options)
    assert resumed["files"] == clean["files"] and resumed["units"] == clean["units"]
    assert_same_files(out, tmp_path / "clean")


def stopped_writing(monkeypatch: pytest.MonkeyPatch, name: str, run: object) -> None:
    """Call ``run``, stopped (as by Ctrl-C) when it is about to publish the file ``name``."""
    real = tokens._publish

    def stop(final: Path, chunks: object) -> None:
        if final.name == name:
            raise KeyboardInterrupt
        real(final, chunks)  # type: ignore[arg-type]

    monkeypatch.setattr(tokens, "_publish", stop)
    with pytest.raises(KeyboardInterrupt):
        run()  # type: ignore[operator]
    monkeypatch.setattr(tokens, "_publish", real)


def assert_same_files(folder: Path, other: Path) -> None:
    """The same files in both folders, byte for byte (tokenize.json's seconds aside)."""
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in other.iterdir())
    for name in names:
        if name != tokens.MANIFEST:
            assert (folder / name).read_bytes() == (other / name).read_bytes(), name


def test_cli_tokenize(bpe: Path, tmp_path: Path) -> None:
    out = tmp_path / "tokens"
    args = ["tokenize", str(c4()), "--tokenizer", str(bpe), "--eos", EOS, "--output", str(out)]
    result = CliRunner().invoke(main, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1,000 documents" in result.output and "(uint16) in 1 file(s)" in result.output
    manifest = json.loads((out / "tokenize.json").read_text())
    assert manifest["tokens"] == sum(f["tokens"] for f in manifest["files"])
    again = CliRunner().invoke(main, [*args, "--quiet"])
    assert again.exit_code == 1 and "--overwrite" in again.output
    usage = CliRunner().invoke(main, [*args, "--workers", "2"])
    assert usage.exit_code == 2 and "--executor ray" in usage.output


def test_metric_writes_counts_as_datatrove_does() -> None:
    assert [tokens.metric(n) for n in (0, 7, 999, 1000, 99_999, 758_304, 999_999, 10**9)] == [
        "0.00 T",
        "7.00 T",
        "999 T",
        "1.00 kT",
        "100 kT",
        "758 kT",
        "1.00 MT",
        "1.00 GT",
    ]
    humanize = pytest.importorskip("humanize")
    rng = np.random.default_rng(0)
    for n in rng.integers(1, 10**15, 2000).tolist() + list(range(0, 20_000, 7)):
        assert tokens.metric(n) == humanize.metric(n, unit="T"), n


def test_a_run_that_kept_nothing_is_named(bpe: Path, tmp_path: Path) -> None:
    """Its empty kept/ was reported as a folder of no known format, to pass --format."""
    run = run_that_kept_nothing(tmp_path)
    options = TokenizeOptions(TokenizerSpec(str(bpe), EOS))
    with pytest.raises(TokenizeError, match=r"kept no document \(0 of 3 documents\)"):
        quiet([run], tmp_path / "tokens", options)


def test_mix_copies_write_a_document_that_many_times(bpe: Path, tmp_path: Path) -> None:
    """A mix stage's repeats: each document as many times as its mix_copies (null: once),
    the copies shuffled apart; --no-copies writes each once; a copy count below one is
    refused, naming the document."""
    texts = c4_texts(0, 40)
    copies = [None if i % 9 == 0 else 1 + i % 3 for i in range(40)]
    table = pa.table({"id": [f"d{i}" for i in range(40)], "text": texts, "mix_copies": copies})
    pq.write_table(table, tmp_path / "mix.parquet")
    spec = TokenizerSpec(str(bpe), EOS)
    no_copies = TokenizeOptions(spec, shuffle=False, copies=False)
    plain = documents_of(tmp_path / "plain", no_copies, tmp_path / "mix.parquet")
    assert len(plain) == 40
    once = dict(zip([f"d{i}" for i in range(40)], plain, strict=True))
    for merge in (False, True):
        out = tmp_path / f"copies-{merge}"
        data = quiet([tmp_path / "mix.parquet"], out, TokenizeOptions(spec, seed=3, merge=merge))
        written = documents(out)
        want = Counter({once[f"d{i}"]: copies[i] or 1 for i in range(40)})
        assert Counter(written) == want
        assert written != sorted(written, key=plain.index)  # copies shuffled, not in a row
        assert data["documents"]["written"] == 40
        assert data["documents"]["repeats"] == sum(want.values()) - 40
        assert data["tokens"] == sum(len(doc) // 2 * n for doc, n in want.items())
    # units of small files with the column and without: the latter's documents once
    both = tmp_path / "both"
    both.mkdir()
    for i in range(200):
        row = {"id": f"s{i}", "text": f"a short document, number {i}"}
        row.update({"mix_copies": 2} if i % 2 == 0 else {})
        (both / f"f{i:03d}.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    one = InputSpec(batch_rows=1)  # a batch without the column beside one with it
    data = quiet([both], tmp_path / "both-out", TokenizeOptions(spec, seed=3), spec=one)
    assert any(unit["read"] > 1 for unit in data["units"])  # files gathered into units
    assert data["documents"]["written"] == 200 and data["documents"]["repeats"] == 100
    assert len(documents(tmp_path / "both-out")) == 300
    table = table.set_column(2, "mix_copies", pa.array([1] * 39 + [0]))
    pq.write_table(table, tmp_path / "zero.parquet")
    with pytest.raises(TokenizeError, match="document 'd39' has mix_copies 0"):
        quiet([tmp_path / "zero.parquet"], tmp_path / "zero", TokenizeOptions(spec))


def test_a_mixed_run_tokenizes_to_its_shares(bpe: Path, tmp_path: Path) -> None:
    """curate run with a mix stage that repeats a scarce part, then curate tokenize of the
    run: the token files hold each document as many times as the run says, and so each
    part's characters in the shares asked."""
    pile = shared_file("web/pile-sample-1000.jsonl")
    text = (
        "input: {text_field: contents}\nstages:\n  - mix: {column: metadata.pile_set_name, "
        "weights: {Pile-CC: 1, Wikipedia (en): 1}, max_copies: 4}\n"
    )
    run_local(recipe_of(text, pile), tmp_path / "run")
    kept = read_output(tmp_path / "run", "kept").to_pylist()
    assert max(r["mix_copies"] for r in kept) == 4
    result = CliRunner().invoke(
        main,
        ["tokenize", str(tmp_path / "run"), "--tokenizer", str(bpe), "--eos", EOS,
         "--output", str(tmp_path / "tokens"), "--ids", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    repeats = sum(r["mix_copies"] for r in kept) - len(kept)
    assert f"{len(kept):,} documents (and {repeats:,} repeats)" in result.output
    assert len(documents(tmp_path / "tokens")) == len(kept) + repeats
    named = pq.read_table(sorted((tmp_path / "tokens").glob("*.ids.parquet")))["id"]
    assert Counter(named.to_pylist()) == {r["id"]: r["mix_copies"] for r in kept}
    chars = Counter()
    for row in kept:
        chars[row["metadata"]["pile_set_name"]] += len(row["text"]) * row["mix_copies"]
    assert chars["Pile-CC"] == pytest.approx(chars["Wikipedia (en)"], rel=0.01)
