"""Loss-based selection study: does the selected data help a target? (issue 6)

Pool: the C4 and Pile samples plus *Pride and Prejudice* cut into ~2,000-character chunks
(about 3.6 M characters). Two targets, each split into a part the selectors may see
(``fit``) and a held-out part that only the final evaluation reads:

- ``moby-dick``: the other book, in chunks; fit = the first 60% of the chunks, held out =
  the last 30% (a 10% gap between them so no paragraph straddles the two).
- ``benchmarks``: the ARC-Easy, ARC-Challenge, PIQA, OpenBookQA and BoolQ questions with
  their gold answers as text (``query`` + ``Answer: <gold choice>``), shuffled; half fit,
  and up to 2,000 of the other half held out.

Methods, each keeping 1/tau of the pool's characters (tau 4 and 8), best score first:

- ``random``: a seeded shuffle (the baseline; a second seed shows run-to-run noise);
- ``color_filter``: prior mean loss minus conditional mean loss (``color_scores``), with the
  prior trained on the whole pool and the conditional model the prior fine-tuned on the
  target's fit part;
- ``conditional_loss``: minus the conditional model's mean loss alone;
- ``dclm_fasttext``: a fastText classifier (DCLM's recipe, ``train_classifier``) with the
  target's fit part as positives and as many random pool documents as negatives;
- ``preselect``: ``train_preselect`` over three reference models, each trained on 600,000
  characters of the pool from a different mix: C4, Pile, and C4 + book (every one reads
  web text, as real pretrained models do; one adds the book), their target scores being
  minus their bits per character on the target's fit part, fitted on the pool cut into
  pieces of 80 words (more examples to order). With three models a document
  is perfectly ordered when it orders all three pairs as the target does; more models make
  such documents rarer than a pool of 2,292 documents can supply (four models left 35).

Every selection trains a fresh model of the same shape (``--preset``, default tiny) for the
same compute (``--steps`` of 16 x 128 tokens, as many passes over its data as that takes)
with one shared tokenizer (trained on the pool), and
the held-out target loss (nats per token) is compared with random selection of the same
size (the mean of two seeded random selections; their difference shows the noise). The
data multiplier is how much distinct random data, trained for the same compute, reaches
the same loss: the random models at 1/16 ... 1 of the pool give a curve, interpolated in
log size; "> tau" means even the whole pool at random does worse.

``--pool-book moby-dick`` swaps the books (*Moby-Dick* in the pool, *Pride and Prejudice*
the book target) with everything else the same: a check that a result is not the luck of
one pool. Give it its own ``--work``.

Run:  .venv/bin/python benchmarks/selection.py   (about 20 minutes on two CPU cores)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import SHARED, documents
from curation.lm.tokenizer import train_lm_tokenizer
from curation.lm.train import TrainConfig, document_losses, load_lm, text_loss, train_lm
from curation.scoring.classifier import (
    flatten,
    load_classifier,
    positive_probability,
    train_classifier,
)
from curation.selectors.color_filter import color_scores
from curation.selectors.preselect import train_preselect

BOOKS = SHARED / "reference"
CURVE = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
METHODS = ("color_filter", "preselect", "conditional_loss", "dclm_fasttext")
REFERENCE_CHARS = 600_000
REFERENCE_MIXES = (("c4",), ("pile",), ("c4", "book"))


def book_chunks(name: str, size: int = 2000) -> list[str]:
    """The book's text between the Gutenberg markers, as paragraphs joined into chunks of
    about ``size`` characters."""
    text = (BOOKS / name).read_text(encoding="utf-8")
    text = text.split("*** START OF", 1)[1].split("\n", 1)[1].split("*** END OF", 1)[0]
    chunks, current = [], ""
    for paragraph in text.replace("\r\n", "\n").split("\n\n"):
        paragraph = " ".join(paragraph.split())
        if paragraph:
            current = f"{current}\n\n{paragraph}" if current else paragraph
        if len(current) >= size:
            chunks.append(current)
            current = ""
    return chunks + ([current] if current else [])


def benchmark_items() -> list[str]:
    """Every question of the five benchmarks with its gold answer, as one text each."""
    items = []
    for name in ("arc_easy", "arc_challenge", "piqa", "openbook_qa", "boolq"):
        with open(SHARED / "benchmarks" / f"{name}.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                items.append(f"{row['query'].strip()}\nAnswer: {row['choices'][row['gold']]}")
    return items


def pieces(texts: list[str], words: int = 80) -> list[str]:
    """Each text cut into pieces of ``words`` words (about 500 characters): PreSelect fits
    its classifier on these, so the pool gives ~7,000 examples to order rather than 2,292
    (the classifier then scores whole documents)."""
    out = []
    for text in texts:
        tokens = text.split()
        out += [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
    return out


def pool_pieces(pool: list[str]) -> tuple[list[str], np.ndarray]:
    """(``pieces`` of every pool document in order, the pool row each piece comes from)."""
    cuts = [pieces([text]) for text in pool]
    owner = np.repeat(np.arange(len(pool)), [len(cut) for cut in cuts])
    return [piece for cut in cuts for piece in cut], owner


def by_domain(order: np.ndarray, source: np.ndarray) -> dict[str, np.ndarray]:
    """``order`` (pool rows) split by source, c4, pile and book, each in ``order``'s order."""
    return {d: order[source[order] == d] for d in ("c4", "pile", "book")}


