"""KenLM language models trained by the engine, and CCNet's document perplexity.

A model folder (``curate train-kenlm``) holds:

- ``sp.model``: a SentencePiece unigram tokenizer trained on the normalised text;
- ``model.bin``: KenLM's binary n-gram model over those pieces (``lmplz`` then
  ``build_binary``, built from the ``kenlm`` source distribution by
  ``scripts/build-kenlm.sh``);
- ``kenlm.json``: what it was trained on (inputs, lines, pieces, order, vocabulary,
  versions) and the perplexity percentiles of its held-out paragraphs (one in 20 of the
  training text's paragraphs is held out for them).

Document perplexity, as CCNet computes it: each line (paragraph) is normalised
(``curation.scoring.normalize``), cut into pieces and scored by KenLM with sentence
boundaries (log10 probability); a document's perplexity is ``10 ** (-sum(log10 p) /
sum(pieces + 1))`` over its non-empty lines, so long paragraphs weigh more.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.io.readers import live_texts
from curation.lm.tokenizer import train_sentencepiece
from curation.scoring.normalize import split_paragraphs

MODEL_FILE = "model.bin"
TOKENIZER_FILE = "sp.model"
META_FILE = "kenlm.json"
_BINARY_MAGIC = b"mmap lm http://kheafield.com/code"
_REPO = Path(__file__).resolve().parents[2]
#: One training paragraph in this many is held out to measure perplexity percentiles.
HOLD_OUT = 20


class ModelError(ValueError):
    """A model file is missing or unreadable; the message names it and what to do."""


class ToolMissing(RuntimeError):
    """KenLM's command-line tools are not built; the message says how to build them."""


