"""decontaminate on the real benchmark items and the real C4 and Pile samples, against
plain Python sets of word n-grams."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import regex
import yaml

from curation.batch import conform
from curation.dedup.decontaminate import Decontaminate, DecontaminateParams
from curation.io.inputs import InputError
from curation.recipe import RecipeError, parse_recipe
from tests.conftest import read_output, recipe_of, run_local, shared_file
from tests.filters.parity import real_documents


def words(text: str) -> list[str]:
    return regex.sub(r"[\p{P}\p{S}]+", "", text.lower().replace("ς", "σ")).split()


def ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    w = words(text)
    return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]


def benchmark_items(folder: Path) -> list[tuple[str, str, str]]:
    """(id, query, gold answer) of every item, in the order the stage reads them."""
    items = []
    for path in sorted(folder.glob("*.jsonl")):
        for row, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            item = json.loads(line)
            answer = item["choices"][item["gold"]]
            items.append((f"{folder.name}/{path.name}/{row}", item["query"], answer))
    return items


def stage(**params: object) -> Decontaminate:
    out = Decontaminate(DecontaminateParams(**params))  # type: ignore[arg-type]
    out.setup()
    return out


def run(texts: list[str], decontaminate: Decontaminate) -> pa.Table:
    table = conform(pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts}))
    return decontaminate.process(table)


@pytest.mark.parametrize("query_ngrams", [True, False])
def test_same_matches_as_python_sets(query_ngrams: bool) -> None:
    folder = shared_file("benchmarks")
    n = 13
    owner: dict[tuple[str, ...], str] = {}
    indexed: dict[str, set[tuple[str, ...]]] = {}
    for item_id, query, answer in benchmark_items(folder):
        first_with_answer = len(words(query)) - n + 1 if not query_ngrams else 0
        for i, gram in enumerate(ngrams(f"{query} {answer}", n)):
            if i >= first_with_answer:
                owner.setdefault(gram, item_id)
                indexed.setdefault(item_id, set()).add(gram)
    docs = real_documents()
    texts = docs["c4"] + docs["pile"]
    # plant items (with their answers) in ten documents, punctuation and case changed
    long_enough = [item for item in benchmark_items(folder) if len(words(item[1])) >= 20]
    planted = {i * 150: long_enough[i * 500] for i in range(10)}
    for at, (_, query, answer) in planted.items():
        texts[at] = f"{texts[at][:200]} {query.upper()}, {answer}! {texts[at][200:]}"
    out = run(texts, stage(benchmarks=[str(folder)], query_ngrams=query_ngrams))
    expected_matches, expected_item = [], []
    for text in texts:
        grams = ngrams(text, n)
        shared = [g for g in grams if g in owner]
        expected_matches.append(len(set(shared)))
        expected_item.append(owner[shared[0]] if shared else None)
    assert out["decontaminate_matches"].to_pylist() == expected_matches
    assert out["decontaminate_item"].to_pylist() == expected_item
    dropped = [r == "decontaminate:benchmark_ngram" for r in out["drop_reason"].to_pylist()]
    assert dropped == [m > 0 for m in expected_matches]
    for at, (item_id, _, _) in planted.items():  # every n-gram of a planted item is found
        assert out["decontaminate_matches"][at].as_py() >= len(indexed[item_id]) > 0, at
    # besides the planted ones, the real samples share passages with BoolQ's questions
    found = {i for i, m in enumerate(expected_matches) if m} - set(planted)
    assert len(found) == (3 if query_ngrams else 0)


def test_answer_words_decide_without_query_ngrams(tmp_path: Path) -> None:
    bench = tmp_path / "quiz.jsonl"
    question = (
        "which of these animals was the first to be sent into orbit around the earth in "
        "nineteen fifty seven"
    )
    bench.write_text(
        json.dumps({"query": question, "choices": ["a cat", "laika the dog"], "gold": 1}) + "\n"
    )
    quoting = f"Trivia night asked: {question}? Nobody knew."
    answering = f"Trivia night asked: {question}: laika the dog, of course."
    strict = run([quoting, answering], stage(benchmarks=[str(bench)]))
    lenient = run([quoting, answering], stage(benchmarks=[str(bench)], query_ngrams=False))
    assert [m > 0 for m in strict["decontaminate_matches"].to_pylist()] == [True, True]
    assert [m > 0 for m in lenient["decontaminate_matches"].to_pylist()] == [False, True]
    assert lenient["decontaminate_item"].to_pylist() == [None, "quiz.jsonl/0"]


def test_min_matches_ngram_and_plain_text_items(tmp_path: Path) -> None:
    bench = tmp_path / "held-out.jsonl"
    passage = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    bench.write_text(
        json.dumps({"id": "p1", "text": passage})
        + "\n"
        + json.dumps({"id": "p2", "text": "too short"})
        + "\n"
    )
    one = "one two three four five six seven eight nine ten eleven twelve thirteen and more"
    two = f"prefix {passage} suffix"
    short = "one two three"
    twice = f"{passage}. {passage}."  # the same two n-grams twice: 2 distinct
    out = run([one, two, short, twice], stage(benchmarks=[str(bench)], min_matches=2))
    assert out["decontaminate_matches"].to_pylist() == [1, 2, 0, 2]
    assert out["decontaminate_item"].to_pylist() == ["p1", "p1", None, "p1"]
    reason = "decontaminate:benchmark_ngram"
    assert out["drop_reason"].to_pylist() == [None, reason, None, reason]
    index = stage(benchmarks=[str(bench)])._index
    assert (index.short_items, len(index)) == (1, 2)
    assert stage(benchmarks=[str(bench)]).versions()["benchmark_items_too_short"] == "1"


def test_bad_benchmarks_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"nowhere\.jsonl.*does not exist"):
        parse_recipe(f"stages:\n  - decontaminate: {{benchmarks: [{tmp_path}/nowhere.jsonl]}}\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q " * 20, "choices": ["a"], "gold": 3}) + "\n")
    with pytest.raises(InputError, match=r"bad\.jsonl: item bad\.jsonl/0 has gold 3 for 1 choices"):
        stage(benchmarks=[str(bad)])
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"text": "only four words here"}) + "\n")
    with pytest.raises(InputError, match=r"no item has 13 words; lower `ngram`"):
        stage(benchmarks=[str(short)])


def test_a_run_accounts_for_the_contaminated(tmp_path: Path, c4_path: Path) -> None:
    folder = shared_file("benchmarks")
    recipe = recipe_of(
        f"stages:\n  - decontaminate: {{benchmarks: ['{folder}/*.jsonl']}}\n", c4_path
    )
    stats = run_local(recipe, tmp_path / "out")
    dropped = read_output(tmp_path / "out", "dropped")
    reasons = dropped["drop_reason"].to_pylist()
    [decont] = [s for s in stats["stages"] if s["name"] == "decontaminate"]
    assert decont["dropped_by_reason"] == {"decontaminate:benchmark_ngram": 3}
    assert reasons.count("decontaminate:benchmark_ngram") == 3
    assert stats["rows"]["read"] == stats["rows"]["kept"] + stats["rows"]["dropped"] == 1000
    assert all(
        item.startswith("boolq.jsonl/") for item in dropped["decontaminate_item"].to_pylist()
    )
    recorded = yaml.safe_load((tmp_path / "out" / "recipe.yaml").read_text())
    assert recorded["versions"]["stages"]["decontaminate"]["benchmark_items"] == "9156"