def follow_up_work(study: Path, work: Path, needs: str) -> None:
    """Set up ``work`` for a script that builds on the study in ``study``: exit saying what
    to run when ``study/needs`` is missing, else give ``work`` the study's tokenizer."""
    if not (study / needs).exists():
        sys.exit(f"{study} has no study models: run benchmarks/selection.py first")
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "tokenizer").is_dir():
        shutil.copytree(study / "tokenizer", work / "tokenizer")


BOOK_FILES = {
    "pride-and-prejudice": "gutenberg-1342-pride-and-prejudice.txt",
    "moby-dick": "gutenberg-2701-moby-dick.txt",
}


def study_data(
    seed: int, pool_book: str = "pride-and-prejudice"
) -> tuple[list[str], np.ndarray, dict[str, tuple[list, list]]]:
    """(pool, the source of each pool document, {target: (fit texts, held-out texts)}).

    ``pool_book`` goes into the pool (source ``book``); the other book is the book target,
    named after itself."""
    c4, pile = documents(1000), documents(2000)[1000:]
    book = book_chunks(BOOK_FILES[pool_book])
    source = np.array(["c4"] * len(c4) + ["pile"] * len(pile) + ["book"] * len(book))
    (other,) = set(BOOK_FILES) - {pool_book}
    target_book = book_chunks(BOOK_FILES[other])
    questions = benchmark_items()
    random.Random(seed).shuffle(questions)
    half = len(questions) // 2
    n = len(target_book)
    targets = {
        other: (target_book[: int(0.6 * n)], target_book[int(0.7 * n) :]),
        "benchmarks": (questions[:half], questions[half : half + 2000]),
    }
    return c4 + pile + book, source, targets


def take_chars(order: np.ndarray, chars: np.ndarray, fraction: float) -> np.ndarray:
    """The shortest prefix of ``order`` whose characters reach ``fraction`` of the total
    (the rule of the selectors' ``by: chars`` cut)."""
    return take_budget(order, chars, fraction * chars.sum())


def take_budget(order: np.ndarray, chars: np.ndarray, budget: float) -> np.ndarray:
    """The shortest prefix of ``order`` whose characters reach ``budget`` (all of it when
    they never do), sorted."""
    reached = np.cumsum(chars[order]) >= budget
    end = int(np.argmax(reached)) + 1 if reached.any() else len(order)
    return np.sort(order[:end])


def reference_rows(mix: tuple[str, ...], domains: dict[str, np.ndarray],
                   chars: np.ndarray) -> np.ndarray:  # fmt: skip
    """The pool rows a reference model of ``mix`` reads: ``REFERENCE_CHARS`` characters in
    equal parts from each domain, each part a prefix of that domain's shuffled rows."""
    parts = [take_budget(domains[d], chars, REFERENCE_CHARS / len(mix)) for d in mix]
    return np.sort(np.concatenate(parts))


