"""The ``curate`` command."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from curation.lm import PRECISIONS

# The commands import what they use when they run, so that `curate inspect` and
# `curate --help` do not pay for the engine (Ray, the writers, every stage) at start-up.


def _expected_errors() -> tuple[type[Exception], ...]:
    """The errors of `curate run` that are the user's to fix: one message, no traceback."""
    from curation.io.inputs import InputError
    from curation.io.writers import PartitionError, SchemaConflictError
    from curation.recipe import RecipeError
    from curation.runtime.executors import ClusterUnreachable, ShardFailed, WorkerStartFailed
    from curation.runtime.ledger import AccountingError
    from curation.runtime.models import ModelBuildError
    from curation.runtime.run import BarrierTooLarge, RunFolderError

    return (
        BarrierTooLarge,
        ModelBuildError,
        RecipeError,
        InputError,
        RunFolderError,
        ShardFailed,
        ClusterUnreachable,
        WorkerStartFailed,
        AccountingError,
        SchemaConflictError,
        PartitionError,
    )


_TO_THE_HUB = "`curate export` publishes a run to the Hugging Face Hub"


class LocalPath(click.Path):
    """A path on this machine for what a command writes: a URL (``s3://bucket/x``) is
    refused, where ``click.Path`` would make of it a local folder named ``s3:``. ``hint``
    ends the message: where such data can go instead."""

    def __init__(self, *args: Any, hint: str = _TO_THE_HUB, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hint = hint

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from curation.io import is_url

        if is_url(value):
            self.fail(
                f"{value} is a URL: write to a path on this machine (on a cluster, storage "
                f"mounted at the same path on every node); {self.hint}",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


#: what --input says about the paths that may follow the options
_MORE_INPUTS = "repeat for several, or list them after the options (a glob the shell expanded)"


def _more_inputs(command: Any) -> Any:
    """Paths among the command's arguments are inputs too, after those of --input: an
    unquoted ``--input crawl/*.parquet`` reaches us as one --input and the rest of the
    files, which click alone refuses as "unexpected extra argument"."""
    return click.argument("more_inputs", nargs=-1, metavar="[INPUT]...")(command)


def _inputs(inputs: tuple[str, ...], more: tuple[str, ...], required: bool = True) -> list[str]:
    """The paths of --input, then those after the options; one at least when
    ``required``."""
    paths = [*inputs, *more]
    if required and not paths:
        raise click.UsageError("no input: give --input PATH (repeat for several)")
    return paths


@click.group()
@click.version_option(package_name="curation")
def main() -> None:
    """Turn raw web crawls into pretraining data."""


@main.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False))
@_more_inputs
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help=f"file, directory, glob or fsspec URL; {_MORE_INPUTS} (default: the recipe's input.paths)",
)
@click.option(
    "--output",
    required=True,
    type=LocalPath(file_okay=False),
    help="run folder: kept/, dropped/, stats.json, recipe.yaml, _work/",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "parquet", "warc", "text"]),
    help="input format (default: by file extension)",
)
@click.option("--text-field", help="field or column holding the text (default: text)")
@click.option("--id-field", help="field or column holding the id (default: id)")
@click.option(
    "--executor",
    type=click.Choice(["ray", "local"]),
    default="ray",
    show_default=True,
    help="ray: Ray Data (embedded local cluster unless --ray-address); local: in this process",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Ray workers (default: all CPUs of the embedded cluster)",
)
@click.option(
    "--ray-address",
    help="join this Ray cluster (host:port, ray://host:port or auto) instead of starting "
    "one; default: the environment's RAY_ADDRESS, as `ray job submit` sets it",
)
@click.option("--overwrite", is_flag=True, help="delete the previous run in --output first")
@click.option("--quiet", is_flag=True, help="no progress display")
@click.option(
    "--dry-run",
    is_flag=True,
    help="check the recipe, inputs, models and output folder and print the plan; "
    "write nothing, run nothing",
)
def run_command(
    recipe: str,
    more_inputs: tuple[str, ...],
    inputs: tuple[str, ...],
    output: str,
    fmt: str | None,
    text_field: str | None,
    id_field: str | None,
    executor: str,
    workers: int | None,
    ray_address: str | None,
    overwrite: bool,
    quiet: bool,
    dry_run: bool,
) -> None:
    """Run the curation RECIPE (a YAML file) over the inputs into --output."""
    from curation.recipe import load_recipe
    from curation.runtime.run import RunOptions, run

    inputs = tuple(_inputs(inputs, more_inputs, required=False))
    try:
        loaded = load_recipe(recipe).with_input(
            paths=list(inputs) or None, format=fmt, text_field=text_field, id_field=id_field
        )
        if executor == "local" and (ray_address or workers):
            raise click.UsageError("--ray-address and --workers go with --executor ray")
        if dry_run:
            _print_plan(recipe, loaded, output, overwrite, executor, ray_address)
            return
        if loaded.models:
            from curation.runtime.models import build_models

            build_models(
                loaded.models,
                loaded.input.paths,
                loaded.input.text_field,
                log=lambda m: click.echo(m, err=True),
            )
            # read again: the stages' checks of the models they name now run
            loaded = load_recipe(recipe).with_input(
                paths=list(inputs) or None, format=fmt, text_field=text_field, id_field=id_field
            )
        options = RunOptions(executor, workers, ray_address, overwrite, progress=not quiet)
        stats = run(loaded, output, options)
    except _expected_errors() as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:  # Ctrl-C: click would print "Aborted!" and nothing else
        again = "the same command without --overwrite" if overwrite else "the same command"
        click.echo(
            f"\ninterrupted: what finished is kept in {output}; run {again} to resume "
            "from it (--overwrite starts again)",
            err=True,
        )
        sys.exit(130)
    _print_summary(stats, output)


