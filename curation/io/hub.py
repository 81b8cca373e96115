"""``curate export``: a run's kept documents in the Hugging Face Hub dataset layout.

The export folder is what the Hub and ``datasets.load_dataset`` read::

    README.md                                dataset card: YAML header, recipe, funnel
    data/<split>-00000-of-000NN.parquet ...  the kept rows, without ``drop_reason``
    images/funnel.png, images/<column>.png   drop funnel and score histograms

Shards are cut so each holds at most ``max_shard_bytes`` of Arrow data (Parquet with
zstd is smaller on disk); rows keep the run's order.

Pushing (``huggingface_hub``): the token comes from ``HF_TOKEN`` or the login cache and
is never printed, logged or written: messages pass through ``redact``. The steps are
ordered so that a refused export leaves nothing behind: the token is looked up, the
endpoint is asked whether the repository exists (an existing one needs ``force``), then
the folder is built in a temporary directory, the repository created and everything sent
as one commit. Transient failures (connection, HTTP 5xx/429) retry the commit with
backoff; each retry resumes, because the Hub's LFS batch answer skips the files it
already holds, and running the command again after a failure resumes the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from curation.inspect.shards import FINISH_IT, REASON, Overview, Source, open_source

DEFAULT_ENDPOINT = "https://huggingface.co"
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
)
#: Commit attempts and the first wait between them (seconds, doubling each time).
ATTEMPTS, BACKOFF_S = 4, 2.0
UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
}


class ExportError(RuntimeError):
    """The export cannot go on; the message says why and what to do (never the token)."""


def redact(text: str, token: str | None) -> str:
    """``text`` with the token (and anything shaped like a Hub token) replaced by ***."""
    if token:
        text = text.replace(token, "***")
    return re.sub(r"hf_[A-Za-z0-9]{20,}", "hf_***", text)


def parse_size(value: str) -> int:
    """``500MB``, ``1GB``, ``64MiB`` or a byte count -> bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", value)
    if not match or match.group(2).upper() not in UNITS:
        raise ExportError(f"--max-shard-size {value!r}: expected a size like 500MB or 1GB")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def size_category(rows: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if rows < bound), "n>10B")


def _kept_batches(source: Source) -> Any:
    files = sorted(source.kept_files) if source.is_run else source.files
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
            table = pa.Table.from_batches([batch])
            if REASON in table.column_names:
                if not source.is_run:  # a plain shard: export only its kept rows
                    table = table.filter(pc.is_null(table[REASON]))
                table = table.drop_columns([REASON])
            if table.num_rows:
                yield table


