"""A curation run: from a recipe and inputs to the run folder of DESIGN.md.

```
OUT/
  kept/part-00000.parquet ...     the curated documents, with their annotation columns
  dropped/part-00000.parquet ...  every dropped document, with drop_reason
  stats.json                      per stage: rows in, kept, dropped by reason, seconds...
  recipe.yaml                     the resolved recipe and the versions it ran with
  _work/                          resume markers; during a run, the rows a pass hands on
```

Resume: a shard whose ``_work/seg<i>/shards/<key>/_SUCCESS.json`` exists is not processed
again in pass ``i``, and a barrier whose ``_work/seg<i>/decisions/_SUCCESS`` names the
shards of this run is not decided again; running the same command on the same folder
finishes what a killed run left. A shard's key holds the size and modification stamp of
every file it reads, so a file changed since the run began is read again (and the
barriers after it decide again); its old results are deleted when the run finishes. A
run that goes on with its files gathered or cut into shards otherwise
(``input.unit_bytes``) decides its barriers again, over the new shards: the passes after
such a barrier are run again, and so are the shards whose handed-on rows the barrier
needs and a finished run has deleted. The finishing step links (or,
when schemas differ, rewrites) the per-shard parts into ``kept/`` and ``dropped/`` in
input order, each file atomically, and is idempotent; after it, the rows each pass handed
to the next are deleted (the markers stay).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.metadata
import json
import os
import platform
import posixpath
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

import curation
from curation.cache import hashing_libraries, libraries_text
from curation.io import is_url
from curation.io.inputs import (
    InputShard,
    LinePiece,
    RowGroups,
    file_change,
    file_versions,
    parquet_row_groups,
    plan_units,
    resolve_inputs,
)
from curation.io.readers import stream_pieces
from curation.io.writers import (
    TMP_PREFIX,
    PartitionError,
    merge_parts,
    named_columns,
    part_suffix,
    publish,
    rewrite_as,
    tmp_path,
    unify_parts,
    write_atomic_bytes,
)
from curation.recipe import InputSpec, OutputSpec, Recipe
from curation.runtime.executors import engine_build, make_executor
from curation.runtime.ledger import AccountingError, StageStats, check_chain
from curation.runtime.progress import BarrierProgress, RunProgress, StepProgress
from curation.runtime.shard import (
    SUCCESS,
    Segment,
    SegmentPlan,
    ShardResult,
    load_result,
    plan_segments,
    shard_folder,
)
from curation.stage import DECISION_REPORT, BarrierTooLarge, GlobalStage, stage_class

RUN_MARKER = "run.json"
INPUTS = "inputs.txt.gz"  # the input files of the run, one url a line (for messages)
PLAN = "plan.json"  # how many shards and passes the run has (for inspect)
# the seek indexes of gzip'd JSONL files cut into pieces and their blocks of lines, and
# the blocks and frames of zstd'd ones
INDEXES = "gzip_index"


class RunFolderError(RuntimeError):
    """The output folder cannot be used for this run; the message says what to do."""


def polars_row_limit() -> int:
    """The most rows one polars frame can hold, which every global stage's decision is
    bound by: 2**32 - 1 with polars' default 32-bit row index, 2**64 - 1 with its 64-bit
    runtime (``polars[rt64]``)."""
    import polars as pl

    return 2**64 - 1 if pl.get_index_type() == pl.UInt64 else 2**32 - 1


def _check_local(output: str | Path) -> None:
    """Refuse a URL as the run folder: a path would make of ``s3://bucket/run`` a local
    folder named ``s3:``. The run folder relies on a file system's atomic renames (resume
    markers, parts), which object stores do not have."""
    text = str(output)
    if is_url(text):
        raise RunFolderError(
            f"--output {text} is a URL, but the run folder must be a path on this machine "
            "(on a cluster, storage mounted at the same path on every node: NFS, or an "
            "object store through a FUSE mount); inputs may be URLs, and `curate export` "
            "publishes a finished run to the Hugging Face Hub"
        )


@dataclass(frozen=True)
class RunOptions:
    """How to execute: ``executor`` is ``local`` or ``ray``; ``workers`` Ray actors."""

    executor: str = "ray"
    workers: int | None = None
    ray_address: str | None = None
    overwrite: bool = False
    progress: bool = True


def run(recipe: Recipe, output: str | Path, options: RunOptions = RunOptions()) -> dict[str, Any]:
    """Run ``recipe`` over its ``input.paths`` into ``output``; return the stats written.

    Raises ``InputError`` (bad inputs, before any output is touched), ``RunFolderError``,
    ``ShardFailed``, ``AccountingError``, or, on Ray, ``ClusterUnreachable`` and
    ``WorkerStartFailed``.
    """
    started = time.time()
    out, shards, segments, fingerprint = _start(recipe, output)
    work = out / "_work"
    previous = _prepare(out, work, fingerprint, options.overwrite, [s.url for s in shards])
    input_files = len(shards)
    file_keys = {s.key for s in shards}
    shards = _plan_units(shards, recipe.input, options.progress, work / INDEXES)
    stale = _stale_results(work, shards, previous) + _stale_indexes(work, file_keys)
    plan = {"shards": len(shards), "passes": len(segments)}  # for inspect, while it runs
    write_atomic_bytes(work / PLAN, json.dumps(plan).encode("utf-8"))

    per_segment: list[list[ShardResult]] = []
    resumed = 0
    decided_over = _decided_over(shards)
    # the first pass whose barrier must decide (again): it and the passes after it start
    # afresh, and the pass before it must hand on every shard's rows (a pass cut before a
    # model has no barrier)
    barriers = [s.index for s in segments if s.opens_with_global()]
    undecided = next(
        (i for i in barriers if not _decided(segments[i], work, decided_over)), len(segments)
    )
    rehash = _rehash(previous, segments)
    executor = make_executor(options.executor, options.workers, options.ray_address)
    invocation = uuid.uuid4().hex  # counts a shard's starts in this invocation only
    try:
        for segment in segments:
            label = f"pass {segment.index + 1}/{len(segments)}" if len(segments) > 1 else ""
            if segment.opens_with_global() and segment.index >= undecided:
                for later in segments[segment.index :]:
                    shutil.rmtree(later.folder(work), ignore_errors=True)
                _barrier(recipe, segment, work, shards, per_segment[-1], options.progress)
                write_atomic_bytes(segment.decisions(work) / "_SUCCESS", decided_over)
                # the barriers after it were cleared too
                undecided = next((i for i in barriers if i > segment.index), len(segments))
            plan = SegmentPlan(recipe, segment, work, run=invocation)
            results: dict[str, ShardResult] = {}
            last = len(segments) - 1
            for shard in shards:
                done = _standing(work, shard, segment.index, last, undecided, rehash)
                if done is not None:
                    results[shard.label] = done
            if rehash is not None:
                rehash.say(segment.index)
            pending = [s for s in shards if s.label not in results]
            resumed += len(results)
            with RunProgress(
                len(shards), len(results), options.progress, label=label, files=input_files
            ) as progress:
                # closed here if anything below fails, so the executor's work stops
                # before executor.close() below
                with contextlib.closing(executor.run(pending, plan, progress.batch)) as done:
                    for result in done:
                        results[result.url] = result
                        progress.shard_done()
            per_segment.append([results[s.label] for s in shards])
    finally:
        executor.close()

    written = _finish(out, work, shards, per_segment, recipe)
    stats = _stats(
        recipe, per_segment, written, options, executor.workers, started, resumed, input_files
    )
    if executor.pools:
        stats["engine"]["pools"] = executor.pools
    _add_decisions(stats, recipe, segments, work)
    _summaries(out, stats, recipe)
    write_atomic_bytes(out / "stats.json", json.dumps(stats, indent=2).encode("utf-8"))
    write_atomic_bytes(out / "recipe.yaml", _recipe_yaml(recipe).encode("utf-8"))
    _drop_handed_on_rows(work, shards, per_segment)
    for path in stale:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    write_atomic_bytes(work / RUN_MARKER, json.dumps(fingerprint).encode())
    return stats


def plan_run(recipe: Recipe, output: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """What ``run`` would do, checked as ``run`` checks it, without writing anything: the
    input files (count, bytes and formats), the passes (each one's stages, and whether a
    barrier decides over the dataset before it), and what happens to ``output``: ``new``,
    ``overwrite`` (a run there is deleted first), ``resume`` (a run of this recipe over
    these inputs goes on) or ``finished`` (that run is done: every shard is reused).
    Raises what ``run`` raises before it writes (``InputError``, ``RunFolderError``)."""
    out, shards, segments, fingerprint = _start(recipe, output)
    previous = _previous_run(out, out / "_work", fingerprint, overwrite, [s.url for s in shards])
    held = out.exists() and any(out.iterdir())
    formats = Counter(shard.format for shard in shards)
    return {
        "inputs": {
            "files": len(shards),
            "bytes": sum(s.size or 0 for s in shards),
            "formats": dict(sorted(formats.items())),
        },
        "passes": [
            {
                "stages": [
                    spec.name if spec.where is None else f"{spec.name} (where {spec.where})"
                    for spec in segment.stages
                ],
                "barrier": segment.opens_with_global(),
                "measures_for": segment.measure.name if segment.measure else None,
            }
            for segment in segments
        ],
        "output": {
            "folder": str(out),
            "state": (
                ("finished" if (out / "stats.json").exists() else "resume")
                if previous
                else ("overwrite" if held and overwrite else "new")
            ),
            "partition_by": recipe.output.partition_by,
        },
    }


def _start(
    recipe: Recipe, output: str | Path
) -> tuple[Path, list[InputShard], list[Segment], dict[str, Any]]:
    """What a run and its plan begin with, reading only: the output folder (absolute:
    Ray workers of a cluster joined by address run in folders of their own), the input
    files, the passes and the run's fingerprint."""
    _check_local(output)
    shards = resolve_inputs(recipe.input.paths, recipe.input.format)
    segments = plan_segments(recipe)
    return Path(output).absolute(), shards, segments, _fingerprint(recipe, shards, segments)


