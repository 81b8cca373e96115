"""Pushing a curated dataset to the Hugging Face Hub: `curate export` against `datasets`.

The job: the kept documents of a run (``--docs`` real C4 and Pile documents, repeated
past 2,000, as four zstd Parquet files) pushed to a dataset repo in files of about
``--max-shard-size`` of Arrow data. The Hub is the local stand-in the tests use
(``tests/io/fake_hub.py``: the endpoints the real client calls on the LFS path, objects
checked against their sha256 and held in memory), served by this process on localhost,
so the figures leave the network out: what they measure is the tool's own work and the
disk it needs.

Variants, each a child process with its temporary folder (``TMPDIR``, and ``HF_HOME``
for ``datasets``' cache) in a scratch folder whose size this process samples every
20 ms:
- ``curation at REV``: the engine at ``--before`` (by default c43b8dd, before the
  streaming push: the whole export written to a temporary folder, then sent as one
  commit);
- ``curation``: each file uploaded as soon as it is written (``UPLOADS`` at a time while
  the next is written), then deleted;
- ``datasets``: ``load_dataset("parquet", ...)`` then ``push_to_hub`` (what a user of
  the Hub would write; it converts the Parquet to its Arrow cache first).

For each: wall time, peak resident memory, peak disk of the scratch folder, the files
and commits the repo received, and the spread of the files' Arrow sizes.

``--format jsonl`` makes the data a run written as JSON Lines (``output: {format: jsonl}``:
four zstd ``kept/part-*.jsonl.zst`` files): the engine exports them through Parquet
copies, ``datasets`` loads them with ``load_dataset("json", ...)``; the engine before
could not read them, so that variant is left out.

``--longer-than N`` exports only the documents of more than N characters: the engine
with ``--where "length(text) > N"``, ``datasets`` with ``filter`` over batches of texts
before ``push_to_hub`` (the engine before had no ``--where``, so that variant is left
out).

``--licence late`` (or ``early``) adds a ``licence`` column that holds one text of 2,000
characters in the last two thirds of the rows (or the first third) and short distinct
strings elsewhere: Parquet dictionary-encodes the repeated text, so the footers of those
files tell a few bytes a row where Arrow holds 2 kB, and an estimate of the files' sizes
from the footers goes wrong. ``--before REV`` picks the earlier engine.

    .venv/bin/python benchmarks/hub_export.py --docs 200000 --max-shard-size 20MB
    .venv/bin/python benchmarks/hub_export.py --docs 50000 --licence late --before 65bcadf
    .venv/bin/python benchmarks/hub_export.py --docs 200000 --format jsonl
    .venv/bin/python benchmarks/hub_export.py --docs 200000 --longer-than 2000
    .venv/bin/python benchmarks/hub_export.py --docs 200000 --config-by lang

``--config-by lang`` pushes a config for each language: the data is
``partitioned_output.py``'s (its documents with their lid.176 language, about 20 of
them, English most) run through ``stages: []`` twice, flat and with ``output:
{partition_by: lang}``, untimed. Variants: ``curation`` (``--config-by lang`` of the
partitioned run), ``curation flat`` (of the flat run), ``curation per value`` (what the
engine took before: one export a language, ``--where "lang = '..'" --config ..``,
``--force`` after the first) and ``datasets`` (``load_dataset`` of the flat run's kept
files, then for each language ``filter`` and ``push_to_hub(config_name=...)``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import real_documents, report_from_child, write_parquet_shards

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "hub_export"
BEFORE = "c43b8dd"
VARIANTS = ("curation at", "curation", "datasets")
CONFIG_VARIANTS = ("curation", "curation flat", "curation per value", "datasets")


def build_data(docs: int, licence: str, fmt: str = "parquet") -> Path:
    folder = DATA / f"docs-{docs}" if licence == "none" else DATA / f"docs-{docs}-{licence}"
    if fmt == "jsonl":
        return as_jsonl_run(build_data(docs, licence), folder.with_name(folder.name + "-jsonl"))
    if (folder / "shard-03.parquet").exists():
        return folder
    base = real_documents()
    rows = [base[i % len(base)] for i in range(docs)]
    columns = {
        "id": [f"doc-{i}" for i in range(docs)],
        "text": pa.array([text for text, _ in rows], pa.large_string()),
        "url": [url for _, url in rows],
    }
    if licence != "none":
        repeated = "licence text " * 154  # 2,002 characters
        late = range(docs // 3, docs) if licence == "late" else range(docs // 3)
        columns["licence"] = [repeated if i in late else f"{i:016x}" for i in range(docs)]
    return write_parquet_shards(pa.table(columns), folder, 4)


def as_jsonl_run(parquet: Path, folder: Path) -> Path:
    """The Parquet files of ``parquet`` as the kept parts of a run written as JSON Lines
    (``kept/part-0000N.jsonl.zst``, a ``stats.json``), in ``folder``."""
    import polars as pl
    import zstandard

    if (folder / "kept" / "part-00003.jsonl.zst").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "kept").mkdir(parents=True)
    rows = 0
    for index, path in enumerate(sorted(parquet.glob("*.parquet"))):
        frame = pl.read_parquet(path).with_columns(pl.lit(None, pl.String).alias("drop_reason"))
        rows += frame.height
        data = zstandard.ZstdCompressor().compress(frame.write_ndjson().encode("utf-8"))
        (folder / "kept" / f"part-{index:05d}.jsonl.zst").write_bytes(data)
    stats = {"rows": {"read": rows, "kept": rows, "dropped": 0}, "stages": []}
    (folder / "stats.json").write_text(json.dumps(stats))
    return folder


def engine_before(rev: str) -> Path:
    """The ``curation`` package as it was at ``rev`` (``git archive``)."""
    folder = DATA / f"engine-{rev}"
    if not (folder / "curation" / "io" / "hub.py").exists():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "curation"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def child(
    variant: str,
    data: Path,
    repo: str,
    max_shard_size: str,
    longer: int | None,
    by: str | None = None,
) -> None:
    started = time.perf_counter()
    if by is not None:
        export_configs(variant, data, repo, max_shard_size, by)
    elif variant.startswith("curation"):
        if variant != "curation":  # the engine before: ahead of this checkout's
            sys.path.insert(0, os.environ["ENGINE_BEFORE"])
        from curation.io.hub import export

        where = {} if longer is None else {"where": f"length(text) > {longer}"}
        export(data, repo_id=repo, max_shard_size=max_shard_size, log=lambda m: None, **where)
    else:
        import datasets

        datasets.disable_progress_bars()
        files = sorted(str(p) for p in data.glob("*.parquet"))
        kind = "parquet"
        if not files:  # a run written as JSON Lines
            files, kind = sorted(str(p) for p in data.glob("kept/*.jsonl.zst")), "json"
        loaded = datasets.load_dataset(kind, data_files=files, split="train")
        if "drop_reason" in loaded.column_names:
            loaded = loaded.remove_columns("drop_reason")  # as export leaves it out
        if longer is not None:
            loaded = loaded.filter(
                lambda batch: [len(t) > longer for t in batch["text"]], batched=True
            )
        loaded.push_to_hub(repo, max_shard_size=max_shard_size)
    report_from_child({"seconds": round(time.perf_counter() - started, 2)})


def export_configs(variant: str, runs: Path, repo: str, max_shard_size: str, by: str) -> None:
    """Push a config for each value of ``by`` of the runs in ``runs`` (``flat``,
    ``partitioned``) the way ``variant`` does."""
    from curation.io.hub import config_name, export

    quiet = {"repo_id": repo, "max_shard_size": max_shard_size, "log": lambda m: None}
    if variant == "curation":
        export(runs / "partitioned", config_by=by, **quiet)
        return
    if variant == "curation flat":
        export(runs / "flat", config_by=by, **quiet)
        return
    kept = sorted(str(p) for p in (runs / "flat" / "kept").glob("*.parquet"))
    values = sorted(set(pq.read_table(kept, columns=[by])[by].to_pylist()))
    if variant == "curation per value":
        for index, value in enumerate(values):
            where, name = f"{by} = '{value}'", config_name(value)
            export(runs / "flat", where=where, config=name, force=index > 0, **quiet)
        return
    import datasets

    datasets.disable_progress_bars()
    loaded = datasets.load_dataset("parquet", data_files=kept, split="train")
    loaded = loaded.remove_columns("drop_reason")  # as export leaves it out
    for value in values:
        part = loaded.filter(lambda batch, v=value: [x == v for x in batch[by]], batched=True)
        part.push_to_hub(repo, config_name=config_name(value), max_shard_size=max_shard_size)


def config_runs(docs: int, by: str) -> Path:
    """``partitioned_output.py``'s documents run through ``stages: []``, flat and
    partitioned by ``by``, in ``runs/flat`` and ``runs/partitioned``."""
    from benchmarks.partitioned_output import corpus
    from curation.recipe import parse_recipe
    from curation.runtime.run import RunOptions, run

    runs = DATA / f"configs-{docs}-{by}"
    if (runs / "partitioned" / "stats.json").exists() and (runs / "flat" / "stats.json").exists():
        return runs
    shards = corpus(docs)
    for name, output in (("flat", ""), ("partitioned", f"output: {{partition_by: {by}}}\n")):
        recipe = parse_recipe("stages: []\n" + output, "bench.yaml").with_input(
            paths=[str(shards)], format="parquet"
        )
        run(recipe, runs / name, RunOptions(executor="local", overwrite=True, progress=False))
    return runs


def folder_bytes(folder: Path) -> int:
    total = 0
    for base, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except FileNotFoundError:
                pass
    return total


def measure(
    variant: str,
    data: Path,
    max_shard_size: str,
    before: str,
    longer: int | None = None,
    by: str | None = None,
) -> dict:
    from tests.io.fake_hub import FakeHub

    scratch = DATA / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "hf").mkdir(parents=True)
    token = "hf_" + secrets.token_hex(16)
    repo = "bench/export"
    with FakeHub(token) as hub:
        env = {
            **os.environ,
            "HF_TOKEN": token,
            "HF_ENDPOINT": hub.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(scratch / "hf"),
            "TMPDIR": str(scratch),
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        }
        if variant.startswith("curation at"):
            env["ENGINE_BEFORE"] = str(engine_before(before))
        peak, done = [0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], folder_bytes(scratch))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        command = [sys.executable, __file__, "--child", variant, "--data", str(data)]
        command += ["--repo", repo, "--max-shard-size", max_shard_size]
        command += [] if longer is None else ["--longer-than", str(longer)]
        command += [] if by is None else ["--config-by", by]
        finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        done.set()
        sampler.join()
        if finished.returncode != 0:
            raise RuntimeError(f"{variant} failed:\n{finished.stderr[-3000:]}")
        result = json.loads(finished.stdout.strip().splitlines()[-1])
        files = hub.repos[repo]
        # datasets puts a config's files in <config>/, the engine in data/<config>/
        shards = sorted(p for p in files if p.endswith(".parquet"))
        tables = [pq.read_table(pa.BufferReader(files[p])) for p in shards]
        result.update(
            peak_disk_mb=round(peak[0] / 1e6, 1),
            files=len(shards),
            commits=len(hub.commits),
            rows=sum(t.num_rows for t in tables),
            arrow_mb=[round(t.nbytes / 1e6, 1) for t in tables],
            disk_mb=round(sum(len(files[p]) for p in shards) / 1e6, 1),
            configs={
                folder: sum(
                    t.num_rows
                    for p, t in zip(shards, tables, strict=True)
                    if p.split("/")[-2] == folder
                )
                for folder in {p.split("/")[-2] for p in shards}
            },
        )
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--max-shard-size", default="20MB")
    parser.add_argument("--child", choices=sorted({*VARIANTS, *CONFIG_VARIANTS}))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--repo")
    parser.add_argument("--licence", choices=("none", "late", "early"), default="none")
    parser.add_argument("--before", default=BEFORE, help="the earlier engine's revision")
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument("--longer-than", type=int, help="export only longer documents")
    parser.add_argument("--config-by", help="push a config for each value of this column")
    args = parser.parse_args()
    if args.child:
        by = args.config_by
        child(args.child, args.data, args.repo, args.max_shard_size, args.longer_than, by)
        return
    if args.config_by is not None:
        main_configs(args.docs, args.max_shard_size, args.config_by)
        return
    parquet = build_data(args.docs, args.licence)
    data = build_data(args.docs, args.licence, args.format)
    rows = total = sum(pq.ParquetFile(p).metadata.num_rows for p in parquet.glob("*.parquet"))
    if args.longer_than is not None:
        texts = pq.read_table(parquet, columns=["text"])["text"].to_pylist()
        rows = sum(len(t) > args.longer_than for t in texts)
    arrow = sum(pq.read_table(p).nbytes for p in parquet.glob("*.parquet")) / 1e6
    held = "4 Parquet files" if args.format == "parquet" else "4 zstd JSON Lines files"
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {total:,} "
        f"documents, {arrow:,.1f} MB of Arrow data in {held} "
        f"({folder_bytes(data) / 1e6:,.1f} MB); files of {args.max_shard_size}; licence "
        f"column: {args.licence}"
        + ("" if args.longer_than is None else f"; {rows:,} longer than {args.longer_than}")
    )
    full = args.format == "parquet" and args.longer_than is None
    variants = VARIANTS if full else VARIANTS[1:]
    results = {
        variant: measure(variant, data, args.max_shard_size, args.before, args.longer_than)
        for variant in variants
    }
    base = results["curation"]
    print(
        "\n| variant | s | vs curation | peak MiB | peak disk MB | vs curation | files | "
        "commits | Arrow MB a file (min-max) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for variant, r in results.items():
        assert r["rows"] == rows, (variant, r["rows"], rows)
        name = f"curation at {args.before}" if variant == "curation at" else variant
        print(
            f"| {name} | {r['seconds']:.2f} | {r['seconds'] / base['seconds']:.2f}x | "
            f"{r['peak_mib']:,.0f} | {r['peak_disk_mb']:,.1f} | "
            f"{r['peak_disk_mb'] / max(base['peak_disk_mb'], 0.1):.1f}x | {r['files']} | "
            f"{r['commits']} | {min(r['arrow_mb'])}-{max(r['arrow_mb'])} |"
        )


def main_configs(docs: int, max_shard_size: str, by: str) -> None:
    """``--config-by``: each way of pushing a config a value, side by side."""
    runs = config_runs(docs, by)
    kept = sorted((runs / "flat" / "kept").glob("*.parquet"))
    values = pq.read_table(kept, columns=[by])[by].value_counts().to_pylist()
    largest = max(values, key=lambda v: v["counts"])
    arrow = pq.read_table(kept).nbytes / 1e6
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {docs:,} "
        f"documents, {arrow:,.1f} MB of Arrow data, {len(values)} values of {by} (the "
        f"largest {largest['values']!r}: {largest['counts']:,} documents); files of "
        f"{max_shard_size}"
    )
    results = {
        variant: measure(variant, runs, max_shard_size, BEFORE, by=by)
        for variant in CONFIG_VARIANTS
    }
    base = results["curation"]
    print("\n| variant | s | vs curation | peak MiB | peak disk MB | files | commits | configs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for variant, r in results.items():
        assert r["rows"] == docs and r["configs"] == base["configs"], variant
        print(
            f"| {variant} | {r['seconds']:.2f} | {r['seconds'] / base['seconds']:.2f}x | "
            f"{r['peak_mib']:,.0f} | {r['peak_disk_mb']:,.1f} | {r['files']} | "
            f"{r['commits']} | {len(r['configs'])} |"
        )


if __name__ == "__main__":
    main()
