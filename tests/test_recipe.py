"""Recipes are validated before any data is read; errors name the line and what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.recipe import RecipeError, load_recipe, parse_recipe
from curation.stage import registry

ISSUE_RECIPE = """\
input: {format: jsonl, text_field: text, id_field: id}   # optional defaults
stages:
  - length_filter: {min_chars: 200}
  - sample: {rate: 0.5, seed: 0}
output: {shard_rows: 100000}
"""


def test_the_documented_shape_parses() -> None:
    recipe = parse_recipe(ISSUE_RECIPE)
    assert [s.name for s in recipe.stages] == ["length_filter", "sample"]
    assert recipe.stages[0].params.min_chars == 200  # type: ignore[attr-defined]
    assert recipe.stages[1].line == 4
    assert recipe.output.shard_rows == 100_000
    assert recipe.input.format == "jsonl"


def test_every_shipped_pipeline_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each recipe parses where the models it names exist (the recipes name models/...,
    which the user trains first; here they are trained small, so every check runs)."""
    from curation.lm.train import TrainConfig, train_lm
    from curation.scoring.classifier import train_classifier

    pipelines = sorted(Path(__file__).resolve().parents[1].glob("pipelines/*.yaml"))
    assert pipelines
    monkeypatch.chdir(tmp_path)
    good = ["a clear and useful answer with some detail"] * 20
    bad = ["click here buy now cheap deals"] * 20
    train_classifier(good, bad, Path("models/dclm-quality.bin"))
    train_classifier(good, bad, Path("models/preselect.bin"), labels=("pos", "neg"))
    quick = TrainConfig(steps=2, batch_size=2, warmup_steps=1)
    texts = [f"{g} {b} {i}" for i, (g, b) in enumerate(zip(good, bad, strict=True))] * 5
    train_lm(texts, "models/prior", preset="tiny", train=quick, vocab_size=300, log=print)
    train_lm(texts, "models/conditional", init="models/prior", train=quick, log=print)
    for path in pipelines:
        assert load_recipe(path).stages


def test_unknown_stage_names_line_and_lists_stages() -> None:
    text = ISSUE_RECIPE.replace("length_filter", "lenght_filter")
    with pytest.raises(RecipeError) as err:
        parse_recipe(text, "r.yaml")
    message = str(err.value)
    assert message.startswith("r.yaml line 3: unknown stage 'lenght_filter'")
    assert "did you mean 'length_filter'" in message
    assert f"valid stages: {', '.join(registry())}" in message
    assert "length_filter" in registry() and "sample" in registry()


def test_unknown_parameter_names_line_and_lists_parameters() -> None:
    text = ISSUE_RECIPE.replace("seed: 0", "sed: 0")
    with pytest.raises(RecipeError) as err:
        parse_recipe(text, "r.yaml")
    message = str(err.value)
    assert message.startswith("r.yaml line 4: stage sample: unknown parameter 'sed'")
    assert "did you mean 'seed'" in message
    assert "rate (float, default required)" in message and "seed (int, default 0)" in message


def test_wrong_type_names_line() -> None:
    text = "stages:\n  - sample:\n      rate: lots\n"
    with pytest.raises(RecipeError, match=r"line 3: stage sample: parameter 'rate'.*'lots'"):
        parse_recipe(text, "r.yaml")


def test_value_out_of_range_and_inconsistent_bounds() -> None:
    with pytest.raises(RecipeError, match=r"line 2: stage sample: parameter 'rate'"):
        parse_recipe("stages:\n  - sample: {rate: 1.5}\n", "r.yaml")
    with pytest.raises(RecipeError, match=r"line 2: stage length_filter.*max_chars \(5\) is below"):
        parse_recipe("stages:\n  - length_filter: {min_chars: 10, max_chars: 5}\n", "r.yaml")


def test_bad_sections() -> None:
    with pytest.raises(RecipeError, match=r"line 1: unknown key 'stage'; valid keys: input, "):
        parse_recipe("stage: []\n", "r.yaml")
    with pytest.raises(RecipeError, match=r"line 1: input: unknown parameter 'txt_field'"):
        parse_recipe("input: {txt_field: x}\nstages: []\n", "r.yaml")
    with pytest.raises(RecipeError, match=r"line 3: output: parameter 'format'"):
        parse_recipe("stages: []\noutput:\n  format: csv\n", "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml line 3: not valid YAML"):
        parse_recipe("stages:\n  - [unclosed\n", "r.yaml")
    with pytest.raises(RecipeError, match=r"does not exist"):
        load_recipe("/nonexistent/recipe.yaml")


def test_command_line_overrides_input() -> None:
    recipe = parse_recipe(ISSUE_RECIPE).with_input(text_field="contents", paths=["a", "b"])
    assert recipe.input.text_field == "contents" and recipe.input.paths == ["a", "b"]
    assert recipe.input.id_field == "id"
    with pytest.raises(RecipeError, match="command-line input options: format"):
        parse_recipe(ISSUE_RECIPE).with_input(format="csv")


def test_bare_stage_name_uses_defaults() -> None:
    recipe = parse_recipe("stages:\n  - length_filter\n")
    assert recipe.stages[0].params.min_chars == 0  # type: ignore[attr-defined]