_SHARD_KEYS = "label+versions"


def _stale_results(
    work: Path, shards: list[InputShard], previous: dict[str, Any] | None
) -> list[Path]:
    """The shard folders and start records under ``work`` that belong to no shard of this
    run: made from input files that changed since the run began (a shard's key holds its
    files' sizes and modification stamps), from files gathered into units or cut into
    pieces otherwise, or by an engine that named them otherwise (``previous``: the run
    marker this run goes on with). Nothing reads them; the run deletes them once it has
    finished. A file whose shard finished before with other content is named on stderr,
    as it is read again."""
    keys = {shard.key for shard in shards}
    stale = [
        path
        for folder in sorted(work.glob("seg*/shards")) + sorted(work.glob("seg*/starts"))
        for path in sorted(folder.iterdir())
        if path.name.removesuffix(".json") not in keys
    ]
    if not stale or previous is None:
        return stale
    if previous.get("shard_keys") != _SHARD_KEYS:
        print(
            "note: this run was begun by an earlier version of the engine, which named the "
            "shards' results otherwise: every shard is read again",
            file=sys.stderr,
        )
        return stale
    before = {
        ShardResult.from_json(done.read_text(encoding="utf-8")).url
        for path in stale
        if path.parent == work / "seg0" / "shards" and (done := path / SUCCESS).exists()
    }
    changed = list(
        dict.fromkeys(
            shard.url if shard.is_piece else shard.label
            for shard in shards
            if shard.label in before
        )
    )
    if changed:
        named = ", ".join(changed[:3])
        if len(changed) > 3:
            named += f" and {len(changed) - 3:,} more"
        print(
            f"note: {named} changed since this run began (size or modification time): "
            f"{'it is' if len(changed) == 1 else 'they are'} read again, and what the run "
            "made of the old content is deleted when it finishes",
            file=sys.stderr,
        )
    return stale


