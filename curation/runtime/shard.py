"""One input shard through one segment of fused stages: the unit of work of executors.

A recipe is cut into **segments** at its global stages. Segment 0 reads the input shard;
segment ``i > 0`` reads the rows that segment ``i - 1`` kept for the same shard, and
starts with the global stage whose decisions the barrier between them computed. For each
batch the segment's map stages run one after the other on the rows still live (no
``drop_reason``); rows a stage drops are set aside at once, so later stages never see
them. Before the barrier that ends a segment, the next global stage measures the live
rows. Kept rows stream to ``kept-*`` parts and dropped rows to ``dropped-*`` parts under
``_work/seg<i>/shards/<shard key>/``; ``_SUCCESS.json`` is written last, atomically, so a
shard either has a complete result or is done again on resume.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.batch import DROP_REASON, ID, TEXT, kept_mask, text_bytes
from curation.cache import hashing_libraries
from curation.io import is_url
from curation.io.inputs import InputShard
from curation.io.readers import CorruptInputError, read_shard
from curation.io.writers import PartitionedWriter, PartWriter, write_atomic_bytes
from curation.recipe import Recipe, StageSpec
from curation.runtime.ledger import StageStats, check_chain
from curation.stage import GlobalStage, MapStage

SUCCESS = "_SUCCESS.json"

BatchCallback = Callable[[int, int], None]


class StageContractError(RuntimeError):
    """A stage broke the map-stage contract (row count, reason prefix)."""


@dataclass(frozen=True)
class ShardResult:
    """What one finished shard produced: parts (file name, rows) and per-stage stats.
    ``url`` is the shard's ``label`` (a piece of a file names its row groups)."""

    url: str
    key: str
    kept_parts: list[tuple[str, int]]
    dropped_parts: list[tuple[str, int]]
    stages: list[StageStats]
    corrupt: str | None = None
    #: the libraries the dedups' keys of the rows it handed on were made under
    #: (``hashing_libraries``; None: a result of an engine before 2026-12-07)
    libraries: dict[str, str] | None = None
    #: the columns of ``output.partition_by`` that its kept rows have (a field that no
    #: row of a JSON Lines batch has is no column of that batch: its rows go to null/)
    partition_columns: list[str] | None = None
    #: what its kept parts hold for the next pass: ``rows`` (whole), or ``keys`` (each
    #: row's id and measured columns: the next pass reads the rows from the input again)
    handed: str = "rows"

    def to_json(self) -> str:
        """Serialised form, stored in ``_SUCCESS.json``."""
        return json.dumps(
            {
                "url": self.url,
                "key": self.key,
                "kept_parts": self.kept_parts,
                "dropped_parts": self.dropped_parts,
                "stages": [s.to_dict() for s in self.stages],
                "corrupt": self.corrupt,
                "libraries": self.libraries,
                "partition_columns": self.partition_columns,
                "handed": self.handed,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ShardResult:
        """Inverse of ``to_json``."""
        data = json.loads(text)
        return cls(
            url=data["url"],
            key=data["key"],
            kept_parts=[tuple(p) for p in data["kept_parts"]],  # type: ignore[misc]
            dropped_parts=[tuple(p) for p in data["dropped_parts"]],  # type: ignore[misc]
            stages=[StageStats.from_dict(s) for s in data["stages"]],
            corrupt=data.get("corrupt"),
            libraries=data.get("libraries"),
            partition_columns=data.get("partition_columns"),
            handed=data.get("handed", "rows"),
        )


@dataclass(frozen=True)
class Segment:
    """One fused pass: its index, its ledger stages and the global stage it measures for.

    ``stages`` are the recipe's stages from the global stage that opens the segment (if
    any) up to the next global stage; ``measure`` is that next global stage. A pass that
    runs a model on GPUs is cut from the CPU stages before it (see ``plan_segments``):
    then the CPU part has no ``measure`` and the model's part opens with no global stage.
    ``last`` is the pass that writes the run's kept rows.
    """

    index: int
    stages: tuple[StageSpec, ...]
    measure: StageSpec | None
    last: bool = True

    def opens_with_global(self) -> bool:
        """Whether a barrier decides before this pass (its first stage is global)."""
        return bool(self.stages) and is_global(self.stages[0])

    def folder(self, work: Path) -> Path:
        """This segment's folder under the run's ``_work``."""
        return work / f"seg{self.index}"

    def decisions(self, work: Path) -> Path:
        """Where the barrier before this segment writes its decisions."""
        return self.folder(work) / "decisions"


def is_global(spec: StageSpec) -> bool:
    """Whether the recipe stage ``spec`` is a global stage (one that decides over all
    shards at a barrier) rather than a map stage."""
    from curation.stage import stage_class

    return issubclass(stage_class(spec.name), GlobalStage)


def plan_segments(recipe: Recipe) -> list[Segment]:
    """Cut the recipe's stages at each global stage, and before a stage that runs a model
    on GPUs (``lm_loss``; the measuring of ``color_filter``) where CPU stages come first
    in the same pass: as NeMo Curator splits its stages, so that the CPU part runs on an
    actor per CPU and the model's part on an actor per GPU, each scaling alone, instead of
    the whole pass waiting on as many actors as there are GPUs. The rows cross the cut as
    Parquet under ``_work``, as they cross a barrier; the first pass always reads."""
    from curation.stage import stage_class

    def on_gpu(spec: StageSpec) -> bool:
        return stage_class(spec.name).resources.gpus > 0

    groups: list[list[StageSpec]] = [[]]
    for spec in recipe.stages:
        if is_global(spec):
            groups.append([])
        groups[-1].append(spec)
    passes: list[tuple[list[StageSpec], StageSpec | None]] = []
    for index, group in enumerate(groups):
        following = groups[index + 1][0] if index + 1 < len(groups) else None
        # a global stage that opens a pass only applies its decisions there: no model
        cut = next((i for i, s in enumerate(group) if not is_global(s) and on_gpu(s)), None)
        if cut is None and following is not None and on_gpu(following):
            cut = len(group)
        if cut:  # CPU stages before the model: a pass of their own
            passes += [(group[:cut], None), (group[cut:], following)]
        else:
            passes.append((group, following))
    return [
        Segment(index, tuple(group), measure, last=index == len(passes) - 1)
        for index, (group, measure) in enumerate(passes)
    ]


@dataclass(frozen=True)
class SegmentPlan:
    """Everything a worker needs to run a segment over shards: picklable for Ray. ``run``
    tells one invocation of the run from another (see ``count_start``)."""

    recipe: Recipe
    segment: Segment
    work: Path
    run: str = ""

    def gpus(self) -> float:
        """The most GPUs one stage of this segment asks for: its map stages and the global
        stage it measures for (a global stage that opens it only applies decisions)."""
        from curation.stage import stage_class

        specs = [s for s in self.segment.stages if not is_global(s)]
        specs += [self.segment.measure] if self.segment.measure else []
        return max((stage_class(spec.name).resources.gpus for spec in specs), default=0.0)

    def build(self) -> tuple[list[MapStage], GlobalStage | None]:
        """The segment's stages and its measuring global stage, built and set up."""
        stages = [spec.build() for spec in self.segment.stages]
        for stage in stages:
            if isinstance(stage, GlobalStage):
                stage.decisions_folder = self.segment.decisions(self.work)
            stage.setup()
        measure = self.segment.measure.build() if self.segment.measure else None
        if measure is not None:
            measure.setup()
        return stages, measure  # type: ignore[return-value]


# A Ray worker that dies while it runs a shard (killed by the kernel's OOM killer or Ray's
# memory monitor, or crashed in native code) is started again and given the shard again,
# without end: a shard whose worker died this many times is not started again in the run.
MAX_STARTS = 3


def _starts_file(plan: SegmentPlan, shard: InputShard) -> Path:
    return plan.work / f"seg{plan.segment.index}" / "starts" / f"{shard.key}.json"


def count_start(plan: SegmentPlan, shard: InputShard) -> int:
    """Record that this process starts ``shard`` in this invocation of the run
    (``plan.run``) and return how many times the invocation has started it, 1 the first
    time. The record also names the host and process, for whoever looks at it."""
    path = _starts_file(plan, shard)
    count = 1
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
        if before.get("run") == plan.run:
            count = int(before["count"]) + 1
    except (OSError, ValueError, KeyError, TypeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"run": plan.run, "count": count, "host": socket.gethostname(), "pid": os.getpid()}
    write_atomic_bytes(path, json.dumps(record).encode("utf-8"), durable=False)
    return count


def forget_starts(plan: SegmentPlan, shard: InputShard) -> None:
    """Drop ``shard``'s record of starts once it has finished."""
    _starts_file(plan, shard).unlink(missing_ok=True)


def shard_folder(work: Path, shard: InputShard, segment: int = 0) -> Path:
    """The work folder of ``shard`` in ``segment`` under the run's ``_work`` folder."""
    return work / f"seg{segment}" / "shards" / shard.key


def load_result(work: Path, shard: InputShard, segment: int = 0) -> ShardResult | None:
    """The stored result of a shard finished by an earlier (or this) run, if any."""
    marker = shard_folder(work, shard, segment) / SUCCESS
    if not marker.exists():
        return None
    return ShardResult.from_json(marker.read_text(encoding="utf-8"))


def _unread_keys(stages: list[MapStage]) -> frozenset[str]:
    """The measured columns that the global stage opening a pass does not apply (never a
    row's id or text, which a stage may take as its keys: ``substring_dedup``)."""
    if not stages or not isinstance(stages[0], GlobalStage):
        return frozenset()
    stage = stages[0]
    return frozenset(stage.key_columns()) - {*stage.applied_columns(), ID, TEXT}


def _previous_batches(
    plan: SegmentPlan, shard: InputShard, unread: frozenset[str] = frozenset()
) -> Iterator[pa.Table]:
    """The rows segment ``index - 1`` kept for ``shard``, batch by batch, without the
    columns named in ``unread`` (measured keys that no stage of this pass reads)."""
    previous = load_result(plan.work, shard, plan.segment.index - 1)
    if previous is None:
        raise RuntimeError(f"{shard.label}: segment {plan.segment.index - 1} has no result")
    folder = shard_folder(plan.work, shard, plan.segment.index - 1)
    missing = [name for name, _ in previous.kept_parts if not (folder / name).exists()]
    if missing:
        raise RuntimeError(
            f"{shard.label}: pass {plan.segment.index + 1} needs the rows pass "
            f"{plan.segment.index} kept, and {folder / missing[0]} is gone (a finished run "
            "deletes them, so its passes cannot be run again piecemeal): run the command "
            "again with --overwrite"
        )
    batches = (
        pa.Table.from_batches([batch])
        for name, _ in previous.kept_parts
        for batch in pq.ParquetFile(folder / name).iter_batches(
            batch_size=plan.recipe.input.batch_rows,
            columns=[c for c in pq.read_schema(folder / name).names if c not in unread],
        )
    )
    if previous.handed == "rows":
        yield from batches
    else:
        yield from _reread(shard, plan.recipe, batches, previous.corrupt is not None)


def hands_on_keys(shard: InputShard, stages: list[MapStage], measure: GlobalStage | None) -> bool:
    """Whether the first pass over ``shard`` hands on only each row's id and measured
    keys: where the pass runs no map stage (its rows are the reader's), the shard is
    local Parquet (read again faster than its rows written and read back) and the global
    stage keys on no column of the input (``substring_dedup`` keys on the text)."""
    files = shard.members or (shard,)
    return (
        not stages
        and measure is not None
        and TEXT not in measure.key_columns()
        and all(f.format == "parquet" and not is_url(f.url) for f in files)
    )


def _reread(
    shard: InputShard, recipe: Recipe, keys: Iterator[pa.Table], corrupt: bool
) -> Iterator[pa.Table]:
    """The rows the reader kept of ``shard``, read again, each with the measured columns
    of ``keys`` (its id and keys, in the same order) beside it. The ids must agree: a
    file changed since the first pass is an error that says so. ``corrupt``: the first
    pass stopped at damage in the file, and so does this one."""
    held: list[pa.Table] = []
    count = 0

    def take(n: int) -> pa.Table:
        nonlocal count
        while count < n:
            more = next(keys, None)
            if more is None:
                break
            held.append(more)
            count += more.num_rows
        joined = pa.concat_tables(held) if held else None
        if joined is None or joined.num_rows < n:
            raise RuntimeError(_CHANGED.format(shard=shard.label))
        head, rest = joined.slice(0, n), joined.slice(n)
        held[:] = [rest] if rest.num_rows else []
        count = rest.num_rows
        return head

    rows = read_shard(shard, recipe.input)
    while True:
        try:
            batch = next(rows)
        except StopIteration:
            break
        except CorruptInputError:
            if not corrupt:
                raise
            break
        live = batch.filter(kept_mask(batch))
        if not live.num_rows:
            continue
        measured = take(live.num_rows)
        if not live[ID].equals(measured[ID]):
            raise RuntimeError(_CHANGED.format(shard=shard.label))
        for name in measured.column_names:
            if name != ID:
                live = live.append_column(measured.field(name), measured[name])
        yield live
    if count or sum(more.num_rows for more in keys):
        raise RuntimeError(_CHANGED.format(shard=shard.label))


_CHANGED = (
    "{shard}: the file reads otherwise than in the run's first pass (its rows are read "
    "again after the barrier, and their ids no longer match what was measured): it changed "
    "while the run ran; run the command again with --overwrite"
)


def process_shard(
    shard: InputShard,
    plan: SegmentPlan,
    stages: list[MapStage],
    measure: GlobalStage | None,
    on_batch: BatchCallback | None = None,
) -> ShardResult:
    """Run ``shard`` through the plan's segment and write its parts and success marker.

    ``on_batch(rows, bytes)`` is called after each batch (for progress). In segment 0 a
    corrupt file raises ``CorruptInputError`` unless the recipe says
    ``on_corrupt_file: skip``, in which case the rows read before the damage are kept and
    the damage is recorded.
    """
    recipe = plan.recipe
    first = plan.segment.index == 0
    folder = shard_folder(plan.work, shard, plan.segment.index)
    if folder.exists():  # a partial attempt of a killed run
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    # intermediate parts are always Parquet; only the last segment writes the output format
    output = (
        recipe.output
        if plan.segment.last
        else recipe.output.model_copy(
            update={"format": "parquet", "compression": recipe.output.work_compression}
        )
    )
    kept: PartWriter | PartitionedWriter = (
        PartitionedWriter(folder, "kept", output, shard.label)
        if plan.segment.last and output.partition_columns
        else PartWriter(folder, "kept", output)
    )
    dropped = PartWriter(folder, "dropped", recipe.output)
    keys_only = first and not plan.segment.last and hands_on_keys(shard, stages, measure)
    ledger = [StageStats("read")] if first else []
    ledger += [StageStats(s.name, where=s.where and s.where.condition) for s in stages]
    stage_ledger = ledger[1:] if first else ledger
    corrupt = None
    for stage in stages:
        stage.begin_shard(shard.key)

    batches = (
        read_shard(shard, recipe.input)
        if first
        else _previous_batches(plan, shard, _unread_keys(stages))
    )
    while True:
        started = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            break
        except CorruptInputError as err:
            if recipe.input.on_corrupt_file != "skip":
                raise
            corrupt = err.problem
            break
        read_seconds = time.perf_counter() - started
        batch_bytes = text_bytes(batch)
        set_aside = []
        if first:
            set_aside.append(_take_dropped(ledger[0], batch, read_seconds, batch_bytes))
            live = batch.filter(kept_mask(batch))
        else:
            live = batch
        for stage, stats in zip(stages, stage_ledger, strict=True):
            live, gone = _run_stage(stage, stats, live)
            set_aside.append(gone)
        if measure is not None:
            before = set(live.column_names)
            live = _measure(measure, live)
            if keys_only:  # the next pass reads the rest from the input again
                live = live.select([ID, *(c for c in live.column_names if c not in before)])
        kept.write(live)
        gone_rows = [t for t in set_aside if t.num_rows]
        if gone_rows:
            gone = pa.concat_tables(gone_rows, promote_options="default")
            if not recipe.output.dropped_text and TEXT in gone.column_names:
                gone = gone.drop_columns([TEXT])
            dropped.write(gone)
        if on_batch is not None:
            on_batch(batch.num_rows, batch_bytes)

    # named below the shard's folder: a partition's parts are in a folder of their own
    kept_parts = [(p.path.relative_to(folder).as_posix(), p.rows) for p in kept.close()]
    dropped_parts = [(p.path.relative_to(folder).as_posix(), p.rows) for p in dropped.close()]
    if ledger:
        check_chain(
            ledger,
            sum(rows for _, rows in kept_parts),
            sum(rows for _, rows in dropped_parts),
            where=shard.label,
        )
    result = ShardResult(
        shard.label,
        shard.key,
        kept_parts,
        dropped_parts,
        ledger,
        corrupt,
        hashing_libraries(),
        sorted(kept.seen) if isinstance(kept, PartitionedWriter) else None,
        "keys" if keys_only else "rows",
    )
    write_atomic_bytes(folder / SUCCESS, result.to_json().encode("utf-8"))
    return result


def _measure(stage: GlobalStage, live: pa.Table) -> pa.Table:
    out = stage.measure(live)
    if out.num_rows != live.num_rows:
        raise StageContractError(
            f"stage {stage.name} measured {out.num_rows} rows for {live.num_rows}: measuring "
            "must keep every row"
        )
    return out


def _run_stage(stage: MapStage, stats: StageStats, live: pa.Table) -> tuple[pa.Table, pa.Table]:
    started = time.perf_counter()
    bytes_in = text_bytes(live)
    out = stage.process(live) if stage.where is None else _process_where(stage, live, stats)
    seconds = time.perf_counter() - started
    if out.num_rows != live.num_rows:
        raise StageContractError(
            f"stage {stage.name} returned {out.num_rows} rows for {live.num_rows}: a map stage "
            "must return every row it was given and mark rejected ones with drop_reason"
        )
    out = _stage_columns_replace_input_ones(stage, out, stats)
    for name in out.column_names:
        if name not in live.column_names or name in stats.replaced_columns:
            if name not in stats.added_columns:
                stats.added_columns.append(name)
    counts = _reason_counts(out)
    wrong = [r for r in counts if not r.startswith(f"{stage.name}:")]
    if wrong:
        raise StageContractError(
            f"stage {stage.name} set drop_reason {wrong[0]!r}; its reasons must start with "
            f"'{stage.name}:'"
        )
    stats.add(live.num_rows, counts, seconds, bytes_in)
    mask = kept_mask(out)
    return out.filter(mask), out.filter(pc.invert(mask))


def _process_where(stage: MapStage, live: pa.Table, stats: StageStats) -> pa.Table:
    """``stage.process`` of the rows of ``live`` its ``where`` is true for (the others,
    where it is false or null, pass as they came: null in the stage's new columns, their
    own value in a column the stage writes anew), all in their order;
    ``stats.rows_where`` counts the rows it saw. A batch without a column the condition
    names (a field no document of it has) reads it as null there."""
    from curation.filters.sql import MissingColumns

    where = stage.where
    try:
        hit = where.matching(live)
    except MissingColumns:
        hit = pa.array(np.zeros(live.num_rows, np.bool_))
    except ValueError as err:
        raise ValueError(f"stage {stage.name}: where {err}") from None
    chosen = int(pc.sum(hit).as_py() or 0)
    stats.rows_where += chosen
    if chosen == live.num_rows:
        return stage.process(live)
    done = stage.process(live.filter(hit))
    if done.num_rows != chosen:
        return done  # _run_stage names the broken contract
    rest = live.filter(pc.invert(hit))
    # by position: a stage's column named as an input one follows it (both are there
    # until _stage_columns_replace_input_ones), and on the rows it did not see, both hold
    # the input's value
    columns = []
    for field in done.schema:
        if field.name not in rest.column_names:
            columns.append(pa.nulls(rest.num_rows, field.type))
        elif rest.schema.field(field.name).type != field.type:  # a rewritten text's type
            columns.append(rest.column(field.name).cast(field.type))
        else:
            columns.append(rest.column(field.name))
    passed = pa.Table.from_arrays(columns, schema=done.schema)
    # the rows back in their order: those the stage saw, then the others, put back
    seen = hit.to_numpy(zero_copy_only=False)
    places = np.concatenate([np.flatnonzero(seen), np.flatnonzero(~seen)])
    order = np.empty(len(places), np.int64)
    order[places] = np.arange(len(places))  # where each row's place is in the two
    return pa.concat_tables([done, passed]).take(pa.array(order))


def _stage_columns_replace_input_ones(
    stage: MapStage, out: pa.Table, stats: StageStats
) -> pa.Table:
    """``out`` with each column the stage wrote in place of an input column of the same
    name (a run over an earlier run's output, FineWeb's ``token_count``): Arrow lets a
    table hold both, which no Parquet reader can read back by name. The stage's column is
    the later one (it is appended); the names replaced go to ``stats.replaced_columns``.
    Rows dropped before the stage keep the input's value. A second ``id``, ``text`` or
    ``drop_reason`` is the stage's error."""
    names = out.column_names
    if len(set(names)) == len(names):
        return out
    keep = []
    for i, name in enumerate(names):
        if name in names[i + 1 :]:
            if name in (ID, TEXT, DROP_REASON):
                raise StageContractError(
                    f"stage {stage.name} added a second {name!r} column: a stage changes "
                    "the text, id and drop reason in place"
                )
            if name not in stats.replaced_columns:
                stats.replaced_columns.append(name)
        else:
            keep.append(i)
    return out.select(keep)


def _take_dropped(stats: StageStats, batch: pa.Table, seconds: float, bytes_in: int) -> pa.Table:
    counts = _reason_counts(batch)
    stats.add(batch.num_rows, counts, seconds, bytes_in)
    return batch.filter(pc.invert(kept_mask(batch)))


def _reason_counts(table: pa.Table) -> dict[str, int]:
    reasons = table[DROP_REASON]
    if reasons.null_count == len(reasons):
        return {}
    counts: dict[str, Any] = {}
    for entry in pc.value_counts(reasons.drop_null()).to_pylist():
        counts[entry["values"]] = entry["counts"]
    return counts