class Study:
    """Trains (or reuses, when ``config.json`` is already there) the models under ``work``."""

    def __init__(self, work: Path, preset: str, steps: int, seed: int) -> None:
        self.work, self.preset, self.steps, self.seed = work, preset, steps, seed
        self.trained_tokens = 0

    def model(self, name: str, texts: list[str], init: Path | None = None,
              lr: float = 3e-3, epochs: float | None = None) -> Path:  # fmt: skip
        folder = self.work / name
        if (folder / "config.json").is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        meta = train_lm(
            texts,
            folder,
            preset=self.preset,
            init=init,
            tokenizer_from=None if init else self.work / "tokenizer" / "tokenizer.model",
            train=TrainConfig(steps=self.steps, epochs=epochs, lr=lr, seed=self.seed, held_out=0.0),
            device="cpu",
            log=lambda _m: None,
        )
        seen = meta["training"]["tokens_seen"]
        self.trained_tokens += seen
        print(f"  trained {name}: {len(texts):,} docs, {seen:,} tokens, "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        return folder


def warnings_only(message: str) -> None:
    """A ``log`` for the library's fitting functions that prints only their warnings."""
    if "warning" in message:
        print(f"  {message}", flush=True)


def held_out_loss(folder: Path, texts: list[str]) -> tuple[float, float]:
    """(nats per token, bits per character) of the model over ``texts`` as a whole
    (what `curate eval-lm` prints)."""
    whole = text_loss(load_lm(folder, "cpu"), texts)
    return float(whole["loss"]), float(whole["bits_per_char"])


def multiplier(loss: float, curve: list[tuple[float, float]], tau: float) -> str:
    """Random data (as a multiple of the selection's size) that reaches ``loss``: linear
    interpolation of the random curve's loss in log size."""
    sizes = np.log([f for f, _ in curve])
    losses = np.array([v for _, v in curve])
    if loss <= losses[-1]:
        return f"> {tau:g}x"
    if loss >= losses[0]:
        return f"< {curve[0][0] * tau:.2g}x"
    for i in range(len(curve) - 1):
        hi, lo = losses[i], losses[i + 1]
        if lo <= loss <= hi:
            at = sizes[i] + (hi - loss) / max(hi - lo, 1e-12) * (sizes[i + 1] - sizes[i])
            return f"{math.exp(at) * tau:.2f}x"
    return "n/a (random curve not monotone here)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/_runs/selection"))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=500, help="of 16 x 128 tokens, every model")
    parser.add_argument("--vocab-size", type=int, default=2048, help="the shared tokenizer's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--taus", type=float, nargs="+", default=[4.0, 8.0])
    parser.add_argument("--fresh", action="store_true", help="retrain every model")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--pool-book", choices=sorted(BOOK_FILES), default="pride-and-prejudice",
                        help="the book in the pool; the other one is the book target "
                        "(give the swapped study its own --work)")  # fmt: skip
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    pool, source, targets = study_data(args.seed, args.pool_book)
    chars = np.array([len(t) for t in pool], dtype=np.int64)
    print(f"pool (book: {args.pool_book}): {len(pool):,} documents, {chars.sum():,} characters "
          f"(c4 {sum(source == 'c4')}, pile {sum(source == 'pile')}, "
          f"book chunks {sum(source == 'book')})")  # fmt: skip
    for name, (fit, held) in targets.items():
        print(f"target {name}: fit {len(fit):,} texts, held out {len(held):,} texts "
              f"({sum(map(len, held)):,} characters)")  # fmt: skip

    if not (args.work / "tokenizer" / "tokenizer.model").is_file():
        train_lm_tokenizer(pool, args.work / "tokenizer", args.vocab_size)
    study = Study(args.work, args.preset, args.steps, args.seed)
    rng = np.random.default_rng(args.seed)
    shuffled = {s: np.random.default_rng(args.seed + s).permutation(len(pool)) for s in (0, 1)}

    print("random curve and reference models:")
    curve_models = {f: study.model(f"random-{f:.4f}",
                                   [pool[i] for i in take_chars(shuffled[0], chars, f)])
                    for f in CURVE}  # fmt: skip
    # PreSelect's reference models: the same character budget each, different domain mixes,
    # so what orders them on a target is what they read, not how much
    domains = by_domain(shuffled[0], source)
    references = []
    for mix in REFERENCE_MIXES:
        chosen = reference_rows(mix, domains, chars)
        references.append(study.model(f"reference-{'+'.join(mix)}", [pool[i] for i in chosen]))
    prior = curve_models[1.0]

    results: list[dict] = []
    for target, (fit, held) in targets.items():
        print(f"target {target}:")
        evals: dict[Path, tuple[float, float]] = {}

        def evaluate(folder: Path, held: list[str] = held, evals: dict = evals) -> tuple:
            if folder not in evals:
                evals[folder] = held_out_loss(folder, held)
            return evals[folder]

        curve = [(f, evaluate(m)[0]) for f, m in curve_models.items()]
        conditional = study.model(f"{target}-conditional", fit, init=prior, lr=1e-3, epochs=2)
        prior_losses = document_losses(load_lm(prior, "cpu"), pool)["loss_mean"]
        cond_losses = document_losses(load_lm(conditional, "cpu"), pool)["loss_mean"]
        negatives = [pool[i] for i in rng.choice(len(pool), min(len(fit), len(pool)), False)]
        dclm_path = args.work / f"{target}-dclm.bin"
        train_classifier(fit, negatives, dclm_path, seed=args.seed)
        one_line = flatten(pa.array(pool, pa.large_string()))
        dclm = positive_probability(load_classifier(str(dclm_path)), one_line, "hq")
        ref_scores = [-held_out_loss(r, fit)[1] for r in references]
        pre_path = args.work / f"{target}-preselect.bin"
        fitted = train_preselect(pieces(pool), [str(r) for r in references], ref_scores, pre_path,
                                 seed=args.seed, device="cpu", log=warnings_only)  # fmt: skip
        pre = positive_probability(load_classifier(str(pre_path)), one_line, "pos")
        print(f"  preselect: {fitted['positives']} positives, {fitted['negatives']} negatives, "
              f"held-out probability spread {fitted['metrics']['spread']}, "
              f"reference scores {[round(float(s), 3) for s in ref_scores]}")  # fmt: skip
        scores = {
            "color_filter": color_scores(prior_losses, cond_losses),
            "conditional_loss": -cond_losses,
            "dclm_fasttext": dclm,
            "preselect": pre,
        }
        for tau in args.taus:
            second = study.model(
                f"random-{1 / tau:.4f}-seed1",
                [pool[i] for i in take_chars(shuffled[1], chars, 1 / tau)],
            )
            # the baseline: the mean of the two random selections of this size
            base_loss = (evaluate(curve_models[1 / tau])[0] + evaluate(second)[0]) / 2
            rows = [("random", curve_models[1 / tau], None), ("random (seed 1)", second, None)]
            for method in METHODS:
                score = np.nan_to_num(scores[method], nan=-np.inf)
                chosen = take_chars(np.argsort(-score, kind="stable"), chars, 1 / tau)
                folder = study.model(f"{target}-{method}-tau{tau:g}", [pool[i] for i in chosen])
                rows.append((method, folder, chosen))
            for method, folder, chosen in rows:
                loss, bpc = evaluate(folder)
                share = {s: float(np.mean(source[chosen] == s)) for s in ("c4", "pile", "book")} \
                    if chosen is not None else None  # fmt: skip
                results.append({
                    "target": target, "tau": tau, "method": method, "loss": loss, "bpc": bpc,
                    "vs_random": loss - base_loss, "multiplier": multiplier(loss, curve, tau),
                    "share": share,
                })  # fmt: skip
                print(f"  tau {tau:g} {method:17s} loss {loss:.4f} ({loss - base_loss:+.4f} "
                      f"vs random) bpc {bpc:.4f} multiplier {results[-1]['multiplier']}"
                      + (f" share {share}" if share else ""), flush=True)  # fmt: skip
        print(f"  random curve: {[(round(f, 4), round(v, 4)) for f, v in curve]}")

    print()
    print(
        "| target | tau | method | held-out loss (nats/token) | vs random | bits/char | "
        "data multiplier | selected c4 / pile / book |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        share = " / ".join(f"{r['share'][s]:.0%}" for s in ("c4", "pile", "book")) \
            if r["share"] else "-"  # fmt: skip
        print(
            f"| {r['target']} | {r['tau']:g} | {r['method']} | {r['loss']:.4f} | "
            f"{r['vs_random']:+.4f} | {r['bpc']:.4f} | {r['multiplier']} | {share} |"
        )
    print(f"\n{study.trained_tokens:,} tokens trained this run, "
          f"{time.perf_counter() - started:.0f} s in all")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
