"""``regex_replace``: rewrite the text with regular expressions, rule after rule.

Each rule replaces every match of its ``pattern`` (RE2 syntax, leftmost-first as in
Python's ``re``, non-overlapping) with its ``replacement``, where ``\\1`` to ``\\9``
stand for the pattern's groups, ``\\0`` for the whole match and ``\\\\`` for a
backslash. Rules run in order, each on the text the one before it left. Examples:

- DCLM-Baseline's ``newline_removal_modifier`` and NeMo Curator's
  ``NewlineNormalizer``: ``{pattern: '\\n{3,}', replacement: "\\n\\n"}``;
- citation marks: ``{pattern: '\\[(\\d+|edit|citation needed)\\]'}``.

RE2's ``\\s``, ``\\d``, ``\\w`` and ``\\b`` are ASCII-only (Python's are Unicode):
write ``\\p{Z}``, ``\\p{Nd}`` or ``[\\p{L}\\p{N}_]`` for the Unicode classes.

``regex_replace_changed`` records whether a rule changed the document. A document left
empty is dropped (``regex_replace:empty``, keeping its text for inspection) unless
``drop_empty`` is false. Every pattern and replacement is checked when the recipe is
read.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curation.batch import TEXT, with_drop_reason
from curation.stage import MapStage, StageParams, register


class ReplaceRule(BaseModel):
    """One regular expression (RE2) and what its matches become."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pattern: str = Field(description="regular expression (RE2 syntax)")
    replacement: str = Field("", description="what a match becomes: \\1 a group, \\\\ a '\\'")

    @model_validator(mode="after")
    def _compiles(self) -> ReplaceRule:
        try:  # compiles both (an empty array would not)
            pc.replace_substring_regex(pa.array([""]), self.pattern, self.replacement)
        except pa.ArrowInvalid as error:
            raise ValueError(
                f"pattern {self.pattern!r} with replacement {self.replacement!r}: {error}"
            ) from None
        return self


class RegexReplaceParams(StageParams):
    rules: list[ReplaceRule] = Field(
        ..., min_length=1, description="{pattern, replacement} applied in order"
    )
    drop_empty: bool = Field(True, description="drop documents left empty")


@register
class RegexReplace(MapStage):
    """Applies the rules to ``text``; adds ``regex_replace_changed`` (bool)."""

    name = "regex_replace"
    help = "rewrite the text with regular expressions (RE2), rule after rule"
    Params = RegexReplaceParams
    params: RegexReplaceParams

    def process(self, table: pa.Table) -> pa.Table:
        text = table[TEXT]
        new_text = text
        for rule in self.params.rules:
            new_text = pc.replace_substring_regex(new_text, rule.pattern, rule.replacement)
        changed = pc.not_equal(new_text, text)
        if self.params.drop_empty:
            empty = pc.equal(pc.binary_length(new_text), 0)
            new_text = pc.if_else(empty, text, new_text)  # dropped ones keep their text
        table = table.set_column(table.column_names.index(TEXT), TEXT, new_text)
        table = table.append_column("regex_replace_changed", changed)
        if self.params.drop_empty:
            table = with_drop_reason(table, empty, self.reason("empty"))
        return table
