"""Training and scoring throughput of the 25M model, against Hugging Face's Llama, in one run.

Data: the real C4 and Pile samples (2,000 documents), cut by a SentencePiece tokenizer of
8,000 pieces that the engine trains on them, packed into blocks of 512 + 1 tokens.

Models of the same size (23.0 M parameters each):
- ours: ``curation.lm``'s ``25m`` preset (width 512, 6 layers, 8 heads, context 512;
  RoPE, RMSNorm, a GELU MLP of 4x, head tied to the embedding);
- theirs: ``transformers``' ``LlamaForCausalLM`` with the same width, depth, heads,
  context, vocabulary and tied head, SDPA attention, and a SwiGLU MLP of 1,368 (as many
  MLP parameters as ours). This is what a user would train instead.

Each measurement runs in its own process (its peak memory is its own), in turn, and the
best of ``--repeats`` rounds counts:
- ``train``: the same loop for both models (AdamW, gradient clipping, autocast at
  ``--precision``, a random batch of blocks a step), ``--warmup`` untimed steps, then
  ``--steps`` timed ones;
- ``train (train_lm)``: the engine's whole trainer as ``curate train-lm`` runs it (its
  own tokens/s, timed from its second step);
- ``score``: forward passes over full blocks without gradients;
- ``score (document_losses)``: the engine's per-document scorer over the real documents
  (tokenising, windows, batching by length, padding masked), as ``lm_loss`` runs it.

``--precision`` (auto: bf16 on a GPU, fp32 on the CPU; bf16; fp32) and ``--compile``
(``torch.compile``, paid for in the untimed first steps) apply to every job alike.

Tokens/s count predicted tokens. MFU = FLOPs per token x tokens/s / peak, with PaLM's
6N + 12 x layers x width x context per trained token (a third of it per scored token).
Peak: on CUDA the GPU's dense bf16 rate (``PEAK_FLOPS``; no MFU for fp32 runs); on the
CPU the matrix multiply rate measured here on the same threads at the precision the models
run in (fp32, or bf16), so CPU MFU says how close the model gets to this machine's own
matmul speed.

    .venv/bin/python benchmarks/lm_throughput.py                 # CPU: about 10 minutes
    .venv/bin/python benchmarks/lm_throughput.py --precision bf16 --compile   # AMX CPUs
    .venv/bin/python benchmarks/lm_throughput.py --batch 64 --steps 50 --warmup 10 [--compile]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from common import documents

MLP_LLAMA = 1368  # 3 x 512 x 1368 = 2 x 512 x 2048 (ours) within 0.2%


def build(kind: str, vocab: int) -> Any:
    """A fresh model: ``ours`` (the 25m preset) or ``llama`` (transformers, same shape)."""
    from curation.lm.model import GPT, PRESETS, LMConfig

    shape = PRESETS["25m"]
    if kind == "ours":
        return GPT(LMConfig(vocab_size=vocab, **shape))
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=shape["d_model"],
        intermediate_size=MLP_LLAMA,
        num_hidden_layers=shape["n_layers"],
        num_attention_heads=shape["n_heads"],
        num_key_value_heads=shape["n_heads"],
        max_position_embeddings=shape["seq_len"],
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config)


def flops_per_token(model: Any) -> float:
    """Training FLOPs per token of either model at the 25m preset's shape, by the formula
    ``GPT.flops_per_token`` uses (a parameter tied twice counts once)."""
    from curation.lm.model import PRESETS, LMConfig, training_flops_per_token

    parameters = sum(p.numel() for p in model.parameters())
    return training_flops_per_token(parameters, LMConfig(**PRESETS["25m"]))


def _logits(model: Any, inputs: Any) -> Any:
    out = model(inputs)
    return out if hasattr(out, "shape") else out.logits


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_memory(device: Any) -> int:
    """Peak bytes: CUDA memory allocated on a GPU, else the process's resident set."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this (fresh) process; ``job`` says which (see the module doc)."""
    import torch
    import torch.nn.functional as F

    from curation.lm.train import compile_model, pick_device, use_bf16

    torch.manual_seed(0)
    device = pick_device(job["device"])
    bf16 = use_bf16(job["precision"], device)
    if job["what"] == "train_lm":
        return _engine_training(job, device)
    if job["what"] == "document_losses":
        return _engine_scoring(job, device)
    blocks = torch.from_numpy(job["blocks"])
    model = build(job["model"], job["vocab"]).to(device)
    forward = compile_model(model, device, dynamic=False) if job["compile"] else model
    batch, steps, warmup = job["batch"], job["steps"], job["warmup"]
    generator = torch.Generator().manual_seed(0)
    picks = [
        torch.randint(len(blocks), (batch,), generator=generator) for _ in range(warmup + steps)
    ]
    training = job["what"] == "train"  # else score: forward passes without gradients
    model.train(training)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    with torch.set_grad_enabled(training):
        for step, pick in enumerate(picks):
            if step == warmup:
                _sync(device)
                started = time.perf_counter()
            chunk = blocks[pick].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = _logits(forward, chunk[:, :-1])
            loss = F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten())
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
    _sync(device)
    seconds = time.perf_counter() - started
    tokens = steps * batch * (blocks.shape[1] - 1)
    per_token = flops_per_token(model) / (1 if training else 3)
    return _result(tokens / seconds, per_token, device, seconds)


