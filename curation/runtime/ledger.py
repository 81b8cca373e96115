"""The stats ledger: rows in, kept and dropped by reason, per stage, and its checks.

Every stage (the reader counts as stage ``read``) must satisfy
``rows_in = rows_kept + sum(dropped_by_reason)``, each stage must receive exactly the rows
the previous one kept, and the rows written must equal the rows read. A violation raises
``AccountingError``: a run never finishes with rows unaccounted for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class AccountingError(RuntimeError):
    """Rows were lost or invented somewhere; the message says where."""


@dataclass
class StageStats:
    """Counters of one stage. ``seconds`` is time spent inside the stage; bytes are UTF-8."""

    name: str
    rows_in: int = 0
    rows_kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    bytes_in: int = 0
    added_columns: list[str] = field(default_factory=list)
    #: input columns this stage's own columns of the same name replaced
    replaced_columns: list[str] = field(default_factory=list)
    #: its recipe entry's ``where`` (None: it sees every row), and the rows that held
    #: for (those it saw; the others passed as they came)
    where: str | None = None
    rows_where: int = 0

    def add(self, rows_in: int, dropped: dict[str, int], seconds: float, bytes_in: int) -> None:
        """Record one batch."""
        self.rows_in += rows_in
        self.rows_kept += rows_in - sum(dropped.values())
        self.dropped.update(dropped)
        self.seconds += seconds
        self.bytes_in += bytes_in

    def merge(self, other: StageStats) -> None:
        """Add another shard's counters of the same stage."""
        self.rows_in += other.rows_in
        self.rows_kept += other.rows_kept
        self.dropped.update(other.dropped)
        self.seconds += other.seconds
        self.bytes_in += other.bytes_in
        self.rows_where += other.rows_where
        for mine, theirs in (
            (self.added_columns, other.added_columns),
            (self.replaced_columns, other.replaced_columns),
        ):
            mine += [name for name in theirs if name not in mine]

    def to_dict(self) -> dict[str, Any]:
        """The stage's entry in ``stats.json``: counts, seconds, docs/s and MB/s (10^6 B/s)."""
        seconds = self.seconds
        return {
            "name": self.name,
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "rows_dropped": sum(self.dropped.values()),
            "dropped_by_reason": dict(sorted(self.dropped.items())),
            "seconds": round(seconds, 6),
            "docs_per_s": round(self.rows_in / seconds, 1) if seconds > 0 else None,
            "mb_per_s": round(self.bytes_in / 1e6 / seconds, 3) if seconds > 0 else None,
            "bytes_in": self.bytes_in,
            "added_columns": list(self.added_columns),
            "replaced_columns": list(self.replaced_columns),
            **({} if self.where is None else {"where": self.where, "rows_where": self.rows_where}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        """Inverse of ``to_dict`` (rates are recomputed)."""
        return cls(
            name=data["name"],
            rows_in=data["rows_in"],
            rows_kept=data["rows_kept"],
            dropped=Counter(data["dropped_by_reason"]),
            seconds=data["seconds"],
            bytes_in=data["bytes_in"],
            added_columns=list(data.get("added_columns", [])),
            replaced_columns=list(data.get("replaced_columns", [])),
            where=data.get("where"),
            rows_where=data.get("rows_where", 0),
        )


def check_chain(
    stages: list[StageStats], kept_written: int, dropped_written: int, where: str
) -> None:
    """Raise ``AccountingError`` unless every row read is accounted for.

    ``stages[0]`` is the reader. ``where`` names the shard or run in the message.
    """
    previous_kept = None
    for stats in stages:
        dropped = sum(stats.dropped.values())
        if stats.rows_in != stats.rows_kept + dropped:
            raise AccountingError(
                f"{where}: stage {stats.name} took {stats.rows_in} rows but kept "
                f"{stats.rows_kept} and dropped {dropped}"
            )
        if previous_kept is not None and stats.rows_in != previous_kept:
            raise AccountingError(
                f"{where}: stage {stats.name} took {stats.rows_in} rows but the stage before "
                f"it kept {previous_kept}"
            )
        previous_kept = stats.rows_kept
    if not stages:
        return
    total_dropped = sum(sum(s.dropped.values()) for s in stages)
    if kept_written != stages[-1].rows_kept:
        raise AccountingError(
            f"{where}: {kept_written} rows were written to kept/ but the last stage kept "
            f"{stages[-1].rows_kept}"
        )
    if dropped_written != total_dropped:
        raise AccountingError(
            f"{where}: {dropped_written} rows were written to dropped/ but the stages dropped "
            f"{total_dropped}"
        )
    if stages[0].rows_in != kept_written + dropped_written:
        raise AccountingError(
            f"{where}: {stages[0].rows_in} rows were read but {kept_written} kept + "
            f"{dropped_written} dropped were written"
        )
