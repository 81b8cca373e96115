"""`token_count`: each document's tokens under a tokenizer, as `tokenizers` and
SentencePiece count them and as `curate tokenize` writes them; the kept documents' sum in
stats.json and at the end of `curate run`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from curation.cli import main
from curation.io import tokens
from curation.io.tokens import TokenizeOptions, TokenizerSpec, tokenize
from curation.lm.tokenizer import load_tokenizer, train_lm_tokenizer
from curation.recipe import RecipeError
from tests.conftest import read_output, recipe_of, run_local, shared_file, train_bytelevel_bpe

EOS = "<|endoftext|>"


def c4_rows() -> list[dict]:
    path = shared_file("web/c4-sample-1000.jsonl.gz")
    return [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]


@pytest.fixture(scope="module")
def bpe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer.json (GPT-2's kind) trained on the first 300 C4 texts."""
    texts = [row["text"] for row in c4_rows()[:300]]
    return train_bytelevel_bpe(texts, 3000, tmp_path_factory.mktemp("bpe") / "t.json", EOS)


def counting(tokenizer: Path, **params: object) -> str:
    options = ", ".join(f"{k}: {json.dumps(v)}" for k, v in params.items())
    return (
        "stages:\n  - length_filter: {min_chars: 500}\n"
        f"  - token_count: {{tokenizer: {json.dumps(str(tokenizer))}{', ' if options else ''}"
        f"{options}}}\n"
    )


