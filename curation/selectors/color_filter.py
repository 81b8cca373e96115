"""``color_filter``: CoLoR-Filter selection (Brandfonbrener et al., 2024).

Two language models of ``curate train-lm``: the ``prior`` (trained on general data) and
the ``conditional`` (the prior fine-tuned on a small sample of the target). A document's
``color_filter_score`` is its mean token loss under the prior minus its mean token loss
under the conditional model: high when learning the target made the document much more
likely, so the document looks like the target. The top ``1 / tau`` of the whole dataset
by that score is kept (by document count, or by characters with ``by: chars``), cut at
the barrier over every shard, as ``threshold`` does; the rest is dropped as
``color_filter:below_cut`` (``color_filter:no_score`` for documents with no text).

Columns: ``color_filter_prior_loss``, ``color_filter_conditional_loss``,
``color_filter_score`` and ``color_filter_rank`` (1 = best). Both checkpoints are
checked when the recipe is read.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from curation.batch import TEXT
from curation.scoring.lm_loss import LMScoringParams
from curation.selectors.threshold import Threshold, ThresholdParams
from curation.stage import Resources, register

SCORE = "color_filter_score"


class ColorFilterParams(LMScoringParams):
    file_params: ClassVar[tuple[str, ...]] = ("prior", "conditional")
    prior: str = Field(..., description="checkpoint of the prior model (`curate train-lm`)")
    conditional: str = Field(..., description="checkpoint of the prior fine-tuned on target data")
    tau: float = Field(..., gt=1, description="keep the top 1/tau of the dataset")
    by: Literal["count", "chars"] = Field("count", description="1/tau of documents or chars")

    @field_validator("prior", "conditional")
    @classmethod
    def _checkpoint_is_usable(cls, value: str) -> str:
        from curation.lm.train import check_checkpoint
        from curation.runtime.models import pending

        if not pending(value):  # a model the recipe's models: section builds is checked then
            check_checkpoint(value)
        return value


def color_scores(prior_loss: np.ndarray, conditional_loss: np.ndarray) -> np.ndarray:
    """CoLoR-Filter's score: prior mean loss minus conditional mean loss (NaN stays)."""
    return prior_loss - conditional_loss


@register
class ColorFilter(Threshold):
    """Keep the top 1/tau by prior loss minus conditional loss, over the whole dataset."""

    name = "color_filter"
    help = "CoLoR-Filter: keep the global top 1/tau by prior minus conditional model loss"
    Params = ColorFilterParams  # type: ignore[assignment]
    params: ColorFilterParams  # type: ignore[assignment]
    resources = Resources(cpus=1, gpus=1)  # the GPU is asked for only where the cluster has one
    rank_column = "color_filter_rank"

    @property
    def rule(self) -> ThresholdParams:
        p = self.params
        return ThresholdParams(column=SCORE, top_fraction=1 / p.tau, by=p.by)

    def setup(self) -> None:
        self._models: Any = None  # loaded on first measure: the apply pass needs none

    def measure(self, table: pa.Table) -> pa.Table:
        from curation.lm.train import document_losses, encode_present, load_lm, same_tokenizer

        p = self.params
        if self._models is None:
            models = tuple(
                load_lm(folder, p.device, p.precision, p.compile)
                for folder in (p.prior, p.conditional)
            )
            self._models = (*models, same_tokenizer(*models))
        first, second, shared = self._models
        texts = table[TEXT].to_pylist()
        # a conditional model fine-tuned from the prior has its tokenizer: encode once
        encoded = encode_present(first, texts) if shared else None
        prior = document_losses(first, texts, p.batch_size, encoded)
        conditional = document_losses(second, texts, p.batch_size, encoded)
        for column, values in (
            ("color_filter_prior_loss", prior["loss_mean"]),
            ("color_filter_conditional_loss", conditional["loss_mean"]),
            (SCORE, color_scores(prior["loss_mean"], conditional["loss_mean"])),
        ):
            table = table.append_column(column, pa.array(values, mask=np.isnan(values)))
        return super().measure(table)

    def versions(self) -> dict[str, str]:
        return {"prior": self.params.prior, "conditional": self.params.conditional}
