"""The C4 recipe end to end: ``curate run pipelines/c4.yaml`` against the same pipeline
built from datatrove's blocks, one core each.

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents.
Copy ``r`` > 0 of a document loses every ``(r + 6)``-th word of each line (so copies share
their short lines, not their long ones) and gets its own URL (``?copy=r``), except that
every tenth row keeps the first copy's URL: a second crawl of the same page, which the
URL dedup removes. Pile documents, which have no URL, get ``https://example.org/pile/<n>``.
Each row's crawl date (``date``, ISO 8601 text) is a second older than the row before,
so the copy of a URL that C4's rule keeps, the newest, is the first in reading order,
which datatrove's exact dedup keeps. Written once as 8 zstd Parquet shards (``id``,
``text``, ``url``, ``date``), ids zero-padded in reading order. Reading WET files is not
compared (both read the text).

Jobs, each in a child process pinned to one core (Arrow, polars and OpenMP on one
thread), each reading the shards and writing its kept documents as Parquet:
- ``curation``: ``pipelines/c4.yaml`` with ``--format parquet`` on the local executor:
  C4's page length cap, the newest page per URL, C4's line and page rules with TFDS's
  limits, each line in one page only (then 3 sentences left), language (lid.176, ``en``
  at 0.65), LDNOOBW bad words; every dropped document written with its reason.
- ``datatrove``: the same steps from datatrove's blocks, composed as a datatrove user
  would: exact dedup's three steps keyed on the URL (C4's normalisation of it, as a
  content getter), the first and last after a ``LambdaFilter`` for C4's length cap (the
  two must see the same documents), the last one followed by
  ``C4QualityFilter(min_words_per_line=5, min_num_sentences=3)`` (its end marks set to
  C4's ``. ? ! "``) and a Parquet writer; then sentence dedup's three steps over lines
  (``split_sentences=False``, spans of 1, no word minimum, 3 sentences), the last one
  followed by ``LanguageFilter`` (handed the same lid.176 file) and ``C4BadWordsFilter``
  (its download cache seeded with the same list) and a Parquet writer.

Reports seconds, documents per second and peak memory per job, the ratio, the documents
each step left, and how far the two kept sets and their texts agree.

    .venv/bin/python benchmarks/c4_pipeline.py --docs 10000
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import (  # noqa: E402
    SHARED,
    one_thread_arrow,
    pipeline_table,
    real_documents,
    report_from_child,
    run_on_one_core,
    thinned,
    write_parquet_shards,
)
from benchmarks.fineweb_pipeline import _datatrove_language_filter  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "c4"
RUNS = HERE / "_runs" / "c4"
SHARDS = 8
WORDS = SHARED / "lists" / "ldnoobw-en.txt"


def corpus(count: int) -> Path:
    base = real_documents()
    c4 = sum(url is not None for _, url in base)  # C4's come first
    urls = [url or f"https://example.org/pile/{k - c4}" for k, (_, url) in enumerate(base)]
    texts, page_urls = [], []
    for i in range(count):
        copy = i // len(base)
        url = urls[i % len(base)]
        texts.append(thinned(base[i % len(base)][0], copy))
        page_urls.append(url if copy == 0 or i % 10 == 0 else f"{url}?copy={copy}")
    newest = datetime(2019, 4, 25, tzinfo=UTC)
    dates = [(newest - timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(count)]
    ids = [f"d{i:09d}" for i in range(count)]
    table = pa.table({"id": ids, "text": texts, "url": page_urls, "date": dates})
    return write_parquet_shards(table, DATA, SHARDS)


def _kept(out: Path) -> dict[str, str]:
    kept = pq.read_table(out / "kept", columns=["id", "text"])
    return dict(zip(kept["id"].to_pylist(), kept["text"].to_pylist(), strict=True))


def job_curation(folder: Path, out: Path) -> dict:
    from curation.recipe import load_recipe
    from curation.runtime.run import RunOptions, run

    work = out.parent / "curation-cwd"  # the recipe names lists/ldnoobw-en.txt
    (work / "lists").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(WORDS, work / "lists" / "ldnoobw-en.txt")
    os.chdir(work)
    recipe = load_recipe(ROOT / "pipelines" / "c4.yaml").with_input(
        paths=[str(folder)], format="parquet"
    )
    started = time.perf_counter()
    stats = run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    seconds = time.perf_counter() - started
    steps = {s["name"]: s["rows_kept"] for s in stats["stages"]}
    return {"seconds": seconds, "kept": _kept(out), "steps": steps}


def _seed_badwords_cache(home: Path) -> None:
    """datatrove's C4BadWordsFilter downloads the LDNOOBW list into its asset cache; the
    cache is seeded with the same file, so its own code runs offline."""
    from datatrove.io import cached_assets_path, strip_protocol
    from datatrove.pipeline.filters.c4_filters import _EN_BADWORDS_URL

    os.environ["HF_HOME"] = str(home)
    folder = Path(
        cached_assets_path(library_name="datatrove", namespace="filters", subfolder="c4_badwords")
    )
    cached = folder / strip_protocol(_EN_BADWORDS_URL).replace("/", "_")
    cached.write_bytes(WORDS.read_bytes())
    Path(f"{cached}.completed").touch()


def job_datatrove(folder: Path, out: Path) -> dict:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.exact_dedup import (
        ExactDedupConfig,
        ExactDedupFilter,
        ExactDedupSignature,
        ExactFindDedups,
    )
    from datatrove.pipeline.dedup.sentence_dedup import (
        SentDedupConfig,
        SentenceDedupFilter,
        SentenceDedupSignature,
        SentenceFindDedups,
    )
    from datatrove.pipeline.filters import (
        C4BadWordsFilter,
        C4QualityFilter,
        LambdaFilter,
        c4_filters,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(out, ignore_errors=True)
    _seed_badwords_cache(out / "hf")
    c4_filters.END_PUNCTUATION = (".", "?", "!", '"')  # TFDS's end marks, read at each call
    language = _datatrove_language_filter()

    def url(doc: Document) -> str:  # C4's normalize_url, as the recipe compares URLs
        url = re.sub(r"https?://(www\.)?", "", doc.metadata["url"])
        return re.sub(r"\?(utm_|ref|feed).*", "", url).rstrip("/")

    by_url = ExactDedupConfig(content_getter=url)
    lines = SentDedupConfig(
        split_sentences=False, n_sentences=1, min_doc_words=0, min_num_sentences=3
    )

    def reader(path: Path) -> ParquetReader:
        return ParquetReader(str(path), glob_pattern="*.parquet", id_key="id")

    def short(doc: Document) -> bool:  # C4's is_valid_length
        return len(doc.text) <= 190_000

    def execute(name: str, steps: list) -> None:
        LocalPipelineExecutor(steps, tasks=1, logging_dir=str(out / "logs" / name)).run()

    def count(path: Path) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in path.glob("*.parquet"))

    filtered = out / "filtered"
    started = time.perf_counter()
    signature = ExactDedupSignature(str(out / "url-sigs"), config=by_url)
    execute("url-1", [reader(folder), LambdaFilter(short), signature])
    execute("url-2", [ExactFindDedups(str(out / "url-sigs"), str(out / "url-dups"), config=by_url)])
    execute(
        "url-3",
        [
            reader(folder),
            LambdaFilter(short),
            ExactDedupFilter(str(out / "url-dups"), config=by_url),
            C4QualityFilter(min_words_per_line=5, min_num_sentences=3),
            ParquetWriter(str(filtered)),
        ],
    )
    execute(
        "lines-1",
        [reader(filtered), SentenceDedupSignature(str(out / "line-sigs"), config=lines)],
    )
    execute(
        "lines-2",
        [SentenceFindDedups(str(out / "line-sigs"), str(out / "line-dups"), config=lines)],
    )
    execute(
        "lines-3",
        [
            reader(filtered),
            SentenceDedupFilter(str(out / "line-dups"), config=lines),
            language,
            C4BadWordsFilter(),
            ParquetWriter(str(out / "kept")),
        ],
    )
    seconds = time.perf_counter() - started
    steps = {"exact_dedup, c4_quality": count(filtered), "the rest": count(out / "kept")}
    return {"seconds": seconds, "kept": _kept(out), "steps": steps}


JOBS = {"curation": job_curation, "datatrove": job_datatrove}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        one_thread_arrow()
        report_from_child(JOBS[args.job](Path(args.folder), Path(args.out)))
        return
    if not WORDS.is_file():
        sys.exit(f"{WORDS} is missing: the shared data folder sits beside the repository")
    folder = corpus(args.docs)
    texts = pq.read_table(folder, columns=["text"])["text"]
    mb = pc.sum(pc.utf8_length(texts)).as_py() / 1e6
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}; "
        f"{args.docs:,} documents ({mb:.1f} M characters), one core per job\n"
    )
    results = {}
    for job in ("curation", "datatrove"):
        command = [__file__, "--job", job, "--folder", str(folder), "--out", str(RUNS / job)]
        results[job] = run_on_one_core(job, command)
    pipeline_table(results, args.docs)
    ours, theirs = results["curation"]["kept"], results["datatrove"]["kept"]
    both = ours.keys() & theirs.keys()
    same_text = sum(ours[k] == theirs[k] for k in both)
    print(
        f"\nkept by both {len(both):,} ({same_text:,} with the same text), "
        f"only curation {len(ours.keys() - theirs.keys()):,}, "
        f"only datatrove {len(theirs.keys() - ours.keys()):,}"
    )
    print(f"curation rows after each stage: {results['curation']['steps']}")
    print(f"datatrove rows after each step: {results['datatrove']['steps']}")


if __name__ == "__main__":
    main()
