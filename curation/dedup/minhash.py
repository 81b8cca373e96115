"""``minhash_dedup``: near-duplicate removal with MinHash LSH over the whole dataset.

**Shingles.** The text is normalised (lower case, Unicode punctuation and symbols
removed, white space folded) and cut into word n-grams (``ngram`` words, 5 by default), or
into character n-grams of the lower-cased, white-space-folded text when ``shingle:
char``. A document with fewer tokens than ``ngram`` has one shingle, all of its tokens;
a document with no token has no signature and is never a duplicate. Each token gets a
64-bit hash (a polynomial over its UTF-8 bytes, then a SplitMix64 finaliser; ASCII words
in one compiled pass over the batch's bytes), and each shingle a 64-bit hash of its
tokens' hashes in order. Hashes depend only on the text and ``seed``, not on a library's
string hash, so they are the same on every machine and version.

**Signature and bands.** ``num_bands * rows_per_band`` hash functions ``h_k(x) = a_k x +
b_k mod 2**64`` (odd ``a_k``; multiply-shift hashing, whose high bits decide the
minimum), drawn from ``seed``; the signature is each function's minimum over the
document's shingles. Each band of ``rows_per_band`` minima is folded into one 64-bit
band key. Two documents whose band keys agree in at least one band are a candidate pair;
with Jaccard similarity ``s`` that happens with probability ``1 - (1 - s**r)**b``
(``curate minhash-params`` prints it).

**Barrier** (``decide``), in three steps over partitioned intermediate files under the
decisions folder:

1. *Buckets.* For each band (as a Ray task when the run has a Ray cluster, so the
   bands spread over its workers), and within it each of ``partitions`` ranges of
   band-key values, the key column is read from all shards with each row's scan number,
   sorted, and each bucket of equal keys yields edges from its members to its smallest
   row (a star, so a bucket of ``k`` documents costs ``k - 1`` edges). Edges go to one
   file per band.
2. *Nodes.* Only the candidates, the rows that have at least one edge, are read again
   (id, shard, priority) and ranked by the keep policy: highest ``priority_column`` first
   when one is given, then smallest id (then shard). A candidate's rank is its node
   number. Each band's stars are redrawn on node numbers, every bucket's centre moved to
   its smallest node, the document the policy keeps, so the edges are those that bucketing
   on the policy's ranks would give. With ``jaccard_threshold``, each edge is then kept
   only when the exact Jaccard similarity of the two documents' shingle sets reaches it.
3. *Components.* Connected components over all edges (so chains A~B~C form one cluster)
   by min-label propagation with pointer jumping, vectorised in numpy, streaming the
   edge files from disk each round. Each component's smallest node is kept; the others
   are dropped as ``minhash_dedup:near_duplicate`` with ``duplicate_of`` set to it.

Every row leaving the stage has ``minhash_cluster_id`` (the id of its cluster's kept
document; its own id when it has no near duplicate) and ``minhash_cluster_size``.

**Against other datasets.** With ``against`` (documents kept elsewhere: a previous dump,
a training set; any input format, text in ``against_text_field``), their band keys (and
shingle sets, with ``jaccard_threshold``) are computed on the driver at the barrier, one
batch at a time (or read from the engine's cache, where an earlier run against the same
files left them: ``dedup.common.held_keys``), copied under the decisions folder and
bucketed with the dataset's as rows that rank before every document here. Every
document here whose cluster holds one of them is dropped as
``minhash_dedup:in_against``, with a null ``duplicate_of``; its
cluster is named after its first document here, and ``minhash_cluster_size`` counts the
documents here only. With ``only_against`` (datatrove's ``only_dedup_in_index``), only
the edges between a document here and one of ``against`` are drawn, so a document goes
only when it shares a bucket with one of them (and, with ``jaccard_threshold``, reaches
it against that one), and near duplicates within the dataset stay. Like datatrove's
index, this finds what a run over both datasets together, the other one ranked first,
would drop here.

**Memory model** (``D`` live documents, ``C`` candidates: documents that share a bucket
with another, ``E`` edges of one band, ``P`` partitions, ``S`` shingle hashes of the
candidates):

- measure, per worker: about 40 bytes per byte of text of the batch in flight (the word
  scanner's slots), then 8 bytes per token and ``num_perm * 8`` per document for the
  signatures (shingles are made on the fly, never stored), and ``num_bands * 8`` bytes
  per document of band keys written with the rows; with ``jaccard_threshold``, also 8
  bytes per distinct shingle of each document, sorted in one compiled pass per batch.
- barrier step 1: about ``100 * D / P`` bytes per (band, partition) while it is bucketed
  (the keys, the rows, their sort order and its temporaries; measured at 10^6
  documents). Pick ``partitions`` so that fits (the default 1 holds 10^7 documents in
  about 1 GB). On Ray each band's task holds its own.
- step 2: the candidates' id and shard strings plus a few tens of bytes each (polars
  streams the key files and sorts only the candidates), and ``16 * E`` for the band
  being redrawn; with ``jaccard_threshold``, ``8 * S`` for the shingle sets of the
  candidates.
- step 3: ``16 * C`` bytes for the labels, plus ``16 * E`` for the edge file being
  streamed.
- ``against``: its documents count in ``D`` and ``C`` like the dataset's; reading them
  holds one batch of their text at a time.

So the driver never holds all pairs, and nothing for a document without a candidate
beyond the band being bucketed.
"""

