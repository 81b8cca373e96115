"""A GPT-style decoder: token embedding, pre-norm blocks of causal self-attention (rotary
position embedding, torch's scaled dot-product attention) and a GELU MLP, RMSNorm, and an
output head tied to the embedding.

Causal attention means a token never sees a later one, so right padding (``PAD_ID`` after
a document's last token) cannot change the logits of the document's own tokens; the
scorer also masks padded positions out of every loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LMConfig:
    """Shape of a model. ``seq_len`` is the training context in tokens."""

    vocab_size: int = 8000
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    seq_len: int = 256
    mlp_ratio: int = 4
    rope_base: float = 10_000.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LMConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Named shapes for ``--config``; ``vocab_size`` is set from the tokenizer.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 4, "seq_len": 128},
    "small": {"d_model": 256, "n_layers": 4, "n_heads": 4, "seq_len": 256},
    "25m": {"d_model": 512, "n_layers": 6, "n_heads": 8, "seq_len": 512},
}


def rotary(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables (seq_len x head_dim/2) of the rotary position embedding."""
    inverse = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inverse)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of the last dimension of ``x`` (B, H, T, D)
    by each position's angle."""
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    cos, sin = cos[None, None].to(x.dtype), sin[None, None].to(x.dtype)
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.heads = config.n_heads
        self.attn_norm = nn.RMSNorm(config.d_model)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.mlp_norm = nn.RMSNorm(config.d_model)
        hidden = config.mlp_ratio * config.d_model
        self.up = nn.Linear(config.d_model, hidden, bias=False)
        self.down = nn.Linear(hidden, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).split(width, dim=-1)
        shape = (batch, length, self.heads, width // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.down(F.gelu(self.up(self.mlp_norm(x))))


class GPT(nn.Module):
    """Decoder-only language model; ``forward`` gives next-token logits (B, T, vocab)."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        if config.d_model % config.n_heads or (config.d_model // config.n_heads) % 2:
            raise ValueError("d_model / n_heads must be an even whole number")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(config.d_model)
        cos, sin = rotary(config.seq_len, config.d_model // config.n_heads, config.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init)
        scale = 0.02 / math.sqrt(2 * config.n_layers)  # GPT-2's residual scaling
        for block in self.blocks:
            nn.init.normal_(block.proj.weight, std=scale)
            nn.init.normal_(block.down.weight, std=scale)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        if length > self.config.seq_len:
            raise ValueError(f"{length} tokens is more than the context of {self.config.seq_len}")
        x = self.embed(tokens)
        cos, sin = self.cos[:length], self.sin[:length]
        for block in self.blocks:
            x = block(x, cos, sin)
        return F.linear(self.norm(x), self.embed.weight)

    def parameter_count(self) -> int:
        """Number of parameters (the tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> float:
        """Training FLOPs per token of this model (``training_flops_per_token``)."""
        return training_flops_per_token(self.parameter_count(), self.config)


def training_flops_per_token(parameters: int, config: LMConfig) -> float:
    """Training FLOPs per token (forward and backward) of a decoder with ``parameters``
    parameters (a tied head counted once) and ``config``'s depth, width and context: 6 x
    parameters plus attention, as in PaLM's appendix: 6N + 12 * layers * d_model * seq_len.
    A forward pass alone is a third of it."""
    c = config
    return 6.0 * parameters + 12.0 * c.n_layers * c.d_model * c.seq_len
