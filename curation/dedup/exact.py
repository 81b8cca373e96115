"""``exact_dedup``: drop documents whose (normalised) text, or another column, repeats.

A global stage. Before the barrier each live row gets a 128-bit hash (two seeded 64-bit
polars hashes) of its key: the ``column`` value, by default lower-cased (Greek final
sigma folded to sigma) with runs of white space folded to one space and the ends
trimmed. At the barrier, rows are grouped by hash over the whole dataset; in each group
the row kept is the one with the highest ``priority_column`` value when one is given
(numbers; times and ISO 8601 text as times, so the newest: ``priority_values``), then
the smallest id, so the choice never depends on the order or partitioning of the
data. After the barrier, the other rows of the group are dropped as
``exact_dedup:duplicate`` with ``duplicate_of`` (the kept id); every row gets
``exact_dedup_cluster_size`` (1 for a unique row). Rows with a null key are never
duplicates. ``normalize_url`` compares URLs as C4 did (``pipelines/c4.yaml``: one page per
URL): ``https://www.x.org/a/?utm_source=y`` is ``x.org/a``.

With ``against`` (documents kept elsewhere: a previous dump, a training set; their
``against_text_field`` is compared with ``column``, normalised alike), every row whose key
they hold is dropped as ``exact_dedup:in_against``, all its copies; with
``only_against`` nothing else is. They are read on the driver at the barrier, one batch
at a time, and only their 16-byte hashes are held.

Memory at the barrier: the driver holds id (its bytes), shard name and 16 bytes of hash
per live row, through polars' streaming engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import ID, with_drop_reason
from curation.dedup.common import (
    AgainstParams,
    held_keys,
    normalized_text,
    set_duplicate_of,
    with_priority,
)
from curation.stage import GlobalStage, register, write_decisions

_H1, _H2, _PRIORITY = "_exact_dedup_h1", "_exact_dedup_h2", "_exact_dedup_priority"
_AGAINST = "against"  # in a decision: the key is held by ``against``


class ExactDedupParams(AgainstParams):
    column: str = Field("text", description="the column whose repeats are duplicates")
    normalize: bool = Field(True, description="lower-case and fold white space first")
    normalize_url: bool = Field(
        False,
        description="compare URLs as C4 did: no scheme, leading www., utm/ref/feed query "
        "or trailing slash",
    )
    priority_column: str | None = Field(
        None,
        description="keep the row with the highest value of this column (then "
        "id): numbers, or times and ISO 8601 text (the newest kept)",
    )


def normalized_key(
    values: pa.ChunkedArray | pa.Array, normalize: bool, normalize_url: bool = False
) -> pa.Array:
    """The key text: with ``normalize_url`` a URL as C4's ``normalize_url`` compares it
    (every ``http://`` or ``https://`` and a ``www.`` after it taken out, as C4's
    unanchored pattern does, then a query that begins with ``utm_``, ``ref`` or ``feed``,
    then trailing slashes), then
    ``normalized_text`` (lower-cased, white space folded and trimmed) when ``normalize``,
    else the values as they are."""
    values = values.cast(pa.large_string())
    if normalize_url:
        values = pc.replace_substring_regex(values, r"https?://(www\.)?", "")  # anywhere
        values = pc.replace_substring_regex(values, r"\?(utm_|ref|feed).*", "")
        values = pc.utf8_rtrim(values, "/")
    if normalize:
        return normalized_text(values)
    return values


@register
class ExactDedup(GlobalStage):
    """Exact duplicates over the whole dataset; keeps one row per group."""

    name = "exact_dedup"
    help = "drop exact duplicates of normalised text (or another column) over the dataset"
    Params = ExactDedupParams
    params: ExactDedupParams
    internal_columns = (_H1, _H2, _PRIORITY)
    keys_by_library = True

    def key_columns(self) -> list[str]:
        return [_H1, _H2] + ([_PRIORITY] if self.params.priority_column else [])

    def measure(self, table: pa.Table) -> pa.Table:
        p = self.params
        if p.column not in table.column_names:
            raise ValueError(
                f"exact_dedup: no column {p.column!r}; columns are {table.column_names}"
            )
        for name, hashed in zip((_H1, _H2), self._key_hashes(table[p.column]), strict=True):
            table = table.append_column(name, hashed)
        if p.priority_column is not None:
            table = with_priority(table, self.name, p.priority_column, _PRIORITY)
        return table

    def _key_hashes(self, values: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
        """The two 64-bit hashes of each key (null for a null key)."""
        p = self.params
        key = pl.from_arrow(normalized_key(values, p.normalize, p.normalize_url))
        missing = pc.is_null(key.to_arrow())
        hashes = [key.hash(seed=seed).to_arrow() for seed in (0, 1)]
        return [pc.if_else(missing, pa.scalar(None, h.type), h) for h in hashes]

    def decide(self, keys: Any, folder: Path) -> None:
        p = self.params
        order = [_H1, _H2, ID]
        descending = [False, False, False]
        if p.priority_column is not None:
            order.insert(2, _PRIORITY)
            descending.insert(2, True)
        rows = keys.filter(pl.col(_H1).is_not_null())
        held = self._against_keys(folder)
        if held is not None:
            rows = rows.join(held.lazy(), on=[_H1, _H2], how="left")
            rows = rows.with_columns(pl.col(_AGAINST).fill_null(False))
        else:
            rows = rows.with_columns(pl.lit(False).alias(_AGAINST))
        size = pl.col("exact_dedup_cluster_size")
        goes = pl.col(_AGAINST) if p.only_against else (size > 1) | pl.col(_AGAINST)
        groups = (
            rows.with_columns(pl.len().over(_H1, _H2).alias("exact_dedup_cluster_size"))
            .filter(goes)
            .sort(order, descending=descending, nulls_last=True)
            .with_columns(pl.col(ID).first().over(_H1, _H2).alias("duplicate_of"))
            .with_columns(
                pl.when((pl.col("duplicate_of") == pl.col(ID)) | pl.col(_AGAINST))
                .then(None)
                .otherwise(pl.col("duplicate_of"))
                .alias("duplicate_of")
            )
            .select("shard", ID, "duplicate_of", "exact_dedup_cluster_size", _AGAINST)
            .collect()
        )
        write_decisions(groups, folder)

    def _against_keys(self, scratch: Path) -> pl.DataFrame | None:
        """The distinct key hashes of ``against``, with ``_AGAINST`` true (None: none)."""
        column = self.params.column

        def keys_of(table: pa.Table) -> pa.Table:
            h1, h2 = self._key_hashes(table[column])
            return pa.table({_H1: h1, _H2: h2}).filter(pc.is_valid(h1))

        path = held_keys(self, column, keys_of, scratch)
        if path is None:
            return None
        held = pl.read_ipc(path).unique()
        return held.with_columns(pl.lit(True).alias(_AGAINST))

    def applied_columns(self) -> list[str]:
        return []  # the decisions are by id

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        n = table.num_rows
        if decisions is None or decisions.num_rows == 0:
            table = set_duplicate_of(table, pa.nulls(n, pa.string()))
            return table.append_column(
                "exact_dedup_cluster_size", pa.array(np.ones(n, dtype=np.uint32))
            )
        where = pc.index_in(table[ID], decisions[ID])
        duplicate_of = pc.take(decisions["duplicate_of"], where)
        size = pc.fill_null(
            pc.take(decisions["exact_dedup_cluster_size"].cast(pa.uint32()), where), 1
        )
        table = set_duplicate_of(table, duplicate_of)
        table = table.append_column("exact_dedup_cluster_size", size)
        if _AGAINST in decisions.column_names:  # absent where an older engine decided
            elsewhere = pc.take(decisions[_AGAINST], where)
            table = with_drop_reason(table, elsewhere, self.reason("in_against"))
        return with_drop_reason(table, pc.is_valid(duplicate_of), self.reason("duplicate"))
