"""``curate inspect`` output: the funnel, score summaries and documents as plain text."""

from __future__ import annotations

from typing import Any

import polars as pl

from curation.batch import ID, TEXT
from curation.inspect.shards import REASON, Groups

BARS = " ▁▂▃▄▅▆▇█"


def sparkline(counts: list[int]) -> str:
    """One character per bin, its height proportional to the bin's count."""
    top = max(counts) if counts else 0
    if top == 0:
        return " " * len(counts)
    return "".join(BARS[0 if n == 0 else max(1, round(n / top * (len(BARS) - 1)))] for n in counts)


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}"


def format_funnel(stages: list[dict[str, Any]]) -> str:
    """Rows in and kept per stage, then each drop reason with its count and share of the
    stage's input."""
    lines = ["stage                          rows in       kept    dropped"]
    for s in stages:
        dropped = s["rows_in"] - s["rows_kept"]
        lines.append(f"{s['name']:28s} {s['rows_in']:>10,} {s['rows_kept']:>10,} {dropped:>10,}")
        if "where" in s:  # the rows the stage saw; the others passed it as they came
            lines.append(f"    {'where ' + s['where']:44s} {s['rows_where']:>10,}  (seen)")
        for reason, n in sorted(s["dropped_by_reason"].items(), key=lambda kv: -kv[1]):
            share = n / s["rows_in"] if s["rows_in"] else 0.0
            lines.append(f"    {reason:44s} {n:>10,}  ({share:.1%})")
        lines += mixture_lines(s.get("decision", {}))
    return "\n".join(lines)


def mixture_lines(decision: dict[str, Any]) -> list[str]:
    """A ``mix`` stage's parts (its ``decision`` in ``stats.json``): each part's share
    asked and got, what it gave of what it had, and how many copies of how many rows;
    then the notes of the parts that fell short. Nothing for another stage."""
    if "parts" not in decision:
        return []
    unit = {"chars": "chars", "tokens": "tokens", "count": "docs"}[decision["by"]]
    lines = [
        f"    mixture of {decision['column']} by {unit}: {decision['taken']:,.0f} of "
        f"{decision['total']:,.0f} asked"
    ]
    for name, part in decision["parts"].items():
        lines.append(
            f"      {name:30s} {part['share']:6.1%} asked {part['share_taken']:6.1%} got  "
            f"{part['taken']:,.0f} {unit}: {part['copies']:,} copies of {part['rows_drawn']:,} "
            f"of its {part['rows']:,} rows ({part['available']:,.0f} {unit})"
        )
    return lines + [f"    note: {note}" for note in decision.get("notes", [])]


def partition_path(partition_by: str | list[str]) -> str:
    """``output.partition_by`` as its folders nest: ``lang``, or ``lang/source``."""
    return partition_by if isinstance(partition_by, str) else "/".join(partition_by)


def format_partitions(partitions: dict[str, Any], shown: int = 5) -> str:
    """The line of a run partitioned by ``output.partition_by`` (its ``stats.json``
    ``partitions``): the column, the folders, and the ``shown`` largest with their rows."""
    by = partition_path(partitions["column"])
    folders = partitions["folders"]
    rows = {name: counted["rows"] for name, counted in folders.items()}
    count = f"{len(folders):,} folder{'s' if len(folders) != 1 else ''}"
    return f"kept/ a folder per value of {by}: {count} ({largest(rows, shown)})"


