"""``exact_dedup``: drop documents whose (normalised) text, or another column, repeats.

A global stage. Before the barrier each live row gets a 128-bit hash (two seeded 64-bit
polars hashes) of its key: the ``column`` value, by default lower-cased (Greek final
sigma folded to sigma) with runs of white space folded to one space and the ends
trimmed. At the barrier, rows are grouped by hash over the whole dataset; in each group
the row kept is the one with the highest ``priority_column`` value when one is given,
then the smallest id, so the choice never depends on the order or partitioning of the
data. After the barrier, the other rows of the group are dropped as
``exact_dedup:duplicate`` with ``duplicate_of`` (the kept id); every row gets
``exact_dedup_cluster_size`` (1 for a unique row). Rows with a null key are never
duplicates.

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
from curation.dedup.common import normalized_text, set_duplicate_of
from curation.stage import GlobalStage, StageParams, register, write_decisions

_H1, _H2, _PRIORITY = "_exact_dedup_h1", "_exact_dedup_h2", "_exact_dedup_priority"


class ExactDedupParams(StageParams):
    column: str = Field("text", description="the column whose repeats are duplicates")
    normalize: bool = Field(True, description="lower-case and fold white space first")
    priority_column: str | None = Field(
        None, description="keep the row with the highest value of this column (then id)"
    )


def normalized_key(values: pa.ChunkedArray | pa.Array, normalize: bool) -> pa.Array:
    """The key text: ``normalized_text`` (lower-cased, white space folded and trimmed)
    when ``normalize``, else the values as they are."""
    if normalize:
        return normalized_text(values)
    return values.cast(pa.large_string())


@register
class ExactDedup(GlobalStage):
    """Exact duplicates over the whole dataset; keeps one row per group."""

    name = "exact_dedup"
    help = "drop exact duplicates of normalised text (or another column) over the dataset"
    Params = ExactDedupParams
    params: ExactDedupParams
    internal_columns = (_H1, _H2, _PRIORITY)

    def key_columns(self) -> list[str]:
        return [_H1, _H2] + ([_PRIORITY] if self.params.priority_column else [])

    def measure(self, table: pa.Table) -> pa.Table:
        p = self.params
        if p.column not in table.column_names:
            raise ValueError(
                f"exact_dedup: no column {p.column!r}; columns are {table.column_names}"
            )
        key = pl.from_arrow(normalized_key(table[p.column], p.normalize))
        for name, seed in ((_H1, 0), (_H2, 1)):
            hashed = key.hash(seed=seed).to_arrow()
            missing = pc.is_null(key.to_arrow())
            table = table.append_column(
                name, pc.if_else(missing, pa.scalar(None, hashed.type), hashed)
            )
        if p.priority_column is not None:
            if p.priority_column not in table.column_names:
                raise ValueError(
                    f"exact_dedup: no priority column {p.priority_column!r}; columns are "
                    f"{table.column_names}"
                )
            table = table.append_column(_PRIORITY, table[p.priority_column].cast(pa.float64()))
        return table

    def decide(self, keys: Any, folder: Path) -> None:
        order = [_H1, _H2, ID]
        descending = [False, False, False]
        if self.params.priority_column is not None:
            order.insert(2, _PRIORITY)
            descending.insert(2, True)
        groups = (
            keys.filter(pl.col(_H1).is_not_null())
            .with_columns(pl.len().over(_H1, _H2).alias("exact_dedup_cluster_size"))
            .filter(pl.col("exact_dedup_cluster_size") > 1)
            .sort(order, descending=descending, nulls_last=True)
            .with_columns(pl.col(ID).first().over(_H1, _H2).alias("duplicate_of"))
            .with_columns(
                pl.when(pl.col("duplicate_of") == pl.col(ID))
                .then(None)
                .otherwise(pl.col("duplicate_of"))
                .alias("duplicate_of")
            )
            .select("shard", ID, "duplicate_of", "exact_dedup_cluster_size")
            .collect()
        )
        write_decisions(groups, folder)

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
        return with_drop_reason(table, pc.is_valid(duplicate_of), self.reason("duplicate"))
