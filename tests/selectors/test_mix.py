"""mix: each part's share of a mixture, exact against a plain reference over the Pile
sample's subsets, the same however the data is cut into files and on every executor,
with every row kept or dropped by reason and parts that fall short said so."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.recipe import RecipeError, parse_recipe
from curation.selectors.mix import parse_amount, plan_parts
from tests.conftest import (
    on_every_executor,
    read_output,
    recipe_of,
    run_local,
    shared_file,
)

WEIGHTS = {"Pile-CC": 0.5, "Github": 0.2, "Wikipedia (en)": 0.2, "PubMed Central": 0.1}


def pile_docs() -> list[dict]:
    """The Pile sample's documents: id, text and subset."""
    lines = shared_file("web/pile-sample-1000.jsonl").read_text(encoding="utf-8").splitlines()
    return [
        {
            "id": f"pile-{i:04d}",
            "text": row["contents"],
            "subset": row["metadata"]["pile_set_name"],
        }
        for i, row in enumerate(map(json.loads, lines))
    ]


def write_pile(folder: Path, files: int) -> list[dict]:
    """The Pile sample as ``files`` Parquet files (every files-th row in each)."""
    docs = pile_docs()
    folder.mkdir()
    for k in range(files):
        pq.write_table(pa.Table.from_pylist(docs[k::files]), folder / f"part-{k}.parquet")
    return docs


def reference(
    docs: list[dict],
    weights: dict[str, float],
    by: str,
    total: float | None = None,
    max_copies: int = 1,
    seed: int = 0,
) -> dict[str, int]:
    """Each drawn document's copies, by the rule written out plainly: a part's rows each
    ``floor(target / size)`` times (at most ``max_copies``), then in the order of
    xxh64(id, seed) while the size before a row plus half its own is within the rest."""
    size = (lambda d: len(d["text"])) if by == "chars" else (lambda d: 1)
    parts: dict[str, list[dict]] = defaultdict(list)
    for doc in docs:
        parts[doc["subset"]].append(doc)
    whole = sum(weights.values())
    sizes = {name: sum(size(d) for d in parts[name]) for name in weights}
    if total is None:
        total = min(max_copies * sizes[n] * whole / w for n, w in weights.items() if sizes[n])
    copies = {}
    for name, weight in weights.items():
        target = total * weight / whole
        if not sizes[name]:
            continue
        full = min(math.floor(target / sizes[name] + 1e-9), max_copies)
        rest = target - full * sizes[name] if full < max_copies else 0.0
        through = 0
        order = sorted(
            parts[name], key=lambda d: (xxhash.xxh64_intdigest(d["id"].encode(), seed), d["id"])
        )
        for doc in order:
            through += size(doc)
            extra = int(through - size(doc) / 2 <= rest)
            if full + extra:
                copies[doc["id"]] = full + extra
    return copies


def mix_recipe(folder: Path, **params: object) -> str:
    entries = {"column": "subset", "weights": WEIGHTS, **params}
    return recipe_of(f"stages:\n  - mix: {json.dumps(entries)}\n", folder)


