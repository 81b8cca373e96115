"""Model scoring stages against the raw libraries, on one core, in one run.

Data: the real C4 and Pile samples, repeated to ``--docs`` documents. Models: a KenLM
model trained by ``curate train-kenlm`` on ../shared/data/reference, and a fastText
classifier trained by ``curate train-fasttext`` on the DCLM human quality labels.

- ``kenlm_perplexity`` (normalise, SentencePiece, score every paragraph, CCNet's
  length-weighted perplexity, Arrow columns) against a plain loop of
  ``kenlm.Model.score`` over the same paragraphs already normalised and cut into pieces.
- ``fasttext_classifier`` (every label's probability as columns) against a plain loop of
  fastText ``predict`` over the same one-line texts.

    .venv/bin/python benchmarks/scoring_speed.py --docs 10000
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import pyarrow as pa
from common import SHARED, best_of, documents

from curation.batch import conform
from curation.stage import registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import pyarrow

    pyarrow.set_cpu_count(1)
    from curation.scoring.classifier import flatten, train_classifier
    from curation.scoring.kenlm import load_model, split_paragraphs, train_kenlm

    texts = documents(args.docs)
    batches = [
        conform(pa.table({"id": [str(i) for i in range(lo, lo + len(chunk))], "text": chunk}))
        for lo in range(0, len(texts), args.batch_rows)
        for chunk in [texts[lo : lo + args.batch_rows]]
    ]
    work = Path(tempfile.mkdtemp(prefix="scoring-bench-"))
    train_kenlm([str(SHARED / "reference")], work / "kenlm", log=lambda m: None)
    rows = [json.loads(x) for x in open(SHARED / "quality" / "dclm-human-quality-majority.jsonl")]
    train_classifier(
        [r["text"] for r in rows if r["label"] == 1],
        [r["text"] for r in rows if r["label"] == 0],
        work / "quality.bin",
    )
    stages = registry()
    print(f"# machine: {platform.processor() or platform.machine()}, one core, {args.docs:,} docs")
    print("\n| job | seconds | docs/s | overhead vs plain loop |")
    print("|---|---:|---:|---:|")

    # KenLM: the plain loop gets paragraphs already normalised and cut into pieces
    model = load_model(work / "kenlm")
    normalised: list[str] = []
    for batch in batches:
        normalised += split_paragraphs(batch["text"])[0].to_pylist()
    prepared = [" ".join(p) for p in model.tokenizer.encode(normalised, out_type=str)]
    score, encode = model.model.score, model.tokenizer.encode
    stage = stages["kenlm_perplexity"](stages["kenlm_perplexity"].Params(model=str(work / "kenlm")))
    stage.setup()
    plain, user, ours = best_of(
        args.repeats,
        lambda: [score(line, bos=True, eos=True) for line in prepared],
        lambda: [score(" ".join(encode(line, out_type=str))) for line in normalised],
        lambda: [stage.process(b) for b in batches],
    )
    print(
        f"| kenlm.Model.score loop, pieces given ({len(prepared):,} paragraphs) | "
        f"{plain:.2f} | {args.docs / plain:,.0f} | 1.00x |"
    )
    print(
        f"| SentencePiece encode + score loop, normalised text given | {user:.2f} | "
        f"{args.docs / user:,.0f} | {user / plain:.2f}x |"
    )
    print(
        f"| kenlm_perplexity stage, from raw text | {ours:.2f} | {args.docs / ours:,.0f} | "
        f"{ours / plain:.2f}x ({ours / user:.2f}x the encode + score loop) |"
    )

    import fasttext

    classifier = fasttext.load_model(str(work / "quality.bin"))
    one_line = [t for b in batches for t in flatten(b["text"])]
    stage = stages["fasttext_classifier"](
        stages["fasttext_classifier"].Params(model=str(work / "quality.bin"), name="quality")
    )
    stage.setup()
    plain, ours = best_of(
        args.repeats,
        lambda: [classifier.predict(t, k=-1) for t in one_line],
        lambda: [stage.process(b) for b in batches],
    )
    print(f"| fastText predict loop | {plain:.2f} | {args.docs / plain:,.0f} | 1.00x |")
    print(
        f"| fasttext_classifier stage | {ours:.2f} | {args.docs / ours:,.0f} | "
        f"{ours / plain:.2f}x |"
    )


if __name__ == "__main__":
    main()