def _print_plan(
    path: str, recipe: Any, output: str, overwrite: bool, executor: str, address: str | None
) -> None:
    """``curate run --dry-run``: what the run would read, build, run and write, checked
    as the run checks it (an error where the run would fail before it starts; a cluster
    named by address must answer as a Ray cluster, which joins nothing)."""
    from curation.runtime.executors import check_reachable, cluster_address
    from curation.runtime.models import model_actions
    from curation.runtime.run import plan_run

    plan = plan_run(recipe, output, overwrite)
    actions = model_actions(recipe.models, recipe.input.paths, recipe.input.text_field)
    if executor == "local":
        where = "local, in this process"
    elif (joined := cluster_address(address)) is not None:
        check_reachable(joined)
        where = f"Ray, the cluster at {joined} (it answers)"
    else:
        where = "Ray, an embedded local cluster started for the run"
    inputs = plan["inputs"]
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in inputs["formats"].items())
    click.echo(f"dry run of {path}: nothing is written or run")
    click.echo(f"inputs: {inputs['files']:,} file(s), {inputs['bytes'] / 1e6:,.1f} MB ({kinds})")
    for action in actions:
        click.echo(f"models: {action}")
    for index, step in enumerate(plan["passes"], 1):
        after = " (after a barrier that decides over the whole dataset)" if step["barrier"] else ""
        measures = (
            f"; then measures what {step['measures_for']} decides on"
            if step["measures_for"]
            else ""
        )
        click.echo(f"pass {index}{after}: {', '.join(step['stages']) or 'read'}{measures}")
    state = {
        "new": "a new run",
        "overwrite": "the run there is deleted first (--overwrite)",
        "resume": "resumes the run of this recipe there: finished shards are not run again",
        "finished": "the run of this recipe there is finished: every shard is reused",
    }[plan["output"]["state"]]
    click.echo(f"output: {plan['output']['folder']} ({state})")
    if partition_by := plan["output"].get("partition_by"):
        from curation.inspect.terminal import partition_path

        by = partition_path(partition_by)
        nested = "/".join("<value>" for _ in by.split("/"))
        click.echo(f"kept rows: a folder per value of {by} (kept/{nested}/)")
    click.echo(f"executor: {where}")


