"""A stopped `train-lm` goes on from its saved state to the weights of a training never
stopped; Ctrl-C saves the state at the end of the step under way; another training's
state is refused (or replaced, for a recipe's model)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from curation.cli import main
from curation.lm.resume import TrainingStopped
from curation.lm.train import TrainConfig, train_lm
from tests.conftest import c4_texts
from tests.lm.test_train import assert_same_weights

QUICK = TrainConfig(steps=30, batch_size=8, warmup_steps=5, seed=3)
WRAPS = TrainConfig(steps=40, batch_size=16, warmup_steps=5, seed=3)


def quiet(message: str) -> None:
    pass


def stop_at(step: int, how: str = "raise"):
    """A log that stops the training when it reports ``step`` (it reports every tenth of
    the steps): by KeyboardInterrupt at once, or by a SIGINT to this process (Ctrl-C)."""

    def log(message: str) -> None:
        if f"step {step}/" in message:
            if how == "raise":
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)

    return log


def test_a_stopped_training_goes_on_to_the_weights_of_one_never_stopped(tmp_path: Path) -> None:
    """Stopped at step 21 with states saved every 5 steps: run again, it goes on from step
    20 with the tokenizer it trained before the stop, and ends where a training never
    stopped ends: the same weights, train loss, tokens seen and held-out loss. The texts
    make 267 blocks, taken 16 a step: they are shuffled anew at steps 17 (before the
    state) and 34 (after it)."""
    texts = c4_texts(0, 40)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        train_lm(texts, out, preset="tiny", train=WRAPS, vocab_size=700, state_every=5,
                 log=stop_at(21))  # fmt: skip
    assert (out / "_work" / "state.pt").is_file() and not (out / "config.json").exists()
    before = (out / "tokenizer.model").read_bytes()
    # never stopped, with that tokenizer (SentencePiece's training on several threads may
    # not give the same bytes twice)
    (tmp_path / "tokenizer.model").write_bytes(before)
    whole = train_lm(texts, tmp_path / "whole", preset="tiny", train=WRAPS,
                     tokenizer_from=tmp_path / "tokenizer.model", log=quiet)  # fmt: skip
    said: list[str] = []
    again = train_lm(texts, out, preset="tiny", train=WRAPS, vocab_size=700, state_every=5,
                     log=said.append)  # fmt: skip
    assert any("going on from step 20 of 40" in line for line in said)
    assert not any("step 1/40" in line for line in said)
    assert (out / "tokenizer.model").read_bytes() == before
    assert_same_weights(tmp_path / "whole", out)
    for key in ("tokens_seen", "final_train_loss"):
        assert again["training"][key] == whole["training"][key], key
    assert again["held_out"] == whole["held_out"]
    assert not (out / "_work").exists()  # a finished training keeps no state


def test_ctrl_c_saves_the_state_at_the_end_of_its_step(tmp_path: Path) -> None:
    """With stop_on_ctrl_c, a SIGINT during step 13 lets the step finish, saves the state
    (no periodic state was due) and stops; the training then goes on from step 13."""
    texts = c4_texts(200, 120)
    train_lm(texts[:60], tmp_path / "tok", preset="tiny", train=QUICK, vocab_size=600, log=quiet)
    args = {"preset": "tiny", "tokenizer_from": tmp_path / "tok", "train": QUICK}
    train_lm(texts, tmp_path / "whole", log=quiet, **args)
    out = tmp_path / "stopped"
    with pytest.raises(TrainingStopped, match=r"after step 13 of 30: .* run the same command"):
        train_lm(texts, out, stop_on_ctrl_c=True, log=stop_at(13, "signal"), **args)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    said: list[str] = []
    train_lm(texts, out, stop_on_ctrl_c=True, log=said.append, **args)
    assert any("going on from step 13 of 30" in line for line in said)
    assert_same_weights(tmp_path / "whole", out)


def test_another_training_in_the_folder_is_refused_or_replaced(tmp_path: Path) -> None:
    texts = c4_texts(0, 120)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        train_lm(texts, out, preset="tiny", train=QUICK, vocab_size=600, state_every=5,
                 log=stop_at(13))  # fmt: skip
    reseeded = TrainConfig(steps=30, batch_size=8, warmup_steps=5, seed=4)
    for other in ({"train": reseeded}, {"train": QUICK, "texts": c4_texts(1, 120)}):
        with pytest.raises(FileExistsError, match=r"holds a stopped training of other data"):
            train_lm(other.get("texts", texts), out, preset="tiny", train=other["train"],
                     vocab_size=600, log=quiet)  # fmt: skip
    state = out / "_work" / "state.pt"
    saved = state.read_bytes()
    state.write_bytes(saved[: len(saved) // 2])
    with pytest.raises(ValueError, match=r"state.pt cannot be read .*: remove .* from the start"):
        train_lm(texts, out, preset="tiny", train=QUICK, vocab_size=600, log=quiet)
    said: list[str] = []
    train_lm(texts, out, preset="tiny", train=reseeded, vocab_size=600, replace_other=True,
             log=said.append)  # fmt: skip
    assert not any("going on" in line for line in said)
    assert json.loads((out / "config.json").read_text())["training"]["seed"] == 4
    with pytest.raises(FileExistsError, match=r"exists and is not empty: choose another"):
        train_lm(texts, out, preset="tiny", train=reseeded, vocab_size=600, log=quiet)


def test_a_training_stopped_before_its_first_state_starts_again(tmp_path: Path) -> None:
    texts = c4_texts(0, 100)
    out = tmp_path / "early"
    with pytest.raises(KeyboardInterrupt):
        train_lm(texts, out, preset="tiny", train=QUICK, vocab_size=600, log=stop_at(4))
    assert (out / "_work" / "plan.json").is_file() and not (out / "_work" / "state.pt").exists()
    said: list[str] = []
    train_lm(texts, out, preset="tiny", train=QUICK, vocab_size=600, log=said.append)
    assert any("step 1/30" in line for line in said)
    assert (out / "config.json").is_file()


def test_the_cli_says_how_to_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "d.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in c4_texts(0, 80)))
    out = tmp_path / "lm"
    command = ["train-lm", "--input", str(source), "--output", str(out), "--config", "tiny",
               "--steps", "20", "--batch-size", "4", "--vocab-size", "500"]  # fmt: skip

    def interrupt(message: str) -> None:
        print(message, flush=True)
        if "step 9/" in message:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr("curation.cli._print_flush", interrupt)
    stopped = CliRunner().invoke(main, command)
    assert stopped.exit_code == 130, stopped.output
    assert "interrupted: stopped after step 9 of 20" in stopped.output
    assert "run the same command to go on from it" in stopped.output
    monkeypatch.undo()
    went_on = CliRunner().invoke(main, command)
    assert went_on.exit_code == 0, went_on.output
    assert "going on from step 9 of 20" in went_on.output


def test_a_training_that_failed_before_its_first_state_gives_way(tmp_path: Path) -> None:
    """A start that fails (here a vocabulary too small for the text) leaves its plan; the
    corrected command, another plan, was refused as "a stopped training of other data"."""
    texts, out = c4_texts(0, 100), tmp_path / "failed"
    with pytest.raises(ValueError, match=r"a vocabulary of 300 pieces is too small"):
        train_lm(texts, out, preset="tiny", train=QUICK, vocab_size=300, log=quiet)
    assert (out / "_work" / "plan.json").is_file()
    assert not (out / "tokenizer-input.txt").exists()  # the lines it was given
    train_lm(texts, out, preset="tiny", train=QUICK, vocab_size=600, log=quiet)
    assert (out / "config.json").is_file() and not (out / "_work").exists()