def _slices(table: pa.Table, max_bytes: int) -> Any:
    """``table`` in row slices of at most about ``max_bytes`` each (one row at least)."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    step = max(1, max_bytes // per_row // 4)
    for start in range(0, table.num_rows, step):
        yield table.slice(start, step)


def write_shards(source: Source, data: Path, split: str, max_shard_bytes: int) -> list[dict]:
    """Write the kept rows as ``data/<split>-XXXXX-of-YYYYY.parquet``; returns, per shard,
    its ``path`` (relative to the export folder), ``rows`` and ``bytes``."""
    data.mkdir(parents=True, exist_ok=True)
    parts: list[tuple[Path, int]] = []
    writer, rows, size, schema = None, 0, 0, None
    for whole in _kept_batches(source):
        if schema is None:
            schema = whole.schema
        whole = whole.cast(schema) if whole.schema != schema else whole
        for table in _slices(whole, max_shard_bytes):
            if writer is not None and size + table.nbytes > max_shard_bytes:
                writer.close()
                writer = None
            if writer is None:
                path = data / f".part-{len(parts):05d}.parquet"
                writer, rows, size = pq.ParquetWriter(path, schema, compression="zstd"), 0, 0
                parts.append((path, 0))
            writer.write_table(table)
            rows, size = rows + table.num_rows, size + table.nbytes
            parts[-1] = (parts[-1][0], rows)
    if writer is not None:
        writer.close()
    if not parts:
        raise ExportError(f"{source.path}: no kept rows to export")
    shards = []
    for i, (path, count) in enumerate(parts):
        final = data / f"{split}-{i:05d}-of-{len(parts):05d}.parquet"
        path.rename(final)
        shards.append({"path": f"data/{final.name}", "rows": count, "bytes": final.stat().st_size})
    return shards


def dataset_card(
    source: Source,
    seen: Overview,
    repo_id: str,
    split: str,
    license_id: str,
    shards: list[dict],
    images: list[tuple[str, str]],
) -> str:
    """The ``README.md``: YAML header (configs, license, size category, task) and what was
    done: the recipe, rows kept and dropped by stage and reason (``seen.stages``), the
    score histograms (``images``)."""
    stages = seen.stages
    rows = sum(s["rows"] for s in shards)
    header = {
        "license": license_id,
        "pretty_name": repo_id.split("/")[-1],
        "size_categories": [size_category(rows)],
        "task_categories": ["text-generation"],
        "tags": ["curation"],
        "configs": [
            {"config_name": "default", "data_files": [{"split": split, "path": f"data/{split}-*"}]}
        ],
    }
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
    ]
    stats = source.stats or {}
    read = stats.get("rows", {}).get("read")
    lines.append(
        f"{rows:,} documents in {len(shards)} Parquet file(s), split `{split}`"
        + (f", kept from {read:,} documents read" if read else "")
        + " by the curation engine."
    )
    lines += [
        "",
        "## Rows kept and dropped",
        "",
        "| stage | rows in | kept | dropped | reason |",
        "|---|---:|---:|---:|---|",
    ]
    for s in stages:
        reasons = sorted(s["dropped_by_reason"].items(), key=lambda kv: -kv[1])
        detail = ", ".join(f"`{r}` {n:,}" for r, n in reasons) or "-"
        lines.append(
            f"| {s['name']} | {s['rows_in']:,} | {s['rows_kept']:,} | "
            f"{s['rows_in'] - s['rows_kept']:,} | {detail} |"
        )
    if stats.get("accounting"):
        lines += ["", f"Accounting check: {stats['accounting']}."]
    if images:
        lines += ["", "## Score distributions", ""]
        lines += [f"![{title}]({path})" for title, path in images]
    if source.recipe:
        recipe = yaml.safe_dump(source.recipe, sort_keys=False).strip()
        lines += [
            "",
            "## Recipe",
            "",
            "The resolved recipe, with the versions it ran with:",
            "",
            "```yaml",
            recipe,
            "```",
        ]
    lines += ["", "## Files", "", "| file | rows | bytes |", "|---|---:|---:|"]
    lines += [f"| `{s['path']}` | {s['rows']:,} | {s['bytes']:,} |" for s in shards]
    return "\n".join(lines) + "\n"


def build_export(
    source: Source, folder: Path, *, repo_id: str, split: str, max_shard_bytes: int, license_id: str
) -> list[dict]:
    """Write the Hub layout of ``source`` into the empty ``folder``; returns the shards."""
    from curation.inspect import plots
    from curation.inspect.shards import overview

    shards = write_shards(source, folder / "data", split, max_shard_bytes)
    seen = overview(source)
    (folder / "images").mkdir()
    images = [("drop funnel", "images/funnel.png")]
    (folder / "images" / "funnel.png").write_bytes(plots.to_png(plots.funnel_figure(seen.stages)))
    for column, summary in seen.summaries.items():
        if summary["histogram"] is not None:
            figure = plots.histogram_figure(column, summary, seen.lines.get(column, []))
            (folder / "images" / f"{column}.png").write_bytes(plots.to_png(figure))
            images.append((column, f"images/{column}.png"))
    card = dataset_card(source, seen, repo_id, split, license_id, shards, images)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return shards


def find_token() -> str:
    """The Hub token from ``HF_TOKEN`` or the login cache; an error saying how to give one."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise ExportError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write "
            "access), or use --to-folder alone to write the export locally"
        )
    return token


