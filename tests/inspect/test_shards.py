"""`curate inspect`: the funnel, score summaries, threshold lines and document browsing
agree with the rows themselves, and bad questions get clear errors."""

from __future__ import annotations

import itertools
import json
import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from curation.cli import main
from curation.inspect import shards
from tests.conftest import damaged_shards, read_output, recipe_of, run_local, shared_file

RECIPE = """
stages:
  - length_filter: {min_chars: 200}
  - threshold: {column: length_chars, top_fraction: 0.5}
"""


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inspect") / "out"
    run_local(recipe_of(RECIPE, shared_file("web/c4-sample-1000.jsonl.gz")), out)
    return out


@pytest.fixture(scope="module")
def rows(run_folder: Path) -> pa.Table:
    return pa.concat_tables([read_output(run_folder, "kept"), read_output(run_folder, "dropped")])


def test_funnel_and_summaries_match_the_rows(run_folder: Path, rows: pa.Table) -> None:
    source = shards.open_source(run_folder)
    assert source.is_run
    stages = shards.funnel(source)
    assert [s["name"] for s in stages] == ["read", "length_filter", "threshold"]
    reasons = rows["drop_reason"].to_pylist()
    for s in stages[1:]:
        for reason, n in s["dropped_by_reason"].items():
            assert reasons.count(reason) == n
    assert stages[-1]["rows_kept"] == reasons.count(None)

    columns = shards.score_columns(source.schema())
    assert columns == ["length_chars"]  # threshold_rank is a rank, not a score
    summary = shards.summarize(source.scan(), columns)["length_chars"]
    values = np.array(rows["length_chars"].to_pylist(), dtype=float)
    assert summary["count"] == len(values) and summary["nulls"] == 0
    assert summary["mean"] == pytest.approx(values.mean())
    for q, v in summary["quantiles"].items():
        assert v == pytest.approx(np.quantile(values, q))
    hist = summary["histogram"]
    assert sum(hist["kept"]) + sum(hist["dropped"]) == len(values)
    assert sum(hist["kept"]) == reasons.count(None)
    assert hist["edges"][0] == pytest.approx(np.quantile(values, 0.01))
    # an integer column's sums, over every row and the kept ones, as stats.json has them
    kept_values = [v for v, r in zip(values, reasons, strict=True) if r is None]
    assert summary["sum"] == int(values.sum()) and summary["kept_sum"] == int(sum(kept_values))
    recorded = source.stats["stages"][1]["summaries"]["length_chars"]
    assert (summary["sum"], summary["kept_sum"]) == (recorded["sum"], recorded["kept_sum"])

    kept = read_output(run_folder, "kept")["length_chars"].to_pylist()
    lines = shards.threshold_lines(source, columns)
    assert lines == {"length_chars": [("threshold cut", float(min(kept)))]}


def test_a_single_shard_counts_its_own_reasons(run_folder: Path) -> None:
    part = sorted((run_folder / "dropped").glob("*.parquet"))[0]
    table = pq.read_table(part)
    stages = shards.funnel(shards.open_source(part))
    dropped = sum(sum(s["dropped_by_reason"].values()) for s in stages)
    assert dropped == table.num_rows
    assert stages[0]["rows_in"] == table.num_rows


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([None, "a:x", "a:y", "b:z", "c:w"]), min_size=1, max_size=60))
def test_funnel_accounting_holds_for_any_shard(
    tmp_path_factory: pytest.TempPathFactory, reasons: list[str | None]
) -> None:
    path = tmp_path_factory.mktemp("shard") / "part.parquet"
    ids = [f"d{i}" for i in range(len(reasons))]
    pq.write_table(pa.table({"id": ids, "text": ids, "drop_reason": reasons}), path)
    stages = shards.funnel(shards.open_source(path))
    assert stages[0]["rows_in"] == len(reasons)
    for before, after in itertools.pairwise(stages):
        assert after["rows_in"] == before["rows_kept"]
    for s in stages:
        assert s["rows_in"] == s["rows_kept"] + sum(s["dropped_by_reason"].values())
    assert stages[-1]["rows_kept"] == reasons.count(None)