def test_each_part_gets_its_share_exactly(tmp_path: Path) -> None:
    docs = write_pile(tmp_path / "in", 1)
    stats = run_local(mix_recipe(tmp_path / "in", total=120000), tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    want = reference(docs, WEIGHTS, "chars", total=120000)
    assert {r["id"]: r["mix_copies"] for r in kept} == want
    taken = Counter()
    for row in kept:
        taken[row["subset"]] += len(row["text"]) * row["mix_copies"]
    longest = max(len(d["text"]) for d in docs)
    for name, weight in WEIGHTS.items():  # each part within half a document of its share
        assert abs(taken[name] - 120000 * weight) <= longest / 2
    stage = stats["stages"][1]
    decision = stage["decision"]
    assert decision["total"] == 120000
    assert {n: p["taken"] for n, p in decision["parts"].items()} == dict(taken)
    assert decision["notes"] == []
    others = sum(1 for d in docs if d["subset"] not in WEIGHTS)
    drawn_not = sum(1 for d in docs if d["subset"] in WEIGHTS) - len(want)
    assert stage["dropped_by_reason"] == {"mix:not_in_mix": others, "mix:not_drawn": drawn_not}
    assert stage["rows_in"] == stage["rows_kept"] + others + drawn_not == len(docs)


def test_default_total_is_the_largest_without_repeats(tmp_path: Path) -> None:
    docs = write_pile(tmp_path / "in", 1)
    stats = run_local(mix_recipe(tmp_path / "in"), tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    assert {r["id"]: r["mix_copies"] for r in kept} == reference(docs, WEIGHTS, "chars")
    assert {r["mix_copies"] for r in kept} == {1}
    parts = stats["stages"][1]["decision"]["parts"]
    # the scarcest part for its share is taken whole; the others only their share of it
    whole = [n for n, p in parts.items() if p["taken"] == p["available"]]
    assert len(whole) == 1
    assert all(p["taken"] < p["available"] for n, p in parts.items() if n not in whole)


def test_scarce_parts_repeat_up_to_max_copies(tmp_path: Path) -> None:
    docs = write_pile(tmp_path / "in", 1)
    weights = {"Pile-CC": 0.4, "Wikipedia (en)": 0.6}
    recipe = mix_recipe(tmp_path / "in", weights=weights, max_copies=3)
    stats = run_local(recipe, tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    want = reference(docs, weights, "chars", max_copies=3)
    assert {r["id"]: r["mix_copies"] for r in kept} == want
    wiki = [r for r in kept if r["subset"] == "Wikipedia (en)"]
    assert {r["mix_copies"] for r in wiki} == {3}  # the scarce part: all of it, 3 times
    assert len(wiki) == sum(1 for d in docs if d["subset"] == "Wikipedia (en)")
    summary = stats["stages"][1]["summaries"]["mix_copies"]
    assert summary["kept_sum"] == sum(want.values())


def test_by_count_draws_documents(tmp_path: Path) -> None:
    docs = write_pile(tmp_path / "in", 1)
    run_local(mix_recipe(tmp_path / "in", by="count", total="150", seed=7), tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    assert {r["id"]: r["mix_copies"] for r in kept} == reference(
        docs, WEIGHTS, "count", total=150, seed=7
    )
    assert Counter(r["subset"] for r in kept) == {
        "Pile-CC": 75,
        "Github": 30,
        "Wikipedia (en)": 30,
        "PubMed Central": 15,
    }


def test_by_tokens_reads_token_count(tmp_path: Path) -> None:
    """by: tokens measures each row by token_count's column: the shares of tokens as
    asked, and the rows those of the reference over the same counts."""
    from tests.conftest import train_bytelevel_bpe

    docs = write_pile(tmp_path / "in", 2)
    bpe = train_bytelevel_bpe([d["text"] for d in docs], 2000, tmp_path / "t.json", "<eos>")
    weights = {"Pile-CC": 0.6, "Github": 0.4}
    text = (
        f"stages:\n  - token_count: {{tokenizer: {bpe}}}\n"
        f"  - mix: {json.dumps({'column': 'subset', 'weights': weights, 'by': 'tokens'})}\n"
    )
    stats = run_local(recipe_of(text, tmp_path / "in"), tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    tokens = Counter()
    for row in kept:
        tokens[row["subset"]] += row["token_count"] * row["mix_copies"]
    total = sum(tokens.values())
    longest = max(r["token_count"] for r in kept)
    for name, weight in weights.items():
        assert abs(tokens[name] - weight * total) <= longest
    every = read_output(tmp_path / "out", "kept").to_pylist()
    every += read_output(tmp_path / "out", "dropped").to_pylist()
    counted = {r["id"]: r["token_count"] for r in every}
    sized = [{**d, "text": "x" * counted[d["id"]]} for d in docs]  # chars stand for tokens
    assert {r["id"]: r["mix_copies"] for r in kept} == reference(sized, weights, "chars")
    assert stats["stages"][2]["decision"]["by"] == "tokens"


def test_same_mixture_however_cut_and_on_every_executor(tmp_path: Path) -> None:
    write_pile(tmp_path / "one", 1)
    run_local(mix_recipe(tmp_path / "one", max_copies=2, total=400000), tmp_path / "base")
    base = sorted(
        (r["id"], r["mix_copies"]) for r in read_output(tmp_path / "base", "kept").to_pylist()
    )
    write_pile(tmp_path / "four", 4)
    outputs = on_every_executor(mix_recipe(tmp_path / "four", max_copies=2, total=400000), tmp_path)
    for kept, _ in outputs.values():
        assert sorted((r["id"], r["mix_copies"]) for r in kept) == base


def test_a_part_that_falls_short_is_said(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_pile(tmp_path / "in", 1)
    weights = {"Pile-CC": 0.5, "Github": 0.3, "No Such Subset": 0.2}
    recipe = mix_recipe(tmp_path / "in", weights=weights, total=200000)
    stats = run_local(recipe, tmp_path / "out")
    notes = stats["stages"][1]["decision"]["notes"]
    assert len(notes) == 2  # Pile-CC has the 100,000 characters asked of it
    assert "subset = 'Github' gives 38,798 of the 60,000 characters" in notes[0]
    assert "raise max_copies" in notes[0]
    assert "no row has subset = 'No Such Subset'" in notes[1]
    err = capsys.readouterr().err
    assert all(f"note: mix: {note}" in err for note in notes)
    # curate inspect and curate report show each part and the notes
    from click.testing import CliRunner

    from curation.cli import main
    from curation.inspect.report import build_report
    from curation.inspect.shards import open_source

    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "out")])
    assert shown.exit_code == 0, shown.output
    assert "mixture of subset by chars" in shown.output
    assert "Github" in shown.output and "30.0% asked" in shown.output
    assert all(f"note: {note}" in shown.output for note in notes)
    page = build_report(open_source(tmp_path / "out"))
    assert "Mixture of subset by characters" in page
    assert "No Such Subset" in page and "no row has subset" in page


def test_struct_field_and_null_values(tmp_path: Path) -> None:
    """The Pile as it ships (its subset in a struct), read from JSON Lines."""
    pile = shared_file("web/pile-sample-1000.jsonl")
    folder = tmp_path / "in"
    folder.mkdir()
    lines = pile.read_text(encoding="utf-8").splitlines()
    lines[0] = json.dumps({"contents": "no metadata here", "metadata": None})
    (folder / "pile.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = (
        "input: {text_field: contents}\nstages:\n  - mix: {column: metadata.pile_set_name, "
        "weights: {Pile-CC: 1, Github: 1}, by: count}\n"
    )
    stats = run_local(recipe_of(text, folder), tmp_path / "out")
    stage = stats["stages"][1]
    parts = stage["decision"]["parts"]
    assert parts["Pile-CC"]["taken"] == parts["Github"]["taken"] == parts["Github"]["available"]
    assert stage["rows_kept"] == 2 * parts["Github"]["available"]
    # the row without metadata has no value: not in the mixture
    assert (
        stage["dropped_by_reason"]["mix:not_in_mix"]
        == 1000 - parts["Pile-CC"]["rows"] - parts["Github"]["rows"]
    )


def test_recipe_refusals(tmp_path: Path) -> None:
    for params, message in [
        ("{column: s, weights: {}}", "at least one value"),
        ("{column: s, weights: {a: 0}}", "positive"),
        ("{column: s, weights: {a: 1}, total: lots}", "not a size"),
        ("{column: s, weights: {a: 1}, total: 0}", "more than 0"),
        ("{column: s, weights: {a: 1}, max_copies: 0}", "max_copies"),
        ("{column: s, weights: {a: 1}, where: x}", "where"),
    ]:
        with pytest.raises(RecipeError, match=message):
            parse_recipe(f"stages:\n  - mix: {params}\n", "r.yaml")
    with pytest.raises(RecipeError, match="line 3"):
        parse_recipe(
            "stages:\n  - length_filter: {}\n  - mix: {column: s, weights: []}\n", "r.yaml"
        )


def test_missing_columns_are_named(tmp_path: Path) -> None:
    write_pile(tmp_path / "in", 1)
    with pytest.raises(Exception, match="no column 'source'"):
        run_local(mix_recipe(tmp_path / "in", column="source"), tmp_path / "a")
    with pytest.raises(Exception, match="put token_count before mix"):
        run_local(mix_recipe(tmp_path / "in", by="tokens"), tmp_path / "b")
    listed = tmp_path / "listed.parquet"
    pq.write_table(pa.table({"text": ["a b", "c"], "subset": [["a"], ["b", "c"]]}), listed)
    with pytest.raises(Exception, match=r"mix: the column 'subset' is list<.*group by a column"):
        run_local(mix_recipe(listed), tmp_path / "c")


def test_sizes_as_recipes_write_them() -> None:
    assert parse_amount("2.5B") == 2.5e9
    assert parse_amount("300M") == 3e8
    assert parse_amount("40k") == 40000
    assert parse_amount(12) == 12.0
    with pytest.raises(ValueError, match="not a size"):
        parse_amount("2.5 GiB")


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 10**9), min_size=1, max_size=6),
    weights=st.lists(st.floats(0.01, 100), min_size=6, max_size=6),
    max_copies=st.integers(1, 5),
    total=st.one_of(st.none(), st.floats(1, 1e10)),
)
def test_plan_keeps_shares_and_copies(
    sizes: list[int], weights: list[float], max_copies: int, total: float | None
) -> None:
    names = [f"p{i}" for i in range(len(sizes))]
    w = dict(zip(names, weights, strict=False))
    have = dict(zip(names, sizes, strict=True))
    chosen, plans = plan_parts(have, w, total, max_copies)
    assert math.isclose(sum(p["target"] for p in plans.values()), chosen, rel_tol=1e-9)
    for name, plan in plans.items():
        size = have[name]
        assert 0 <= plan["full"] <= max_copies
        assert 0 <= plan["rest"] <= max(size, 0) * (1 + 1e-9)
        assert plan["full"] * size <= plan["target"] * (1 + 1e-9) + 1e-6  # never beyond
        if plan["full"] < max_copies and size:  # reached: whole copies and the rest
            assert math.isclose(
                plan["full"] * size + plan["rest"], plan["target"], rel_tol=1e-9, abs_tol=1e-6
            )
        else:  # capped at max_copies (or absent): nothing more to draw
            assert plan["rest"] == 0
    if total is None and any(have.values()):
        # the largest mixture within max_copies: one part is at its cap, none over
        reach = [plans[n]["target"] / (max_copies * have[n]) for n in names if have[n]]
        assert max(reach) == pytest.approx(1.0)