def _is_transient(err: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    # the client's HTTP library (httpx or its fork httpx2) raises TransportError subclasses
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & {"TransportError", "ConnectionError", "TimeoutError"}:
        return True
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        return status in (408, 429) or status >= 500
    cause = err.__cause__ or err.__context__
    return cause is not None and cause is not err and _is_transient(cause)


def _explain(err: BaseException, endpoint: str, repo_id: str, token: str) -> ExportError:
    """A clear message for a Hub failure (status, what to do), with the token redacted."""
    from huggingface_hub.errors import HfHubHTTPError

    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(err, HfHubHTTPError) and status in (401, 403):
        text = (
            f"the Hub at {endpoint} refused the token (HTTP {status}): check that it has "
            f"write access to {repo_id.split('/')[0]}"
        )
    elif _is_transient(err) and status is None:
        text = (
            f"cannot reach the Hub at {endpoint} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no answer'}): check HF_ENDPOINT "
            "and the network, then run the same command again"
        )
    else:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        cause = err.__cause__
        if cause is not None and str(cause):
            first += f" ({str(cause).splitlines()[0]})"
        text = f"the Hub at {endpoint} answered with an error for {repo_id}: {first}"
    return ExportError(redact(text, token))


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    token: str,
    endpoint: str,
    private: bool,
    force: bool,
    attempts: int | None = None,
    backoff_s: float | None = None,
    log: Callable[[str], None] = print,
) -> str:
    """Create the dataset repo (an existing one needs ``force``) and send ``folder`` as one
    commit, retrying transient failures ``attempts`` times (default ``ATTEMPTS``) with
    waits of ``backoff_s`` seconds (default ``BACKOFF_S``) doubling each time. Returns the
    commit's URL."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    attempts, backoff_s = attempts or ATTEMPTS, BACKOFF_S if backoff_s is None else backoff_s
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=force)
    except HfHubHTTPError as err:
        if err.response is not None and err.response.status_code == 409:
            raise ExportError(already_there(repo_id, endpoint)) from None
        raise _explain(err, endpoint, repo_id, token) from None
    except Exception as err:
        raise _explain(err, endpoint, repo_id, token) from None
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for attempt in range(1, attempts + 1):
        operations = [
            CommitOperationAdd(
                path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p)
            )
            for p in files
        ]
        try:
            info = api.create_commit(
                repo_id,
                operations,
                repo_type="dataset",
                commit_message=f"curation export ({len(files)} files)",
            )
            return str(info.commit_url)
        except Exception as err:
            if attempt == attempts or not _is_transient(err):
                problem = _explain(err, endpoint, repo_id, token)
                raise ExportError(
                    f"{problem} (after {attempt} attempt(s)); nothing was committed. Run the same "
                    "command again: files the Hub already holds are not sent twice"
                ) from None
            wait = backoff_s * 2 ** (attempt - 1)
            log(
                redact(
                    f"export: upload interrupted ({type(err).__name__}); attempt "
                    f"{attempt + 1} of {attempts} in {wait:.0f} s",
                    token,
                )
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def already_there(repo_id: str, endpoint: str) -> str:
    return (
        f"dataset repo {repo_id} already exists at {endpoint}: pass --force to add this "
        "export to it as a new commit, or choose another --repo-id"
    )


def export(
    run: str | Path,
    *,
    repo_id: str | None,
    to_folder: str | Path | None = None,
    split: str = "train",
    max_shard_size: str = "500MB",
    private: bool = False,
    force: bool = False,
    license_id: str = "other",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export the kept rows of ``run`` (a run folder or a shard): to ``to_folder``, to the
    Hub as ``repo_id``, or both. Returns the shards, the folder and the commit URL."""
    if not repo_id and not to_folder:
        raise ExportError("give --repo-id ORG/NAME to push, --to-folder DIR, or both")
    if repo_id and not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise ExportError(f"--repo-id {repo_id!r}: expected ORG/NAME")
    if not re.fullmatch(r"\w+", split):
        raise ExportError(f"--split {split!r}: use letters, digits and underscores")
    max_bytes = parse_size(max_shard_size)
    source = open_source(run)
    if source.unfinished:
        raise ExportError(
            f"{run} is {source.unfinished}: finish it first ({FINISH_IT}), then export it"
        )
    target = Path(to_folder) if to_folder else None
    if target is not None and target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not force:
            raise ExportError(f"{target} exists and is not empty: pass --force to replace it")
    token = endpoint = None
    name = repo_id or f"local/{target.name if target else 'export'}"
    if repo_id:
        token = find_token()
        endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
        from huggingface_hub import HfApi

        try:
            exists = HfApi(endpoint=endpoint, token=token).repo_exists(repo_id, repo_type="dataset")
        except Exception as err:
            raise _explain(err, endpoint, repo_id, token) from None
        if exists and not force:
            raise ExportError(already_there(repo_id, endpoint))
    parent = target.parent if target else None
    if parent:
        parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".curation-export-", dir=parent))
    try:
        log(f"export: writing the Hub layout of {source.path}")
        shards = build_export(
            source,
            staging,
            repo_id=name,
            split=split,
            max_shard_bytes=max_bytes,
            license_id=license_id,
        )
        url = None
        if repo_id:
            assert token is not None and endpoint is not None
            log(f"export: pushing {len(shards)} shard(s) to {endpoint}/datasets/{repo_id}")
            url = push_folder(
                staging,
                repo_id,
                token=token,
                endpoint=endpoint,
                private=private,
                force=force,
                log=log,
            )
        if target is not None:
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return {"shards": shards, "folder": str(target) if target else None, "commit_url": url}
