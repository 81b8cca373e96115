"""Accounting invariants: every row read ends in kept/ or dropped/ with its reason."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation.io.inputs import InputShard
from curation.recipe import parse_recipe
from curation.runtime.ledger import AccountingError, StageStats, check_chain
from curation.runtime.shard import SegmentPlan, StageContractError, plan_segments, process_shard
from curation.stage import MapStage
from tests.conftest import read_output, recipe_of, run_local

documents = st.lists(
    st.one_of(st.none(), st.text(max_size=60), st.just("   ")), min_size=0, max_size=120
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=documents,
    min_chars=st.integers(0, 40),
    rate=st.floats(0.05, 1.0),
    batch_rows=st.integers(1, 50),
    shard_rows=st.integers(1, 60),
)
def test_rows_in_equal_kept_plus_dropped(
    tmp_path_factory: pytest.TempPathFactory,
    texts: list[str | None],
    min_chars: int,
    rate: float,
    batch_rows: int,
    shard_rows: int,
) -> None:
    folder = tmp_path_factory.mktemp("ledger")
    path = folder / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    recipe = recipe_of(
        f"input: {{batch_rows: {batch_rows}}}\n"
        f"stages:\n  - length_filter: {{min_chars: {min_chars}}}\n"
        f"  - sample: {{rate: {rate}, seed: 1}}\noutput: {{shard_rows: {shard_rows}}}\n",
        path,
    )
    stats = run_local(recipe, folder / "out")
    kept, dropped = read_output(folder / "out", "kept"), read_output(folder / "out", "dropped")
    assert kept.num_rows + dropped.num_rows == len(texts)
    assert stats["rows"] == {"read": len(texts), "kept": kept.num_rows, "dropped": dropped.num_rows}
    if dropped.num_rows:
        assert dropped["drop_reason"].null_count == 0
        by_reason = Counter(dropped["drop_reason"].to_pylist())
        recorded: Counter[str] = Counter()
        for stage in stats["stages"]:
            recorded.update(stage["dropped_by_reason"])
        assert by_reason == recorded
    ids = (kept["id"].to_pylist() if kept.num_rows else []) + (
        dropped["id"].to_pylist() if dropped.num_rows else []
    )
    assert sorted(ids) == sorted(f"docs.jsonl/{i}" for i in range(len(texts)))


def test_check_chain_catches_lost_rows() -> None:
    read = StageStats("read", rows_in=10, rows_kept=10)
    stage = StageStats("f", rows_in=10, rows_kept=7, dropped=Counter({"f:x": 3}))
    check_chain([read, stage], kept_written=7, dropped_written=3, where="t")
    with pytest.raises(AccountingError, match="t: 6 rows were written to kept/"):
        check_chain([read, stage], kept_written=6, dropped_written=3, where="t")
    leaky = StageStats("f", rows_in=10, rows_kept=6, dropped=Counter({"f:x": 3}))
    with pytest.raises(AccountingError, match="stage f took 10 rows but kept 6 and dropped 3"):
        check_chain([read, leaky], kept_written=6, dropped_written=3, where="t")
    skipped = StageStats("f", rows_in=9, rows_kept=9)
    with pytest.raises(AccountingError, match="the stage before it kept 10"):
        check_chain([read, skipped], kept_written=9, dropped_written=0, where="t")


class _LosesRows(MapStage):
    name = "loses_rows"
    help = "a broken stage"

    def process(self, table: pa.Table) -> pa.Table:
        return table.slice(1)


class _WrongReason(MapStage):
    name = "wrong_reason"
    help = "a broken stage"

    def process(self, table: pa.Table) -> pa.Table:
        from curation.batch import with_drop_reason

        return with_drop_reason(table, pa.array([True] * table.num_rows), "other:rule")


class _SecondText(MapStage):
    name = "second_text"
    help = "a broken stage"

    def process(self, table: pa.Table) -> pa.Table:
        return table.append_column("text", table["text"])


@pytest.mark.parametrize(
    "stage_cls, message",
    [
        (_LosesRows, "returned 999 rows for 1000"),
        (_WrongReason, "must start with 'wrong_reason:'"),
        (_SecondText, "added a second 'text' column"),
    ],
)
def test_stage_contract_is_enforced(
    stage_cls: type[MapStage], message: str, c4_path: Path, tmp_path: Path
) -> None:
    recipe = parse_recipe("input: {batch_rows: 5000}\nstages: []\n")
    shard = InputShard(str(c4_path), "c4", "jsonl")
    plan = SegmentPlan(recipe, plan_segments(recipe)[0], tmp_path)
    stages = [*plan.build()[0], stage_cls(stage_cls.Params())]
    with pytest.raises(StageContractError, match=message):
        process_shard(shard, plan, stages, None)
