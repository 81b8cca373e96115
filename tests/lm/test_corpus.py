"""`curate train-lm --tokens`: a `curate tokenize` folder, memory-mapped, trains the model
its texts train, weight for weight; its blocks are `pack`'s, across documents and files;
a folder that does not fit the model is refused with what to do."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.cli import main
from curation.io.tokens import TokenizeOptions, TokenizerSpec, tokenize
from curation.lm.corpus import (
    CorpusError,
    TokenBlocks,
    TokenCorpus,
    held_out_indices,
    training_segments,
)
from curation.lm.train import TrainConfig, load_lm, pack, split_held_out, train_lm
from tests.conftest import c4_texts, train_bytelevel_bpe
from tests.lm.test_train import assert_same_weights

QUICK = TrainConfig(steps=20, batch_size=8, warmup_steps=5, seed=3)


def quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose tokenizer the token folders are written with."""
    out = tmp_path_factory.mktemp("lm") / "tok"
    train_lm(c4_texts(0, 100), out, preset="tiny", train=QUICK, vocab_size=800, log=quiet)
    return out


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def tokens_of(source: Path, out: Path, tokenizer: Path, **options: object) -> Path:
    """``source`` tokenized as train-lm wants it (``<s> ... </s>``), in file order."""
    spec = TokenizerSpec(str(tokenizer), "</s>", "<s>")
    chosen = TokenizeOptions(spec, **{"shuffle": False, **options})  # type: ignore[arg-type]
    tokenize([str(source)], out, chosen, progress=False)
    return out


@pytest.mark.parametrize("layout", ["datatrove", "megatron"])
def test_a_token_folder_trains_the_model_its_texts_train(
    tok: Path, tmp_path: Path, layout: str
) -> None:
    """The same documents, in the same order, over several files: the same blocks, the
    same held-out documents, the same weights and held-out loss; bits per character on
    the decoded text within a percent of those on the text itself."""
    texts = c4_texts(0, 200)
    source = write_jsonl(tmp_path / "docs.jsonl", texts)
    folder = tokens_of(source, tmp_path / "tokens", tok, max_tokens_per_file=20_000, format=layout)
    assert len(json.loads((folder / "tokenize.json").read_text())["files"]) > 3
    a = train_lm(texts, tmp_path / "a", preset="tiny", tokenizer_from=tok, train=QUICK, log=quiet)
    b = train_lm(None, tmp_path / "b", tokens=folder, preset="tiny", train=QUICK, log=quiet)
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    assert b["held_out"]["loss"] == a["held_out"]["loss"]
    assert b["held_out"]["bits_per_char"] == pytest.approx(a["held_out"]["bits_per_char"], 0.01)
    for key in ("documents", "held_out_documents", "tokens_seen", "final_train_loss"):
        assert b["training"][key] == a["training"][key], key
    record = b["training"]["tokens"]
    assert record["documents"] == 200 and record["folder"] == str(folder)
    assert (tmp_path / "b" / "tokenizer.model").read_bytes() == (
        tok / "tokenizer.model"
    ).read_bytes()


def test_several_token_folders_train_the_model_their_texts_train(tok: Path, tmp_path: Path) -> None:
    """Two sources tokenized on their own (a datatrove folder and a Megatron one), given
    in turn: the model their texts train, in that order, weight for weight; a folder of
    another tokenizer, or one given twice, is refused with what to do."""
    texts = c4_texts(0, 200)
    first = tokens_of(write_jsonl(tmp_path / "a.jsonl", texts[:120]), tmp_path / "ta", tok)
    second = tokens_of(
        write_jsonl(tmp_path / "b.jsonl", texts[120:]), tmp_path / "tb", tok, format="megatron"
    )
    a = train_lm(texts, tmp_path / "a", preset="tiny", tokenizer_from=tok, train=QUICK, log=quiet)
    b = train_lm(
        None, tmp_path / "b", tokens=[first, second], preset="tiny", train=QUICK, log=quiet
    )
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    assert b["held_out"]["loss"] == a["held_out"]["loss"]
    assert b["training"]["tokens"]["folders"] == [str(first), str(second)]
    assert b["training"]["tokens"]["documents"] == 200
    corpus = TokenCorpus([first, second])
    assert corpus.documents == 200 and len(corpus.files) == 2

    with pytest.raises(CorpusError, match=r"ta is given twice: give each token folder once"):
        TokenCorpus([first, tmp_path / "x" / ".." / "ta"])
    other = tmp_path / "other"
    train_lm(c4_texts(600, 60), other, preset="tiny", train=QUICK, vocab_size=700, log=quiet)
    theirs = tokens_of(write_jsonl(tmp_path / "c.jsonl", texts[:30]), tmp_path / "tc", other)
    with pytest.raises(CorpusError, match=r"tc was tokenized with another tokenizer than .*ta"):
        TokenCorpus([first, theirs])


