"""``curate tokenize``: documents as token files that training reads.

A folder of token files, one set per unit of input (a file, a unit of small files or a
piece of a large one, as ``curate run`` plans them), named ``part-UUUUU-KKK``, in one of
two layouts (``FORMATS``):

- ``datatrove`` (the default): ``.ds``, the tokens of its documents one after another,
  little-endian ``uint16`` (a vocabulary of at most 65,536 ids) or ``uint32``;
  ``.ds.index``, each document's end in tokens from the file's start (``uint64``);
  ``.ds.metadata``, ``<tokenizer>|<bytes per token>``, the token count and the count in
  words (``758 kT``). What datatrove's ``DocumentTokenizer`` writes and its (and
  nanotron's) ``DatatroveFolderDataset`` reads.
- ``megatron``: ``.bin`` (``uint16`` or ``int32`` ids) and ``.idx``, Megatron's indexed
  dataset, as datatrove's ``MegatronDocumentTokenizer`` writes it (see
  ``_write_megatron``).

``tokenize.json`` beside them says what was done: the tokenizer (and its SHA-256), the
layout and token type, the end-of-document token, the seed, every file with its source,
documents and tokens, and the documents set aside by reason. It is written last, so a
folder without it is unfinished; running the same tokenization again resumes it (each
unit's files are published whole, then a marker in ``_work/``).

Tokenizers: a Hugging Face ``tokenizer.json`` (``tokenizers``' fast tokenizers, as
datatrove loads them), a SentencePiece ``.model`` (what ``curate train-kenlm`` and
``curate train-lm`` write), or a folder holding either (a ``curate train-lm`` checkpoint,
a Hugging Face model folder). With ``eos``, that token ends every document (and with
``bos`` another begins it): for a ``tokenizer.json`` its post-processor becomes
``[<bos>] $A [<eos>]`` (datatrove's override for ``eos``: a tokenizer's own BOS is then
added only as ``bos``), for SentencePiece the ids are put around the document's.

Within a unit the documents are shuffled (``shuffle``, by ``numpy.random.default_rng``
seeded with ``[seed, unit]``, so the same inputs and seed give the same files on any
executor), as datatrove shuffles them within each of its files; a trainer that reads the
files in sequence then does not see one source's documents in a row. ``max_tokens_per_file``
cuts a unit's documents into several files of at most that many tokens (a longer
document gets a file of its own).

Nothing is lost without a reason: every document read is written or set aside, the
reader's set-asides (``read:invalid_json``, ``read:empty_text``, ``read:too_long`` ...) by
their reason and a document the tokenizer makes no token of (a zero-width space to
SentencePiece, with no end token) as ``tokenize:no_tokens``; each unit checks that its
documents in equal those written plus those set aside.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import os
import re
import shutil
import struct
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.batch import DROP_REASON, ID, MIX_COPIES, TEXT
from curation.io import is_url
from curation.io.bytelevel import PieceEncoder
from curation.io.inputs import InputShard, plan_units
from curation.io.writers import TMP_PREFIX, publish, tmp_path
from curation.machine import usable_cpus
from curation.recipe import InputSpec

if TYPE_CHECKING:
    from curation.filters.sql import RowFilter

SUFFIX = ".ds"
MANIFEST = "tokenize.json"
#: the file layouts: datatrove's (nanotron reads it) and Megatron's indexed dataset
FORMATS = ("datatrove", "megatron")
#: Megatron's ``.idx``: its magic, version, and its codes of the token types
_MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
_MEGATRON_DTYPES = {2: (8, np.dtype("<u2")), 4: (4, np.dtype("<i4"))}  # uint16, int32
#: the names of the files a tokenization writes (and ``--overwrite`` removes)
_PART = re.compile(
    r"(part-\d{5}-\d{3,}|merged-\d{5,})\.(ds|ds\.index|ds\.metadata|bin|idx|ids\.parquet)"
)
#: the seed stream of the merge's shuffle, beside the units' ``[seed, unit]``
_MERGE_STREAM = 1 << 40
NO_TOKENS = "tokenize:no_tokens"
#: the reason of a document ``--where``'s condition is not true for
NOT_WHERE = "tokenize:where"
#: tokens gathered at once when a unit's documents are written in their shuffled order
_GATHER_TOKENS = 1 << 22
#: UTF-8 bytes of text encoded at once: a tokenizers Encoding holds every token's text and
#: masks besides its id, about 100 bytes a token, so a batch of 10,000 web documents at
#: once held about 400 MiB
_ENCODE_BYTES = 4 << 20


class TokenizeError(ValueError):
    """A tokenizer, token or output cannot be used; the message names it and what to do."""


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizer to load, and the token texts that begin and end every document
    (None: not added)."""

    path: str
    eos: str | None = None
    bos: str | None = None


