"""``line_dedup``: remove lines that occur more than once across the whole dataset.

CCNet and Dolma remove boilerplate this way (cookie banners, navigation, share buttons).
A global stage. Before the barrier each live row gets a 64-bit hash of every line (split
on ``\\n``; by default lower-cased with Greek final sigma folded, digits folded to
``0``, white space folded and trimmed); blank lines get no hash and are never removed.
At the barrier the hashes of all rows are counted; a line whose hash occurs more than
once is a duplicate. With ``keep_first`` the first occurrence (smallest id, then
earliest line) is kept, as Dolma does; without it every occurrence goes, as CCNet does.
After the barrier the duplicate lines are removed from each text,
``line_dedup_lines_removed`` records how many, and a document left with no non-blank
line is dropped as ``line_dedup:all_lines_duplicated`` (its text kept as it came).

Memory at the barrier: 8 bytes per line plus the id per line for ``keep_first``, through
polars' streaming engine; each shard then reads only the hashes that occur in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import ID, TEXT, with_drop_reason
from curation.dedup.common import normalized_text
from curation.stage import GlobalStage, StageParams, register, write_decisions

_HASHES = "_line_dedup_hashes"


class LineDedupParams(StageParams):
    normalize: bool = Field(True, description="lower-case, digits to 0, fold white space")
    keep_first: bool = Field(False, description="keep the first occurrence (Dolma) or none")
    min_line_chars: int = Field(0, ge=0, description="shorter lines are never removed")


@register
class LineDedup(GlobalStage):
    """Removes lines repeated anywhere in the dataset; adds ``line_dedup_lines_removed``."""

    name = "line_dedup"
    help = "remove lines that occur more than once across the dataset (CCNet, Dolma)"
    Params = LineDedupParams
    params: LineDedupParams
    internal_columns = (_HASHES,)

    def measure(self, table: pa.Table) -> pa.Table:
        lines = pc.split_pattern(table[TEXT], "\n")
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        flat = lines.flatten()
        key = flat
        if self.params.normalize:
            key = normalized_text(key, digits_to_zero=True)
        else:
            key = pc.utf8_trim_whitespace(key)
        hashed = pl.from_arrow(key).hash(seed=0).to_arrow()
        short = pc.less(pc.utf8_length(key), max(self.params.min_line_chars, 1))
        hashed = pc.if_else(short, pa.scalar(None, hashed.type), hashed)
        listed = pa.ListArray.from_arrays(lines.offsets, hashed)
        return table.append_column(_HASHES, listed)

    def decide(self, keys: Any, folder: Path) -> None:
        lines = (
            keys.select("shard", ID, pl.col(_HASHES).alias("hash"))
            .with_columns(pl.int_ranges(pl.col("hash").list.len()).alias("line"))
            .explode("hash", "line")
            .filter(pl.col("hash").is_not_null())
        )
        repeated = lines.group_by("hash").agg(pl.len().alias("count")).filter(pl.col("count") > 1)
        if self.params.keep_first:
            keepers = (
                lines.join(repeated.select("hash"), on="hash")
                .sort(ID, "line")
                .group_by("hash", maintain_order=True)
                .agg(pl.col(ID).first().alias("keep_id"), pl.col("line").first().alias("keep_line"))
            )
        else:
            keepers = repeated.select(
                "hash",
                pl.lit(None, pl.String).alias("keep_id"),
                pl.lit(None, pl.Int64).alias("keep_line"),
            )
        per_shard = (
            lines.select("shard", "hash")
            .unique()
            .join(keepers, on="hash")
            .select("shard", "hash", "keep_id", "keep_line")
            .collect()
        )
        write_decisions(per_shard, folder)

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        n = table.num_rows
        hashes = table[_HASHES].combine_chunks()
        flat = hashes.flatten()
        parents = np.asarray(pc.list_parent_indices(hashes).to_numpy(zero_copy_only=False))
        counts = np.asarray(
            pc.list_value_length(hashes).fill_null(0).to_numpy(zero_copy_only=False)
        )
        line_no = np.arange(len(flat)) - np.repeat(np.r_[0, np.cumsum(counts)[:-1]], counts)
        removed = np.zeros(len(flat), dtype=bool)
        if decisions is not None and decisions.num_rows:
            where = pc.index_in(flat, decisions["hash"])
            found = np.asarray(pc.is_valid(where).to_numpy(zero_copy_only=False))
            keep_id = pc.take(decisions["keep_id"], where)
            keep_line = pc.take(decisions["keep_line"], where)
            ids = pc.take(table[ID], pa.array(parents))
            is_keeper = pc.and_(pc.equal(keep_id, ids), pc.equal(keep_line, pa.array(line_no)))
            removed = found & ~np.asarray(
                pc.fill_null(is_keeper, False).to_numpy(zero_copy_only=False)
            )
        lines = pc.split_pattern(table[TEXT], "\n").combine_chunks()
        kept_lines = lines.flatten().filter(pa.array(~removed))
        kept_count = np.bincount(parents[~removed], minlength=n)
        offsets = pa.array(np.r_[0, np.cumsum(kept_count)].astype(np.int32))
        rebuilt = pc.binary_join(
            pa.ListArray.from_arrays(offsets, kept_lines), pa.scalar("\n", kept_lines.type)
        )
        hashed = np.asarray(pc.is_valid(flat).to_numpy(zero_copy_only=False))
        had_lines = np.bincount(parents[hashed], minlength=n) > 0
        gone = had_lines & (np.bincount(parents[hashed & ~removed], minlength=n) == 0)
        text = pc.if_else(pa.array(gone), table[TEXT], rebuilt.cast(pa.large_string()))
        table = table.set_column(table.column_names.index(TEXT), TEXT, text)
        table = table.append_column(
            "line_dedup_lines_removed", pa.array(np.bincount(parents[removed], minlength=n))
        )
        return with_drop_reason(table, pa.array(gone), self.reason("all_lines_duplicated"))
