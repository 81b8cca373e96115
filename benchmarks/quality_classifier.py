"""Quality classifier on the DCLM human labels: 5-fold cross-validation, with baselines.

Data: ../shared/data/quality/dclm-human-quality-majority.jsonl (499 web documents, 272
good, 227 bad). For each of 5 stratified folds (seeded), a fastText classifier is trained
the DCLM way (``train_classifier``: word bigrams, fastText defaults otherwise, no held-out
split inside) on the other four folds and scored on this one: accuracy at probability 0.5
and ROC AUC of the good-label probability. Baselines on the same documents: Gopher's
quality rules alone (kept = good; AUC of that yes/no), and the heuristic chain Gopher
quality + repetition + C4 + FineWeb rules.

    .venv/bin/python benchmarks/quality_classifier.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation.batch import conform, kept_mask
from curation.scoring.classifier import (
    flatten,
    load_classifier,
    positive_probability,
    roc_auc,
    train_classifier,
)
from curation.stage import registry

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number of each document, stratified by label."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for value in (True, False):
        members = rng.permutation(np.flatnonzero(labels == value))
        fold[members] = np.arange(len(members)) % k
    return fold


def rules_keep(texts: list[str], names: list[str]) -> np.ndarray:
    """Whether each text survives the named filter stages (defaults), in order."""
    stages = registry()
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    for name in names:
        stage = stages[name](stages[name].Params())
        stage.setup()
        live = table.filter(kept_mask(table))
        done = stage.process(live)
        reasons = dict(zip(done["id"].to_pylist(), done["drop_reason"].to_pylist(), strict=True))
        table = table.set_column(
            2,
            "drop_reason",
            pa.array(
                [
                    reasons.get(i, r)
                    for i, r in zip(
                        table["id"].to_pylist(), table["drop_reason"].to_pylist(), strict=True
                    )
                ]
            ),
        )
    return np.asarray(kept_mask(table))


def main() -> None:
    rows = [json.loads(x) for x in open(SHARED / "quality" / "dclm-human-quality-majority.jsonl")]
    texts = [r["text"] for r in rows]
    labels = np.array([r["label"] == 1 for r in rows])
    fold = folds(labels, 5, seed=0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, args in (("defaults", {}), ("epoch 25", {"epoch": 25})):
            accuracy, auc = [], []
            for k in range(5):
                train, test = fold != k, fold == k
                path = Path(tmp) / f"fold{k}.bin"
                train_classifier(
                    [t for t, x, good in zip(texts, train, labels, strict=True) if x and good],
                    [t for t, x, good in zip(texts, train, labels, strict=True) if x and not good],
                    path,
                    held_out=0.0,
                    seed=k,
                    fasttext_args=args,
                )
                load_classifier.cache_clear()
                model = load_classifier(str(path))
                chosen = flatten(pa.array([t for t, x in zip(texts, test, strict=True) if x]))
                probs = positive_probability(model, chosen, "hq")
                accuracy.append(float(((probs >= 0.5) == labels[test]).mean()))
                auc.append(roc_auc(labels[test], probs))
            results[variant] = (accuracy, auc)
    print(f"# {len(texts)} documents ({labels.sum()} good), 5 stratified folds, seed 0\n")
    print("| method | accuracy | ROC AUC |")
    print("|---|---:|---:|")
    for variant, (accuracy, auc) in results.items():
        print(
            f"| fastText, DCLM recipe, {variant} (mean of 5 folds, min-max) | "
            f"{np.mean(accuracy):.3f} ({min(accuracy):.3f}-{max(accuracy):.3f}) | "
            f"{np.mean(auc):.3f} ({min(auc):.3f}-{max(auc):.3f}) |"
        )
    for label, names in (
        ("Gopher quality rules only", ["gopher_quality"]),
        (
            "Gopher quality + repetition + C4 + FineWeb rules",
            ["gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality"],
        ),
    ):
        keep = rules_keep(texts, names)
        print(
            f"| {label} (kept = good) | {float((keep == labels).mean()):.3f} | "
            f"{roc_auc(labels, keep.astype(float)):.3f} |"
        )
    print(f"| always 'good' | {labels.mean():.3f} | 0.500 |")


if __name__ == "__main__":
    main()