class TextTokenizer(abc.ABC):
    """A loaded tokenizer: ``encode`` turns a list of texts into token ids.

    ``name`` is what the files' metadata says (the path given); ``vocab_size`` counts
    every id (added tokens included) and sets the token width; ``bos_id`` and ``eos_id``
    are the ids that begin and end each document, or None."""

    name: str
    vocab_size: int
    bos_id: int | None
    eos_id: int | None

    @abc.abstractmethod
    def encode(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Each text's token count (``int64``) and all their ids one after another
        (``uint32``), begin and end tokens included."""

    @property
    def token_bytes(self) -> int:
        """Bytes per token in the files: 2 for at most 65,536 ids, else 4 (datatrove's)."""
        return 2 if self.vocab_size <= 1 << 16 else 4

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("<u2") if self.token_bytes == 2 else np.dtype("<u4")


class _FastTokenizer(TextTokenizer):
    """A Hugging Face ``tokenizer.json``, encoded without character offsets
    (``encode_batch_fast``: the same ids, less work), and a byte-level BPE of GPT-2's or
    Llama 3's pipeline from a cache of its pieces' ids where the text allows
    (``bytelevel.PieceEncoder``: the same ids again) when it encodes on one thread or two
    (a Ray task of one CPU; a machine of two). With a begin or end token its post-processor becomes
    ``[<bos>] $A [<eos>]`` (datatrove's override for the end token); without either,
    the tokenizer's own applies."""

    def __init__(
        self, path: Path, name: str, spec: TokenizerSpec, parallel: bool, pieces: bool = True
    ) -> None:
        from tokenizers import Tokenizer
        from tokenizers.processors import TemplateProcessing

        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises its own Exception for a bad file
            raise TokenizeError(f"{path} is not a tokenizers JSON file: {err}") from None
        self.name = name
        self.vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        find = self._tokenizer.token_to_id
        self.bos_id = _known_id(find(spec.bos), spec.bos, "bos", path) if spec.bos else None
        self.eos_id = _known_id(find(spec.eos), spec.eos, "eos", path) if spec.eos else None
        if spec.bos or spec.eos:
            template = ["<BOS>"] * bool(spec.bos) + ["$A"] + ["<EOS>"] * bool(spec.eos)
            ids = {"<BOS>": self.bos_id, "<EOS>": self.eos_id}
            self._tokenizer.post_processor = TemplateProcessing(
                single=" ".join(template),
                special_tokens=[(token, i) for token, i in ids.items() if i is not None],
                pair=None,
            )
        self._parallel = parallel
        replaced = bool(spec.bos or spec.eos)
        # the cache runs on one thread, at 1.6x to 3.2x the tokenizer's one: it serves a
        # worker of one CPU (a Ray task), or a machine of two; more threads serve more
        cached = pieces and (not parallel or usable_cpus() <= 2)
        self.pieces = PieceEncoder.of(path, self._tokenizer, not replaced) if cached else None

    def encode(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        if not self._parallel:
            # tokenizers reads it at each call: one thread in a Ray task of one CPU (the
            # worker process keeps the setting; nothing else there uses tokenizers)
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        strings = texts.to_pylist()
        if self.pieces is None:
            return self._whole(strings)
        cached = self.pieces.cached(texts)
        if not cached.any():
            return self._whole(strings)
        fast = np.flatnonzero(cached)
        counts, flat = _around(*self.pieces.encode([strings[i] for i in fast]), self)
        if len(fast) == len(strings):
            return counts, flat
        slow = np.flatnonzero(~cached)
        other_counts, other_flat = self._whole([strings[i] for i in slow])
        return _in_order([fast, slow], [counts, other_counts], [flat, other_flat])

    def _whole(self, strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``tokenizers``' own encoding, post-processor included."""
        return _flat([encoding.ids for encoding in self._tokenizer.encode_batch_fast(strings)])


class _SentencePiece(TextTokenizer):
    """A SentencePiece model; the begin and end tokens' ids are put around each
    document."""

    def __init__(self, path: Path, name: str, spec: TokenizerSpec, parallel: bool) -> None:
        from curation.lm.tokenizer import load_tokenizer

        try:
            self._processor = load_tokenizer(path)
        except (FileNotFoundError, ValueError) as err:
            raise TokenizeError(str(err)) from None
        self.name = name
        self.vocab_size = self._processor.get_piece_size()
        self.bos_id = self._piece(spec.bos, "bos", path) if spec.bos else None
        self.eos_id = self._piece(spec.eos, "eos", path) if spec.eos else None
        self._threads = (os.cpu_count() or 1) if parallel else 1

    def _piece(self, piece: str, option: str, path: Path) -> int:
        found = self._processor.piece_to_id(piece)
        # SentencePiece answers the unknown piece's id for a piece it does not know
        known = found != self._processor.unk_id() or piece == self._processor.id_to_piece(found)
        return _known_id(found if known else None, piece, option, path)

    def encode(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        ids = self._processor.encode(
            texts.to_pylist(), num_threads=self._threads, add_bos=False, add_eos=False
        )
        return _around(*_flat(ids), self)


def _known_id(found: int | None, token: str, option: str, path: Path) -> int:
    """``found``, the id of ``token`` (given to ``--option``), or an error naming both."""
    if found is None:
        what = "begin" if option == "bos" else "end"
        example = "<s> or <|begin_of_text|>" if option == "bos" else "</s> or <|endoftext|>"
        raise TokenizeError(
            f"{path} has no token {token!r} to {what} documents with: give --{option} one of "
            f"its special tokens (as written in its vocabulary, e.g. {example}), or leave "
            f"--{option} out"
        )
    return int(found)


def _around(
    counts: np.ndarray, flat: np.ndarray, tokenizer: TextTokenizer
) -> tuple[np.ndarray, np.ndarray]:
    """Documents (``counts`` tokens each, ``flat``) with the tokenizer's begin and end
    ids put around each."""
    ends = np.cumsum(counts)
    at, values = [], []
    if tokenizer.bos_id is not None:
        at.append(ends - counts)
        values.append(np.full(len(counts), tokenizer.bos_id, np.uint32))
    if tokenizer.eos_id is not None:
        at.append(ends)
        values.append(np.full(len(counts), tokenizer.eos_id, np.uint32))
    if not at:
        return counts, flat
    # each document's begin before its ids, its end after them and before the next begin
    where = np.stack(at, axis=1).ravel()
    return counts + len(at), np.insert(flat, where, np.stack(values, axis=1).ravel())


def _in_order(
    groups: list[np.ndarray], counts: list[np.ndarray], flats: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Documents encoded in groups (``groups[g]`` their places among all) put back in
    their places: each document's token count and all the ids."""
    places = np.concatenate(groups)
    count = np.concatenate(counts)
    flat = np.concatenate(flats)
    starts = np.cumsum(count) - count
    order = np.argsort(places, kind="stable")
    return count[order], flat[_positions(starts[order], count[order])]


def _flat(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    flat = np.empty(int(lengths.sum()), np.uint32)
    start = 0
    for one, count in zip(ids, lengths.tolist(), strict=True):
        flat[start : start + count] = one
        start += count
    return lengths, flat


def tokenizer_file(path: str | Path) -> Path:
    """The file ``path`` names: itself, or in a folder its ``tokenizer.json`` (first) or
    ``tokenizer.model``. An error that says what was looked for when there is none."""
    path = Path(path)
    if path.is_dir():
        for name in ("tokenizer.json", "tokenizer.model"):
            if (path / name).is_file():
                return path / name
        raise TokenizeError(
            f"{path} holds no tokenizer.json or tokenizer.model: give the tokenizer file "
            "itself, or a folder that holds one (a `curate train-lm` checkpoint)"
        )
    if not path.is_file():
        raise TokenizeError(
            f"{path}: tokenizer file is missing (give a tokenizers JSON file, a "
            "SentencePiece .model file, or a folder that holds one)"
        )
    return path


def load_text_tokenizer(spec: TokenizerSpec, parallel: bool = True) -> TextTokenizer:
    """The tokenizer ``spec`` names (see ``tokenizer_file``): a file ending in ``.json``
    is a ``tokenizers`` JSON file, any other a SentencePiece model. ``parallel``: encode
    on every CPU (the tokenizer's own threads); else on one."""
    path = tokenizer_file(spec.path)
    kind = _FastTokenizer if path.suffix == ".json" else _SentencePiece
    return kind(path, spec.path, spec, parallel)


def cached_tokenizer(spec: TokenizerSpec, parallel: bool = True) -> TextTokenizer:
    """``load_text_tokenizer``, loaded once per process for as long as its file is the
    same (loading a large vocabulary takes a while; a file written anew is loaded anew)."""
    stat = tokenizer_file(spec.path).stat()
    return _loaded(spec, parallel, (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=4)
def _loaded(spec: TokenizerSpec, parallel: bool, stamp: tuple[int, int]) -> TextTokenizer:
    return load_text_tokenizer(spec, parallel)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def metric(count: int, unit: str = "T") -> str:
    """``count`` to three significant digits with an SI prefix: ``758 kT``, ``1.23 GT``
    (the third line of a ``.ds.metadata`` file, as datatrove writes it)."""
    if count <= 0:
        return f"{count:.2f} {unit}"
    exponent = len(str(count)) - 1
    scaled = count / 10 ** (exponent // 3 * 3)
    digits = 2 - exponent % 3
    if round(scaled, digits) >= 10 ** (exponent % 3 + 1):  # 999,999 is 1.00 M, not 1000 k
        exponent += 1
        scaled = count / 10 ** (exponent // 3 * 3)
        digits = 2 - exponent % 3
    prefix = " kMGTPEZYRQ"[min(exponent // 3, 10)].strip()
    return f"{scaled:.{digits}f} {prefix}{unit}"


@dataclass(frozen=True)
class TokenizeOptions:
    """How a unit's documents become token files."""

    tokenizer: TokenizerSpec
    shuffle: bool = True
    seed: int = 0
    max_tokens_per_file: int | None = None
    format: str = "datatrove"  # one of FORMATS
    merge: bool = False  # all units' documents shuffled together into merged-KKKKK files
    ids: bool = False  # each file's documents' ids and token counts beside it (Parquet)
    parallel: bool = True  # the tokenizer's own threads (False: one, in a Ray worker)
    where: str | None = None  # a SQL condition: only the documents it is true for
    copies: bool = True  # a document with ``mix_copies`` (a ``mix`` stage's) that many times


@dataclass
class UnitResult:
    """What one unit gave: its files (name, documents, tokens), documents read, written
    and set aside by reason, and the UTF-8 bytes of text read."""

    unit: int
    source: str
    files: list[dict[str, Any]] = field(default_factory=list)
    read: int = 0
    written: int = 0
    tokens: int = 0
    set_aside: Counter[str] = field(default_factory=Counter)
    text_bytes: int = 0
    #: copies written beyond each document's first (``mix_copies`` above 1); ``tokens``
    #: counts every copy
    repeats: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "set_aside": dict(self.set_aside)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnitResult:
        return cls(**{**data, "set_aside": Counter(data["set_aside"])})

    def check(self) -> None:
        """Documents read = written + set aside (nothing lost without a reason)."""
        aside = sum(self.set_aside.values())
        if self.read != self.written + aside:
            raise RuntimeError(
                f"{self.source}: {self.read:,} documents read but {self.written:,} written "
                f"and {aside:,} set aside; this is a bug, please report it"
            )


def part_name(unit: int, part: int) -> str:
    """The name of a unit's file, without the suffixes of its format."""
    return f"part-{unit:05d}-{part:03d}"


def tokenize_unit(
    unit: int,
    shard: InputShard,
    spec: InputSpec,
    options: TokenizeOptions,
    output: str,
    on_batch: Any = None,
) -> UnitResult:
    """Tokenize the documents of ``shard`` (the ``unit``-th) into token files in
    ``output``: through an unshuffled file of its tokens in ``output/_work``, then in
    their shuffled order into ``part-UUUUU-KKK.ds`` files, each published whole (a
    temporary name, then a rename). ``on_batch(rows, nbytes)`` hears of each batch read."""
    from curation.filters.sql import RowFilter
    from curation.io.readers import read_shard

    tokenizer = cached_tokenizer(options.tokenizer, options.parallel)
    where = RowFilter.parse(options.where) if options.where is not None else None
    out = Path(output)
    work = out / "_work"
    work.mkdir(parents=True, exist_ok=True)
    result = UnitResult(unit, shard.label)
    raw = work / f"unit-{unit:05d}.tokens"
    lengths: list[np.ndarray] = []
    copies: list[np.ndarray] = []
    ids: list[pa.Array] = []
    with open(raw, "wb") as handle:
        for table in read_shard(shard, spec):
            live = _live(table, result, where)
            texts = live[TEXT].combine_chunks()
            times = _copies(live, result.source) if options.copies else None
            if options.copies and times is None:  # a file of the unit without the column
                times = np.ones(live.num_rows, np.int64)
            for first, stop, counts, flat in _encoded(tokenizer, texts):
                if options.ids:
                    named = live[ID].slice(first, stop - first).combine_chunks()
                    ids.append(named.filter(pa.array(counts > 0)).cast(pa.large_string()))
                if times is not None:
                    copies.append(times[first:stop][counts > 0])
                empty = int(np.count_nonzero(counts == 0))
                if empty:
                    result.set_aside[NO_TOKENS] += empty
                    counts = counts[counts > 0]
                lengths.append(counts)
                handle.write(flat.astype(tokenizer.dtype, copy=False).tobytes())
            nbytes = pc.sum(pc.binary_length(texts)).as_py() or 0
            result.text_bytes += nbytes
            if on_batch is not None:
                on_batch(table.num_rows, nbytes)
    counts = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    times = np.concatenate(copies) if copies else None
    if times is not None and (times == 1).all():
        times = None  # each once: the order of a tokenization without copies
    result.written = len(counts)
    result.tokens = int(counts.sum() if times is None else (counts * times).sum())
    result.repeats = 0 if times is None else int(times.sum()) - len(counts)
    result.check()
    try:
        named = pa.concat_arrays(ids) if ids else pa.array([], pa.large_string())
        result.files = _write_parts(
            raw, counts, tokenizer, options, unit, out, named if options.ids else None, times
        )
    finally:
        raw.unlink(missing_ok=True)
    # the unit is done: a resumed run keeps its files and reads this instead
    _publish_bytes(work / f"done-{unit:05d}.json", json.dumps(result.to_dict()).encode("utf-8"))
    return result


def token_counts(tokenizer: TextTokenizer, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each text's number of tokens (``int64``, begin and end tokens included), as
    ``tokenize_unit`` writes them."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    counts = [counts for _, _, counts, _ in _encoded(tokenizer, texts)]
    return np.concatenate([np.zeros(0, np.int64), *counts]).astype(np.int64)


def _encoded(
    tokenizer: TextTokenizer, texts: pa.Array
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """``texts`` encoded about ``_ENCODE_BYTES`` of UTF-8 at a time: for each run of them,
    its first index, one past its last, and ``encode``'s counts and ids."""
    sizes = np.cumsum(pc.binary_length(texts).to_numpy(zero_copy_only=False))
    for first, stop in _chunks(sizes, _ENCODE_BYTES):
        yield first, stop, *tokenizer.encode(texts.slice(first, stop - first))


def _chunks(ends: np.ndarray, size: int) -> Iterator[tuple[int, int]]:
    """Consecutive runs (first, one past the last) of the items whose cumulative sizes are
    ``ends``, each of about ``size`` (an item larger than that is a run of its own)."""
    first = 0
    while first < len(ends):
        before = int(ends[first - 1]) if first else 0
        stop = max(int(np.searchsorted(ends, before + size, side="right")), first + 1)
        yield first, stop
        first = stop


def _live(table: pa.Table, result: UnitResult, where: RowFilter | None = None) -> pa.Table:
    """The ids and texts (and ``mix_copies``) of ``table``'s rows the reader kept (and
    for which ``where``, a ``RowFilter``, is true: the others ``NOT_WHERE``); the others
    counted by reason."""
    result.read += table.num_rows
    reasons = table[DROP_REASON]
    if where is not None and table.num_rows:
        if pa.types.is_null(reasons.type):
            reasons = reasons.cast(pa.string())
        try:
            hit = where.matching(table)
        except ValueError as err:
            raise TokenizeError(f"{result.source}: --where {err}") from None
        reasons = pc.if_else(
            pc.or_kleene(pc.is_valid(reasons), hit), reasons, pa.scalar(NOT_WHERE, reasons.type)
        )
    kept = [ID, TEXT, *([MIX_COPIES] if MIX_COPIES in table.column_names else [])]
    table = table.select(kept).append_column(DROP_REASON, reasons)
    if reasons.null_count == table.num_rows:
        return table
    dropped = pc.is_valid(reasons)
    for entry in reasons.filter(dropped).value_counts().to_pylist():
        result.set_aside[entry["values"]] += entry["counts"]
    return table.filter(pc.invert(dropped))


def _copies(live: pa.Table, source: str) -> np.ndarray | None:
    """How many times each of the documents ``live`` is written: its ``mix_copies``
    (null: once), or None where the documents have no such column."""
    if MIX_COPIES not in live.column_names:
        return None
    column = live[MIX_COPIES]
    if not pa.types.is_integer(column.type):
        raise TokenizeError(
            f"{source}: the column {MIX_COPIES} is {column.type}, not integers: it says how "
            "many times a document is written (--no-copies writes each once)"
        )
    times = pc.fill_null(column, 1).to_numpy().astype(np.int64)
    if len(times) and times.min() < 1:
        row = int(np.argmin(times))
        raise TokenizeError(
            f"{source}: document {live[ID][row].as_py()!r} has {MIX_COPIES} "
            f"{int(times[row])}: a document is written at least once (--no-copies writes "
            "each once)"
        )
    return times


def _write_parts(
    raw: Path,
    counts: np.ndarray,
    tokenizer: TextTokenizer,
    options: TokenizeOptions,
    unit: int,
    out: Path,
    ids: pa.Array | None,
    copies: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The unit's documents, in their final order, as one or more published files (with
    their ``ids``' files, when given); a document ``copies[i]`` times where given, its
    copies shuffled with the others."""
    if not len(counts):
        return []
    entries = np.arange(len(counts))
    if copies is not None:
        entries = np.repeat(entries, copies)
    order = (
        entries[np.random.default_rng([options.seed, unit]).permutation(len(entries))]
        if options.shuffle
        else entries
    )
    tokens = np.memmap(raw, dtype=tokenizer.dtype, mode="r")
    starts = np.cumsum(counts) - counts
    docs = _Docs([tokens], np.zeros(len(counts), np.int64), starts, counts, ids).take(order)
    files = _write_files(docs, options.max_tokens_per_file, options.format, tokenizer, out, unit)
    del tokens, docs
    return files


@dataclass(frozen=True)
class _Docs:
    """Documents to write, in order: document ``i`` is the ``counts[i]`` tokens from
    ``starts[i]`` of ``sources[which[i]]`` (token arrays, memory-mapped files)."""

    sources: list[np.ndarray]
    which: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    ids: pa.Array | None = None  # the documents' ids, where they are written

    def take(self, docs: np.ndarray | slice) -> _Docs:
        ids = self.ids
        if ids is not None:
            if isinstance(docs, slice):
                ids = ids.slice(docs.start, docs.stop - docs.start)
            else:
                ids = ids.take(pa.array(docs))
        return _Docs(self.sources, self.which[docs], self.starts[docs], self.counts[docs], ids)

    def chunks(self, dtype: np.dtype) -> Iterator[bytes]:
        """The documents' tokens in order, as ``dtype``, a few million tokens at a time."""
        for first, stop in _chunks(np.cumsum(self.counts), _GATHER_TOKENS):
            run = self.take(slice(first, stop))
            if len(self.sources) == 1:
                yield self.sources[0][_positions(run.starts, run.counts)].astype(dtype).tobytes()
                continue
            held = np.empty(int(run.counts.sum()), dtype)
            before = np.cumsum(run.counts) - run.counts
            for source in np.unique(run.which).tolist():
                mine = run.which == source
                to = _positions(before[mine], run.counts[mine])
                held[to] = self.sources[source][_positions(run.starts[mine], run.counts[mine])]
            yield held.tobytes()


def _positions(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Every position of the runs of ``counts[i]`` from ``starts[i]``, run after run."""
    before = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts - before, counts)


def _write_files(
    docs: _Docs,
    max_tokens: int | None,
    layout: str,
    tokenizer: TextTokenizer,
    out: Path,
    unit: int | None,
) -> list[dict[str, Any]]:
    """``docs`` in order, as files of at most ``max_tokens`` tokens in ``layout``: a
    unit's ``part-UUUUU-KKK`` files, or ``merged-KKKKK`` ones (``unit`` None)."""
    write = _write_megatron if layout == "megatron" else _write_datatrove
    files = []
    for part, (first, stop) in enumerate(file_cuts(docs.counts, max_tokens)):
        some = docs.take(slice(first, stop))
        stem = out / (part_name(unit, part) if unit is not None else f"merged-{part:05d}")
        name = write(stem, some, tokenizer)
        if some.ids is not None:
            _publish_ids(stem, some)
        files.append({"name": name, "documents": stop - first, "tokens": int(some.counts.sum())})
    return files


def _publish_ids(stem: Path, docs: _Docs) -> None:
    """``<stem>.ids.parquet``: each document's id and tokens, in the file's order."""
    final = stem.with_name(f"{stem.name}.ids.parquet")
    tmp = tmp_path(final)
    pq.write_table(pa.table({ID: docs.ids, "tokens": docs.counts}), tmp, compression="zstd")
    publish(tmp, final)


def _write_datatrove(stem: Path, docs: _Docs, tokenizer: TextTokenizer) -> str:
    """``<stem>.ds`` (the tokens), ``.ds.index`` (each document's end, ``uint64``) and
    ``.ds.metadata``, as datatrove's ``DocumentTokenizer`` writes them; the ``.ds`` name."""
    name = stem.name + SUFFIX
    ends = np.cumsum(docs.counts, dtype=np.uint64)
    _publish(stem.with_name(name), docs.chunks(tokenizer.dtype))
    _publish_bytes(stem.with_name(f"{name}.index"), ends.astype("<u8").tobytes())
    total = int(ends[-1])
    metadata = f"{tokenizer.name}|{tokenizer.token_bytes}\n{total}\n{metric(total)}"
    _publish_bytes(stem.with_name(f"{name}.metadata"), metadata.encode("utf-8"))
    return name


def _write_megatron(stem: Path, docs: _Docs, tokenizer: TextTokenizer) -> str:
    """``<stem>.bin`` (the tokens, ``uint16`` or ``int32``) and ``<stem>.idx``, Megatron's
    indexed dataset (what Megatron-LM's and NeMo's ``IndexedDataset`` read, and datatrove's
    ``MegatronDocumentTokenizer`` writes): the magic, version 1, the token type's code, the
    counts of sequences and of document indices, each sequence's length (``int32``), its
    byte offset (``int64``), and the document indices 0 to n (``int64``: a document is a
    sequence). The ``.bin`` name."""
    code, dtype = _MEGATRON_DTYPES[tokenizer.token_bytes]
    _publish(stem.with_suffix(".bin"), docs.chunks(dtype))
    count = len(docs.counts)
    offsets = (np.cumsum(docs.counts) - docs.counts) * dtype.itemsize
    index = [
        _MEGATRON_MAGIC,
        struct.pack("<QBQQ", 1, code, count, count + 1),
        docs.counts.astype("<i4").tobytes(),
        offsets.astype("<i8").tobytes(),
        np.arange(count + 1, dtype="<i8").tobytes(),
    ]
    _publish(stem.with_suffix(".idx"), iter(index))
    return stem.name + ".bin"


def file_cuts(counts: np.ndarray, max_tokens: int | None) -> list[tuple[int, int]]:
    """Consecutive runs of documents (first, one past the last) of at most ``max_tokens``
    tokens each; a document longer than that is a run of its own. One run when
    ``max_tokens`` is None."""
    if max_tokens is None or not len(counts):
        return [(0, len(counts))]
    cuts = []
    first, held = 0, 0
    for i, count in enumerate(counts.tolist()):
        if held and held + count > max_tokens:
            cuts.append((first, i))
            first, held = i, 0
        held += count
    cuts.append((first, len(counts)))
    return cuts


def _publish(final: Path, chunks: Iterator[bytes]) -> None:
    tmp = tmp_path(final)
    with open(tmp, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    publish(tmp, final)


def _publish_bytes(final: Path, data: bytes) -> None:
    _publish(final, iter([data]))


def _file_dtype(layout: str, token_bytes: int) -> np.dtype:
    """The type of the ids in a ``layout``'s files: Megatron's 4-byte type is ``int32``."""
    if layout == "megatron":
        return _MEGATRON_DTYPES[token_bytes][1]
    return np.dtype("<u2") if token_bytes == 2 else np.dtype("<u4")


def read_token_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A token file's tokens (memory-mapped) and its documents' ends in tokens (``uint64``):
    a ``.ds`` file with its ``.ds.index`` (the width from its ``.ds.metadata``, else
    ``uint16``), or a Megatron ``.bin`` file with its ``.idx``."""
    path = Path(path)
    if path.suffix == ".bin":
        index = path.with_suffix(".idx").read_bytes()
        if not index.startswith(_MEGATRON_MAGIC):
            raise TokenizeError(f"{path.with_suffix('.idx')} is not a Megatron index")
        at = len(_MEGATRON_MAGIC)
        _, code, sequences, _ = struct.unpack_from("<QBQQ", index, at)
        dtype = next(d for c, d in _MEGATRON_DTYPES.values() if c == code)
        lengths = np.frombuffer(index, "<i4", sequences, at + struct.calcsize("<QBQQ"))
        ends = np.cumsum(lengths, dtype=np.uint64)
    else:
        width = 2
        metadata = path.with_name(path.name + ".metadata")
        if metadata.is_file():
            first_line = metadata.read_text(encoding="utf-8").split("\n")[0]
            width = int(first_line.rsplit("|", 1)[1])
        dtype = _file_dtype("datatrove", width)
        ends = np.fromfile(path.with_name(path.name + ".index"), dtype="<u8")
    tokens = np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.zeros(0, dtype)
    return tokens, ends


def manifest(
    results: list[UnitResult],
    files: list[dict[str, Any]],
    tokenizer: TextTokenizer,
    options: TokenizeOptions,
    plan: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """What ``tokenize.json`` says of a finished tokenization of ``plan`` (``_plan``:
    its sources and tokenizer file) whose token files are ``files`` (name, documents,
    tokens, source)."""
    aside: Counter[str] = Counter()
    for result in results:
        aside.update(result.set_aside)
    return {
        "tokenizer": {
            "path": options.tokenizer.path,
            **plan["tokenizer"],
            "vocab_size": tokenizer.vocab_size,
            "bos": options.tokenizer.bos,
            "bos_id": tokenizer.bos_id,
            "eos": options.tokenizer.eos,
            "eos_id": tokenizer.eos_id,
        },
        "token_bytes": tokenizer.token_bytes,
        "format": options.format,
        "dtype": _file_dtype(options.format, tokenizer.token_bytes).name,
        "shuffle": options.shuffle,
        "seed": options.seed,
        "max_tokens_per_file": options.max_tokens_per_file,
        "merged": options.merge,
        "ids": options.ids,
        "where": options.where,
        "copies": options.copies,
        "sources": plan["sources"],
        "documents": {
            "read": sum(r.read for r in results),
            "written": sum(r.written for r in results),
            "repeats": sum(r.repeats for r in results),
            "set_aside": dict(aside.most_common()),
        },
        "tokens": sum(r.tokens for r in results),
        "seconds": round(seconds, 3),
        "files": files,
        "units": [
            {
                "unit": r.unit,
                "source": r.source,
                "read": r.read,
                "written": r.written,
                "repeats": r.repeats,
                "tokens": r.tokens,
                "set_aside": dict(r.set_aside),
            }
            for r in sorted(results, key=lambda r: r.unit)
        ],
    }


def write_manifest(out: Path, data: dict[str, Any]) -> None:
    _publish_bytes(out / MANIFEST, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def _token_files(out: Path, pattern: str) -> list[Path]:
    """The token files of ``out`` (see ``_PART``) whose names match ``pattern``."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.glob(pattern) if _PART.fullmatch(p.name))


def _merged(
    results: list[UnitResult], tokenizer: TextTokenizer, options: TokenizeOptions, out: Path
) -> list[dict[str, Any]]:
    """The units' documents shuffled together (by ``[seed, _MERGE_STREAM]``; in unit
    order without ``shuffle``) into ``merged-KKKKK`` files of at most
    ``max_tokens_per_file`` tokens, as datatrove's ``DocumentTokenizerMerger`` does; the
    units' files are then removed. The merged files' entries for ``tokenize.json``.

    A marker in ``_work`` says when every merged file is written, so a run stopped while
    the units' files are removed finishes without merging again; one stopped before
    merges again."""
    marker = out / "_work" / "merged.json"
    if marker.is_file():
        files = json.loads(marker.read_text(encoding="utf-8"))
    else:
        for stale in _token_files(out, "merged-*"):
            stale.unlink()
        sources, which, starts, counts, ids = [], [], [], [], []
        for result in results:
            for entry in result.files:
                tokens, ends = read_token_file(out / entry["name"])
                if options.ids:
                    named = out / f"{Path(entry['name']).stem}.ids.parquet"
                    ids.append(pq.read_table(named)[ID].combine_chunks())
                lengths = np.diff(ends.astype(np.int64), prepend=0)
                which.append(np.full(len(lengths), len(sources), np.int64))
                starts.append(ends.astype(np.int64) - lengths)
                counts.append(lengths)
                sources.append(tokens)
        if not sources:
            return []
        docs = _Docs(
            sources,
            *map(np.concatenate, (which, starts, counts)),
            pa.concat_arrays(ids) if options.ids else None,
        )
        if options.shuffle:
            rng = np.random.default_rng([options.seed, _MERGE_STREAM])
            docs = docs.take(rng.permutation(len(docs.counts)))
        files = _write_files(
            docs, options.max_tokens_per_file, options.format, tokenizer, out, None
        )
        files = [{**entry, "source": "merged"} for entry in files]
        del docs, sources
        _publish_bytes(marker, json.dumps(files).encode("utf-8"))
    for path in _token_files(out, "part-*"):
        path.unlink()
    return files


def token_sources(paths: list[str]) -> list[str]:
    """``paths``, with a finished run folder replaced by its ``kept/`` folder
    (``inputs.kept_of_runs``): what a run kept is what one tokenizes. A run that kept
    nothing is a ``TokenizeError`` naming it."""
    from curation.io.inputs import InputError, kept_of_runs

    try:
        return kept_of_runs(paths, "tokenize")
    except InputError as err:
        raise TokenizeError(str(err)) from None


def _prepare_output(out: Path, overwrite: bool, plan: dict[str, Any]) -> dict[int, UnitResult]:
    """Make ``out`` ready for the tokenization ``plan`` describes and return the units
    an unfinished run of the same plan finished (resumed from: their files stay; the
    files of units it began but did not finish are removed).

    Refused without ``overwrite``: a finished tokenization, an unfinished one of another
    plan that finished a unit (one that finished none is replaced), and token files of no
    known plan. ``overwrite`` removes those files (and only
    those: anything else in the folder stays)."""
    work = out / "_work"
    known = work / "plan.json"
    parts = _token_files(out, "*")
    for path in out.glob(f"{TMP_PREFIX}*") if out.is_dir() else []:
        name = path.name[len(TMP_PREFIX) + 9 :]  # past the random part and its hyphen
        if _PART.fullmatch(name) or name == MANIFEST:
            path.unlink()  # a file a stopped run was writing
    if overwrite:
        for path in [*parts, out / MANIFEST]:
            path.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    elif (out / MANIFEST).exists():
        raise TokenizeError(
            f"--output {out} holds a finished tokenization ({MANIFEST}): pass --overwrite to "
            "replace it, or give another folder"
        )
    elif known.is_file() and not any(work.glob("done-*.json")):
        # began and finished no unit (an input error, Ctrl-C at once): nothing to keep
        for path in parts:
            path.unlink()
        shutil.rmtree(work, ignore_errors=True)
    elif known.is_file():
        if json.loads(known.read_text(encoding="utf-8")) != plan:
            raise TokenizeError(
                f"--output {out} holds an unfinished tokenization of other inputs or options: "
                "run its own command again to finish it, or pass --overwrite to start again"
            )
        done = [UnitResult.from_dict(json.loads(p.read_text())) for p in work.glob("done-*.json")]
        finished = {result.unit: result for result in done}
        for path in parts:  # those of units begun and not finished
            if path.name.startswith("part-") and int(path.name.split("-")[1]) not in finished:
                path.unlink()
        return finished
    elif parts:
        raise TokenizeError(
            f"--output {out} holds an earlier tokenization ({parts[0].name}): pass --overwrite "
            "to replace it, or give another folder"
        )
    work.mkdir(parents=True, exist_ok=True)
    _publish_bytes(known, json.dumps(plan, indent=2).encode("utf-8"))
    return {}


def _plan(
    sources: list[str], files: list[InputShard], spec: InputSpec, options: TokenizeOptions
) -> dict[str, Any]:
    """What decides a tokenization's files: a resumed run must have the same."""
    path = tokenizer_file(options.tokenizer.path)
    return {
        "sources": sources,
        "files": [[f.url, f.version] for f in files],
        "input": spec.model_dump(mode="json"),
        "tokenizer": {"file": str(path.resolve()), "sha256": file_sha256(path)},
        "bos": options.tokenizer.bos,
        "eos": options.tokenizer.eos,
        "shuffle": options.shuffle,
        "seed": options.seed,
        "max_tokens_per_file": options.max_tokens_per_file,
        "format": options.format,
        "merge": options.merge,
        "ids": options.ids,
        # only where given, so that a tokenization begun before --where existed goes on
        **({"where": options.where} if options.where is not None else {}),
        **({} if options.copies else {"copies": False}),
    }


def tokenize(
    paths: list[str],
    output: str | Path,
    options: TokenizeOptions,
    spec: InputSpec | None = None,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Tokenize the documents of ``paths`` (files, folders, globs, a run folder's kept
    documents) into token files in ``output`` and return ``tokenize.json``'s content.

    ``executor``: ``local`` tokenizes the units one after another in this process, on the
    tokenizer's own threads; ``ray`` runs one Ray task of one CPU per unit (an embedded
    cluster of ``workers`` CPUs, or the one at ``ray_address``). Both give the same files.
    Raises ``TokenizeError`` (tokenizer, token, output), ``InputError`` (inputs)."""
    from curation.io.inputs import resolve_inputs
    from curation.runtime.progress import RunProgress

    start = time.perf_counter()
    if is_url(str(output)):
        raise TokenizeError(f"--output {output} is a URL: token files are written to a path here")
    if options.format not in FORMATS:
        raise TokenizeError(f"unknown format {options.format!r}: one of {', '.join(FORMATS)}")
    sources = token_sources(paths)
    spec = (spec or InputSpec()).model_copy(update={"paths": sources})
    tokenizer = cached_tokenizer(options.tokenizer)  # its errors before any work
    if options.where is not None:
        from curation.filters.sql import parse_condition

        try:
            parse_condition(options.where)
        except ValueError as err:
            raise TokenizeError(f"--where: {err}") from None
    out = Path(output)
    files = resolve_inputs(sources, spec.format)
    plan = _plan(sources, files, spec, options)
    finished = _prepare_output(out, overwrite, plan)
    units = plan_units(
        files, spec.unit_bytes, batch_rows=spec.batch_rows, index_folder=str(out / "_work")
    )
    todo = [(unit, shard) for unit, shard in enumerate(units) if unit not in finished]
    results = list(finished.values())
    shown = RunProgress(len(units), len(finished), progress, label="tokenize", files=len(files))
    with shown:
        if executor == "ray" or ray_address:
            results += _on_ray(todo, spec, options, str(out), workers, ray_address, shown)
        else:
            for unit, shard in todo:
                results.append(tokenize_unit(unit, shard, spec, options, str(out), shown.batch))
                shown.shard_done()
    results.sort(key=lambda r: r.unit)
    if options.merge:
        files = _merged(results, tokenizer, options, out)
    else:
        files = [{**entry, "source": r.source} for r in results for entry in r.files]
    data = manifest(results, files, tokenizer, options, plan, time.perf_counter() - start)
    write_manifest(out, data)
    shutil.rmtree(out / "_work", ignore_errors=True)
    return data


def _on_ray(
    units: list[tuple[int, InputShard]],
    spec: InputSpec,
    options: TokenizeOptions,
    output: str,
    workers: int | None,
    ray_address: str | None,
    shown: Any,
) -> list[UnitResult]:
    """``tokenize_unit`` for every unit as Ray tasks of one CPU each (the tokenizer on one
    thread), their errors raised here as the task raised them."""
    import ray

    from curation.runtime.executors import cluster_address, start_or_join_ray

    started = False  # a driver that embeds us may have Ray up: use it, leave it up
    if not ray.is_initialized():
        started = start_or_join_ray(
            cluster_address(ray_address),
            workers,
            include_dashboard=False,
            logging_level="WARNING",
        )
    task = ray.remote(num_cpus=1, max_retries=0)(_unit_task)
    one_thread = dataclasses.replace(options, parallel=False)
    try:
        pending = [
            task.remote(unit, shard.to_dict(), spec.model_dump(), one_thread, output)
            for unit, shard in units
        ]
        results = []
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayTaskError as err:  # the task's own error, not Ray's
                if isinstance(err.cause, ValueError):  # InputError, TokenizeError
                    raise err.cause from None
                raise
            results.append(result)
            shown.batch(result.read, result.text_bytes)
            shown.shard_done()
        return results
    finally:
        if started:
            ray.shutdown()


def _unit_task(
    unit: int, shard: dict[str, Any], spec: dict[str, Any], options: TokenizeOptions, output: str
) -> UnitResult:
    return tokenize_unit(unit, InputShard.from_dict(shard), InputSpec(**spec), options, output)