def _drop_handed_on_rows(
    work: Path, shards: list[InputShard], per_segment: list[list[ShardResult]]
) -> None:
    """Delete the rows each pass but the last kept and handed to the next one. Once the run
    is finished nothing reads them (kept/ links the last pass's parts, dropped/ every
    pass's dropped parts), and they can be as large as the input. The markers stay, so
    running the finished run again still skips every shard and barrier."""
    for index, results in enumerate(per_segment[:-1]):
        for shard, result in zip(shards, results, strict=True):
            folder = shard_folder(work, shard, index)
            for name, _ in result.kept_parts:
                (folder / name).unlink(missing_ok=True)


def _decided_over(shards: list[InputShard]) -> bytes:
    """The content of a barrier's ``_SUCCESS``: the shards its decisions name (their
    count and a digest of their keys, in order)."""
    digest = hashlib.sha256("\n".join(s.key for s in shards).encode("utf-8")).hexdigest()
    return json.dumps({"shards": len(shards), "keys_sha256": digest}).encode("utf-8")


def _decided(segment: Segment, work: Path, decided_over: bytes) -> bool:
    """Whether the barrier before ``segment`` has decided over these shards (one decided
    by an earlier engine version, or over shards gathered otherwise, decides again)."""
    done = segment.decisions(work) / "_SUCCESS"
    return done.exists() and done.read_bytes() == decided_over


def _standing(
    work: Path,
    shard: InputShard,
    index: int,
    last: int,
    undecided: int,
    rehash: _Rehash | None = None,
) -> ShardResult | None:
    """The stored result of ``shard`` in pass ``index`` if it stands, else None
    (``last``: the last pass's index; ``undecided``: the first pass whose barrier decides
    again, whose results and those after it do not stand). A result stands unless the
    next pass must read the rows it handed on (the next barrier decides again, or the
    next pass's result does not stand) and they are gone, deleted by a finished run:
    then the shard runs this pass again, to the same rows. Nor does one whose rows hold
    keys made under other libraries than this process's for a barrier still to decide
    (``rehash``): they would match none of the keys made now."""
    result = load_result(work, shard, index) if index < undecided else None
    if result is not None and rehash is not None and rehash.stale(result, index, undecided):
        return None
    if (
        result is None
        or index == last
        or _standing(work, shard, index + 1, last, undecided, rehash)
    ):
        return result
    folder = shard_folder(work, shard, index)
    handed_on = all((folder / name).exists() for name, _ in result.kept_parts)
    return result if handed_on else None


@dataclass
class _Rehash:
    """Which results hold keys that a barrier still to decide cannot compare with keys
    made now: ``keyed``, the barriers (pass indexes) of stages whose keys depend on the
    libraries (``GlobalStage.keys_by_library``); ``now``, this process's
    ``hashing_libraries``; ``unknown_stale``, whether a result that does not record its
    libraries (an engine before 2026-12-07) is taken as made under others (the run had
    a build with other libraries). ``found``: per pass, the libraries of each shard
    (by label) found stale, for ``say``."""

    keyed: frozenset[int]
    now: dict[str, str]
    unknown_stale: bool
    found: dict[int, dict[str, dict[str, str] | None]] = field(default_factory=dict)

    def stale(self, result: ShardResult, index: int, undecided: int) -> bool:
        """Whether ``result`` (pass ``index``) handed on keys that the barrier after it,
        still to decide, would compare with keys made now in vain."""
        if index + 1 not in self.keyed or index + 1 < undecided:
            return False
        if result.libraries is None:
            stale = self.unknown_stale
        else:
            stale = result.libraries != self.now
        if stale:
            self.found.setdefault(index, {})[result.url] = result.libraries
        return stale

    def say(self, index: int) -> None:
        """Say on stderr how many finished shards of pass ``index`` run again because
        their keys were made under other libraries (none: say nothing)."""
        again = self.found.get(index)
        if not again:
            return
        made = next(iter(again.values()))
        under = libraries_text(made) if made else "unrecorded"
        print(
            f"note: {len(again):,} finished shard(s) of pass {index + 1} made their dedup "
            f"keys under other libraries ({under}) than this run's "
            f"({libraries_text(self.now)}); the barrier after it compares keys made under "
            "one, so they run again",
            file=sys.stderr,
        )


def _rehash(previous: dict[str, Any] | None, segments: list[Segment]) -> _Rehash | None:
    """What ``_standing`` needs to redo the results whose keys were made under other
    libraries; None when nothing can be (a fresh run, or no keyed barrier)."""
    keyed = frozenset(
        s.index
        for s in segments
        if s.opens_with_global()
        and getattr(stage_class(s.stages[0].name), "keys_by_library", False)
    )
    if previous is None or not keyed:
        return None
    now = hashing_libraries()
    builds = previous.get("builds") or []
    others = any(b.get("libraries") not in (None, now) for b in builds)
    return _Rehash(keyed, now, unknown_stale=others)


