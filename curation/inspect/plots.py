"""Plots of a run: score histograms with their threshold lines, and the drop funnel.

Drawn with matplotlib's Agg backend (no display), returned as PNG bytes (the Hub
dataset card) or as inline SVG markup with text drawn as paths (the self-contained HTML
report: no fonts or files to fetch).
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

KEPT, DROPPED, LINE = "#3a7bd5", "#c9ccd1", "#d1495b"


def histogram_figure(
    column: str, summary: dict[str, Any], lines: list[tuple[str, float]]
) -> Figure:
    """Kept and dropped rows stacked per bin of ``column``, one dashed line per threshold."""
    hist = summary["histogram"]
    figure, axes = plt.subplots(figsize=(6.4, 2.8), dpi=100)
    edges = hist["edges"]
    widths = [b - a for a, b in itertools.pairwise(edges)]
    axes.bar(edges[:-1], hist["kept"], widths, align="edge", color=KEPT, label="kept")
    axes.bar(
        edges[:-1],
        hist["dropped"],
        widths,
        bottom=hist["kept"],
        align="edge",
        color=DROPPED,
        label="dropped",
    )
    for label, value in lines:
        axes.axvline(value, color=LINE, linestyle="--", linewidth=1.2)
        axes.annotate(
            f"{label} = {value:.4g}",
            (value, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -10),
            textcoords="offset points",
            color=LINE,
            fontsize=8,
        )
    axes.set_title(
        f"{column}  ({summary['count']:,} values, {summary['nulls']:,} null)", fontsize=10
    )
    axes.set_ylabel("documents")
    axes.legend(fontsize=8, frameon=False, loc="upper right")
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return figure


def funnel_figure(stages: list[dict[str, Any]]) -> Figure:
    """Rows entering each stage, the part it kept and the part it dropped."""
    names = [s["name"] for s in stages][::-1]
    kept = [s["rows_kept"] for s in stages][::-1]
    dropped = [s["rows_in"] - s["rows_kept"] for s in stages][::-1]
    figure, axes = plt.subplots(figsize=(6.4, 0.5 + 0.4 * len(stages)), dpi=100)
    axes.barh(names, kept, color=KEPT, label="kept")
    axes.barh(names, dropped, left=kept, color=DROPPED, label="dropped")
    axes.set_xlabel("documents")
    axes.legend(fontsize=8, frameon=False, loc="lower right")
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return figure


def to_png(figure: Figure) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def to_svg(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element, text as paths (the figure is closed)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "curation"}):
        figure.savefig(buffer, format="svg")
    plt.close(figure)
    markup = buffer.getvalue()
    return markup[markup.index("<svg") :]
