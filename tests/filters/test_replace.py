"""regex_replace: rules in order, DCLM's newline modifier, checked patterns, empty texts."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform
from curation.filters.replace import RegexReplace, RegexReplaceParams
from curation.recipe import RecipeError, parse_recipe
from tests.filters.test_url_removal import sample_texts

NEWLINES = {"pattern": r"\n{3,}", "replacement": "\n\n"}  # DCLM's max_consecutive: 2


def run(texts: list[str], **params: object) -> pa.Table:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    return RegexReplace(RegexReplaceParams(**params)).process(table)  # type: ignore[arg-type]


def dclm_newline_removal(text: str, max_consecutive: int = 2) -> str:
    """DCLM-Baseline's newline_removal_modifier, as its code runs it."""
    return re.sub(rf"\n{{{max_consecutive + 1},}}", "\n" * max_consecutive, text)


@pytest.mark.parametrize("sample", ["c4", "pile", "dclm_human", "warc"])
def test_newline_rule_is_dclms_newline_modifier_on_real_documents(sample: str) -> None:
    texts = sample_texts(sample)
    rows = run(texts, rules=[NEWLINES]).to_pylist()
    assert [row["text"] for row in rows] == [dclm_newline_removal(t) for t in texts]
    assert [row["regex_replace_changed"] for row in rows] == [
        dclm_newline_removal(t) != t for t in texts
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(st.sampled_from(["\n", "\r", " ", "a", "é", "\u2028"]), max_size=30)),
    st.integers(1, 4),
)
def test_any_text_collapses_as_dclm(texts: list[str], most: int) -> None:
    rule = {"pattern": rf"\n{{{most + 1},}}", "replacement": "\n" * most}
    rows = run(texts, rules=[rule], drop_empty=False).to_pylist()
    assert [row["text"] for row in rows] == [dclm_newline_removal(t, most) for t in texts]


def test_rules_run_in_order_with_groups_and_empty_texts_dropped() -> None:
    rules = [
        {"pattern": r"\[(\d+|edit)\]"},  # citation marks go
        {"pattern": r"(\w+)@(\w+)", "replacement": r"\2 at \1"},
        {"pattern": r"at", "replacement": r"[\0]"},  # sees the rule before's output
        {"pattern": r"^\s*$"},
    ]
    texts = ["Ada[1] wrote[edit] to bob@host.", "[12]  ", "plain"]
    rows = run(texts, rules=rules).to_pylist()
    assert rows[0]["text"] == "Ada wrote to host [at] bob."
    assert rows[1]["drop_reason"] == "regex_replace:empty" and rows[1]["text"] == "[12]  "
    assert rows[2] == {
        "id": "2",
        "text": "plain",
        "drop_reason": None,
        "regex_replace_changed": False,
    }
    kept = run(texts, rules=rules, drop_empty=False).to_pylist()
    assert kept[1]["text"] == "" and kept[1]["drop_reason"] is None


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("{pattern: 'a('}", "missing \\)"),
        ("{pattern: '(a)', replacement: '\\2'}", "only has 1 parenthesized"),
        ("{pattern: 'a', replacement: 'x\\'}", "not allowed at end"),
        (
            "{pattern: 'a', with: 'b'}",
            "rules item 1: unknown key 'with'; valid keys: pattern, replacement",
        ),
    ],
)
def test_a_bad_rule_stops_the_recipe_naming_it(rule: str, problem: str) -> None:
    with pytest.raises(RecipeError, match=problem):
        parse_recipe(f"stages:\n  - regex_replace: {{rules: [{rule}]}}\n")


def test_a_recipe_needs_a_rule() -> None:
    with pytest.raises(RecipeError, match="rules"):
        parse_recipe("stages:\n  - regex_replace: {rules: []}\n")