def _result(tokens_per_s: float, per_token: float, device: Any, seconds: float) -> dict:
    """A measurement's figures; peak memory is read now, at its end."""
    return {
        "tokens_per_s": tokens_per_s,
        "flops_per_token": per_token,
        "peak_bytes": _peak_memory(device),
        "seconds": seconds,
    }


def _engine_training(job: dict[str, Any], device: Any) -> dict[str, Any]:
    from curation.lm.train import TrainConfig, train_lm

    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(
            steps=job["warmup"] + job["steps"],
            batch_size=job["batch"],
            held_out=0.0,
            warmup_steps=1,
            precision=job["precision"],
            compile=job["compile"],
        )
        meta = train_lm(
            job["texts"],
            Path(folder) / "lm",
            preset="25m",
            train=config,
            tokenizer_from=job["tokenizer"],
            device=job["device"],
            log=lambda m: None,
        )
    from curation.lm.model import LMConfig, training_flops_per_token

    per_token = training_flops_per_token(meta["parameters"], LMConfig.from_dict(meta["model"]))
    training = meta["training"]
    return _result(training["tokens_per_s"], per_token, device, training["seconds"])


def _engine_scoring(job: dict[str, Any], device: Any) -> dict[str, Any]:
    from curation.lm.tokenizer import load_tokenizer
    from curation.lm.train import LanguageModel, compile_model, document_losses, use_bf16

    model = build("ours", job["vocab"]).to(device).eval()
    runner = compile_model(model, device, dynamic=True) if job["compile"] else None
    bf16 = use_bf16(job["precision"], device)
    lm = LanguageModel(model, load_tokenizer(job["tokenizer"]), {}, device, bf16, runner)
    texts = job["texts"]
    document_losses(lm, texts[: job["batch"]], job["batch"])  # warm-up
    _sync(device)
    started = time.perf_counter()
    losses = document_losses(lm, texts, job["batch"])
    _sync(device)
    seconds = time.perf_counter() - started
    rate = float(losses["tokens"].sum()) / seconds
    return _result(rate, model.flops_per_token() / 3, device, seconds)


def cpu_matmul_peak(threads: int, bf16: bool, rounds: int = 3, seconds: float = 1.0) -> float:
    """Best FLOP/s of fp32 (or ``bf16``) matrix multiplies on ``threads`` threads: a square
    2,048 one and the output head's shape (4,096 tokens x 512 by 512 x 8,000), ``rounds``
    of each."""
    import torch

    torch.set_num_threads(threads)
    kind = torch.bfloat16 if bf16 else torch.float32
    best = 0.0
    for m, k, n in [(2048, 2048, 2048), (4096, 512, 8000)] * rounds:
        a, b = torch.randn(m, k, dtype=kind), torch.randn(k, n, dtype=kind)
        a @ b
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            a @ b
            count += 1
        best = max(best, 2 * m * k * n * count / (time.perf_counter() - started))
    return best