def largest(counts: dict[str, int], shown: int = 5) -> str:
    """The ``shown`` largest of ``counts`` with their counts (ties by name), and how many
    more: ``en 195,600, fr 700 and 17 more``."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = ", ".join(f"{name} {n:,}" for name, n in ranked[:shown])
    return top + (f" and {len(ranked) - shown:,} more" if len(ranked) > shown else "")


def format_summaries(summaries: dict[str, dict[str, Any]], lines: dict[str, list]) -> str:
    """Per score column: count, nulls, mean (and an integer column's sum, over all rows and
    the kept ones), quantiles, and a histogram as a sparkline (kept and dropped rows
    together) between its minimum and maximum."""
    out = []
    for column, s in summaries.items():
        q = s["quantiles"]
        total = f", sum {s['sum']:,} ({s['kept_sum']:,} kept)" if "sum" in s else ""
        out.append(
            f"{column}: {s['count']:,} values, {s['nulls']:,} null, mean {number(s['mean'])}"
            + total
        )
        out.append("    " + "  ".join(f"p{round(k * 100)} {number(v)}" for k, v in q.items()))
        if s["histogram"]:
            h = s["histogram"]
            total = [k + d for k, d in zip(h["kept"], h["dropped"], strict=True)]
            out.append(f"    {number(h['edges'][0])} |{sparkline(total)}| {number(h['edges'][-1])}")
        for label, value in lines.get(column, []):
            out.append(f"    {label}: {number(value)}")
    return "\n".join(out)


#: what a row without a text shows: a null text, or a dropped row of a run that wrote
#: dropped rows without their texts (``output.dropped_text: false``)
NO_TEXT = "(no text: null, or dropped/ written without texts)"


def format_rows(frame: pl.DataFrame, focus: list[str], width: int = 100) -> str:
    """One block per document: id, kept or its drop reason, the ``focus`` columns and the
    start of its text on one line."""
    if frame.height == 0:
        return "no documents match"
    out = []
    for row in frame.iter_rows(named=True):
        status = row.get(REASON) or "kept"
        head = f"{row.get(ID, '?')}  [{status}]"
        if "position" in row:
            head += f"  ({row['position']})"
        scores = "  ".join(f"{c}={number(row[c])}" for c in focus if c in row)
        text = row.get(TEXT)
        text = NO_TEXT if text is None else text.replace("\n", " ⏎ ")
        text = text if len(text) <= width else text[: width - 1] + "…"
        out.append(f"{head}\n    {scores}\n    {text}" if scores else f"{head}\n    {text}")
    return "\n".join(out)


def format_groups(found: Groups) -> str:
    """``curate inspect --by``: per group its documents, those kept and their share, the
    share of its characters kept, the mean of each of ``--mean`` ("-" where no document
    has one; with ``--spread`` its standard deviation, least and largest value too), and
    its most frequent drop reasons; the groups not shown summed on one
    line."""
    shown = found.table.height
    head = f"by {found.by}: {found.groups:,} group(s)"
    if shown < found.groups:
        head += f", the {shown:,} largest shown"
    chars = "kept_chars" in found.table.columns
    rows = found.lines()
    width = min(max([len(label) for label, _, _ in rows] + [12]), 40)
    title = f"{'group':<{width}}  {'documents':>10}  {'kept':>10}  {'kept %':>6}"
    title += f"  {'chars kept %':>12}" if chars else ""
    kinds = ("mean", "std", "min", "max") if found.spread else ("mean",)
    measures = [(kind, m) for m in found.means for kind in kinds]
    widths = [max(10, len(f"{kind} {m}")) for kind, m in measures]
    title += "".join(
        f"  {f'{kind} {m}':>{w}}" for (kind, m), w in zip(measures, widths, strict=True)
    )
    lines = [head, title + "  most frequent drop reasons"]
    for label, row, reasons in rows:
        share = row["kept"] / row["documents"] if row["documents"] else 0.0
        line = f"{label[:width]:<{width}}  {row['documents']:>10,}  "
        line += f"{row['kept']:>10,}  {share:>6.1%}"
        if chars:
            mass = row["kept_chars"] / row["chars"] if row["chars"] else 0.0
            line += f"  {mass:>12.1%}"
        for (kind, m), w in zip(measures, widths, strict=True):
            if kind in ("mean", "std"):
                value = (found.mean if kind == "mean" else found.std)(row, m)
            else:
                value = row[f"{kind}:{m}"]
            line += f"  {'-' if value is None else f'{value:.4g}':>{w}}"
        line += "  " + "; ".join(f"{reason} {n:,}" for reason, n in reasons)
        lines.append(line.rstrip())
    return "\n".join(lines)
