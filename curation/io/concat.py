"""Parquet files of one schema joined into one without decoding a page.

A Parquet file is ``PAR1``, its row groups' column chunks (pages, compressed), then the
footer (a Thrift ``FileMetaData`` in the compact protocol), its length (4 bytes, little
endian) and ``PAR1``. Joining files is then copying each file's column chunks one after
another and writing one footer that lists every row group, each chunk's offsets moved by
where its bytes now start: what parquet-mr's ``ParquetFileWriter.appendFile`` does. The
run's finish joins small parts into files this way, at the speed of copying bytes,
where reading and writing them again would decompress, decode, encode and compress
every page.

Only what this needs of the footer is understood: the compact protocol's values are
read into a tree that keeps every field it does not know as it came, and the tree is
written back. The offsets moved are ``RowGroup.file_offset`` and ``ColumnChunk.file_offset``
and ``ColumnMetaData``'s data, index and dictionary page offsets. Files whose footers
point elsewhere too (page indexes, Bloom filters), are encrypted, name other files, or
whose schemas or key-value metadata (the Arrow schema) differ, are refused with
``NotJoinable``, and the caller decodes them instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = b"PAR1"

# compact protocol types
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)

# field ids (parquet.thrift)
_FILE_SCHEMA, _FILE_ROWS, _FILE_GROUPS, _FILE_KV, _FILE_ENCRYPTION, _FILE_SIGNING = 2, 3, 4, 5, 8, 9
_GROUP_COLUMNS, _GROUP_OFFSET, _GROUP_ORDINAL = 1, 5, 7
_CHUNK_PATH, _CHUNK_OFFSET, _CHUNK_META = 1, 2, 3
_CHUNK_ELSEWHERE = (4, 6, 8, 9)  # offset index, column index, crypto, encrypted metadata
_META_OFFSETS = (9, 10, 11)  # data, index and dictionary page offsets
_META_ELSEWHERE = (14,)  # Bloom filter offset


class NotJoinable(ValueError):
    """The files cannot be joined by their bytes (the message says why)."""


@dataclass
class _Field:
    """A struct's field: its id, compact type and value (a struct: a list of fields; a
    list or set: (element type, values); a map: (key type, value type, pairs))."""

    id: int
    kind: int
    value: Any


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        value = self.data[self.at]
        self.at += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (_TRUE, _FALSE):
            return kind == _TRUE
        if kind == _BYTE:
            return self.byte()
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            self.at += 8
            return self.data[self.at - 8 : self.at]
        if kind == _BINARY:
            size = self.varint()
            self.at += size
            return self.data[self.at - size : self.at]
        if kind in (_LIST, _SET):
            head = self.byte()
            size, element = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if element in (_TRUE, _FALSE):
                raise NotJoinable("a list of booleans in the footer")
            return (element, [self.value(element) for _ in range(size)])
        if kind == _MAP:
            size = self.varint()
            if not size:
                return (0, 0, [])
            types = self.byte()
            keys, values = types >> 4, types & 0x0F
            if _TRUE in (keys, values) or _FALSE in (keys, values):
                raise NotJoinable("a map of booleans in the footer")
            return (keys, values, [(self.value(keys), self.value(values)) for _ in range(size)])
        if kind == _STRUCT:
            return self.struct()
        raise NotJoinable(f"an unknown Thrift type {kind} in the footer")

    def struct(self) -> list[_Field]:
        fields, last = [], 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            kind, delta = head & 0x0F, head >> 4
            last = last + delta if delta else self.zigzag()
            fields.append(_Field(last, kind, self.value(kind)))


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while n > 0x7F:
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7
        self.out.append(n)

    def zigzag(self, n: int) -> None:
        self.varint((n << 1) ^ (n >> 63))

    def value(self, kind: int, value: Any) -> None:
        if kind in (_TRUE, _FALSE):
            return
        if kind == _BYTE:
            self.out.append(value)
        elif kind in (_I16, _I32, _I64):
            self.zigzag(value)
        elif kind == _DOUBLE:
            self.out += value
        elif kind == _BINARY:
            self.varint(len(value))
            self.out += value
        elif kind in (_LIST, _SET):
            element, items = value
            if len(items) < 15:
                self.out.append(len(items) << 4 | element)
            else:
                self.out.append(0xF0 | element)
                self.varint(len(items))
            for item in items:
                self.value(element, item)
        elif kind == _MAP:
            keys, values, pairs = value
            self.varint(len(pairs))
            if pairs:
                self.out.append(keys << 4 | values)
                for key, item in pairs:
                    self.value(keys, key)
                    self.value(values, item)
        else:
            self.struct(value)

    def struct(self, fields: list[_Field]) -> None:
        last = 0
        for field in fields:
            kind = field.kind
            if kind in (_TRUE, _FALSE):
                kind = _TRUE if field.value else _FALSE
            delta = field.id - last
            if 0 < delta <= 15:
                self.out.append(delta << 4 | kind)
            else:
                self.out.append(kind)
                self.zigzag(field.id)
            self.value(kind, field.value)
            last = field.id
        self.out.append(0)


def _get(fields: list[_Field], field_id: int) -> _Field | None:
    return next((f for f in fields if f.id == field_id), None)


def _encoded(kind: int, value: Any) -> bytes:
    writer = _Writer()
    writer.value(kind, value)
    return bytes(writer.out)


def _footer(path: Path) -> tuple[list[_Field], int]:
    """The file's footer as fields, and where its column chunks end."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(0)
        head = handle.read(4)
        handle.seek(max(size - 8, 0))
        tail = handle.read(8)
        if size < 12 or head != MAGIC or tail[4:] != MAGIC:
            raise NotJoinable(f"{path}: not a plain Parquet file (no PAR1 at both ends)")
        (length,) = struct.unpack("<I", tail[:4])
        start = size - 8 - length
        if start < 4:
            raise NotJoinable(f"{path}: its footer length runs past the file's start")
        handle.seek(start)
        return _Reader(handle.read(length)).struct(), start


