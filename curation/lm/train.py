"""Training and scoring small language models: packing, the trainer, checkpoints, losses.

A checkpoint is a folder with ``model.safetensors`` (the weights), ``tokenizer.model``
(SentencePiece, byte fallback) and ``config.json`` (the model's shape, how it was trained,
its held-out loss and bits per character). A model trains on texts, or on the token files
of ``curate tokenize``, memory-mapped (``curation.lm.corpus``); a stopped training goes on
from its saved state (``curation.lm.resume``).

Losses are natural-log cross entropy per predicted token. A document is scored as
``<s> pieces </s>``: every piece and the end of document are predicted, so ``tokens`` is
the number of pieces plus one; documents longer than the context are cut into windows
that each start from the previous window's last token, so every token is predicted once.
Bits per character are ``loss_sum / ln 2 / characters``.

Precision: ``auto`` runs the model under bf16 autocast on a CUDA GPU that computes bf16
natively and in fp32 elsewhere, so a CPU gives the same figures on every CPU type;
``bf16`` asks for autocast on the CPU too, which pays on CPUs with AMX or AVX512-BF16
(``native_bf16``) for wide models (``CPU_BF16_WIDTH``); ``fp32`` never autocasts. Losses
are always summed in fp32 or wider. ``compile`` runs the model through ``torch.compile``
(TorchInductor: Triton kernels on a GPU, C++ on the CPU, where it needs a C++ compiler).
Compiling costs tens of seconds up front; on a 2-core CPU it made the 25m preset no
faster (benchmarks/RESULTS.md), so it is for GPUs, where it is not measured yet.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from curation.io.tokens import MANIFEST, file_sha256
from curation.lm import PRECISIONS, resume
from curation.lm.corpus import Blocks, TensorBlocks, TokenCorpus, held_out_indices
from curation.lm.model import GPT, PRESETS, LMConfig
from curation.lm.tokenizer import BOS_ID, EOS_ID, PAD_ID, load_tokenizer, train_lm_tokenizer

WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.model"
#: Peak dense bf16 tensor FLOP/s by a part of the device's name, the most specific part
#: first (NVIDIA's datasheets; the H100's PCIe and NVL cards run slower clocks than SXM).
PEAK_FLOPS = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
}


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``steps`` counts optimizer steps of ``batch_size`` sequences; when
    ``epochs`` is set it decides the steps instead (passes over the packed blocks)."""

    steps: int = 500
    epochs: float | None = None
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    held_out: float = 0.05
    precision: str = "auto"
    compile: bool = False


@dataclass
class LanguageModel:
    """A model, its tokenizer and its checkpoint metadata, on ``device``; ``bf16``: scored
    under bf16 autocast; ``runner``: what the forward passes call (the model compiled by
    ``torch.compile``), or None for the model itself."""

    model: GPT
    tokenizer: Any
    meta: dict[str, Any]
    device: torch.device
    bf16: bool = False
    runner: Callable[[torch.Tensor], torch.Tensor] | None = None


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else CPU. Asking for ``cuda`` where torch sees
    no CUDA device is an error that says what to install."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        where = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda") from None
    if where.type == "cuda" and not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU build"
        raise ValueError(
            f"device {device!r} asked for, but torch {torch.__version__} ({build}) sees no "
            "CUDA device: install a CUDA build of torch on this machine, or use device auto "
            "or cpu"
        )
    return where


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware: a CUDA GPU of compute
    capability 8.0 or later, or a CPU with AMX or AVX512-BF16 (Intel Xeon from Cooper and
    Sapphire Rapids on, AMD from Zen 4 on)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, so guarded
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to run the model under bf16 autocast on ``device``: ``bf16`` yes, ``fp32``
    no, ``auto`` on a CUDA GPU with native bf16 only. Another value is an error."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return device.type == "cuda" and native_bf16(device)
    return precision == "bf16"


#: Seconds between two progress lines of a training at most (besides each tenth of it).
LOG_EVERY_S = 30.0

#: Width from which bf16 pays on a CPU with AMX: measured on one, the 25m preset (512)
#: trained 1.8x as fast in bf16, the small one (256) 1.2x, the tiny one (64) 0.6x.
CPU_BF16_WIDTH = 512


