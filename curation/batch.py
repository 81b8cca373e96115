"""The document-batch contract.

Every stage receives and returns a ``pyarrow.Table``:

- ``id`` (string): unique in the dataset. Readers make a stable one (``<shard>/<row>``)
  when the input has none.
- ``text`` (large_string): the document text.
- ``drop_reason`` (string): null while the row is kept; ``stage:rule`` once a stage has
  rejected it. Readers set ``read:<rule>`` on rows they cannot turn into documents.
- Every other column passes through untouched; measuring stages add typed columns whose
  names are prefixed by what measured them (``gopher_word_count``, ``lang_score``...).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

ID = "id"
TEXT = "text"
DROP_REASON = "drop_reason"
#: how many times a kept row enters a mixture (the ``mix`` stage writes it; ``curate
#: tokenize`` writes the row that many times)
MIX_COPIES = "mix_copies"

ID_TYPE = pa.string()
TEXT_TYPE = pa.large_string()
REASON_TYPE = pa.string()


class BatchContractError(ValueError):
    """A table does not follow the document-batch contract."""


def conform(table: pa.Table) -> pa.Table:
    """Return ``table`` with ``id``/``text``/``drop_reason`` first and in their contract types.

    Adds an all-null ``drop_reason`` when it is missing. Raises ``BatchContractError``
    when ``id`` or ``text`` is missing or cannot be cast.
    """
    for required in (ID, TEXT):
        if required not in table.column_names:
            raise BatchContractError(
                f"batch has no '{required}' column (columns: {', '.join(table.column_names)})"
            )
    if DROP_REASON not in table.column_names:
        table = table.append_column(DROP_REASON, pa.nulls(table.num_rows, REASON_TYPE))
    columns = {
        ID: table[ID].cast(ID_TYPE),
        TEXT: table[TEXT].cast(TEXT_TYPE),
        DROP_REASON: table[DROP_REASON].cast(REASON_TYPE),
    }
    rest = [name for name in table.column_names if name not in columns]
    return pa.table(
        list(columns.values()) + [table[name] for name in rest],
        names=list(columns) + rest,
    )


def kept_mask(table: pa.Table) -> pa.ChunkedArray:
    """Boolean mask of rows that carry no drop reason."""
    return pc.is_null(table[DROP_REASON])


def with_drop_reason(table: pa.Table, mask: pa.Array | pa.ChunkedArray, reason: str) -> pa.Table:
    """Set ``drop_reason = reason`` on rows where ``mask`` is true and no reason is set yet.

    A null in ``mask`` counts as false. The first reason a row gets is the one it keeps.
    """
    current = table[DROP_REASON]
    hit = pc.and_(pc.fill_null(mask, False), pc.is_null(current))
    updated = pc.if_else(hit, pa.scalar(reason, REASON_TYPE), current)
    index = table.column_names.index(DROP_REASON)
    return table.set_column(index, DROP_REASON, updated)


def values_as_text(values: pa.ChunkedArray | pa.Array, named: str) -> pa.ChunkedArray | pa.Array:
    """A grouping column's values as text (``large_string``; null stays null): one type
    for every shard's keys, whatever type each shard's batches gave the column. A
    ``ValueError`` names ``named`` (``threshold: per: the column 'x'``) where the column
    is of a type without a text form (a list, a struct)."""
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    try:
        return pc.cast(values, pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValueError(
            f"{named} is {values.type}: group by a column of strings, numbers, booleans or dates"
        ) from None


def text_bytes(table: pa.Table) -> int:
    """Total UTF-8 size of the ``text`` column in bytes (nulls count as zero)."""
    if table.num_rows == 0:
        return 0
    total = pc.sum(pc.binary_length(table[TEXT])).as_py()
    return int(total or 0)
