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
    """Each recipe parses: the DCLM one where its classifier exists (the user trains it
    first; here a small one), the C4 one where its bad-words list is (the user puts it
    there), the selection ones because their models: sections build what their stages
    name."""
    from curation.scoring.classifier import train_classifier

    pipelines = sorted(Path(__file__).resolve().parents[1].glob("pipelines/*.yaml"))
    assert pipelines
    monkeypatch.chdir(tmp_path)
    good = ["a clear and useful answer with some detail"] * 20
    bad = ["click here buy now cheap deals"] * 20
    train_classifier(good, bad, Path("models/dclm-quality.bin"))
    Path("lists").mkdir()
    Path("lists/ldnoobw-en.txt").write_text("badword\n")
    for path in pipelines:
        recipe = load_recipe(path)
        assert recipe.stages
        if path.stem in ("color_filter", "preselect"):
            assert recipe.models and not any(m.ready() for m in recipe.models)


def test_models_section_errors_name_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = """models:
  models/prior:
    train_lm: {input: $input, config: tiny}
stages:
  - lm_loss: {model: models/prior}
"""
    recipe = parse_recipe(base, "r.yaml")
    assert recipe.models[0].kind == "train_lm" and recipe.models[0].params.config == "tiny"
    assert recipe.resolved()["models"]["models/prior"]["train_lm"]["steps"] == 500
    with pytest.raises(RecipeError, match=r"r.yaml line 3: model models/prior: unknown kind"):
        parse_recipe(base.replace("train_lm", "train_llm"), "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml line 3: model models/prior: .*stpes"):
        parse_recipe(base.replace("config: tiny", "stpes: 3"), "r.yaml")
    # only the models the section builds wait: another missing model is still an error
    with pytest.raises(RecipeError, match=r"models/other/config.json is missing"):
        parse_recipe(base.replace("{model: models/prior}", "{model: models/other}"), "r.yaml")


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


def test_an_unknown_key_inside_a_parameter_names_the_key_and_the_keys_it_takes() -> None:
    text = "stages:\n  - refinedweb_lines:\n      substrings: [{pattern: x}, {locaton: prefix}]\n"
    with pytest.raises(RecipeError) as err:
        parse_recipe(text, "r.yaml")
    assert str(err.value) == (
        "r.yaml line 3: stage refinedweb_lines: parameter substrings item 2: missing key "
        "'pattern'; valid keys: pattern, location"
    )
    with pytest.raises(RecipeError) as err:
        parse_recipe(text.replace("{locaton", "{pattern: y, locaton"), "r.yaml")
    assert str(err.value) == (
        "r.yaml line 3: stage refinedweb_lines: parameter substrings item 2: unknown key "
        "'locaton' (did you mean 'location'?); valid keys: pattern, location"
    )
    with pytest.raises(RecipeError) as err:
        parse_recipe(text.replace("{locaton: prefix", "{pattern: y, location: middle"), "r.yaml")
    assert str(err.value).startswith(
        "r.yaml line 3: stage refinedweb_lines: parameter substrings item 2.location: Input "
        "should be 'any', 'prefix' or 'suffix' (got 'middle')"
    )


def test_an_unknown_input_parameter_lists_the_real_defaults_and_choices() -> None:
    with pytest.raises(RecipeError) as err:
        parse_recipe("input: {formt: jsonl}\nstages: []\n", "r.yaml")
    message = str(err.value)
    assert message.startswith("r.yaml line 1: input: unknown parameter 'formt'")
    assert "paths (list, default [])" in message  # was "default PydanticUndefined"
    assert "format ('auto' | 'jsonl' | 'parquet' | 'warc' | 'text', default 'auto')" in message


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


def test_a_model_that_cannot_be_built_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from curation.cli import main

    monkeypatch.chdir(tmp_path)
    Path("pool.jsonl").write_text('{"text": "a document"}\n')
    Path("r.yaml").write_text(
        "models:\n  models/conditional:\n    train_lm: {input: [target], config: tiny}\n"
        "stages:\n  - lm_loss: {model: models/conditional}\n"
    )
    result = CliRunner().invoke(
        main, ["run", "r.yaml", "--input", "pool.jsonl", "--output", "out", "--executor", "local"]
    )
    assert result.exit_code == 1
    assert "model models/conditional:" in result.output and "target" in result.output
    assert not Path("out").exists() and not Path("models/conditional").exists()


def test_each_stage_name_maps_to_the_module_that_registers_it() -> None:
    # a recipe imports only its stages' modules, found by name in this table
    from curation.stage import _STAGE_MODULES, stage_names

    stages = registry()
    assert stage_names() == list(stages) == sorted(_STAGE_MODULES)
    for name, cls in stages.items():
        assert cls.__module__ == _STAGE_MODULES[name], name


def test_a_recipe_imports_only_its_own_stages(tmp_path: Path) -> None:
    # a run of the quickstart recipe on the local executor, in a fresh interpreter: no
    # other stage's module (numba's compiled kernels, model libraries) is imported
    import subprocess
    import sys

    data = tmp_path / "a.jsonl"
    data.write_text('{"text": "' + "a document of some length " * 40 + '"}\n')
    probe = (
        "import sys\n"
        "from curation.runtime.run import RunOptions, run\n"
        "from curation.recipe import load_recipe\n"
        f"recipe = load_recipe('pipelines/quickstart.yaml').with_input(paths=[{str(data)!r}])\n"
        f"run(recipe, {str(tmp_path / 'out')!r}, RunOptions(executor='local', progress=False))\n"
        "print(sorted(m for m in sys.modules if m.startswith('curation.')\n"
        "             and m.split('.')[1] in ('filters', 'dedup', 'scoring', 'selectors')))\n"
        "print('numba' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=root
    ).stdout.splitlines()
    assert out[-2:] == [
        "['curation.filters', 'curation.filters.length', 'curation.selectors', "
        "'curation.selectors.random']",
        "False",
    ]
