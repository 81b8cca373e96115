"""``kenlm_perplexity``: CCNet's document perplexity under a model of ``curate train-kenlm``.

Writes ``kenlm_perplexity`` (CCNet's length-weighted perplexity over the document's
paragraphs; lower means more like the training text) and ``kenlm_pieces`` (pieces scored,
plus one per paragraph). With ``buckets``, ``kenlm_bucket`` is CCNet's ``head``,
``middle`` or ``tail``, cut at the 33rd and 66th perplexity percentiles of the model's
held-out paragraphs (``kenlm.json``) unless ``cutoffs`` gives the two cut points.

With ``threshold``, documents are dropped on the wrong side of it: ``keep: low`` drops
perplexity above it (``kenlm_perplexity:too_high``; the usual quality recipe), ``keep:
high`` drops perplexity below it (``kenlm_perplexity:too_low``; for a model trained on
unwanted text, keep what it finds surprising). A document with no scorable paragraph is
dropped as ``kenlm_perplexity:no_text`` when a threshold is set.

The model folder is checked when the recipe is read, before any data is read.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from curation.batch import TEXT, with_drop_reason
from curation.scoring.kenlm import KenlmModel, check_model_folder, load_model, perplexity
from curation.stage import MapStage, StageParams, register


class PerplexityParams(StageParams):
    file_params: ClassVar[tuple[str, ...]] = ("model",)
    model: str = Field(..., description="model folder written by `curate train-kenlm`")
    threshold: float | None = Field(None, gt=0, description="drop on the wrong side of this")
    keep: Literal["low", "high"] = Field("low", description="which side of threshold to keep")
    buckets: bool = Field(False, description="add CCNet's head/middle/tail kenlm_bucket")
    cutoffs: tuple[float, float] | None = Field(
        None, description="head/middle and middle/tail perplexity cut points"
    )

    @field_validator("model")
    @classmethod
    def _model_is_usable(cls, value: str) -> str:
        check_model_folder(value)
        return value


@register
class KenlmPerplexity(MapStage):
    """Perplexity of each document under a KenLM model, with optional keep rule."""

    name = "kenlm_perplexity"
    help = "CCNet perplexity under a KenLM model of `curate train-kenlm`; keep low or high"
    Params = PerplexityParams
    params: PerplexityParams

    def setup(self) -> None:
        self._model: KenlmModel = load_model(self.params.model)
        cutoffs = self.params.cutoffs
        if self.params.buckets and cutoffs is None:
            known = self._model.meta.get("perplexity_percentiles", {})
            if "p33" not in known:
                raise ValueError(
                    f"{self.params.model}: its kenlm.json has no perplexity percentiles; give "
                    "kenlm_perplexity `cutoffs: [head, middle]`"
                )
            cutoffs = (known["p33"], known["p66"])
        self._cutoffs = cutoffs

    def process(self, table: pa.Table) -> pa.Table:
        values, pieces = perplexity(self._model, table[TEXT])
        missing = np.isnan(values)
        table = table.append_column(
            "kenlm_perplexity", pa.array(np.round(values, 1), pa.float64(), mask=missing)
        )
        table = table.append_column("kenlm_pieces", pa.array(pieces, pa.int64()))
        if self.params.buckets:
            head, middle = self._cutoffs  # type: ignore[misc]
            names = np.where(values <= head, "head", np.where(values <= middle, "middle", "tail"))
            table = table.append_column("kenlm_bucket", pa.array(names, mask=missing))
        p = self.params
        if p.threshold is None:
            return table
        table = with_drop_reason(table, pa.array(missing), self.reason("no_text"))
        if p.keep == "low":
            return with_drop_reason(
                table, pa.array(~missing & (values > p.threshold)), self.reason("too_high")
            )
        return with_drop_reason(
            table, pa.array(~missing & (values < p.threshold)), self.reason("too_low")
        )

    def versions(self) -> dict[str, str]:
        meta = getattr(self, "_model", None)
        trained = meta.meta.get("trained_on") if meta else None
        return {"model": self.params.model, "trained_on": str(trained)}