MAX = sys.float_info.max


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.none(),
                st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, 1.0, 0.1]),
                st.floats(allow_nan=False, allow_infinity=False),
                st.floats(-1e6, 1e6, allow_nan=False),
                st.integers(-5, 5).map(float),
            ),
            st.booleans(),
        ),
        min_size=1,
        max_size=300,
    ),
    st.integers(1, 25),
)
@example(cells=[(1.7e308, True), (1.7e308, False), (-1.0, True)], bins=4)  # sums past the limit
@example(cells=[(1.0, False), (MAX, False), (-MAX, False)], bins=1)  # cancels: the mean is 1/3
@example(cells=[(0.0, False), (MAX, False), (-3.67e306, False)], bins=1)  # edges overflow
@example(cells=[(MAX, False), (-9.98e291, False)], bins=1)  # numpy's quantiles overflow
@example(cells=[(0.0, True), (1.7976931348623125e308, True), (MAX, True)], bins=3)  # linspace's too
def test_summaries_are_numpys_statistics_of_the_finite_values(
    tmp_path_factory: pytest.TempPathFactory,
    cells: list[tuple[float | None, bool]],
    bins: int,
) -> None:
    path = tmp_path_factory.mktemp("scores") / "part.parquet"
    values = [v for v, _ in cells]
    reasons = [None if kept else "f:low" for _, kept in cells]
    pq.write_table(
        pa.table({"score": pa.array(values, pa.float64()), "drop_reason": reasons}), path
    )
    summary = shards.summarize(shards.open_source(path).scan(), ["score"], bins)["score"]

    data = np.array([np.nan if v is None else v for v in values])
    kept = np.array([kept for _, kept in cells])
    finite = np.isfinite(data)
    assert summary["nulls"] == values.count(None)
    assert summary["count"] == len(values) - values.count(None)
    if not finite.any():
        assert summary["mean"] is None and summary["histogram"] is None
        return
    good = data[finite]
    # exact: values near the float limit sum past it in floating point
    assert summary["mean"] == pytest.approx(float(sum(map(Fraction, good.tolist())) / len(good)))
    # numpy's, except where its interpolation overflows (values of both signs near the
    # float limit): there the exact one
    with np.errstate(over="ignore", invalid="ignore"):
        expected = np.quantile(good, shards.QUANTILES)
    ordered = sorted(map(Fraction, good.tolist()))
    pairs = zip(summary["quantiles"].values(), expected, shards.QUANTILES, strict=True)
    for got, want, q in pairs:
        if np.isfinite(want):
            assert got == want
        else:
            at = Fraction(q) * (len(ordered) - 1)
            below = int(at)
            above = min(below + 1, len(ordered) - 1)
            exact = ordered[below] + (ordered[above] - ordered[below]) * (at - below)
            assert got == pytest.approx(float(exact), rel=1e-12)
    hist = summary["histogram"]
    edges = np.array(hist["edges"])
    assert len(edges) == bins + 1 and edges[-1] > edges[0]
    clipped = np.clip(good, edges[0], edges[-1])
    assert hist["kept"] == np.histogram(clipped[kept[finite]], edges)[0].tolist()
    assert hist["dropped"] == np.histogram(clipped[~kept[finite]], edges)[0].tolist()


