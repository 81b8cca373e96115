"""How much of each selector's ranking survives retraining its models with another seed?
(issue 6)

The selection study (``benchmarks/selection.py``) found CoLoR-Filter better than random in
every cell and PreSelect's wins not robust to a change of pool. This asks why, without
training any selection: it retrains the models each selector rests on with a second seed
(same data, same steps; only the initialisation and batch order change) and measures how
much of the selector's labels and ranking come back.

- PreSelect's three reference models (C4, Pile, C4 + book), retrained with ``--seed``:
  their target scores; for each pair of references, the correlation across the pool's
  80-word pieces of the pair's bits-per-character difference under the study's models and
  under the retrained ones (1 = every piece prefers the same model by the same margin),
  and the share of that difference's variance that the piece's source (C4, Pile, book)
  explains;
  the predictive-strength labels (perfectly ordered pieces) under each, their overlap
  against what two independent draws of those sizes would share, and the Spearman
  correlation of the strength counts;
- the classifier fitted on the retrained labels (fastText at PreSelect's defaults, as the
  study's), and, to separate the classifier's own noise, one fitted on the study's labels
  with another fastText seed: each one's Spearman correlation with the study's classifier
  over the pool's documents, and the share of the study's top 1/8 (by characters) it
  keeps (random keeps about 1/8);
- CoLoR-Filter: the prior (the whole pool) and the conditional model (the prior fine-tuned
  on the target's fit part) retrained with ``--seed``: the same two figures for its score.

Run after ``benchmarks/selection.py`` (it reads that study's tokenizer and models under
``--study``); the retrained models go under ``--work``. With ``--pool-book moby-dick``,
point ``--study`` at the swapped study.

Run:  .venv/bin/python benchmarks/selection_reliability.py   (about 6 minutes on two cores)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.selection import (
    BOOK_FILES,
    REFERENCE_MIXES,
    Study,
    by_domain,
    follow_up_work,
    held_out_loss,
    pool_pieces,
    reference_rows,
    study_data,
    take_chars,
)
from curation.lm.train import document_losses, load_lm
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

TOP = 1 / 8


def kept_share(a: np.ndarray, b: np.ndarray, chars: np.ndarray) -> float:
    """Share of the characters of ``a``'s top ``TOP`` (best first by score) that ``b``'s
    top ``TOP`` also holds."""
    top_a = take_chars(np.argsort(-a, kind="stable"), chars, TOP)
    top_b = take_chars(np.argsort(-b, kind="stable"), chars, TOP)
    return float(chars[np.intersect1d(top_a, top_b)].sum() / chars[top_a].sum())


def agreement(a: np.ndarray, b: np.ndarray, chars: np.ndarray) -> dict[str, float]:
    """Spearman correlation of two scores over the pool, and the top-1/8 share kept."""
    return {"spearman": float(spearmanr(a, b).statistic), "top_kept": kept_share(a, b, chars)}


def explained_by(values: np.ndarray, groups: np.ndarray) -> float:
    """Share of the variance of ``values`` that their group means explain (R squared)."""
    fitted = np.zeros_like(values)
    for group in np.unique(groups):
        fitted[groups == group] = values[groups == group].mean()
    return float(1 - ((values - fitted) ** 2).sum() / ((values - values.mean()) ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, default=Path("benchmarks/_runs/selection"))
    parser.add_argument("--work", type=Path, default=Path("benchmarks/_runs/reliability"))
    parser.add_argument("--pool-book", choices=sorted(BOOK_FILES), default="pride-and-prejudice",
                        help="the study's pool book (selection.py --pool-book)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="the retrained models' seed")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    follow_up_work(args.study, args.work, "random-1.0000/config.json")

    pool, source, targets = study_data(0, args.pool_book)
    chars = np.array([len(t) for t in pool], dtype=np.int64)
    one_line = flatten(pa.array(pool, pa.large_string()))
    texts, owner = pool_pieces(pool)
    retrain = Study(args.work, "tiny", 500, args.seed)
    shuffled = np.random.default_rng(0).permutation(len(pool))  # the study's seed-0 order
    domains = by_domain(shuffled, source)
    names = ["+".join(mix) for mix in REFERENCE_MIXES]
    refs = {
        "study": [args.study / f"reference-{n}" for n in names],
        "retrained": [retrain.model(f"reference-{n}", [pool[i] for i in
                                    reference_rows(mix, domains, chars)])
                      for n, mix in zip(names, REFERENCE_MIXES, strict=True)],
    }  # fmt: skip
    bpc = {k: np.stack([document_losses(load_lm(f, "cpu"), texts)["bpc"] for f in folders], 1)
           for k, folders in refs.items()}  # fmt: skip
    # how reproducible is each pair's per-piece preference, whatever the target
    # and how much of it the source of the piece (C4, Pile, book) explains
    pair_corr, source_r2 = {}, {}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            d0 = bpc["study"][:, i] - bpc["study"][:, j]
            d1 = bpc["retrained"][:, i] - bpc["retrained"][:, j]
            pair = f"{names[i]} vs {names[j]}"
            pair_corr[pair] = float(np.corrcoef(d0, d1)[0, 1])
            source_r2[pair] = explained_by(d0, source[owner])
    print(f"{len(texts):,} pieces; per-piece bits/char difference of each reference pair, "
          f"correlation between the study's models and the retrained ones: "
          + ", ".join(f"{k} {v:.3f}" for k, v in pair_corr.items())
          + "; share of its variance the piece's source explains: "
          + ", ".join(f"{k} {v:.2f}" for k, v in source_r2.items()), flush=True)  # fmt: skip
    prior = {"study": args.study / "random-1.0000",
             "retrained": retrain.model("random-1.0000", pool)}  # fmt: skip
    prior_loss = {k: document_losses(load_lm(f, "cpu"), pool)["loss_mean"]
                  for k, f in prior.items()}  # fmt: skip

    results = []
    pairs = len(names) * (len(names) - 1) // 2
    for target, (fit, _held) in targets.items():
        scores = {k: [-held_out_loss(f, fit)[1] for f in folders] for k, folders in refs.items()}
        strength = {k: predictive_strength(bpc[k], scores[k]) for k in refs}
        examples = {k: choose_examples(strength[k], pairs, 0) for k in refs}
        positives = {k: examples[k][0] for k in refs}
        overlap = len(np.intersect1d(positives["study"], positives["retrained"]))
        chance = len(positives["study"]) * len(positives["retrained"]) / len(texts)
        study_score = positive_probability(
            load_classifier(str(args.study / f"{target}-preselect.bin")), one_line, "pos"
        )
        refit = {}
        for name, labels_from, seed in (
            ("retrained labels", "retrained", 0),
            ("study labels, fastText seed 1", "study", 1),
        ):
            pos, neg = examples[labels_from]
            path = args.work / f"{target}-preselect-{labels_from}-ft{seed}.bin"
            train_classifier(
                [texts[i] for i in pos],
                [texts[i] for i in neg],
                path,
                labels=LABELS,
                seed=seed,
                fasttext_args=dict(FASTTEXT_DEFAULTS),
            )
            score = positive_probability(load_classifier(str(path)), one_line, "pos")
            refit[name] = agreement(study_score, score, chars)
        conditional = {
            "study": args.study / f"{target}-conditional",
            "retrained": retrain.model(f"{target}-conditional", fit, init=prior["retrained"],
                                       lr=1e-3, epochs=2),
        }  # fmt: skip
        color = {k: color_scores(prior_loss[k],
                                 document_losses(load_lm(f, "cpu"), pool)["loss_mean"])
                 for k, f in conditional.items()}  # fmt: skip
        row = {
            "pool_book": args.pool_book, "target": target,
            "reference_scores": {k: [round(float(s), 4) for s in v] for k, v in scores.items()},
            "positives": {k: len(v) for k, v in positives.items()},
            "positive_overlap": overlap, "positive_overlap_chance": chance,
            "strength_spearman": float(spearmanr(strength["study"],
                                                 strength["retrained"]).statistic),
            "preselect": refit,
            "color_filter": agreement(color["study"], color["retrained"], chars),
        }  # fmt: skip
        results.append(row)
        print(f"target {target}: reference scores (minus bits/char on the fit part) study "
              f"{row['reference_scores']['study']}, retrained "
              f"{row['reference_scores']['retrained']}", flush=True)  # fmt: skip
        print(f"  positives {positives['study'].size} / {positives['retrained'].size}, "
              f"{overlap} in both ({chance:.0f} by chance); strength Spearman "
              f"{row['strength_spearman']:.3f}")  # fmt: skip
        for name, value in refit.items():
            print(f"  preselect, {name}: Spearman {value['spearman']:.3f}, "
                  f"top 1/8 kept {value['top_kept']:.0%}")  # fmt: skip
        print(f"  color_filter, retrained prior and conditional: Spearman "
              f"{row['color_filter']['spearman']:.3f}, top 1/8 kept "
              f"{row['color_filter']['top_kept']:.0%}", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"pair_correlation": pair_corr, "source_r2": source_r2,
                                         "targets": results},
                                        indent=1) + "\n", encoding="utf-8")  # fmt: skip


if __name__ == "__main__":
    main()
