"""One input shard through the fused map stages: the unit of work of every executor.

For each batch the reader yields, the map stages run one after the other on the rows
still live (no ``drop_reason``); rows a stage drops are set aside at once, so later
stages never see them. Kept rows stream to ``kept-*`` parts and dropped rows to
``dropped-*`` parts under the shard's work folder; ``_SUCCESS.json`` is written last,
atomically, so a shard either has a complete result or is done again on resume.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curation.batch import DROP_REASON, kept_mask, text_bytes
from curation.io.inputs import InputShard
from curation.io.readers import CorruptInputError, read_shard
from curation.io.writers import PartWriter, write_atomic_bytes
from curation.recipe import Recipe
from curation.runtime.ledger import StageStats, check_chain
from curation.stage import MapStage

SUCCESS = "_SUCCESS.json"

BatchCallback = Callable[[int, int], None]


class StageContractError(RuntimeError):
    """A stage broke the map-stage contract (row count, reason prefix)."""


@dataclass(frozen=True)
class ShardResult:
    """What one finished shard produced: parts (file name, rows) and per-stage stats."""

    url: str
    key: str
    kept_parts: list[tuple[str, int]]
    dropped_parts: list[tuple[str, int]]
    stages: list[StageStats]
    corrupt: str | None = None

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
        )


def shard_folder(work: Path, shard: InputShard) -> Path:
    """The work folder of ``shard`` under the run's ``_work`` folder."""
    return work / "shards" / shard.key


def load_result(work: Path, shard: InputShard) -> ShardResult | None:
    """The stored result of a shard finished by an earlier (or this) run, if any."""
    marker = shard_folder(work, shard) / SUCCESS
    if not marker.exists():
        return None
    return ShardResult.from_json(marker.read_text(encoding="utf-8"))


def build_stages(recipe: Recipe) -> list[MapStage]:
    """The recipe's stages, built and set up (models loaded) for one worker."""
    stages = [spec.build() for spec in recipe.stages]
    for stage in stages:
        stage.setup()
    return stages


def process_shard(
    shard: InputShard,
    recipe: Recipe,
    stages: list[MapStage],
    work: Path,
    on_batch: BatchCallback | None = None,
) -> ShardResult:
    """Read ``shard``, run the fused ``stages``, write its parts and its success marker.

    ``on_batch(rows, bytes)`` is called after each batch (for progress). A corrupt file
    raises ``CorruptInputError`` unless the recipe says ``on_corrupt_file: skip``, in which
    case the rows read before the damage are kept and the damage is recorded.
    """
    folder = shard_folder(work, shard)
    if folder.exists():  # a partial attempt of a killed run
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    kept = PartWriter(folder, "kept", recipe.output)
    dropped = PartWriter(folder, "dropped", recipe.output)
    ledger = [StageStats("read")] + [StageStats(stage.name) for stage in stages]
    corrupt = None

    batches = read_shard(shard, recipe.input)
    while True:
        started = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            break
        except CorruptInputError as err:
            if recipe.input.on_corrupt_file != "skip":
                raise
            corrupt = str(err)
            break
        read_seconds = time.perf_counter() - started
        batch_bytes = text_bytes(batch)
        set_aside = [_take_dropped(ledger[0], batch, read_seconds, batch_bytes)]
        live = batch.filter(kept_mask(batch))
        for stage, stats in zip(stages, ledger[1:], strict=True):
            live, gone = _run_stage(stage, stats, live)
            set_aside.append(gone)
        kept.write(live)
        gone_rows = [t for t in set_aside if t.num_rows]
        if gone_rows:
            dropped.write(pa.concat_tables(gone_rows, promote_options="default"))
        if on_batch is not None:
            on_batch(batch.num_rows, batch_bytes)

    kept_parts = [(p.path.name, p.rows) for p in kept.close()]
    dropped_parts = [(p.path.name, p.rows) for p in dropped.close()]
    check_chain(
        ledger,
        sum(rows for _, rows in kept_parts),
        sum(rows for _, rows in dropped_parts),
        where=shard.url,
    )
    result = ShardResult(shard.url, shard.key, kept_parts, dropped_parts, ledger, corrupt)
    write_atomic_bytes(folder / SUCCESS, result.to_json().encode("utf-8"))
    return result


def _run_stage(stage: MapStage, stats: StageStats, live: pa.Table) -> tuple[pa.Table, pa.Table]:
    started = time.perf_counter()
    bytes_in = text_bytes(live)
    out = stage.process(live)
    seconds = time.perf_counter() - started
    if out.num_rows != live.num_rows:
        raise StageContractError(
            f"stage {stage.name} returned {out.num_rows} rows for {live.num_rows}: a map stage "
            "must return every row it was given and mark rejected ones with drop_reason"
        )
    for name in out.column_names:
        if name not in live.column_names and name not in stats.added_columns:
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
