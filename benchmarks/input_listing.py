"""Which files an input folder stands for, and what listing it costs: curation against
datatrove's ``DataFolder.list_files``, the listing behind its readers.

1. A folder laid out as real crawls' folders are: data files, a ``.git/`` and a
   ``_tmp/`` folder, a hidden editor file, a link ``latest.jsonl`` to one of the files,
   and a linked folder (storage mounted elsewhere). Each tool's list is printed, with
   what it reads twice, reads that is not data, and leaves out.
2. Listing the 20,000 one-document JSONL files of ``small_files.py`` (made if missing):
   best of 7, as a folder and as a glob.

Run: ``.venv/bin/python benchmarks/input_listing.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curation.io.inputs import resolve_inputs  # noqa: E402

SMALL = ROOT / "benchmarks" / "_data" / "small_files" / "20000-jsonl"


def layout(top: Path) -> tuple[Path, set[str], set[str]]:
    """The folder of part 1; returns it, the data files a reader should read (by their
    path below it) and the files that are not data."""
    data, mounted = top / "data", top / "mounted-storage"
    wanted = {"a.jsonl", "sub/b.jsonl", "mounted/y.jsonl"}
    not_data = {".git/objects.jsonl", "_tmp/partial.jsonl", "sub/.b.jsonl.swp.jsonl"}
    for rel in {"a.jsonl", "sub/b.jsonl"} | not_data:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_text(json.dumps({"text": rel}) + "\n")
    mounted.mkdir(parents=True)
    (mounted / "y.jsonl").write_text(json.dumps({"text": "y"}) + "\n")
    (data / "mounted").symlink_to(mounted)
    (data / "latest.jsonl").symlink_to(data / "a.jsonl")  # a.jsonl again
    return data, wanted, not_data


def curation_list(folder: Path) -> list[str]:
    return [s.name.split("/", 1)[1] for s in resolve_inputs([str(folder)])]


def datatrove_list(folder: Path) -> list[str]:
    from datatrove.io import get_datafolder

    return get_datafolder(str(folder)).list_files(recursive=True)


def best_of(fn: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, wanted, not_data = layout(Path(tmp))
        print("| tool | files listed | data read | not data read | read twice | left out |")
        print("|---|---:|---:|---:|---:|---|")
        for tool, lister in (("curation", curation_list), ("datatrove", datatrove_list)):
            listed = lister(data)
            twice = [f for f in listed if f == "latest.jsonl"]
            out = sorted(wanted - set(listed))
            print(
                f"| {tool} | {len(listed)} | {len(wanted & set(listed))} of {len(wanted)} | "
                f"{len(not_data & set(listed))} of {len(not_data)} | {len(twice)} | "
                f"{', '.join(out) or '-'} |"
            )
            print(f"  {tool}: {sorted(listed)}", file=sys.stderr)
    if not SMALL.is_dir():  # small_files.py's own run makes 2,000 by default
        from benchmarks.small_files import build

        build(20_000, ".jsonl")
    print()
    print("| listing 20,000 files | curation ms | datatrove ms | datatrove / curation |")
    print("|---|---:|---:|---:|")
    from datatrove.io import get_datafolder

    for how, ours, theirs in (
        (
            "folder",
            lambda: resolve_inputs([str(SMALL)]),
            lambda: get_datafolder(str(SMALL)).list_files(recursive=True),
        ),
        (
            "glob *.jsonl",
            lambda: resolve_inputs([f"{SMALL}/*.jsonl"]),
            lambda: get_datafolder(str(SMALL)).list_files(glob_pattern="*.jsonl"),
        ),
    ):
        a, b = best_of(ours), best_of(theirs)
        print(f"| {how} | {a * 1000:.0f} | {b * 1000:.0f} | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
