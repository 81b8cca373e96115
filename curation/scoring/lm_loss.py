"""``lm_loss``: per-document losses under a language model of ``curate train-lm``.

Writes ``<name>_loss_mean`` (nats per predicted token), ``<name>_loss_sum`` (nats),
``<name>_tokens`` (predicted tokens: pieces plus the end of document), ``<name>_chars``
and ``<name>_bpc`` (bits per character). Documents with no text get nulls and 0 tokens;
the stage drops nothing. On a Ray cluster with GPUs each worker asks for one and holds
the model on it (``device: auto``); otherwise it runs on the CPU. ``precision`` (by
default bf16 autocast on a GPU that computes it natively, fp32 on the CPU) and ``compile``
(``torch.compile``) are ``curation.lm.train``'s. The checkpoint is checked when the recipe
is read, before any data is read.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from curation.batch import TEXT
from curation.lm import Precision
from curation.stage import MapStage, Resources, StageParams, register


class LMScoringParams(StageParams):
    """How a stage runs the models it scores with (``lm_loss``, ``color_filter``)."""

    batch_size: int = Field(32, ge=1, description="sequences per forward pass")
    device: str = Field("auto", description="auto (a GPU when there is one), cpu, cuda")
    precision: Precision = Field(
        "auto",
        description="bf16 autocast; auto: bf16 on a GPU with native bf16, fp32 on the CPU "
        "(where the CPU has AMX or AVX512-BF16, bf16 scores the 25m preset about 2x as fast)",
    )
    compile: bool = Field(
        False,
        description="torch.compile the model: tens of seconds up front per worker, for GPUs "
        "(no faster on a small CPU)",
    )


class LMLossParams(LMScoringParams):
    file_params: ClassVar[tuple[str, ...]] = ("model",)
    model: str = Field(..., description="checkpoint folder written by `curate train-lm`")
    name: str = Field("lm", pattern=r"^[a-z][a-z0-9_]*$", description="column prefix")

    @field_validator("model")
    @classmethod
    def _checkpoint_is_usable(cls, value: str) -> str:
        from curation.lm.train import check_checkpoint
        from curation.runtime.models import pending

        if not pending(value):  # a model the recipe's models: section builds is checked then
            check_checkpoint(value)
        return value


_COLUMNS = {
    "loss_mean": pa.float64(),
    "loss_sum": pa.float64(),
    "tokens": pa.int64(),
    "chars": pa.int64(),
    "bpc": pa.float64(),
}


def loss_columns(table: pa.Table, losses: dict[str, np.ndarray], name: str) -> pa.Table:
    """``table`` with the ``<name>_*`` loss columns appended (NaN as null)."""
    for key, kind in _COLUMNS.items():
        values = losses[key]
        mask = np.isnan(values) if values.dtype.kind == "f" else None
        table = table.append_column(f"{name}_{key}", pa.array(values, kind, mask=mask))
    return table


@register
class LMLoss(MapStage):
    """Mean and total token loss, tokens, characters and bits per character of each doc."""

    name = "lm_loss"
    help = "per-document loss and bits/char under a `curate train-lm` model (GPU when there)"
    Params = LMLossParams
    params: LMLossParams
    resources = Resources(cpus=1, gpus=1)  # the GPU is asked for only where the cluster has one

    def setup(self) -> None:
        from curation.lm.train import load_lm

        p = self.params
        self._lm: Any = load_lm(p.model, p.device, p.precision, p.compile)

    def process(self, table: pa.Table) -> pa.Table:
        from curation.lm.train import document_losses

        losses = document_losses(self._lm, table[TEXT].to_pylist(), self.params.batch_size)
        return loss_columns(table, losses, self.params.name)

    def versions(self) -> dict[str, str]:
        lm = getattr(self, "_lm", None)
        return {"model": self.params.model, "torch": lm.meta["training"]["torch"] if lm else ""}
