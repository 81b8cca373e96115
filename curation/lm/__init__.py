"""The pretraining core: tokenizer, model, trainer, checkpoints (``curation.lm.train``).

This module imports nothing heavy, so that recipes and the CLI can name the settings."""

from typing import Literal, get_args

#: How a model runs: bf16 autocast or fp32 (``curation.lm.train``'s module docstring).
Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
