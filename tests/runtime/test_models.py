"""The ``models:`` section: models built once, reused while nothing they come from changed,
and built again, saying why, when something did."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from curation.recipe import parse_recipe
from curation.runtime.models import ModelSpec, build_models


def section(prior_steps: int) -> tuple[ModelSpec, ...]:
    return parse_recipe(
        "models:\n"
        "  m/prior:\n"
        f"    train_lm: {{input: $input, config: tiny, steps: {prior_steps}, batch_size: 4,"
        " vocab_size: 600}\n"
        "  m/conditional:\n"
        "    train_lm: {input: [target.jsonl], init: m/prior, steps: 3, batch_size: 4}\n"
        "stages:\n  - length_filter: {}\n",
        "r.yaml",
    ).models


def build(models: tuple[ModelSpec, ...]) -> list[str]:
    said: list[str] = []
    build_models(models, ["pool.jsonl"], "text", log=said.append)
    return [line for line in said if line.startswith("models: ")]


def test_a_model_is_built_again_when_its_entry_or_what_it_comes_from_changed(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, a complete model was always reused: a recipe whose steps were raised, or
    # whose target text was replaced, went on with the model of the old entry and text.
    monkeypatch.chdir(tmp_path)
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle][:200]
    Path("pool.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:150]))
    Path("target.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[150:]))

    assert build(section(5)) == [
        "models: building m/prior (train_lm)",
        "models: building m/conditional (train_lm)",
    ]
    record = json.loads(Path("m/prior.build.json").read_text())
    assert record["input"] == ["pool.jsonl"] and record["entry"]["steps"] == 5
    assert list(record["reads"]) == [str(tmp_path / "pool.jsonl")]
    weights = Path("m/conditional/model.safetensors")
    built = weights.stat().st_mtime_ns

    assert build(section(5)) == ["models: reusing m/prior", "models: reusing m/conditional"]
    assert weights.stat().st_mtime_ns == built

    # the prior's entry changed: it is built again, and so is the model built from it
    said = build(section(6))
    assert said[0] == (
        "models: rebuilding m/prior: its entry in the recipe changed since it was built "
        "(steps 5 -> 6)"
    )
    assert said[1].startswith(
        f"models: rebuilding m/conditional: a file it is trained from, {tmp_path}/m/prior/"
    )
    assert said[1].endswith(", changed (size or modification time), since it was built")
    assert json.loads(Path("m/prior.build.json").read_text())["entry"]["steps"] == 6

    # the target text changed: only the conditional model is built again
    with open("target.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps({"text": texts[0]}) + "\n")
    assert build(section(6)) == [
        "models: reusing m/prior",
        "models: rebuilding m/conditional: a file it is trained from, "
        f"{tmp_path}/target.jsonl, changed (size or modification time), since it was built",
    ]

    # a model without a record (trained by hand, or by an engine before records) is
    # reused as it is
    Path("m/conditional.build.json").unlink()
    os.utime("target.jsonl")
    assert build(section(6)) == ["models: reusing m/prior", "models: reusing m/conditional"]

    # a record written before a setting existed (precision, compile) stands for the
    # setting's default: the model is reused, not built again for the new key
    record = json.loads(Path("m/prior.build.json").read_text())
    assert record["entry"]["precision"] == "auto" and record["entry"]["compile"] is False
    del record["entry"]["precision"], record["entry"]["compile"]
    Path("m/prior.build.json").write_text(json.dumps(record))
    assert build(section(6)) == ["models: reusing m/prior", "models: reusing m/conditional"]


def test_a_model_build_stopped_by_ctrl_c_goes_on_when_built_again(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while a model trains saves its state; the next build of the same entry goes
    on from that step (before, a build cut short started again from nothing)."""
    import signal

    from curation.lm.resume import TrainingStopped

    monkeypatch.chdir(tmp_path)
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle][:200]
    Path("pool.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:150]))
    Path("target.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[150:]))

    def interrupt(message: str) -> None:
        if "step 9/20" in message:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(TrainingStopped, match="after step 9 of 20"):
        build_models(section(20)[:1], ["pool.jsonl"], "text", log=interrupt)
    said: list[str] = []
    build_models(section(20)[:1], ["pool.jsonl"], "text", log=said.append)
    assert "models: building m/prior (train_lm)" in said
    assert any("going on from step 9 of 20" in line for line in said)
    assert Path("m/prior/config.json").is_file() and not Path("m/prior/_work").exists()
