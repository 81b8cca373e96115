"""``sql_filter``: keep or drop documents by a SQL condition over their columns.

The condition is a SQL boolean expression (polars' SQL dialect) over the columns a row
has when it reaches the stage: the input's (``text``, ``url``, ...) and those the stages
before it measured (``lang_score``, ``gopher_word_count``, ...)::

    - sql_filter: {keep: "lang_score >= 0.8 AND length(text) BETWEEN 200 AND 100000"}
    - sql_filter: {drop: "url LIKE '%/tag/%' OR fineweb_list_ratio > 0.3", rule: tag_pages}

With ``keep``, rows where the condition is false or null are dropped; with ``drop``,
rows where it is true are (null keeps them). The reason is ``sql_filter:<rule>``. The
dialect is ``curate inspect --where``'s, so a condition tried on a scored run there goes
into a recipe as it is.

A row's fate depends on that row alone, so the result is the same whatever the batches
and workers: aggregates (``avg(x)``, ``count(*)``), window functions (``OVER``,
``row_number()``) and subqueries are refused when the recipe is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from curation.batch import with_drop_reason
from curation.stage import MapStage, StageParams, register

# Expression nodes whose value depends on other rows of the batch
_ACROSS_ROWS = (
    "Agg",
    "Over",
    "Len",
    "SubPlan",
    "Window",
    "Rolling",
    "Slice",
    "Filter",
    "Sort",
    "Explode",
)
_ACROSS_ROWS_FUNCTIONS = (
    "Shift",
    "Cum",
    "Diff",
    "Rank",
    "Range",
    "Unique",
    "Duplicated",
    "Distinct",
    "Sample",
    "Shuffle",
    "Reverse",
    "Sort",
    "FillNullWithStrategy",
    "Interpolate",
)


def parse_condition(condition: str) -> pl.Expr:
    """The SQL ``condition`` as a polars expression; ``ValueError`` saying what is wrong
    when it does not parse or looks at other rows than its own."""
    try:
        expr = pl.sql_expr(condition)
    except Exception as error:  # polars raises several SQL error types
        raise ValueError(f"{condition!r} is not a SQL condition polars can read: {error}") from None
    across = _across_rows(json.loads(expr.meta.serialize(format="json")))
    if across:
        raise ValueError(
            f"{condition!r} looks at other rows ({across}): a condition must decide each row "
            "by its own columns (use the threshold stage for dataset-wide cuts)"
        )
    return expr


class MissingColumns(ValueError):
    """A table lacks a column a condition names."""


@dataclass(frozen=True, eq=False)
class RowFilter:
    """A SQL ``condition`` (``parse_condition``'s) decided row by row over the
    ``columns`` it names of an Arrow table: ``curate export --where`` and ``curate
    tokenize --where`` and the ``sql_filter`` stage. With ``types``, a table without one
    of them reads it as nulls of its type; without, such a table is an error
    (``MissingColumns``)."""

    condition: str
    expr: pl.Expr
    columns: tuple[str, ...]
    types: pa.Schema | None = None

    @classmethod
    def parse(cls, condition: str, types: pa.Schema | None = None) -> RowFilter:
        """The filter of ``condition``; ``ValueError`` as ``parse_condition`` raises it."""
        expr = parse_condition(condition)
        return cls(condition, expr, tuple(dict.fromkeys(expr.meta.root_names())), types)

    def matching(self, table: pa.Table) -> pa.Array:
        """Whether the condition is true for each row of ``table`` (false where it is
        null); ``MissingColumns`` where the table lacks a column it names (without
        ``types``), ``ValueError`` where it gives no true or false, or not one a row."""
        n = table.num_rows
        if self.types is None:
            missing = [c for c in self.columns if c not in table.column_names]
            if missing:
                raise MissingColumns(
                    f"{self.condition!r} names column(s) {', '.join(missing)} that the rows do "
                    f"not have (they have: {', '.join(table.column_names)})"
                )
            values = table.select(list(self.columns))
        else:
            values = pa.table(
                {
                    f.name: table[f.name].cast(f.type)
                    if f.name in table.column_names
                    else pa.nulls(n, f.type)
                    for f in self.types
                }
            )
        frame = pl.from_arrow(values) if self.columns else pl.DataFrame(height=n)
        assert isinstance(frame, pl.DataFrame)
        result = frame.select(self.expr.alias("_value")).to_series()
        if result.dtype != pl.Boolean:
            raise ValueError(f"{self.condition!r} gives {result.dtype}, not true or false")
        if len(result) == 1 and n != 1:  # a constant condition
            result = pl.repeat(result[0], n, dtype=pl.Boolean, eager=True)
        if len(result) != n:
            raise ValueError(
                f"{self.condition!r} gives {len(result)} values for {n} rows: a condition "
                "must give one value per row"
            )
        return result.fill_null(False).to_arrow()


def _across_rows(node: Any) -> str | None:
    """The first node of a serialized expression whose value spans rows, if any."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("Column", "Literal"):  # names and data, not operations
                continue
            if key in _ACROSS_ROWS:
                return key
            if key == "function":
                name = json.dumps(value)
                for part in _ACROSS_ROWS_FUNCTIONS:
                    if part in name:
                        return part
            found = _across_rows(value)
            if found:
                return found
    elif isinstance(node, list):
        for item in node:
            found = _across_rows(item)
            if found:
                return found
    elif node == "Len":
        return "Len"
    return None


class SqlFilterParams(StageParams):
    keep: str | None = Field(
        None, description="SQL condition: keep rows where it is true (false, null: drop)"
    )
    drop: str | None = Field(
        None, description="SQL condition: drop rows where it is true (false, null: keep)"
    )
    rule: str = Field(
        "condition", pattern=r"^[a-z0-9_]+$", description="drop reason: sql_filter:<rule>"
    )

    @model_validator(mode="after")
    def _one_condition(self) -> SqlFilterParams:
        if (self.keep is None) == (self.drop is None):
            raise ValueError("give either keep or drop (one SQL condition)")
        return self

    @field_validator("keep", "drop")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_condition(value)
        return value


@register
class SqlFilter(MapStage):
    """Drops rows by a row-wise SQL condition over their columns."""

    name = "sql_filter"
    help = "keep or drop documents by a SQL condition over their columns (keep: or drop:)"
    Params = SqlFilterParams
    params: SqlFilterParams

    def setup(self) -> None:
        condition = self.params.keep if self.params.keep is not None else self.params.drop
        assert condition is not None
        self._filter = RowFilter.parse(condition)

    def process(self, table: pa.Table) -> pa.Table:
        if table.num_rows == 0:
            return table
        try:
            true = self._filter.matching(table)
        except MissingColumns as err:
            raise ValueError(
                f"sql_filter: {err}; put the stage that writes them before sql_filter"
            ) from None
        except ValueError as err:
            raise ValueError(f"sql_filter: {err}") from None
        hit = pc.invert(true) if self.params.keep is not None else true
        return with_drop_reason(table, hit, self.reason(self.params.rule))
