"""fastText quality classifiers trained by the engine (DCLM's recipe), and their stage.

Training (``curate train-fasttext``): each document becomes one line ``__label__<label>
<text>`` with its newlines replaced by spaces (as DCLM does; the stage does the same
before predicting), positives labelled ``hq`` and negatives ``lq`` by default. A seeded
``held_out`` share of each class is kept out of training; the model is trained with word
bigrams and fastText's defaults otherwise (every fastText argument can be overridden),
and its precision, recall and ROC AUC on the held-out documents are reported and stored
beside the model in ``<model>.json``.

Stage ``fasttext_classifier``: writes ``<name>_<label>_prob`` for every label of the model
(one batched ``predict`` per batch, all labels), and with ``label`` and ``min_prob`` drops
documents whose probability for that label is lower (``fasttext_classifier:low_prob``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curation.batch import TEXT, with_drop_reason
from curation.io.readers import live_texts
from curation.stage import MapStage, StageParams, register

PREFIX = "__label__"


class ClassifierError(ValueError):
    """A classifier model is missing or unreadable; the message names the file."""


def flatten(texts: pa.Array | pa.ChunkedArray) -> list[str]:
    """Texts as fastText reads them: one line each, newlines as spaces."""
    one_line = pc.replace_substring_regex(pc.fill_null(texts, ""), r"[\r\n]+", " ")
    return one_line.to_pylist()


def load_classifier(path: str) -> Any:
    """Load a fastText model, once per process per version of the file (a file rewritten
    in place, as a recipe's ``models:`` section or a second ``train-fasttext`` does, is
    read again); ``ClassifierError`` names a missing or bad file."""
    if not Path(path).is_file():
        raise ClassifierError(
            f"classifier {path} does not exist: train one with `curate train-fasttext`"
        )
    stat = Path(path).stat()
    return _load_version(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load_version(path: str, mtime_ns: int, size: int) -> Any:
    """The model at ``path`` as it was at (``mtime_ns``, ``size``): the cache key."""
    import fasttext

    try:
        return fasttext.load_model(path)
    except (ValueError, RuntimeError, MemoryError) as err:
        raise ClassifierError(f"classifier {path} is not a fastText model: {err}") from None


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half)."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = np.asarray(scores)[order]
    start = 0
    while start < len(sorted_scores):  # average ranks over ties
        stop = start
        while stop + 1 < len(sorted_scores) and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def train_classifier(
    positives: list[str],
    negatives: list[str],
    output: str | Path,
    labels: tuple[str, str] = ("hq", "lq"),
    held_out: float = 0.1,
    seed: int = 0,
    fasttext_args: dict[str, Any] | None = None,
    trained_on: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on ``positives`` / ``negatives`` texts; write the model and its metrics.

    Returns the metrics on the held-out share (``precision``, ``recall``, ``auc``,
    ``accuracy`` for the positive label at probability 0.5, and ``spread``: the 5th to
    95th percentile range of its probability) with the settings used.
    """
    import fasttext

    for label, group in zip(labels, (positives, negatives), strict=True):
        if not group:
            raise ValueError(f"no {label} documents: a classifier needs documents of both labels")
    rng = np.random.default_rng(seed)
    texts = flatten(pa.array(positives + negatives, pa.large_string()))
    is_positive = np.array([True] * len(positives) + [False] * len(negatives))
    test = np.zeros(len(texts), dtype=bool)
    for group in (np.flatnonzero(is_positive), np.flatnonzero(~is_positive)):
        count = round(held_out * len(group))
        test[rng.choice(group, size=count, replace=False)] = True
    args = {"wordNgrams": 2, "seed": seed, "verbose": 0, "thread": 1, **(fasttext_args or {})}
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        order = rng.permutation(np.flatnonzero(~test))
        with open(train_file, "w", encoding="utf-8") as handle:
            for i in order:
                label = labels[0] if is_positive[i] else labels[1]
                handle.write(f"{PREFIX}{label} {texts[i]}\n")
        model = fasttext.train_supervised(input=str(train_file), **args)
    metrics: dict[str, Any] = {"train": int((~test).sum()), "held_out": int(test.sum())}
    if test.any():
        probs = positive_probability(model, [texts[i] for i in np.flatnonzero(test)], labels[0])
        truth = is_positive[test]
        predicted = probs >= 0.5
        hits = int((predicted & truth).sum())
        metrics.update(
            precision=round(hits / max(int(predicted.sum()), 1), 4),
            recall=round(hits / max(int(truth.sum()), 1), 4),
            accuracy=round(float((predicted == truth).mean()), 4),
            auc=round(roc_auc(truth, probs), 4),
            spread=round(float(np.subtract(*np.quantile(probs, [0.95, 0.05]))), 4),
        )
    tmp_model = out.with_name(out.name + ".tmp")
    model.save_model(str(tmp_model))
    tmp_model.replace(out)
    meta = {
        "labels": list(labels),
        "positive_label": labels[0],
        "preprocessing": "newlines replaced by one space",
        "fasttext_args": {k: v for k, v in args.items() if k != "verbose"},
        "metrics": metrics,
        "trained_on": trained_on or {},
        "seconds": round(time.time() - started, 1),
    }
    Path(f"{out}.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


#: Below this held-out probability spread (p95 - p5) a classifier is called underfit.
MIN_SPREAD = 0.05


def fit_warning(metrics: dict[str, Any]) -> str | None:
    """What to tell the user when a classifier's held-out probabilities barely move from
    where they started (spread below ``MIN_SPREAD``): it ranks by tiny margins, a top cut
    can lean toward short documents (an average of few word vectors lands in the tails more
    often), and a threshold such as ``min_prob: 0.5`` cuts at random. ``None`` when it is
    fitted."""
    spread = metrics.get("spread")
    if spread is None or spread >= MIN_SPREAD:
        return None
    return (
        f"warning: the held-out probabilities span only {spread:.4f} (5th to 95th percentile): "
        f"the classifier is underfit for {metrics['train']:,} training documents and ranks by "
        "tiny margins; a top cut can lean toward short documents. Give it more passes or a "
        "larger learning rate (fastText's epoch and lr, e.g. epoch=25)"
    )


def positive_probability(model: Any, texts: list[str], label: str) -> np.ndarray:
    """Probability of ``label`` for each one-line text."""
    names, probs = model.predict(texts, k=-1)
    wanted = PREFIX + label
    return np.array(
        [dict(zip(n, p, strict=True)).get(wanted, 0.0) for n, p in zip(names, probs, strict=True)]
    )


def read_texts(
    paths: list[str], text_field: str, set_aside: Counter[str] | None = None
) -> Iterator[str]:
    """Texts of the live documents of ``paths`` (any input format the engine reads); the
    rows the reader sets aside counted by reason in ``set_aside`` when it is given."""
    for texts in live_texts(paths, text_field, set_aside):
        yield from texts.to_pylist()


# --------------------------------------------------------------------------- the stage


class ClassifierParams(StageParams):
    file_params: ClassVar[tuple[str, ...]] = ("model",)
    model: str = Field(..., description="a fastText model (`curate train-fasttext`)")
    name: str = Field("fasttext", description="column prefix: <name>_<label>_prob")
    label: str | None = Field(None, description="with min_prob: the label to filter on")
    min_prob: float | None = Field(None, ge=0, le=1, description="drop below this probability")

    @model_validator(mode="after")
    def _model_loads(self) -> ClassifierParams:
        model = load_classifier(self.model)
        if (self.label is None) != (self.min_prob is None):
            raise ValueError("give label and min_prob together")
        known = [name[len(PREFIX) :] for name in model.get_labels()]
        if self.label is not None and self.label not in known:
            raise ValueError(f"{self.model} has no label {self.label!r}; its labels: {known}")
        return self


def label_probabilities(
    model: Any, labels: list[str], texts: pa.Array | pa.ChunkedArray
) -> np.ndarray:
    """Probability of each of ``labels`` (names without ``__label__``; the model may have
    more) for each text, newlines flattened as in training: shape (texts, labels)."""
    # fastText's own per-line binding: the wrapper's predict adds an array per call
    # and its list form is slower than a loop (measured in benchmarks/scoring_speed.py)
    predict = model.f.predict
    index = {PREFIX + label: i for i, label in enumerate(labels)}
    values = np.zeros((len(texts), len(labels)))
    for row, text in enumerate(flatten(texts)):
        for prob, label in predict(text + "\n", -1, 0.0, "strict"):
            if label in index:
                values[row, index[label]] = prob
    return values


@register
class FasttextClassifier(MapStage):
    """Label probabilities of a fastText classifier, one column per label."""

    name = "fasttext_classifier"
    help = "fastText classifier: writes <name>_<label>_prob for every label; optional min_prob"
    Params = ClassifierParams
    params: ClassifierParams

    def setup(self) -> None:
        self._model = load_classifier(self.params.model)
        self._labels = [name[len(PREFIX) :] for name in self._model.get_labels()]

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        values = label_probabilities(self._model, self._labels, table[TEXT])
        columns = {label: values[:, i] for i, label in enumerate(self._labels)}
        for label, values in columns.items():
            table = table.append_column(f"{p.name}_{label}_prob", pa.array(values))
        if p.label is None:
            return table
        low = columns[p.label] < p.min_prob
        return with_drop_reason(table, pa.array(low), self.reason("low_prob"))

    def versions(self) -> dict[str, str]:
        import hashlib

        digest = hashlib.sha256(Path(self.params.model).read_bytes()).hexdigest()
        return {"model": self.params.model, "model_sha256": digest}
