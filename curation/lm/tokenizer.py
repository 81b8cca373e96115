"""SentencePiece tokenizers trained by the engine (for KenLM models and language models).

``train_sentencepiece`` is the one training call both users share: a unigram model over a
file of lines. Language models add byte fallback, so every string has an encoding and no
character is lost to ``<unk>``; KenLM models keep SentencePiece's defaults.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import sentencepiece

#: Ids the language-model tokenizer reserves (SentencePiece's defaults, pad added).
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_sentencepiece(
    lines_file: str | Path,
    model_prefix: str | Path,
    vocab_size: int,
    *,
    byte_fallback: bool = False,
    with_pad: bool = False,
) -> sentencepiece.SentencePieceProcessor:
    """Train a unigram SentencePiece model on ``lines_file`` (one sentence or paragraph a
    line) into ``<model_prefix>.model`` and return it loaded. ``vocab_size`` is an upper
    bound when the text is too small for it. ``with_pad`` puts ``<pad>`` at id 0, ``<unk>``
    1, ``<s>`` 2 and ``</s>`` 3 (language models)."""
    extra: dict[str, object] = {}
    if with_pad:
        extra.update(pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID)
    try:
        sentencepiece.SentencePieceTrainer.train(
            input=str(lines_file),
            model_prefix=str(model_prefix),
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            model_type="unigram",
            character_coverage=0.9999,
            byte_fallback=byte_fallback,
            input_sentence_size=2_000_000,
            shuffle_input_sentence=True,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
            **extra,
        )
    except RuntimeError as err:  # its internal check, said as what to do
        short = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(err))
        if short is None:
            raise
        raise ValueError(
            f"a vocabulary of {vocab_size:,} pieces is too small for this text: its "
            f"characters and the special pieces take {int(short[1]):,}; give a vocabulary "
            "size of at least that (--vocab-size)"
        ) from None
    processor = sentencepiece.SentencePieceProcessor()
    processor.Load(f"{model_prefix}.model")
    return processor


def train_lm_tokenizer(
    texts: list[str], folder: str | Path, vocab_size: int = 8000
) -> sentencepiece.SentencePieceProcessor:
    """The tokenizer of a language model: trained on the lines of ``texts`` into
    ``folder/tokenizer.model``, with byte fallback and the reserved ids above."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines_file = folder / "tokenizer-input.txt"
    with open(lines_file, "w", encoding="utf-8") as handle:
        for text in texts:
            for line in text.split("\n"):
                if line.strip():
                    handle.write(line.strip() + "\n")
    # byte fallback needs its 256 byte pieces inside the vocabulary
    try:
        processor = train_sentencepiece(
            lines_file,
            folder / "tokenizer",
            max(vocab_size, 300),
            byte_fallback=True,
            with_pad=True,
        )
    finally:
        lines_file.unlink()
    (folder / "tokenizer.vocab").unlink(missing_ok=True)
    return processor


def load_tokenizer(path: str | Path) -> sentencepiece.SentencePieceProcessor:
    """Load a SentencePiece model file; a missing or unreadable file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tokenizer file is missing")
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(str(path))
    except (OSError, RuntimeError) as err:
        raise ValueError(f"{path} is not a SentencePiece model: {err}") from None
    return processor
