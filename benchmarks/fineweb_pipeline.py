"""The FineWeb recipe end to end: ``curate run pipelines/fineweb.yaml`` against the same
pipeline built from datatrove's blocks, one core each.

Data: the real C4 and Pile samples of ../shared/data repeated to ``--docs`` documents.
Copy ``r`` > 0 of a document loses every ``(r + 6)``-th word of each line, so copies
differ in every line of ``r + 6`` words or more, and up to 10,000 documents (copies 0 to
4) the long ones share at most about half their word 5-grams: nearly every stage works
on distinct texts.
C4 documents keep their URL; Pile documents, which have none, get
``https://example.org/pile/<n>`` (datatrove's URL filter needs one). Written once as 8
zstd Parquet shards (``id``, ``text``, ``url``); text extraction is not part of this
comparison (the recipe reads WARC through Resiliparse; here both read the text).

Jobs, each in a child process pinned to one core (Arrow, polars and OpenMP on one
thread), each reading the shards and writing its kept documents as Parquet:
- ``curation``: ``pipelines/fineweb.yaml`` with ``--format parquet`` on the local
  executor: URL filter, language, Gopher repetition and quality, C4 (without the
  terminal-punctuation rule, as FineWeb), FineWeb quality, exact dedup, MinHash (word
  5-grams, 14 x 8), PII; every dropped document written with its reason. Run twice:
  first with the engine's cache empty (``CURATION_CACHE_DIR`` under ``_runs/``, as on a
  new machine: ``url_filter`` reads the UT1 archive and caches its sorted lists), then
  as every later run finds it.
- ``datatrove``: the same steps with datatrove 0.x's blocks and local executor:
  ``URLFilter``, ``LanguageFilter`` (handed the same lid.176 model, as its download is
  off here), ``GopherRepetitionFilter``, ``GopherQualityFilter``,
  ``C4QualityFilter(filter_no_terminal_punct=False)``, ``FineWebQualityFilter`` and a
  Parquet writer; then exact dedup's three stages and MinHash's four, as
  ``benchmarks/exact_dedup.py`` and ``benchmarks/minhash_dedup.py`` run them; then
  ``PIIFormatter`` and a Parquet writer.

Reports seconds, documents per second and peak memory per job, the ratio, and how far
the two kept sets agree (the filters decide 99%+ alike; the rest is in RESULTS.md).

    .venv/bin/python benchmarks/fineweb_pipeline.py --docs 10000
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import exact_dedup, minhash_dedup  # noqa: E402
from benchmarks.common import (  # noqa: E402
    one_thread_arrow,
    pipeline_table,
    real_documents,
    report_from_child,
    run_on_one_core,
    thinned,
    write_parquet_shards,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "fineweb"
RUNS = HERE / "_runs" / "fineweb"
SHARDS = 8


def corpus(count: int) -> Path:
    base = real_documents()
    c4 = sum(url is not None for _, url in base)  # C4's come first
    urls = [url or f"https://example.org/pile/{k - c4}" for k, (_, url) in enumerate(base)]
    rows = range(count)
    table = pa.table(
        {
            "id": [f"d{i:09d}" for i in rows],
            "text": [thinned(base[i % len(base)][0], i // len(base)) for i in rows],
            "url": [urls[i % len(base)] for i in rows],
        }
    )
    return write_parquet_shards(table, DATA, SHARDS)


def job_curation(folder: Path, out: Path) -> dict:
    from curation.recipe import load_recipe
    from curation.runtime.run import RunOptions, run

    recipe = load_recipe(ROOT / "pipelines" / "fineweb.yaml").with_input(
        paths=[str(folder)], format="parquet"
    )
    started = time.perf_counter()
    stats = run(recipe, out, RunOptions(executor="local", overwrite=True, progress=False))
    seconds = time.perf_counter() - started
    kept = pq.read_table(out / "kept", columns=["id"])["id"].to_pylist()
    steps = {s["name"]: s["rows_kept"] for s in stats["stages"]}
    return {"seconds": seconds, "kept": sorted(kept), "steps": steps}


def _datatrove_language_filter() -> object:
    """datatrove's LanguageFilter, loading the same lid.176 file as ours. Its model comes
    from a download, and it insists on the fasttext-numpy2-wheel distribution
    (fasttext-numpy2 installs the same module); both are switched here, at module level,
    since its executor deep-copies the pipeline before the model loads."""
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.utils import lid

    from curation.filters.language import default_model_path

    lid.check_required_dependencies = lambda *args, **kwargs: None
    lid.cached_asset_path_or_download = lambda *args, **kwargs: str(default_model_path())
    LanguageFilter._requires_dependencies = []  # type: ignore[attr-defined]
    return LanguageFilter(languages=["en"], language_threshold=0.65)


def job_datatrove(folder: Path, out: Path) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        URLFilter,
    )
    from datatrove.pipeline.formatters import PIIFormatter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(out, ignore_errors=True)
    language = _datatrove_language_filter()

    def count(path: Path) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in path.glob("*.parquet"))

    started = time.perf_counter()
    LocalPipelineExecutor(
        [
            ParquetReader(str(folder), glob_pattern="*.parquet", id_key="id"),
            URLFilter(),
            language,
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(filter_no_terminal_punct=False),
            FineWebQualityFilter(),
            ParquetWriter(str(out / "filtered")),
        ],
        tasks=1,
        logging_dir=str(out / "logs" / "filters"),
    ).run()
    exact_dedup.job_datatrove(out / "filtered", out / "exact")
    minhash_dedup.job_datatrove_dedup(out / "exact" / "kept", out / "minhash")
    LocalPipelineExecutor(
        [
            ParquetReader(str(out / "minhash" / "kept"), glob_pattern="*.parquet", id_key="id"),
            PIIFormatter(),
            ParquetWriter(str(out / "kept")),
        ],
        tasks=1,
        logging_dir=str(out / "logs" / "pii"),
    ).run()
    seconds = time.perf_counter() - started
    kept = pq.read_table(out / "kept", columns=["id"])["id"].to_pylist()
    steps = {
        "filters": count(out / "filtered"),
        "exact_dedup": count(out / "exact" / "kept"),
        "minhash_dedup": count(out / "minhash" / "kept"),
    }
    return {"seconds": seconds, "kept": sorted(kept), "steps": steps}


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
    folder = corpus(args.docs)
    texts = pq.read_table(folder, columns=["text"])["text"]
    mb = pc.sum(pc.utf8_length(texts)).as_py() / 1e6
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}; "
        f"{args.docs:,} documents ({mb:.1f} M characters), one core per job\n"
    )
    # the engine's cache (url_filter's sorted UT1 lists) empty, as on a new machine,
    # then as every later run finds it
    cache = RUNS / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["CURATION_CACHE_DIR"] = str(cache)
    results = {}
    for label, job in (
        ("curation, cold cache", "curation"),
        ("curation", "curation"),
        ("datatrove", "datatrove"),
    ):
        command = [__file__, "--job", job, "--folder", str(folder), "--out", str(RUNS / job)]
        results[label] = run_on_one_core(label, command)
    pipeline_table(results, args.docs)
    ours, theirs = set(results["curation"]["kept"]), set(results["datatrove"]["kept"])
    print(
        f"\nkept by both {len(ours & theirs):,}, only curation {len(ours - theirs):,}, "
        f"only datatrove {len(theirs - ours):,}"
    )
    print(f"curation rows after each stage: {results['curation']['steps']}")
    print(f"datatrove rows after each step: {results['datatrove']['steps']}")


if __name__ == "__main__":
    main()
