"""``minhash_dedup``: near-duplicate removal with MinHash LSH over the whole dataset.

**Shingles.** The text is normalised (lower case, Unicode punctuation and symbols
removed, white space folded) and cut into word n-grams (``ngram`` words, 5 by default), or
into character n-grams of the lower-cased, white-space-folded text when ``shingle:
char``. A document with fewer tokens than ``ngram`` has one shingle, all of its tokens;
a document with no token has no signature and is never a duplicate. Each token gets a
64-bit hash (a polynomial over its UTF-8 bytes, computed for all tokens of a batch at once
in numpy, then a SplitMix64 finaliser), and each shingle a 64-bit hash of its tokens'
hashes in order. Hashes depend only on the text and ``seed``: no library's string hash,
so they are the same on every machine and version.

**Signature and bands.** ``num_bands * rows_per_band`` hash functions ``h_k(x) = a_k x +
b_k mod 2**64`` (odd ``a_k``; multiply-shift hashing, whose high bits decide the
minimum), drawn from ``seed``; the signature is each function's minimum over the
document's shingles. Each band of ``rows_per_band`` minima is folded into one 64-bit
band key. Two documents whose band keys agree in at least one band are a candidate pair;
with Jaccard similarity ``s`` that happens with probability ``1 - (1 - s**r)**b``
(``curate minhash-params`` prints it).

**Barrier** (``decide``), in three steps over partitioned intermediate files under the
decisions folder:

1. *Nodes.* Live rows with a signature are ranked by the keep policy: highest
   ``priority_column`` first when one is given, then smallest id (then shard). A row's
   rank is its node number, so the node kept in a cluster is the smallest one.
2. *Buckets.* For each band, and within it each of ``partitions`` ranges of band-key
   values, the key column is read from all shards, sorted, and each bucket of equal keys
   yields edges from its members to its smallest node (a star, so a bucket of ``k``
   documents costs ``k - 1`` edges). Edges go to one file per band. With
   ``jaccard_threshold``, each edge is kept only when the exact Jaccard similarity of the
   two documents' shingle sets reaches it.
3. *Components.* Connected components over all edges (so chains A~B~C form one cluster)
   by min-label propagation with pointer jumping, vectorised in numpy, streaming the
   edge files from disk each round. Each component's smallest node is kept; the others
   are dropped as ``minhash_dedup:near_duplicate`` with ``duplicate_of`` set to it.

Every row leaving the stage has ``minhash_cluster_id`` (the id of its cluster's kept
document; its own id when it has no near duplicate) and ``minhash_cluster_size``.

**Memory model** (``D`` live documents, ``C`` documents with at least one candidate, ``E``
edges of one band, ``P`` partitions, ``S`` shingle hashes of the candidates):

- measure, per worker: about ``(2 + num_perm / 8) * 8`` bytes per shingle of the batch
  in flight (token, shingle and hash arrays) plus ``num_bands * 8`` bytes per document.
- barrier step 1: the rank sort over id strings (polars), and a node-per-row array of 8
  bytes per document.
- step 2: ``24 * D / P`` bytes per (band, partition): the keys, their order and nodes.
  Pick ``partitions`` so that fits (the default 1 holds 10^7 documents in 240 MB).
- step 3: ``16 * C`` bytes for the labels, plus ``16 * E`` for the edge file being
  streamed; with ``jaccard_threshold``, ``8 * S`` for the shingle sets of the candidates.

So the driver never holds all pairs, only labels of documents that have candidates.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curation.batch import ID, with_drop_reason
from curation.dedup.common import set_duplicate_of
from curation.stage import GlobalStage, StageParams, register, write_decisions

_PREFIX = "_minhash_"
_SHINGLES = "_minhash_shingles"
_PRIORITY = "_minhash_priority"

# SplitMix64 constants and the odd multiplier of the byte polynomial.
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_BYTE_BASE = np.uint64(0x100000001B3)

#: Shingles per block of the signature loop: the block's hash array stays in cache.
BLOCK_SHINGLES = 1 << 16


def band_column(band: int) -> str:
    """The internal column that holds band ``band``'s key."""
    return f"{_PREFIX}b{band:03d}"


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise on a uint64 array (returns a new array)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