def precision_note(precision: str, device: torch.device, width: int) -> str | None:
    """One line worth telling a user about ``precision`` on ``device`` for a model of
    ``width`` (d_model), or None: bf16 asked for where it is emulated (slower than fp32),
    or fp32 chosen by ``auto`` for a wide model on a CPU that computes bf16 natively."""
    if precision == "bf16" and not native_bf16(device):
        return f"{device} computes bf16 without hardware support: expect it slower than fp32"
    wide_on_cpu = precision == "auto" and device.type == "cpu" and width >= CPU_BF16_WIDTH
    if wide_on_cpu and native_bf16(device):
        return (
            "this CPU computes bf16 natively (AMX or AVX512-BF16): --precision bf16 "
            "trains a model this wide about 1.8x as fast here, at bf16's rounding"
        )
    return None


def compile_model(
    model: GPT, device: torch.device, *, dynamic: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` compiled by ``torch.compile`` (``dynamic``: for inputs of changing
    length, as the scorer's batches are). On the CPU TorchInductor writes and builds C++,
    so a missing compiler is an error that says what to install, before any work."""
    if device.type == "cpu" and not any(
        shutil.which(name) for name in (os.environ.get("CXX") or "g++", "clang++", "c++")
    ):
        raise ValueError(
            "compile on the CPU needs a C++ compiler for torch.compile (TorchInductor): "
            "install g++ (apt install g++) or set CXX, or leave compile off"
        )
    return torch.compile(model, dynamic=dynamic)  # type: ignore[return-value]


def encode_documents(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """``<s> pieces </s>`` ids of each text (SentencePiece's batch encoder)."""
    return [[BOS_ID, *ids, EOS_ID] for ids in tokenizer.encode(list(texts))]


def pack(documents: list[list[int]], seq_len: int) -> torch.Tensor:
    """Concatenate documents and cut the stream into blocks of ``seq_len + 1`` ids (inputs
    are a block's first ``seq_len``, targets its last); the tail shorter than a block is
    left out. Shape (blocks, seq_len + 1), int64."""
    return _cut(np.fromiter(itertools.chain.from_iterable(documents), np.int64), seq_len)


#: Texts encoded at a time by ``pack_texts``.
ENCODE_CHUNK = 1000


def pack_texts(tokenizer: Any, texts: Sequence[str], seq_len: int) -> TensorBlocks:
    """``pack`` of the texts' ``encode_documents`` ids, held as int32: the texts are
    encoded ``ENCODE_CHUNK`` at a time, so the ids take 4 bytes a token, not the 36 or so
    of lists of Python ints for all the text (with those lists, training on 228 MB of
    text peaked at 4.3 GiB; now 1.8 GiB)."""
    parts = []
    for at in range(0, len(texts), ENCODE_CHUNK):
        documents = encode_documents(tokenizer, texts[at : at + ENCODE_CHUNK])
        parts.append(np.fromiter(itertools.chain.from_iterable(documents), np.int32))
    stream = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    del parts
    return TensorBlocks(_cut(stream, seq_len))


def _cut(stream: np.ndarray, seq_len: int) -> torch.Tensor:
    blocks = len(stream) // (seq_len + 1)
    return torch.from_numpy(stream[: blocks * (seq_len + 1)].reshape(blocks, seq_len + 1))


def split_held_out(texts: Sequence[str], fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out) texts, each in their order: ``held_out_indices`` held out."""
    chosen = held_out_indices(len(texts), fraction, seed).tolist()
    held = set(chosen)
    return [t for i, t in enumerate(texts) if i not in held], [texts[i] for i in chosen]


def learning_rate(step: int, config: TrainConfig, total: int) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``, then cosine decay to
    ``lr * min_lr_ratio`` at the last step."""
    warmup = min(config.warmup_steps, max(1, total // 10))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def train_lm(
    texts: Sequence[str] | None,
    output: str | Path,
    *,
    tokens: str | Path | Sequence[str | Path] | None = None,
    preset: str = "small",
    init: str | Path | None = None,
    tokenizer_from: str | Path | None = None,
    train: TrainConfig | None = None,
    vocab_size: int = 8000,
    device: str = "auto",
    sources: Sequence[str] = (),
    placement: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    state_every: int | None = None,
    stop_on_ctrl_c: bool = False,
    replace_other: bool = False,
) -> dict[str, Any]:
    """Train a model on ``texts``, or on the token files of the ``curate tokenize`` folder
    ``tokens``, or of several folders one after another (memory-mapped: see
    ``curation.lm.corpus``; ``texts`` None), and write its checkpoint folder to
    ``output``.

    From scratch (the ``preset`` shape; a tokenizer trained on the training texts, or the
    one of ``tokenizer_from``, a checkpoint folder or a ``tokenizer.model`` file, so that
    models trained on different data share a vocabulary and their token losses compare),
    or from the checkpoint ``init`` (its tokenizer and shape: fine-tuning). Returns the
    checkpoint's metadata: shape, training settings (``precision`` as it resolved on this
    device: ``bf16`` or ``fp32``), tokens seen, throughput (tokens/s from the second step
    on, since the first pays for compiling and warm-up; on a GPU of known peak, model
    FLOPs utilisation too), held-out loss and bits per character. ``placement`` (for
    example the GPUs Ray gave the task) is recorded as given under
    ``training.placement``.

    A stopped training goes on when run again with the same data and settings
    (``curation.lm.resume``): its state is saved every ``state_every`` steps (None: every
    ``STATE_EVERY_S`` seconds of training) and, with ``stop_on_ctrl_c``, when Ctrl-C
    stops it (``TrainingStopped``). ``output`` must be empty or hold a stopped training
    of the same plan; with ``replace_other`` a stopped training of another plan there is
    removed instead of refused.
    """
    train = train or TrainConfig()
    out = Path(output)
    torch.manual_seed(train.seed)
    where = pick_device(device)
    bf16 = use_bf16(train.precision, where)
    if (texts is None) == (tokens is None):
        raise ValueError("train on texts or on a token folder: give one of them")
    corpus = fit = held = None
    if tokens is not None:
        if init is None and preset not in PRESETS:
            raise ValueError(f"unknown --config {preset!r}: use one of {', '.join(PRESETS)}")
        given = Path(init) / TOKENIZER if init is not None else tokenizer_from
        corpus = TokenCorpus(tokens, given)
        held = held_out_indices(corpus.documents, train.held_out, train.seed)
        documents = corpus.documents - len(held)
    else:
        fit, held = split_held_out(list(texts or ()), train.held_out, train.seed)
        documents = len(fit)
    if not documents:
        raise ValueError("no documents to train on")
    plan = _plan(texts, corpus, preset, init, tokenizer_from, vocab_size, train)
    saved = resume.prepare(out, plan, replace_other)
    if init is not None:
        start = load_lm(init, device=str(where))
        model, tokenizer = start.model, start.tokenizer
        (out / TOKENIZER).write_bytes((Path(init) / TOKENIZER).read_bytes())
    else:
        if preset not in PRESETS:
            raise ValueError(f"unknown --config {preset!r}: use one of {', '.join(PRESETS)}")
        if saved is not None and corpus is None and tokenizer_from is None:
            tokenizer = load_tokenizer(out / TOKENIZER)  # trained before the stop
        elif (source := _given_tokenizer(corpus, tokenizer_from)) is not None:
            tokenizer = load_tokenizer(source)
            (out / TOKENIZER).write_bytes(source.read_bytes())
        else:
            tokenizer = train_lm_tokenizer(fit or [], out, vocab_size)
        config = LMConfig(vocab_size=tokenizer.GetPieceSize(), **PRESETS[preset])
        model = GPT(config).to(where)
    config = model.config
    blocks: Blocks
    if corpus is not None:
        blocks = corpus.blocks(held, config.seq_len)
    else:
        blocks = pack_texts(tokenizer, fit or [], config.seq_len)
    if len(blocks) == 0:
        raise ValueError(
            f"the training text holds fewer tokens than one context of the model "
            f"({config.seq_len:,} tokens, with the documents held out left out): give more "
            "text, or a preset of a shorter context (tiny: 128)"
        )
    steps = train.steps
    if train.epochs is not None:
        steps = max(1, math.ceil(train.epochs * len(blocks) / train.batch_size))
    forward = compile_model(model, where, dynamic=False) if train.compile else model
    log(
        f"train-lm: {model.parameter_count():,} parameters, {documents:,} documents, "
        f"{len(blocks) * (config.seq_len + 1):,} tokens in {len(blocks):,} blocks"
        f"{' (memory-mapped)' if corpus is not None else ''}, {steps:,} steps on {where} "
        f"({'bf16' if bf16 else 'fp32'}{', compiled' if train.compile else ''})"
    )
    note = precision_note(train.precision, where, config.d_model)
    if note:
        log(f"train-lm: {note}")
    optimizer = _optimizer(model, train)
    generator = torch.Generator().manual_seed(train.seed)
    order = torch.randperm(len(blocks), generator=generator)
    first, cursor, seen, last_loss = 0, 0, 0, float("nan")
    timed_before = {"tokens": 0, "seconds": 0.0}  # timed before a stop
    if saved is not None:
        resume.restore(saved, model, optimizer, generator)
        first, cursor, seen = saved["step"], saved["cursor"], saved["seen"]
        order, last_loss, timed_before = saved["order"], saved["last_loss"], saved["timed"]
        log(f"train-lm: going on from step {first:,} of {steps:,} (the state in {out})")
    untimed, started = seen, time.perf_counter()  # tokens not timed, and when timing began
    last_saved = last_line = started
    model.train()
    with resume.stop_requests(stop_on_ctrl_c) as stop:
        for step in range(first, steps):
            if cursor + train.batch_size > len(order):
                order, cursor = torch.randperm(len(blocks), generator=generator), 0
            batch = blocks.take(order[cursor : cursor + train.batch_size]).to(where)
            cursor += train.batch_size
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, train, steps)
            with torch.autocast(where.type, dtype=torch.bfloat16, enabled=bf16):
                logits = forward(batch[:, :-1])
            loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            optimizer.step()
            seen += batch[:, 1:].numel()
            shown = time.perf_counter()
            tenth = step % max(1, steps // 10) == 0 or step == steps - 1
            if tenth or shown - last_line >= LOG_EVERY_S:
                last_loss, last_line = loss.item(), shown
                rate = (seen - untimed) / (shown - started)
                done = f"step {step + 1:,}/{steps:,} loss {last_loss:.3f} {rate:,.0f} tokens/s"
                left = (steps - step - 1) * batch[:, 1:].numel() / rate
                log(f"train-lm: {done}" + (f", {duration(left)} left" if left else ""))
            if step == first and steps - first > 1:  # compiling and warm-up end here
                if where.type == "cuda":
                    torch.cuda.synchronize()
                untimed, started = seen, time.perf_counter()
            now = time.perf_counter()
            due = (
                (now - last_saved >= resume.STATE_EVERY_S)
                if state_every is None
                else ((step + 1) % state_every == 0)
            )
            if step + 1 < steps and (due or stop.is_set()):
                timed = {
                    "tokens": timed_before["tokens"] + seen - untimed,
                    "seconds": timed_before["seconds"] + (now - started if seen > untimed else 0.0),
                }
                resume.save_state(
                    out,
                    {
                        **resume.carried_state(model, optimizer, generator),
                        "step": step + 1,
                        "cursor": cursor,
                        "order": order,
                        "seen": seen,
                        "last_loss": last_loss,
                        "timed": timed,
                    },
                )
                last_saved = time.perf_counter()
                if stop.is_set():
                    raise resume.TrainingStopped(out, step + 1, steps)
    if where.type == "cuda":
        torch.cuda.synchronize()
    elapsed = timed_before["seconds"] + time.perf_counter() - started
    tokens_per_s = (timed_before["tokens"] + seen - untimed) / elapsed
    peak = gpu_peak_flops(_device_name(where)) if bf16 else None
    meta: dict[str, Any] = {
        "model": config.to_dict(),
        "parameters": model.parameter_count(),
        "training": {
            **asdict(train),
            "precision": "bf16" if bf16 else "fp32",
            "steps": steps,
            "preset": None if init else preset,
            "init": str(init) if init else None,
            "tokenizer_from": str(tokenizer_from) if tokenizer_from and not init else None,
            "documents": documents,
            "held_out_documents": len(held),
            "tokens": None if corpus is None else _corpus_record(corpus),
            "tokens_seen": seen,
            "final_train_loss": last_loss,
            "seconds": round(elapsed, 2),
            "tokens_per_s": round(tokens_per_s, 1),
            "mfu": round(model.flops_per_token() * tokens_per_s / peak, 4) if peak else None,
            "device": _device_name(where),
            "sources": list(sources),
            "placement": dict(placement or {}),
            "torch": torch.__version__,
        },
    }
    if len(held):
        lm = LanguageModel(model, tokenizer, meta, where, bf16=bf16)
        if corpus is not None:
            held_texts, encoded = corpus.held_documents(held, tokenizer)
            meta["held_out"] = _held_out_loss(lm, held_texts, encoded)
        else:
            meta["held_out"] = _held_out_loss(lm, held, None)
        held_loss, held_bpc = meta["held_out"]["loss"], meta["held_out"]["bits_per_char"]
        log(f"train-lm: held-out loss {held_loss:.3f}, {held_bpc:.3f} bits/char")
    save_lm(model, meta, out)
    resume.finish(out)
    return meta


def duration(seconds: float) -> str:
    """``seconds`` as a person reads a time left: ``40 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _optimizer(model: GPT, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only (not on norms' gains)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": train.weight_decay}, {"params": other}],
        lr=train.lr,
        betas=(0.9, 0.95),
        weight_decay=0.0,
    )


def models_text_loss(
    folders: Sequence[str | Path],
    texts: Sequence[str | None],
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 32,
) -> list[dict[str, float | int]]:
    """``text_loss`` of each checkpoint in ``folders`` on ``texts``, in order; models that
    share a tokenizer share one encoding of the texts, and one model is loaded at a time."""
    rows, encoding = [], (b"", [])  # a tokenizer's bytes and the texts' ids under it
    for folder in folders:
        lm = load_lm(folder, device=device, precision=precision)
        proto = lm.tokenizer.serialized_model_proto()
        if proto != encoding[0]:
            encoding = (proto, encode_present(lm, texts))
        rows.append(text_loss(lm, texts, batch_size, encoding[1]))
        del lm
    return rows


def _held_out_loss(
    lm: LanguageModel, texts: Sequence[str], encoded: list[list[int]] | None
) -> dict[str, float]:
    """The held-out documents' loss per token and bits per character, over all of them."""
    whole = text_loss(lm, texts, encoded=encoded)
    return {"loss": whole["loss"], "bits_per_char": whole["bits_per_char"]}


def text_loss(
    lm: LanguageModel,
    texts: Sequence[str | None],
    batch_size: int = 32,
    encoded: list[list[int]] | None = None,
) -> dict[str, float | int]:
    """The model's loss on ``texts`` as one text: ``loss`` (nats per predicted token),
    ``bits_per_char`` (over the documents' characters), and the ``documents`` (those with
    text), ``tokens`` and ``chars`` it is taken over (``document_losses``'s sums; NaN
    losses when no document has a token)."""
    losses = document_losses(lm, texts, batch_size=batch_size, encoded=encoded)
    scored = losses["tokens"] > 0
    total = float(np.nansum(losses["loss_sum"]))
    tokens, chars = int(losses["tokens"].sum()), int(losses["chars"][scored].sum())
    return {
        "documents": int(scored.sum()),
        "tokens": tokens,
        "chars": chars,
        "loss": total / tokens if tokens else math.nan,
        "bits_per_char": total / math.log(2) / chars if chars else math.nan,
    }


def _given_tokenizer(corpus: TokenCorpus | None, tokenizer_from: str | Path | None) -> Path | None:
    """The tokenizer file a fresh model takes: the token folder's, or ``tokenizer_from``'s
    (a checkpoint folder's ``tokenizer.model``, or the file); None: one is trained."""
    if corpus is not None:
        return corpus.tokenizer_file
    if tokenizer_from is None:
        return None
    given = Path(tokenizer_from)
    return given / TOKENIZER if given.is_dir() else given


def _plan(
    texts: Sequence[str] | None,
    corpus: TokenCorpus | None,
    preset: str,
    init: str | Path | None,
    tokenizer_from: str | Path | None,
    vocab_size: int,
    train: TrainConfig,
) -> dict[str, Any]:
    """What decides a training: a stopped one goes on only under the same plan
    (``curation.lm.resume``). The data by its SHA-256 (a token folder by its
    ``tokenize.json``'s), the starting checkpoint by its weights', the tokenizer given by
    its file's."""
    if corpus is not None:
        folders = [str(f.resolve()) for f in corpus.folders]
        manifests = [file_sha256(f / MANIFEST) for f in corpus.folders]
        # one folder as before several could be given, so a stopped training goes on
        one = len(folders) == 1
        data = {
            "tokens": folders[0] if one else folders,
            "tokenize_json_sha256": manifests[0] if one else manifests,
        }
    else:
        data = {"documents": len(texts or ()), "texts_sha256": resume.texts_sha256(texts or ())}
    start: dict[str, Any]
    if init is not None:
        start = {"init": str(init), "weights_sha256": file_sha256(Path(init) / WEIGHTS)}
    elif (given := _given_tokenizer(corpus, tokenizer_from)) is not None:
        start = {"preset": preset, "tokenizer_sha256": file_sha256(given)}
    else:
        start = {"preset": preset, "vocab_size": vocab_size}
    return {"data": data, **start, "train": asdict(train)}


def _corpus_record(corpus: TokenCorpus) -> dict[str, Any]:
    """What ``config.json`` says of the token folders trained on (``folder`` for one,
    ``folders`` for several)."""
    named = [str(f) for f in corpus.folders]
    return {
        **({"folder": named[0]} if len(named) == 1 else {"folders": named}),
        "documents": corpus.documents,
        "tokens": corpus.tokens,
        "tokenizer_sha256": corpus.sha256,
    }


def gpu_peak_flops(name: str) -> float | None:
    """Peak dense bf16 FLOP/s of the GPU called ``name`` (``PEAK_FLOPS``), None when not
    known. Model FLOPs utilisation is taken against it only for bf16 runs."""
    return next((peak for part, peak in PEAK_FLOPS.items() if part in name), None)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def save_lm(model: GPT, meta: dict[str, Any], folder: Path) -> None:
    """Write the weights and ``config.json`` into ``folder`` (the tokenizer is there)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def check_checkpoint(folder: str | Path) -> Path:
    """The checkpoint folder, after checking its three files are there and readable;
    otherwise an error that names the file and says what to do."""
    path = Path(folder)
    for name in (CONFIG, WEIGHTS, TOKENIZER):
        if not (path / name).is_file():
            raise ValueError(
                f"{path / name} is missing: give a checkpoint folder written by `curate train-lm`"
            )
    try:
        meta = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        LMConfig.from_dict(meta["model"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path / CONFIG} is not a train-lm config: {err}") from None
    with open(path / WEIGHTS, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8 or int.from_bytes(head, "little") > (path / WEIGHTS).stat().st_size:
        raise ValueError(f"{path / WEIGHTS} is not a safetensors file (truncated or corrupt)")
    return path


def load_lm(
    folder: str | Path, device: str = "auto", precision: str = "auto", compile: bool = False
) -> LanguageModel:
    """Load a checkpoint folder onto ``device`` (``auto``: a GPU when there is one), to be
    scored at ``precision`` and, with ``compile``, through ``torch.compile`` (module
    docstring)."""
    from safetensors.torch import load_file

    path = check_checkpoint(folder)
    meta = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    where = pick_device(device)
    model = GPT(LMConfig.from_dict(meta["model"]))
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path / WEIGHTS} cannot be loaded: {err}") from None
    model.to(where).eval()
    bf16 = use_bf16(precision, where)
    runner = compile_model(model, where, dynamic=True) if compile else None
    return LanguageModel(model, load_tokenizer(path / TOKENIZER), meta, where, bf16, runner)


def _windows(ids: list[int], span: int) -> list[list[int]]:
    """Cut ``ids`` into windows of at most ``span + 1`` ids, each starting at the last id
    of the one before, so each id after the first is a target exactly once."""
    if len(ids) <= span + 1:
        return [ids]
    return [ids[s : s + span + 1] for s in range(0, len(ids) - 1, span)]


def same_tokenizer(a: LanguageModel, b: LanguageModel) -> bool:
    """Whether two models cut text into the same ids (their SentencePiece models are the
    same bytes), so that one encoding serves both."""
    return bool(a.tokenizer.serialized_model_proto() == b.tokenizer.serialized_model_proto())


def _has_text(text: str | None) -> bool:
    return bool(text and text.strip())


def encode_present(lm: LanguageModel, texts: Sequence[str | None]) -> list[list[int]]:
    """``<s> pieces </s>`` ids of each text that has any non-blank character, in order:
    what ``document_losses`` scores, for passing to several models that share a
    tokenizer."""
    return encode_documents(lm.tokenizer, [t for t in texts if _has_text(t)])


@torch.no_grad()
def document_losses(
    lm: LanguageModel,
    texts: Sequence[str | None],
    batch_size: int = 32,
    encoded: list[list[int]] | None = None,
) -> dict[str, np.ndarray]:
    """Per document: ``loss_sum`` (nats), ``tokens`` (predicted), ``chars``, ``loss_mean``
    and ``bpc``. Texts with no piece (empty, white space, null) get NaN losses and 0
    tokens. Sequences are batched by length and right-padded; padded positions are left
    out of every sum. ``encoded``: the texts' ``encode_present`` ids under this model's
    tokenizer, when the caller has them already (otherwise they are encoded here)."""
    model, span = lm.model, lm.model.config.seq_len
    model.eval()
    present = [i for i, t in enumerate(texts) if _has_text(t)]
    if encoded is None:
        encoded = encode_present(lm, texts)
    elif len(encoded) != len(present):
        raise ValueError(f"{len(encoded)} encoded documents for {len(present)} texts with text")
    owners, windows = [], []
    for doc, ids in zip(present, encoded, strict=True):
        for window in _windows(ids, span):
            owners.append(doc)
            windows.append(window)
    sizes = np.array([len(w) - 1 for w in windows], dtype=np.int64)  # targets per window
    # window losses stay on the device until the end: one copy back, so the host builds
    # the next batch while the device runs this one (a copy per batch waits for each)
    window_loss = torch.zeros(len(windows), dtype=torch.float64, device=lm.device)
    order = np.argsort(sizes, kind="stable")
    forward = model if lm.runner is None else lm.runner
    for lo in range(0, len(order), batch_size):
        chosen = order[lo : lo + batch_size]
        width = int(sizes[chosen].max()) + 1
        rows = np.full((len(chosen), width), PAD_ID, dtype=np.int64)
        for row, w in enumerate(chosen):
            rows[row, : sizes[w] + 1] = windows[w]
        batch = torch.from_numpy(rows).to(lm.device, non_blocking=True)
        with torch.autocast(lm.device.type, dtype=torch.bfloat16, enabled=lm.bf16):
            logits = forward(batch[:, :-1])
        # classes innermost: a transposed (batch, vocab, length) view makes torch's CPU
        # log-softmax stride across memory (3.7x slower for a vocabulary of 8,000)
        losses = F.cross_entropy(
            logits.float().flatten(0, 1), batch[:, 1:].flatten(), reduction="none"
        ).view(len(chosen), width - 1)
        lengths = torch.from_numpy(sizes[chosen]).to(lm.device, non_blocking=True)
        mask = torch.arange(width - 1, device=lm.device)[None, :] < lengths[:, None]
        at = torch.from_numpy(chosen).to(lm.device, non_blocking=True)
        window_loss.index_copy_(0, at, (losses * mask).sum(dim=1).double())
    window_loss = window_loss.cpu().numpy()
    owner = np.array(owners, dtype=np.int64)
    loss_sum = np.bincount(owner, weights=window_loss, minlength=len(texts))
    tokens = np.bincount(owner, weights=sizes, minlength=len(texts)).astype(np.int64)
    chars = np.array([len(t) if t else 0 for t in texts], dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss_mean = np.where(tokens > 0, loss_sum / tokens, np.nan)
        bpc = np.where((tokens > 0) & (chars > 0), loss_sum / math.log(2) / chars, np.nan)
    loss_sum = np.where(tokens > 0, loss_sum, np.nan)
    return {
        "loss_sum": loss_sum,
        "tokens": tokens,
        "chars": chars,
        "loss_mean": loss_mean,
        "bpc": bpc,
    }