def test_browse_where_sort_and_around(run_folder: Path, rows: pa.Table) -> None:
    source = shards.open_source(run_folder)
    lengths = np.array(rows["length_chars"].to_pylist())
    found = shards.browse(source, where="length_chars > 3000 AND drop_reason IS NULL", limit=10_000)
    reasons = rows["drop_reason"].to_pylist()
    expected = sum(1 for n, r in zip(lengths, reasons, strict=True) if n > 3000 and r is None)
    assert found.height == expected > 0
    assert found["drop_reason"].null_count() == found.height

    top = shards.browse(source, sort="-length_chars", limit=3)
    assert top["length_chars"].to_list() == sorted(lengths, reverse=True)[:3]

    cut = float(np.median(lengths))
    near = shards.browse(source, around=f"length_chars={cut}", limit=6)
    below = near.filter(near["position"] == "below")["length_chars"].to_list()
    above = near.filter(near["position"] == "above")["length_chars"].to_list()
    assert below == sorted(lengths[lengths < cut])[-3:]
    assert above == sorted(lengths[lengths >= cut])[:3]

    dropped = shards.browse(source, status="dropped", limit=10_000)
    assert dropped.height == sum(r is not None for r in reasons)


def test_bad_questions_are_clear_errors(run_folder: Path, tmp_path: Path) -> None:
    source = shards.open_source(run_folder)
    with pytest.raises(shards.InspectError, match=r"no column 'lenght'.*length_chars"):
        shards.browse(source, sort="lenght")
    with pytest.raises(shards.InspectError) as typo:
        shards.browse(source, where="drop_reason IS NULL AND lenght_chars > 3")
    # the misspelt column, the one meant, and the columns once (polars lists them too)
    message = str(typo.value)
    assert "not a usable SQL expression: no column 'lenght_chars'" in message
    assert "(did you mean 'length_chars'?)" in message
    assert message.count("length_chars") == 2
    with pytest.raises(shards.InspectError, match="COLUMN=NUMBER"):
        shards.browse(source, around="length_chars=high")
    with pytest.raises(shards.InspectError, match=r"'text' holds String, not numbers.*length"):
        shards.browse(source, around="text=3")
    with pytest.raises(shards.InspectError, match="does not exist"):
        shards.open_source(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(shards.InspectError, match="no Parquet files"):
        shards.open_source(tmp_path / "empty")


def test_cli_inspect(run_folder: Path) -> None:
    runner = CliRunner()
    summary = runner.invoke(main, ["inspect", str(run_folder)])
    assert summary.exit_code == 0, summary.output
    assert "length_filter:too_short" in summary.output and "threshold cut" in summary.output
    assert "p50" in summary.output
    sums = shards.summarize(shards.open_source(run_folder).scan(), ["length_chars"])
    kept_sum = sums["length_chars"]["kept_sum"]
    assert f"sum {sums['length_chars']['sum']:,} ({kept_sum:,} kept)" in summary.output
    near = runner.invoke(
        main, ["inspect", str(run_folder), "--around", "length_chars=1000", "--limit", "4"]
    )
    assert near.exit_code == 0 and near.output.count("length_chars=") == 4
    bad = runner.invoke(main, ["inspect", str(run_folder), "--where", "nope >"])
    assert bad.exit_code != 0 and "SQL" in bad.output


def test_sums_do_not_wrap_in_a_narrow_integer_type(tmp_path: Path) -> None:
    """polars sums in the column's own type; a uint32 (cluster sizes) or int32 column's sum
    passes 2**32 on a few billion documents, so the sums are taken as 64-bit integers,
    in `curate inspect` and in stats.json's summaries."""
    from curation.recipe import parse_recipe
    from curation.runtime.run import _summaries

    big = 2**32 - 1
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "text": ["x", "y", "z"],
            "drop_reason": [None, None, "s:r"],
            "size": pa.array([big, big, 5], pa.uint32()),
            "words": pa.array([2**31 - 1, 2**31 - 1, 1], pa.int32()),
        }
    )
    for kind, part in (("kept", table.slice(0, 2)), ("dropped", table.slice(2))):
        (tmp_path / kind).mkdir()
        pq.write_table(part, tmp_path / kind / "part-00000.parquet")
    seen = shards.summarize(shards.open_source(tmp_path).scan(), ["size", "words"])
    assert (seen["size"]["sum"], seen["size"]["kept_sum"]) == (2 * big + 5, 2 * big)
    assert (seen["words"]["sum"], seen["words"]["kept_sum"]) == (2**32 - 1, 2**32 - 2)
    stats = {"stages": [{"added_columns": ["size", "words"]}]}
    _summaries(tmp_path, stats, parse_recipe("stages: []\n"))
    recorded = stats["stages"][0]["summaries"]
    assert (recorded["size"]["sum"], recorded["size"]["kept_sum"]) == (2 * big + 5, 2 * big)
    assert (recorded["words"]["sum"], recorded["words"]["kept_sum"]) == (2**32 - 1, 2**32 - 2)


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_a_run_written_as_json_lines_reads_as_its_parquet_twin(
    run_folder: Path, tmp_path: Path, compression: str
) -> None:
    """A run written with `output: {format: jsonl}` is inspected, reported, summed in
    stats.json and exported as the same run written as Parquet."""
    out = tmp_path / "lines"
    recipe = RECIPE + f"output: {{format: jsonl, compression: {compression}}}\n"
    stats = run_local(recipe_of(recipe, shared_file("web/c4-sample-1000.jsonl.gz")), out)
    assert not any(p.name.endswith(".parquet") for p in out.rglob("part-*"))
    twin, lines = shards.open_source(run_folder), shards.open_source(out)
    assert lines.is_run and len(lines.files) == 2
    assert shards.funnel(lines) == shards.funnel(twin)
    assert shards.score_columns(lines.schema()) == ["length_chars"]
    seen = shards.summarize(lines.scan(), ["length_chars"])
    assert seen == shards.summarize(twin.scan(), ["length_chars"])
    assert shards.threshold_lines(lines, ["length_chars"]) == shards.threshold_lines(
        twin, ["length_chars"]
    )
    asked = {"where": "length_chars < 300", "sort": "-length_chars", "limit": 5}
    assert shards.browse(lines, **asked)["id"].to_list() == (
        shards.browse(twin, **asked)["id"].to_list()
    )
    recorded = json.loads((run_folder / "stats.json").read_text())
    assert [s.get("summaries") for s in stats["stages"]] == [
        s.get("summaries") for s in recorded["stages"]
    ]
    runner = CliRunner()
    shown = runner.invoke(main, ["inspect", str(out)])
    assert shown.exit_code == 0 and "2 JSON Lines file(s)" in shown.output
    assert "length_filter:too_short" in shown.output and "sum " in shown.output
    page = runner.invoke(main, ["report", str(out), "-o", str(tmp_path / "report.html")])
    assert page.exit_code == 0, page.output
    one = runner.invoke(main, ["inspect", str(lines.files[0])])
    assert one.exit_code == 0 and "1 JSON Lines file(s)" in one.output
    # exported through Parquet copies of its parts: the same rows as the Parquet run's
    for run, folder in ((out, "lines-export"), (run_folder, "parquet-export")):
        done = runner.invoke(main, ["export", str(run), "--to-folder", str(tmp_path / folder)])
        assert done.exit_code == 0, done.output
    exported = [pq.read_table(tmp_path / f / "data") for f in ("lines-export", "parquet-export")]
    assert exported[0].num_rows == read_output(run_folder, "kept").num_rows
    assert exported[0].to_pylist() == exported[1].to_pylist()
    assert not list(tmp_path.glob(".curation-export-*"))  # the copies are gone
    part = out / "kept" / lines.files[0].name
    part.write_bytes(b'{"id": "a", "text": "cut sh\n')  # a damaged part is named
    damaged = runner.invoke(main, ["inspect", str(out)])
    assert damaged.exit_code != 0
    assert f"{part}: cannot be read as JSON Lines" in " ".join(damaged.output.split())
    damaged = runner.invoke(main, ["export", str(out), "--to-folder", str(tmp_path / "bad")])
    assert damaged.exit_code != 0
    assert f"{part}: cannot be read as JSON Lines" in " ".join(damaged.output.split())
    assert not list(tmp_path.glob(".curation-export-*"))


