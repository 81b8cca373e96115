"""A first pass of only a global stage's measuring, over local Parquet, hands on each
row's id and keys, and the pass after the barrier reads the rows from the input again:
the same files and counts as handing on whole rows, on every executor and on resume; a
file that reads otherwise the second time is an error that says so."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.runtime import shard as shard_module
from curation.runtime.shard import ShardResult
from tests.conftest import on_every_executor, read_output, recipe_of, run_local
from tests.runtime.test_resume import make_shards

RECIPES = {
    "exact_dedup": "stages:\n  - exact_dedup: {}\n  - length_filter: {min_chars: 300}\n",
    "minhash_dedup": "stages:\n  - minhash_dedup: {}\n",
    "sample then dedup": "stages:\n  - sample: {rate: 0.5}\n  - exact_dedup: {}\n",
    "substring_dedup": "stages:\n  - substring_dedup: {min_length: 200}\n",
}


def handed(out: Path) -> list[str]:
    """What each shard's first pass handed on (``rows`` or ``keys``)."""
    markers = sorted((out / "_work" / "seg0" / "shards").glob("*/_SUCCESS.json"))
    return [ShardResult.from_json(m.read_text()).handed for m in markers]


def outputs(out: Path, stats: dict) -> tuple:
    counts = [
        {k: s[k] for k in ("rows_in", "rows_kept", "dropped_by_reason")} for s in stats["stages"]
    ]
    return read_output(out, "kept"), read_output(out, "dropped"), stats["rows"], counts


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_keys_handed_on_give_the_rows_handed_on(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    make_shards(c4_path, tmp_path / "in", 4)
    # a duplicate of another shard's document, so that the dedups drop across shards
    first = pq.read_table(tmp_path / "in" / "c4-000.parquet").slice(0, 3)
    pq.write_table(first, tmp_path / "in" / "c4-009.parquet")
    recipe = recipe_of(RECIPES[name], tmp_path / "in")
    keys = run_local(recipe, tmp_path / "keys")
    expected = "rows" if name in ("sample then dedup", "substring_dedup") else "keys"
    assert set(handed(tmp_path / "keys")) == {expected}  # shards: pieces of row groups
    monkeypatch.setattr(shard_module, "hands_on_keys", lambda *args: False)
    rows = run_local(recipe, tmp_path / "rows")
    assert set(handed(tmp_path / "rows")) == {"rows"}
    mine, theirs = outputs(tmp_path / "keys", keys), outputs(tmp_path / "rows", rows)
    assert mine[0].schema == theirs[0].schema and mine[1].schema == theirs[1].schema
    assert mine == theirs
    assert keys["rows"]["dropped"] > 0


def test_keys_are_all_a_pass_hands_on(c4_path: Path, tmp_path: Path) -> None:
    """The parts the first pass wrote hold ids and the dedup's hashes, not the text."""
    make_shards(c4_path, tmp_path / "in", 2)
    recipe = recipe_of(RECIPES["exact_dedup"], tmp_path / "in")
    seen: list[list[str]] = []
    real = shard_module._reread

    def spy(shard, recipe, keys, corrupt):  # type: ignore[no-untyped-def]
        def watched():  # type: ignore[no-untyped-def]
            for table in keys:
                seen.append(table.column_names)
                yield table

        return real(shard, recipe, watched(), corrupt)

    shard_module._reread, saved = spy, real
    try:
        run_local(recipe, tmp_path / "out")
    finally:
        shard_module._reread = saved
    assert seen and all(names[0] == "id" and "text" not in names for names in seen)


def test_the_same_on_every_executor(c4_path: Path, tmp_path: Path) -> None:
    make_shards(c4_path, tmp_path / "in", 4)
    outputs_by = on_every_executor(recipe_of(RECIPES["exact_dedup"], tmp_path / "in"), tmp_path)
    first = next(iter(outputs_by.values()))
    assert all(found == first for found in outputs_by.values())
    assert set(handed(tmp_path / "ray2")) == {"keys"}


def test_jsonl_input_hands_on_rows(c4_path: Path, tmp_path: Path) -> None:
    run_local(recipe_of(RECIPES["exact_dedup"], c4_path), tmp_path / "out")
    assert handed(tmp_path / "out") == ["rows"]  # parsed again would cost more


def test_a_resumed_second_pass_reads_the_input_again(c4_path: Path, tmp_path: Path) -> None:
    make_shards(c4_path, tmp_path / "in", 4)
    recipe = recipe_of(RECIPES["exact_dedup"], tmp_path / "in")
    whole = run_local(recipe, tmp_path / "whole")
    real = shard_module.process_shard
    calls = {"n": 0}

    def dies_in_pass_two(shard, plan, *args, **kwargs):  # type: ignore[no-untyped-def]
        if plan.segment.index == 1:
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("killed")
        return real(shard, plan, *args, **kwargs)

    from curation.runtime import executors

    executors.process_shard, saved = dies_in_pass_two, real
    try:
        with pytest.raises(RuntimeError, match="killed"):
            run_local(recipe, tmp_path / "out")
    finally:
        executors.process_shard = saved
    again = run_local(recipe, tmp_path / "out")
    shards = again["shards"]["total"]
    assert again["shards"]["resumed"] == shards + 2  # pass 1 whole, 2 shards of pass 2
    assert outputs(tmp_path / "out", again) == outputs(tmp_path / "whole", whole)


def test_a_file_that_reads_otherwise_is_named(c4_path: Path, tmp_path: Path) -> None:
    make_shards(c4_path, tmp_path / "in", 1)
    [path] = (tmp_path / "in").iterdir()
    recipe = recipe_of("input: {id_field: id}\n" + RECIPES["exact_dedup"], tmp_path / "in")
    table = pq.read_table(path)
    table = table.append_column("id", pa.array([f"doc-{i}" for i in range(table.num_rows)]))
    pq.write_table(table, path)
    from curation.io.inputs import resolve_inputs

    [shard] = resolve_inputs([str(path)], "parquet")
    keys = [pa.table({"id": [f"doc-{i}" for i in range(5)] + ["other"], "_h": list(range(6))})]
    with pytest.raises(RuntimeError, match="reads otherwise than in the run's first pass"):
        list(shard_module._reread(shard, recipe, iter(keys), False))
    short = [pa.table({"id": ["doc-0"], "_h": [0]})]
    with pytest.raises(RuntimeError, match="--overwrite"):
        list(shard_module._reread(shard, recipe, iter(short), False))
