"""fastText classifiers: trained on the DCLM human quality labels, applied as a stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curation.recipe import RecipeError
from curation.scoring.classifier import roc_auc, train_classifier
from tests.conftest import read_output, recipe_of, run_local, shared_file


def labelled() -> tuple[list[str], list[str]]:
    rows = [
        json.loads(line)
        for line in shared_file("quality/dclm-human-quality-majority.jsonl")
        .read_text()
        .splitlines()
    ]
    return [r["text"] for r in rows if r["label"] == 1], [
        r["text"] for r in rows if r["label"] == 0
    ]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    good, bad = labelled()
    path = tmp_path_factory.mktemp("fasttext") / "quality.bin"
    train_classifier(good, bad, path, held_out=0.2, seed=0)
    return path


def test_held_out_metrics_are_recorded_and_better_than_chance(classifier: Path) -> None:
    meta = json.loads(Path(f"{classifier}.json").read_text())
    metrics = meta["metrics"]
    assert metrics["held_out"] == round(0.2 * 272) + round(0.2 * 227)
    assert metrics["auc"] > 0.6
    assert meta["fasttext_args"]["wordNgrams"] == 2
    assert meta["labels"] == ["hq", "lq"]


def test_stage_writes_every_label_probability_and_filters(
    classifier: Path, c4_path: Path, tmp_path: Path
) -> None:
    recipe = f"stages:\n  - fasttext_classifier: {{model: '{classifier}', name: quality}}\n"
    run_local(recipe_of(recipe, c4_path), tmp_path / "all")
    kept = read_output(tmp_path / "all", "kept")
    hq = np.array(kept["quality_hq_prob"].to_pylist())
    lq = np.array(kept["quality_lq_prob"].to_pylist())
    assert kept.num_rows == 1000
    assert np.allclose(hq + lq, 1.0, atol=1e-3)
    recipe = (
        f"stages:\n  - fasttext_classifier: {{model: '{classifier}', name: quality, "
        "label: hq, min_prob: 0.5}\n"
    )
    stats = run_local(recipe_of(recipe, c4_path), tmp_path / "hq")
    kept_ids = set(read_output(tmp_path / "hq", "kept")["id"].to_pylist())
    assert kept_ids == {i for i, p in zip(kept["id"].to_pylist(), hq, strict=True) if p >= 0.5}
    assert stats["stages"][1]["dropped_by_reason"].keys() <= {"fasttext_classifier:low_prob"}


def test_missing_or_corrupt_model_is_named_when_the_recipe_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "none.bin"
    with pytest.raises(RecipeError, match=f"{missing} does not exist"):
        recipe_of(f"stages:\n  - fasttext_classifier: {{model: '{missing}'}}\n", "/no/input")
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(RecipeError, match=f"{corrupt} is not a fastText model"):
        recipe_of(f"stages:\n  - fasttext_classifier: {{model: '{corrupt}'}}\n", "/no/input")


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40))
def test_auc_is_the_share_of_correctly_ordered_pairs(pairs: list[tuple[bool, int]]) -> None:
    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs], dtype=float)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        assert np.isnan(roc_auc(labels, scores))
        return
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(labels, scores) == pytest.approx(expected)


def test_a_classifier_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    """The loader caches per version of the file, not per path: a model retrained to the
    same path in the same process (a recipe's models: section, a second train-fasttext)
    is the one that scores."""
    from curation.scoring.classifier import load_classifier, positive_probability

    path = tmp_path / "model.bin"
    whale, tea = ["the whale and the sea ship"] * 40, ["tea and cake in the parlour"] * 40
    train_classifier(whale, tea, path, labels=("pos", "neg"), seed=0,
                     fasttext_args={"epoch": 25, "lr": 0.5})  # fmt: skip
    first = positive_probability(load_classifier(str(path)), ["the whale and the sea"], "pos")
    train_classifier(tea, whale, path, labels=("pos", "neg"), seed=0,
                     fasttext_args={"epoch": 25, "lr": 0.5})  # fmt: skip
    second = positive_probability(load_classifier(str(path)), ["the whale and the sea"], "pos")
    assert first[0] > 0.9 and second[0] < 0.1


def test_an_underfit_classifier_is_named_and_a_fitted_one_is_not(tmp_path: Path) -> None:
    """A few dozen examples at fastText's lr 0.1 for 3 epochs barely move the
    probabilities from one half: ``fit_warning`` says so and what to change."""
    from curation.scoring.classifier import fit_warning

    good, bad = labelled()
    under = train_classifier(good, bad, tmp_path / "under.bin", held_out=0.3,
                             fasttext_args={"epoch": 3, "lr": 0.1})["metrics"]  # fmt: skip
    assert under["spread"] < 0.05
    assert "underfit" in fit_warning(under) and "epoch" in fit_warning(under)
    fitted = train_classifier(good, bad, tmp_path / "fitted.bin", held_out=0.3,
                              fasttext_args={"epoch": 50, "lr": 0.5})["metrics"]  # fmt: skip
    assert fitted["spread"] > 0.5 and fit_warning(fitted) is None


def test_a_classifier_needs_documents_of_both_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no lq documents"):
        train_classifier(["a good document"], [], tmp_path / "m.bin")
    with pytest.raises(ValueError, match="no hq documents"):
        train_classifier([], ["a bad one"], tmp_path / "m.bin")
    assert not (tmp_path / "m.bin").exists()
