"""What ``train_lm`` trains on: blocks of ``seq_len + 1`` token ids cut from a stream of
documents, held in memory (``TensorBlocks``, from texts) or memory-mapped from the token
files of ``curate tokenize`` (``TokenCorpus``).

A token folder is read through its ``tokenize.json``: the files in the order it lists
them (several folders tokenized by the same model: one after another, as one folder),
each document's ids as written (``<s> pieces </s>``: ``train-lm`` scores documents so,
so the folder must have been tokenized with ``--bos '<s>' --eos '</s>'`` by the
SentencePiece model the language model uses). The documents held out for the held-out
loss are chosen as from texts (``held_out_indices``), and the training blocks are cut from
the other documents one after another, a block crossing from one document, or file, into
the next, as ``pack`` cuts texts. So a folder tokenized without shuffling trains the model
that its texts train, weight for weight; only the held-out bits per character differ a
little, since a held-out document's characters are counted on its ids decoded (the text
after the tokenizer's normalization) where the text itself is not at hand.

Nothing but the documents' ends and the held-out documents is read into memory: a batch
copies its blocks out of the memory-mapped files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from curation.io.tokens import MANIFEST, TokenizeError, file_sha256, read_token_file
from curation.lm.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, load_tokenizer


class Blocks(Protocol):
    """Training blocks of ``seq_len + 1`` ids: inputs are a block's first ``seq_len``
    ids, targets its last ``seq_len``."""

    def __len__(self) -> int: ...

    def take(self, which: torch.Tensor) -> torch.Tensor:
        """The blocks numbered ``which`` (int64), as an int64 tensor (len, seq_len + 1)."""
        ...


@dataclass
class TensorBlocks:
    """Blocks held in one tensor (``pack``'s, of any integer type)."""

    blocks: torch.Tensor

    def __len__(self) -> int:
        return len(self.blocks)

    def take(self, which: torch.Tensor) -> torch.Tensor:
        return self.blocks[which].long()


def held_out_indices(documents: int, fraction: float, seed: int) -> np.ndarray:
    """Which of ``documents`` documents to hold out, ascending: a seeded random
    ``fraction`` of them (at least one when there are two or more and fraction > 0)."""
    order = np.random.default_rng(seed).permutation(documents)
    count = min(documents - 1, max(1, round(fraction * documents))) if fraction > 0 else 0
    return np.sort(order[:count])


class CorpusError(ValueError):
    """A token folder that ``train-lm`` cannot train on; the message says what to do."""


@dataclass
class _File:
    tokens: np.ndarray  # memory-mapped ids
    ends: np.ndarray  # each document's end in tokens, int64


class TokenCorpus:
    """Finished ``curate tokenize`` folders, memory-mapped, checked for ``train-lm``:
    their files one after another, in the order the folders are given (each folder's in
    the order its ``tokenize.json`` lists them), as if one folder held them all.

    ``tokenizer``: the SentencePiece model their ids are of (verified by SHA-256): the one
    the first ``tokenize.json`` names, or the file given in its place (a checkpoint's, a
    copy). Every folder must have been tokenized by that same model."""

    def __init__(
        self,
        folders: str | Path | Sequence[str | Path],
        tokenizer: str | Path | None = None,
    ) -> None:
        given = [folders] if isinstance(folders, str | Path) else list(folders)
        self.folders = [Path(f) for f in given]
        if not self.folders:
            raise CorpusError("no token folder given: give --tokens a `curate tokenize` folder")
        resolved = [f.resolve() for f in self.folders]
        if len(set(resolved)) < len(resolved):
            twice = next(
                f for f, r in zip(self.folders, resolved, strict=True) if resolved.count(r) > 1
            )
            raise CorpusError(f"{twice} is given twice: give each token folder once")
        self.folder = self.folders[0]
        manifests = [_manifest(folder) for folder in self.folders]
        self.manifest: dict[str, Any] = manifests[0]
        made_by = self.manifest["tokenizer"]
        self.sha256: str = made_by["sha256"]
        for folder, manifest in zip(self.folders[1:], manifests[1:], strict=True):
            if manifest["tokenizer"]["sha256"] != self.sha256:
                raise CorpusError(
                    f"{folder} was tokenized with another tokenizer than {self.folder} "
                    f"(SHA-256 {manifest['tokenizer']['sha256']}, not {self.sha256}): "
                    "tokenize every folder with the tokenizer the model uses"
                )
        self.tokenizer_file = self._tokenizer(made_by, tokenizer)
        self._check_ids([(f, m["tokenizer"]) for f, m in zip(self.folders, manifests, strict=True)])
        self.files: list[_File] = []
        for folder, manifest in zip(self.folders, manifests, strict=True):
            self.files.extend(_files(folder, manifest))
        self.documents = sum(len(f.ends) for f in self.files)
        self.tokens = sum(len(f.tokens) for f in self.files)

    def _tokenizer(self, made_by: dict[str, Any], given: str | Path | None) -> Path:
        """The SentencePiece file the ids are of, after checking its SHA-256."""
        path = Path(given) if given is not None else Path(made_by.get("file", ""))
        if path.is_dir():
            path = path / "tokenizer.model"
        if not path.is_file():
            raise CorpusError(
                f"the tokenizer {self.folder} was tokenized with, {path}, is missing: give "
                f"--tokenizer the same SentencePiece model (SHA-256 {self.sha256})"
            )
        if path.suffix == ".json":
            raise CorpusError(
                f"{self.folder} was tokenized with {path}, a tokenizers JSON file: train-lm's "
                "models use a SentencePiece model; tokenize with one (a `curate train-lm` "
                "checkpoint folder, or train one with train-lm on a sample of the text)"
            )
        if file_sha256(path) != self.sha256:
            raise CorpusError(
                f"{path} is not the tokenizer {self.folder} was tokenized with (SHA-256 "
                f"{self.sha256}): give that one, or tokenize the text again with this one"
            )
        return path

    def _check_ids(self, made_by: list[tuple[Path, dict[str, Any]]]) -> None:
        """The tokenizer reserves train-lm's ids and each folder's documents are
        ``<s> ... </s>`` (``made_by``: each folder and its ``tokenize.json``'s tokenizer)."""
        processor = load_tokenizer(self.tokenizer_file)
        reserved = (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id())
        if reserved != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise CorpusError(
                f"{self.tokenizer_file} is not a train-lm tokenizer (its pad, unk, <s> and "
                f"</s> ids are {reserved}, not {(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}): tokenize "
                "with the tokenizer of a `curate train-lm` checkpoint"
            )
        for folder, tokenizer in made_by:
            if (tokenizer.get("bos_id"), tokenizer.get("eos_id")) != (BOS_ID, EOS_ID):
                raise CorpusError(
                    f"{folder}'s documents do not begin with <s> and end with </s> (its "
                    f"tokenize.json: bos {tokenizer.get('bos')!r}, eos "
                    f"{tokenizer.get('eos')!r}), as train-lm scores them: tokenize again "
                    "with --bos '<s>' --eos '</s>'"
                )
        self.vocab_size = int(processor.get_piece_size())

    def blocks(self, held: np.ndarray, seq_len: int) -> TokenBlocks:
        """The training blocks: the documents not in ``held`` (global numbers,
        ascending), one after another, cut into blocks of ``seq_len + 1`` ids; the tail
        shorter than a block is left out."""
        segments = training_segments([f.ends for f in self.files], held)
        tokens = [f.tokens for f in self.files]
        where = ", ".join(str(f) for f in self.folders)
        return TokenBlocks(tokens, segments, seq_len, self.vocab_size, where)

    def held_documents(self, held: np.ndarray, tokenizer: Any) -> tuple[list[str], list[list[int]]]:
        """The documents ``held`` (global numbers) for ``document_losses``: their texts
        (their ids between ``<s>`` and ``</s>`` decoded) and their ids, both only for
        documents whose text has a character other than white space."""
        counts = np.array([len(f.ends) for f in self.files], dtype=np.int64)
        first_document = np.cumsum(counts) - counts
        in_file = np.searchsorted(first_document, held, side="right") - 1
        texts, encoded = [], []
        local = held - first_document[in_file]
        for index, doc in zip(in_file.tolist(), local.tolist(), strict=True):
            ends = self.files[index].ends
            first, stop = (int(ends[doc - 1]) if doc else 0), int(ends[doc])
            ids = self.files[index].tokens[first:stop].astype(np.int64).tolist()
            text = tokenizer.decode(ids[1:-1])
            if text.strip():
                texts.append(text)
                encoded.append(ids)
        return texts, encoded


def _manifest(folder: Path) -> dict[str, Any]:
    """``folder``'s ``tokenize.json``, with its tokenizer's SHA-256 and its files there."""
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        raise CorpusError(
            f"{manifest_file} is missing: give --tokens a folder written by `curate "
            "tokenize` (one without it is unfinished: run its command again to finish it)"
        )
    try:
        manifest: dict[str, Any] = json.loads(manifest_file.read_text("utf-8"))
        sha, files = manifest["tokenizer"]["sha256"], manifest["files"]
        if not isinstance(sha, str) or not isinstance(files, list):
            raise TypeError("its tokenizer's sha256 is not text or its files not a list")
    except (ValueError, KeyError, TypeError) as err:
        raise CorpusError(f"{manifest_file} is not a tokenize.json: {err}") from None
    return manifest


def _files(folder: Path, manifest: dict[str, Any]) -> list[_File]:
    """The token files ``manifest`` lists in ``folder``, memory-mapped, each checked
    against what the manifest says it holds."""
    files = []
    for entry in manifest["files"]:
        path = folder / entry["name"]
        try:
            tokens, ends = read_token_file(path)
        except (OSError, TokenizeError, ValueError) as err:
            raise CorpusError(f"{path} cannot be read: {err}") from None
        ends = ends.astype(np.int64)
        written = (entry["documents"], entry["tokens"])
        if (len(ends), len(tokens)) != written or (len(ends) and ends[-1] != len(tokens)):
            raise CorpusError(
                f"{path} holds {len(ends):,} documents and {len(tokens):,} tokens where "
                f"{folder / MANIFEST} says {written[0]:,} and {written[1]:,}: the folder "
                "was changed after it was written; tokenize again (--overwrite)"
            )
        files.append(_File(tokens, ends))
    return files


def training_segments(ends: list[np.ndarray], held: np.ndarray) -> np.ndarray:
    """The runs of tokens to train on, in order, as rows (file, start, end): the files'
    documents (``ends[f]``, each document's end in tokens) but those in ``held`` (numbers
    over all files, ascending), a run broken where a held-out document lies."""
    segments = []
    offset = 0
    for index, file_ends in enumerate(ends):
        mine = held[(held >= offset) & (held < offset + len(file_ends))] - offset
        offset += len(file_ends)
        cut = 0  # a run ends where a held-out document begins and resumes after it
        for doc in mine.tolist():
            begin = int(file_ends[doc - 1]) if doc else 0
            if begin > cut:
                segments.append((index, cut, begin))
            cut = int(file_ends[doc])
        size = int(file_ends[-1]) if len(file_ends) else 0
        if size > cut:
            segments.append((index, cut, size))
    return np.array(segments, dtype=np.int64).reshape(-1, 3)


class TokenBlocks:
    """Blocks cut from ``segments`` (file, start, end) of the id arrays ``sources``
    (memory-mapped files), read one after another as one stream; each block is copied
    out when it is taken. An id of ``vocab_size`` or more is an error naming ``where``."""

    def __init__(
        self,
        sources: list[np.ndarray],
        segments: np.ndarray,
        seq_len: int,
        vocab_size: int,
        where: str,
    ) -> None:
        self.sources, self.segments, self.width = sources, segments, seq_len + 1
        self.vocab_size, self.where = vocab_size, where
        lengths = segments[:, 2] - segments[:, 1]
        self._stream_end = np.cumsum(lengths)  # where each segment ends in the stream
        self.tokens = int(self._stream_end[-1]) if len(lengths) else 0
        self._count = self.tokens // self.width

    def __len__(self) -> int:
        return self._count

    def take(self, which: torch.Tensor) -> torch.Tensor:
        out = np.empty((len(which), self.width), dtype=np.int64)
        for row, block in enumerate(which.tolist()):
            at, filled = block * self.width, 0
            segment = int(np.searchsorted(self._stream_end, at, side="right"))
            while filled < self.width:
                file, start, end = self.segments[segment].tolist()
                begin = start + at + filled - int(self._stream_end[segment] - (end - start))
                some = min(self.width - filled, end - begin)
                out[row, filled : filled + some] = self.sources[file][begin : begin + some]
                filled += some
                segment += 1
        if out.size and int(out.max()) >= self.vocab_size:
            raise CorpusError(
                f"{self.where} holds the id {int(out.max())}, outside the vocabulary of "
                f"{self.vocab_size:,}: its files do not match its tokenize.json; tokenize "
                "again (--overwrite)"
            )
        return torch.from_numpy(out)
