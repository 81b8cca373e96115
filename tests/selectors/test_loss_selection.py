"""CoLoR-Filter and PreSelect on real text: a prior trained on C4, the prior fine-tuned on
one book (the target), a pool of C4 documents and unseen chunks of that book. Both
selectors must prefer the book; PreSelect's predictive strength is Kendall's tau."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau

from curation.lm.train import TrainConfig, document_losses, load_lm, train_lm
from curation.recipe import parse_recipe
from curation.runtime.models import build_models
from curation.selectors.preselect import choose_examples, predictive_strength
from tests.conftest import c4_texts, read_output, recipe_of, run_local, shared_file

QUICK = TrainConfig(steps=40, batch_size=8, warmup_steps=5, seed=0)
BOOK = "reference/gutenberg-1342-pride-and-prejudice.txt"


def book_chunks() -> list[str]:
    text = shared_file(BOOK).read_text(encoding="utf-8")
    return [text[i : i + 1200] for i in range(20_000, 20_000 + 1200 * 120, 1200)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """prior (C4), conditional (prior + 60 book chunks), and a C4-only model trained less."""
    root = tmp_path_factory.mktemp("selection")
    quiet = {"log": lambda m: None}
    train_lm(c4_texts(0, 400), root / "prior", preset="tiny", train=QUICK, vocab_size=1200,
             **quiet)  # fmt: skip
    train_lm(book_chunks()[:60], root / "conditional", init=root / "prior", train=QUICK, **quiet)
    short = TrainConfig(steps=10, batch_size=8, warmup_steps=2, seed=0)
    train_lm(book_chunks()[:60], root / "weak", init=root / "prior", train=short, **quiet)
    return {"prior": root / "prior", "conditional": root / "conditional", "weak": root / "weak"}


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """100 unseen C4 documents and 40 unseen book chunks, in two Parquet shards."""
    docs = [{"id": f"c4/{i}", "text": t} for i, t in enumerate(c4_texts(500, 100))]
    docs += [{"id": f"book/{i}", "text": t} for i, t in enumerate(book_chunks()[80:120])]
    folder = tmp_path_factory.mktemp("pool")
    for shard in range(2):
        pq.write_table(pa.Table.from_pylist(docs[shard::2]), folder / f"part-{shard}.parquet")
    return folder, docs


def test_color_filter_keeps_the_target_like_top_of_the_whole_pool(
    models: dict[str, Path], pool: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    folder, docs = pool
    recipe = recipe_of(
        f"stages:\n  - color_filter: {{prior: '{models['prior']}', "
        f"conditional: '{models['conditional']}', tau: 4}}\n",
        folder,
    )
    stats = run_local(recipe, tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    assert len(kept) == math.ceil(len(docs) / 4)
    assert {r["drop_reason"] for r in dropped} == {"color_filter:below_cut"}
    stage = stats["stages"][0]
    assert stage["rows_in"] == len(kept) + len(dropped) == len(docs)
    scores = {r["id"]: r["color_filter_score"] for r in kept + dropped}
    book = [s for i, s in scores.items() if i.startswith("book/")]
    web = [s for i, s in scores.items() if i.startswith("c4/")]
    assert np.mean(book) > np.mean(web)  # the sign: target-like documents score higher
    assert min(scores[r["id"]] for r in kept) >= max(scores[r["id"]] for r in dropped)
    assert sum(r["id"].startswith("book/") for r in kept) >= 0.9 * len(kept)
    for row in kept:
        expected = row["color_filter_prior_loss"] - row["color_filter_conditional_loss"]
        assert row["color_filter_score"] == pytest.approx(expected)


def test_lm_loss_stage_writes_the_scorers_numbers(
    models: dict[str, Path], pool: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    folder, docs = pool
    recipe = recipe_of(f"stages:\n  - lm_loss: {{model: '{models['prior']}'}}\n", folder)
    run_local(recipe, tmp_path / "out")
    kept = {r["id"]: r for r in read_output(tmp_path / "out", "kept").to_pylist()}
    assert len(kept) == len(docs)
    direct = document_losses(load_lm(models["prior"], "cpu"), [d["text"] for d in docs[:10]])
    for i, doc in enumerate(docs[:10]):
        row = kept[doc["id"]]
        assert row["lm_tokens"] == direct["tokens"][i]
        assert row["lm_loss_mean"] == pytest.approx(direct["loss_mean"][i], rel=1e-5)
        assert row["lm_bpc"] == pytest.approx(direct["bpc"][i], rel=1e-5)


def test_lm_loss_stage_scores_at_the_precision_asked(
    models: dict[str, Path], pool: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    folder, _ = pool
    stage = f"lm_loss: {{model: '{models['prior']}', precision: bf16, batch_size: 16}}"
    run_local(recipe_of(f"stages:\n  - {stage}\n", folder), tmp_path / "out")
    kept = {r["id"]: r["lm_loss_sum"] for r in read_output(tmp_path / "out", "kept").to_pylist()}
    shard = pq.read_table(folder / "part-0.parquet").to_pylist()  # one batch, as the stage
    texts = [d["text"] for d in shard]
    half = document_losses(load_lm(models["prior"], "cpu", precision="bf16"), texts, 16)
    full = document_losses(load_lm(models["prior"], "cpu"), texts, 16)
    written = np.array([kept[d["id"]] for d in shard])
    np.testing.assert_allclose(written, half["loss_sum"], rtol=1e-7)
    assert np.abs(written / full["loss_sum"] - 1).max() > 1e-5  # not the fp32 numbers


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 7).flatmap(lambda k: st.tuples(
    st.permutations(list(range(k))), st.lists(st.permutations(list(range(k))), min_size=1,
                                              max_size=5))))  # fmt: skip
def test_predictive_strength_is_kendalls_tau_without_ties(case: tuple) -> None:
    scores, rows = case
    bpc = np.array(rows, dtype=float) * 0.1 + 1.0
    strength = predictive_strength(bpc, scores)
    pairs = len(scores) * (len(scores) - 1) // 2
    for row, value in zip(bpc, strength, strict=True):
        tau = kendalltau(scores, -row).statistic
        assert value == pytest.approx((1 + tau) / 2 * pairs)


def test_examples_are_the_perfectly_and_least_ordered_documents() -> None:
    strength = np.array([3, 0, 1, 3, 2, 0, 3, 1])
    positives, negatives = choose_examples(strength, pairs=3, seed=1)
    assert set(positives) == {0, 3, 6}
    assert set(negatives) <= {1, 5, 2, 7} and {1, 5} <= set(negatives) and len(negatives) == 3
    with pytest.raises(ValueError, match="no document is ordered"):
        choose_examples(np.array([0, 1, 2]), pairs=3)


def preselect_section(out: Path, entry: str) -> tuple:
    """The models: section of a recipe that fits a PreSelect scorer to ``out`` as the
    flow mapping ``entry`` (its settings, without braces) says."""
    return parse_recipe(
        f"models:\n  {out}:\n    train_preselect: {{{entry}}}\n"
        "stages:\n  - length_filter: {min_chars: 1}\n",
        "r.yaml",
    ).models


def test_preselect_fits_on_reference_models_and_keeps_the_target(
    models: dict[str, Path], pool: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    folder, docs = pool
    # target scores: minus each model's loss on book text none of them trained on
    held = book_chunks()[60:80]
    references = [models["prior"], models["weak"], models["conditional"]]
    scores = [-float(np.nanmean(document_losses(load_lm(r, "cpu"), held)["loss_mean"]))
              for r in references]  # fmt: skip
    assert scores[0] < scores[1] < scores[2]
    probe = c4_texts(200, 150) + book_chunks()[:60]
    # fitted as a recipe's models: section does it, with PreSelect's fastText settings
    # overridden (its 3 epochs leave so small a sample underfit)
    lines = "".join(json.dumps({"text": t}) + "\n" for t in probe)
    Path(tmp_path / "probe.jsonl").write_text(lines)
    refs = ", ".join(f"'{r}': {s}" for r, s in zip(references, scores, strict=True))
    section = preselect_section(
        tmp_path / "preselect.bin",
        f"input: ['{tmp_path / 'probe.jsonl'}'], references: {{{refs}}}, "
        "fasttext_args: {epoch: 25, lr: 1.0}",
    )
    messages: list[str] = []
    build_models(section, [], "text", log=messages.append)
    meta = json.loads(Path(f"{tmp_path / 'preselect.bin'}.json").read_text())
    assert meta["trained_on"]["positives"] == meta["trained_on"]["negatives"] > 0
    assert meta["fasttext_args"]["epoch"] == 25 and meta["fasttext_args"]["wordNgrams"] == 2
    assert meta["metrics"]["spread"] > 0.3
    assert not any("underfit" in m for m in messages), messages
    recipe = recipe_of(
        f"stages:\n  - preselect: {{model: '{tmp_path / 'preselect.bin'}', top_fraction: 0.2}}\n",
        folder,
    )
    run_local(recipe, tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    total = sum(len(d["text"]) for d in docs)
    chars = sorted(len(r["text"]) for r in kept)
    assert sum(chars) >= 0.2 * total > sum(chars) - max(chars)  # shortest prefix reaching 20%
    assert sum(r["id"].startswith("book/") for r in kept) >= 0.8 * len(kept)


def test_reference_scores_measured_on_target_text(models: dict[str, Path], tmp_path: Path) -> None:
    """References listed with a target, in a recipe and on the command line: each scored
    minus its bits per character on the target text (what `curate eval-lm` prints), the
    scorer then fitted on those scores; a list without a target, or scores and a target
    both, are refused."""
    from click.testing import CliRunner

    from curation.cli import main
    from curation.lm.train import text_loss
    from curation.recipe import RecipeError

    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in book_chunks()[60:80]))
    probe = tmp_path / "probe.jsonl"
    probe.write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in c4_texts(200, 150) + book_chunks()[:60])
    )
    references = [models["prior"], models["weak"], models["conditional"]]
    expected = [-text_loss(load_lm(r, "cpu"), book_chunks()[60:80])["bits_per_char"]
                for r in references]  # fmt: skip
    assert expected[0] < expected[1] < expected[2]  # the book-tuned models predict it better
    listed = ", ".join(f"'{r}'" for r in references)
    out = tmp_path / "preselect.bin"
    section = preselect_section(
        out,
        f"input: ['{probe}'], references: [{listed}], target: ['{target}'], "
        "fasttext_args: {epoch: 25, lr: 1.0}",
    )
    messages: list[str] = []
    build_models(section, [], "text", log=messages.append)
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["trained_on"]["target_scores"] == pytest.approx(expected, rel=1e-9)
    said = f"train-preselect: {models['weak']}: target score {expected[1]:.4f} (minus bits/char)"
    assert said in messages
    record = json.loads(Path(f"{out}.build.json").read_text())
    assert str(target) in record["reads"]  # a changed target rebuilds the scorer

    result = CliRunner().invoke(
        main,
        ["train-preselect", "--input", str(probe), "--output", str(tmp_path / "cli.bin"),
         *(x for r in references for x in ("--reference", str(r))), "--target", str(target),
         "--device", "cpu", "--arg", "epoch=25", "--arg", "lr=1.0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cli_meta = json.loads(Path(f"{tmp_path / 'cli.bin'}.json").read_text())
    assert cli_meta["trained_on"]["target_scores"] == meta["trained_on"]["target_scores"]
    bare = CliRunner().invoke(
        main,
        ["train-preselect", "--input", str(probe), "--output", str(tmp_path / "x.bin"),
         "--reference", str(references[0]), "--reference", str(references[1])],
    )  # fmt: skip
    assert bare.exit_code == 2 and "or give --target" in bare.output

    for entry, why in (
        (f"references: [{listed}]", "references without scores need target"),
        (f"references: {{'{references[0]}': 1, '{references[1]}': 2}}, target: ['{target}']",
         "not both"),
    ):  # fmt: skip
        with pytest.raises(RecipeError, match=why):
            preselect_section(out, f"input: ['{probe}'], {entry}")