class MinhashParams(StageParams):
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
        None, description="keep the document with the highest value of this column (then id)"
    )
    partitions: int = Field(1, ge=1, description="band-key ranges per band at the barrier")

    @model_validator(mode="after")
    def _partitions_power_of_two(self) -> MinhashParams:
        if self.partitions & (self.partitions - 1):
            raise ValueError(f"partitions must be a power of two, not {self.partitions}")
        return self


# --------------------------------------------------------------------------- hashing


def _words(texts: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Normalised words of every text, flat, and the number of words of each text."""
    texts = pc.fill_null(texts.cast(pa.large_string()), "")
    normal = pc.replace_substring_regex(pc.utf8_lower(texts), r"[\p{P}\p{S}]+", "")
    lists = pc.utf8_split_whitespace(normal)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    words = lists.flatten()
    parents = np.asarray(pc.list_parent_indices(lists))
    nonempty = np.asarray(pc.greater(pc.binary_length(words), 0).fill_null(False))
    counts = np.bincount(parents[nonempty], minlength=len(texts)).astype(np.int64)
    return words.filter(pa.array(nonempty)), counts


def _string_hashes(words: pa.Array) -> np.ndarray:
    """A 64-bit hash of each (non-empty) string, from its UTF-8 bytes, for all at once."""
    n = len(words)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    words = words.cast(pa.large_string())
    offsets = np.frombuffer(words.buffers()[1], dtype=np.int64)[words.offset : words.offset + n + 1]
    data = np.frombuffer(words.buffers()[2], dtype=np.uint8)
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
    """Hashed code points of each lower-cased, white-space-folded text, flat, and counts."""
    texts = pc.fill_null(texts.cast(pa.large_string()), "")
    normal = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(texts), r"\s+", " "))
    arrays = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in normal.to_pylist()]
    counts = np.array([len(a) for a in arrays], dtype=np.int64)
    flat = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.uint32)
    return mix64(flat.astype(np.uint64) + _GOLDEN), counts


def _shingle_hashes(tokens: np.ndarray, counts: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Per-document shingles of ``n`` consecutive token hashes, flat in document order.

    A document with ``0 < count < n`` tokens has one shingle of all its tokens. Returns the
    shingle hashes; each document has ``max(count - n + 1, min(count, 1))`` of them.
    """
    total = len(tokens)
    if total == 0:
        return np.empty(0, dtype=np.uint64)
    offset = np.uint64(seed * int(_GOLDEN) % 2**64)
    weights = mix64(np.arange(1, n + 1, dtype=np.uint64) + offset) | np.uint64(1)
    starts = np.cumsum(counts) - counts
    local = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
    size = np.repeat(counts, counts)
    values = np.zeros(total, dtype=np.uint64)
    windows = total - n + 1
    if windows > 0:
        acc = tokens[:windows] * weights[0]
        for k in range(1, n):
            acc += tokens[k : k + windows] * weights[k]
        values[:windows] = acc
    short = (counts > 0) & (counts < n)
    if short.any():
        in_short = np.repeat(short, counts)
        parts = tokens[in_short] * weights[local[in_short]]
        firsts = (np.cumsum(counts[short]) - counts[short]).astype(np.int64)
        values[starts[short]] = np.add.reduceat(parts, firsts)
    keep = (local <= size - n) | ((size < n) & (local == 0))
    return mix64(values[keep])


def shingle_counts(counts: np.ndarray, n: int) -> np.ndarray:
    """Number of shingles of documents with ``counts`` tokens."""
    return np.where(counts >= n, counts - n + 1, np.minimum(counts, 1)).astype(np.int64)


def tokens_of(texts: pa.ChunkedArray | pa.Array, shingle: str) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes (flat) and tokens per document, for word or char shingles."""
    if shingle == "char":
        return _codepoint_tokens(texts)
    words, counts = _words(texts)
    return _string_hashes(words), counts


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``a`` (odd) and ``b`` coefficients of the hash functions, from ``seed``."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


def signatures(
    shingles: np.ndarray, per_doc: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """MinHash signatures, shape ``(documents, len(a))``; every ``per_doc`` must be > 0.

    Works in blocks of whole documents of about ``BLOCK_SHINGLES`` shingles, looping over
    the hash functions inside a block, so the working array stays in cache.
    """
    docs = len(per_doc)
    out = np.empty((docs, len(a)), dtype=np.uint64)
    ends = np.cumsum(per_doc)
    starts = ends - per_doc
    doc = 0
    while doc < docs:
        stop = int(np.searchsorted(ends, starts[doc] + BLOCK_SHINGLES, side="right"))
        stop = max(stop, doc + 1)
        lo, hi = int(starts[doc]), int(ends[stop - 1])
        block = shingles[lo:hi]
        offsets = starts[doc:stop] - lo
        work = np.empty_like(block)
        for k in range(len(a)):
            np.multiply(block, a[k], out=work)
            work += b[k]
            out[doc:stop, k] = np.minimum.reduceat(work, offsets)
        doc = stop
    return out


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
    return _shingle_hashes(tokens, counts, n, seed), shingle_counts(counts, n)


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
        shingles, per_doc = document_shingles(table[p.column], p.shingle, p.ngram, p.seed)
        has = per_doc > 0
        keys = np.zeros((table.num_rows, p.num_bands), dtype=np.uint64)
        if has.any():
            signature = signatures(shingles, per_doc[has], self._a, self._b)
            keys[has] = band_keys(signature, p.num_bands, p.rows_per_band)
        missing = pa.array(~has)
        for band in range(p.num_bands):
            column = pc.if_else(missing, pa.scalar(None, pa.uint64()), pa.array(keys[:, band]))
            table = table.append_column(band_column(band), column)
        if p.jaccard_threshold is not None:
            offsets = np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int64)
            distinct = [
                np.unique(shingles[offsets[i] : offsets[i + 1]]) for i in range(len(per_doc))
            ]
            lengths = np.array([len(d) for d in distinct], dtype=np.int64)
            flat = np.concatenate(distinct) if distinct else np.empty(0, dtype=np.uint64)
            list_offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int64())
            table = table.append_column(
                _SHINGLES, pa.LargeListArray.from_arrays(list_offsets, pa.array(flat))
            )
        if p.priority_column is not None:
            if p.priority_column not in table.column_names:
                raise ValueError(
                    f"minhash_dedup: no priority column {p.priority_column!r}; columns are "
                    f"{table.column_names}"
                )
            table = table.append_column(_PRIORITY, table[p.priority_column].cast(pa.float64()))
        return table

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
        node_of_row, nodes = _rank(rows, p.priority_column is not None)
        edge_files = [
            _band_edges(rows, band_column(b), node_of_row, p.partitions, work / f"band-{b:03d}.npy")
            for b in range(p.num_bands)
        ]
        if p.jaccard_threshold is not None:
            edge_files = _verify(rows, edge_files, node_of_row, p.jaccard_threshold, work)
        members, labels = components(edge_files)
        sizes = np.bincount(np.searchsorted(members, labels), minlength=len(members))
        size_of = sizes[np.searchsorted(members, labels)]
        clustered = pl.DataFrame(
            {"node": members, "root": labels, "minhash_cluster_size": size_of.astype(np.uint32)}
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
                pl.when(pl.col("node") == pl.col("root"))
                .then(None)
                .otherwise(pl.col("minhash_cluster_id"))
                .alias("duplicate_of")
            )
            .select("shard", ID, "duplicate_of", "minhash_cluster_id", "minhash_cluster_size")
        )
        write_decisions(decisions, folder)
        shutil.rmtree(work)

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
        return with_drop_reason(table, pc.is_valid(duplicate_of), self.reason("near_duplicate"))

    def versions(self) -> dict[str, str]:
        return {"hashing": "minhash-v1 (polynomial bytes, splitmix64, multiply-shift)"}


# --------------------------------------------------------------------------- barrier steps


def _rank(rows: pl.LazyFrame, by_priority: bool) -> tuple[np.ndarray, pl.DataFrame]:
    """Node number of each row (in scan order) and the table ``node, id, shard``."""
    order, descending = [ID, "shard"], [False, False]
    if by_priority:
        order, descending = [_PRIORITY, *order], [True, *descending]
    nodes = (
        rows.select(ID, "shard", *([_PRIORITY] if by_priority else []))
        .with_row_index("row")
        .sort(order, descending=descending, nulls_last=True)
        .with_row_index("node")
        .select("node", "row", ID, "shard")
        .collect()
    )
    node_of_row = np.empty(nodes.height, dtype=np.int64)
    node_of_row[nodes["row"].to_numpy()] = nodes["node"].to_numpy()
    return node_of_row, nodes


def bucket_edges(values: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges from every member of a bucket of equal ``values`` to the bucket's least node."""
    order = np.lexsort((nodes, values))
    v, n = values[order], nodes[order]
    first = np.ones(len(v), dtype=bool)
    first[1:] = v[1:] != v[:-1]
    root = n[np.maximum.accumulate(np.where(first, np.arange(len(v)), 0))]
    member = ~first
    return n[member], root[member]


def _band_edges(
    rows: pl.LazyFrame, column: str, node_of_row: np.ndarray, partitions: int, path: Path
) -> Path:
    """All edges of one band, written to ``path`` as an ``(E, 2)`` array of nodes."""
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
        nodes = node_of_row[data["row"].to_numpy()]
        u, v = bucket_edges(values, nodes)
        parts.append(np.stack([u, v], axis=1))
    edges = np.concatenate(parts) if parts else np.empty((0, 2), dtype=np.int64)
    np.save(path, edges)
    return path


def _verify(
    rows: pl.LazyFrame, files: list[Path], node_of_row: np.ndarray, threshold: float, work: Path
) -> list[Path]:
    """Keep only the edges whose two documents' shingle sets have Jaccard >= threshold."""
    edges = [np.load(f) for f in files]
    pairs = np.unique(np.concatenate(edges), axis=0) if edges else np.empty((0, 2), np.int64)
    if len(pairs) == 0:
        return files
    needed = np.unique(pairs)
    row_of_node = np.empty(len(node_of_row), dtype=np.int64)
    row_of_node[node_of_row] = np.arange(len(node_of_row))
    wanted = pl.Series("row", row_of_node[needed], dtype=pl.UInt32)
    data = (
        rows.select(_SHINGLES).with_row_index("row").filter(pl.col("row").is_in(wanted)).collect()
    )
    shingles_of = {
        int(node_of_row[r]): np.asarray(s, dtype=np.uint64)
        for r, s in zip(data["row"].to_list(), data[_SHINGLES].to_list(), strict=True)
    }
    good = []
    for u, v in pairs:
        a, b = shingles_of[int(u)], shingles_of[int(v)]
        common = len(np.intersect1d(a, b, assume_unique=True))
        union = len(a) + len(b) - common
        good.append(union > 0 and common / union >= threshold)
    out = work / "verified.npy"
    np.save(out, pairs[np.array(good, dtype=bool)])
    return [out]


def components(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Connected components over the edges stored in ``files`` (``(E, 2)`` node arrays).

    Returns the sorted nodes that have an edge and, for each, the least node of its
    component. Min-label propagation with pointer jumping; each round streams the edge
    files once, so only the labels stay in memory.
    """
    members = np.empty(0, dtype=np.int64)
    for f in files:
        members = np.union1d(members, np.load(f).ravel())
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