def test_fine_tuning_on_tokens_continues_the_checkpoint(tok: Path, tmp_path: Path) -> None:
    """--init with --tokens: the checkpoint's tokenizer must be the folder's; the model
    fine-tuned on the token folder is the one fine-tuned on its texts."""
    texts = c4_texts(400, 120)
    folder = tokens_of(write_jsonl(tmp_path / "d.jsonl", texts), tmp_path / "tokens", tok)
    train_lm(texts, tmp_path / "a", init=tok, train=QUICK, log=quiet)
    train_lm(None, tmp_path / "b", tokens=folder, init=tok, train=QUICK, log=quiet)
    assert_same_weights(tmp_path / "a", tmp_path / "b")

    other = tmp_path / "other"
    train_lm(c4_texts(600, 60), other, preset="tiny", train=QUICK, vocab_size=700, log=quiet)
    with pytest.raises(CorpusError, match=r"is not the tokenizer .* was tokenized with"):
        train_lm(None, tmp_path / "c", tokens=folder, init=other, train=QUICK, log=quiet)
    assert not (tmp_path / "c").exists()


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    cuts=st.sets(st.integers(1, 29), max_size=5),
    held_fraction=st.floats(0, 0.5),
    seq_len=st.integers(1, 50),
    seed=st.integers(0, 5),
)
def test_blocks_are_packs_across_documents_files_and_held_out_gaps(
    lengths: list[int], cuts: set[int], held_fraction: float, seq_len: int, seed: int
) -> None:
    """Every block of the memory-mapped stream is ``pack``'s block of the documents kept,
    whatever files the documents lie in and whichever are held out."""
    rng = np.random.default_rng(seed)
    documents = [rng.integers(0, 1000, n).tolist() for n in lengths]
    bounds = [0, *sorted(c for c in cuts if c < len(documents)), len(documents)]
    files = [documents[a:b] for a, b in itertools.pairwise(bounds)]
    sources = [np.array([i for d in f for i in d], dtype="<u2") for f in files]
    ends = [np.cumsum([len(d) for d in f], dtype=np.int64) for f in files]
    held = held_out_indices(len(documents), held_fraction, seed)
    blocks = TokenBlocks(sources, training_segments(ends, held), seq_len, 1000, "here")
    kept, _ = split_held_out(documents, held_fraction, seed)
    want = pack(kept, seq_len)
    assert len(blocks) == len(want)
    if len(want):
        order = torch.from_numpy(rng.permutation(len(want)))
        assert torch.equal(blocks.take(order), want[order])


def test_held_out_choice_is_the_texts_one() -> None:
    texts = [str(i) for i in range(57)]
    for fraction, seed in [(0.05, 0), (0.2, 7), (0.0, 1)]:
        fit, held = split_held_out(texts, fraction, seed)
        chosen = held_out_indices(len(texts), fraction, seed)
        assert held == [texts[i] for i in chosen]
        assert fit == [t for i, t in enumerate(texts) if i not in set(chosen.tolist())]
    assert len(held_out_indices(57, 0.05, 0)) == 3 and len(held_out_indices(1, 0.5, 0)) == 0


