"""The curate command: stages listing, run summary, clear errors with exit code 1."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from curation.cli import main
from tests.conftest import free_port, read_output, train_tiny_lm_on_ray


def test_stages_lists_parameters_defaults_and_help() -> None:
    result = CliRunner().invoke(main, ["stages"])
    assert result.exit_code == 0
    assert "length_filter: keep documents whose length" in result.output
    assert "min_chars (int, default 0): drop documents shorter" in result.output
    assert "rate (float, default required)" in result.output
    # choices shown as such, a default factory's value rather than pydantic's sentinel
    assert "by ('count' | 'chars', default 'count')" in result.output
    assert "PydanticUndefined" not in result.output and "Literal" not in result.output
    # nested defaults as a recipe writes them, not as Python objects
    assert "substrings (list of {pattern, location}, default [{'pattern': 'items in cart'," in (
        result.output
    )
    assert "SubstringRule(" not in result.output
    listing = json.loads(CliRunner().invoke(main, ["stages", "--json"]).output)
    assert set(listing) >= {"length_filter", "sample"}
    # which stages a recipe's where: can limit: map stages, not those of a barrier
    assert listing["gopher_quality"]["takes_where"] and not listing["exact_dedup"]["takes_where"]
    assert "exact_dedup, line_dedup" in result.output and "takes `where: SQL`" in result.output
    # a stage's own parameters first, then those it shares (how its models run)
    names = [p["name"] for p in listing["lm_loss"]["params"]]
    assert names == ["model", "name", "batch_size", "device", "precision", "compile"]
    assert [p["name"] for p in listing["color_filter"]["params"]][:3] == [
        "prior",
        "conditional",
        "tau",
    ]


def test_run_local_with_overrides(pile_path: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - length_filter: {min_chars: 500}\n")
    args = [
        "run",
        str(recipe),
        "--input",
        str(pile_path),
        "--output",
        str(tmp_path / "out"),
        "--text-field",
        "contents",
        "--executor",
        "local",
        "--quiet",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["rows"]["read"] == 1000
    assert stats["stages"][1]["dropped_by_reason"]["length_filter:too_short"] > 0
    resolved = (tmp_path / "out" / "recipe.yaml").read_text()
    assert "text_field: contents" in resolved and "pyarrow:" in resolved


def test_dry_run_prints_the_plan_and_writes_nothing(pile_path: Path, tmp_path: Path) -> None:
    """--dry-run checks what the run would check and prints the passes; it writes
    nothing, and says what it would do with a folder that holds a run."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - length_filter: {min_chars: 500}\n  - exact_dedup: {}\n")
    out = tmp_path / "out"
    base = ["run", str(recipe), "--input", str(pile_path), "--text-field", "contents"]
    dry = CliRunner().invoke(main, [*base, "--output", str(out), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines() == [
        f"dry run of {recipe}: nothing is written or run",
        f"inputs: 1 file(s), {pile_path.stat().st_size / 1e6:,.1f} MB (jsonl 1)",
        "pass 1: length_filter; then measures what exact_dedup decides on",
        "pass 2 (after a barrier that decides over the whole dataset): exact_dedup",
        f"output: {out} (a new run)",
        "executor: Ray, an embedded local cluster started for the run",
    ]
    assert not out.exists()
    done = CliRunner().invoke(main, [*base, "--output", str(out), "--executor", "local", "--quiet"])
    assert done.exit_code == 0, done.output
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    again = CliRunner().invoke(main, [*base, "--output", str(out), "--dry-run"])
    assert f"output: {out} (the run of this recipe there is finished" in again.output
    assert (
        "(the run there is deleted first (--overwrite))"
        in CliRunner()
        .invoke(main, [*base, "--output", str(out), "--dry-run", "--overwrite"])
        .output
    )
    recipe.write_text("stages:\n  - length_filter: {min_chars: 900}\n")
    other = CliRunner().invoke(main, [*base, "--output", str(out), "--dry-run"])
    assert other.exit_code != 0 and "pass --overwrite to start again there" in other.output
    recipe.write_text("stages: []\noutput: {partition_by: source}\n")
    split = CliRunner().invoke(main, [*base, "--output", str(tmp_path / "o1"), "--dry-run"])
    assert "kept rows: a folder per value of source (kept/<value>/)" in split.output
    missing = CliRunner().invoke(
        main,
        [
            "run",
            str(recipe),
            "--input",
            str(tmp_path / "nope.jsonl"),
            "--output",
            str(tmp_path / "o2"),
            "--dry-run",
        ],
    )
    assert missing.exit_code != 0 and "nope.jsonl" in missing.output
    port = free_port()  # nothing listens there: the run would fail to join, so does this
    unreachable = CliRunner().invoke(
        main,
        [
            *base,
            "--output",
            str(tmp_path / "o3"),
            "--dry-run",
            "--ray-address",
            f"127.0.0.1:{port}",
        ],
    )
    assert unreachable.exit_code != 0
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in unreachable.output
    assert "dry run of" not in unreachable.output
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_an_unquoted_glob_after_input_reads_every_file(pile_path: Path, tmp_path: Path) -> None:
    # `--input parts/*.jsonl` reaches us as `--input parts/a.jsonl parts/b.jsonl ...`:
    # click refused the rest as "unexpected extra argument"
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        shutil.copy(pile_path, parts / f"p{i}.jsonl")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - length_filter: {min_chars: 500}\n")
    expanded = sorted(str(p) for p in parts.glob("*.jsonl"))
    common = ["--text-field", "contents", "--executor", "local", "--quiet"]
    result = CliRunner().invoke(
        main, ["run", str(recipe), "--input", *expanded, "--output", str(tmp_path / "a"), *common]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "a" / "stats.json").read_text())
    assert stats["rows"]["read"] == 3000
    assert stats["shards"]["input_files"] == 3
    # the same as one --input per file, in the same order
    each = [a for path in expanded for a in ("--input", path)]
    result = CliRunner().invoke(
        main, ["run", str(recipe), *each, "--output", str(tmp_path / "b"), *common]
    )
    assert result.exit_code == 0, result.output
    assert read_output(tmp_path / "a", "kept").to_pylist() == (
        read_output(tmp_path / "b", "kept").to_pylist()
    )
    # the training commands take them alike, and still want one at least
    refused = CliRunner().invoke(main, ["train-kenlm", "--output", str(tmp_path / "m")])
    assert refused.exit_code == 2
    assert "no input: give --input PATH" in refused.output
    model = tmp_path / "m"
    model.mkdir()
    (model / "keep.txt").write_text("mine")
    taken = CliRunner().invoke(main, ["train-kenlm", "--input", *expanded, "--output", str(model)])
    assert "exists and is not empty" in taken.output  # past the arguments, to the output


@pytest.mark.parametrize(
    "command",
    [
        ["run", "r.yaml", "--input", "x.jsonl"],
        ["train-kenlm", "--input", "x.jsonl"],
        ["train-fasttext", "--positive", "p.jsonl", "--negative", "n.jsonl"],
        ["sample-data", "python-docs"],
        ["train-lm", "--input", "x.jsonl"],
        ["train-preselect", "--input", "x.jsonl", "--reference", "m=1"],
        ["report", "runs/x"],
        ["export", "runs/x"],
    ],
)
def test_a_url_as_output_is_refused_before_anything_runs(command: list[str], tmp_path) -> None:
    # click.Path took s3://bucket/x for a local path, and the command wrote a folder "s3:"
    option = {"report": "-o", "export": "--to-folder"}.get(command[0], "--output")
    result = CliRunner().invoke(main, [*command, option, "s3://bucket/x"])
    assert result.exit_code == 2, result.output
    assert "s3://bucket/x is a URL: write to a path on this machine" in result.output
    assert not Path("s3:").exists()


@pytest.mark.parametrize(
    "command, option, value",
    [
        (["train-lm", "--input", "x.jsonl", "--output", "m"], "--steps", "0"),
        (["train-lm", "--input", "x.jsonl", "--output", "m"], "--batch-size", "0"),
        (["train-lm", "--input", "x.jsonl", "--output", "m"], "--lr", "-0.1"),
        (["train-lm", "--input", "x.jsonl", "--output", "m"], "--epochs", "0"),
        (["train-lm", "--input", "x.jsonl", "--output", "m"], "--vocab-size", "100"),
        (["eval-lm", "--model", "m", "--input", "x.jsonl"], "--batch-size", "0"),
        (["inspect", "runs/x"], "--limit", "-3"),
        (["inspect", "runs/x"], "--bins", "0"),
    ],
)
def test_numbers_out_of_range_are_refused_before_anything_runs(
    command: list[str], option: str, value: str
) -> None:
    """Before: --steps 0 wrote an untrained model, --batch-size 0 a ZeroDivisionError,
    --limit -3 and --bins 0 polars' and numpy's errors, --vocab-size 100 SentencePiece's."""
    result = CliRunner().invoke(main, [*command, option, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}': {value}" in result.output


def test_the_run_summary_fits_80_columns_without_cutting_names_or_reasons() -> None:
    """Stage names and drop reasons are shown whole on an 80-column terminal, even with
    counts in the hundreds of millions; past three reasons the rest are summed."""
    from rich.console import Console

    from curation.cli import _print_summary

    reasons = {
        "gopher_repetition:duplicated_10_n_grams": 41_000_000,
        "gopher_repetition:dup_para_char_frac": 9_500_000,
        "gopher_repetition:top_4_gram_char_frac": 7_000_000,
        "gopher_repetition:dup_line_frac": 600_000,
        "gopher_repetition:dup_para_frac": 400_000,
    }
    stage = {
        "name": "gopher_repetition",
        "rows_in": 312_000_000,
        "rows_kept": 312_000_000 - sum(reasons.values()),
        "rows_dropped": sum(reasons.values()),
        "dropped_by_reason": reasons,
        "docs_per_s": 123_456.0,
        "mb_per_s": 1_234.5,
    }
    stats = {
        "seconds": 3600.0,
        "stages": [stage],
        "rows": {"kept": stage["rows_kept"], "read": stage["rows_in"]},
        "files": {"kept": 1200},
        "shards": {"corrupt_skipped": []},
    }
    console = Console(width=80, record=True, file=io.StringIO())
    _print_summary(stats, "runs/x", console)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if line.strip().startswith("gopher_repetition"))
    assert "312,000,000" in row and "58,500,000" in row and "123,456" in row
    for reason, n in list(reasons.items())[:3]:
        line = next(line for line in lines if reason.split(":")[1] in line)
        assert line.split() == [reason.split(":")[1], f"{n:,}"]
    assert next(line for line in lines if "more" in line).split() == ["2", "more", "1,000,000"]
    said = " ".join(line.strip() for line in lines)
    assert "kept 253,500,000 of 312,000,000 documents (1,200 files); stats in" in said
    stats["files"]["kept"] = 1
    console = Console(width=80, record=True, file=io.StringIO())
    _print_summary(stats, "runs/x", console)
    assert "documents (1 file); stats in" in " ".join(console.export_text().split())
    stats["partitions"] = {"column": "lang", "folders": {"en": {}, "fr": {}}}
    console = Console(width=80, record=True, file=io.StringIO())
    _print_summary(stats, "runs/x", console)
    said = " ".join(console.export_text().split())
    assert "documents (1 file in 2 folders by lang); stats in" in said


def test_run_errors_are_one_clear_line(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - sample: {rate: 2}\n")
    result = CliRunner().invoke(
        main, ["run", str(recipe), "--input", "x", "--output", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "r.yaml line 2: stage sample: parameter 'rate'" in result.output
    assert "Traceback" not in result.output
    recipe.write_text("stages: []\n")
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(recipe),
            "--input",
            str(tmp_path / "none"),
            "--output",
            str(tmp_path / "o"),
            "--executor",
            "local",
        ],
    )
    assert result.exit_code == 1 and "does not exist" in result.output

    # a stage that refuses its input (here: no URL column) is one line on both executors
    data = tmp_path / "docs.jsonl"
    data.write_text('{"text": "a document without a url"}\n')
    recipe.write_text("stages:\n  - url_filter: {use_integrated_lists: false}\n")
    for executor in ("local", "ray"):
        args = ["run", str(recipe), "--input", str(data), "--output", str(tmp_path / executor)]
        result = CliRunner().invoke(main, [*args, "--executor", executor, "--quiet"])
        assert result.exit_code == 1, result.output
        assert "docs.jsonl: url_filter: no column 'url'" in result.output
        assert "set url_field" in result.output and "Traceback" not in result.output

    # kept rows a folder per value: of a column they lack, or of too many values in all
    recipe.write_text("stages: []\noutput: {partition_by: lang, max_partitions: 2}\n")
    for executor in ("local", "ray"):
        args = [
            "run",
            str(recipe),
            "--input",
            str(data),
            "--output",
            str(tmp_path / f"p{executor}"),
        ]
        result = CliRunner().invoke(main, [*args, "--executor", executor, "--quiet"])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        said = " ".join(result.output.split())
        assert "output.partition_by names the column 'lang', which no kept row has" in said
    for name, langs in (("a", "en fr"), ("b", "de it")):
        lines = [f'{{"text": "{lang} text", "lang": "{lang}"}}\n' for lang in langs.split()]
        (tmp_path / "langs").mkdir(exist_ok=True)
        (tmp_path / "langs" / f"{name}.jsonl").write_text("".join(lines))
    args = ["run", str(recipe), "--input", str(tmp_path / "langs"), "--output", str(tmp_path / "l")]
    result = CliRunner().invoke(main, [*args, "--executor", "local", "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "the kept rows hold 4 values of 'lang', more than output.max_partitions (2)" in " ".join(
        result.output.split()
    )


def test_sample_data_python_docs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["sample-data", "python-docs", "--output", str(tmp_path / "s"), "--shards", "2"]
    )
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "s").iterdir())
    assert [f.name for f in files] == ["python-docs-00000.jsonl.gz", "python-docs-00001.jsonl.gz"]


