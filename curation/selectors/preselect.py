"""PreSelect (Shum et al., 2025): keep documents whose loss predicts downstream ability.

Fitting (``train_preselect``, ``curate train-preselect``): K reference language models
with known target scores (higher is better) score a sample of documents in bits per
character. A document's predictive strength is the number of model pairs it orders as
the target does (the better model gives it fewer bits per character); with no ties that
is ``(1 + Kendall tau) / 2`` times the K(K-1)/2 pairs, tau taken between the models' target
scores and minus their bits per character. Positives are the perfectly ordered
documents, negatives the same number of the least ordered ones, and a fastText
classifier (3 epochs, learning rate 0.1, word bigrams by default) learns to tell them
apart from the text alone.

Stage ``preselect``: the classifier's probability of ``pos`` as ``preselect_score`` for
every document, and the global top ``top_fraction`` of the dataset by characters (or
count) kept at the barrier, as ``threshold`` does; the rest is dropped as
``preselect:below_cut``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from curation.batch import TEXT
from curation.selectors.threshold import Threshold, ThresholdParams
from curation.stage import StageParams, register

SCORE = "preselect_score"
LABELS = ("pos", "neg")
#: PreSelect's fastText settings; every one can be overridden.
FASTTEXT_DEFAULTS = {"epoch": 3, "lr": 0.1, "wordNgrams": 2}
#: Below this many positives, fitting says the classifier will be weak.
MIN_POSITIVES = 100


def predictive_strength(bpc: np.ndarray, target_scores: Sequence[float]) -> np.ndarray:
    """For each document (row of ``bpc``, shape docs x K), how many of the K(K-1)/2 model
    pairs it orders as the target scores do: the model with the higher target score gives
    it strictly fewer bits per character. Ties (in either) are not concordant. int64."""
    bpc = np.asarray(bpc, dtype=np.float64)
    scores = np.asarray(target_scores, dtype=np.float64)
    if bpc.ndim != 2 or bpc.shape[1] != len(scores) or len(scores) < 2:
        raise ValueError("bpc must be documents x K with K >= 2 target scores")
    strength = np.zeros(len(bpc), dtype=np.int64)
    for i, j in itertools.combinations(range(len(scores)), 2):
        strength += ((scores[i] - scores[j]) * (bpc[:, j] - bpc[:, i]) > 0).astype(np.int64)
    return strength


def choose_examples(
    strength: np.ndarray, pairs: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(positives, negatives): indices of the perfectly ordered documents (at most half of
    all), and as many of the least ordered ones (lowest strength first, ties broken by a
    seeded shuffle). An error when no document is perfectly ordered."""
    shuffled = np.random.default_rng(seed).permutation(len(strength))
    positives = shuffled[strength[shuffled] == pairs][: len(strength) // 2]
    if len(positives) == 0:
        raise ValueError(
            "no document is ordered as the target scores are by every reference model: "
            "use more documents, or reference models whose target scores differ more"
        )
    rest = shuffled[strength[shuffled] < pairs]
    negatives = rest[np.argsort(strength[rest], kind="stable")][: len(positives)]
    return np.sort(positives), np.sort(negatives)


def target_scores(
    references: Sequence[str],
    target_texts: Sequence[str | None],
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> list[float]:
    """Each reference model's target score measured on target text: minus its bits per
    character over the text as a whole (``curate eval-lm``'s figure), so that a model
    that predicts the target better scores higher, as PreSelect's scores do."""
    from curation.lm.train import models_text_loss

    texts = [t for t in target_texts if t and t.strip()]
    if not texts:
        raise ValueError("the target holds no text to score the reference models on")
    scores = [-float(r["bits_per_char"]) for r in models_text_loss(references, texts, device)]
    for folder, score in zip(references, scores, strict=True):
        log(f"train-preselect: {folder}: target score {score:.4f} (minus bits/char)")
    return scores


def train_preselect(
    texts: Sequence[str],
    references: Sequence[str],
    target_scores: Sequence[float],
    output: str | Path,
    *,
    seed: int = 0,
    fasttext_args: dict[str, Any] | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fit PreSelect's classifier on ``texts`` and write it to ``output`` (fastText .bin).

    ``references`` are checkpoint folders of ``curate train-lm`` and ``target_scores``
    their scores on the target (higher is better). Returns the classifier's held-out
    metrics with the counts of documents, positives and negatives.
    """
    from curation.lm.train import document_losses, encode_present, load_lm, same_tokenizer
    from curation.scoring.classifier import fit_warning, train_classifier

    if len(references) != len(target_scores) or len(references) < 2:
        raise ValueError("give at least two reference models, each with its target score")
    texts = [t for t in texts if t and t.strip()]
    columns = []
    first, encoded = None, None
    for folder in references:
        lm = load_lm(folder, device)
        if first is None or not same_tokenizer(first, lm):  # references that share one
            first, encoded = lm, encode_present(lm, texts)  # tokenizer share its encoding
        losses = document_losses(lm, texts, encoded=encoded)
        columns.append(losses["bpc"])
        log(f"train-preselect: {folder}: median {np.nanmedian(losses['bpc']):.3f} bits/char")
    bpc = np.stack(columns, axis=1)
    pairs = len(references) * (len(references) - 1) // 2
    strength = predictive_strength(bpc, target_scores)
    positives, negatives = choose_examples(strength, pairs, seed)
    log(
        f"train-preselect: {len(texts):,} documents, {len(positives):,} perfectly ordered "
        f"(positives), {len(negatives):,} least ordered (negatives)"
    )
    if len(positives) < MIN_POSITIVES:
        log(
            f"train-preselect: warning: only {len(positives)} perfectly ordered documents; "
            "the classifier will be weak. Use more documents, fewer reference models, or "
            "references whose target scores differ more"
        )
    metrics = train_classifier(
        [texts[i] for i in positives],
        [texts[i] for i in negatives],
        output,
        labels=LABELS,
        seed=seed,
        fasttext_args={**FASTTEXT_DEFAULTS, **(fasttext_args or {})},
        trained_on={
            "references": list(references),
            "target_scores": list(target_scores),
            "positives": len(positives),
            "negatives": len(negatives),
        },
    )
    if warning := fit_warning(metrics["metrics"]):
        log(f"train-preselect: {warning}")
    return {**metrics, "documents": len(texts), "positives": len(positives),
            "negatives": len(negatives)}  # fmt: skip


class PreselectParams(StageParams):
    file_params: ClassVar[tuple[str, ...]] = ("model",)
    model: str = Field(..., description="classifier written by `curate train-preselect`")
    top_fraction: float = Field(0.1, gt=0, le=1, description="keep this share of the dataset")
    by: Literal["count", "chars"] = Field("chars", description="top_fraction of docs or chars")

    @field_validator("model")
    @classmethod
    def _model_is_usable(cls, value: str) -> str:
        from curation.runtime.models import pending
        from curation.scoring.classifier import load_classifier

        if pending(value):  # the recipe's models: section builds it; checked then
            return value
        labels = [name.removeprefix("__label__") for name in load_classifier(value).get_labels()]
        if set(labels) != set(LABELS):
            raise ValueError(f"{value}: labels {labels} are not PreSelect's {list(LABELS)}")
        return value


@register
class Preselect(Threshold):
    """Keep the global top fraction by PreSelect's classifier score."""

    name = "preselect"
    help = "PreSelect: keep the global top fraction (of chars) by its fastText score"
    Params = PreselectParams  # type: ignore[assignment]
    params: PreselectParams  # type: ignore[assignment]
    rank_column = "preselect_rank"

    @property
    def rule(self) -> ThresholdParams:
        p = self.params
        return ThresholdParams(column=SCORE, top_fraction=p.top_fraction, by=p.by)

    def setup(self) -> None:
        self._model: Any = None  # loaded on first measure: the apply pass needs none

    def measure(self, table: pa.Table) -> pa.Table:
        from curation.scoring.classifier import label_probabilities, load_classifier

        if self._model is None:
            self._model = load_classifier(self.params.model)
        values = label_probabilities(self._model, ["pos"], table[TEXT])[:, 0]
        return super().measure(table.append_column(SCORE, pa.array(values)))
