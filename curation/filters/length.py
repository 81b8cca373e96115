"""``length_filter``: keep documents whose length in characters lies within bounds."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curation.batch import TEXT, with_drop_reason
from curation.stage import MapStage, StageParams, register


class LengthFilterParams(StageParams):
    min_chars: int = Field(0, ge=0, description="drop documents shorter than this (characters)")
    max_chars: int | None = Field(
        None, ge=0, description="drop documents longer than this (characters); null = no bound"
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> LengthFilterParams:
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError(f"max_chars ({self.max_chars}) is below min_chars ({self.min_chars})")
        return self


@register
class LengthFilter(MapStage):
    """Measures ``length_chars`` (Unicode code points) and drops documents out of bounds.

    Rules, in order: ``too_short`` (length < min_chars), ``too_long`` (length > max_chars).
    """

    name = "length_filter"
    help = "keep documents whose length in characters lies in [min_chars, max_chars]"
    Params = LengthFilterParams
    params: LengthFilterParams

    def process(self, table: pa.Table) -> pa.Table:
        length = pc.utf8_length(table[TEXT]).cast(pa.int64())
        table = table.append_column("length_chars", length)
        table = with_drop_reason(
            table, pc.less(length, self.params.min_chars), self.reason("too_short")
        )
        if self.params.max_chars is not None:
            table = with_drop_reason(
                table, pc.greater(length, self.params.max_chars), self.reason("too_long")
            )
        return table
