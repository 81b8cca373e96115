"""``mix``: a mixture of the dataset's parts in given shares (of characters, tokens or
documents), down-sampling the plentiful parts and, where allowed, repeating scarce ones.

Pretraining sets are blends: 70% web, 20% code, 10% books, by tokens, or a share of
each language. The parts are the values of ``column`` (a source, a language, a domain;
a struct's field with dots, ``metadata.pile_set_name``). ``weights`` gives each value's
share of the mixture (they are normalised to sum to 1), measured ``by`` characters of
text (the default), tokens (the ``tokens_column`` that ``token_count`` writes) or
documents. ``total`` is the mixture's size in that measure; without it the mixture is
the largest in which no row is taken more than ``max_copies`` times.

Each part ``g`` of share ``w`` is given the target ``T = total * w``. Its rows, of total
size ``A``, are each taken ``floor(T / A)`` times (at most ``max_copies``), and the rest
of the target is drawn without repeats: rows in the order of a seeded hash of their id
(xxh64, ``seed``; ties by id), a row drawn while the running size before it plus half its
own size is within the rest (the prefix whose size is nearest the rest). So the same
data, recipe and seed give the same mixture on any number of workers, and a part asked
for a fraction of itself keeps that fraction of its size. A part that cannot reach its
target within ``max_copies`` (or that no row has) gives what it can: the run says so on
stderr, and ``stats.json`` records every part's target and what it got.

Kept rows get ``mix_copies`` (int32, 1 or more): how many times the row enters the
mixture. ``curate tokenize`` writes a row that many times; a run's ``kept/`` and
``curate export`` hold it once, with the column. Rows of a part not drawn are dropped
as ``mix:not_drawn``; rows whose value has no weight (null too) as ``mix:not_in_mix``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curation.batch import ID, MIX_COPIES, TEXT, values_as_text, with_drop_reason
from curation.selectors.random import id_hashes
from curation.stage import (
    DECISION_REPORT,
    GlobalStage,
    StageParams,
    register,
    write_decisions,
)

_GROUP, _SIZE, _DRAW = "_mix_group", "_mix_size", "_mix_draw"
COPIES = MIX_COPIES
_SI = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_amount(value: float | str) -> float:
    """A size as a recipe writes it: a number, or one with an SI suffix (``2.5B``,
    ``300M``, ``40k``; B and G are both 10^9)."""
    if isinstance(value, int | float):
        return float(value)
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:e[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", value)
    if found is None:
        raise ValueError(f"{value!r} is not a size: write a number, or one like 2.5B or 300M")
    return float(found.group(1)) * _SI[found.group(2).lower()]


class MixParams(StageParams):
    column: str = Field(
        ...,
        description="the column whose values are the parts (a source, a language; "
        "a struct's field with dots)",
    )
    weights: dict[str, float] = Field(
        ..., description="each value's share of the mixture (normalised to sum to 1)"
    )
    by: Literal["chars", "tokens", "count"] = Field(
        "chars", description="what the shares and total measure: characters, tokens, documents"
    )
    tokens_column: str = Field(
        "token_count", description="with by: tokens, the column of each row's tokens"
    )
    total: float | None = Field(
        None,
        description="the mixture's size in `by` units (a number, or 2.5B, 300M); default: "
        "the largest that takes no row more than max_copies times",
    )
    max_copies: int = Field(
        1, ge=1, description="most times a row may enter the mixture (>1: scarce parts repeat)"
    )
    seed: int = Field(0, ge=0, description="seed of the draw; another seed draws other rows")

    @field_validator("weights")
    @classmethod
    def _positive(cls, weights: dict[str, float]) -> dict[str, float]:
        if not weights:
            raise ValueError("give at least one value and its weight")
        bad = [name for name, weight in weights.items() if not weight > 0 or math.isinf(weight)]
        if bad:
            raise ValueError(f"weights must be positive numbers: {', '.join(map(repr, bad))}")
        return weights

    @field_validator("total", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        amount = parse_amount(value) if isinstance(value, str | int | float) else value
        if isinstance(amount, float) and not amount > 0:
            raise ValueError("total must be more than 0")
        return amount


def plan_parts(
    sizes: dict[str, float], weights: dict[str, float], total: float | None, max_copies: int
) -> tuple[float, dict[str, dict[str, Any]]]:
    """The mixture's total and each weighted part's plan: its share, target, whole copies
    of every row (``full``) and the size still to draw without repeats (``rest``).
    ``sizes``: each value's size in the data (values absent: none)."""
    whole = sum(weights.values())
    shares = {name: weight / whole for name, weight in weights.items()}
    present = [name for name in shares if sizes.get(name, 0) > 0]
    if total is None:
        total = min((max_copies * sizes[n] / shares[n] for n in present), default=0.0)
    plans = {}
    for name, share in shares.items():
        size, target = float(sizes.get(name, 0)), total * share
        full, rest = 0, 0.0
        if size > 0:
            full = min(math.floor(target / size + 1e-9), max_copies)
            rest = max(target - full * size, 0.0) if full < max_copies else 0.0
        plans[name] = {"share": share, "target": target, "size": size, "full": full, "rest": rest}
    return total, plans