def dclm_labelled(folder: Path) -> None:
    """DCLM's human quality labels as ``good.jsonl`` (label 1) and ``bad.jsonl`` (0) in
    ``folder`` (skips when the shared data is absent)."""
    from tests.conftest import shared_file

    rows = [
        json.loads(line)
        for line in shared_file("quality/dclm-human-quality-majority.jsonl")
        .read_text()
        .splitlines()
    ]
    for name, label in (("good", 1), ("bad", 0)):
        (folder / f"{name}.jsonl").write_text(
            "".join(json.dumps({"text": r["text"]}) + "\n" for r in rows if r["label"] == label)
        )


def test_train_fasttext_prints_held_out_metrics(tmp_path: Path) -> None:
    dclm_labelled(tmp_path)
    args = ["train-fasttext", "--positive", str(tmp_path / "good.jsonl"), "--negative"]
    args += [str(tmp_path / "bad.jsonl"), "--output", str(tmp_path / "q.bin"), "--arg", "epoch=10"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "held out 50: precision" in result.output and "AUC" in result.output
    meta = json.loads((tmp_path / "q.bin.json").read_text())
    assert meta["fasttext_args"]["epoch"] == 10
    bad = CliRunner().invoke(main, [*args[:-2], "--arg", "epoch"])
    assert bad.exit_code == 2 and "expected NAME=VALUE" in bad.output
    # lines the reader sets aside are said, by reason, and not trained on
    lines = (tmp_path / "bad.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "rough.jsonl").write_text("".join(lines) + 'not json\n{"text": " "}\n')
    args[4] = str(tmp_path / "rough.jsonl")
    rough = CliRunner().invoke(main, args)
    assert rough.exit_code == 0, rough.output
    assert "set aside from --negative (not trained on): 2 (" in rough.output
    assert "read:invalid_json 1" in rough.output and "--positive" not in rough.output
    # no documents of one label: a model of one label is no classifier
    (tmp_path / "none.jsonl").write_text('{"text": ""}\n{"title": "no text"}\n')
    args[4] = str(tmp_path / "none.jsonl")
    empty = CliRunner().invoke(main, args)
    assert empty.exit_code == 1 and "no documents to train on in --negative" in empty.output
    assert "none.jsonl" in empty.output


def test_train_kenlm_refuses_a_non_empty_output_folder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(
        main,
        ["train-kenlm", "--input", str(tmp_path / "model"), "--output", str(tmp_path / "model")],
    )
    assert result.exit_code == 1
    assert "exists and is not empty" in result.output
    assert (tmp_path / "model" / "keep.txt").read_text() == "mine"


@pytest.mark.ray
def test_train_lm_as_a_ray_task(c4_path: Path, tmp_path: Path) -> None:
    """--executor ray trains inside a Ray task (num_gpus=0 on a cluster without GPUs)."""
    out = tmp_path / "lm"
    result = train_tiny_lm_on_ray(c4_path, out)
    assert result.exit_code == 0, result.output
    assert "as a Ray task with num_gpus=0" in result.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["training"]["steps"] == 5 and meta["training"]["device"] == "cpu"
    again = CliRunner().invoke(main, ["train-lm", "--input", str(c4_path), "--output", str(out)])
    assert again.exit_code != 0 and "exists and is not empty" in again.output


def test_python_m_lists_every_command_without_loading_the_engine() -> None:
    # `python -m curation.cli` must see every command, and starting the CLI (as `curate
    # inspect` and `curate --help` do) must not import Ray or the run machinery.
    probe = (
        "import sys, runpy; sys.argv = ['curate', '--help']\n"
        "try:\n"
        "    runpy.run_module('curation.cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print([m for m in ('ray', 'curation.runtime.run', 'curation.stage') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    commands = {c.name for c in main.commands.values()}
    assert commands >= {"run", "inspect", "report", "export", "train-lm", "train-preselect"}
    for name in commands:
        assert f"  {name} " in out, f"python -m curation.cli does not list {name}"
    assert out.strip().splitlines()[-1] == "[]"


def test_ctrl_c_says_how_to_resume(monkeypatch, tmp_path: Path) -> None:
    # click printed "Aborted!" and nothing else; a run started with --overwrite would
    # start again if the user simply ran the same command
    import curation.runtime.run as runtime

    def interrupted(*args: object, **kwargs: object) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(runtime, "run", interrupted)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages: []\n")
    args = ["run", str(recipe), "--input", "x.jsonl", "--output", str(tmp_path / "o")]
    result = CliRunner().invoke(main, [*args, "--executor", "local"])
    assert result.exit_code == 130
    assert "run the same command to resume" in result.output
    assert "Aborted" not in result.output
    result = CliRunner().invoke(main, [*args, "--executor", "local", "--overwrite"])
    assert "run the same command without --overwrite to resume" in result.output


def test_trainers_read_a_finished_runs_kept_documents(tmp_path: Path) -> None:
    """``--positive RUN`` (``--input RUN``) reads what the run kept, as ``tokenize RUN``
    does: the same model as from ``RUN/kept``, another than from the run's input; a run
    that kept nothing is named, with what to do."""
    from tests.conftest import recipe_of, run_local, run_that_kept_nothing

    dclm_labelled(tmp_path)
    recipe = recipe_of("stages:\n  - length_filter: {min_chars: 2000}\n", tmp_path / "good.jsonl")
    stats = run_local(recipe, tmp_path / "run")
    assert 0 < stats["rows"]["kept"] < stats["rows"]["read"]
    metrics = {}
    for source in ("run", "run/kept", "good.jsonl"):
        args = ["train-fasttext", "--positive", str(tmp_path / source), "--negative"]
        out = tmp_path / f"{source.replace('/', '-')}.bin"
        args += [str(tmp_path / "bad.jsonl"), "--output", str(out)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        metrics[source] = json.loads(out.with_name(out.name + ".json").read_text())["metrics"]
    assert metrics["run"] == metrics["run/kept"] != metrics["good.jsonl"]

    empty = run_that_kept_nothing(tmp_path)
    result = CliRunner().invoke(
        main, ["train-lm", "--input", str(empty), "--output", str(tmp_path / "lm")]
    )
    assert result.exit_code == 1
    assert "kept no document (0 of 3 documents): there is nothing of it to train on" in (
        result.output
    )