def _stale_indexes(work: Path, file_keys: set[str]) -> list[Path]:
    """The seek indexes under ``work`` (and their records of blocks) of no input file of
    this run, by the file keys they are named with (a file changed since gets another)."""
    folder = work / INDEXES
    if not folder.is_dir():
        return []
    return [
        path
        for path in sorted(folder.iterdir())
        if path.name.removesuffix(".json").removesuffix(".gzindex").removesuffix(".zstd")
        not in file_keys
    ]


def _plan_units(
    files: list[InputShard], spec: InputSpec, progress: bool, indexes: Path
) -> list[InputShard]:
    """``plan_units``, saying on stderr (``progress``) while it counts the lines of large
    JSONL files (and decompresses and indexes the gzip'd ones, their seek indexes written
    to ``indexes``, and decompresses the zstd'd ones, their blocks and frames kept there)
    and the records of large WARC files, and while it reads the footers of
    Parquet files that are remote (a request each)."""

    def count(large: list[InputShard], kind: str) -> str:
        return f"{len(large):,} {kind} file{'s' if len(large) != 1 else ''}"

    def footers(large: list[InputShard]) -> list[RowGroups | None]:
        remote = any(is_url(f.url) for f in large)
        what = f"the footers of {count(large, 'Parquet')}"
        with StepProgress(f"reading {what}", f"read {what}", enabled=progress and remote):
            return parquet_row_groups(large)

    def lines(large: list[InputShard], target: int, block_lines: int) -> list[list[LinePiece]]:
        mb = sum(f.size or 0 for f in large) / 1e6
        jsonl = [f for f in large if f.format == "jsonl"]
        warc = [f for f in large if f.format == "warc"]
        kinds = [f"the lines of {count(jsonl, 'JSONL')}"] if jsonl else []
        kinds += [f"the records of {count(warc, 'WARC')}"] if warc else []
        what = " and ".join(kinds)
        each = "it" if len(large) == 1 else "each"
        doing = f"counting {what} ({mb:,.0f} MB) to cut {each} into pieces"
        if any(f.format == "jsonl" and f.gzipped for f in large):
            doing += " (a gzip'd JSONL file is decompressed and indexed for seeking)"
        elif any(f.format == "jsonl" and f.zstd for f in large):
            doing += " (a zstd'd JSONL file is decompressed)"
        with StepProgress(doing, f"counted {what}", enabled=progress):
            return stream_pieces(large, target, block_lines, str(indexes))

    return plan_units(
        files, spec.unit_bytes, footers, lines, spec.batch_rows, index_folder=str(indexes)
    )


def _barrier(
    recipe: Recipe,
    segment: Segment,
    work: Path,
    shards: list[InputShard],
    previous: list[ShardResult],
    progress: bool = False,
) -> None:
    """Let the global stage that opens ``segment`` decide over all rows kept before it,
    into a new decisions folder (``progress``: say so on stderr while it runs, and how
    long it took). The caller marks it done."""
    import polars as pl

    stage = segment.stages[0].build()
    label = f"barrier before pass {segment.index + 1}"
    rows = sum(n for result in previous for _, n in result.kept_parts)
    if rows > (limit := polars_row_limit()):
        raise BarrierTooLarge(
            f"{label}: {rows:,} rows reach {stage.name}, more than the {limit:,} that polars "
            f"can number with its 32-bit row index. Install polars' 64-bit runtime "
            f"(pip install 'polars[rt64]=={pl.__version__}') and run the same curate run "
            "command again: the shards finished before the barrier are kept"
        )
    folder = segment.decisions(work)
    folder.mkdir(parents=True)
    if not rows:  # nothing reached the stage (an empty input, or all dropped before it)
        return  # no decision: no shard has a row for it to apply to
    assert isinstance(stage, GlobalStage)
    stage.setup()
    frames = []
    sources: dict[str, list[Path]] = {}
    for shard, result in zip(shards, previous, strict=True):
        parts = shard_folder(work, shard, segment.index - 1)
        for name, _ in result.kept_parts:
            frame = pl.scan_parquet(parts / name).select(["id", *stage.key_columns()])
            frames.append(frame.with_columns(pl.lit(shard.key).alias("shard")))
            sources.setdefault(shard.key, []).append(parts / name)
    stage.key_sources = sources
    columns = {"id": pl.String, "shard": pl.String}
    keys = pl.concat(frames, how="diagonal_relaxed") if frames else pl.LazyFrame(schema=columns)
    with BarrierProgress(stage.name, rows, len(shards), enabled=progress, label=label) as shown:
        stage.progress = shown.note
        stage.decide(keys, folder)
    for note in _decision_report(folder).get("notes", []):
        print(f"note: {stage.name}: {note}", file=sys.stderr)


def _decision_report(folder: Path) -> dict[str, Any]:
    """What the barrier that wrote ``folder`` says it decided (``DECISION_REPORT``), or
    nothing where it wrote no report."""
    path = folder / DECISION_REPORT
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _add_decisions(
    stats: dict[str, Any], recipe: Recipe, segments: list[Segment], work: Path
) -> None:
    """Add each barrier's report to its stage's entry in ``stats`` as ``decision``."""
    for segment in segments:
        if not segment.opens_with_global():
            continue
        report = _decision_report(segment.decisions(work))
        index = next(i for i, spec in enumerate(recipe.stages) if spec is segment.stages[0])
        if report:
            stats["stages"][index + 1]["decision"] = report  # after the reader's entry