@register
class Mix(GlobalStage):
    """Keep each part's share of a mixture: down-sample plentiful parts, repeat scarce ones."""

    name = "mix"
    help = "a mixture of the parts (values of a column) in given shares of chars, tokens or docs"
    Params = MixParams
    params: MixParams
    internal_columns = (_GROUP, _SIZE, _DRAW)

    def measure(self, table: pa.Table) -> pa.Table:
        from curation.io.writers import column_at

        p = self.params
        group = column_at(table, p.column)
        if group is None:
            raise ValueError(
                f"mix: no column {p.column!r} (columns: {', '.join(table.column_names)}); "
                "name a column the input holds or a stage before mix writes"
            )
        group = values_as_text(group, f"mix: the column {p.column!r}")
        if p.by == "chars":
            size = pc.fill_null(pc.utf8_length(table[TEXT]), 0).cast(pa.int64())
        elif p.by == "tokens":
            if p.tokens_column not in table.column_names:
                raise ValueError(
                    f"mix: by: tokens reads the column {p.tokens_column!r}, which the rows "
                    "lack: put token_count before mix (or name the column in tokens_column)"
                )
            size = pc.fill_null(pc.cast(table[p.tokens_column], pa.int64()), 0)
        else:
            size = pa.array(np.ones(table.num_rows, np.int64))
        draw = pa.array(id_hashes(table[ID], p.seed))
        return (
            table.append_column(_GROUP, group).append_column(_SIZE, size).append_column(_DRAW, draw)
        )

    def decide(self, keys: Any, folder: Path) -> None:
        p = self.params
        # the weighted parts' keys, read once: their totals, then the draw
        chosen = keys.filter(pl.col(_GROUP).is_in(list(p.weights))).collect()
        found = chosen.group_by(_GROUP).agg(
            pl.len().alias("rows"), pl.col(_SIZE).sum().alias("size")
        )
        sizes = dict(zip(found[_GROUP].to_list(), found["size"].to_list(), strict=True))
        rows = dict(zip(found[_GROUP].to_list(), found["rows"].to_list(), strict=True))
        total, plans = plan_parts(sizes, p.weights, p.total, p.max_copies)
        plan = pl.LazyFrame(
            {
                _GROUP: list(plans),
                "_full": [v["full"] for v in plans.values()],
                "_rest": [v["rest"] for v in plans.values()],
            },
            schema={_GROUP: pl.String, "_full": pl.Int32, "_rest": pl.Float64},
        )
        size = pl.col(_SIZE).cast(pl.Float64)
        drawn = (
            chosen.lazy()
            .join(plan, on=_GROUP)
            .sort([_GROUP, _DRAW, ID, "shard"])
            .with_columns(size.cum_sum().over(_GROUP).alias("_through"))
            .with_columns(
                (
                    pl.col("_full")
                    + (pl.col("_through") - size / 2 <= pl.col("_rest")).cast(pl.Int32)
                ).alias(COPIES)
            )
            .filter(pl.col(COPIES) > 0)
            .select("shard", ID, _GROUP, _SIZE, COPIES)
            .collect()
        )
        got = drawn.group_by(_GROUP).agg(
            (pl.col(_SIZE) * pl.col(COPIES)).sum().alias("taken"),
            pl.len().alias("rows"),
            pl.col(COPIES).sum().alias("copies"),
        )
        taken = {r[_GROUP]: r for r in got.iter_rows(named=True)}
        write_decisions(drawn.select("shard", ID, COPIES), folder)
        report = self._report(total, plans, rows, taken)
        (folder / DECISION_REPORT).write_text(json.dumps(report, indent=2), encoding="utf-8")

    def _report(
        self,
        total: float,
        plans: dict[str, dict[str, Any]],
        rows: dict[str, int],
        taken: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        """What each part was asked for and got, and a note for each that fell short."""
        p = self.params
        parts, notes = {}, []
        got_total = sum(t["taken"] for t in taken.values())
        for name, plan in plans.items():
            mine = taken.get(name, {"taken": 0, "rows": 0, "copies": 0})
            parts[name] = {
                "share": round(plan["share"], 6),
                "target": round(plan["target"], 1),
                "available": plan["size"],
                "rows": rows.get(name, 0),
                "taken": mine["taken"],
                "share_taken": round(mine["taken"] / got_total, 6) if got_total else 0.0,
                "rows_drawn": mine["rows"],
                "copies": mine["copies"],
            }
            unit = {"chars": "characters", "tokens": "tokens", "count": "documents"}[p.by]
            if plan["size"] == 0:
                notes.append(
                    f"no row has {p.column} = {name!r}: the mixture lacks its share "
                    f"({plan['share']:.1%}); check the weights' names against the data"
                )
            elif mine["taken"] < plan["target"] * 0.99 and plan["target"] > 0:
                notes.append(
                    f"{p.column} = {name!r} gives {mine['taken']:,.0f} of the "
                    f"{plan['target']:,.0f} {unit} asked ({p.max_copies} "
                    f"cop{'y' if p.max_copies == 1 else 'ies'} of its rows at most): raise "
                    "max_copies or lower total"
                )
        return {
            "column": p.column,
            "by": p.by,
            "total": round(total, 1),
            "taken": got_total,
            "parts": parts,
            "notes": notes,
        }

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        group = table[_GROUP]
        weighted = pc.fill_null(pc.is_in(group, pa.array(list(self.params.weights))), False)
        table = with_drop_reason(table, pc.invert(weighted), self.reason("not_in_mix"))
        if decisions is None or decisions.num_rows == 0:
            copies = pa.nulls(table.num_rows, pa.int32())
        else:
            where = pc.index_in(table[ID], decisions[ID])
            copies = pc.take(decisions[COPIES].cast(pa.int32()), where)
        table = with_drop_reason(table, pc.is_null(copies), self.reason("not_drawn"))
        return table.append_column(COPIES, copies)
