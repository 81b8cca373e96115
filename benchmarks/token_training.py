"""Training on token files: ``curate train-lm --tokens`` against ``--input`` (text), and
its block reader against datatrove's ``DatatroveFolderDataset`` (nanotron's loader).

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents, as
one JSONL file. Tokenizer: a ``curate train-lm`` SentencePiece model of ``--vocab``
pieces trained here on the 2,000 real documents. The token folder is that JSONL file
tokenized by ``curate tokenize --bos '<s>' --eos '</s>'`` (timed as its own job: it is
done once, and serves every model trained on the data).

Jobs, each in a child process pinned to one core (torch on one thread):
- ``tokenize``: ``curation.io.tokens.tokenize`` of the JSONL file, not shuffled, so that
  both trainings below see the same blocks and train the same model.
- ``text``: what ``curate train-lm --input`` does: read the texts, encode them, pack
  them, train ``--steps`` steps of the ``--config`` preset, score the held-out documents.
- ``tokens``: the same with ``--tokens`` on the folder (memory-mapped).
- ``blocks``: our block reader (``TokenCorpus.blocks(...).take``) on ``--batches``
  random batches of 16 blocks of ``seq_len + 1`` ids.
- ``datatrove``: ``DatatroveFolderDataset(folder, seq_len)`` on the same number of
  random batches of 16 (its items stacked, as a ``DataLoader``'s default collate does).

Reports seconds to the first step (startup: reading, encoding, packing; or mapping),
the whole training's seconds and peak memory, and the readers' tokens a second.

    .venv/bin/python benchmarks/token_training.py --docs 40000
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import documents, report_from_child, run_on_one_core

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "token_training"
RUNS = HERE / "_runs" / "token_training"
BATCH = 16


def corpus(count: int, vocab: int) -> tuple[Path, Path, float]:
    """The JSONL file, the tokenizer's folder and the text's MB (UTF-8)."""
    from curation.lm.tokenizer import train_lm_tokenizer

    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    texts = documents(count)
    source = DATA / "docs.jsonl"
    with open(source, "w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}) + "\n")
    train_lm_tokenizer(documents(2000), DATA / "tokenizer", vocab)
    return source, DATA / "tokenizer", sum(len(t.encode("utf-8")) for t in texts) / 1e6


def _train(args: argparse.Namespace, texts: list[str] | None, tokens: Path | None) -> dict:
    from curation.lm.train import TrainConfig, train_lm

    marks: dict[str, float] = {}
    started = time.perf_counter()

    def log(message: str) -> None:
        if "step 1/" in message and "first" not in marks:
            marks["first"] = time.perf_counter() - started

    config = TrainConfig(steps=args.steps, batch_size=BATCH, seed=0, held_out=args.held_out)
    out = RUNS / args.job
    shutil.rmtree(out, ignore_errors=True)
    meta = train_lm(
        texts,
        out,
        tokens=tokens,
        preset=args.config,
        tokenizer_from=None if tokens else args.tokenizer,
        train=config,
        log=log,
    )
    return {
        "seconds": time.perf_counter() - started,
        "first_step_s": marks["first"],
        "tokens_per_s": meta["training"]["tokens_per_s"],
        "held_out_loss": meta["held_out"]["loss"],
        "blocks_tokens": meta["training"]["tokens_seen"],
    }


def job_tokenize(args: argparse.Namespace) -> dict:
    from curation.io.tokens import TokenizeOptions, TokenizerSpec, tokenize

    spec = TokenizerSpec(str(args.tokenizer), "</s>", "<s>")
    started = time.perf_counter()
    options = TokenizeOptions(spec, shuffle=False)  # the text's order: the same model
    data = tokenize([args.source], args.folder, options, progress=False)
    return {"seconds": time.perf_counter() - started, "tokens": data["tokens"]}


def job_text(args: argparse.Namespace) -> dict:
    from collections import Counter

    from curation.scoring.classifier import read_texts

    started = time.perf_counter()
    aside: Counter[str] = Counter()
    texts = [t for t in read_texts([args.source], "text", aside) if t and t.strip()]
    read_s = time.perf_counter() - started
    result = _train(args, texts, None)
    result["seconds"] += read_s
    result["first_step_s"] += read_s
    return result


def job_tokens(args: argparse.Namespace) -> dict:
    return _train(args, None, Path(args.folder))


def _batches(count: int, batches: int) -> np.ndarray:
    """The same random block numbers for both readers: ``batches`` rows of ``BATCH``."""
    return np.random.default_rng(1).integers(0, count, (batches, BATCH))


def job_blocks(args: argparse.Namespace) -> dict:
    import torch

    from curation.lm.corpus import TokenCorpus, held_out_indices

    started = time.perf_counter()
    corpus = TokenCorpus(args.folder)
    blocks = corpus.blocks(held_out_indices(corpus.documents, 0.0, 0), args.seq_len)
    opened = time.perf_counter() - started
    plan = _batches(len(blocks), args.batches)
    started = time.perf_counter()
    total = 0
    for row in plan:
        total += blocks.take(torch.from_numpy(row)).numel()
    return {"open_s": opened, "seconds": time.perf_counter() - started, "tokens": total}


def job_datatrove(args: argparse.Namespace) -> dict:
    import torch
    from datatrove.utils.dataset import DatatroveFolderDataset

    started = time.perf_counter()
    dataset = DatatroveFolderDataset(args.folder, args.seq_len, token_size=2)
    opened = time.perf_counter() - started
    plan = _batches(len(dataset), args.batches)
    started = time.perf_counter()
    total = 0
    for row in plan:
        total += torch.stack([dataset[int(i)]["input_ids"] for i in row]).numel()
    return {"open_s": opened, "seconds": time.perf_counter() - started, "tokens": total}


JOBS = {
    "tokenize": job_tokenize,
    "text": job_text,
    "tokens": job_tokens,
    "blocks": job_blocks,
    "datatrove": job_datatrove,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=40_000)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--config", default="tiny", help="the preset trained (tiny, small, 25m)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--held-out", type=float, default=0.002)
    parser.add_argument("--batches", type=int, default=3000)
    parser.add_argument("--job", choices=sorted(JOBS))
    parser.add_argument("--source")
    parser.add_argument("--tokenizer")
    parser.add_argument("--folder")
    parser.add_argument("--seq-len", type=int)
    args = parser.parse_args()
    if args.job:
        import torch

        torch.set_num_threads(1)
        report_from_child(JOBS[args.job](args))
        return

    from curation.lm.model import PRESETS

    source, tokenizer, megabytes = corpus(args.docs, args.vocab)
    folder = RUNS / "tokens-folder"
    shutil.rmtree(folder, ignore_errors=True)
    seq_len = PRESETS[args.config]["seq_len"]
    print(f"# machine: {platform.machine()}, {platform.processor() or 'cpu'}; one core per job")
    print(f"# {args.docs:,} documents (the C4 and Pile samples repeated), {megabytes:.1f} MB")
    print(f"# SentencePiece of {args.vocab:,} pieces; preset {args.config} (seq_len {seq_len})")
    results = {}
    for name in ("tokenize", "text", "tokens", "blocks", "datatrove"):
        command = [__file__, "--job", name, "--source", str(source), "--folder", str(folder)]
        command += ["--tokenizer", str(tokenizer), "--seq-len", str(seq_len)]
        command += ["--config", args.config, "--steps", str(args.steps)]
        command += ["--held-out", str(args.held_out), "--batches", str(args.batches)]
        results[name] = run_on_one_core(name, command)
    tokenized = results["tokenize"]
    print(
        f"\ntokenize: {tokenized['seconds']:.1f} s, {tokenized['tokens']:,} tokens, "
        f"peak {tokenized['peak_mib']:.0f} MiB (once, for every model trained on the data)\n"
    )
    print(f"## train-lm, {args.steps} steps of {BATCH} blocks\n")
    print("| input | to the first step s | whole run s | peak MiB | held-out loss |")
    print("|---|---:|---:|---:|---:|")
    for name, label in (("text", "--input (text)"), ("tokens", "--tokens (memory-mapped)")):
        r = results[name]
        print(
            f"| {label} | {r['first_step_s']:.2f} | {r['seconds']:.2f} | "
            f"{r['peak_mib']:.0f} | {r['held_out_loss']:.4f} |"
        )
    text, tokens = results["text"], results["tokens"]
    print(
        f"\nstartup: text / tokens = {text['first_step_s'] / tokens['first_step_s']:.1f}x; "
        f"peak memory: text / tokens = {text['peak_mib'] / tokens['peak_mib']:.1f}x\n"
    )
    print(f"## reading {args.batches:,} random batches of {BATCH} x {seq_len + 1} ids\n")
    print("| reader | open s | tokens/s | peak MiB | vs datatrove |")
    print("|---|---:|---:|---:|---:|")
    base = results["datatrove"]["tokens"] / results["datatrove"]["seconds"]
    readers = (("blocks", "curation TokenBlocks"), ("datatrove", "DatatroveFolderDataset"))
    for name, label in readers:
        r = results[name]
        rate = r["tokens"] / r["seconds"]
        print(
            f"| {label} | {r['open_s']:.3f} | {rate:,.0f} | {r['peak_mib']:.0f} | "
            f"{rate / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
