"""The small-model core: padding never changes a document's loss, seeded training is
reproducible, losses follow their definitions, and checkpoints fail clearly."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from curation.lm.model import GPT, LMConfig
from curation.lm.train import (
    TrainConfig,
    check_checkpoint,
    compile_model,
    document_losses,
    encode_present,
    gpu_peak_flops,
    learning_rate,
    load_lm,
    pack,
    pick_device,
    precision_note,
    same_tokenizer,
    train_lm,
    use_bf16,
)
from curation.recipe import RecipeError
from curation.runtime.executors import ray_gpu_ids
from tests.conftest import c4_texts, recipe_of, shared_file

QUICK = TrainConfig(steps=30, batch_size=8, warmup_steps=5, seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lm") / "tiny"
    train_lm(c4_texts(0, 300), out, preset="tiny", train=QUICK, vocab_size=1000, log=lambda m: None)
    return out


def assert_same_weights(a: Path, b: Path, rtol: float = 0.0, atol: float = 0.0) -> None:
    """The checkpoints ``a`` and ``b`` hold the same weights (to the tolerances given)."""
    first, second = load_lm(a, "cpu").model.state_dict(), load_lm(b, "cpu").model.state_dict()
    assert list(first) == list(second)
    for name, weights in first.items():
        torch.testing.assert_close(weights, second[name], rtol=rtol, atol=atol, msg=name)


def test_padding_does_not_change_a_documents_loss(tiny: Path) -> None:
    lm = load_lm(tiny, "cpu")
    texts = c4_texts(0, 40)
    alone = [document_losses(lm, [t], batch_size=1) for t in texts[:6]]
    together = document_losses(lm, texts, batch_size=40)  # padded up to the longest window
    for i, single in enumerate(alone):
        assert together["tokens"][i] == single["tokens"][0]
        assert together["loss_sum"][i] == pytest.approx(single["loss_sum"][0], rel=1e-5)
    # and padding is never scored: the sum is the unpadded cross entropy, by hand
    short = min(texts, key=len)
    ids = [2, *lm.tokenizer.encode(short), 3]
    assert len(ids) <= lm.model.config.seq_len + 1
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids[:-1]]))
    manual = torch.nn.functional.cross_entropy(logits[0], torch.tensor(ids[1:]), reduction="sum")
    index = texts.index(short)
    assert together["loss_sum"][index] == pytest.approx(float(manual), rel=1e-5)


def test_losses_follow_their_definitions(tiny: Path) -> None:
    lm = load_lm(tiny, "cpu")
    texts = [*c4_texts(0, 5), "", None, "   "]
    out = document_losses(lm, texts)
    for i, text in enumerate(texts[:5]):
        assert out["tokens"][i] == len(lm.tokenizer.encode(text)) + 1  # pieces + end of doc
        assert out["chars"][i] == len(text)
        assert out["loss_mean"][i] == pytest.approx(out["loss_sum"][i] / out["tokens"][i])
        assert out["bpc"][i] == pytest.approx(out["loss_sum"][i] / math.log(2) / len(text))
    assert np.isnan(out["loss_mean"][5:]).all() and (out["tokens"][5:] == 0).all()


def test_long_documents_are_scored_in_windows_covering_every_token(tiny: Path) -> None:
    lm = load_lm(tiny, "cpu")
    long = " ".join(c4_texts(0, 30))  # many contexts long
    out = document_losses(lm, [long])
    assert out["tokens"][0] == len(lm.tokenizer.encode(long)) + 1
    assert np.isfinite(out["loss_sum"][0])


def test_a_seeded_run_is_reproducible(tmp_path: Path) -> None:
    texts = c4_texts(0, 120)
    metas = [
        train_lm(texts, tmp_path / name, preset="tiny", train=QUICK, vocab_size=800,
                 log=lambda m: None)
        for name in ("a", "b")
    ]  # fmt: skip
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    assert metas[0]["held_out"] == metas[1]["held_out"]
    assert metas[0]["training"]["final_train_loss"] == metas[1]["training"]["final_train_loss"]
    reseeded = TrainConfig(steps=30, batch_size=8, warmup_steps=5, seed=4)
    other = train_lm(
        texts, tmp_path / "c", preset="tiny", train=reseeded, vocab_size=800, log=lambda m: None
    )
    assert other["held_out"] != metas[0]["held_out"]


def test_training_lowers_held_out_loss_and_fine_tuning_adapts(tiny: Path, tmp_path: Path) -> None:
    start = load_lm(tiny, "cpu")
    meta = start.meta
    assert meta["held_out"]["loss"] < math.log(meta["model"]["vocab_size"])  # beats uniform
    book = shared_file("reference/gutenberg-1342-pride-and-prejudice.txt").read_text("utf-8")
    chunks = [book[i : i + 1500] for i in range(0, 120_000, 1500)]
    train_lm(chunks[:60], tmp_path / "ft", init=tiny, train=QUICK, log=lambda m: None)
    tuned = load_lm(tmp_path / "ft", "cpu")
    held = chunks[60:]
    before = np.nanmean(document_losses(start, held)["loss_mean"])
    after = np.nanmean(document_losses(tuned, held)["loss_mean"])
    assert after < before  # the fine-tuned model prefers unseen text of its target


def test_packing_and_schedule() -> None:
    blocks = pack([[2, 5, 6, 3], [2, 7, 3], [2, 8, 9, 9, 3]], seq_len=3)
    assert blocks.tolist() == [[2, 5, 6, 3], [2, 7, 3, 2], [8, 9, 9, 3]]
    config = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    rates = [learning_rate(s, config, 100) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))


def test_texts_packed_a_chunk_at_a_time_are_packed_whole(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pack_texts, encoding a few texts at a time into int32, cuts the blocks that
    packing every text's ids at once cuts, across the chunks' edges."""
    from curation.lm import train

    tokenizer, texts = load_lm(tiny, "cpu").tokenizer, c4_texts(0, 50)
    whole = pack(train.encode_documents(tokenizer, texts), seq_len=100)
    monkeypatch.setattr(train, "ENCODE_CHUNK", 7)
    chunked = train.pack_texts(tokenizer, texts, seq_len=100)
    assert chunked.blocks.dtype == torch.int32 and len(chunked) == len(whole) > 40
    taken = chunked.take(torch.arange(len(whole)))
    assert taken.dtype == torch.int64 and torch.equal(taken, whole)


