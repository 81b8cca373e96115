"""Resolve the ``--input`` arguments (paths, directories, globs, fsspec URLs) to shards.

An input shard is one file; ``plan_units`` then gathers small files into units and cuts
large Parquet files into pieces of row groups, large local JSON Lines files (plain, or
gzip'd and indexed for seeking) into pieces of lines, and large local WARC files into
pieces of records. Local paths are tested;
``s3://bucket/prefix/*.parquet`` and ``hf://datasets/ORG/NAME/data/*.parquet`` work the
same way once the matching fsspec backend (``s3fs``, ``huggingface_hub``) is installed.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fsspec
import xxhash
from fsspec.implementations.local import LocalFileSystem

from curation.io import is_url

FORMATS = ("jsonl", "parquet", "warc", "text")

_EXTENSIONS = {
    "parquet": (".parquet", ".pq"),
    "jsonl": (".jsonl", ".json", ".ndjson"),
    # .warc.wet: Common Crawl's extracted text; .arc is known only to be refused by name
    "warc": (".warc", ".arc", ".wet"),
    "text": (".txt", ".text", ".md"),
}
_ZSTD = (".zst", ".zstd")
_COMPRESSIONS = (".gz", *_ZSTD, ".bz2", ".xz")
_GLOB_CHARS = re.compile(r"[*?\[]")


class InputError(ValueError):
    """An input cannot be found or read. The message names it and says what to do."""


@dataclass(frozen=True)
class InputShard:
    """One input file, a unit of small files, or a piece of a large Parquet or JSONL file.

    ``url`` is what fsspec opens; ``name`` is the file's path relative to the input it
    was found under (it prefixes generated ids, ``<name>/<row>``); ``label`` names the
    shard in results and messages, and ``key`` its folder under ``_work/``. The label is
    stable for the same file and piece; the key also changes with the ``version`` of any
    file the shard reads, so a resumed run reads a file changed since it began again
    instead of reusing what it made of the old content.
    """

    url: str
    name: str
    format: str
    size: int | None = None  # bytes on disk, when the listing said
    # a unit of several small files (see ``plan_units``): read one after another
    members: tuple[InputShard, ...] = ()
    # a piece of a large Parquet file (see ``plan_units``): its row groups, first to one
    # past the last, and the file's row number of its first row (generated ids count on)
    row_groups: tuple[int, int] | None = None
    first_row: int = 0
    # a piece of a large JSONL file: its bytes, first to one past the last (whole lines),
    # and the file's line number (from 0, blank lines counted) of its first line;
    # ``first_row`` is then the number of non-blank lines before it
    byte_range: tuple[int, int] | None = None
    first_line: int = 0
    # what the listing said of the file's version: its size and modification stamp (the
    # time, or the store's ETag or generation); a piece carries its file's
    version: str | None = None
    # a piece of a gzip'd JSONL file: the seek index of its file (see ``gzip_index``), by
    # which ``byte_range`` (then offsets into the decompressed bytes) is found
    gzip_index: str | None = None
    # a piece of a zstd'd JSONL file: where its reader begins to decompress, the byte on
    # disk where the zstd frame that holds the piece's start begins and that frame's first
    # byte in the decompressed stream (``byte_range`` is then of the decompressed bytes)
    zstd_frame: tuple[int, int] | None = None

    @property
    def gzipped(self) -> bool:
        """Whether the file is gzip'd (by its name, as its reader decides)."""
        return self.url.lower().endswith(".gz")

    @property
    def zstd(self) -> bool:
        """Whether the file is compressed with zstd (by its name, as its reader decides)."""
        return self.url.lower().endswith(_ZSTD)

    @property
    def is_piece(self) -> bool:
        """Whether this is a piece of a file rather than a whole file or a unit."""
        return self.row_groups is not None or self.byte_range is not None

    @property
    def label(self) -> str:
        """The url, and for a piece of a file the row groups (numbered from 0) or the bytes
        (offsets from 0, last included; of the decompressed stream for a gzip'd file) it
        reads."""
        if self.row_groups is not None:
            start, stop = self.row_groups
            return f"{self.url} (row groups {start}-{stop - 1})"
        if self.byte_range is not None:
            start, stop = self.byte_range
            decompressed = self.gzip_index or self.zstd_frame
            what = "decompressed bytes" if decompressed else "bytes"
            return f"{self.url} ({what} {start}-{stop - 1})"
        return self.url

    @functools.cached_property
    def key(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name)[-80:]
        what = "\0".join([self.label, *(f.version for f in self.files if f.version)])
        return f"{stem}-{xxhash.xxh64_hexdigest(what.encode('utf-8'), seed=0)[:12]}"

    @property
    def files(self) -> tuple[InputShard, ...]:
        """The input files this shard reads: its members, or itself."""
        return self.members or (self,)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``from_dict`` inverts it), to cross process boundaries."""
        return asdict(self)  # members become dicts too

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputShard:
        members = tuple(cls.from_dict(m) for m in data.get("members", ()))
        return cls(
            data["url"],
            data["name"],
            data["format"],
            data.get("size"),
            members,
            _pair(data.get("row_groups")),
            data.get("first_row", 0),
            _pair(data.get("byte_range")),
            data.get("first_line", 0),
            data.get("version"),
            data.get("gzip_index"),
            _pair(data.get("zstd_frame")),
        )


def _pair(value: Any) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


# A unit of small files, or a piece of a large one, is at most this share of all the
# input's bytes, so that an input of few bytes, or one large file, still gives the workers
# this many shards to share.
_MIN_UNITS = 64

# A piece of JSON lines is at least this many bytes whatever the target: a shard costs a
# task, a marker and its parts, which about 400 C4 documents (1 MiB) make small beside
# their filtering. (A Parquet file's row groups set its pieces' least size.)
_MIN_LINE_PIECE_BYTES = 1 << 20
# ... and at least this share of the input's bytes: finding a JSONL file's pieces reads
# the whole file, which an input of hundreds of large files (as many shards as any
# cluster needs) would pay for nothing.
_MAX_LINE_UNITS = 1024

# A row group's row count and bytes on disk (compressed), from a Parquet file's footer.
RowGroups = list[tuple[int, int]]
# A piece of a JSONL file: its first byte, one past its last, and the file's non-blank
# lines (rows) and lines before it; of a zstd'd JSONL file, two more: where its frame
# begins on disk and in the decompressed bytes (``InputShard.zstd_frame``); of a WARC
# file: its first byte on disk, one past its last, the documents before it and 0.
LinePiece = tuple[int, ...]


def plan_units(
    files: list[InputShard],
    unit_bytes: int,
    row_groups: Callable[[list[InputShard]], list[RowGroups | None]] | None = None,
    line_pieces: Callable[[list[InputShard], int, int], list[list[LinePiece]]] | None = None,
    batch_rows: int = 10_000,
    index_folder: str | None = None,
) -> list[InputShard]:
    """The shards a run hands its workers, from ``files`` (input files, in order): every
    file once, in order. The target size is ``unit_bytes``, or 1/64 of all the input's
    bytes if that is less (so that a small input still spreads over the workers).

    - Consecutive files below the target are gathered into units, read one after another
      as one shard (one task, one resume marker, one set of parts instead of each
      file's); a unit closes when its files reach the target.
    - A Parquet file of at least twice the target is cut into pieces of consecutive row
      groups of at least the target's bytes each (by its footer, which ``row_groups``
      reads; by default ``parquet_row_groups``), so one large file is read by several
      workers at once. The pieces give the rows, ids and order the whole file gives.
    - A local, uncompressed JSON Lines file of at least twice the target (and at least
      2 MiB, and 1/512 of the input) is cut the same way into pieces of whole blocks of
      ``batch_rows`` lines (the reader's batches, so that the rows come out in the whole
      file's order), each at least the target's bytes, 1 MiB and 1/1024 of the input
      (hundreds of large files are left whole: they make shards enough, and finding
      pieces reads the file); ``line_pieces`` finds them (by default
      ``stream_pieces``, which reads the file once to count its lines, at about 2 GB/s
      from the page cache). A ``.json`` file is cut only when it holds JSON lines, not
      one value.
    - With ``index_folder`` (the run's, where its workers see it), a local gzip'd JSONL
      file is cut the same way, by its decompressed bytes, each piece holding about the
      target's share of the file on disk: ``line_pieces`` then also writes the file's
      seek index there (``gzip_index``), by which a worker enters the stream at its
      piece instead of decompressing the file from its start.
    - A local zstd'd JSONL file is cut the same way by its decompressed bytes; a worker
      decompresses from the start of the zstd frame that holds its piece's start and
      passes over the bytes before it (no index: a zstd frame cannot be entered in the
      middle). A file of many frames is cut where the target says; one of a single
      frame (what ``zstd`` writes) into fewer, larger pieces, so that all the workers
      together pass over at most ``ZSTD_PASSED_OVER`` times the file (see
      ``stream_pieces``).
    - A local WARC file, plain or gzip'd a member per record (as Common Crawl ships it),
      is cut the same way into pieces of its bytes on disk, each beginning at a
      document's record after whole blocks of ``batch_rows`` documents (see
      ``warc_record_pieces``): a member per record needs no index.

    ``unit_bytes`` 0 leaves every file alone; so does a file of unknown size, a Parquet
    file of one row group or whose footer cannot be read (its reader then says why), and
    a JSONL or WARC file compressed otherwise (bz2, xz, a zstd'd WARC file, JSONL
    gzip'd without ``index_folder``) or remote (it cannot be read from the middle, or
    would be downloaded twice). The same files give the same shards."""
    if unit_bytes <= 0 or not files:
        return files
    total = sum(s.size or 0 for s in files)
    target = min(unit_bytes, max(1, total // _MIN_UNITS))
    large = [s for s in files if s.format == "parquet" and (s.size or 0) >= 2 * target]
    footers = dict(zip(large, (row_groups or parquet_row_groups)(large), strict=True))
    line_target = max(target, total // _MAX_LINE_UNITS, _MIN_LINE_PIECE_BYTES)
    lined = [
        s
        for s in files
        if _cuttable_stream(s, index_folder is not None) and (s.size or 0) >= 2 * line_target
    ]
    if lined:
        if line_pieces is None:
            from curation.io.readers import stream_pieces

            line_pieces = functools.partial(stream_pieces, index_folder=index_folder)
        cuts = dict(zip(lined, line_pieces(lined, line_target, batch_rows), strict=True))
    else:
        cuts = {}
    shards: list[InputShard] = []
    for file in files:
        if footers and (groups := footers.get(file)):
            shards.extend(_pieces(file, groups, target))
        elif cuts and (lines := cuts.get(file)):
            shards.extend(_line_shards(file, lines, index_folder))
        else:
            shards.append(file)
    return _gather_small(shards, target)


def _cuttable_stream(file: InputShard, indexed: bool) -> bool:
    """A JSONL or WARC file that can be read from the middle: local, and not compressed,
    or gzip'd (JSONL only where seek indexes can be written, ``indexed``; a WARC file
    gzip'd whole is found to be one member when its pieces are looked for), or a JSONL
    file compressed with zstd."""
    if file.format not in ("jsonl", "warc") or is_url(file.url):
        return False
    name = file.url.lower()
    gzipped = file.gzipped and (indexed or file.format == "warc")
    zstd = file.zstd and file.format == "jsonl"
    return not name.endswith(_COMPRESSIONS) or gzipped or zstd


def gzip_index(index_folder: str, file: InputShard) -> str:
    """Where the seek index of the gzip'd ``file`` lies in ``index_folder``: named by the
    file's key, so by its path and version."""
    return os.path.join(index_folder, f"{file.key}.gzindex")


def _line_shards(
    file: InputShard, pieces: list[LinePiece], index_folder: str | None
) -> list[InputShard]:
    """``file`` as its pieces of lines (or of WARC records); the whole file when there are
    fewer than two. The pieces of a gzip'd JSONL file name its seek index, those of a
    zstd'd one the frame each enters at, and the sizes of both are their share of the
    file's bytes on disk."""
    if len(pieces) < 2:
        return [file]
    gzipped = file.format == "jsonl" and file.gzipped
    index = gzip_index(index_folder, file) if gzipped and index_folder else None
    decompressed = index is not None or (file.format == "jsonl" and file.zstd)
    ratio = (file.size or 0) / pieces[-1][1] if decompressed else 1.0
    return [
        InputShard(
            file.url,
            file.name,
            file.format,
            max(1, round((stop - start) * ratio)),
            byte_range=(start, stop),
            first_row=rows,
            first_line=lines,
            version=file.version,
            gzip_index=index,
            zstd_frame=(frame[0], frame[1]) if frame else None,
        )
        for start, stop, rows, lines, *frame in pieces
    ]


def _pieces(file: InputShard, groups: RowGroups, target: int) -> list[InputShard]:
    """``file`` as pieces of consecutive row groups of at least ``target`` bytes each (the
    last takes what is left below the target); the whole file when that is one piece."""
    cuts: list[tuple[int, int, int, int]] = []  # start, stop, first row, bytes
    start, first_row, size, rows = 0, 0, 0, 0
    for index, (count, nbytes) in enumerate(groups):
        size += nbytes
        rows += count
        if size >= target:
            cuts.append((start, index + 1, first_row, size))
            start, first_row, size = index + 1, first_row + rows, 0
            rows = 0
    if start < len(groups):  # a remainder below the target joins the last piece
        if cuts:
            last = cuts.pop()
            cuts.append((last[0], len(groups), last[2], last[3] + size))
        else:
            cuts.append((start, len(groups), first_row, size))
    if len(cuts) < 2:
        return [file]
    return [
        InputShard(
            file.url,
            file.name,
            file.format,
            size,
            row_groups=(start, stop),
            first_row=first,
            version=file.version,
        )
        for start, stop, first, size in cuts
    ]


def parquet_row_groups(files: list[InputShard]) -> list[RowGroups | None]:
    """Each Parquet file's row groups (rows, compressed bytes) from its footer, read a few
    files at a time (remote footers are a request each); None for a file whose footer
    cannot be read, or of a single row group."""
    if not files:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
        return list(pool.map(_row_groups_of, files))


def _row_groups_of(file: InputShard) -> RowGroups | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with fsspec.open(file.url, "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
    except (pa.ArrowException, OSError):
        return None
    if meta.num_row_groups < 2:
        return None
    groups = []
    for index in range(meta.num_row_groups):
        group = meta.row_group(index)
        nbytes = sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        groups.append((group.num_rows, nbytes))
    return groups


def _gather_small(shards: list[InputShard], target: int) -> list[InputShard]:
    """``shards`` with consecutive ones below ``target`` bytes gathered into units."""
    units: list[InputShard] = []
    current: list[InputShard] = []
    size = 0

    def close() -> None:
        if len(current) == 1:
            units.append(current[0])
        elif current:
            first, last = current[0], current[-1]
            units.append(
                InputShard(
                    url=f"{first.url} (+{len(current) - 1} files to {last.name})",
                    name=f"{first.name}+{len(current) - 1}",
                    format="unit",  # read file by file, each in its own format
                    size=sum(m.size or 0 for m in current),
                    members=tuple(current),
                )
            )
        current.clear()

    for shard in shards:
        if shard.size is None or shard.size >= target or shard.is_piece:
            close()
            units.append(shard)
            size = 0
            continue
        current.append(shard)
        size += shard.size
        if size >= target:
            close()
            size = 0
    close()
    return units


def detect_format(path: str) -> str | None:
    """The format implied by a file name (compression suffixes allowed), or None."""
    base = path[path.rfind("/") + 1 :]
    parts = base.rsplit(".", 2)
    # every extension and compression suffix is one dotted part, so a name's last two
    # decide: a folder of many files asks once per ending
    return _format_of_ending("." + ".".join(parts[1:]) if len(parts) > 1 else "")


@lru_cache(maxsize=4096)
def _format_of_ending(ending: str) -> str | None:
    name = name_stem(ending)
    for fmt, extensions in _EXTENSIONS.items():
        if name.endswith(extensions):
            return fmt
    return None


def resolve_inputs(paths: list[str], fmt: str = "auto") -> list[InputShard]:
    """Expand ``paths`` to input shards, sorted by url, each with its format.

    Raises ``InputError`` for a path that does not exist, a glob or directory with no
    readable file, a file of unknown format, or two shards with the same name.
    """
    if not paths:
        raise InputError("no input given: pass --input PATH (a file, directory, glob or URL)")
    shards: dict[str, InputShard] = {}
    for path in paths:
        for shard in _expand(path, fmt):
            shards.setdefault(shard.url, shard)
    ordered = sorted(shards.values(), key=lambda s: s.url)
    clashes = [name for name, n in Counter(s.name for s in ordered).items() if n > 1]
    if clashes:
        raise InputError(
            f"several inputs are named {clashes[0]!r}, so their generated ids would collide: "
            "pass their common parent directory instead of each file"
        )
    return ordered


def _expand(path: str, fmt: str) -> list[InputShard]:
    fs, root = fsspec.core.url_to_fs(path)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]

    def url(p: str) -> str:
        return p if protocol in ("file", "local") else f"{protocol}://{p}"

    kind, listed = _listed(fs, root)
    if kind == "glob":
        base = _glob_base(root)
        # as the shell: a hidden name (a leading '.') matches only a pattern that names one
        dotted = _hidden(_below(root, base), (".",))
        files = sorted(p for p, info in listed.items() if info.get("type") == "file")
        matches = [m for m in files if dotted or not _hidden(_below(m, base), (".",))]
        if not matches:
            hidden = (
                f" but hidden ones ({files[0]!r}...): name them with a leading '.'" if files else ""
            )
            raise InputError(f"input glob {path!r} matched no files{hidden}: check the pattern")
        found = [(m, posixpath.relpath(m, base), listed[m]) for m in _once(matches, listed, base)]
        shards = _with_formats(found, fmt, path, url, strict=fmt == "auto" or len(found) == 1)
        if not shards:
            raise InputError(
                f"input glob {path!r} matched only files named as another format than "
                f"{fmt}: pass --format auto to read each file by its name"
            )
        return shards
    if kind == "missing":
        raise InputError(f"input {path!r} does not exist: check the path (and the fsspec URL)")
    if kind == "folder":
        top = root.rstrip("/")
        _refuse_run_folder(path, top, listed)
        base = posixpath.dirname(top)
        # hidden below the folder, as Spark and pyarrow.dataset: .git/, _SUCCESS, _tmp/
        visible = [f for f in sorted(listed) if not _hidden(_below(f, top), (".", "_"))]
        found = [(f, _below(f, base), listed[f]) for f in _once(visible, listed, top)]
        shards = _with_formats(found, fmt, path, url, strict=False)
        if not shards and fmt != "auto":
            raise InputError(
                f"input directory {path!r} holds only files named as another format than "
                f"{fmt}: pass --format auto to read each file by its name"
            )
        if not shards and not visible:
            if listed:  # every name hidden
                raise InputError(
                    f"input directory {path!r} holds only hidden names ({min(listed)!r}"
                    "...: a name below it that begins with '.' or '_' is passed over)"
                )
            local = protocol in ("file", "local")
            raise InputError(
                f"input directory {path!r} is empty{_empty_kept(path) if local else ''}"
            )
        if not shards:
            raise InputError(
                f"input directory {path!r} holds no file of a known format "
                f"({', '.join(FORMATS)}): pass --format to read other extensions"
            )
        return shards
    found = [(root, posixpath.basename(root), listed[root])]
    return _with_formats(found, fmt, path, url, strict=True)


def _empty_kept(path: str) -> str:
    """What to add when the empty local folder ``path`` is a finished run's ``kept/``."""
    run = os.path.dirname(os.path.normpath(path))
    if os.path.basename(os.path.normpath(path)) != "kept":
        return ""
    if not os.path.isfile(os.path.join(run, "stats.json")):
        return ""
    return f": the run {run!r} kept no document (`curate inspect {run}` shows what dropped them)"


def _hidden(relative: str, marks: tuple[str, ...]) -> bool:
    """Whether a part of ``relative`` (a path below an input folder or a glob's fixed
    part) begins with one of ``marks``."""
    return any(part.startswith(marks) for part in relative.split("/"))


def _once(paths: list[str], listed: dict[str, dict[str, Any]], base: str) -> list[str]:
    """``paths`` (sorted, below the folder ``base``) with each file once: of the paths that
    lead to one file (one device and inode: through a link to it, or to a folder above
    it), the one with no link below ``base`` is kept, else the first. Only listings with
    a link are checked: a folder walk marks its links ``islink``, and the local glob's
    entries carry their ``inode`` (object stores list no links)."""
    if not any("inode" in listed[p] or listed[p].get("islink") for p in paths):
        return paths
    import os

    def node(path: str) -> tuple[int, int]:
        if "inode" in listed[path]:
            return listed[path]["inode"]
        st = os.stat(path)
        return st.st_dev, st.st_ino

    def through_link(path: str) -> bool:
        parts = _below(path, base).split("/")
        return any(os.path.islink(posixpath.join(base, *parts[: i + 1])) for i in range(len(parts)))

    chosen: dict[tuple[int, int], str] = {}
    for path in paths:
        held = chosen.setdefault(same := node(path), path)
        if held != path and through_link(held) and not through_link(path):
            chosen[same] = path  # the file's own path, after a link to it
    kept = set(chosen.values())
    return [p for p in paths if p in kept]


def kept_of_runs(paths: list[str], verb: str) -> list[str]:
    """``paths``, with each finished curation run folder (``stats.json`` and
    ``recipe.yaml``) replaced by its ``kept/`` folder: for the commands that read
    documents to learn from or convert (``tokenize``, ``train-lm`` ...), what a run kept is
    what one means. A run that kept nothing (no part in ``kept/``) is an ``InputError``
    naming it and what ``verb`` would have done. Other paths are left as they are."""
    out = []
    for path in paths:
        root = Path(path)
        finished = (root / "stats.json").is_file() and (root / "recipe.yaml").is_file()
        if not (root.is_dir() and finished):
            out.append(path)
            continue
        kept = root / "kept"
        # with output.partition_by, kept/ holds a folder per value
        parts = [p for p in kept.rglob("part-*") if p.is_file()] if kept.is_dir() else []
        if not parts:
            try:
                read = json.loads((root / "stats.json").read_text())["rows"]["read"]
                said = f"0 of {read:,} documents"
            except (OSError, ValueError, KeyError, TypeError):
                said = "its kept/ holds no part"
            raise InputError(
                f"{root} is a run that kept no document ({said}): there is nothing of it to "
                f"{verb}; leave it out (`curate inspect {root}` shows what dropped them)"
            )
        out.append(str(kept))
    return out


def _refuse_run_folder(path: str, top: str, listed: dict[str, dict[str, Any]]) -> None:
    """An ``InputError`` when the folder ``top`` is a curation run's output folder: read
    whole, its ``dropped/`` and ``_work/`` would bring back the rows the run dropped."""
    finished = f"{top}/stats.json" in listed and f"{top}/recipe.yaml" in listed
    if not finished and f"{top}/_work/run.json" not in listed:
        return
    kept = posixpath.join(path, "kept")
    if finished:
        raise InputError(
            f"input {path!r} is the output folder of a curation run: pass {kept!r} to read "
            "the documents it kept (the whole folder would read its dropped/ documents too)"
        )
    raise InputError(
        f"input {path!r} is the output folder of an unfinished curation run: finish it with "
        f"the same curate run command, then pass {kept!r} to read the documents it kept"
    )


def _listed(fs: Any, root: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """What ``fs`` lists at ``root``, each entry with its listing info (type, size, time):
    ``("glob", matches)`` (folders too), ``("folder", every file below it)``, ``("file",
    {root: info})`` or ``("missing", {})``. A path that names an existing file or folder
    is that, even when its name holds glob characters (``data[1].jsonl``). Symbolic links
    are resolved (``_resolved``). One listing call, none per file but a link."""
    if _GLOB_CHARS.search(root) and not fs.exists(root):
        return "glob", _resolved(fs, _glob(fs, root), None)
    if not fs.exists(root):
        return "missing", {}
    if fs.isdir(root):
        return "folder", _resolved(fs, _find(fs, root), root)
    return "file", {root: fs.info(root)}


def _find(fs: Any, folder: str) -> dict[str, dict[str, Any]]:
    """Every entry below ``folder`` but folders, by path, sorted: fsspec's ``find(folder,
    detail=True)``. On a local disk the engine walks it itself, keeping of each entry only
    what it reads (name, size, type, mtime, islink, a link's destination): fsspec's local
    entry has ten fields and normalises each path again, 17 us a file of the 27 a listing
    took (a folder of 20,000 files: 0.40 s, now 0.12 s). As fsspec's: links, to files or
    folders, are entries of type ``other`` (``_resolved`` follows them); unlike it, a
    folder that cannot be listed is an error, not passed over."""
    if not isinstance(fs, LocalFileSystem):
        return fs.find(folder, detail=True)
    import os
    import stat

    found: dict[str, dict[str, Any]] = {}
    todo = [folder.rstrip("/") or "/"]
    while todo:
        here = todo.pop()
        prefix = here.rstrip("/") + "/"
        try:
            entries = list(os.scandir(here))
        except FileNotFoundError:
            continue  # removed while listed
        except OSError as err:
            raise InputError(
                f"input folder {here!r} cannot be listed ({err.strerror}): give this user "
                "read access to it, or name the files to read"
            ) from None
        for entry in entries:
            path = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(path)
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            link = stat.S_ISLNK(st.st_mode)
            info = {
                "name": path,
                "size": st.st_size,
                "type": "file" if stat.S_ISREG(st.st_mode) else "other",
                "mtime": st.st_mtime,
                "islink": link,
            }
            if link:  # as fsspec: the size of what it leads to (0 when broken)
                try:
                    info["size"] = os.stat(path).st_size
                except OSError:
                    info["size"] = 0
                info["destination"] = os.readlink(path)
            found[path] = info
    return dict(sorted(found.items()))


def _glob(fs: Any, pattern: str) -> dict[str, dict[str, Any]]:
    """The matches of ``pattern`` with their listing info, hidden names (a leading ``.``)
    included (``_expand`` keeps them only where the pattern names one, as the shell). On a
    local disk, a pattern without ``**`` matches as in the shell (Python's ``glob``):
    through linked folders. Elsewhere, and for ``**`` (which would loop through a link to
    a folder above), fsspec's ``glob``, which does not enter linked folders."""
    if not isinstance(fs, LocalFileSystem) or "**" in pattern:
        return fs.glob(pattern, detail=True)
    import glob
    import os
    import stat

    found: dict[str, dict[str, Any]] = {}
    for match in sorted(glob.glob(pattern, include_hidden=True)):  # filtered by the caller
        try:
            st = os.stat(match)  # follows links
        except FileNotFoundError:  # a broken link: ``_resolved`` names it
            found[match] = {"type": "other", "islink": True, "destination": os.readlink(match)}
            continue
        kind = "file" if stat.S_ISREG(st.st_mode) else "other"
        kind = "directory" if stat.S_ISDIR(st.st_mode) else kind
        # what fsspec's local info says of a file, links followed, and for ``_once`` the
        # file's device and inode (a match may be a file reached through a link)
        found[match] = {
            "name": match,
            "size": st.st_size,
            "type": kind,
            "mtime": st.st_mtime,
            "inode": (st.st_dev, st.st_ino),
        }
    return found


def _resolved(
    fs: Any, listed: dict[str, dict[str, Any]], walked: str | None, seen: set[str] | None = None
) -> dict[str, dict[str, Any]]:
    """``listed`` with every entry that is neither a file nor a folder (the listing's
    ``other``: a symbolic link, a pipe, a socket) resolved, under its own path:

    - a link to a file: the file's entry (its size and time), marked ``islink``;
    - a link to a folder, in the folder ``walked``: the files below it, under the link's
      path, unless it leads into a folder walked already or above one (its files are
      listed once, and a loop ends); in a glob (``walked`` None): the folder's entry;
    - a broken link, or a pipe, socket or device: an ``InputError`` that names it (reading
      a pipe would wait for ever).

    ``seen``: the real paths of the folders walked so far (links exist on local disks
    only; object stores list none, and cost nothing here)."""
    import os

    if all(info.get("type") in ("file", "directory") for info in listed.values()):
        return listed  # the common case
    out: dict[str, dict[str, Any]] = {}
    for path, info in listed.items():
        if info.get("type") in ("file", "directory"):
            out[path] = info
            continue
        try:
            target = fs.info(path)  # follows a link
        except FileNotFoundError:
            raise InputError(
                f"input {path!r} is a broken symbolic link (to {info.get('destination')!r}): "
                "point it at an existing file or remove it"
            ) from None
        kind = target.get("type")
        if kind not in ("file", "directory"):
            raise InputError(
                f"input {path!r} is not a regular file (a pipe, socket or device): move it "
                "out of the input folder, or name the files to read"
            )
        if kind == "directory" and walked is not None:
            seen = seen if seen is not None else {os.path.realpath(walked)}
            real = os.path.realpath(path)
            if any(_within(real, w) or _within(w, real) for w in seen):
                continue  # its files are listed already, or a loop
            seen.add(real)
            out.update(_resolved(fs, _find(fs, path), walked, seen))
        else:
            out[path] = {**target, "name": path, "islink": True}
    return out


def _within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


# What fsspec's listings say of a file's modification: local files and most stores give a
# time, object stores an ETag or a generation, the Hugging Face Hub a blob id (the first
# one present is taken).
_STAMPS = (
    "mtime",
    "LastModified",
    "last_modified",
    "updated",
    "ETag",
    "etag",
    "generation",
    "blob_id",
)


def file_version(info: dict[str, Any]) -> str | None:
    """A file's version from its fsspec listing entry: its size and modification stamp
    (None when the listing says neither)."""
    size, stamp = info.get("size"), info.get("mtime")  # local files: the common case
    if stamp is None:
        stamp = next((info[k] for k in _STAMPS if info.get(k) is not None), None)
    return None if size is None and stamp is None else f"{size}/{stamp}"


def file_versions(paths: Iterable[str]) -> dict[str, str | None]:
    """Every file at ``paths`` (each a file, a folder searched through, or a glob; local or
    an fsspec URL) by its path, with its ``file_version``, in path order; none for a path
    where there is none."""
    found: dict[str, str | None] = {}
    for path in paths:
        fs, root = fsspec.core.url_to_fs(path)
        listed = _listed(fs, root)[1]
        found.update((p, file_version(i)) for p, i in listed.items() if i.get("type") == "file")
    return dict(sorted(found.items()))


def file_change(then: dict[str, str | None], now: dict[str, str | None]) -> str | None:
    """How two ``file_versions`` records differ, said of the first file that differs:
    ``"<path>, changed (size or modification time),"``, ``"<path>, is gone,"`` or
    ``"<path>, appeared,"`` (with how many more files differ); None when they agree."""
    changed = [p for p in sorted(then.keys() | now.keys()) if then.get(p) != now.get(p)]
    if not changed:
        return None
    first = changed[0]
    how = "is gone" if first not in now else "appeared" if first not in then else "changed"
    more = f" (and {len(changed) - 1} more files)" if len(changed) > 1 else ""
    detail = " (size or modification time)" if how == "changed" else ""
    return f"{first}{more}, {how}{detail},"


def _below(path: str, base: str) -> str:
    """``path`` relative to ``base``, a folder above it (``posixpath.relpath``, which
    costs 13 us a call: seconds for a folder of many small files, where this slices)."""
    prefix = base.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else posixpath.relpath(path, base)


def _with_formats(
    found: list[tuple[str, str, dict[str, Any]]],
    fmt: str,
    origin: str,
    url: Callable[[str], str],
    strict: bool,
) -> list[InputShard]:
    """The shards of ``found`` (path, name, listing entry) with their formats. With ``fmt`` auto,
    each file's format comes from its name, and a file whose name tells none is an error
    when ``strict`` (a file named on its own) or passed over (a directory's other files).
    With a format given, every file is read in it, except a file whose name says another
    format where one of the two is a container (Parquet, WARC): read as the other, its
    bytes would become rows of garbage, each dropped. Such a file is an error when ``strict``, and
    passed over in a directory or glob (a README.md beside the Parquet shards). So is a
    file whose name tells no format, given a container format, when its first bytes are
    not that format's (``warc.paths.gz`` beside the WARC files): only such files are
    opened here."""
    shards = []
    for file_path, name, info in found:
        named = detect_format(file_path)
        chosen = named if fmt == "auto" else fmt
        if chosen is None or _formats_clash(fmt, named):
            if strict:
                raise InputError(_unreadable_by_name(file_path, origin, fmt, named))
            continue
        if named is None and chosen in _MAGIC:
            begins = _first_bytes(url(file_path), len(_MAGIC[chosen]))
            if begins is not None and begins != _MAGIC[chosen]:
                if strict:
                    kind = _SHOWN[chosen]
                    raise InputError(
                        f"{url(file_path)!r} is not a {kind} file: it begins with {begins!r}, "
                        f"where a {kind} file begins with {_MAGIC[chosen]!r}. Pass the {kind} "
                        "files themselves, or --format for what it holds"
                    )
                continue  # warc.paths.gz beside the WARC files it lists
        if chosen == "warc" and name_stem(file_path).endswith(".arc"):
            raise InputError(
                f"{url(file_path)!r} is an ARC file, the web archive format before WARC, "
                "which this engine does not read (FastWARC reads WARC only): convert it to "
                "WARC first (warcio, for one, reads ARC and writes WARC)"
            )
        shards.append(
            InputShard(url(file_path), name, chosen, info.get("size"), version=file_version(info))
        )
    return shards


# How a file of a container format begins; a file whose name tells no format is read in
# one only when it begins so.
_MAGIC = {"warc": b"WARC/", "parquet": b"PAR1"}
_SHOWN = {"warc": "WARC", "parquet": "Parquet"}


def _first_bytes(url: str, count: int) -> bytes | None:
    """The first ``count`` bytes of the file at ``url``, decompressed as the readers
    decompress it; None when it cannot be read (the reader then says why, naming it)."""
    from curation.io.readers import open_chunks  # the readers import this module

    head = b""
    try:
        with open_chunks(url) as chunks:
            for chunk in chunks:
                head += chunk[: count - len(head)]
                if len(head) == count:
                    break
    except Exception:  # damaged, unreadable, a codec missing: the reader will say
        return None
    return head


def _unreadable_by_name(file_path: str, origin: str, fmt: str, named: str | None) -> str:
    """Why ``file_path`` cannot be read in ``fmt`` (auto: as its name says), and what to
    pass instead."""
    if named is None:
        return (
            f"cannot tell the format of {file_path!r} (from {origin!r}) by its name: pass "
            f"--format with one of {', '.join(FORMATS)}"
        )
    return (
        f"{file_path!r} is named as {named} but would be read as {fmt} (the recipe's "
        f"input.format or --format): pass --format {named}, or --format auto to read each "
        "file by its name"
    )


def name_stem(path: str) -> str:
    """The lower-case name without its compression suffix."""
    name = path.lower()
    for suffix in _COMPRESSIONS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _formats_clash(fmt: str, named: str | None) -> bool:
    """True when a file named as ``named`` cannot be meant to be read as ``fmt``: one of
    them is a container format. JSONL in a ``.txt`` file, say, is read as asked."""
    containers = ("parquet", "warc")
    if fmt == "auto" or named is None or named == fmt:
        return False
    return fmt in containers or named in containers


def _glob_base(pattern: str) -> str:
    parts = pattern.split("/")
    fixed = []
    for part in parts:
        if _GLOB_CHARS.search(part):
            break
        fixed.append(part)
    return "/".join(fixed) or "/"