#: stage parameters added after runs were made with the stage, by stage: a run whose
#: recipe leaves them unset keeps the fingerprint it had before they existed
_LATER_PARAMS = {"threshold": ("per",)}


def _fingerprint(
    recipe: Recipe, shards: list[InputShard], segments: list[Segment]
) -> dict[str, Any]:
    """What a run folder is a run of: the recipe and the shards (hashed), and how many of
    the recipe's stages each pass holds (the passes' results are resumed by index)."""
    resolved = recipe.resolved()
    resolved["input"].pop("paths")
    # How files are gathered into units and parts into output files changes no row: a run
    # may go on with other values (a unit no longer found is read again), and runs begun
    # before the settings existed keep their fingerprint. ``shards`` are the input files.
    resolved["input"].pop("unit_bytes")
    resolved["output"].pop("min_file_bytes")
    resolved["output"].pop("max_partitions")  # a guard: the rows are the same under it
    if resolved["output"]["partition_by"] is None:  # as before the setting existed
        resolved["output"].pop("partition_by")
    if resolved["output"]["dropped_text"]:  # as before the setting existed
        resolved["output"].pop("dropped_text")
    for entry in resolved["stages"]:  # stage parameters added since, left unset
        for name, added in _LATER_PARAMS.items():
            if name in entry and all(entry[name].get(p) is None for p in added):
                entry[name] = {k: v for k, v in entry[name].items() if k not in added}
    body = json.dumps({"recipe": resolved, "shards": [s.url for s in shards]}, sort_keys=True)
    return {
        "fingerprint": hashlib.sha256(body.encode()).hexdigest(),
        # the settings hashed, so that a refusal can say which differ
        "recipe": json.loads(json.dumps(resolved)),
        "shards": len(shards),
        "passes": [len(segment.stages) for segment in segments],
        "gpu_cut": any(s.measure is None and not s.last for s in segments),
        # shards' keys hold their files' versions (before 2026-11-25 they did not)
        "shard_keys": _SHARD_KEYS,
        "stage_files": _stage_files(recipe),
    }


def _note_builds(previous: dict[str, Any] | None, fingerprint: dict[str, Any]) -> None:
    """Record in ``fingerprint`` the builds of the engine that have made this run's results
    (``previous``'s and this one), and say on stderr when this one is another: the shards
    finished before were made by other code, which a fix or a change since may make
    otherwise (``--overwrite`` makes every shard with this build)."""
    mine = engine_build()
    mine = {
        "version": mine["version"],
        "source": mine["source"],
        "libraries": hashing_libraries(),  # a dedup's keys made under others match nothing
    }
    builds = list((previous or {}).get("builds") or [])
    others = [b for b in builds if b != mine]
    if previous is not None and others:
        hashes = any(b.get("libraries", mine["libraries"]) != mine["libraries"] for b in others)
        why = (
            " (a dedup's hashes made under other libraries match none of this one's: those "
            "a barrier has still to compare are made again)"
        )
        print(
            f"note: this run was begun by another build of curation ({_build_text(others[0])}) "
            f"than this one ({_build_text(mine)}): the shards finished by it stand as it made "
            f"them{why if hashes else ''}; pass --overwrite to make every shard with this build",
            file=sys.stderr,
        )
    fingerprint["builds"] = [*builds, mine] if mine not in builds else builds


def _build_text(build: dict[str, Any]) -> str:
    """A build as the resume note names it: version, source and, where recorded (runs
    begun since 2026-12-07), the libraries whose results the dedups keep."""
    libraries = build.get("libraries") or {}
    named = f", {libraries_text(libraries)}" if libraries else ""
    return f"{build['version']}, source {build['source']}{named}"


