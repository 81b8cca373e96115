"""``threshold``: keep documents by a score column, absolutely or as a global top fraction.

Two modes, exactly one per stage:

- **absolute**: ``min`` and/or ``max`` bound the ``column``; rows outside are dropped as
  ``threshold:below_min`` / ``threshold:above_max``.
- **top fraction**: ``top_fraction`` of the dataset, best scores first (``higher_is_better``,
  default true), measured ``by: count`` (documents) or ``by: chars`` (characters of text,
  as PreSelect and DCLM keep the top 10% of characters). The cut is computed once over
  every live row of the dataset at the barrier, never per shard: rows are ordered by score
  (ties by id), and the kept rows are the shortest prefix of that order whose documents
  (or characters) reach ``top_fraction`` of the dataset's total; ``ceil`` for counts. The
  others are dropped as ``threshold:below_cut``.

With ``per`` (a column: a language, a source, a domain), the top fraction is cut in each
group of rows of one value of it apart, the same way: ``top_fraction`` of each language
rather than of the dataset, so that a scarce language is not crowded out by a plentiful
one whose scores run higher (rows whose value is null are a group of their own). Ranks
then count within the group.

Rows with a null score are dropped as ``threshold:no_score`` in both modes (they count in
the dataset's total for ``top_fraction``, or their group's). Every scored row gets
``threshold_rank`` (1 = best) in top-fraction mode.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curation.batch import ID, TEXT, values_as_text, with_drop_reason
from curation.stage import GlobalStage, StageParams, register, write_decisions

_SCORE, _CHARS, _GROUP = "_threshold_score", "_threshold_chars", "_threshold_group"


class ThresholdParams(StageParams):
    column: str = Field(..., description="the score column")
    min: float | None = Field(None, description="absolute: keep scores >= this")
    max: float | None = Field(None, description="absolute: keep scores <= this")
    top_fraction: float | None = Field(
        None, gt=0, le=1, description="keep this fraction of the dataset, best scores first"
    )
    by: Literal["count", "chars"] = Field("count", description="top_fraction of documents or chars")
    higher_is_better: bool = Field(True, description="false for scores like perplexity")
    per: str | None = Field(
        None,
        description="with top_fraction: cut each group of rows of one value of this column "
        "apart (the top fraction of each language: per: lang)",
    )

    @model_validator(mode="after")
    def _one_mode(self) -> ThresholdParams:
        absolute = self.min is not None or self.max is not None
        if absolute == (self.top_fraction is not None):
            raise ValueError("give either min and/or max, or top_fraction (not both)")
        if self.per is not None and self.top_fraction is None:
            raise ValueError("per cuts a top_fraction in each group: give top_fraction")
        return self


@register
class Threshold(GlobalStage):
    """Keep rows by a score: absolute bounds, or a top fraction cut over the whole dataset."""

    name = "threshold"
    help = "keep by a score column: min/max, or the global top fraction of docs or chars"
    Params = ThresholdParams
    params: ThresholdParams
    internal_columns = (_SCORE, _CHARS, _GROUP)
    rank_column = "threshold_rank"

    @property
    def rule(self) -> ThresholdParams:
        """The cut this stage makes (selectors built on it derive theirs)."""
        return self.params

    def key_columns(self) -> list[str]:
        return [_SCORE, _CHARS] + ([_GROUP] if self.rule.per is not None else [])

    def measure(self, table: pa.Table) -> pa.Table:
        p = self.rule
        if p.column not in table.column_names:
            raise ValueError(
                f"threshold: no column {p.column!r} (columns: {', '.join(table.column_names)});"
                " put the stage that writes it before threshold"
            )
        score = pc.cast(table[p.column], pa.float64())
        table = table.append_column(_SCORE, score)
        table = table.append_column(
            _CHARS, pc.fill_null(pc.utf8_length(table[TEXT]), 0).cast(pa.int64())
        )
        if p.per is None:
            return table
        if p.per not in table.column_names:
            raise ValueError(
                f"threshold: per: no column {p.per!r} (columns: "
                f"{', '.join(table.column_names)}); put the stage that writes it before "
                "threshold"
            )
        group = values_as_text(table[p.per], f"threshold: per: the column {p.per!r}")
        return table.append_column(_GROUP, group)

    def decide(self, keys: Any, folder: Path) -> None:
        p = self.rule
        if p.top_fraction is None or _SCORE not in keys.collect_schema().names():
            return  # absolute bounds need no barrier
        weight = pl.col(_CHARS) if p.by == "chars" else pl.lit(1, pl.Int64)
        total_expr = pl.col(_CHARS).sum() if p.by == "chars" else pl.len()
        scored = keys.filter(pl.col(_SCORE).is_not_null() & pl.col(_SCORE).is_not_nan())
        # every row (null scores too) counts in the total: the dataset's, or its group's
        if p.per is None:
            total = int(keys.select(total_expr).collect().item() or 0)
            target = p.top_fraction * total
            scored = scored.with_columns(
                pl.lit(math.ceil(target) if p.by == "count" else target).alias("_target")
            )

            def within(expr: pl.Expr) -> pl.Expr:
                return expr

        else:
            target_expr = pl.col("_total") * p.top_fraction
            totals = keys.group_by(_GROUP).agg(total_expr.cast(pl.Float64).alias("_total"))
            totals = totals.with_columns(
                (target_expr.ceil() if p.by == "count" else target_expr).alias("_target")
            )
            scored = scored.join(totals, on=_GROUP, nulls_equal=True)

            def within(expr: pl.Expr) -> pl.Expr:
                return expr.over(_GROUP)

        ranked = (
            scored.with_columns(weight.alias("_weight"))
            .sort([_SCORE, ID, "shard"], descending=[p.higher_is_better, False, False])
            .with_columns(
                within(pl.int_range(1, pl.len() + 1, dtype=pl.UInt32)).alias("threshold_rank"),
                within(pl.col("_weight").cum_sum()).alias("_through"),
            )
            .with_columns(
                ((pl.col("_through") - pl.col("_weight")) < pl.col("_target")).alias("_keep")
            )
            .select("shard", ID, "threshold_rank", "_keep")
            .collect()
        )
        write_decisions(ranked, folder)

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        p = self.rule
        score = table[_SCORE]
        missing = pc.or_kleene(pc.is_null(score), pc.is_nan(pc.fill_null(score, 0.0)))
        table = with_drop_reason(table, missing, self.reason("no_score"))
        if p.top_fraction is None:
            if p.min is not None:
                table = with_drop_reason(table, pc.less(score, p.min), self.reason("below_min"))
            if p.max is not None:
                table = with_drop_reason(table, pc.greater(score, p.max), self.reason("above_max"))
            return table
        n = table.num_rows
        if decisions is None or decisions.num_rows == 0:
            table = table.append_column(self.rank_column, pa.nulls(n, pa.int64()))
            return with_drop_reason(table, pa.array(np.ones(n, bool)), self.reason("below_cut"))
        where = pc.index_in(table[ID], decisions[ID])
        rank = pc.take(decisions["threshold_rank"].cast(pa.int64()), where)
        keep = pc.fill_null(pc.take(decisions["_keep"], where), False)
        table = table.append_column(self.rank_column, rank)
        return with_drop_reason(table, pc.invert(keep), self.reason("below_cut"))
