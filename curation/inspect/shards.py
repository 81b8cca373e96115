"""Reading scored shards for inspection: what a run kept and dropped, and why.

A *source* is a run folder (``kept/`` and ``dropped/`` parts, ``stats.json``,
``recipe.yaml``), an unfinished run folder (killed, or still running: the shards it has
finished, from ``_work/``), a folder of Parquet files, or one part or Parquet shard. Its rows
are scanned lazily with polars, kept and dropped parts together; a row is kept when its
``drop_reason`` is null. Of Parquet parts only the columns and row groups a question
needs are read; JSON Lines parts (``output: {format: jsonl}``, plain, zstd or gzip) are
parsed whole by each question, their types inferred from all their rows.

Score columns are the numeric columns other than ``id``. Their summaries (quantiles,
mean, nulls, a histogram of kept and dropped rows over equal-width bins) take two lazy
passes over those columns whatever the number of rows.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from curation.batch import ID, TEXT

REASON = "drop_reason"
FINISH_IT = "run the same `curate run` command"
QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
#: Score columns of the selectors that cut a global top fraction, by stage name.
CUT_COLUMNS = {"color_filter": "color_filter_score", "preselect": "preselect_score"}


class InspectError(ValueError):
    """The path or the question cannot be answered; the message says what to do."""


#: How a run's parts end: Parquet, or JSON Lines as ``output: {format: jsonl}`` writes
#: them (``curation.io.writers.part_suffix``).
PART_ENDINGS = (".parquet", ".jsonl", ".jsonl.zst", ".jsonl.gz")


def is_part(path: Path) -> bool:
    """Whether ``path`` is named as a run's part (a hidden name, a file being written, is not)."""
    return path.name.endswith(PART_ENDINGS) and not path.name.startswith(".")


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is named as a Parquet file (a run's part or a shard)."""
    return path.name.endswith(".parquet")


def scan_part(path: Path) -> pl.LazyFrame:
    """One part of a run (or a Parquet shard), lazily; JSON Lines with the types polars
    infers from all its rows (a column null in the first rows and text later is text)."""
    if is_parquet(path):
        return pl.scan_parquet(path)
    return pl.scan_ndjson(path, infer_schema_length=None)


def exact_sum(column: str, dtype: pl.DataType) -> pl.Expr:
    """The integer ``column`` as 64 bits, for a sum that cannot wrap: polars sums in the
    column's own type, so a uint32 cluster size wrapped past 2**32."""
    return pl.col(column).cast(pl.UInt64 if dtype == pl.UInt64 else pl.Int64)


def _parts(folder: Path) -> list[Path]:
    """The parts in a run's ``kept/`` or ``dropped/``, in order: with the recipe's
    ``output.partition_by``, those of ``kept/<value>/`` folder by folder."""
    return sorted(p for p in folder.rglob("*") if is_part(p)) if folder.is_dir() else []


@dataclass
class Source:
    """Where the rows are, and the run's ledger and recipe when it is a run folder."""

    path: Path
    files: list[Path]
    stats: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None
    kept_files: set[Path] = field(default_factory=set)
    # an unfinished run: how far it got, said in one line (None for a finished one)
    unfinished: str | None = None

    def unfinished_line(self) -> str:
        """What inspect and report say of an unfinished run: how far it got, what they
        show and how to finish it."""
        return f"{self.path} is {self.unfinished}; shown: those shards. To finish it, {FINISH_IT}"

    @property
    def is_run(self) -> bool:
        return self.stats is not None

    def scan(self) -> pl.LazyFrame:
        """Every row of every file, lazily (files with other columns are aligned by name)."""
        frames = [scan_part(f) for f in self.files]
        if not frames:  # a run of no document
            return pl.LazyFrame(schema={ID: pl.String, TEXT: pl.String, REASON: pl.String})
        lf = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
        if lf.collect_schema().get(REASON) == pl.Null:  # a shard where nothing was dropped
            lf = lf.with_columns(pl.col(REASON).cast(pl.String))
        return lf

    def schema(self) -> pl.Schema:
        return self.scan().collect_schema()


def open_source(path: str | Path) -> Source:
    """The source at ``path``: a run folder, a folder of Parquet files, or one file: a
    Parquet shard or a run's JSON Lines part. An error that says what was expected when it
    is none of these or has no rows."""
    root = Path(path)
    if not root.exists():
        raise InspectError(f"{root} does not exist: give a run folder or a Parquet shard")
    if root.is_file():
        if not is_part(root):
            raise InspectError(
                f"{root} is not a Parquet file or a run's JSON Lines part (.jsonl, "
                ".jsonl.zst, .jsonl.gz): give a run folder or a shard"
            )
        return Source(root, [root])
    if not (root / "stats.json").is_file() and (root / "_work" / "run.json").is_file():
        return _unfinished_run(root)
    kept = _parts(root / "kept")
    dropped = _parts(root / "dropped")
    if (root / "stats.json").is_file() or kept or dropped:
        stats = _read_json(root / "stats.json")
        recipe_file = root / "recipe.yaml"
        recipe = (
            yaml.safe_load(recipe_file.read_text(encoding="utf-8"))
            if recipe_file.is_file()
            else None
        )
        read = ((stats or {}).get("rows") or {}).get("read")
        if not kept and not dropped and read != 0:  # a run of no document has no part
            raise InspectError(f"{root} has a stats.json but no kept/ or dropped/ parts yet")
        return Source(root, kept + dropped, stats or {}, recipe, set(kept))
    files = sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise InspectError(f"{root} holds no Parquet files: give a run folder or a shard")
    return Source(root, files)


def _unfinished_run(root: Path) -> Source:
    """The shards an unfinished run has finished, as far as they got: in the deepest pass
    any shard has finished, those shards' kept rows there (for a pass before the last,
    the rows it hands on, not yet through the later stages) and their rows dropped up to
    it, with their ledgers summed (every stage's ``rows_in = rows_kept + dropped``)."""
    work = root / "_work"
    marker = _read_json(work / "run.json") or {}
    passes = len(marker.get("passes") or []) or len(list(work.glob("seg*/shards")))
    done: list[dict[str, dict[str, Any]]] = []
    for index in range(passes):
        results = {}
        for success in (work / f"seg{index}" / "shards").glob("*/_SUCCESS.json"):
            result = _read_json(success)
            if result is not None:
                results[success.parent.name] = result
        done.append(results)
    deepest = max((i for i, results in enumerate(done) if results), default=None)
    files = f"{marker['shards']:,} input files" if "shards" in marker else "its inputs"
    if deepest is None:
        raise InspectError(
            f"{root} is an unfinished run of {files} (killed, or still running) that has "
            f"finished no shard yet: {FINISH_IT} to finish it, or wait for it"
        )
    keys = sorted(done[deepest])
    planned = (_read_json(work / "plan.json") or {}).get("shards")
    finished = f"{len(keys):,}" + (f" of {planned:,}" if planned else "")
    ledger: list[dict[str, Any]] = []
    kept: list[Path] = []
    dropped: list[Path] = []
    for index in range(deepest + 1):
        parts = [done[index][k] for k in keys if k in done[index]]
        ledger += _summed([p["stages"] for p in parts])
        for key in keys:
            folder = work / f"seg{index}" / "shards" / key
            result = done[index].get(key, {})
            dropped += [folder / name for name, _ in result.get("dropped_parts", [])]
            if index == deepest:
                kept += [folder / name for name, _ in result.get("kept_parts", [])]
    kept = [p for p in kept if p.is_file()]
    dropped = [p for p in dropped if p.is_file()]
    through = "" if deepest == passes - 1 else " (kept rows not yet through the passes after it)"
    said = (
        f"an unfinished run (killed, or still running) of {files}: {finished} shards "
        f"finished pass {deepest + 1} of {passes}{through}"
    )
    return Source(root, kept + dropped, {"stages": ledger}, None, set(kept), unfinished=said)


def _summed(ledgers: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Shards' ledgers of one pass (each a list of stage entries) summed stage by stage."""
    total: list[dict[str, Any]] = []
    for ledger in ledgers:
        for position, stage in enumerate(ledger):
            if position == len(total):
                total.append(
                    {"name": stage["name"], "rows_in": 0, "rows_kept": 0, "dropped_by_reason": {}}
                )
            entry = total[position]
            entry["rows_in"] += stage["rows_in"]
            entry["rows_kept"] += stage["rows_kept"]
            if "where" in stage:  # the rows a stage with a where saw
                entry["where"] = stage["where"]
                entry["rows_where"] = entry.get("rows_where", 0) + stage["rows_where"]
            for reason, count in stage["dropped_by_reason"].items():
                entry["dropped_by_reason"][reason] = (
                    entry["dropped_by_reason"].get(reason, 0) + count
                )
    return total


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InspectError(f"{path} is not valid JSON ({err}): was the run interrupted?") from None


def score_columns(schema: pl.Schema) -> list[str]:
    """Numeric columns other than the id and ranks (``*_rank``), in schema order."""
    return [
        name
        for name, dtype in schema.items()
        if dtype.is_numeric() and name != ID and not name.endswith("_rank")
    ]


def funnel(source: Source) -> list[dict[str, Any]]:
    """Per stage: ``name``, ``rows_in``, ``rows_kept``, ``dropped_by_reason`` (and where
    recorded ``where``, ``rows_where`` and a barrier's ``decision``). From the run's
    ledger when there is one; otherwise counted from ``drop_reason``: ``read`` (every row),
    then the stages in order of their drop counts, each one's rows_in being what the stage
    before it kept, which holds because a dropped row skips every later stage)."""
    if source.stats and source.stats.get("stages"):
        return [
            {
                "name": s["name"],
                "rows_in": s["rows_in"],
                "rows_kept": s["rows_kept"],
                "dropped_by_reason": dict(s["dropped_by_reason"]),
                **{k: s[k] for k in ("where", "rows_where", "decision") if k in s},
            }
            for s in source.stats["stages"]
        ]
    lf = source.scan()
    if REASON not in lf.collect_schema():
        total = lf.select(pl.len()).collect().item()
        return [{"name": "read", "rows_in": total, "rows_kept": total, "dropped_by_reason": {}}]
    counts = lf.group_by(REASON).agg(pl.len().alias("n")).collect()
    total = int(counts["n"].sum())
    stages: dict[str, dict[str, int]] = {"read": {}}
    for reason, n in sorted(counts.iter_rows(), key=lambda r: -r[1]):
        if reason is not None:
            stages.setdefault(reason.split(":", 1)[0], {})[reason] = n
    out, rows = [], total
    for name, reasons in stages.items():
        dropped = sum(reasons.values())
        out.append(
            {
                "name": name,
                "rows_in": rows,
                "rows_kept": rows - dropped,
                "dropped_by_reason": reasons,
            }
        )
        rows -= dropped
    return out


def summarize(lf: pl.LazyFrame, columns: list[str], bins: int = 20) -> dict[str, dict[str, Any]]:
    """Per column: ``count`` (non-null), ``nulls``, ``mean``, ``quantiles`` ({q: value}) and
    ``histogram``: ``edges`` (bins + 1, from the 1st to the 99th percentile, so one outlier
    does not squash the rest; values beyond fall in the end bins) with ``kept`` and
    ``dropped`` counts per bin (all rows count as kept when there is no ``drop_reason``).
    NaN and infinite values count as values but are left out of the statistics. Bins are
    half-open, ``[edges[i], edges[i + 1])``, except the last, which holds its right edge:
    the counts are ``np.histogram``'s. An integer column (a token or word count) also has
    its exact ``sum`` and ``kept_sum`` (over the kept rows), as ``stats.json`` has them.

    One lazy pass reads only these columns (and whether each row was kept); the
    statistics are then computed in memory, about 9 bytes per row and column, one column
    per thread (numpy's partition and counting run without the GIL)."""
    if not columns:
        return {}
    schema = lf.collect_schema()
    kept = pl.col(REASON).is_null() if REASON in schema else pl.lit(True)
    counts = [c for c in columns if schema[c].is_integer()]
    frame = lf.select(
        *(pl.col(c).cast(pl.Float64) for c in columns),
        *(exact_sum(c, schema[c]).alias(f"\x00int {c}") for c in counts),
        kept.alias("\x00kept"),
    ).collect()
    kept_rows = frame["\x00kept"].to_numpy()
    series = [frame[c] for c in columns]
    threads = max(1, min(len(columns), os.cpu_count() or 1))
    with ThreadPoolExecutor(threads) as pool:
        summaries = dict(
            zip(
                columns,
                pool.map(lambda s: _column_summary(s, kept_rows, bins), series),
                strict=True,
            )
        )
    for column in counts:
        exact = frame[f"\x00int {column}"]
        summaries[column]["sum"] = int(exact.sum())
        summaries[column]["kept_sum"] = int(exact.filter(frame["\x00kept"]).sum())
    return summaries


def _column_summary(series: pl.Series, kept_rows: np.ndarray, bins: int) -> dict[str, Any]:
    values = series.to_numpy()  # nulls become NaN
    finite = np.isfinite(values)
    summary: dict[str, Any] = {
        "count": len(series) - series.null_count(),
        "nulls": series.null_count(),
        "mean": None,
        "quantiles": dict.fromkeys(QUANTILES),
        "histogram": None,
    }
    if not finite.any():
        return summary
    every = bool(finite.all())
    good = values if every else values[finite]
    q = _quantiles(good)
    summary["mean"] = _mean(good)
    summary["quantiles"] = {k: float(v) for k, v in zip(QUANTILES, q, strict=True)}
    lo, hi = float(q[1]), float(q[-2])  # the 1st and 99th percentiles
    if not hi > lo:  # a column of (nearly) one value: use the extremes
        lo, hi = float(q[0]), float(q[-1])
    if not hi > lo:  # one value: a bin range around it that its magnitude can resolve
        width = max(1.0, abs(lo) * 1e-9)
        lo, hi = (lo, lo + width) if np.isfinite(lo + width) else (lo - width, lo)
    edges = _edges(lo, hi, bins)
    kept_counts, dropped_counts = _kept_dropped_histogram(
        good, kept_rows if every else kept_rows[finite], edges
    )
    summary["histogram"] = {
        "edges": edges.tolist(),
        "kept": kept_counts.tolist(),
        "dropped": dropped_counts.tolist(),
    }
    return summary


_NEAR_THE_LIMIT = np.finfo(np.float64).max / 4


def _edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """``bins + 1`` equal steps from ``lo`` to ``hi`` (both included, as given):
    ``np.linspace``'s, except near the float limit, where its arithmetic overflows (a range
    wider than the largest float, or steps that round past it): there each edge is the
    mean of the ends weighted by its step, taken on halves so that it cannot."""
    if max(abs(lo), abs(hi)) < _NEAR_THE_LIMIT:
        return np.linspace(lo, hi, bins + 1)
    steps = np.linspace(0.0, 1.0, bins + 1)
    edges = ((lo / 2) * (1 - steps) + (hi / 2) * steps) * 2
    edges[0], edges[-1] = lo, hi
    return edges


def _mean(good: np.ndarray) -> float:
    """The mean of the finite ``good``: numpy's where its sum is well conditioned,
    otherwise (values that cancel, like a score difference centred on 0, or that sum past
    the float limit) the exactly rounded sum (``math.fsum``) of the values scaled by a
    power of two, so that it cannot overflow."""
    absolute = np.abs(good)
    with np.errstate(over="ignore", invalid="ignore"):
        total = good.sum()
        magnitude = absolute.sum()
    # pairwise summation errs by about 1e-16 * log2(n) * magnitude: at most ~1e-9 of total
    if np.isfinite(magnitude) and magnitude / 1e6 <= abs(total):
        return float(total / len(good))
    _, exponent = np.frexp(absolute.max())
    scaled = np.ldexp(good, -int(exponent))  # exact, but for values that turn subnormal
    return math.ldexp(math.fsum(scaled.tolist()) / len(good), int(exponent))


def _quantiles(good: np.ndarray) -> np.ndarray:
    """``np.quantile(good, QUANTILES)`` (linear interpolation), except where its step
    between two neighbours overflows (values of both signs near the float limit): those
    are interpolated as ``a * (1 - t) + b * t``, which cannot."""
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.quantile(good, QUANTILES)
    bad = ~np.isfinite(q)
    if bad.any():
        at = (len(good) - 1) * np.asarray(QUANTILES)
        below = np.floor(at).astype(np.int64)
        above = np.minimum(below + 1, len(good) - 1)
        ordered = np.partition(good, np.unique(np.concatenate([below, above])))
        t = at - below
        q = np.where(bad, ordered[below] * (1 - t) + ordered[above] * t, q)
    return q


def _kept_dropped_histogram(
    values: np.ndarray, kept: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of kept and of dropped ``values`` (finite) per bin of the equal-width
    ``edges``, values beyond them counted in the end bins: what ``np.histogram`` of the
    clipped values gives, in one counting pass for both."""
    bins = len(edges) - 1
    lo, hi = edges[0], edges[-1]
    clipped = np.clip(values, lo, hi)
    with np.errstate(over="ignore", divide="ignore"):
        width = hi - lo
        scale = bins / width
    if np.isfinite(width) and np.isfinite(scale):
        index = ((clipped - lo) * scale).astype(np.int64)
        np.minimum(index, bins - 1, out=index)
        # The arithmetic can land one bin off at an edge: settle on the edges themselves.
        index -= clipped < edges[index]
        index += (clipped >= edges[index + 1]) & (index < bins - 1)
    else:  # a range too narrow (subnormal) or too wide (overflows) for the arithmetic
        index = np.minimum(np.searchsorted(edges, clipped, "right") - 1, bins - 1)
    counts = np.bincount(index + bins * ~kept, minlength=2 * bins)
    return counts[:bins], counts[bins:]


def threshold_lines(source: Source, columns: list[str]) -> dict[str, list[tuple[str, float]]]:
    """Where the recipe cuts each score column: ``(label, value)`` pairs. Absolute bounds
    come from the recipe (a stage's ``column`` with ``min``/``max``; a classifier's
    ``min_prob``); a global top-fraction cut (``threshold``, ``color_filter``,
    ``preselect``) is the last score its stage kept, read from the rows."""
    lines: dict[str, list[tuple[str, float]]] = {}
    entries = [e for e in (source.recipe or {}).get("stages") or [] if isinstance(e, dict)]
    # a stage's entry without its where (a key beside the stage's name)
    stages = [{k: v for k, v in e.items() if k != "where"} for e in entries]
    stages = [e for e in stages if len(e) == 1]
    names = [next(iter(e)) for e in stages]
    for index, entry in enumerate(stages):
        ((name, params),) = entry.items()
        params = params or {}
        column = params.get("column") or CUT_COLUMNS.get(name)
        if name == "fasttext_classifier" and params.get("label") and params.get("min_prob"):
            prefix = params.get("name", "fasttext")
            column = f"{prefix}_{params['label']}_prob"
            lines.setdefault(column, []).append((f"{name} min_prob", float(params["min_prob"])))
            continue
        if column not in columns:
            continue
        for bound in ("min", "max"):
            if params.get(bound) is not None:
                lines.setdefault(column, []).append((f"{name} {bound}", float(params[bound])))
        if params.get("per") is not None:
            continue  # a cut in each group: no one line stands for them
        if params.get("top_fraction") is not None or name in CUT_COLUMNS:
            # rows that passed this stage: kept, or dropped by a later stage
            later = names[index + 1 :]
            stage_of = pl.col(REASON).str.split(":").list.first()
            passed = pl.col(REASON).is_null() | stage_of.is_in(later)
            score = pl.col(column)
            best = score.min() if params.get("higher_is_better", True) else score.max()
            value = source.scan().filter(passed & score.is_not_null()).select(best).collect().item()
            if value is not None:
                lines.setdefault(column, []).append((f"{name} cut", float(value)))
    return lines


@dataclass
class Overview:
    """What inspect, report and export show of a source: the funnel (``funnel``), each
    score column's summary (``summarize``) and its threshold lines (``threshold_lines``)."""

    stages: list[dict[str, Any]]
    summaries: dict[str, dict[str, Any]]
    lines: dict[str, list[tuple[str, float]]]


def overview(source: Source, bins: int = 20) -> Overview:
    """The funnel, summaries and threshold lines of ``source``, each computed once."""
    columns = score_columns(source.schema())
    return Overview(
        funnel(source), summarize(source.scan(), columns, bins), threshold_lines(source, columns)
    )


def parse_sort(spec: str, schema: pl.Schema) -> tuple[str, bool]:
    """``COLUMN`` (ascending) or ``-COLUMN`` (descending) -> (column, descending)."""
    descending = spec.startswith("-")
    column = spec[1:] if descending else spec
    check_column(column, schema)
    return column, descending


def cannot_read(path: Path | str, err: BaseException, then: str) -> str:
    """The message for the file ``path`` that ``err`` could not read: its first line, and
    what to do, ``then`` being the command to run again after."""
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    kind = "Parquet" if is_parquet(Path(path)) else "JSON Lines"
    return f"{path}: cannot be read as {kind} ({first}): replace or remove it, then {then}"


def unreadable(source: Source, err: Exception) -> InspectError:
    """The error to show for ``err``, a polars or Arrow error met reading ``source``: the
    file that cannot be read, found by reading each file (a Parquet file's footer, then
    its pages; only once reading has failed), or else ``err``'s first line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in source.files:
        try:
            if is_parquet(path):
                for _ in pq.ParquetFile(path).iter_batches(batch_size=65536):
                    pass
            else:
                scan_part(path).collect()  # every line parsed, as a question would
        except (pa.ArrowException, pl.exceptions.PolarsError, OSError) as bad:
            return InspectError(cannot_read(path, bad, "run the command again"))
    return InspectError(f"reading {source.path} failed: {str(err).splitlines()[0]}")


@contextmanager
def reading(source: Source) -> Iterator[None]:
    """A polars or Arrow error reading ``source`` in the body raised as ``unreadable``'s
    ``InspectError``, which names the damaged file."""
    import pyarrow as pa

    try:
        yield
    except (pl.exceptions.PolarsError, pa.ArrowException) as err:
        raise unreadable(source, err) from None


def check_column(column: str, schema: pl.Schema) -> None:
    """Raise ``InspectError`` naming ``column``, the nearest names and all columns, when
    ``schema`` has no such column."""
    if column not in schema:
        raise InspectError(
            f"no column {column!r}{_did_you_mean(column, schema)}: " + _columns(schema)
        )


def _did_you_mean(column: str, schema: pl.Schema) -> str:
    near = difflib.get_close_matches(column, schema.names(), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""


def _columns(schema: pl.Schema) -> str:
    return f"the columns are {', '.join(schema.names())}"


_UNKNOWN_COLUMN = re.compile(r'unable to find column "([^"]*)"')


def browse(
    source: Source,
    *,
    where: str | None = None,
    sort: str | None = None,
    limit: int = 10,
    around: str | None = None,
    status: str = "all",
) -> pl.DataFrame:
    """Documents matching ``where`` (a SQL expression over the columns, e.g.
    ``lang = 'en' AND kenlm_perplexity < 300``), ``status`` kept / dropped / all, sorted by
    ``sort`` (``-`` for descending) and cut to ``limit``; or with ``around`` (``COLUMN=VALUE``)
    the ``limit // 2`` rows just below VALUE and as many at or above it, in column order,
    with a ``position`` column (``below`` / ``above``)."""
    lf = source.scan()
    schema = lf.collect_schema()
    if status != "all":
        if REASON not in schema:
            raise InspectError(f"{source.path} has no {REASON} column: every row is kept")
        dropped = pl.col(REASON).is_not_null()
        lf = lf.filter(~dropped if status == "kept" else dropped)
    if where:
        lf = _with_sql(lf, schema, "--where", where, lambda lf, e: lf.filter(e))
    if around:
        column, _, raw = around.partition("=")
        check_column(column, schema)
        if not schema[column].is_numeric():
            numeric = [name for name, kind in schema.items() if kind.is_numeric()]
            raise InspectError(
                f"--around {around!r}: column {column!r} holds {schema[column]}, not numbers; "
                f"the numeric columns are {', '.join(numeric) or 'none'}"
            )
        try:
            value = float(raw)
        except ValueError:
            raise InspectError(f"--around {around!r}: expected COLUMN=NUMBER") from None
        half = max(1, limit // 2)
        score = pl.col(column)
        below = lf.filter(score < value).sort(column, descending=True).head(half)
        above = lf.filter(score >= value).sort(column).head(half)
        frames = [
            below.with_columns(position=pl.lit("below")),
            above.with_columns(position=pl.lit("above")),
        ]
        return pl.concat(frames).collect().sort(column)
    if sort:
        column, descending = parse_sort(sort, schema)
        lf = lf.sort(column, descending=descending, nulls_last=True)
    return lf.head(limit).collect()


def _with_sql(lf: pl.LazyFrame, schema: pl.Schema, option: str, sql: str, use: Any) -> pl.LazyFrame:
    """``use(lf, expression)`` for the SQL expression ``sql`` given as ``option``, checked
    against the columns at once: a clear error names what is wrong and lists them."""
    try:
        out = use(lf, pl.sql_expr(sql))
        out.head(0).collect()  # unknown columns and type errors surface here
        return out
    except Exception as err:  # polars raises several error types for bad SQL
        cause = str(err).split("\n\n")[0]
        if unknown := _UNKNOWN_COLUMN.search(cause):  # polars lists the columns too
            cause = f"no column {unknown[1]!r}{_did_you_mean(unknown[1], schema)}"
        raise InspectError(
            f"{option} {sql!r} is not a usable SQL expression: {cause}; " + _columns(schema)
        ) from None


@dataclass
class Groups:
    """``curate inspect --by``: one row per group, the largest first (``group``,
    ``documents``, ``kept``, and with a text column ``chars`` and ``kept_chars``; for
    each of ``means`` its sum and count of non-null values, ``sum:E`` and ``n:E``, and
    with ``spread`` the sum of squared deviations from the group's mean ``m2:E``, the
    least ``min:E`` and the largest ``max:E``), the groups left out as one in ``rest``
    (None when none is), and each shown group's most frequent drop reasons."""

    by: str
    table: pl.DataFrame
    groups: int
    rest: dict[str, int | float] | None
    reasons: dict[Any, list[tuple[str, int]]]
    means: tuple[str, ...] = ()
    spread: bool = False

    @staticmethod
    def mean(row: dict[str, Any], of: str) -> float | None:
        """The mean of ``of`` (one of ``means``) over a line's documents that have one."""
        n = row[f"n:{of}"]
        return row[f"sum:{of}"] / n if n else None

    @staticmethod
    def std(row: dict[str, Any], of: str) -> float | None:
        """The sample standard deviation of ``of`` (with ``spread``) over a line's
        documents that have one, as datatrove's statistics give it (0 for one value)."""
        n = row[f"n:{of}"]
        if not n:
            return None
        return math.sqrt(row[f"m2:{of}"] / (n - 1)) if n > 1 else 0.0

    def lines(self, null: str = "(null)") -> list[tuple[str, dict[str, Any], list]]:
        """What to show, one entry a line: its label (``null`` for the null group), its
        counts and its drop reasons; the groups left out last, as one line."""
        out = []
        for row in self.table.iter_rows(named=True):
            key = row["group"]
            out.append((null if key is None else str(key), row, self.reasons.get(key, [])))
        if self.rest:
            others = self.groups - self.table.height
            out.append((f"({others:,} other group{'s' * (others > 1)})", self.rest, []))
        return out


def by_group(
    source: Source,
    by: str,
    *,
    where: str | None = None,
    limit: int = 10,
    reasons: int = 2,
    means: Sequence[str] = (),
    spread: bool = False,
) -> Groups:
    """The documents of ``source`` (those matching ``where``) counted by the value of
    ``by`` (a column or SQL expression, e.g. ``lang`` or ``split_part(url, '/', 3)``):
    read, kept, their characters, the mean of each of ``means`` (numeric columns or SQL
    expressions, over all the group's documents, as datatrove's statistics per domain;
    with ``spread`` their standard deviation, least and largest value too), and the
    ``reasons`` most frequent drop reasons of each of the ``limit`` largest groups."""
    lf = source.scan()
    schema = lf.collect_schema()
    if where:
        lf = _with_sql(lf, schema, "--where", where, lambda lf, e: lf.filter(e))
    lf = _with_sql(lf, schema, "--by", by, lambda lf, e: lf.with_columns(e.alias("_group")))
    group = pl.col("_group")
    kept = pl.col(REASON).is_null() if REASON in schema else pl.lit(True)
    counts = [pl.len().alias("documents"), kept.sum().alias("kept")]
    if TEXT in schema:
        chars = pl.col(TEXT).str.len_chars()
        counts += [chars.sum().alias("chars"), chars.filter(kept).sum().alias("kept_chars")]
    for i, sql in enumerate(means):
        name = f"_mean{i}"
        lf = _with_sql(lf, schema, "--mean", sql, lambda lf, e, n=name: lf.with_columns(e.alias(n)))
        kind = lf.collect_schema()[name]
        if not (kind.is_numeric() or kind == pl.Boolean):
            numeric = [c for c, k in schema.items() if k.is_numeric()]
            raise InspectError(
                f"--mean {sql!r} is {kind}, not a number: give a numeric column or expression "
                f"(numeric columns: {', '.join(numeric) or 'none'})"
            )
        value = pl.col(name).cast(pl.Float64)
        counts += [value.sum().alias(f"sum:{sql}"), value.count().alias(f"n:{sql}")]
        if spread:  # squared deviations from the group's own mean: no cancellation
            counts += [
                ((value - value.mean()) ** 2).sum().alias(f"m2:{sql}"),
                value.min().alias(f"min:{sql}"),
                value.max().alias(f"max:{sql}"),
            ]
    table = lf.group_by(group).agg(counts).collect()
    table = table.rename({"_group": "group"}).sort(
        ["documents", "group"], descending=[True, False], nulls_last=True
    )
    shown, left = table.head(limit), table.slice(limit)
    rest = _merged(left, means) if left.height else None
    top: dict[Any, list[tuple[str, int]]] = {}
    if REASON in schema and shown.height:
        wanted = shown["group"].drop_nulls()
        among = group.is_in(wanted.implode()) if len(wanted) else pl.lit(False)
        if shown["group"].null_count():
            among = among | group.is_null()
        frequent = (
            lf.filter(among & pl.col(REASON).is_not_null())
            .group_by(group, REASON)
            .agg(pl.len().alias("n"))
            .sort(["n", REASON], descending=[True, False])
            .collect()
        )
        for key, reason, n in frequent.iter_rows():
            if len(top.setdefault(key, [])) < reasons:
                top[key].append((reason, n))
    return Groups(by, shown, table.height, rest, top, tuple(means), spread)


def _merged(groups: pl.DataFrame, means: Sequence[str]) -> dict[str, Any]:
    """``by_group``'s columns of several groups as those of one: counts and sums added,
    the least of the least values and the largest of the largest, and the squared
    deviations by the parallel rule (each group's own, plus its count times its mean's
    squared distance from the whole's mean)."""

    def combined(column: str) -> Any:
        if column.startswith("min:"):
            return groups[column].min()
        if column.startswith("max:"):
            return groups[column].max()
        return groups[column].sum()

    merged = {c: combined(c) for c in groups.columns if c != "group" and not c.startswith("m2:")}
    for of in means:
        if f"m2:{of}" not in groups.columns:
            continue
        n = groups[f"n:{of}"].cast(pl.Float64)
        total = merged[f"n:{of}"]
        whole = merged[f"sum:{of}"] / total if total else 0.0
        own = (groups[f"sum:{of}"] / n).fill_nan(None)  # a group with no value adds nothing
        merged[f"m2:{of}"] = (groups[f"m2:{of}"].fill_null(0.0) + n * (own - whole) ** 2).sum()
    return merged


def examples_by_reason(source: Source, per_reason: int = 3) -> dict[str, pl.DataFrame]:
    """Up to ``per_reason`` dropped documents for each drop reason (the first ones in file
    order, which is the run's deterministic input order); a text null where the run wrote
    dropped rows without it (``output.dropped_text: false``)."""
    lf = source.scan()
    if REASON not in lf.collect_schema():
        return {}
    if TEXT not in lf.collect_schema():  # dropped/ only, written without texts
        lf = lf.with_columns(pl.lit(None, pl.String).alias(TEXT))
    dropped = lf.filter(pl.col(REASON).is_not_null()).select(ID, REASON, TEXT)
    rows = dropped.group_by(REASON, maintain_order=True).head(per_reason).collect()
    return {reason: part for (reason,), part in rows.partition_by(REASON, as_dict=True).items()}