from __future__ import annotations

import shutil
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curation.batch import ID, with_drop_reason
from curation.dedup.common import (
    AgainstParams,
    held_keys,
    normalized_text,
    set_duplicate_of,
    with_priority,
)
from curation.stage import GlobalStage, register, write_decisions
from curation.utf8 import code_point, string_buffers

_PREFIX = "_minhash_"
_SHINGLES = "_minhash_shingles"
_PRIORITY = "_minhash_priority"
_AGAINST = "against"  # in a decision: the document's cluster holds a document of ``against``

# SplitMix64 constants and the odd multiplier of the byte polynomial.
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_BYTE_BASE = np.uint64(0x100000001B3)


def band_column(band: int) -> str:
    """The internal column that holds band ``band``'s key."""
    return f"{_PREFIX}b{band:03d}"


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise on a uint64 array (returns a new array)."""
    out = np.array(x, dtype=np.uint64, order="C", copy=True)
    _mix64_in_place(out.reshape(-1))
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _finalise(v: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """SplitMix64's finaliser of one value."""
    v ^= v >> np.uint64(30)
    v *= _M1
    v ^= v >> np.uint64(27)
    v *= _M2
    v ^= v >> np.uint64(31)
    return v


@numba.njit(cache=True, nogil=True)
def _mix64_in_place(x: np.ndarray) -> None:  # pragma: no cover - compiled
    # one pass in registers: numpy's five whole-array passes were memory-bound (1.4 s
    # for 28 M values on the development VM, against 0.05 s here)
    for i in range(len(x)):
        x[i] = _finalise(x[i])


class MinhashParams(AgainstParams):
    column: str = Field("text", description="the text column to compare")
    shingle: Literal["word", "char"] = Field("word", description="word or character n-grams")
    ngram: int = Field(5, ge=1, description="tokens per shingle")
    num_bands: int = Field(14, ge=1, description="LSH bands")
    rows_per_band: int = Field(8, ge=1, description="hash functions per band")
    seed: int = Field(1, ge=0, description="seed of the hash functions")
    jaccard_threshold: float | None = Field(
        None, gt=0, le=1, description="keep a candidate pair only if its exact Jaccard >= this"
    )
    priority_column: str | None = Field(
        None,
        description="keep the document with the highest value of this column (then "
        "id): numbers, or times and ISO 8601 text (the newest kept)",
    )
    partitions: int = Field(1, ge=1, description="band-key ranges per band at the barrier")

    @model_validator(mode="after")
    def _partitions_power_of_two(self) -> MinhashParams:
        if self.partitions & (self.partitions - 1):
            raise ValueError(f"partitions must be a power of two, not {self.partitions}")
        return self


# --------------------------------------------------------------------------- hashing


# Tables of the word scanner, by byte. _STOPS: 1 ASCII white space, 2 a byte of a
# non-ASCII character (maybe white space), 0 otherwise. _VALUES: the byte's term in the
# word hash (its lower-case value + 1), 0 for ASCII punctuation and symbols, which are
# removed. _STEPS: the factor of the next byte's power (1 after a removed byte).
_STOPS = np.zeros(256, dtype=np.uint8)
_STOPS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 1
_STOPS[128:] = 2
_VALUES = np.arange(1, 257, dtype=np.uint64)
_VALUES[ord("A") : ord("Z") + 1] += 32
_VALUES[[ord(c) for c in string.punctuation]] = 0
_STEPS = np.where(_VALUES > 0, _BYTE_BASE, np.uint64(1)).astype(np.uint64)
_KEEPS = (_VALUES > 0).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _space_length(data: np.ndarray, i: int, end: int) -> int:  # pragma: no cover - compiled
    """Bytes of the Unicode white-space character at ``data[i]`` (0 when it is none)."""
    b0 = data[i]
    b1 = data[i + 1] if i + 1 < end else 0
    b2 = data[i + 2] if i + 2 < end else 0
    if b0 == 0xC2 and (b1 == 0x85 or b1 == 0xA0):
        return 2
    if b0 == 0xE1 and b1 == 0x9A and b2 == 0x80:
        return 3
    if b0 == 0xE2 and b1 == 0x80 and (b2 <= 0x8A or b2 == 0xA8 or b2 == 0xA9 or b2 == 0xAF):
        return 3
    if b0 == 0xE2 and b1 == 0x81 and b2 == 0x9F:
        return 3
    if b0 == 0xE3 and b1 == 0x80 and b2 == 0x80:
        return 3
    return 0


