"""``curate report``: one self-contained HTML page about a run or a shard.

The page holds the drop funnel (a chart and the table of rows in, kept and dropped by
reason per stage), the sites with the most documents when the rows have a ``url`` (what
each kept and why the rest went, as ``curate inspect --by`` counts them), a histogram of
every score column with the recipe's threshold lines, and example documents for every
drop reason. Charts are inline SVG and styles are inline: the file needs no network, no
script and no other file, so it can be mailed or attached to an issue as it is.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from curation.batch import ID, TEXT
from curation.inspect import plots
from curation.inspect.shards import Groups, Source, by_group, examples_by_reason, overview
from curation.inspect.terminal import NO_TEXT

#: the host of a URL (``scheme://host/...``), as ``curate inspect --by`` takes it
HOST = "split_part(url, '/', 3)"
SITES = 20

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { padding: .2rem .7rem; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; }
tr.reason td:first-child { padding-left: 2rem; color: #666; }
figure { margin: 1rem 0; } svg { max-width: 100%; height: auto; }
.doc { border-left: 3px solid #c9ccd1; padding: .3rem .8rem; margin: .6rem 0;
       white-space: pre-wrap; font: 12px/1.4 ui-monospace, monospace; background: #fafafa; }
.meta { color: #666; font-size: 12px; }
"""


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _funnel_table(stages: list[dict[str, Any]]) -> str:
    rows = ["<tr><th>stage</th><th>rows in</th><th>kept</th><th>dropped</th><th>share</th></tr>"]
    for s in stages:
        dropped = s["rows_in"] - s["rows_kept"]
        share = dropped / s["rows_in"] if s["rows_in"] else 0.0
        rows.append(
            f"<tr><td>{_escape(s['name'])}</td><td>{s['rows_in']:,}</td>"
            f"<td>{s['rows_kept']:,}</td><td>{dropped:,}</td><td>{share:.1%}</td></tr>"
        )
        if "where" in s:  # the rows the stage saw: the others passed it as they came
            rows.append(
                f"<tr class='reason'><td>where {_escape(s['where'])}</td>"
                f"<td>{s['rows_where']:,} seen</td><td></td><td></td><td></td></tr>"
            )
        for reason, n in sorted(s["dropped_by_reason"].items(), key=lambda kv: -kv[1]):
            part = n / s["rows_in"] if s["rows_in"] else 0.0
            rows.append(
                f"<tr class='reason'><td>{_escape(reason)}</td><td></td><td></td>"
                f"<td>{n:,}</td><td>{part:.1%}</td></tr>"
            )
    return "<table>" + "\n".join(rows) + "</table>"


def _mixture_table(decision: dict[str, Any]) -> str:
    """A ``mix`` stage's parts: each one's share asked and got, what it gave of what it
    held, its rows drawn and copies; then the notes of those that fell short."""
    unit = {"chars": "characters", "tokens": "tokens", "count": "documents"}[decision["by"]]
    rows = [
        f"<h3>Mixture of {_escape(decision['column'])} by {unit}: "
        f"{decision['taken']:,.0f} of {decision['total']:,.0f} asked</h3>",
        "<table><tr><th>part</th><th>share asked</th><th>share got</th><th>taken</th>"
        "<th>held</th><th>rows drawn</th><th>copies</th></tr>",
    ]
    for name, part in decision["parts"].items():
        rows.append(
            f"<tr><td>{_escape(name)}</td><td>{part['share']:.1%}</td>"
            f"<td>{part['share_taken']:.1%}</td><td>{part['taken']:,.0f}</td>"
            f"<td>{part['available']:,.0f}</td><td>{part['rows_drawn']:,} of "
            f"{part['rows']:,}</td><td>{part['copies']:,}</td></tr>"
        )
    notes = "".join(f"<p class='meta'>{_escape(n)}</p>" for n in decision.get("notes", []))
    return "\n".join(rows) + "</table>" + notes