def test_a_run_of_no_document_shows_its_empty_funnel(tmp_path: Path) -> None:
    """An empty input makes a run with no part at all: inspect and report show its funnel
    of zeros (before: "no kept/ or dropped/ parts yet"), export says there is nothing."""
    (tmp_path / "empty.jsonl").write_bytes(b"")
    run_local(recipe_of(RECIPE, tmp_path / "empty.jsonl"), tmp_path / "run")
    source = shards.open_source(tmp_path / "run")
    assert source.files == [] and source.scan().collect().height == 0
    assert [s["rows_in"] for s in shards.funnel(source)] == [0, 0, 0]
    runner = CliRunner()
    shown = runner.invoke(main, ["inspect", str(tmp_path / "run")])
    assert shown.exit_code == 0 and "length_filter" in shown.output, shown.output
    found = runner.invoke(main, ["inspect", str(tmp_path / "run"), "--where", "id = 'a'"])
    assert found.exit_code == 0 and "no documents match" in found.output
    page = runner.invoke(main, ["report", str(tmp_path / "run"), "-o", str(tmp_path / "r.html")])
    assert page.exit_code == 0 and "No document was dropped" in (tmp_path / "r.html").read_text()
    out = runner.invoke(main, ["export", str(tmp_path / "run"), "--to-folder", str(tmp_path / "x")])
    assert out.exit_code != 0 and "no kept rows to export (the run read no document)" in out.output