def test_progress_lines_say_how_long_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line every tenth of the steps and at least every LOG_EVERY_S seconds, each but
    the last with the time left at the rate so far."""
    from curation.lm import train

    said: list[str] = []
    quick = TrainConfig(steps=20, batch_size=4, warmup_steps=2, seed=0)
    train_lm(c4_texts(0, 60), tmp_path / "a", preset="tiny", train=quick, vocab_size=500,
             log=said.append)  # fmt: skip
    steps = [line for line in said if " step " in line]
    assert len(steps) == 11 and all(line.endswith(" left") for line in steps[:-1])
    assert steps[-1].startswith("train-lm: step 20/20 ") and "left" not in steps[-1]
    monkeypatch.setattr(train, "LOG_EVERY_S", 0.0)
    said.clear()
    train_lm(c4_texts(0, 60), tmp_path / "b", preset="tiny", train=quick, vocab_size=500,
             log=said.append)  # fmt: skip
    assert len([line for line in said if " step " in line]) == 20
    assert [train.duration(s) for s in (40, 89.6, 720, 5400, 12600)] == [
        "40 s", "90 s", "12 min", "1.5 h", "3.5 h"
    ]  # fmt: skip


def test_eval_lm_scores_each_model_on_the_text_as_a_whole(tiny: Path, tmp_path: Path) -> None:
    """`curate eval-lm`: loss per token and bits per character over all the documents
    (text_loss's sums), one row per model; the model fine-tuned on a book scores lower
    on unseen text of it; the rows as PreSelect's --reference scores and as JSON."""
    import json

    from click.testing import CliRunner

    from curation.cli import main
    from curation.lm.train import text_loss

    book = shared_file("reference/gutenberg-1342-pride-and-prejudice.txt").read_text("utf-8")
    chunks = [book[i : i + 1500] for i in range(0, 150_000, 1500)]
    train_lm(chunks[:60], tmp_path / "ft", init=tiny, train=QUICK, log=lambda m: None)
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"text": t}) + "\n" for t in [*chunks[60:], "  "]))
    result = CliRunner().invoke(
        main,
        ["eval-lm", "--model", str(tiny), "--model", str(tmp_path / "ft"), "--input", str(held),
         "--device", "cpu", "--json", str(tmp_path / "eval.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "eval.json").read_text())["models"]
    assert [r["model"] for r in rows] == [str(tiny), str(tmp_path / "ft")]
    direct = text_loss(load_lm(tiny, "cpu"), chunks[60:])
    assert rows[0] == {"model": str(tiny), **direct}
    assert direct["documents"] == 40 and direct["chars"] == sum(map(len, chunks[60:]))
    losses = document_losses(load_lm(tiny, "cpu"), chunks[60:])
    assert direct["loss"] == pytest.approx(losses["loss_sum"].sum() / losses["tokens"].sum())
    assert rows[1]["loss"] < rows[0]["loss"] and rows[1]["tokens"] == rows[0]["tokens"]
    line = next(x for x in result.output.splitlines() if x.startswith(str(tmp_path / "ft")))
    assert f"{rows[1]['bits_per_char']:.4f}" in line
    assert f"--reference {tiny}={-rows[0]['bits_per_char']:.4f}" in result.output

    missing = CliRunner().invoke(main, ["eval-lm", "--model", str(tmp_path), "--input", str(held)])
    assert missing.exit_code == 1 and "config.json is missing" in missing.output


def test_model_is_causal() -> None:
    torch.manual_seed(0)
    model = GPT(LMConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=2, seq_len=16)).eval()
    tokens = torch.randint(0, 50, (1, 16))
    changed = tokens.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 50
    with torch.no_grad():
        assert torch.allclose(model(tokens)[0, :10], model(changed)[0, :10], atol=1e-6)


def test_missing_or_corrupt_checkpoint_is_a_clear_error(tiny: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in tiny.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ValueError, match=r"model\.safetensors is not a safetensors file"):
        check_checkpoint(broken)
    (broken / "tokenizer.model").unlink()
    with pytest.raises(RecipeError, match=r"tokenizer\.model is missing"):
        recipe_of(f"stages:\n  - lm_loss: {{model: '{broken}'}}\n", "/no/such/input")


def test_a_fresh_model_can_share_a_tokenizer(tiny: Path, tmp_path: Path) -> None:
    """--tokenizer: fresh weights, the given tokenizer byte for byte, so token losses of
    models trained on different data compare."""
    out = tmp_path / "shared"
    meta = train_lm(c4_texts(300, 100), out, preset="tiny", tokenizer_from=tiny,
                    train=QUICK, log=lambda m: None)  # fmt: skip
    assert (out / "tokenizer.model").read_bytes() == (tiny / "tokenizer.model").read_bytes()
    assert meta["training"]["tokenizer_from"] == str(tiny)
    assert meta["model"]["vocab_size"] == load_lm(tiny, "cpu").tokenizer.GetPieceSize()
    a, b = load_lm(tiny, "cpu").model, load_lm(out, "cpu").model
    assert not torch.equal(a.blocks[0].qkv.weight, b.blocks[0].qkv.weight)  # fresh weights


def test_text_shorter_than_a_context_says_what_to_do(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"fewer tokens than one context of the model \(128 "):
        train_lm(["a few words"], tmp_path / "short", tokenizer_from=tiny, preset="tiny",
                 train=QUICK, log=lambda m: None)  # fmt: skip


def test_device_choice_is_checked() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu': use auto, cpu or cuda"):
        pick_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device: install a CUDA build"):
            pick_device("cuda")
    assert ray_gpu_ids() == []  # outside a Ray task


def test_one_encoding_serves_models_that_share_a_tokenizer(tiny: Path, tmp_path: Path) -> None:
    lm = load_lm(tiny, "cpu")
    texts = [*c4_texts(40, 6), "", None, "   ", *c4_texts(50, 3)]
    encoded = encode_present(lm, texts)
    assert len(encoded) == 9  # the three blank texts are not encoded
    direct, given = document_losses(lm, texts), document_losses(lm, texts, encoded=encoded)
    for key in ("loss_sum", "tokens", "bpc"):
        np.testing.assert_array_equal(direct[key], given[key])
    assert same_tokenizer(lm, load_lm(tiny, "cpu"))
    short = TrainConfig(steps=2, batch_size=2, warmup_steps=1, seed=0)
    train_lm(c4_texts(300, 100), tmp_path / "other", preset="tiny", train=short, vocab_size=700,
             log=lambda m: None)  # fmt: skip
    assert not same_tokenizer(lm, load_lm(tmp_path / "other", "cpu"))
    with pytest.raises(ValueError, match="8 encoded documents for 9 texts with text"):
        document_losses(lm, texts, encoded=encoded[:8])


def test_precision_is_decided_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not use_bf16("auto", cpu)  # the same figures on every CPU unless asked
    assert use_bf16("bf16", cpu) and not use_bf16("fp32", cpu)
    monkeypatch.setattr("curation.lm.train.native_bf16", lambda device: True)
    assert use_bf16("auto", cuda) and not use_bf16("fp32", cuda)
    monkeypatch.setattr("curation.lm.train.native_bf16", lambda device: False)
    assert not use_bf16("auto", cuda)  # a GPU before Ampere would emulate bf16
    with pytest.raises(ValueError, match="unknown precision 'fp16': use auto, bf16, fp32"):
        use_bf16("fp16", cpu)
    # what train-lm says: bf16 emulated is slow; fp32 where bf16 would pay is worth a hint
    assert "without hardware support" in (precision_note("bf16", cpu, 64) or "")
    monkeypatch.setattr("curation.lm.train.native_bf16", lambda device: True)
    assert "--precision bf16 trains" in (precision_note("auto", cpu, 512) or "")
    assert precision_note("auto", cpu, 256) is None  # narrow models gain little or lose
    assert precision_note("bf16", cpu, 512) is None and precision_note("fp32", cpu, 512) is None


def test_bf16_scores_near_fp32_with_padding_still_left_out(tiny: Path) -> None:
    exact, half = load_lm(tiny, "cpu"), load_lm(tiny, "cpu", precision="bf16")
    assert half.bf16 and not exact.bf16
    texts = c4_texts(0, 40)
    full, rounded = document_losses(exact, texts), document_losses(half, texts, batch_size=40)
    np.testing.assert_array_equal(full["tokens"], rounded["tokens"])
    # bf16 keeps 8 bits of mantissa: each document's loss within 2% of fp32's
    np.testing.assert_allclose(rounded["loss_sum"], full["loss_sum"], rtol=0.02)
    assert not np.array_equal(rounded["loss_sum"], full["loss_sum"])  # bf16 did run
    alone = [document_losses(half, [t], batch_size=1)["loss_sum"][0] for t in texts[:4]]
    np.testing.assert_allclose(alone, rounded["loss_sum"][:4], rtol=0.02)  # padded or not


def test_bf16_training_is_seeded_and_recorded(tmp_path: Path) -> None:
    texts = c4_texts(0, 120)
    bf16 = TrainConfig(steps=30, batch_size=8, warmup_steps=5, seed=3, precision="bf16")
    metas = [
        train_lm(texts, tmp_path / name, preset="tiny", train=config, vocab_size=800,
                 log=lambda m: None)
        for name, config in (("a", bf16), ("b", bf16), ("fp32", QUICK))
    ]  # fmt: skip
    assert [m["training"]["precision"] for m in metas] == ["bf16", "bf16", "fp32"]
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    assert metas[0]["held_out"] == metas[1]["held_out"]
    # the same training in fp32 learns as much, within bf16's rounding
    assert metas[0]["held_out"]["loss"] == pytest.approx(metas[2]["held_out"]["loss"], rel=0.03)
    assert metas[0]["held_out"]["loss"] != metas[2]["held_out"]["loss"]


@pytest.mark.slow
def test_a_compiled_model_trains_and_scores_as_the_eager_one(tiny: Path, tmp_path: Path) -> None:
    """torch.compile (TorchInductor's C++ on the CPU): the same losses to float rounding,
    over batches of several widths (the scorer's shapes change) and 30 training steps."""
    eager, compiled = load_lm(tiny, "cpu"), load_lm(tiny, "cpu", compile=True)
    assert compiled.runner is not None and eager.runner is None
    texts = [*c4_texts(0, 30), "", " ".join(c4_texts(30, 10))]  # short, blank, windows
    for batch_size in (4, 32):
        np.testing.assert_allclose(
            document_losses(compiled, texts, batch_size)["loss_sum"],
            document_losses(eager, texts, batch_size)["loss_sum"],
            rtol=1e-4,
        )
    texts = c4_texts(0, 120)
    fused = TrainConfig(steps=30, batch_size=8, warmup_steps=5, seed=3, compile=True)
    plain = train_lm(texts, tmp_path / "e", preset="tiny", train=QUICK, vocab_size=800,
                     log=lambda m: None)  # fmt: skip
    said: list[str] = []
    meta = train_lm(texts, tmp_path / "c", preset="tiny", train=fused, vocab_size=800,
                    log=said.append)  # fmt: skip
    assert "30 steps on cpu (fp32, compiled)" in said[0]
    assert meta["training"]["compile"] is True
    assert meta["held_out"]["loss"] == pytest.approx(plain["held_out"]["loss"], rel=1e-3)
    assert_same_weights(tmp_path / "e", tmp_path / "c", rtol=1e-3, atol=1e-4)


def test_compiling_on_the_cpu_without_a_compiler_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    model = GPT(LMConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=2, seq_len=16))
    with pytest.raises(ValueError, match=r"needs a C\+\+ compiler .* install g\+\+"):
        compile_model(model, torch.device("cpu"), dynamic=False)


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989e12),  # SXM
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H100 NVL", 835e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("Tesla T4", None),
    ],
)
def test_model_flops_utilisation_is_taken_against_the_cards_own_peak(
    name: str, peak: float | None
) -> None:
    assert gpu_peak_flops(name) == peak
