"""Why PreSelect loses to random on Moby-Dick at tau 8 (issue 6): the study's cell, redone
with one thing changed at a time.

Runs after ``benchmarks/selection.py`` (it reuses that study's tokenizer, reference models,
PreSelect classifier and selection models under ``--study``); the models it adds go under
``--work``. Every model is the study's: tiny preset, 500 steps of 16 x 128 tokens, unless
the variant says otherwise. "vs random" is against the mean of the study's two random
selections of the same size (their gap is the noise).

Variants (each keeps 1/tau of the pool's characters by its score, best first):

- ``as run``: the study's classifier (fastText at PreSelect's 3 epochs, lr 0.1);
- ``fitted``: the same examples, the classifier fitted (25 epochs);
- ``unseen``: fitted only on the pieces no reference model read (no memorisation);
- ``external``: three references trained outside the pool (WikiText, news articles, the DCLM
  human-labelled web pages), as the paper's references are public models;
- ``five``: five pool references (C4, Pile, book, C4 + book, Pile + book);
- ``ladder``: six references that differ in capability, not in data, as the paper's Llama
  family does: one model trained on all the text from outside the pool for 60, 125, 250,
  500, 1,000 and 2,000 steps (runs for the benchmark target too);
- ``capped``: the study's score with the book held to 30% of the characters (not PreSelect:
  it shows what its ranking of the web documents is worth);
- ``4 epochs``: random, PreSelect and CoLoR-Filter trained 4 passes over their selection
  (compute grows with the data) instead of equal compute.

``--target benchmarks`` runs only the as-run, fitted and ladder variants on the benchmark
target; ``--variants`` picks some of the variants by name;
``--pool-book moby-dick`` (with ``--study`` and ``--work`` of the swapped study) redoes them
on the study with the books swapped.

Run:  .venv/bin/python benchmarks/preselect_variants.py   (about 15 minutes on two cores)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import SHARED
from benchmarks.selection import (
    BOOK_FILES,
    REFERENCE_CHARS,
    REFERENCE_MIXES,
    Study,
    by_domain,
    follow_up_work,
    held_out_loss,
    pool_pieces,
    reference_rows,
    study_data,
    take_budget,
    take_chars,
)
from curation.lm.train import document_losses, encode_present, load_lm, same_tokenizer
from curation.scoring.classifier import (
    flatten,
    load_classifier,
    positive_probability,
    train_classifier,
)
from curation.selectors.color_filter import color_scores
from curation.selectors.preselect import (
    FASTTEXT_DEFAULTS,
    LABELS,
    choose_examples,
    predictive_strength,
)

TAUS = (4.0, 8.0)
LADDER_STEPS = (60, 125, 250, 500, 1000, 2000)
VARIANTS = ("fitted", "unseen", "external", "five", "ladder", "capped", "4 epochs")


def external_texts() -> dict[str, list[str]]:
    """Text from outside the pool: WikiText articles, news articles, DCLM's web pages."""
    wiki = (SHARED / "reference" / "wikitext-2-valid.txt").read_text(encoding="utf-8")
    news = (SHARED / "dedup" / "articles_1000.train").read_text(encoding="utf-8")
    with open(SHARED / "quality" / "dclm-human-quality-majority.jsonl", encoding="utf-8") as f:
        dclm = [json.loads(line)["text"] for line in f]
    return {
        "wiki": [line.strip() for line in wiki.split("\n") if len(line.strip()) > 200],
        "news": [line.split(" ", 1)[1] for line in news.splitlines()],
        "dclm": dclm,
    }