def _what_differs(
    previous: dict[str, Any], fingerprint: dict[str, Any], work: Path, urls: list[str]
) -> str:
    """What a run folder holds, said by how it differs from this run: the stages or the
    settings that differ (``previous``'s recipe against ``fingerprint``'s), else the
    input files added and gone (against ``work``'s list); markers of engines before
    2026-11-25 hold neither."""
    then, now = previous.get("recipe"), fingerprint["recipe"]
    if then is not None and then != now:
        stages = [[next(iter(s)) for s in r.get("stages", [])] for r in (then, now)]
        if stages[0] != stages[1]:
            return f"a run with other stages ({' -> '.join(map(', '.join, stages))})"
        old, new = _flat(then), _flat(now)
        keys = [k for k in sorted(old.keys() | new.keys()) if old.get(k, ...) != new.get(k, ...)]

        def shown(value: Any) -> str:
            return "(none)" if value is ... else json.dumps(value)

        said = "; ".join(
            f"{k}: {shown(old.get(k, ...))} -> {shown(new.get(k, ...))}" for k in keys[:3]
        )
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        return f"a run with other settings ({said}{more})"
    listed = work / INPUTS
    if then is not None and listed.exists():
        before = gzip.decompress(listed.read_bytes()).decode("utf-8").splitlines()
        known, current = set(before), set(urls)
        parts = []
        for count, which, what in [
            (len(current - known), [u for u in urls if u not in known], "added"),
            (len(known - current), [u for u in before if u not in current], "gone"),
        ]:
            if count:
                shown = ", ".join(which[:3]) + (", ..." if count > 3 else "")
                parts.append(f"{count:,} file{'s' if count != 1 else ''} {what}: {shown}")
        if parts:
            return f"a run over other inputs ({'; '.join(parts)})"
    return "a run of another recipe or other inputs"


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict / list as ``{"a.b[0].c": leaf}``."""
    if isinstance(value, dict):
        items = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in value.items()]
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(value)]
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(_flat(item, key))
    return flat


def _stage_files(recipe: Recipe) -> dict[str, str | None]:
    """The version (size and modification stamp) of every file the recipe's stages read:
    models, word lists, benchmark items (``StageParams.files``)."""
    return file_versions(path for spec in recipe.stages for path in spec.params.files())


def _previous_run(
    out: Path, work: Path, fingerprint: dict[str, Any], overwrite: bool, urls: list[str]
) -> dict[str, Any] | None:
    """The marker of the run in ``out`` that a run of ``fingerprint`` would go on with
    (None: a new or empty folder, or one ``overwrite`` clears); ``RunFolderError`` when
    the folder holds something else. Reads only."""
    marker = work / RUN_MARKER
    if not (out.exists() and any(out.iterdir())):
        return None
    is_run = marker.exists() or (out / "stats.json").exists()
    if not is_run:
        raise RunFolderError(
            f"output folder {out} is not empty and holds no curation run: "
            "choose an empty or new folder (it is not deleted, even with --overwrite)"
        )
    if overwrite or not marker.exists():
        return None
    previous = json.loads(marker.read_text())
    if previous.get("fingerprint") != fingerprint["fingerprint"]:
        raise RunFolderError(
            f"output folder {out} holds "
            f"{_what_differs(previous, fingerprint, work, urls)}: pass --overwrite "
            "to start again there, or choose another --output"
        )
    # a run begun by an engine that cut the passes otherwise (before 2026-11-24 a
    # model's pass was not cut from the CPU stages before it, and such markers say
    # nothing of passes): its pass results must not be read as this engine's
    before = previous.get("passes")
    if before != fingerprint["passes"] and (before or fingerprint["gpu_cut"]):
        raise RunFolderError(
            f"output folder {out} holds a run of this recipe begun by another "
            f"version of the engine, which cut its stages into passes otherwise "
            f"({before or 'unrecorded'} stages a pass there, {fingerprint['passes']} "
            "now): pass --overwrite to start again there, or finish it with that "
            "version"
        )
    # a model, word list or benchmark changed since: the results made before
    # would not be those made after (a marker of before 2026-11-25 has none)
    then = previous.get("stage_files")
    if then is not None and (change := file_change(then, fingerprint["stage_files"])):
        raise RunFolderError(
            f"output folder {out} holds a run of this recipe, and a file its stages "
            f"read, {change} since the run began: its results so far are not those "
            "the files give now. Pass --overwrite to start again with the files as "
            "they are, or put back those the run began with to finish it"
        )
    return previous


def _prepare(
    out: Path, work: Path, fingerprint: dict[str, Any], overwrite: bool, urls: list[str]
) -> dict[str, Any] | None:
    """Check that ``out`` is new, empty, or a run of this recipe over these inputs
    (``urls``, the input files) or clear it (``overwrite``); write the run marker and the
    list of inputs. Returns the marker of the run it goes on with, None for a fresh
    start."""
    marker = work / RUN_MARKER
    previous = _previous_run(out, work, fingerprint, overwrite, urls)
    if overwrite and out.exists():
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    _note_builds(previous, fingerprint)  # in place: the run writes it again when finished
    if previous is not None and "shard_keys" not in previous:
        # the results of the engine before stay named so until the run finishes
        fingerprint = {k: v for k, v in fingerprint.items() if k != "shard_keys"}
    try:
        work.mkdir(parents=True, exist_ok=True)
        write_atomic_bytes(marker, json.dumps(fingerprint).encode())
        if previous is None or not (work / INPUTS).exists():
            listed = "".join(f"{url}\n" for url in urls).encode("utf-8")
            write_atomic_bytes(work / INPUTS, gzip.compress(listed, compresslevel=1))
    except OSError as err:  # a file where a folder should be, no permission, a full disk
        raise RunFolderError(
            f"cannot write the output folder {out}: {err.strerror or err} "
            f"({err.filename or out}): choose an --output where a folder can be created"
        ) from None
    return previous


def _finish(
    out: Path,
    work: Path,
    shards: list[InputShard],
    per_segment: list[list[ShardResult]],
    recipe: Recipe,
) -> dict[str, dict[str, Any]]:
    """Place the parts into kept/ (last segment) and dropped/ (every segment); count them.

    Order: input order within a segment, segments in order. With ``output.partition_by``,
    the kept parts of each value go to ``kept/<value>/`` (the folder the shards wrote
    them in; ``kept/<value>/<value>/`` for two columns), numbered from 0 in each;
    ``counts["kept"]`` then has the rows and files of each folder under ``folders``.
    Every file of a kind gets the schema unified over all its parts, whatever its folder.
    """
    counts: dict[str, dict[str, Any]] = {}
    suffix = part_suffix(recipe.output)
    last = len(per_segment) - 1
    for kind in ("kept", "dropped"):
        sources: list[tuple[Path, int]] = []
        labels: list[str] = []
        by_folder: dict[str, list[int]] = {}  # a folder below kind/ ("": none) -> sources
        for index, results in enumerate(per_segment):
            if kind == "kept" and index != last:
                continue
            for shard, result in zip(shards, results, strict=True):
                parts = result.kept_parts if kind == "kept" else result.dropped_parts
                folder = shard_folder(work, shard, index)
                for name, rows in parts:
                    by_folder.setdefault(posixpath.dirname(name), []).append(len(sources))
                    sources.append((folder / name, rows))
                    labels.append(shard.label)
        limit = recipe.output.max_partitions
        columns = recipe.output.partition_columns
        if kind == "kept" and columns and sources:
            _check_partition_columns(columns, per_segment[last], sources[0][0])
        if kind == "kept" and columns and len(by_folder) > limit:
            raise PartitionError(
                f"the kept rows hold {len(by_folder):,} values of "
                f"{named_columns(columns)}, more than output.max_partitions "
                f"({limit:,}), a folder each: raise max_partitions (or partition by a "
                "column of fewer values) and run the same command again (the shards done "
                "are kept)"
            )
        target = out / kind
        target.mkdir(parents=True, exist_ok=True)
        for leftover in target.rglob(f"{TMP_PREFIX}*"):
            leftover.unlink()
        schema, schemas = None, []
        if recipe.output.format == "parquet":
            schemas = [pq.read_schema(path) for path, _ in sources]
            schema = unify_parts(schemas, labels)
        names: list[str] = []  # below target
        folders: dict[str, dict[str, int]] = {}
        rewrites: list[Callable[[], None]] = []  # the files made anew: merged or recast
        for below in sorted(by_folder):
            members = by_folder[below]
            place = target / below
            place.mkdir(parents=True, exist_ok=True)
            groups = _file_groups([sources[i] for i in members], recipe.output)
            for index, group in enumerate([members[i] for i in g] for g in groups):
                final = place / f"part-{index:05d}{suffix}"
                names.append(final.relative_to(target).as_posix())
                first = group[0]
                if len(group) > 1:
                    paths = [sources[i][0] for i in group]
                    unified = (schema or schemas[first]) if schemas else None
                    rewrites.append(partial(merge_parts, paths, final, unified, recipe.output))
                elif schema is not None and not schemas[first].equals(schema):
                    compression = recipe.output.compression
                    rewrites.append(
                        partial(rewrite_as, sources[first][0], final, schema, compression)
                    )
                else:
                    _link(sources[first][0], final)
            folders[below] = {"rows": sum(sources[i][1] for i in members), "files": len(groups)}
        _in_parallel(rewrites)
        _remove_stale(target, set(names))
        written = sum(rows for _, rows in sources)
        if recipe.output.format == "parquet":
            on_disk = sum(pq.ParquetFile(target / n).metadata.num_rows for n in names)
            if on_disk != written:
                raise AccountingError(f"{target}: files hold {on_disk} rows, expected {written}")
        counts[kind] = {"rows": written, "files": len(names)}
        if kind == "kept" and columns:
            counts[kind]["folders"] = folders
    return counts


#: most files the finish writes at once: each holds a row group of rows (up to
#: ``output.row_group_bytes``, 64 MiB of Arrow data) while it is written
FINISH_THREADS = 8


def _in_parallel(rewrites: list[Callable[[], None]]) -> None:
    """Run ``rewrites`` (each writes one output file of its own) on up to
    ``FINISH_THREADS`` threads, one a core: pyarrow reads, casts, compresses and writes
    without the GIL. The first error (in their order) is raised once those under way have
    stopped; those not begun are not run."""
    threads = min(len(rewrites), os.cpu_count() or 1, FINISH_THREADS)
    if threads <= 1:
        for rewrite in rewrites:
            rewrite()
        return
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(rewrite) for rewrite in rewrites]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _check_partition_columns(columns: list[str], results: list[ShardResult], part: Path) -> None:
    """A ``PartitionError`` when a column of ``output.partition_by`` is in no shard's kept
    rows (``results``): a name no input field or stage has, whose folders would all be
    null/. ``part`` is a kept part, whose columns the message lists."""
    found = {c for result in results for c in result.partition_columns or []}
    missing = [c for c in columns if c not in found]
    if not missing:
        return
    have = ", ".join(pq.read_schema(part).names) if part.name.endswith(".parquet") else ""
    raise PartitionError(
        f"output.partition_by names the column {missing[0]!r}, which no kept row has"
        + (f" (they have {have})" if have else "")
        + ": name an input field or a column a stage writes (lang, which the language "
        "stage writes), and run again with --overwrite"
    )


def _remove_stale(target: Path, names: set[str]) -> None:
    """Delete what ``target`` holds besides the files ``names`` (paths below it): the
    files of an earlier finish that this one did not write, and folders left empty."""
    for root, dirs, files in os.walk(target, topdown=False):
        here = Path(root)
        for name in files:
            if (here / name).relative_to(target).as_posix() not in names:
                (here / name).unlink()
        for name in dirs:
            with contextlib.suppress(OSError):  # not empty: it holds a file written
                (here / name).rmdir()


def _file_groups(sources: list[tuple[Path, int]], output: OutputSpec) -> list[list[int]]:
    """The output files as groups of consecutive ``sources`` (path, rows): a part of at
    least ``output.min_file_bytes`` on disk is a file of its own; consecutive smaller
    ones are packed, in order, until a file reaches that size or would pass
    ``output.shard_rows`` rows. The same parts give the same groups (a resumed finish
    writes the same files)."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = rows = 0
    for index, (path, count) in enumerate(sources):
        on_disk = path.stat().st_size
        small = on_disk < output.min_file_bytes
        if current and (not small or rows + count > output.shard_rows):
            groups.append(current)
            current, size, rows = [], 0, 0
        if not small:
            groups.append([index])
            continue
        current.append(index)
        size += on_disk
        rows += count
        if size >= output.min_file_bytes:
            groups.append(current)
            current, size, rows = [], 0, 0
    if current:
        groups.append(current)
    return groups


