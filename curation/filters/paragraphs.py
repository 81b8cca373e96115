"""``c4_paragraphs``: mC4's paragraph filter (datatrove's ``C4ParagraphFilter``).

A document is kept when at least ``min_paragraphs`` (3) of its lines, cut at ``\\n``, are
``min_paragraph_len`` (200) characters (code points) long or longer: mC4's rule ("at least
three lines of 200 or more characters"), as TFDS's ``c4_utils.paragraph_filter`` and
datatrove write it (the shortest of the three longest lines is long enough). Every row
gets ``c4_paragraphs``, its number of such lines; the others go as
``c4_paragraphs:too_few``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import TEXT, with_drop_reason
from curation.stage import MapStage, StageParams, register


class C4ParagraphsParams(StageParams):
    min_paragraphs: int = Field(3, ge=0, description="lines of min_paragraph_len a document needs")
    min_paragraph_len: int = Field(
        200, ge=0, description="characters a line needs to count as a paragraph"
    )


@register
class C4Paragraphs(MapStage):
    """Counts each document's lines of at least ``min_paragraph_len`` characters
    (``c4_paragraphs``) and drops those with fewer than ``min_paragraphs``."""

    name = "c4_paragraphs"
    help = (
        "keep documents with 3 lines of 200 characters or more (mC4, datatrove's C4ParagraphFilter)"
    )
    Params = C4ParagraphsParams
    params: C4ParagraphsParams

    def process(self, table: pa.Table) -> pa.Table:
        text = pc.fill_null(table[TEXT], "")
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        lines = pc.split_pattern(text, "\n")
        long = pc.greater_equal(
            pc.utf8_length(pc.list_flatten(lines)), self.params.min_paragraph_len
        )
        parents = np.asarray(pc.list_parent_indices(lines))
        counts = np.bincount(
            parents[np.asarray(long, dtype=bool)], minlength=table.num_rows
        ).astype(np.int64)
        table = table.append_column("c4_paragraphs", pa.array(counts))
        few = pa.array(counts < self.params.min_paragraphs)
        return with_drop_reason(table, few, self.reason("too_few"))
