"""What the dedup stages share."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

DUPLICATE_OF = "duplicate_of"


def set_duplicate_of(table: pa.Table, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Add ``duplicate_of`` (string, the id of the kept row), or fill it in where null.

    Several dedup stages in one recipe share the column: a row only reaches a later stage
    while it is kept, so an earlier stage left it null there.
    """
    values = values.cast(pa.string())
    if DUPLICATE_OF not in table.column_names:
        return table.append_column(DUPLICATE_OF, values)
    index = table.column_names.index(DUPLICATE_OF)
    merged = pc.coalesce(table[DUPLICATE_OF].cast(pa.string()), values)
    return table.set_column(index, DUPLICATE_OF, merged)


def lower_folded(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Lower-cased text for case-insensitive keys, with Greek final sigma folded to sigma.

    ``utf8_lower`` maps "Σ" to "σ" everywhere, so an upper-cased copy of "Νέας" would
    otherwise not match its source ("νέασ" against "νέας"); Python's ``str.lower``
    applies the final-sigma rule instead, and ``str.casefold`` folds both to "σ" as here.
    """
    return pc.replace_substring(pc.utf8_lower(values), "ς", "σ")