@numba.njit(cache=True, nogil=True)
def _scan_words(
    data: np.ndarray,
    offsets: np.ndarray,
    stops: np.ndarray,
    values: np.ndarray,
    steps: np.ndarray,
    keeps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """One pass over the UTF-8 bytes of a batch: the hash of every ASCII word.

    Returns per word slot its hash, its start and end byte and whether it holds a
    non-ASCII character (then its hash is left to ``string_hashes``), and per text the
    number of slots. Words made only of punctuation take no slot.
    """
    docs = len(offsets) - 1
    cap = (offsets[-1] - offsets[0]) // 2 + docs + 1
    hashes = np.empty(cap, dtype=np.uint64)  # untouched pages cost nothing
    starts = np.empty(cap, dtype=np.int64)
    ends = np.empty(cap, dtype=np.int64)
    foreign = np.empty(cap, dtype=np.bool_)
    counts = np.zeros(docs, dtype=np.int64)
    golden = np.uint64(0x9E3779B97F4A7C15)
    slot = 0
    for d in range(docs):
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            stop = stops[data[i]]
            if stop == 1:
                i += 1
                continue
            if stop == 2:
                space = _space_length(data, i, end)
                if space:
                    i += space
                    continue
            first = i
            h = np.uint64(0)
            power = np.uint64(1)
            length = 0
            wide = False
            while i < end:
                byte = data[i]
                stop = stops[byte]
                if stop != 0:
                    if stop == 1 or _space_length(data, i, end):
                        break
                    wide = True
                h += values[byte] * power
                power *= steps[byte]
                length += keeps[byte]
                i += 1
            if length == 0 and not wide:
                continue
            foreign[slot] = wide
            hashes[slot] = _finalise(h ^ (np.uint64(length) * golden))
            starts[slot] = first
            ends[slot] = i
            slot += 1
            counts[d] += 1
    return hashes[:slot], starts[:slot], ends[:slot], foreign[:slot], counts


def _word_tokens(texts: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the normalised words of every text, flat, and the number per text.

    Words are split at white space (``str.isspace``), lower-cased (Greek final sigma
    folded to sigma, as ``dedup.common.normalized_text`` does) and stripped of
    punctuation and symbols (Unicode P and S); words left empty are dropped. ASCII words
    are done in one compiled pass over the bytes; the few words with other characters are
    normalised by pyarrow, each distinct one once, and hashed the same way.
    """
    texts = pc.fill_null(texts.cast(pa.large_string()), "")
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    raw, offsets = string_buffers(texts)
    hashes, starts, ends, foreign, counts = _scan_words(
        raw, offsets, _STOPS, _VALUES, _STEPS, _KEEPS
    )
    if not foreign.any():
        return hashes, counts
    where = np.flatnonzero(foreign)
    lengths = ends[where] - starts[where]
    gather = np.repeat(starts[where] - (np.cumsum(lengths) - lengths), lengths) + np.arange(
        int(lengths.sum())
    )
    word_offsets = pa.py_buffer(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    words = pa.LargeStringArray.from_buffers(
        len(where), word_offsets, pa.py_buffer(raw[gather].tobytes())
    )
    encoded = pc.dictionary_encode(words)
    lowered = pc.replace_substring(pc.utf8_lower(encoded.dictionary), "ς", "σ")
    normal = pc.replace_substring_regex(lowered, r"[\p{P}\p{S}]+", "")
    real = np.asarray(pc.greater(pc.binary_length(normal), 0))
    distinct = np.zeros(len(normal), dtype=np.uint64)
    distinct[real] = string_hashes(normal.filter(pa.array(real)))
    index = np.asarray(encoded.indices)
    hashes[where] = distinct[index]
    keep = np.ones(len(hashes), dtype=bool)
    keep[where[~real[index]]] = False
    if keep.all():
        return hashes, counts
    owner = np.repeat(np.arange(n), counts)
    return hashes[keep], np.bincount(owner[keep], minlength=n).astype(np.int64)


def string_hashes(words: pa.Array) -> np.ndarray:
    """A 64-bit hash of each (non-empty) string, from its UTF-8 bytes, for all at once."""
    n = len(words)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    data, offsets = string_buffers(words.cast(pa.large_string()))
    raw = data[offsets[0] : offsets[-1]]  # Arrow strings are contiguous between offsets
    lengths = np.diff(offsets)
    first = offsets[:-1] - offsets[0]
    position = np.arange(len(raw), dtype=np.int64) - np.repeat(first, lengths)
    powers = np.empty(int(lengths.max()), dtype=np.uint64)
    powers[0] = 1
    if len(powers) > 1:
        powers[1:] = _BYTE_BASE
        np.multiply.accumulate(powers, out=powers)
    terms = (raw.astype(np.uint64) + np.uint64(1)) * powers[position]
    sums = np.add.reduceat(terms, first)
    return mix64(sums ^ (lengths.astype(np.uint64) * _GOLDEN))


def _codepoint_tokens(texts: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Hashed code points of each text's ``normalized_text`` (lower-cased, final sigma
    folded, white space folded and trimmed), flat, and counts."""
    normal = normalized_text(pc.fill_null(texts.cast(pa.large_string()), ""))
    points, counts = _code_points(*string_buffers(normal))
    return mix64(points.astype(np.uint64) + _GOLDEN), counts


@numba.njit(cache=True, nogil=True)
def _code_points(
    data: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The code points of each (valid UTF-8) text, flat, and the count per text."""
    docs = len(offsets) - 1
    out = np.empty(offsets[-1] - offsets[0], dtype=np.uint32)
    counts = np.zeros(docs, dtype=np.int64)
    slot = 0
    for d in range(docs):
        begin = slot
        i = offsets[d]
        while i < offsets[d + 1]:
            c, size = code_point(data, i)
            out[slot] = c
            slot += 1
            i += size
        counts[d] = slot - begin
    return out[:slot], counts


def _shingle_weights(n: int, seed: int) -> np.ndarray:
    """The odd multiplier of each position of a shingle."""
    offset = np.uint64(seed * int(_GOLDEN) % 2**64)
    return mix64(np.arange(1, n + 1, dtype=np.uint64) + offset) | np.uint64(1)


def shingle_hashes(tokens: np.ndarray, counts: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Per-document shingles of ``n`` consecutive token hashes, flat in document order.

    A document with ``0 < count < n`` tokens has one shingle of all its tokens. Returns the
    shingle hashes; each document has ``max(count - n + 1, min(count, 1))`` of them. One
    compiled pass writes them: nothing but the result is allocated (8 bytes a shingle).
    """
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    out = np.empty(int(shingle_counts(counts, n).sum()), dtype=np.uint64)
    if len(out):
        _shingles_into(
            np.ascontiguousarray(tokens, dtype=np.uint64), counts, _shingle_weights(n, seed), out
        )
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _document_shingles(
    tokens: np.ndarray, start: int, count: int, weights: np.ndarray, out: np.ndarray, at: int
) -> int:  # pragma: no cover - compiled
    """Write the shingle hashes of the document whose ``count`` (> 0) tokens begin at
    ``start`` into ``out`` from ``at``; return how many: ``max(count - n + 1, 1)``."""
    n = len(weights)
    width = min(n, count)
    shingles = max(count - n + 1, 1)
    for s in range(shingles):
        x = np.uint64(0)
        for j in range(width):
            x += tokens[start + s + j] * weights[j]
        out[at + s] = _finalise(x)  # as mix64
    return shingles


@numba.njit(cache=True, nogil=True)
def _shingles_into(
    tokens: np.ndarray, counts: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Every document's shingle hashes, flat in document order, into ``out``."""
    start = 0
    at = 0
    for count in counts:
        if count > 0:
            at += _document_shingles(tokens, start, count, weights, out, at)
        start += count


@numba.njit(cache=True, nogil=True)
def distinct_sorted(
    values: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Each run of ``values`` (run ``i`` has ``sizes[i]`` elements) sorted, repeats removed.

    Returns the runs concatenated and each run's new length: per document, what
    ``np.unique`` gives, in one compiled pass over the batch.
    """
    out = np.empty_like(values)
    lengths = np.zeros(len(sizes), dtype=np.int64)
    start = 0
    end = 0
    for i in range(len(sizes)):
        run = np.sort(values[start : start + sizes[i]])
        for j in range(len(run)):
            if j == 0 or run[j] != run[j - 1]:
                out[end] = run[j]
                end += 1
                lengths[i] += 1
        start += sizes[i]
    return out[:end], lengths


def shingle_counts(counts: np.ndarray, n: int) -> np.ndarray:
    """Number of shingles of documents with ``counts`` tokens."""
    return np.where(counts >= n, counts - n + 1, np.minimum(counts, 1)).astype(np.int64)


def tokens_of(texts: pa.ChunkedArray | pa.Array, shingle: str) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes (flat) and tokens per document, for word or char shingles."""
    if shingle == "char":
        return _codepoint_tokens(texts)
    return _word_tokens(texts)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``a`` (odd) and ``b`` coefficients of the hash functions, from ``seed``."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


#: Documents with at least this many shingles take the minima per hash function over a
#: buffer of their shingle hashes (the running minimum stays in a register); shorter ones
#: apply all functions to each shingle in turn. Both give the same minima; measured on
#: AVX2, the first is 2.1x faster on 166-word documents and the second on 1 to 4 shingles.
_PER_FUNCTION_FROM = 8


@numba.njit(cache=True, nogil=True)
def _minhash(
    tokens: np.ndarray,
    counts: np.ndarray,
    weights: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    """Signatures of the documents with at least one token, shingles made on the fly."""
    functions = len(a)
    docs = 0
    longest = 1
    for c in counts:
        docs += c > 0
        longest = max(longest, c)
    out = np.empty((docs, functions), dtype=np.uint64)
    xs = np.empty(longest, dtype=np.uint64)  # one document's shingle hashes
    top = np.uint64(0xFFFFFFFFFFFFFFFF)
    start = 0
    row_index = 0
    for count in counts:
        if count == 0:
            continue
        row = out[row_index]
        row_index += 1
        shingles = _document_shingles(tokens, start, count, weights, xs, 0)
        if shingles >= _PER_FUNCTION_FROM:
            for k in range(functions):
                ak, bk = a[k], b[k]
                best = top
                for s in range(shingles):  # a min-reduction LLVM vectorises over shingles
                    best = min(best, ak * xs[s] + bk)
                row[k] = best
        else:
            for k in range(functions):
                row[k] = top
            for s in range(shingles):
                x = xs[s]
                for k in range(functions):  # vectorised by LLVM over the hash functions
                    value = a[k] * x + b[k]
                    if value < row[k]:
                        row[k] = value
        start += count
    return out


def signatures(
    tokens: np.ndarray, counts: np.ndarray, n: int, seed: int, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """MinHash signatures of the documents that have tokens: ``(documents, len(a))``.

    ``tokens`` are the token hashes of all documents, flat, ``counts`` the tokens per
    document. ``out[d, k]`` is the least ``a[k] * x + b[k] mod 2**64`` over the shingle
    hashes ``x`` of document ``d`` (those of ``shingle_hashes``). One compiled pass per
    document: its shingles are hashed from their tokens into a buffer, then each hash
    function's minimum over them is a SIMD reduction held in registers (documents of
    fewer than 8 shingles apply all functions to each shingle instead).
    """
    return _minhash(
        np.ascontiguousarray(tokens, dtype=np.uint64),
        np.ascontiguousarray(counts, dtype=np.int64),
        _shingle_weights(n, seed),
        np.ascontiguousarray(a, dtype=np.uint64),
        np.ascontiguousarray(b, dtype=np.uint64),
    )


def band_keys(signature: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Fold each band of ``rows`` minima into one 64-bit key: shape ``(documents, bands)``."""
    shaped = signature.reshape(len(signature), bands, rows)
    keys = np.zeros((len(signature), bands), dtype=np.uint64)
    for r in range(rows):
        keys = mix64(keys ^ shaped[:, :, r])
    return keys


def document_shingles(
    texts: pa.ChunkedArray | pa.Array, shingle: str, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat shingle hashes of every text and the number per text."""
    tokens, counts = tokens_of(texts, shingle)
    return shingle_hashes(tokens, counts, n, seed), shingle_counts(counts, n)


# --------------------------------------------------------------------------- the stage


@register
class MinhashDedup(GlobalStage):
    """MinHash LSH near-duplicate clusters over the whole dataset; keeps one per cluster."""

    name = "minhash_dedup"
    help = "drop near duplicates (MinHash LSH, connected components) over the dataset"
    Params = MinhashParams
    params: MinhashParams

    def __init__(self, params: MinhashParams) -> None:  # type: ignore[override]
        super().__init__(params)
        self.num_perm = params.num_bands * params.rows_per_band
        self._a, self._b = permutations(self.num_perm, params.seed)

    def key_columns(self) -> list[str]:
        p = self.params
        columns = [band_column(b) for b in range(p.num_bands)]
        if p.jaccard_threshold is not None:
            columns.append(_SHINGLES)
        if p.priority_column is not None:
            columns.append(_PRIORITY)
        return columns

    def measure(self, table: pa.Table) -> pa.Table:
        p = self.params
        if p.column not in table.column_names:
            raise ValueError(
                f"minhash_dedup: no column {p.column!r}; columns are {table.column_names}"
            )
        for name, column in self._keys(table[p.column]).items():
            table = table.append_column(name, column)
        if p.priority_column is not None:
            table = with_priority(table, self.name, p.priority_column, _PRIORITY)
        return table

    def _keys(self, texts: pa.ChunkedArray | pa.Array) -> dict[str, pa.Array]:
        """The band keys of each text (null where it has no token) and, with
        ``jaccard_threshold``, its distinct shingle hashes, sorted."""
        p = self.params
        tokens, counts = tokens_of(texts, p.shingle)
        has = counts > 0
        keys = np.zeros((len(texts), p.num_bands), dtype=np.uint64)
        if has.any():
            signature = signatures(tokens, counts, p.ngram, p.seed, self._a, self._b)
            keys[has] = band_keys(signature, p.num_bands, p.rows_per_band)
        missing = pa.array(~has)
        out = {
            band_column(band): pc.if_else(
                missing, pa.scalar(None, pa.uint64()), pa.array(keys[:, band])
            )
            for band in range(p.num_bands)
        }
        if p.jaccard_threshold is not None:
            shingles = shingle_hashes(tokens, counts, p.ngram, p.seed)
            flat, lengths = distinct_sorted(shingles, shingle_counts(counts, p.ngram))
            list_offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int64())
            out[_SHINGLES] = pa.LargeListArray.from_arrays(list_offsets, pa.array(flat))
        return out

    def _against_rows(self, work: Path) -> tuple[pl.LazyFrame | None, int]:
        """The keys of the documents of ``against`` that have a token (made once and
        cached: ``held_keys``), copied to ``work``, where the band tasks read them, and
        how many there are (None, 0 without ``against``)."""

        def keys_of(table: pa.Table) -> pa.Table:
            keys = pa.table(self._keys(table[self.params.column]))
            return keys.filter(pc.is_valid(keys[band_column(0)]))

        path = held_keys(self, self.params.column, keys_of, work)
        if path is None:
            return None, 0
        local = work / "against.arrow"
        if path != local:
            shutil.copyfile(path, local)
        rows = pl.scan_ipc(local)
        held = rows.select(pl.len()).collect().item()
        return (rows, held) if held else (None, 0)

    def process(self, table: pa.Table) -> pa.Table:
        out = self.apply(table, getattr(self, "_decisions", None))
        return out.drop_columns([c for c in out.column_names if c.startswith(_PREFIX)])

    def decide(self, keys: Any, folder: Path) -> None:
        if band_column(0) not in keys.collect_schema().names():
            return  # no live row reached the barrier
        work = folder / "_minhash"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        p = self.params
        rows = keys.filter(pl.col(band_column(0)).is_not_null())
        held_rows, held = self._against_rows(work)
        if held_rows is not None:  # the documents of ``against`` are the first rows
            rows = pl.concat([held_rows, rows], how="diagonal_relaxed")
        edge_files = _all_band_edges(rows, p, work, self.progress)
        candidates = edge_rows(edge_files)
        self.progress(f"ranking {len(candidates):,} documents that share a bucket")
        node_of, nodes = _rank(rows, candidates, p.priority_column is not None, held)
        elsewhere = int(np.searchsorted(candidates, held))  # their nodes come first too
        for f in edge_files:
            edges = recentre(np.load(f), candidates, node_of)
            if p.only_against:  # only a document here and one of ``against``
                edges = edges[(edges[:, 0] < elsewhere) != (edges[:, 1] < elsewhere)]
            np.save(f, edges)
        del candidates, node_of
        if p.jaccard_threshold is not None:
            row_of_node = nodes["row"].to_numpy().astype(np.int64)
            edge_files = _verify(
                rows, edge_files, row_of_node, p.jaccard_threshold, work, self.progress
            )
        self.progress("clusters")
        members, labels = components(edge_files)
        here = members >= elsewhere
        members, labels = members[here], labels[here]
        # each cluster is named after its first document here (its least node), the one
        # kept unless the cluster holds a document of ``against`` (then its root)
        first = np.full(int(labels.max(initial=-1)) + 1, np.iinfo(np.int64).max)
        np.minimum.at(first, labels, members)
        counts = np.bincount(labels, minlength=len(first))
        clustered = pl.DataFrame(
            {
                "node": members,
                "root": first[labels],
                "minhash_cluster_size": counts[labels].astype(np.uint32),
                _AGAINST: labels < elsewhere,
            }
        )
        ids = nodes.select("node", ID, "shard")
        decisions = (
            clustered.join(ids, on="node", how="left")
            .join(
                ids.select(pl.col("node").alias("root"), pl.col(ID).alias("minhash_cluster_id")),
                on="root",
                how="left",
            )
            .with_columns(
                pl.when((pl.col("node") == pl.col("root")) | pl.col(_AGAINST))
                .then(None)
                .otherwise(pl.col("minhash_cluster_id"))
                .alias("duplicate_of")
            )
            .select(
                "shard", ID, "duplicate_of", "minhash_cluster_id", "minhash_cluster_size", _AGAINST
            )
        )
        write_decisions(decisions, folder)
        shutil.rmtree(work)

    def applied_columns(self) -> list[str]:
        return []  # the decisions are by id

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        n = table.num_rows
        if decisions is None or decisions.num_rows == 0:
            table = table.append_column("minhash_cluster_id", table[ID].cast(pa.string()))
            table = table.append_column(
                "minhash_cluster_size", pa.array(np.ones(n, dtype=np.uint32))
            )
            return set_duplicate_of(table, pa.nulls(n, pa.string()))
        where = pc.index_in(table[ID], decisions[ID])
        cluster = pc.coalesce(
            pc.take(decisions["minhash_cluster_id"].cast(pa.string()), where),
            table[ID].cast(pa.string()),
        )
        size = pc.fill_null(pc.take(decisions["minhash_cluster_size"].cast(pa.uint32()), where), 1)
        duplicate_of = pc.take(decisions["duplicate_of"].cast(pa.string()), where)
        table = table.append_column("minhash_cluster_id", cluster)
        table = table.append_column("minhash_cluster_size", size)
        table = set_duplicate_of(table, duplicate_of)
        if _AGAINST in decisions.column_names:  # absent where an older engine decided
            elsewhere = pc.fill_null(pc.take(decisions[_AGAINST], where), False)
            table = with_drop_reason(table, elsewhere, self.reason("in_against"))
        return with_drop_reason(table, pc.is_valid(duplicate_of), self.reason("near_duplicate"))

    def versions(self) -> dict[str, str]:
        return {"hashing": "minhash-v1 (polynomial bytes, splitmix64, multiply-shift)"}


# --------------------------------------------------------------------------- barrier steps


def bucket_edges(values: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges from every member of a bucket of equal ``values`` to the bucket's least node."""
    order = np.lexsort((nodes, values))
    v, n = values[order], nodes[order]
    first = np.ones(len(v), dtype=bool)
    first[1:] = v[1:] != v[:-1]
    root = n[np.maximum.accumulate(np.where(first, np.arange(len(v)), 0))]
    member = ~first
    return n[member], root[member]


def _band_edges(rows: pl.LazyFrame, column: str, partitions: int, path: Path) -> Path:
    """All edges of one band, written to ``path`` as an ``(E, 2)`` array of rows (scan
    order of ``rows``): a star from each bucket's members to its least row."""
    keyed = rows.select(pl.col(column)).with_row_index("row")
    parts = []
    shift = 64 - max(partitions.bit_length() - 1, 0)
    for part in range(partitions):
        frame = keyed
        if partitions > 1:
            width = pl.lit(1 << shift, dtype=pl.UInt64)
            frame = keyed.filter((pl.col(column) // width) == part)
        data = frame.collect()
        values = data[column].to_numpy()
        u, v = bucket_edges(values, data["row"].to_numpy().astype(np.int64))
        parts.append(np.stack([u, v], axis=1))
    edges = np.concatenate(parts) if parts else np.empty((0, 2), dtype=np.int64)
    np.save(path, edges)
    return path


def _all_band_edges(
    rows: pl.LazyFrame, params: MinhashParams, work: Path, say: Callable[[str], None]
) -> list[Path]:
    """The edge file of every band: as Ray tasks (one core each) when the run has a Ray
    cluster, so bands are bucketed on all its workers at once; in this process otherwise,
    each band ``say``'d as it begins. The result does not depend on where the bands ran."""
    jobs = [(band_column(b), work / f"band-{b:03d}.npy") for b in range(params.num_bands)]
    ray = sys.modules.get("ray")  # not imported: no cluster, and no 0.5 s to import it
    if ray is None or not ray.is_initialized():
        files = []
        for b, (column, file) in enumerate(jobs):
            say(f"buckets of band {b + 1} of {len(jobs)}")
            files.append(_band_edges(rows, column, params.partitions, file))
        return files
    say(f"buckets of {len(jobs)} bands as Ray tasks")
    task = ray.remote(num_cpus=1)(_band_edges)
    return ray.get([task.remote(rows, c, params.partitions, f) for c, f in jobs])


def edge_rows(files: list[Path]) -> np.ndarray:
    """The sorted distinct nodes of the edges stored in ``files``."""
    members = np.empty(0, dtype=np.int64)
    for f in files:
        members = np.union1d(members, np.load(f).ravel())
    return members


def _rank(
    rows: pl.LazyFrame, candidates: np.ndarray, by_priority: bool, first: int = 0
) -> tuple[np.ndarray, pl.DataFrame]:
    """Rank the candidate rows (sorted row numbers) by the keep policy.

    The ``first`` rows (the documents of ``against``) come first, in row order; then the
    others by priority (highest first) when ``by_priority``, then smallest id, then shard.
    Returns each candidate's node number (its rank, aligned with ``candidates``) and the
    table ``node, row, id, shard`` of the candidates in node order. The key files are
    streamed, so only the candidates' rows are held.
    """
    order, descending = ["_here", ID, "shard", "row"], [False, False, False, False]
    if by_priority:
        order.insert(1, _PRIORITY)
        descending.insert(1, True)
    wanted = pl.LazyFrame({"row": pl.Series(candidates, dtype=pl.get_index_type())})
    nodes = (
        rows.select(ID, "shard", *([_PRIORITY] if by_priority else []))
        .with_row_index("row")
        .join(wanted, on="row", how="semi")
        .with_columns((pl.col("row") >= first).alias("_here"))
        .sort(order, descending=descending, nulls_last=True)
        .with_row_index("node")
        .select("node", "row", ID, "shard")
        .collect()
    )
    node_of = np.empty(len(candidates), dtype=np.int64)
    node_of[np.searchsorted(candidates, nodes["row"].to_numpy())] = nodes["node"].to_numpy()
    return node_of, nodes


def recentre(edges: np.ndarray, candidates: np.ndarray, node_of: np.ndarray) -> np.ndarray:
    """One band's row-space stars (member, least row) as stars on node numbers.

    Each row is in one bucket of a band, so a star's centre names its bucket. The bucket's
    members are renumbered by ``node_of`` (aligned with the sorted ``candidates``) and
    re-joined to the bucket's least node, the one the keep policy prefers: the same star
    that bucketing on node numbers would have drawn.
    """
    if len(edges) == 0:
        return edges
    centres, bucket = np.unique(edges[:, 1], return_inverse=True)
    member = node_of[np.searchsorted(candidates, edges[:, 0])]
    centre = node_of[np.searchsorted(candidates, centres)]
    best = centre.copy()
    np.minimum.at(best, bucket, member)
    nodes = np.concatenate([member, centre])
    of = np.concatenate([bucket, np.arange(len(centres))])
    keep = nodes != best[of]
    return np.stack([nodes[keep], best[of][keep]], axis=1)


@numba.njit(cache=True, nogil=True)
def jaccard_at_least(
    offsets: np.ndarray, values: np.ndarray, u: np.ndarray, v: np.ndarray, threshold: float
) -> np.ndarray:  # pragma: no cover - compiled
    """For each pair (u[k], v[k]) of sets stored as sorted runs of ``values`` (set ``i`` is
    ``values[offsets[i]:offsets[i + 1]]``), whether their Jaccard similarity is at least
    ``threshold``; an empty union never is."""
    out = np.zeros(len(u), dtype=np.bool_)
    for k in range(len(u)):
        i, i_end = offsets[u[k]], offsets[u[k] + 1]
        j, j_end = offsets[v[k]], offsets[v[k] + 1]
        union = (i_end - i) + (j_end - j)
        common = 0
        while i < i_end and j < j_end:
            if values[i] < values[j]:
                i += 1
            elif values[i] > values[j]:
                j += 1
            else:
                common += 1
                i += 1
                j += 1
        union -= common
        out[k] = union > 0 and common / union >= threshold
    return out


def _verify(
    rows: pl.LazyFrame,
    files: list[Path],
    row_of_node: np.ndarray,
    threshold: float,
    work: Path,
    say: Callable[[str], None],
) -> list[Path]:
    """Keep only the edges whose two documents' shingle sets have Jaccard >= threshold
    (how many pairs ``say``'d).

    The candidates' sets are held as one flat array of 8-byte hashes (Arrow's buffers, no
    Python object per hash) and compared by a compiled merge of their sorted runs.
    """
    edges = [np.load(f) for f in files]
    pairs = np.unique(np.concatenate(edges), axis=0) if edges else np.empty((0, 2), np.int64)
    if len(pairs) == 0:
        return files
    say(f"the Jaccard similarity of {len(pairs):,} pairs")
    needed = np.unique(row_of_node[pairs])  # the rows of the pairs' documents, sorted
    wanted = pl.Series("row", needed, dtype=pl.get_index_type())
    data = (
        rows.select(_SHINGLES).with_row_index("row").filter(pl.col("row").is_in(wanted)).collect()
    )
    if data.height != len(needed):
        raise RuntimeError(
            f"minhash_dedup: {len(needed)} candidates to verify but {data.height} rows read "
            "back from the barrier's key files; they changed during the barrier: run again"
        )
    lists = data[_SHINGLES].rechunk().to_arrow()
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    offsets = np.asarray(lists.offsets.to_numpy(), dtype=np.int64)  # into lists.values
    values = np.asarray(lists.values.to_numpy(), dtype=np.uint64)
    at = np.argsort(data["row"].to_numpy())  # data's position of needed[i]
    u = at[np.searchsorted(needed, row_of_node[pairs[:, 0]])]
    v = at[np.searchsorted(needed, row_of_node[pairs[:, 1]])]
    good = jaccard_at_least(offsets, values, u, v, threshold)
    out = work / "verified.npy"
    np.save(out, pairs[good])
    return [out]


def components(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Connected components over the edges stored in ``files`` (``(E, 2)`` node arrays).

    Returns the sorted nodes that have an edge and, for each, the least node of its
    component. Min-label propagation with pointer jumping; each round streams the edge
    files once, so only the labels stay in memory.
    """
    members = edge_rows(files)
    label = np.arange(len(members), dtype=np.int64)
    if len(members) == 0:
        return members, members
    changed = True
    while changed:
        before = label.copy()
        for f in files:
            edges = np.load(f)
            if len(edges) == 0:
                continue
            u = np.searchsorted(members, edges[:, 0])
            v = np.searchsorted(members, edges[:, 1])
            np.minimum.at(label, u, label[v])
            np.minimum.at(label, v, label[u])
        while True:  # pointer jumping: every label points at a root
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        changed = not np.array_equal(label, before)
    return members, members[label]