def test_counts_are_the_tokenizers_own_on_real_documents(
    bpe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kept C4 document's count equals `tokenizers`' own encoding's length (plus one
    with an end token), text encoded a few documents at a time; documents dropped before
    the stage have none."""
    from tokenizers import Tokenizer

    monkeypatch.setattr(tokens, "_ENCODE_BYTES", 30_000)
    path = shared_file("web/c4-sample-1000.jsonl.gz")
    run_local(recipe_of(counting(bpe), path), tmp_path / "plain")
    run_local(recipe_of(counting(bpe, eos=EOS, column="gpt_tokens"), path), tmp_path / "eos")
    reference = Tokenizer.from_file(str(bpe))
    kept = read_output(tmp_path / "plain", "kept").to_pylist()
    assert len(kept) > 500
    assert [row["token_count"] for row in kept] == [
        len(reference.encode(row["text"]).ids) for row in kept
    ]
    with_eos = read_output(tmp_path / "eos", "kept").to_pylist()
    assert [row["gpt_tokens"] for row in with_eos] == [row["token_count"] + 1 for row in kept]
    dropped = read_output(tmp_path / "plain", "dropped")
    assert dropped.num_rows > 0 and "token_count" not in dropped.column_names


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_kept_sum_is_what_tokenize_writes_of_the_output(
    kind: str, bpe: Path, tmp_path: Path
) -> None:
    """The run's kept documents sum to the tokens `curate tokenize` writes of its kept
    output with the same tokenizer and begin and end tokens; stats.json and `curate run`
    say the sum."""
    if kind == "bpe":
        tokenizer, bos, eos = bpe, None, EOS
    else:
        texts = [row["text"] for row in c4_rows()[:200]]
        train_lm_tokenizer(texts, tmp_path / "lm", vocab_size=1000)  # a train-lm checkpoint's
        tokenizer, bos, eos = tmp_path / "lm", "<s>", "</s>"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(counting(tokenizer, bos=bos, eos=eos))
    out = tmp_path / "run"
    path = shared_file("web/c4-sample-1000.jsonl.gz")
    args = ["run", str(recipe), str(path), "--output", str(out), "--executor", "local"]
    result = CliRunner().invoke(main, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    summary = stats["stages"][2]["summaries"]["token_count"]
    spec = TokenizerSpec(str(tokenizer), eos=eos, bos=bos)
    written = tokenize([str(out)], tmp_path / "tokens", TokenizeOptions(spec), progress=False)
    assert summary["kept_sum"] == written["tokens"] > 100_000
    assert summary["sum"] == summary["kept_sum"]  # nothing dropped after the count
    assert f"documents, {written['tokens']:,} tokens (token_count)" in " ".join(
        result.output.split()
    )
    if kind == "sentencepiece":
        processor = load_tokenizer(tmp_path / "lm" / "tokenizer.model")
        kept = read_output(out, "kept").to_pylist()
        assert [r["token_count"] for r in kept] == [
            len(processor.encode(r["text"])) + 2 for r in kept
        ]


def test_a_later_drop_counts_in_the_sum_but_not_the_kept_sum(bpe: Path, tmp_path: Path) -> None:
    text = counting(bpe) + "  - length_filter: {min_chars: 2000}\n"
    stats = run_local(recipe_of(text, shared_file("web/c4-sample-1000.jsonl.gz")), tmp_path)
    summary = stats["stages"][2]["summaries"]["token_count"]
    kept = read_output(tmp_path, "kept")["token_count"].to_pylist()
    dropped = read_output(tmp_path, "dropped")["token_count"].drop_null().to_pylist()
    assert kept and dropped
    assert summary["kept_sum"] == sum(kept) and summary["sum"] == sum(kept) + sum(dropped)
    assert summary["count"] == len(kept) + len(dropped)


def test_a_bad_tokenizer_is_refused_with_the_recipe(bpe: Path, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="tokenizer file is missing"):
        recipe_of(counting(tmp_path / "nothing.json"), "x.jsonl")
    with pytest.raises(RecipeError, match="has no token '<nope>' to end documents"):
        recipe_of(counting(bpe, eos="<nope>"), "x.jsonl")
    with pytest.raises(RecipeError, match="column 'text' is the engine's own"):
        recipe_of(counting(bpe, column="text"), "x.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecipeError, match=r"holds no tokenizer\.json or tokenizer\.model"):
        recipe_of(counting(tmp_path / "empty"), "x.jsonl")


def test_fineweb_s_own_token_count_column_is_replaced_and_said(bpe: Path, tmp_path: Path) -> None:
    """Input that already has `token_count` (FineWeb's datasets carry GPT-2's): the output
    holds one such column, readable, with this tokenizer's counts on the rows measured and
    the input's on rows dropped before; stats.json and the run say it was replaced."""
    rows = c4_rows()[:200]
    table = pa.table(
        {
            "id": [f"d{i}" for i in range(len(rows))],
            "text": [row["text"] for row in rows],
            "token_count": list(range(len(rows))),
        }
    )
    pq.write_table(table, tmp_path / "fineweb.parquet")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(counting(bpe))
    out = tmp_path / "run"
    args = ["run", str(recipe), str(tmp_path / "fineweb.parquet"), "--output", str(out)]
    result = CliRunner().invoke(main, [*args, "--executor", "local", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "note: the input already had columns the stages write (token_count)" in " ".join(
        result.output.split()
    )
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(bpe))
    kept = pq.read_table(out / "kept").to_pylist()  # one column of that name, or this fails
    assert kept and all(r["token_count"] == len(reference.encode(r["text"]).ids) for r in kept)
    dropped = pq.read_table(out / "dropped").to_pylist()
    assert dropped and all(r["token_count"] == int(r["id"][1:]) for r in dropped)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stages"][2]["replaced_columns"] == ["token_count"]
    assert stats["stages"][1]["replaced_columns"] == []


@pytest.mark.ray
def test_ray_workers_count_as_the_local_run(bpe: Path, tmp_path: Path) -> None:
    path = shared_file("web/c4-sample-1000.jsonl.gz")
    recipe = recipe_of(counting(bpe, eos=EOS), path)
    local = run_local(recipe, tmp_path / "local")
    ray = run_local(recipe, tmp_path / "ray", executor="ray", workers=2)
    assert ray["engine"]["executor"] == "ray"
    assert read_output(tmp_path / "ray", "kept") == read_output(tmp_path / "local", "kept")
    sums = [s["stages"][2]["summaries"]["token_count"]["kept_sum"] for s in (local, ray)]
    assert sums[0] == sums[1] > 0