def first_chars(texts: list[str], budget: int) -> list[str]:
    """The first texts whose characters reach ``budget``."""
    out, total = [], 0
    for text in texts:
        if total >= budget:
            break
        out.append(text)
        total += len(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, default=Path("benchmarks/_runs/selection"))
    parser.add_argument("--work", type=Path, default=Path("benchmarks/_runs/preselect_variants"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--target", choices=(*BOOK_FILES, "benchmarks"), default="moby-dick",
                        help="the book target (every variant) or benchmarks (only the as-run, "
                        "fitted and ladder variants)")  # fmt: skip
    parser.add_argument("--pool-book", choices=sorted(BOOK_FILES), default="pride-and-prejudice",
                        help="the study's pool book (selection.py --pool-book)")  # fmt: skip
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, of: {', '.join(VARIANTS)} (as run always runs)",
    )
    args = parser.parse_args()
    target = args.target
    wanted = {v.strip() for v in args.variants.split(",") if v.strip()}
    if unknown := wanted - set(VARIANTS):
        sys.exit(f"unknown variants {sorted(unknown)}: choose from {', '.join(VARIANTS)}")
    if target == "benchmarks":
        wanted &= {"fitted", "ladder"}
    if target == args.pool_book:
        sys.exit(f"{target} is the pool's book; the book target is the other one")
    follow_up_work(args.study, args.work, f"{target}-preselect.bin")

    pool, source, targets = study_data(0, args.pool_book)
    fit, held = targets[target]
    chars = np.array([len(t) for t in pool], dtype=np.int64)
    one_line = flatten(pa.array(pool, pa.large_string()))
    study = Study(args.work, "tiny", 500, 0)
    shuffled = {s: np.random.default_rng(s).permutation(len(pool)) for s in (0, 1)}
    domains = by_domain(shuffled[0], source)
    base = {tau: np.mean([held_out_loss(args.study / name, held)[0] for name in
                          (f"random-{1 / tau:.4f}", f"random-{1 / tau:.4f}-seed1")])
            for tau in TAUS}  # fmt: skip
    results: list[dict] = []

    def report(variant: str, tau: float, loss: float, chosen: np.ndarray | None, **extra) -> None:
        book = float(chars[chosen][source[chosen] == "book"].sum() / chars[chosen].sum()) \
            if chosen is not None else None  # fmt: skip
        results.append({"variant": variant, "tau": tau, "loss": loss, "book_chars": book,
                        "vs_random": loss - base[tau], **extra})  # fmt: skip
        print(f"{variant:10s} tau {tau:g}: loss {loss:.4f} ({loss - base[tau]:+.4f} vs random)"
              + (f", book {book:.0%} of the characters" if book is not None else "")
              + "".join(f", {k} {v}" for k, v in extra.items()), flush=True)  # fmt: skip

    def select(variant: str, score: np.ndarray, **extra) -> None:
        for tau in TAUS:
            chosen = take_chars(np.argsort(-score, kind="stable"), chars, 1 / tau)
            folder = study.model(f"{variant}-tau{tau:g}", [pool[i] for i in chosen])
            report(variant, tau, held_out_loss(folder, held)[0], chosen, **extra)

    # the pool in 80-word pieces, with the domain and whether a pool reference read it
    texts, owner = pool_pieces(pool)
    seen = np.zeros(len(pool), dtype=bool)
    for mix in REFERENCE_MIXES:
        seen[reference_rows(mix, domains, chars)] = True

    def reference(mix: tuple[str, ...]) -> Path:
        name = f"reference-{'+'.join(mix)}"
        if (args.study / name / "config.json").is_file():
            return args.study / name
        return study.model(name, [pool[i] for i in reference_rows(mix, domains, chars)])

    bpc: dict[str, np.ndarray] = {}

    def fit_scores(refs: dict[str, Path], rows: np.ndarray, variant: str, **ft) -> tuple:
        """PreSelect fitted on ``rows`` of the pieces: (pool scores, positives, spread)."""
        for name, folder in refs.items():
            if name not in bpc:
                bpc[name] = document_losses(load_lm(folder, "cpu"), texts)["bpc"]
        ref_scores = [-held_out_loss(folder, fit)[1] for folder in refs.values()]
        strength = predictive_strength(np.stack([bpc[n][rows] for n in refs], 1), ref_scores)
        pos, neg = choose_examples(strength, len(refs) * (len(refs) - 1) // 2, 0)
        path = args.work / f"{variant}.bin"
        meta = train_classifier([texts[rows[i]] for i in pos], [texts[rows[i]] for i in neg],
                                path, labels=LABELS, seed=0,
                                fasttext_args={**FASTTEXT_DEFAULTS, **ft})  # fmt: skip
        score = positive_probability(load_classifier(str(path)), one_line, "pos")
        return score, {"positives": len(pos), "spread": meta["metrics"]["spread"],
                       "target_bpc": [round(float(-v), 4) for v in ref_scores]}  # fmt: skip

    pool_refs = {"+".join(m): reference(m) for m in REFERENCE_MIXES}
    everything = np.arange(len(texts))
    # the study's classifier over the pool, best first (as run, and capped below)
    order = np.argsort(-positive_probability(
        load_classifier(str(args.study / f"{target}-preselect.bin")), one_line, "pos"),
        kind="stable")  # fmt: skip
    for tau in TAUS:
        chosen = take_chars(order, chars, 1 / tau)
        loss = held_out_loss(args.study / f"{target}-preselect-tau{tau:g}", held)[0]
        report("as run", tau, loss, chosen)
    if "fitted" in wanted:
        fitted = "fitted" if target != "benchmarks" else f"fitted-{target}"
        score, info = fit_scores(pool_refs, everything, fitted, epoch=25)
        select(fitted, score, **info)
    if "unseen" in wanted:
        score, info = fit_scores(pool_refs, np.flatnonzero(~seen[owner]), "unseen")
        select("unseen", score, **info)
    outside = external_texts()
    if "external" in wanted:
        external = {n: study.model(f"reference-{n}", first_chars(t, REFERENCE_CHARS))
                    for n, t in outside.items()}  # fmt: skip
        score, info = fit_scores(external, everything, "external")
        select("external", score, **info)
    if "five" in wanted:
        five = {**pool_refs, **{"+".join(m): reference(m) for m in (("book",), ("pile", "book"))}}
        score, info = fit_scores(five, everything, "five")
        select("five", score, **info)
    if "ladder" in wanted:
        # one model, trained longer and longer on the same text from outside the pool
        everything_outside = [text for texts in outside.values() for text in texts]
        ladder = {f"ladder-{steps}": Study(args.work, "tiny", steps, 0).model(
                      f"reference-ladder-{steps}", everything_outside)
                  for steps in LADDER_STEPS}  # fmt: skip
        score, info = fit_scores(ladder, everything, f"ladder-{target}")
        select(f"ladder-{target}", score, **info)

    if "capped" in wanted:
        # the study's ranking, the book held to 30% of each selection's characters
        for tau in TAUS:
            budget = chars.sum() / tau
            books = take_budget(order[source[order] == "book"], chars, 0.3 * budget)
            rest = take_budget(order[source[order] != "book"], chars,
                               budget - chars[books].sum())  # fmt: skip
            chosen = np.sort(np.concatenate([books, rest]))
            folder = study.model(f"capped-tau{tau:g}", [pool[i] for i in chosen])
            report("capped", tau, held_out_loss(folder, held)[0], chosen)

    if "4 epochs" in wanted:
        # four passes over each selection instead of equal compute (its own random baseline)
        # the conditional model is fine-tuned from the prior: one encoding serves both
        prior_lm = load_lm(args.study / "random-1.0000", "cpu")
        cond_lm = load_lm(args.study / f"{target}-conditional", "cpu")
        assert same_tokenizer(prior_lm, cond_lm)
        encoded = encode_present(prior_lm, pool)
        prior = document_losses(prior_lm, pool, encoded=encoded)["loss_mean"]
        cond = document_losses(cond_lm, pool, encoded=encoded)["loss_mean"]
        color = np.argsort(-color_scores(prior, cond), kind="stable")
        for tau in TAUS:
            orders = {"random": shuffled[0], "random (seed 1)": shuffled[1],
                      "preselect": order, "color_filter": color}  # fmt: skip
            losses = {}
            for name, rank in orders.items():
                chosen = take_chars(rank, chars, 1 / tau)
                folder = study.model(f"e4-{name.replace(' ', '')}-tau{tau:g}",
                                     [pool[i] for i in chosen], epochs=4)  # fmt: skip
                losses[name] = held_out_loss(folder, held)[0]
            mean = (losses["random"] + losses["random (seed 1)"]) / 2
            line = ", ".join(f"{k} {v:.4f} ({v - mean:+.4f})" for k, v in losses.items())
            print(f"4 epochs   tau {tau:g}: {line}", flush=True)
            results.append({"variant": "4 epochs", "tau": tau,
                            "vs_own_random": {k: v - mean for k, v in losses.items()}})  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