def kenlm_tool(name: str) -> Path:
    """Path of KenLM's ``lmplz`` or ``build_binary``.

    Looked up in ``$CURATION_KENLM_BIN``, then on ``PATH``, then in this checkout's
    ``build/kenlm/bin`` (where ``make kenlm`` puts them).
    """
    candidates = []
    if os.environ.get("CURATION_KENLM_BIN"):
        candidates.append(Path(os.environ["CURATION_KENLM_BIN"]) / name)
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    candidates.append(_REPO / "build" / "kenlm" / "bin" / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ToolMissing(
        f"KenLM's {name} was not found (looked in $CURATION_KENLM_BIN, PATH and "
        f"{_REPO / 'build/kenlm/bin'}): run `make kenlm`, which builds it from the kenlm "
        "source distribution, or set CURATION_KENLM_BIN to the folder that holds it"
    )


@dataclass(frozen=True)
class KenlmModel:
    """A loaded model folder: the KenLM model and its SentencePiece tokenizer."""

    folder: Path
    model: Any
    tokenizer: Any
    meta: dict[str, Any]


def check_model_folder(folder: str | Path) -> Path:
    """Validate a model folder without loading it (fast: headers only).

    Raises ``ModelError`` naming the missing or corrupt file.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ModelError(
            f"KenLM model folder {path} does not exist: train one with `curate train-kenlm "
            f"--input TEXT --output {path}`"
        )
    for name in (MODEL_FILE, TOKENIZER_FILE, META_FILE):
        if not (path / name).is_file():
            raise ModelError(
                f"{path / name} is missing: {path} is not a complete `curate train-kenlm` "
                "output; train the model again"
            )
    with open(path / MODEL_FILE, "rb") as handle:
        head = handle.read(len(_BINARY_MAGIC))
    if head != _BINARY_MAGIC:
        raise ModelError(f"{path / MODEL_FILE} is not a KenLM binary model (corrupt or wrong file)")
    try:
        json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"{path / META_FILE} is not valid JSON: {err}") from None
    return path


def load_model(folder: str | Path) -> KenlmModel:
    """Load a model folder made by ``train_kenlm``; ``ModelError`` names a bad file."""
    import kenlm
    import sentencepiece

    path = check_model_folder(folder)
    try:
        model = kenlm.Model(str(path / MODEL_FILE))
    except (OSError, RuntimeError) as err:
        raise ModelError(f"{path / MODEL_FILE} cannot be loaded by KenLM: {err}") from None
    tokenizer = sentencepiece.SentencePieceProcessor()
    try:
        tokenizer.Load(str(path / TOKENIZER_FILE))
    except (OSError, RuntimeError) as err:
        raise ModelError(f"{path / TOKENIZER_FILE} is not a SentencePiece model: {err}") from None
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    return KenlmModel(path, model, tokenizer, meta)


def perplexity(
    model: KenlmModel, texts: pa.Array | pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray]:
    """CCNet's perplexity of each text and its number of scored pieces (+1 per line).

    Texts with no non-empty line get NaN.
    """
    lines, owner = split_paragraphs(texts)
    # one line at a time (SentencePiece's list form is slower here, with its thread pool);
    # map() keeps the loop in C. SentencePiece escapes spaces (as U+2581), so the pieces
    # of a line are the spaces of its joined form plus one; the length adds the end of line.
    joined = list(map(" ".join, map(model.tokenizer.EncodeAsPieces, lines.to_pylist())))
    logs = np.fromiter(map(model.model.score, joined), dtype=np.float64, count=len(joined))
    pieces = pa.array(joined, pa.large_string())
    lengths = np.asarray(pc.count_substring(pieces, " "), dtype=np.float64) + 2.0
    lengths[np.asarray(pc.equal(pc.binary_length(pieces), 0))] = 1.0  # no piece: end only
    n = len(texts)
    total_log = np.bincount(owner, weights=logs, minlength=n)
    total_len = np.bincount(owner, weights=lengths, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(total_len > 0, 10.0 ** (-total_log / total_len), np.nan)
    return values, total_len.astype(np.int64)


# --------------------------------------------------------------------------- training


def train_kenlm(
    inputs: list[str],
    output: str | Path,
    order: int = 5,
    vocab_size: int = 8000,
    text_field: str = "text",
    memory: str = "20%",
    log: Any = print,
) -> dict[str, Any]:
    """Train a tokenizer and a KenLM model on the text of ``inputs`` into ``output``.

    Writes ``sp.model``, ``model.bin`` and ``kenlm.json`` into a temporary folder next to
    ``output`` and moves it into place at the end, so ``output`` is complete or absent.
    Returns the metadata written.
    """

    lmplz, build_binary = kenlm_tool("lmplz"), kenlm_tool("build_binary")
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: choose a new --output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        work = Path(tmp)
        normalized = work / "normalized.txt"
        held_out: list[str] = []  # every HOLD_OUT-th paragraph: for the percentiles
        lines = 0
        with open(normalized, "w", encoding="utf-8") as handle:
            for texts in live_texts(inputs, text_field):
                paragraphs, _ = split_paragraphs(texts)
                for line in paragraphs.to_pylist():
                    lines += 1
                    if lines % HOLD_OUT == 0:
                        held_out.append(line)
                    else:
                        handle.write(line + "\n")
        if lines == 0:
            raise ValueError(f"no text to train on in {inputs}")
        log(f"train-kenlm: {lines:,} normalised lines; training SentencePiece ({vocab_size:,})")
        tokenizer = train_sentencepiece(normalized, work / "sp", vocab_size)
        pieces_file = work / "pieces.txt"
        pieces = 0
        with open(normalized, encoding="utf-8") as src, open(pieces_file, "w") as dst:
            batch: list[str] = []
            for line in src:
                batch.append(line.rstrip("\n"))
                if len(batch) == 10_000:
                    pieces += _write_pieces(tokenizer, batch, dst)
                    batch = []
            pieces += _write_pieces(tokenizer, batch, dst)
        log(f"train-kenlm: {pieces:,} pieces; lmplz -o {order}")
        arpa = work / "model.arpa"
        _run(
            [str(lmplz), "-o", str(order), "--discount_fallback", "-S", memory, "-T", str(work)],
            stdin=pieces_file,
            stdout=arpa,
        )
        _run([str(build_binary), str(arpa), str(work / MODEL_FILE)])
        arpa.unlink()
        normalized.unlink()
        pieces_file.unlink()
        meta = {
            "trained_on": inputs,
            "text_field": text_field,
            "lines": lines,
            "pieces": pieces,
            "order": order,
            "vocab_size": tokenizer.GetPieceSize(),
            "normalization": "ccnet",
            "seconds": round(time.time() - started, 1),
            "versions": _versions(),
        }
        model = load_model_files(work, meta)
        meta["held_out_paragraphs"] = len(held_out)
        meta["perplexity_percentiles"] = _percentiles(model, held_out)
        (work / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(work, out)
        out.chmod(0o755)  # the temporary folder was private
        work.mkdir()  # the TemporaryDirectory context removes it again
    return meta


def load_model_files(folder: Path, meta: dict[str, Any]) -> KenlmModel:
    """A ``KenlmModel`` from a folder whose metadata is not written yet."""
    import kenlm
    import sentencepiece

    tokenizer = sentencepiece.SentencePieceProcessor()
    tokenizer.Load(str(folder / TOKENIZER_FILE))
    return KenlmModel(folder, kenlm.Model(str(folder / MODEL_FILE)), tokenizer, meta)


def _percentiles(model: KenlmModel, paragraphs: list[str]) -> dict[str, float]:
    """Perplexity percentiles of held-out paragraphs, each scored on its own."""
    values = perplexity(model, pa.array(paragraphs, pa.large_string()))[0]
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {}
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in (10, 33, 50, 66, 90)}


def _write_pieces(tokenizer: Any, batch: list[str], handle: Any) -> int:
    count = 0
    for pieces in tokenizer.encode(batch, out_type=str):
        handle.write(" ".join(pieces) + "\n")
        count += len(pieces)
    return count


def _run(command: list[str], stdin: Path | None = None, stdout: Path | None = None) -> None:
    src = open(stdin, "rb") if stdin else None
    dst = open(stdout, "wb") if stdout else None
    try:
        done = subprocess.run(
            command, stdin=src, stdout=dst or subprocess.PIPE, stderr=subprocess.PIPE, check=False
        )
    finally:
        for handle in (src, dst):
            if handle:
                handle.close()
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"{Path(command[0]).name} failed ({done.returncode}):\n{tail}")


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    import curation

    return {
        "curation": curation.__version__,
        "kenlm": version("kenlm"),
        "sentencepiece": version("sentencepiece"),
    }