def _groups_table(found: Groups, label: str) -> str:
    """``by_group``'s counts as a table: documents, kept and their shares, and the most
    frequent drop reasons of each group; the groups not shown summed on the last line."""
    rows = [
        f"<tr><th>{_escape(label)}</th><th>documents</th><th>kept</th><th>kept %</th>"
        "<th>chars kept %</th>"
        "<th>most frequent drop reasons</th></tr>"
    ]
    for group, row, reasons in found.lines(null="(none)"):
        share = row["kept"] / row["documents"] if row["documents"] else 0.0
        chars = row["kept_chars"] / row["chars"] if row.get("chars") else 0.0
        why = "; ".join(f"{_escape(reason)} {n:,}" for reason, n in reasons)
        rows.append(
            f"<tr><td>{_escape(group)}</td>"
            f"<td>{row['documents']:,}</td><td>{row['kept']:,}</td><td>{share:.1%}</td>"
            f"<td>{chars:.1%}</td><td>{why}</td></tr>"
        )
    return "<table>" + "\n".join(rows) + "</table>"


def build_report(source: Source, examples: int = 3, text_chars: int = 600) -> str:
    """The HTML page for ``source``: ``examples`` documents per drop reason, each cut to
    ``text_chars`` characters."""
    seen = overview(source)
    stages, summaries, lines = seen.stages, seen.summaries, seen.lines
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>curation report: {_escape(source.path.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>curation report: {_escape(source.path)}</h1>",
    ]
    if source.unfinished:
        parts.append(f"<p class='meta'>{_escape(source.unfinished_line())}</p>")
    elif source.stats:
        rows = source.stats.get("rows", {})
        parts.append(
            f"<p class='meta'>{rows.get('read', 0):,} documents read, {rows.get('kept', 0):,} "
            f"kept, {rows.get('dropped', 0):,} dropped; "
            f"{_escape(source.stats.get('accounting', ''))}</p>"
        )
    parts += [
        "<h2 id='funnel'>Drop funnel</h2>",
        f"<figure class='plot'>{plots.to_svg(plots.funnel_figure(stages))}</figure>",
        _funnel_table(stages),
    ]
    parts += [_mixture_table(s["decision"]) for s in stages if "parts" in s.get("decision", {})]
    if "url" in source.schema() and TEXT in source.schema():
        sites = by_group(source, HOST, limit=SITES)
        parts += [
            "<h2 id='sites'>Sites</h2>",
            f"<p class='meta'>{sites.groups:,} hosts (the part of each url after "
            f"<code>//</code>); the {sites.table.height:,} with the most documents</p>",
            _groups_table(sites, "host"),
        ]
    parts.append("<h2 id='scores'>Score distributions</h2>")
    drawn = 0
    for column, summary in summaries.items():
        if summary["histogram"] is None:
            parts.append(f"<p>{_escape(column)}: no values</p>")
            continue
        figure = plots.histogram_figure(column, summary, lines.get(column, []))
        quantiles = ", ".join(f"p{round(q * 100)} {v:.4g}" for q, v in summary["quantiles"].items())
        if "sum" in summary:
            quantiles += f"; sum {summary['sum']:,} ({summary['kept_sum']:,} kept)"
        parts.append(
            f"<figure class='plot' id='hist-{_escape(column)}'>{plots.to_svg(figure)}"
            f"<figcaption class='meta'>{_escape(quantiles)}</figcaption></figure>"
        )
        drawn += 1
    if not drawn:
        parts.append("<p>No numeric score columns.</p>")
    parts.append("<h2 id='examples'>Examples by drop reason</h2>")
    found = examples_by_reason(source, examples)
    if not found:
        parts.append("<p>No document was dropped.</p>")
    for reason, frame in sorted(found.items()):
        parts.append(f"<h3>{_escape(reason)}</h3>")
        for row in frame.iter_rows(named=True):
            text = row[TEXT]
            cut = NO_TEXT if text is None else text[:text_chars] + ("…" * (len(text) > text_chars))
            parts.append(
                f"<div class='doc'><div class='meta'>{_escape(row[ID])}</div>{_escape(cut)}</div>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(source: Source, output: str | Path) -> Path:
    """Write the page atomically to ``output`` and return its path."""
    from curation.io.writers import write_atomic_bytes

    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_bytes(path, build_report(source).encode("utf-8"))
    return path