UNFINISHED = """
input: {unit_bytes: 0}
stages:
  - length_filter: {min_chars: 200}
  - exact_dedup: {}
  - sample: {rate: 0.5}
"""


@pytest.mark.parametrize("output", ["parquet", "jsonl"])
def test_an_unfinished_run_shows_the_shards_it_has_finished(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    # Before, a killed (or still running) run folder, with only _work/, was read as a
    # folder of Parquet files: every part of every pass mixed, the handed-on rows
    # counted as kept. It is now the finished shards through the deepest pass reached.
    import gzip
    import shutil

    from curation.runtime import run as run_module

    rows = [json.loads(line) for line in gzip.open(c4_path, "rt", encoding="utf-8")]
    inputs = tmp_path / "in"
    inputs.mkdir()
    for part in range(4):
        pq.write_table(pa.Table.from_pylist(rows[part::4]), inputs / f"p{part}.parquet")
    # the rows pass 1 hands to pass 2 are kept, as they are while a run is under way
    monkeypatch.setattr(run_module, "_drop_handed_on_rows", lambda *args: None)
    out = tmp_path / "out"
    recipe = UNFINISHED + f"output: {{format: {output}}}\n"
    stats = run_local(recipe_of(recipe, inputs), out)
    for name in ("stats.json", "recipe.yaml", "kept", "dropped"):  # killed before the finish
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    def seen() -> tuple[shards.Source, list[dict], int, int]:
        source = shards.open_source(out)
        reasons = source.scan().select("drop_reason").collect()["drop_reason"]
        return source, shards.funnel(source), reasons.null_count(), len(reasons)

    # every shard through both passes: what the finished run said
    source, funnel, kept, total = seen()
    assert source.unfinished and "4 of 4 shards finished pass 2 of 2" in source.unfinished
    assert funnel == [
        {k: s[k] for k in ("name", "rows_in", "rows_kept", "dropped_by_reason")}
        for s in stats["stages"]
    ]
    assert (kept, total) == (stats["rows"]["kept"], 1000)

    # two shards lost pass 2: the other two, through both passes
    work = out / "_work"
    lost = sorted((work / "seg1" / "shards").iterdir())[:2]
    for folder in lost:
        (folder / "_SUCCESS.json").unlink()
    source, funnel, kept, total = seen()
    assert "2 of 4 shards finished pass 2 of 2" in source.unfinished
    assert funnel[0]["rows_in"] == total == 500
    for stage in funnel:
        assert stage["rows_in"] == stage["rows_kept"] + sum(stage["dropped_by_reason"].values())
    assert [s["name"] for s in funnel] == ["read", "length_filter", "exact_dedup", "sample"]
    assert funnel[-1]["rows_kept"] == kept

    # no shard through pass 2: pass 1's, its kept rows not yet deduplicated or sampled
    shutil.rmtree(work / "seg1")
    source, funnel, kept, total = seen()
    assert "4 of 4 shards finished pass 1 of 2" in source.unfinished
    assert "not yet through the passes after it" in source.unfinished
    assert [s["name"] for s in funnel] == ["read", "length_filter"]
    assert (funnel[0]["rows_in"], funnel[-1]["rows_kept"]) == (total, kept) == (1000, 955)

    result = CliRunner().invoke(main, ["inspect", str(out)])
    assert result.exit_code == 0 and "run the same `curate run` command" in result.output
    # the rows a pass hands on are Parquet whatever the output's format
    kinds = "Parquet" if output == "parquet" else r"Parquet and \d+ JSON Lines"
    assert re.match(rf"{re.escape(str(out))}: \d+ {kinds} file\(s\)\n", result.output)
    result = CliRunner().invoke(main, ["export", str(out), "--to-folder", str(tmp_path / "e")])
    assert result.exit_code != 0 and "finish it first" in result.output

    for success in work.glob("seg0/shards/*/_SUCCESS.json"):
        success.unlink()
    with pytest.raises(shards.InspectError, match="has finished no shard yet"):
        shards.open_source(out)


@pytest.mark.parametrize("damage", ["footer", "page"])
def test_a_file_that_cannot_be_read_is_named(tmp_path: Path, damage: str) -> None:
    """A folder of shards, one cut short (no footer) or with a damaged page: inspect and
    report say which file cannot be read and what to do, without a traceback."""
    table = pa.table({"id": [f"d{i}" for i in range(3000)], "score": [i / 7 for i in range(3000)]})
    folder = damaged_shards(tmp_path / "shards", table, damage)
    runner = CliRunner()
    for args in (
        ["inspect", str(folder)],
        ["inspect", str(folder), "--sort", "-score"],
        ["report", str(folder), "-o", str(tmp_path / "r.html")],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert "b.parquet: cannot be read as Parquet" in result.output, (args, result.output)
        assert "replace or remove it" in result.output


def expected_groups(rows: pa.Table, key: object) -> dict[object, dict]:
    """Per group of ``key(row)``: documents, kept, characters and kept characters, and
    every drop reason's count, one row at a time."""
    out: dict[object, dict] = {}
    for row in rows.to_pylist():
        group = out.setdefault(
            key(row), {"documents": 0, "kept": 0, "chars": 0, "kept_chars": 0, "reasons": {}}
        )
        group["documents"] += 1
        group["chars"] += len(row["text"])
        if row["drop_reason"] is None:
            group["kept"] += 1
            group["kept_chars"] += len(row["text"])
        else:
            group["reasons"][row["drop_reason"]] = group["reasons"].get(row["drop_reason"], 0) + 1
    return out


def test_by_group_counts_match_the_rows(run_folder: Path, rows: pa.Table) -> None:
    """``--by`` an SQL expression (the URL's host): the largest groups in order, each
    with the counts of its rows and its two most frequent drop reasons; the rest summed."""
    source = shards.open_source(run_folder)
    found = shards.by_group(source, "split_part(url, '/', 3)", limit=5)
    want = expected_groups(rows, lambda r: r["url"].split("/")[2])
    order = sorted(want, key=lambda g: (-want[g]["documents"], g))
    assert found.groups == len(want) > 5
    assert found.table["group"].to_list() == order[:5]
    for row in found.table.iter_rows(named=True):
        group = want[row.pop("group")]
        assert row == {k: group[k] for k in row}
    for key in found.table["group"].to_list():
        ranked = sorted(want[key]["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
        assert found.reasons.get(key, []) == ranked[:2]
    assert found.rest is not None
    for column in ("documents", "kept", "chars", "kept_chars"):
        total = sum(g[column] for g in want.values())
        assert found.rest[column] == total - found.table[column].sum()
    assert sum(g["documents"] for g in want.values()) == rows.num_rows


def test_by_group_with_where_and_a_null_group(run_folder: Path, rows: pa.Table) -> None:
    source = shards.open_source(run_folder)
    found = shards.by_group(source, "threshold_rank < 10", where="length_chars > 150", limit=9)
    long = rows.filter(pa.compute.greater(rows["length_chars"], 150))

    def key(row: dict) -> bool | None:
        return None if row["threshold_rank"] is None else row["threshold_rank"] < 10

    want = expected_groups(long, key)
    assert None in want  # rows the threshold never ranked: dropped before it
    got = {row.pop("group"): row for row in found.table.iter_rows(named=True)}
    assert got == {g: {k: v for k, v in want[g].items() if k != "reasons"} for g in want}
    assert found.rest is None


def test_cli_inspect_by(run_folder: Path) -> None:
    runner = CliRunner()
    hosts = runner.invoke(
        main, ["inspect", str(run_folder), "--by", "split_part(url, '/', 3)", "--limit", "3"]
    )
    assert hosts.exit_code == 0, hosts.output
    lines = hosts.output.splitlines()
    head = r"by split_part\(url, '/', 3\): [\d,]+ group\(s\), the 3 largest shown"
    assert re.match(head, lines[0])
    assert "chars kept %" in lines[1] and len(lines) == 2 + 3 + 1
    assert re.match(r"\([\d,]+ other groups\)", lines[-1])
    typo = runner.invoke(main, ["inspect", str(run_folder), "--by", "lenght_chars"])
    assert typo.exit_code != 0
    assert "--by 'lenght_chars' is not a usable SQL expression" in typo.output
    assert "did you mean 'length_chars'" in typo.output
    both = runner.invoke(main, ["inspect", str(run_folder), "--by", "url", "--sort", "url"])
    assert both.exit_code != 0 and "--by counts groups" in both.output


def test_by_group_means_match_the_rows(run_folder: Path, rows: pa.Table) -> None:
    """``--mean``: each group's mean of a column and of an SQL expression (nulls left
    out: threshold_rank is null where the threshold never saw the row), the groups left
    out as one."""
    source = shards.open_source(run_folder)
    means = ("length_chars", "threshold_rank * 2")
    found = shards.by_group(source, "split_part(url, '/', 3)", limit=4, means=means)
    per: dict[str, list[tuple[float, float | None]]] = {}
    for row in rows.to_pylist():
        rank = row["threshold_rank"]
        value = (row["length_chars"], None if rank is None else rank * 2)
        per.setdefault(row["url"].split("/")[2], []).append(value)

    def mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    shown = found.table["group"].to_list()
    for (label, row, _), host in zip(found.lines(), shown, strict=False):
        assert label == host
        for i, of in enumerate(means):
            want = mean([v[i] for v in per[host]])
            assert found.mean(row, of) == pytest.approx(want)
    rest = [v for host, values in per.items() if host not in shown for v in values]
    assert found.rest is not None
    for i, of in enumerate(means):
        assert found.mean(found.rest, of) == pytest.approx(mean([v[i] for v in rest]))
    assert any(v[1] is None for values in per.values() for v in values)  # nulls occur

    runner = CliRunner()
    args = ["inspect", str(run_folder), "--by", "split_part(url, '/', 3)", "--limit", "2"]
    shown_cli = runner.invoke(main, [*args, "--mean", "length_chars"])
    assert shown_cli.exit_code == 0, shown_cli.output
    assert "mean length_chars" in shown_cli.output.splitlines()[1]
    text = runner.invoke(main, [*args, "--mean", "url"])
    assert text.exit_code != 0 and "--mean 'url' is String, not a number" in text.output
    alone = runner.invoke(main, ["inspect", str(run_folder), "--mean", "length_chars"])
    assert alone.exit_code != 0 and "give --by too" in alone.output


def test_by_group_spreads_match_the_rows(run_folder: Path, rows: pa.Table) -> None:
    """``--spread``: each group's sample standard deviation (datatrove's), least and
    largest value, the groups left out merged as one (their deviations by the parallel
    rule), and a group of one value has a deviation of 0."""
    import statistics

    source = shards.open_source(run_folder)
    means = ("length_chars", "threshold_rank * 2")
    found = shards.by_group(source, "split_part(url, '/', 3)", limit=3, means=means, spread=True)
    per: dict[str, list[tuple[float, float | None]]] = {}
    for row in rows.to_pylist():
        rank = row["threshold_rank"]
        value = (row["length_chars"], None if rank is None else rank * 2)
        per.setdefault(row["url"].split("/")[2], []).append(value)

    def check(row: dict, values: list[tuple[float, float | None]]) -> None:
        for i, of in enumerate(means):
            present = [v[i] for v in values if v[i] is not None]
            if not present:
                assert found.std(row, of) is None and row[f"min:{of}"] is None
                continue
            want = statistics.stdev(present) if len(present) > 1 else 0.0
            assert found.std(row, of) == pytest.approx(want)
            assert row[f"min:{of}"] == min(present) and row[f"max:{of}"] == max(present)

    shown = found.table["group"].to_list()
    for row, host in zip(found.table.iter_rows(named=True), shown, strict=True):
        check(row, per[host])
    assert found.rest is not None
    check(found.rest, [v for host, values in per.items() if host not in shown for v in values])

    runner = CliRunner()
    args = ["inspect", str(run_folder), "--by", "split_part(url, '/', 3)", "--limit", "2"]
    shown_cli = runner.invoke(main, [*args, "--mean", "length_chars", "--spread"])
    assert shown_cli.exit_code == 0, shown_cli.output
    title = shown_cli.output.splitlines()[1]
    assert "mean length_chars" in title and "std length_chars" in title
    assert "min length_chars" in title and "max length_chars" in title
    bare = runner.invoke(main, [*args, "--spread"])
    assert bare.exit_code != 0 and "give --mean" in bare.output


def test_a_partitioned_run_reads_as_its_unpartitioned_twin(c4_path: Path, tmp_path: Path) -> None:
    """kept/ a folder per value (here after a barrier: the folders are the last pass's):
    the same funnel and rows as the run without folders, finished or not, and a line
    that names the folders."""
    import shutil

    flat, split = tmp_path / "flat", tmp_path / "split"
    run_local(recipe_of(RECIPE, c4_path), flat)
    recipe = RECIPE + "output: {partition_by: length_chars, max_partitions: 5000}\n"
    stats = run_local(recipe_of(recipe, c4_path), split)
    folders = stats["partitions"]["folders"]
    assert sum(f["rows"] for f in folders.values()) == stats["rows"]["kept"] > 100
    assert shards.funnel(shards.open_source(split)) == shards.funnel(shards.open_source(flat))

    def rows(out: Path) -> list[tuple]:
        frame = shards.open_source(out).scan().select("id", "drop_reason").collect()
        return sorted(frame.iter_rows(), key=lambda r: r[0])

    assert rows(split) == rows(flat)
    said = CliRunner().invoke(main, ["inspect", str(split)]).output
    assert f"\nkept/ a folder per value of length_chars: {len(folders):,} folders (" in said
    # killed before the finish: read from the shards' own folders
    for name in ("stats.json", "recipe.yaml", "kept", "dropped"):
        path = split / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert rows(split) == rows(flat)