def cpu_name() -> str:
    """The CPU's model name (Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def in_fresh_process(job: dict[str, Any]) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, job).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--batch", type=int, default=8, help="blocks of 512 tokens a step")
    parser.add_argument("--steps", type=int, default=6, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--compile", action="store_true", help="torch.compile every model")
    parser.add_argument("--score-docs", type=int, default=400, help="documents for the scorer")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    import torch

    from curation.lm.tokenizer import load_tokenizer, train_lm_tokenizer
    from curation.lm.train import encode_documents, gpu_peak_flops, pack, pick_device, use_bf16

    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    threads = torch.get_num_threads()
    if device.type == "cuda":
        peak = gpu_peak_flops(name) if use_bf16(args.precision, device) else None
        peak_what = "dense bf16 peak of the GPU"
    else:
        bf16 = use_bf16(args.precision, device)
        peak = cpu_matmul_peak(threads, bf16)
        peak_what = f"measured {'bf16' if bf16 else 'fp32'} matmul rate on {threads} threads"
    texts = documents(2000)
    work = Path(tempfile.mkdtemp(prefix="lm_throughput-"))
    print(
        f"{device} ({name}), torch {torch.__version__}; training the tokenizer ...", file=sys.stderr
    )
    train_lm_tokenizer(texts, work, 8000)
    tokenizer = load_tokenizer(work / "tokenizer.model")
    blocks = pack(encode_documents(tokenizer, texts), 512).numpy()
    vocab = tokenizer.GetPieceSize()
    common = {
        "device": str(device),
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "vocab": vocab,
        "precision": args.precision,
        "compile": args.compile,
    }
    jobs = {
        ("train", "ours"): {**common, "what": "train", "model": "ours", "blocks": blocks},
        ("train", "llama"): {**common, "what": "train", "model": "llama", "blocks": blocks},
        ("train", "train_lm"): {
            **common,
            "what": "train_lm",
            "texts": texts,
            "tokenizer": str(work / "tokenizer.model"),
        },
        ("score", "ours"): {**common, "what": "score", "model": "ours", "blocks": blocks},
        ("score", "llama"): {**common, "what": "score", "model": "llama", "blocks": blocks},
        ("score", "document_losses"): {
            **common,
            "what": "document_losses",
            "texts": texts[: args.score_docs],
            "tokenizer": str(work / "tokenizer.model"),
        },
    }
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for round_ in range(args.repeats):
        for key, job in jobs.items():
            result = in_fresh_process(job)
            print(
                f"round {round_ + 1}/{args.repeats} {key[0]} {key[1]}: "
                f"{result['tokens_per_s']:,.0f} tokens/s",
                file=sys.stderr,
            )
            if key not in best or result["tokens_per_s"] > best[key]["tokens_per_s"]:
                best[key] = result
    rows = []
    for (mode, model), result in best.items():
        rate = result["tokens_per_s"]
        mfu = result["flops_per_token"] * rate / peak if peak else None
        reference = best[(mode, "llama")]["tokens_per_s"]
        rows.append(
            {
                "mode": mode,
                "model": model,
                "tokens_per_s": round(rate, 1),
                "mfu": round(mfu, 4) if mfu is not None else None,
                "vs_llama": round(rate / reference, 3),
                "peak_mib": round(result["peak_bytes"] / 2**20, 1),
            }
        )
    print(
        f"\n{device} ({name}), torch {torch.__version__}, {threads} threads; batch "
        f"{args.batch} x 512 tokens, {args.steps} timed steps after {args.warmup}; "
        f"precision {args.precision}{', compiled' if args.compile else ''}; "
        f"peak {peak / 1e12 if peak else float('nan'):.3f} TFLOP/s ({peak_what})"
    )
    print("| mode | model | tokens/s | MFU | vs Llama | peak memory (MiB) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "-"
        print(
            f"| {row['mode']} | {row['model']} | {row['tokens_per_s']:,.0f} | {mfu} | "
            f"{row['vs_llama']:.2f}x | {row['peak_mib']:,.0f} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "device": str(device),
                    "name": name,
                    "torch": torch.__version__,
                    "threads": threads,
                    "peak_flops": peak,
                    "peak": peak_what,
                    "batch": args.batch,
                    "steps": args.steps,
                    "warmup": args.warmup,
                    "precision": args.precision,
                    "compile": args.compile,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