def _link(source: Path, final: Path) -> None:
    tmp = tmp_path(final)
    try:
        os.link(source, tmp)
    except OSError:  # no hard links on this filesystem
        shutil.copyfile(source, tmp)
    publish(tmp, final)


def _stats(
    recipe: Recipe,
    per_segment: list[list[ShardResult]],
    files: dict[str, dict[str, Any]],
    options: RunOptions,
    workers: int,
    started: float,
    resumed: int,
    input_files: int,
) -> dict[str, Any]:
    totals = [StageStats("read")] + [StageStats(s.name, where=s.where) for s in recipe.stages]
    offset = 0
    for results in per_segment:
        width = len(results[0].stages) if results else 0
        for result in results:
            for total, part in zip(totals[offset : offset + width], result.stages, strict=True):
                total.merge(part)
        offset += width
    results = per_segment[0]
    check_chain(totals, files["kept"]["rows"], files["dropped"]["rows"], where="run")
    seconds = time.time() - started
    read = totals[0]
    return {
        "engine": {
            "curation": curation.__version__,
            "executor": options.executor,
            "workers": workers,
        },
        "seconds": round(seconds, 3),
        "docs_per_s": round(read.rows_in / seconds, 1) if seconds > 0 else None,
        "mb_per_s": round(read.bytes_in / 1e6 / seconds, 3) if seconds > 0 else None,
        "shards": {
            "total": len(results),
            "passes": len(per_segment),
            "resumed": resumed,  # shard passes found done: at most total x passes
            # a unit of small files records each damaged file on a line of its own
            "corrupt_skipped": [
                {"url": r.url, "error": problem}
                for r in results
                if r.corrupt
                for problem in r.corrupt.split("\n")
            ],
            "input_files": input_files,
        },
        "rows": {
            "read": read.rows_in,
            "kept": files["kept"]["rows"],
            "dropped": files["dropped"]["rows"],
        },
        "files": {"kept": files["kept"]["files"], "dropped": files["dropped"]["files"]},
        **(
            {
                "partitions": {
                    "column": recipe.output.partition_by,  # a name, or a list of them
                    "folders": files["kept"]["folders"],  # below kept/: rows and files
                }
            }
            if "folders" in files["kept"]
            else {}
        ),
        "accounting": "ok: for every stage rows_in = rows_kept + rows_dropped",
        "stages": [t.to_dict() for t in totals],
    }


_QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def _summaries(out: Path, stats: dict[str, Any], recipe: Recipe) -> None:
    """Add count, mean, min, max and quantiles of each numeric column a stage added, over
    every row that has a value; an integer column (a count: ``token_count``) also gets
    its ``sum`` there and its ``kept_sum`` over the kept rows. Parquet parts are read a
    column at a time; JSON Lines parts are parsed twice each (their types inferred from
    every row, then the stages' columns kept in memory, their text left out)."""
    import polars as pl

    from curation.inspect.shards import exact_sum, is_parquet, scan_part

    added = {column for stage in stats["stages"] for column in stage["added_columns"]}
    frames_of: dict[Path, tuple[pl.LazyFrame, set[str]]] = {}
    kept_files = set()
    for kind in ("kept", "dropped"):
        # kept/ holds a folder per value with output.partition_by
        for f in sorted((out / kind).rglob(f"*{part_suffix(recipe.output)}")):
            if kind == "kept":
                kept_files.add(f)
            if is_parquet(f):
                frames_of[f] = (pl.scan_parquet(f), set(pq.read_schema(f).names))
            else:
                lines = scan_part(f)
                wanted = [c for c in lines.collect_schema().names() if c in added]
                frames_of[f] = (lines.select(wanted).collect().lazy(), set(wanted))
    kept = "_kept"  # whether a value is a kept row's (a name no stage writes)
    for stage in stats["stages"]:
        summaries = {}
        for column in stage["added_columns"]:
            frames = [
                frame.select(pl.col(column), pl.lit(f in kept_files).alias(kept))
                for f, (frame, names) in frames_of.items()
                if column in names
            ]
            if not frames:
                continue
            # JSON Lines parts each infer their types: all null in one, integers in another
            values = pl.concat(frames, how="vertical_relaxed").drop_nulls()
            dtype = values.collect_schema()[column]
            if not dtype.is_numeric():
                continue
            sums = []
            if dtype.is_integer():
                exact = exact_sum(column, dtype)
                sums = [
                    exact.sum().alias("sum"),
                    exact.filter(pl.col(kept)).sum().alias("kept_sum"),
                ]
            row = (
                values.select(
                    pl.len().alias("count"),
                    pl.col(column).mean().alias("mean"),
                    pl.col(column).min().alias("min"),
                    pl.col(column).max().alias("max"),
                    *[pl.col(column).quantile(q).alias(f"p{int(q * 100):02d}") for q in _QUANTILES],
                    *sums,
                )
                .collect()
                .row(0, named=True)
            )
            summaries[column] = {k: v for k, v in row.items()}
        stage["summaries"] = summaries


def _recipe_yaml(recipe: Recipe) -> str:
    import polars
    import pyarrow

    resolved = recipe.resolved()
    resolved["versions"] = {
        "curation": curation.__version__,
        "python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "polars": polars.__version__,
        "ray": importlib.metadata.version("ray"),  # importing Ray costs 0.5 s: local runs skip it
        "stages": {s.name: s.build().versions() for s in recipe.stages},
    }
    return f"# resolved from {recipe.source}\n" + yaml.safe_dump(resolved, sort_keys=False)