def _moved(groups: list[Any], shift: int, path: Path) -> None:
    """Move every offset in the row groups ``groups`` (lists of fields) by ``shift``
    bytes, in place; ``NotJoinable`` where a chunk points anywhere else."""
    for group in groups:
        if (offset := _get(group, _GROUP_OFFSET)) is not None:
            offset.value += shift
        columns = _get(group, _GROUP_COLUMNS)
        for chunk in columns.value[1] if columns is not None else []:
            if any(_get(chunk, i) is not None for i in (_CHUNK_PATH, *_CHUNK_ELSEWHERE)):
                raise NotJoinable(f"{path}: a column chunk has a page index, or is elsewhere")
            if (offset := _get(chunk, _CHUNK_OFFSET)) is not None:
                offset.value += shift
            meta = _get(chunk, _CHUNK_META)
            if meta is None:
                raise NotJoinable(f"{path}: a column chunk without its metadata")
            if any(_get(meta.value, i) is not None for i in _META_ELSEWHERE):
                raise NotJoinable(f"{path}: a column chunk has a Bloom filter")
            for field_id in _META_OFFSETS:
                if (offset := _get(meta.value, field_id)) is not None:
                    offset.value += shift


def join_parquet(sources: list[Path], target: Path) -> int:
    """Write the Parquet files ``sources`` (one schema) as the one file ``target``: their
    row groups in order, their pages' bytes as they are. Returns the rows written.
    ``NotJoinable`` (before ``target`` is written) where they cannot be joined so."""
    first: list[_Field] | None = None
    groups: list[Any] = []
    rows = 0
    pieces: list[tuple[Path, int, int]] = []  # a source, where its chunks end, the shift
    written = len(MAGIC)
    for path in sources:
        footer, end = _footer(Path(path))
        if any(_get(footer, i) is not None for i in (_FILE_ENCRYPTION, _FILE_SIGNING)):
            raise NotJoinable(f"{path}: an encrypted footer")
        if first is None:
            first = footer
        else:
            for field_id in (_FILE_SCHEMA, _FILE_KV):
                mine, theirs = _get(footer, field_id), _get(first, field_id)
                if (mine is None) != (theirs is None) or (
                    mine is not None
                    and theirs is not None
                    and _encoded(mine.kind, mine.value) != _encoded(theirs.kind, theirs.value)
                ):
                    raise NotJoinable(f"{path}: its schema differs from {sources[0]}'s")
        own = _get(footer, _FILE_GROUPS)
        mine = own.value[1] if own is not None else []
        _moved(mine, written - len(MAGIC), path)
        groups += mine
        rows += _get(footer, _FILE_ROWS).value  # type: ignore[union-attr]
        pieces.append((path, end, written))
        written += end - len(MAGIC)
    if first is None:
        raise NotJoinable("no files to join")
    if len(groups) > 2**15 - 1:
        raise NotJoinable(f"{len(groups):,} row groups: more than a footer numbers")
    for ordinal, group in enumerate(groups):
        if (field := _get(group, _GROUP_ORDINAL)) is not None:
            field.value = ordinal
    footer = [f for f in first if f.id not in (_FILE_ROWS, _FILE_GROUPS)]
    footer += [_Field(_FILE_ROWS, _I64, rows), _Field(_FILE_GROUPS, _LIST, (_STRUCT, groups))]
    footer.sort(key=lambda f: f.id)
    writer = _Writer()
    writer.struct(footer)
    with open(target, "wb") as out:
        out.write(MAGIC)
        for path, end, _ in pieces:
            with open(path, "rb") as source:
                source.seek(len(MAGIC))
                left = end - len(MAGIC)
                while left:
                    block = source.read(min(left, 1 << 22))
                    out.write(block)
                    left -= len(block)
        out.write(writer.out)
        out.write(struct.pack("<I", len(writer.out)))
        out.write(MAGIC)
    return rows