def _print_summary(stats: dict, output: str, console: Any = None) -> None:
    """Print the run's funnel to ``console`` (stderr by default): a row per stage, then a
    row per top drop reason (at most three) under it, its count in the dropped column, so
    the table fits an 80-column terminal without cutting names."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    table = Table(
        title=f"curate run -> {output}  ({stats['seconds']:.1f} s)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("stage / drop reason", no_wrap=True)
    for column in ("rows in", "kept", "dropped", "docs/s", "MB/s"):
        table.add_column(column, justify="right", no_wrap=True)
    for stage in stats["stages"]:
        table.add_row(
            stage["name"],
            f"{stage['rows_in']:,}",
            f"{stage['rows_kept']:,}",
            f"{stage['rows_dropped']:,}",
            f"{stage['docs_per_s']:,.0f}" if stage["docs_per_s"] else "-",
            f"{stage['mb_per_s']:,.1f}" if stage["mb_per_s"] else "-",
        )
        if "where" in stage:  # the rows it saw: the others passed it as they came
            table.add_row(f"  where {stage['where']}", f"{stage['rows_where']:,}", style="dim")
        reasons = sorted(stage["dropped_by_reason"].items(), key=lambda kv: -kv[1])
        for reason, n in reasons[:3]:
            table.add_row(f"  {reason.split(':', 1)[-1]}", "", "", f"{n:,}", style="dim")
        if len(reasons) > 3:
            more = f"  {len(reasons) - 3} more"
            table.add_row(more, "", "", f"{sum(n for _, n in reasons[3:]):,}", style="dim")
        parts = list(stage.get("decision", {}).get("parts", {}).items())  # a mix's
        for name, part in parts[:5]:
            got = f"  {name[:16]} {part['share_taken']:.1%} (asked {part['share']:.1%})"
            table.add_row(got, style="dim")
        if len(parts) > 5:
            table.add_row(f"  {len(parts) - 5} more parts (curate inspect)", style="dim")
    console.print(table)
    rows = stats["rows"]
    files = stats["files"]["kept"]
    tokens = "".join(
        f", {summary['kept_sum']:,} tokens ({column})"
        for stage in stats["stages"]
        if stage["name"] == "token_count"
        for column, summary in stage.get("summaries", {}).items()
        if "kept_sum" in summary
    )
    copies = "".join(
        f", {stage['summaries']['mix_copies']['kept_sum']:,} with the mixture's repeats"
        for stage in stats["stages"]
        if stage["name"] == "mix" and "mix_copies" in stage.get("summaries", {})
    )
    folders = ""
    if partitions := stats.get("partitions"):
        from curation.inspect.terminal import partition_path

        count = len(partitions["folders"])
        by = partition_path(partitions["column"])
        folders = f" in {count:,} folder{'s' if count != 1 else ''} by {by}"
    console.print(
        f"kept {rows['kept']:,} of {rows['read']:,} documents{copies}{tokens} "
        f"({files:,} file{'s' if files != 1 else ''}{folders}); "
        f"stats in {Path(output) / 'stats.json'}"
    )
    # columns of the input that stages wrote anew (not those an earlier stage wrote: a
    # stage run twice, each on the rows of its own `where`)
    replaced, written = [], set()
    for stage in stats["stages"]:
        replaced += [n for n in stage.get("replaced_columns", []) if n not in written]
        written.update(stage.get("added_columns", []))
    replaced = list(dict.fromkeys(replaced))
    if replaced:
        named = ", ".join(replaced[:3]) + (
            f" and {len(replaced) - 3} more" if len(replaced) > 3 else ""
        )
        console.print(
            f"note: the input already had columns the stages write ({named}): the stages' "
            "values replace them on the rows they measured (stats.json lists them under each "
            "stage's replaced_columns)"
        )
    for bad in stats["shards"]["corrupt_skipped"]:
        console.print(f"[yellow]skipped the rest of a damaged file:[/] {bad['error']}")


@main.command("stages")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def stages_command(as_json: bool) -> None:
    """List every stage with its parameters, defaults and one line of help."""
    from curation.stage import GlobalStage, describe_params, registry

    listing = {
        name: {
            "help": cls.help,
            "params": describe_params(cls.Params),
            "takes_where": not issubclass(cls, GlobalStage),
        }
        for name, cls in registry().items()
    }
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for name, entry in listing.items():
        click.echo(f"{name}: {entry['help']}")
        for p in entry["params"]:
            line = f"    {p['name']} ({p['type']}, default {p['default']})"
            click.echo(f"{line}: {p['help']}" if p["help"] else line)
    whole = ", ".join(name for name, entry in listing.items() if not entry["takes_where"])
    click.echo(
        f"\nEvery stage but {whole} (which decide over the whole dataset) takes `where: SQL` "
        "beside its name in a recipe: it then runs on the rows that condition holds for, and "
        "the others pass it as they came."
    )


@main.command("minhash-params")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.8,
    show_default=True,
    help="Jaccard similarity to detect",
)
@click.option(
    "--num-perm",
    type=click.IntRange(min=1),
    default=112,
    show_default=True,
    help="hash functions available (bands x rows at most)",
)
@click.option(
    "--fp-weight",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="weight of false positives (false negatives get 1 - it)",
)
def minhash_params_command(threshold: float, num_perm: int, fp_weight: float) -> None:
    """Print the MinHash bands and rows that best separate pairs around THRESHOLD."""
    from curation.dedup.lsh import detection_probability, error_areas, optimal_banding

    best = optimal_banding(threshold, num_perm, fp_weight, 1.0 - fp_weight)
    click.echo(
        f"threshold {threshold}, {num_perm} permutations: {best.bands} bands x "
        f"{best.rows} rows ({best.permutations} hashes used)"
    )
    click.echo(
        f"false positive area {best.false_positive_area:.5f}, false negative area "
        f"{best.false_negative_area:.5f}"
    )
    rows = [("best", best.bands, best.rows)]
    if (best.bands, best.rows) != (14, 8) and num_perm >= 112:
        rows.append(("datatrove default", 14, 8))
    click.echo("")
    similarities = [round(0.5 + 0.05 * i, 2) for i in range(10)]
    click.echo("detection probability at Jaccard similarity")
    click.echo(f"{'':24s}" + "".join(f"{s:>7.2f}" for s in similarities))
    for name, bands, rows_ in rows:
        probs = detection_probability(similarities, bands, rows_)
        label = f"{name} {bands}x{rows_}"
        click.echo(f"{label:24s}" + "".join(f"{p:>7.3f}" for p in probs))
        if name != "best":
            fp, fn = error_areas(threshold, bands, rows_)
            click.echo(f"{'':24s}false positive area {fp:.5f}, false negative area {fn:.5f}")


@main.command("train-kenlm")
@_more_inputs
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help=f"text to train on: file, directory, glob or URL; {_MORE_INPUTS}",
)
@click.option("--output", required=True, type=LocalPath(file_okay=False), help="new model folder")
@click.option("--order", type=click.IntRange(2, 9), default=5, show_default=True)
@click.option("--vocab-size", type=click.IntRange(min=100), default=8000, show_default=True)
@click.option("--text-field", default="text", show_default=True)
def train_kenlm_command(
    more_inputs: tuple[str, ...],
    inputs: tuple[str, ...],
    output: str,
    order: int,
    vocab_size: int,
    text_field: str,
) -> None:
    """Train a SentencePiece tokenizer and a KenLM n-gram model on CCNet-normalised text."""
    from curation.io.inputs import InputError, kept_of_runs
    from curation.scoring.kenlm import ModelError, ToolMissing, train_kenlm

    inputs = tuple(_inputs(inputs, more_inputs))

    def log(message: str) -> None:
        click.echo(message, err=True)

    try:
        sources = kept_of_runs(list(inputs), "train on")
        meta = train_kenlm(sources, output, order, vocab_size, text_field, log=log)
    except (InputError, ToolMissing, ModelError, FileExistsError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(
        f"wrote {output}: {meta['lines']:,} lines, {meta['pieces']:,} pieces, order {order}, "
        f"{meta['vocab_size']:,} pieces in the vocabulary, {meta['seconds']} s",
        err=True,
    )


@main.command("train-fasttext")
@click.option("--positive", multiple=True, required=True, help="text of the wanted kind")
@click.option("--negative", multiple=True, required=True, help="text of the unwanted kind")
@click.option("--output", required=True, type=LocalPath(dir_okay=False), help="model.bin")
@click.option("--labels", default="hq,lq", show_default=True, help="positive,negative")
@click.option("--held-out", type=click.FloatRange(0, 0.9), default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option(
    "--arg",
    "args",
    multiple=True,
    help="a fastText train_supervised argument as NAME=VALUE (e.g. epoch=10, dim=256)",
)
def train_fasttext_command(
    positive: tuple[str, ...],
    negative: tuple[str, ...],
    output: str,
    labels: str,
    held_out: float,
    seed: int,
    text_field: str,
    args: tuple[str, ...],
) -> None:
    """Train a fastText classifier the DCLM way (word bigrams, defaults otherwise)."""
    from curation.io.inputs import InputError, kept_of_runs
    from curation.scoring.classifier import fit_warning, read_texts, train_classifier

    names = tuple(labels.split(","))
    if len(names) != 2:
        raise click.UsageError("--labels takes two names: positive,negative")
    overrides = _fasttext_overrides(args)
    try:
        aside: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
        pos = list(read_texts(kept_of_runs(list(positive), "train on"), text_field, aside[0]))
        neg = list(read_texts(kept_of_runs(list(negative), "train on"), text_field, aside[1]))
        _say_set_aside("--positive", aside[0])
        _say_set_aside("--negative", aside[1])
        for option, paths, texts in (("positive", positive, pos), ("negative", negative, neg)):
            if not texts:
                raise click.ClickException(
                    f"no documents to train on in --{option} {' '.join(paths)}: give files "
                    f"whose lines have a {text_field!r} field with text"
                )
        meta = train_classifier(
            pos,
            neg,
            output,
            labels=names,  # type: ignore[arg-type]
            held_out=held_out,
            seed=seed,
            fasttext_args=overrides,
            trained_on={"positive": list(positive), "negative": list(negative)},
        )
    except (InputError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    m = meta["metrics"]
    click.echo(f"wrote {output} ({m['train']:,} training documents)", err=True)
    if "auc" in m:
        click.echo(
            f"held out {m['held_out']:,}: precision {m['precision']:.3f}, recall "
            f"{m['recall']:.3f}, accuracy {m['accuracy']:.3f}, AUC {m['auc']:.3f}",
            err=True,
        )
    if warning := fit_warning(m):
        click.echo(warning, err=True)


@main.command("sample-data")
@click.argument("name", type=click.Choice(["python-docs"]))
@click.option(
    "--output", required=True, type=LocalPath(file_okay=False), help="folder for the JSONL shards"
)
@click.option("--shards", type=click.IntRange(min=1), default=4, show_default=True)
def sample_data_command(name: str, output: str, shards: int) -> None:
    """Write a real-text sample that ships with Python itself as .jsonl.gz shards."""
    from curation.io.samples import write_python_docs

    count = write_python_docs(Path(output), shards)
    click.echo(f"wrote {count:,} documents in {shards} shards to {output}", err=True)


def _say_set_aside(option: str, reasons: Counter[str]) -> None:
    """One line on stderr naming the documents of ``option``'s files that the reader set
    aside and did not train on, by reason (``read:invalid_json`` ...), when there are any."""
    if reasons:
        each = ", ".join(f"{reason} {count:,}" for reason, count in reasons.most_common())
        click.echo(
            f"set aside from {option} (not trained on): {sum(reasons.values()):,} ({each})",
            err=True,
        )


def _fasttext_overrides(args: tuple[str, ...]) -> dict[str, object]:
    import yaml

    overrides = {}
    for item in args:
        key, _, value = item.partition("=")
        if not value:
            raise click.UsageError(f"--arg {item!r}: expected NAME=VALUE")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _train_lm_task(texts: list[str] | None, output: str, options: dict) -> dict:
    """Run ``train_lm`` on ``texts``, or on ``options["tokens"]`` (locally, or inside a
    Ray task, recording the GPUs Ray gave it)."""
    from curation.lm.train import TrainConfig, train_lm
    from curation.runtime.executors import ray_gpu_ids

    rest = {key: value for key, value in options.items() if key != "train"}
    config = TrainConfig(**options["train"])
    gpus = ray_gpu_ids()
    placement = {"ray_gpu_ids": gpus} if gpus else {}
    return train_lm(texts, output, train=config, placement=placement, log=_print_flush, **rest)


def _print_flush(message: str) -> None:
    print(message, flush=True)


@main.command("train-lm")
@_more_inputs
@click.option(
    "--input", "inputs", multiple=True, help=f"training text (any format); {_MORE_INPUTS}"
)
@click.option(
    "--tokens",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="train on this `curate tokenize` folder instead, memory-mapped (tokenized with "
    "--bos '<s>' --eos '</s>' by a train-lm tokenizer, which the model then uses); "
    "repeat for several, read one after another",
)
@click.option("--output", required=True, type=LocalPath(file_okay=False), help="checkpoint folder")
@click.option("--init", type=click.Path(file_okay=False), help="fine-tune this checkpoint")
@click.option("--config", "preset", default="small", show_default=True, help="tiny, small, 25m")
@click.option(
    "--tokenizer",
    "tokenizer_from",
    type=click.Path(exists=True),
    help="reuse this checkpoint's tokenizer (or a tokenizer.model) for a fresh model; with "
    "--tokens, where the tokenizer the folder names has moved",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=500, show_default=True, help="optimizer steps"
)
@click.option(
    "--epochs",
    type=click.FloatRange(min=0, min_open=True),
    help="passes over the data (instead of --steps)",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="sequences a step",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=3e-3,
    show_default=True,
    help="peak learning rate",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--held-out",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.05,
    show_default=True,
    help="fraction of the documents held out for the held-out loss",
)
@click.option(
    "--vocab-size",
    type=click.IntRange(min=300),
    default=8000,
    show_default=True,
    help="pieces of the SentencePiece tokenizer trained for a fresh model (at least 300: "
    "byte fallback's 256 byte pieces, the special ones and the text's characters)",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="bf16 autocast; auto: bf16 on a GPU with native bf16, fp32 on the CPU (where the "
    "CPU has AMX or AVX512-BF16, bf16 trains the 25m preset about 1.8x as fast)",
)
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="torch.compile the model: tens of seconds up front, for GPUs (no faster on a small CPU)",
)
@click.option(
    "--save-state-every",
    "state_every",
    type=click.IntRange(min=1),
    help="steps between two saved states of the training, from which a stopped one goes "
    "on when the same command runs again [default: every 5 minutes, and at Ctrl-C]",
)
@click.option("--text-field", default="text", show_default=True)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: a Ray task that asks for a GPU when the cluster has one",
)
@click.option(
    "--ray-address",
    help="an existing Ray cluster (implies --executor ray; default with --executor ray: "
    "the environment's RAY_ADDRESS, else an embedded local cluster)",
)
def train_lm_command(
    more_inputs: tuple[str, ...],
    inputs: tuple[str, ...],
    tokens: tuple[str, ...],
    output: str,
    init: str | None,
    preset: str,
    tokenizer_from: str | None,
    steps: int,
    epochs: float | None,
    batch_size: int,
    lr: float,
    seed: int,
    held_out: float,
    vocab_size: int,
    device: str,
    precision: str,
    compile_: bool,
    state_every: int | None,
    text_field: str,
    executor: str,
    ray_address: str | None,
) -> None:
    """Pretrain a small GPT-style language model, or fine-tune one (--init), on text or
    on token files (--tokens). A stopped training (Ctrl-C, a lost machine) goes on from
    its last saved state when the same command runs again."""
    from curation.io.inputs import InputError, kept_of_runs
    from curation.lm.resume import WORK, TrainingStopped
    from curation.runtime.executors import ClusterUnreachable
    from curation.scoring.classifier import read_texts

    if tokens and (inputs or more_inputs):
        raise click.UsageError("give --tokens or --input, not both")
    inputs = () if tokens else tuple(_inputs(inputs, more_inputs))

    try:
        texts = None
        if not tokens:
            aside: Counter[str] = Counter()
            sources = kept_of_runs(list(inputs), "train on")
            texts = [t for t in read_texts(sources, text_field, aside) if t and t.strip()]
            _say_set_aside("--input", aside)
        if init:
            from curation.lm.train import check_checkpoint

            check_checkpoint(init)
        options = {
            "preset": preset,
            "init": init,
            "tokenizer_from": tokenizer_from,
            "vocab_size": vocab_size,
            "device": device,
            "sources": [str(Path(t).resolve()) for t in tokens] or list(inputs),
            "tokens": [str(Path(t).resolve()) for t in tokens] or None,
            "state_every": state_every,
            "stop_on_ctrl_c": not (executor == "ray" or ray_address),
            "train": {
                "steps": steps,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "seed": seed,
                "held_out": held_out,
                "precision": precision,
                "compile": compile_,
            },
        }
        if executor == "ray" or ray_address:
            import ray

            from curation.runtime.executors import cluster_address, start_or_join_ray

            started = False  # a driver that embeds us may have Ray up: use it, leave it up
            if not ray.is_initialized():
                started = start_or_join_ray(
                    cluster_address(ray_address),
                    include_dashboard=False,
                    logging_level="WARNING",
                )
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
            click.echo(f"train-lm: as a Ray task with num_gpus={gpus}", err=True)
            task = ray.remote(num_gpus=gpus, num_cpus=1)(_train_lm_task)
            try:
                meta = ray.get(task.remote(texts, str(Path(output).resolve()), options))
            except ray.exceptions.RayTaskError as err:  # the task's own error, not Ray's
                if isinstance(err.cause, ValueError | FileExistsError):
                    raise err.cause from None
                raise
            finally:
                if started:
                    ray.shutdown()
        else:
            meta = _train_lm_task(texts, output, options)
    except (InputError, ValueError, FileExistsError, ClusterUnreachable) as err:
        raise click.ClickException(str(err)) from None
    except TrainingStopped as stopped:
        click.echo(f"\ninterrupted: {stopped}", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: the training's last saved state, if it saved one, is in "
            f"{Path(output) / WORK}; run the same command to go on from it",
            err=True,
        )
        sys.exit(130)
    training = meta["training"]
    given = training.get("placement", {}).get("ray_gpu_ids", [])
    if given and training["device"] == "cpu":
        click.echo(
            f"warning: Ray gave the task GPU {', '.join(given)}, but torch there sees no CUDA "
            f"device (torch {training['torch']}), so it trained on the CPU: install a CUDA "
            "build of torch where the Ray workers run",
            err=True,
        )
    held = meta.get("held_out", {})
    click.echo(
        f"wrote {output}: {meta['parameters']:,} parameters, "
        f"{meta['training']['tokens_seen']:,} tokens, "
        f"{meta['training']['tokens_per_s']:,.0f} tokens/s"
        + (f", held-out {held['bits_per_char']:.3f} bits/char" if held else ""),
        err=True,
    )


@main.command("eval-lm")
@_more_inputs
@click.option(
    "--input", "inputs", multiple=True, help=f"text to score (any format); {_MORE_INPUTS}"
)
@click.option(
    "--model", "models", multiple=True, required=True, help="a train-lm checkpoint (repeatable)"
)
@click.option("--text-field", default="text", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda")
@click.option(
    "--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
    help="bf16 autocast; auto: bf16 on a GPU with native bf16, fp32 on the CPU",
)  # fmt: skip
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="windows a batch",
)
@click.option("--json", "json_out", type=LocalPath(dir_okay=False), help="also write the table")
def eval_lm_command(
    more_inputs: tuple[str, ...],
    inputs: tuple[str, ...],
    models: tuple[str, ...],
    text_field: str,
    device: str,
    precision: str,
    batch_size: int,
    json_out: str | None,
) -> None:
    """Each model's loss on the input text as a whole: nats per token and bits per
    character (the target scores PreSelect's --reference takes, as minus bits/char)."""
    from curation.io.inputs import InputError, kept_of_runs
    from curation.lm.train import check_checkpoint, models_text_loss
    from curation.scoring.classifier import read_texts

    inputs = tuple(_inputs(inputs, more_inputs))
    try:
        for folder in models:
            check_checkpoint(folder)
        aside: Counter[str] = Counter()
        sources = kept_of_runs(list(inputs), "score")
        texts = [t for t in read_texts(sources, text_field, aside) if t and t.strip()]
        _say_set_aside("--input", aside)
        if not texts:
            raise ValueError(f"no text to score in {', '.join(inputs)}")
        losses = models_text_loss(models, texts, device, precision, batch_size)
        rows = [{"model": folder, **loss} for folder, loss in zip(models, losses, strict=True)]
    except (InputError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    width = max(len("model"), *(len(r["model"]) for r in rows))
    click.echo(f"{'model':<{width}}  {'documents':>9}  {'tokens':>11}  loss/token  bits/char")
    for r in rows:
        click.echo(
            f"{r['model']:<{width}}  {r['documents']:>9,}  {r['tokens']:>11,}  "
            f"{r['loss']:>10.4f}  {r['bits_per_char']:>9.4f}"
        )
    references = " ".join(f"--reference {r['model']}={-r['bits_per_char']:.4f}" for r in rows)
    click.echo(f"as PreSelect's target scores (minus bits/char): {references}", err=True)
    if json_out:
        data = {"inputs": list(inputs), "text_field": text_field, "models": rows}
        Path(json_out).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


@main.command("train-preselect")
@_more_inputs
@click.option("--input", "inputs", multiple=True, help=f"documents to learn from; {_MORE_INPUTS}")
@click.option(
    "--reference",
    "references",
    multiple=True,
    required=True,
    help="CHECKPOINT=SCORE: a train-lm model and its target score (higher is better); "
    "with --target, CHECKPOINT alone",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="text to score each --reference on (minus its bits per character), repeatable",
)
@click.option("--target-text-field", default="text", show_default=True)
@click.option("--output", required=True, type=LocalPath(dir_okay=False), help="model.bin")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda")
@click.option("--arg", "args", multiple=True, help="a fastText argument as NAME=VALUE")
def train_preselect_command(
    more_inputs: tuple[str, ...],
    inputs: tuple[str, ...],
    references: tuple[str, ...],
    targets: tuple[str, ...],
    target_text_field: str,
    output: str,
    seed: int,
    text_field: str,
    device: str,
    args: tuple[str, ...],
) -> None:
    """Fit PreSelect's fastText scorer from reference models' bits per character."""
    from curation.io.inputs import InputError, kept_of_runs
    from curation.scoring.classifier import read_texts
    from curation.selectors.preselect import target_scores, train_preselect

    inputs = tuple(_inputs(inputs, more_inputs))

    folders, scores = list(references), []  # with --target, each is a checkpoint's path
    for at, item in enumerate([] if targets else references):
        folders[at], _, score = item.rpartition("=")
        try:
            scores.append(float(score))
        except ValueError:
            raise click.UsageError(
                f"--reference {item!r}: expected CHECKPOINT=SCORE, or give --target, text to "
                "score each checkpoint on"
            ) from None
    try:
        if targets:
            target = read_texts(kept_of_runs(list(targets), "score on"), target_text_field)
            scores = target_scores(folders, target, device, log=lambda m: click.echo(m, err=True))
        aside: Counter[str] = Counter()
        texts = list(read_texts(kept_of_runs(list(inputs), "train on"), text_field, aside))
        _say_set_aside("--input", aside)
        meta = train_preselect(
            texts,
            folders,
            scores,
            output,
            seed=seed,
            fasttext_args=_fasttext_overrides(args),
            device=device,
            log=lambda m: click.echo(m, err=True),
        )
    except (InputError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    m = meta["metrics"]
    click.echo(
        f"wrote {output}: {meta['positives']:,} positives, {meta['negatives']:,} negatives"
        + (f"; held-out AUC {m['auc']:.3f}" if "auc" in m else ""),
        err=True,
    )


@main.command("inspect")
@click.argument("path", type=click.Path())
@click.option("--where", help="SQL filter, e.g. \"lang = 'en' AND kenlm_perplexity < 300\"")
@click.option("--sort", help="sort by COLUMN (ascending) or -COLUMN (descending)")
@click.option(
    "--limit", type=click.IntRange(min=1), default=10, show_default=True, help="documents to show"
)
@click.option("--around", help="COLUMN=VALUE: documents just below and above VALUE")
@click.option(
    "--status",
    type=click.Choice(["all", "kept", "dropped"]),
    default="all",
    show_default=True,
    help="which documents to browse",
)
@click.option(
    "--bins", type=click.IntRange(min=1), default=20, show_default=True, help="histogram bins"
)
@click.option(
    "--by",
    help="count documents read and kept per value of a column or SQL expression, e.g. lang "
    "or \"split_part(url, '/', 3)\" (the --limit largest groups, with --where a part)",
)
@click.option(
    "--mean",
    "means",
    multiple=True,
    help="with --by: each group's mean of this numeric column or SQL expression, e.g. "
    "doc_stats_length (datatrove's statistics per domain); may be given again",
)
@click.option(
    "--spread",
    is_flag=True,
    help="with --mean: each group's standard deviation, least and largest value too",
)
def inspect_command(
    path: str,
    where: str | None,
    sort: str | None,
    limit: int,
    around: str | None,
    status: str,
    bins: int,
    by: str | None,
    means: tuple[str, ...],
    spread: bool,
) -> None:
    """Summarise a run folder or a shard: rows kept and dropped by stage and reason, the
    quantiles and a histogram of every score column; with --where, --sort or --around,
    show documents with their scores; with --by, documents kept per group (and with
    --mean, means per group; with --spread, standard deviations, least and largest)."""
    from curation.inspect import shards, terminal

    try:
        source = shards.open_source(path)
        with shards.reading(source):
            if by:
                if sort or around or status != "all":
                    raise click.UsageError("--by counts groups: give it alone or with --where")
                if spread and not means:
                    raise click.UsageError("--spread is the spread of each --mean: give --mean")
                found = shards.by_group(
                    source, by, where=where, limit=limit, means=means, spread=spread
                )
                click.echo(terminal.format_groups(found))
                return
            if means:
                raise click.UsageError("--mean is a mean per group: give --by too")
            if spread:
                raise click.UsageError("--spread is a spread per group: give --by and --mean")
            if where or sort or around or status != "all":
                frame = shards.browse(
                    source, where=where, sort=sort, limit=limit, around=around, status=status
                )
                focus = [c for c in [*(around or "").split("=")[:1], (sort or "").lstrip("-")] if c]
                columns = shards.score_columns(source.schema())
                focus += [c for c in columns if c not in focus][: max(0, 6 - len(focus))]
                click.echo(terminal.format_rows(frame, focus))
                return
            seen = shards.overview(source, bins)
        parquet = sum(map(shards.is_parquet, source.files))
        lines = len(source.files) - parquet
        kinds = [f"{n} {kind}" for n, kind in ((parquet, "Parquet"), (lines, "JSON Lines")) if n]
        click.echo(f"{source.path}: {' and '.join(kinds) or 'no'} file(s)")
        if partitions := (source.stats or {}).get("partitions"):
            click.echo(terminal.format_partitions(partitions))
        if source.unfinished:
            click.echo(source.unfinished_line())
        click.echo(terminal.format_funnel(seen.stages))
        click.echo()
        click.echo(terminal.format_summaries(seen.summaries, seen.lines))
    except shards.InspectError as err:
        raise click.ClickException(str(err)) from None


@main.command("report")
@click.argument("path", type=click.Path())
@click.option(
    "-o",
    "--output",
    type=LocalPath(dir_okay=False),
    default="report.html",
    show_default=True,
    help="HTML file",
)
def report_command(path: str, output: str) -> None:
    """Write one self-contained HTML page about a run folder or a shard: score histograms
    with threshold lines, the drop funnel, the sites with the most documents (rows with a
    url), example documents for every drop reason."""
    from curation.inspect import report, shards

    try:
        source = shards.open_source(path)
        with shards.reading(source):
            written = report.write_report(source, output)
    except shards.InspectError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {written} ({written.stat().st_size / 1e3:,.0f} kB)", err=True)


@main.command("export")
@click.argument("run", type=click.Path())
@click.option("--repo-id", help="ORG/NAME of the Hub dataset repo to push to")
@click.option(
    "--to-folder",
    type=LocalPath(file_okay=False, hint="--repo-id pushes to the Hub"),
    help="write the Hub layout here",
)
@click.option(
    "--split",
    default="train",
    show_default=True,
    help="split of the files; into a repo with other splits (--force), it joins them",
)
@click.option("--max-shard-size", default="500MB", show_default=True, help="Arrow bytes a file")
@click.option("--private", is_flag=True, help="create the repo as private")
@click.option(
    "--license",
    "license_id",
    help="card license [default: other, or the license of the card exported into]",
)
@click.option(
    "--force",
    is_flag=True,
    help="export into an existing repo or non-empty --to-folder (the split's files replaced)",
)
@click.option(
    "--where",
    help="export only the kept rows for which this SQL condition is true (curate inspect "
    "--where's dialect), e.g. \"lang = 'fr'\" with --config fr",
)
@click.option(
    "--config",
    default="default",
    show_default=True,
    help="the dataset config (subset) the split goes to: load_dataset(REPO, CONFIG); another "
    "than default keeps its files in data/CONFIG/ and images/CONFIG/",
)
@click.option(
    "--config-by",
    metavar="COLUMN",
    help="a config for each value of this column (a struct's field with dots), named after "
    "it, all in one push: --config-by lang gives the configs en, fr, ... (null and '' "
    "make null); fastest on a run with output: {partition_by: COLUMN}",
)
def export_command(
    run: str,
    repo_id: str | None,
    to_folder: str | None,
    split: str,
    max_shard_size: str,
    private: bool,
    license_id: str | None,
    force: bool,
    where: str | None,
    config: str,
    config_by: str | None,
) -> None:
    """Export a run's kept documents in the Hugging Face Hub dataset layout (Parquet
    shards, a dataset card with the recipe, the funnel and score histograms) and push it
    with the token of HF_TOKEN or `hf auth login` (HF_ENDPOINT picks another Hub)."""
    from curation.inspect.shards import InspectError
    from curation.io.hub import ExportError, export, redact

    try:
        result = export(
            run,
            repo_id=repo_id,
            to_folder=to_folder,
            split=split,
            max_shard_size=max_shard_size,
            private=private,
            force=force,
            license_id=license_id,
            where=where,
            config=config,
            config_by=config_by,
            log=lambda m: click.echo(m, err=True),
        )
    except (ExportError, InspectError) as err:
        raise click.ClickException(redact(str(err), None)) from None
    rows = sum(s["rows"] for s in result["shards"])
    where = [w for w in (result["folder"], result["commit_url"]) if w]
    configs = ""
    if config_by is not None:
        from curation.inspect.terminal import largest

        counts = result["configs"]
        configs = f" as {len(counts)} configs ({largest(counts)})"
    click.echo(
        f"exported {rows:,} rows in {len(result['shards'])} file(s){configs} to {', '.join(where)}",
        err=True,
    )


@main.command("tokenize")
@_more_inputs
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help=f"file, directory, glob, URL or a run folder (its kept documents); {_MORE_INPUTS}",
)
@click.option(
    "--tokenizer",
    required=True,
    help="a tokenizers JSON file (tokenizer.json), a SentencePiece .model, or a folder "
    "holding one (a `curate train-lm` checkpoint)",
)
@click.option(
    "--output",
    required=True,
    type=LocalPath(file_okay=False),
    help="folder of token files (part-*.ds, .ds.index, .ds.metadata) and tokenize.json",
)
@click.option(
    "--eos",
    help="token that ends every document, as the vocabulary writes it (<|endoftext|>, </s>)",
)
@click.option(
    "--bos",
    help="token that begins every document (<s>, <|begin_of_text|>); with --bos or --eos a "
    "tokenizer.json's own post-processor is replaced",
)
@click.option(
    "--output-format",
    type=click.Choice(["datatrove", "megatron"]),
    default="datatrove",
    show_default=True,
    help="datatrove: .ds, .ds.index, .ds.metadata (nanotron reads them); megatron: .bin and "
    ".idx (Megatron-LM's and NeMo's indexed dataset)",
)
@click.option(
    "--shuffle/--no-shuffle",
    default=True,
    show_default=True,
    help="shuffle the documents within each file (seeded, the same on every executor)",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--merge",
    is_flag=True,
    help="then shuffle all units' documents together into merged-KKKKK files (datatrove's "
    "DocumentTokenizerMerger), so that a trainer reading the files in order sees the "
    "sources mixed",
)
@click.option(
    "--ids",
    is_flag=True,
    help="beside each token file, its documents' ids and token counts in its order "
    "(<name>.ids.parquet)",
)
@click.option(
    "--max-tokens-per-file",
    type=click.IntRange(min=1),
    help="cut each input unit's documents (with --merge, all of them) into files of at most "
    "this many tokens",
)
@click.option("--text-field", default="text", show_default=True)
@click.option(
    "--where",
    help="only the documents for which this SQL condition over their columns is true "
    "(curate inspect --where's dialect), e.g. \"lang = 'en'\"; the others are set aside "
    "as tokenize:where",
)
@click.option(
    "--copies/--no-copies",
    default=True,
    show_default=True,
    help="write a document as many times as its mix_copies column says (a mix stage's "
    "repeats of scarce parts), each copy shuffled apart; --no-copies: once",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: in this process, on the tokenizer's threads; ray: a one-CPU Ray task a unit",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="CPUs of the embedded Ray cluster (default: all)",
)
@click.option(
    "--ray-address",
    help="an existing Ray cluster (implies --executor ray; default: RAY_ADDRESS, else an "
    "embedded one)",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace an earlier tokenization in --output (without it, an unfinished one of the "
    "same inputs and options is resumed)",
)
@click.option("--quiet", is_flag=True, help="no progress display")
def tokenize_command(
    more_inputs: tuple[str, ...],
    inputs: tuple[str, ...],
    tokenizer: str,
    output: str,
    eos: str | None,
    bos: str | None,
    output_format: str,
    shuffle: bool,
    seed: int,
    merge: bool,
    ids: bool,
    max_tokens_per_file: int | None,
    text_field: str,
    where: str | None,
    copies: bool,
    executor: str,
    workers: int | None,
    ray_address: str | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Tokenize documents into token files for training (datatrove's .ds files, which
    nanotron reads, or Megatron's .bin and .idx): a run's kept documents, or any input."""
    from curation.io.inputs import InputError
    from curation.io.tokens import TokenizeError, TokenizeOptions, TokenizerSpec, tokenize
    from curation.recipe import InputSpec
    from curation.runtime.executors import ClusterUnreachable

    paths = _inputs(inputs, more_inputs)
    if executor == "local" and workers:
        raise click.UsageError("--workers goes with --executor ray")
    options = TokenizeOptions(
        TokenizerSpec(tokenizer, eos, bos),
        shuffle,
        seed,
        max_tokens_per_file=max_tokens_per_file,
        format=output_format,
        merge=merge,
        ids=ids,
        where=where,
        copies=copies,
    )
    try:
        data = tokenize(
            paths,
            output,
            options,
            InputSpec(text_field=text_field),
            executor,
            workers,
            ray_address,
            overwrite,
            progress=not quiet,
        )
    except (TokenizeError, InputError, ClusterUnreachable) as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: the units finished are kept in {output}; run the same command "
            "to resume from them (--overwrite starts again)",
            err=True,
        )
        sys.exit(130)
    docs = data["documents"]
    aside = sum(docs["set_aside"].values())
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in docs["set_aside"].items())
    repeats = f" (and {docs['repeats']:,} repeats)" if docs.get("repeats") else ""
    click.echo(
        f"wrote {output}: {docs['written']:,} documents{repeats}, {data['tokens']:,} tokens "
        f"({data['dtype']}) in {len(data['files']):,} file(s), {data['seconds']:.1f} s"
        + (f"; set aside {aside:,} ({reasons})" if aside else ""),
        err=True,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
