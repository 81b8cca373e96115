"""Which files an input folder or glob stands for: hidden parts, run folders, symbolic
links, pipes and names that hold glob characters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.io.inputs import InputError, resolve_inputs
from tests.conftest import recipe_of, run_local, run_that_kept_nothing


def doc(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"text": "{text}"}}\n', encoding="utf-8")
    return path


def names(path: str | Path) -> list[str]:
    return [s.name for s in resolve_inputs([str(path)])]


def test_a_folder_is_read_without_its_hidden_parts(tmp_path: Path) -> None:
    # As Spark and pyarrow.dataset: a name below the folder that begins with '.' or '_'
    # is not data (.git/, _SUCCESS, _tmp/, an editor's .swp), at any depth; a glob
    # matches hidden names only where it names one, as the shell does.
    data = tmp_path / "data"
    for rel in ["a.jsonl", "sub/b.jsonl", ".git/c.jsonl", "_tmp/d.jsonl", "sub/.e.jsonl"]:
        doc(data / rel, rel)
    (data / "sub" / "_SUCCESS").write_text("")
    assert names(data) == ["data/a.jsonl", "data/sub/b.jsonl"]
    assert names(f"{data}/*.jsonl") == ["a.jsonl"]
    assert names(f"{data}/sub/.*.jsonl") == [".e.jsonl"]
    assert names(f"{data}/.git/*.jsonl") == ["c.jsonl"]  # named: the user asked for it
    with pytest.raises(InputError, match=r"matched no files but hidden ones .*\.e\.jsonl"):
        resolve_inputs([f"{data}/sub/*e.jsonl"])
    # a folder whose own name is hidden is read when named
    assert names(data / "_tmp") == ["_tmp/d.jsonl"]


def test_a_run_folder_as_input_is_refused_naming_its_kept_folder(
    c4_path: Path, tmp_path: Path
) -> None:
    # Read whole, a run folder's dropped/ and _work/ parts would bring back every row the
    # run dropped, and its stats.json would be read as a document.
    out = tmp_path / "run"
    run_local(recipe_of("stages:\n  - length_filter: {min_chars: 1500}\n", c4_path), out)
    with pytest.raises(InputError, match=rf"output folder of a curation run: pass '{out}/kept'"):
        resolve_inputs([str(out)])
    assert names(out / "kept") == ["kept/part-00000.parquet"]
    for child in ("kept", "dropped", "stats.json", "recipe.yaml"):  # killed before the end
        target = out / child
        target.unlink() if target.is_file() else [p.unlink() for p in target.iterdir()]
    with pytest.raises(InputError, match=r"unfinished curation run: finish it with the same"):
        resolve_inputs([str(out)])


def test_symbolic_links_are_followed_once_and_bad_ones_named(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    doc(data / "v3.jsonl", "v3")
    doc(data / "real" / "x.jsonl", "x")
    doc(outside / "far.jsonl", "far")
    doc(outside / "deep" / "y.jsonl", "y")
    (data / "latest.jsonl").symlink_to(data / "v3.jsonl")  # the same file: read once
    (data / "far.jsonl").symlink_to(outside / "far.jsonl")  # under the link's name
    (data / "mounted").symlink_to(outside / "deep")  # a linked folder: followed
    (data / "again").symlink_to(data / "real")  # a folder listed already: once
    (data / "real" / "up").symlink_to(data)  # a loop: ends
    expected = ["data/far.jsonl", "data/mounted/y.jsonl", "data/real/x.jsonl", "data/v3.jsonl"]
    assert names(data) == expected
    shards = resolve_inputs([str(data)])
    assert [s.size for s in shards] == [
        os.stat(p).st_size for p in map(Path, [s.url for s in shards])
    ]
    # a glob without ** goes through linked folders as the shell does, each file once
    assert names(f"{data}/*/*.jsonl") == ["mounted/y.jsonl", "real/x.jsonl"]
    assert names(f"{data}/*.jsonl") == ["far.jsonl", "v3.jsonl"]

    (data / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    for path in (data, f"{data}/*.jsonl"):
        with pytest.raises(InputError, match=r"gone.jsonl' is a broken symbolic link \(to '"):
            resolve_inputs([str(path)])
    (data / "gone.jsonl").unlink()
    os.mkfifo(data / "pipe.jsonl")  # reading it would wait for ever
    with pytest.raises(InputError, match=r"pipe.jsonl' is not a regular file \(a pipe"):
        resolve_inputs([str(data)])


def test_a_file_named_with_glob_characters_is_read_by_its_name(tmp_path: Path) -> None:
    literal = doc(tmp_path / "crawl [2024]" / "part[1].jsonl", "one")
    doc(tmp_path / "crawl [2024]" / "part1.jsonl", "other")
    assert names(literal) == ["part[1].jsonl"]
    assert names(literal.parent) == ["crawl [2024]/part1.jsonl", "crawl [2024]/part[1].jsonl"]
    # a pattern that names no existing path is still a glob
    assert names(tmp_path / "crawl [[]2024]" / "part?.jsonl") == ["crawl [2024]/part1.jsonl"]


def test_the_local_walk_lists_what_fsspec_find_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's own walk of a local folder: fsspec's find(detail=True), entry for
    entry, in the fields the engine reads, links and hidden names included; a folder that
    cannot be listed is an error naming it, where fsspec passes over it."""
    import fsspec

    from curation.io import inputs

    data = tmp_path / "data"
    for rel in ["a.jsonl", "sub/b.jsonl.gz", ".git/c", "sub/deeper/d.parquet", "_tmp/e"]:
        doc(data / rel, rel)
    (data / "empty").mkdir()
    (data / "to-a.jsonl").symlink_to(data / "a.jsonl")
    (data / "to-sub").symlink_to(data / "sub")
    (data / "broken").symlink_to(tmp_path / "nowhere")
    fs = fsspec.filesystem("file")
    theirs, ours = fs.find(str(data), detail=True), inputs._find(fs, str(data))
    assert list(ours) == list(theirs) and len(ours) == 8
    for path, entry in theirs.items():
        for field in ("name", "size", "type", "mtime", "islink"):
            assert ours[path][field] == entry[field], (path, field)
        assert ours[path].get("destination") == entry.get("destination")

    real = os.scandir

    def refused(path: str):  # what a folder without read permission does
        if str(path).endswith("/sub"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", refused)
    with pytest.raises(InputError, match=r"data/sub' cannot be listed \(Permission denied\)"):
        resolve_inputs([str(data)])


@settings(max_examples=300)
@given(
    stem=st.text(alphabet="ab.-_/", max_size=8),
    extension=st.sampled_from(["", ".jsonl", ".JSON", ".ndjson", ".parquet", ".pq", ".warc",
                               ".arc", ".wet", ".txt", ".text", ".md", ".csv", ".gz"]),
    compression=st.sampled_from(["", ".gz", ".zst", ".ZSTD", ".bz2", ".xz", ".tar"]),
)  # fmt: skip
def test_a_names_format_is_decided_by_its_last_two_suffixes(
    stem: str, extension: str, compression: str
) -> None:
    """detect_format, which asks once per ending, says what the name's whole lower-case
    form says: a compression suffix taken off, then an extension."""
    from curation.io.inputs import _EXTENSIONS, detect_format, name_stem

    path = f"dir.jsonl/{stem}{extension}{compression}"
    whole = name_stem(path)
    expected = next((f for f, ends in _EXTENSIONS.items() if whole.endswith(ends)), None)
    assert detect_format(path) == expected


def test_an_empty_folder_is_said_to_be_empty(tmp_path: Path) -> None:
    """Not "no file of a known format: pass --format": a run's empty kept/ names the run,
    and a folder of hidden names says they are passed over."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"'.*empty' is empty$"):
        resolve_inputs([str(tmp_path / "empty")])
    run = run_that_kept_nothing(tmp_path)
    with pytest.raises(InputError, match=rf"is empty: the run '{run}' kept no document"):
        resolve_inputs([str(run / "kept")])
    doc(tmp_path / "hidden" / ".draft.jsonl", "a")
    with pytest.raises(InputError, match=r"holds only hidden names \('.*\.draft\.jsonl'"):
        resolve_inputs([str(tmp_path / "hidden")])