def test_a_folder_that_does_not_fit_is_refused_with_what_to_do(tok: Path, tmp_path: Path) -> None:
    texts = c4_texts(0, 60)
    source = write_jsonl(tmp_path / "d.jsonl", texts)
    folder = tokens_of(source, tmp_path / "tokens", tok)

    with pytest.raises(CorpusError, match=r"tokenize.json is missing: give --tokens a folder"):
        TokenCorpus(tmp_path)
    moved = tmp_path / "moved"
    shutil.copytree(tok, moved)
    manifest = json.loads((folder / "tokenize.json").read_text())
    manifest["tokenizer"]["file"] = str(tmp_path / "nowhere" / "tokenizer.model")
    (folder / "tokenize.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match=r"nowhere/tokenizer.model, is missing: give --token"):
        TokenCorpus(folder)
    assert TokenCorpus(folder, moved).tokenizer_file == moved / "tokenizer.model"  # found again

    other = tmp_path / "other"
    train_lm(texts, other, preset="tiny", train=QUICK, vocab_size=500, log=quiet)
    with pytest.raises(CorpusError, match=r"is not the tokenizer .* with \(SHA-256"):
        TokenCorpus(folder, other)

    only_eos = tmp_path / "eos"
    spec = TokenizerSpec(str(tok), "</s>")
    tokenize([str(source)], only_eos, TokenizeOptions(spec), progress=False)
    with pytest.raises(CorpusError, match=r"tokenize again with --bos '<s>' --eos '</s>'"):
        TokenCorpus(only_eos)

    bpe = train_bytelevel_bpe(texts, 500, tmp_path / "bpe.json", "</s>")
    hub = tmp_path / "hub"
    tokenize([str(source)], hub, TokenizeOptions(TokenizerSpec(str(bpe), "</s>")), progress=False)
    with pytest.raises(CorpusError, match=r"a tokenizers JSON file: train-lm's models use a Sen"):
        TokenCorpus(hub)

    first = folder / manifest["files"][0]["name"]
    first.write_bytes(first.read_bytes()[:-20])
    with pytest.raises(CorpusError, match=r"where .*tokenize.json says .* tokenize again"):
        TokenCorpus(folder, moved)


def test_cli_train_lm_on_tokens(tok: Path, tmp_path: Path) -> None:
    folder = tokens_of(write_jsonl(tmp_path / "d.jsonl", c4_texts(0, 80)), tmp_path / "t", tok)
    out = tmp_path / "lm"
    result = CliRunner().invoke(
        main,
        ["train-lm", "--tokens", str(folder), "--output", str(out), "--config", "tiny",
         "--steps", "4", "--batch-size", "4", "--held-out", "0.1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "blocks (memory-mapped)" in result.output and "held-out" in result.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["training"]["held_out_documents"] == 8
    assert meta["training"]["sources"] == [str(folder.resolve())]
    assert load_lm(out, "cpu").tokenizer.GetPieceSize() == meta["model"]["vocab_size"]

    again = tokens_of(write_jsonl(tmp_path / "e.jsonl", c4_texts(80, 40)), tmp_path / "u", tok)
    two = tmp_path / "lm2"
    result = CliRunner().invoke(
        main,
        ["train-lm", "--tokens", str(folder), "--tokens", str(again), "--output", str(two),
         "--config", "tiny", "--steps", "4", "--batch-size", "4", "--held-out", "0.1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = json.loads((two / "config.json").read_text())
    assert meta["training"]["held_out_documents"] == 12  # a tenth of 80 + 40
    assert meta["training"]["sources"] == [str(folder.resolve()), str(again.resolve())]

    both = CliRunner().invoke(
        main, ["train-lm", "--tokens", str(folder), "--input", "x.jsonl", "--output", "y"]
    )
    assert both.exit_code == 2 and "give --tokens or --input, not both" in both.output
    bare = CliRunner().invoke(
        main, ["train-lm", "--tokens", str(tmp_path), "--output", str(tmp_path / "z")]
    )
    assert bare.exit_code == 1 and "tokenize.json is missing" in bare.output
    assert "Traceback" not in bare.output


def test_the_tokenizer_is_found_from_any_folder(
    tok: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tokenize.json names the tokenizer by its absolute path, so train-lm finds it from
    another working folder than the one `curate tokenize` ran in."""
    source = write_jsonl(tmp_path / "d.jsonl", c4_texts(0, 20))
    monkeypatch.chdir(tok.parent)
    tokens_of(source, tmp_path / "t", Path(tok.name))  # a relative --tokenizer
    monkeypatch.chdir(tmp_path)
    assert TokenCorpus(tmp_path / "t").tokenizer_file == tok / "tokenizer.model"
