"""`curate export`: the Hub layout, a push through the real huggingface_hub client to a
local Hub, retries that resume, clear refusals that leave nothing behind, and a token
that never shows."""

from __future__ import annotations

import math
import re
import secrets
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.cli import main
from curation.io import hub as hub_module
from tests.conftest import (
    damaged_shards,
    free_port,
    read_output,
    recipe_of,
    run_local,
    run_that_kept_nothing,
)
from tests.io.fake_hub import FakeHub

RECIPE = """
stages:
  - length_filter: {min_chars: 200}
  - threshold: {column: length_chars, top_fraction: 0.5}
"""


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    from tests.conftest import shared_file

    out = tmp_path_factory.mktemp("run") / "out"
    run_local(recipe_of(RECIPE, shared_file("web/c4-sample-1000.jsonl.gz")), out)
    return out


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh token in HF_TOKEN, no login cache, and the client on its LFS upload path
    (the Xet path needs Hugging Face's storage service, which the local Hub does not
    implement)."""
    import huggingface_hub.constants as constants

    value = "hf_" + secrets.token_hex(16)
    monkeypatch.setenv("HF_TOKEN", value)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hub_module, "BACKOFF_S", 0.1)
    return value


def export(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["export", *args])
    return result.exit_code, result.output


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def held(hub: FakeHub, repo: str) -> dict[str, bytes]:
    """The repo's files but the ``.gitattributes`` the Hub makes with it."""
    return {k: v for k, v in hub.repos[repo].items() if k != ".gitattributes"}


def assert_nothing_left(parent: Path, target: Path) -> None:
    assert not target.exists()
    if parent.exists():
        assert not [p for p in parent.iterdir() if p.name.startswith(".curation-export-")]


def test_push_arrives_byte_for_byte_and_resumes_after_failures(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        # the first upload is cut off (the client retries it), the second fails with a
        # status the client does not retry: the engine retries the whole commit
        hub.put_failures = ["drop", 520]
        folder = tmp_path / "export"
        code, output = export(
            str(run_folder),
            "--repo-id",
            "acme/c4-long",
            "--to-folder",
            str(folder),
            "--max-shard-size",
            "400KB",
            "--private",
        )
        assert code == 0, output
        assert "upload interrupted" in output
        local = files_under(folder)
        assert held(hub, "acme/c4-long") == local  # every file, byte for byte
        assert hub.private["acme/c4-long"] is True
        assert len(hub.commits) == 1 and not hub.unknown
        lfs = [name for name in local if name.endswith((".parquet", ".png"))]
        # resumed: each object stored once; the two failed PUTs are the only repeats
        assert sorted(hub.stored.values()) == [1] * len(lfs)
        assert sum(hub.puts.values()) == len(lfs) + 2
        assert token not in output
        assert hub.seen_tokens == {token}

    shards = sorted(n for n in local if n.startswith("data/"))
    assert len(shards) >= 2
    assert shards == [
        f"data/train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))
    ]
    kept = read_output(run_folder, "kept")
    exported = [pq.read_table(folder / name) for name in shards]
    assert sum(t.num_rows for t in exported) == kept.num_rows
    assert "drop_reason" not in exported[0].column_names
    assert [i for t in exported for i in t["id"].to_pylist()] == kept["id"].to_pylist()
    card = local["README.md"].decode()
    header = yaml.safe_load(card.split("---")[1])
    assert header["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    assert header["size_categories"] == ["n<1K"]
    assert "threshold:below_cut" in card and "length_filter:too_short" in card
    assert "images/train/length_chars.png" in card and "images/train/length_chars.png" in local
    assert local["images/train/length_chars.png"].startswith(b"\x89PNG")
    (split,) = header["dataset_info"]["splits"]
    assert split["name"] == "train" and split["num_examples"] == kept.num_rows
    arrow = pa.concat_tables(exported).nbytes  # what datasets counts as num_bytes
    assert abs(split["num_bytes"] - arrow) / arrow < 0.02, (split, arrow)
    for content in local.values():
        assert token.encode() not in content


def test_export_loads_with_datasets(
    run_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    folder = tmp_path / "export"
    code, output = export(
        str(run_folder), "--to-folder", str(folder), "--split", "train", "--max-shard-size", "300KB"
    )
    assert code == 0, output
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    kept = read_output(run_folder, "kept")
    assert list(loaded) == ["train"]
    assert loaded["train"].num_rows == kept.num_rows
    assert set(loaded["train"].column_names) == set(kept.column_names) - {"drop_reason"}
    assert loaded["train"].features["text"].dtype in ("string", "large_string")
    assert loaded["train"].features["length_chars"].dtype == "int64"
    assert loaded["train"]["id"] == kept["id"].to_pylist()


def test_where_exports_the_kept_rows_it_matches(
    run_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--where: the kept rows for which the condition is true, in order, in files of about
    the size asked for (the plan counts them from the condition's column alone), loaded
    by `datasets` as they are; the card says which rows they are."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    kept = read_output(run_folder, "kept")
    long = kept.filter(pc.greater(kept["length_chars"], 3000))
    assert 0 < long.num_rows < kept.num_rows / 2
    folder = tmp_path / "long"
    code, output = export(
        str(run_folder),
        *("--to-folder", str(folder), "--split", "long", "--max-shard-size", "200KB"),
        *("--where", "length_chars > 3000"),
    )
    assert code == 0, output
    assert f"exported {long.num_rows:,} rows" in output
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["long"]
    assert loaded["long"]["id"] == long["id"].to_pylist()
    card = (folder / "README.md").read_text()
    assert "those of the kept documents for which `length_chars > 3000` is true" in card
    header = yaml.safe_load(card.split("---")[1])
    assert header["dataset_info"]["splits"][0]["num_examples"] == long.num_rows
    sizes = arrow_bytes(
        folder / "data", sorted(p.name for p in (folder / "data").glob("*.parquet"))
    )
    assert len(sizes) > 1 and max(sizes) <= 200_000 * hub_module.OVERSHOOT


def test_where_in_a_shard_counts_only_its_kept_rows_and_reads_null_as_false(
    tmp_path: Path,
) -> None:
    """A plain shard with dropped rows: --where picks among its kept rows, and a row whose
    condition is null (no score) is not exported."""
    shard = tmp_path / "scored.parquet"
    pq.write_table(
        pa.table(
            {
                "id": [f"d{i}" for i in range(8)],
                "text": [f"text {i}" for i in range(8)],
                "score": [0.9, 0.2, None, 0.8, 0.95, None, 0.1, 0.7],
                "drop_reason": [None, None, None, "x:y", None, None, None, None],
            }
        ),
        shard,
        row_group_size=3,
    )
    folder = tmp_path / "out"
    code, output = export(str(shard), "--to-folder", str(folder), "--where", "score >= 0.7")
    assert code == 0, output
    got = pq.read_table(folder / "data")
    assert got["id"].to_pylist() == ["d0", "d4", "d7"]
    assert "drop_reason" not in got.column_names


def test_where_reads_only_the_row_groups_that_keep_rows(
    pile_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run partitioned by language, exported one language as a config of its own: the
    export reads the text of that language's files alone (and of no row group whose rows
    the condition leaves out), and writes the same rows as before."""
    recipe = recipe_of(
        "stages:\n  - language: {threshold: 0.3}\noutput: {partition_by: lang}\n",
        pile_path,
        text_field="contents",
    )
    run = tmp_path / "run"
    run_local(recipe, run)
    french = sorted((run / "kept" / "fr").iterdir())
    read: list[str] = []  # the folder of each file whose rows are read

    class Recording(pq.ParquetFile):
        def __init__(self, source: object, *args: object, **kwargs: object) -> None:
            super().__init__(source, *args, **kwargs)
            self.folder = Path(str(source)).parent.name

        def iter_batches(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            read.append(self.folder)
            return super().iter_batches(*args, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", Recording)
    folder = tmp_path / "fr"
    code, output = export(
        str(run), "--to-folder", str(folder), "--where", "lang = 'fr'", "--config", "fr"
    )
    assert code == 0, output
    expected = pa.concat_tables([pq.read_table(f) for f in french])
    got = pq.read_table(folder / "data" / "fr")
    assert got["id"].to_pylist() == expected["id"].to_pylist() and got.num_rows > 0
    assert set(read) == {"fr"}, read


def test_where_refuses_what_it_cannot_use(run_folder: Path, tmp_path: Path) -> None:
    target = str(tmp_path / "e")
    code, output = export(str(run_folder), "--to-folder", target, "--where", "lang = 'fr'")
    assert code != 0 and "names column(s) lang that the kept rows do not have" in output
    assert "they have: id, text, url, date, length_chars, threshold_rank" in output
    code, output = export(str(run_folder), "--to-folder", target, "--where", "length_chars + 1")
    assert code != 0 and "gives Int64, not true or false" in output
    code, output = export(
        str(run_folder), "--to-folder", target, "--where", "length_chars > avg(length_chars)"
    )
    assert code != 0 and "looks at other rows" in output
    code, output = export(str(run_folder), "--to-folder", target, "--where", "length_chars < 0")
    assert code != 0 and "no kept row matches --where 'length_chars < 0'" in output
    assert not (tmp_path / "e").exists()


def test_configs_exported_one_at_a_time_load_by_name(
    run_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config with --where: the long and the short documents as two configs beside the
    default one, each loaded by name; the card lists the three (default first), counts
    each, and a config exported again replaces its own files only."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    kept = read_output(run_folder, "kept")
    long = kept.filter(pc.greater(kept["length_chars"], 3000))
    short = kept.filter(pc.less_equal(kept["length_chars"], 3000))
    folder = tmp_path / "configs"
    small = ("--to-folder", str(folder), "--max-shard-size", "100KB")
    for args in (
        ("--config", "long", "--where", "length_chars > 3000"),
        ("--config", "short", "--where", "length_chars <= 3000", "--force"),
        ("--force",),
    ):
        code, output = export(str(run_folder), *small, *args)
        assert code == 0, output
    assert sorted(p.name for p in (folder / "data").iterdir() if p.is_dir()) == ["long", "short"]
    assert (folder / "images" / "long" / "train" / "funnel.png").is_file()
    card = (folder / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]},
        {"config_name": "long", "data_files": [{"split": "train", "path": "data/long/train-*"}]},
        {"config_name": "short", "data_files": [{"split": "train", "path": "data/short/train-*"}]},
    ]
    counts = {i["config_name"]: i["splits"][0]["num_examples"] for i in header["dataset_info"]}
    assert counts == {"default": kept.num_rows, "long": long.num_rows, "short": short.num_rows}
    assert "`train` " in card and "`long/train` " in card and "`short/train` " in card
    assert "## Config `long`, split `train`" in card
    cache = str(tmp_path / "cache")
    for name, rows in (("default", kept), ("long", long), ("short", short)):
        loaded = datasets.load_dataset(str(folder), name, cache_dir=cache)
        assert list(loaded) == ["train"]
        assert loaded["train"]["id"] == rows["id"].to_pylist(), name

    before = files_under(folder)
    longer = kept.filter(pc.greater(kept["length_chars"], 4000))
    code, output = export(
        str(run_folder), *small, "--config", "long", "--where", "length_chars > 4000", "--force"
    )
    assert code == 0, output
    after = files_under(folder)
    assert {n: v for n, v in after.items() if "/long/" not in n and n != "README.md"} == {
        n: v for n, v in before.items() if "/long/" not in n and n != "README.md"
    }
    assert {n for n in after if n.startswith("data/long/")} != {
        n for n in before if n.startswith("data/long/")
    }
    loaded = datasets.load_dataset(str(folder), "long", cache_dir=str(tmp_path / "cache2"))
    assert loaded["train"]["id"] == longer["id"].to_pylist()
    header = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == ["default", "long", "short"]


def test_a_push_of_one_config_leaves_the_others_files(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        base = (str(run_folder), "--repo-id", "acme/configs", "--max-shard-size", "100KB")
        code, output = export(*base, "--config", "short", "--where", "length_chars <= 3000")
        assert code == 0, output
        code, output = export(*base, "--config", "long", "--force")
        assert code == 0, output
        first = held(hub, "acme/configs")
        code, output = export(
            *base[:3], "--config", "long", "--where", "length_chars > 3000", "--force"
        )
        assert code == 0, output
        second = held(hub, "acme/configs")
    short = {n: v for n, v in first.items() if n.startswith(("data/short/", "images/short/"))}
    assert short and {n: v for n, v in second.items() if n in short} == short
    long_first = {n for n in first if n.startswith("data/long/")}
    long_second = {n for n in second if n.startswith("data/long/")}
    assert len(long_second) == 1 and len(long_first) > 1  # the earlier files deleted
    header = yaml.safe_load(second["README.md"].decode().split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == ["short", "long"]


def test_existing_repo_needs_force(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.repos["acme/taken"] = {"README.md": b"an older export\n"}
        target = tmp_path / "out" / "export"
        code, output = export(
            str(run_folder), "--repo-id", "acme/taken", "--to-folder", str(target)
        )
        assert code != 0
        assert "acme/taken already exists" in output and "--force" in output
        assert_nothing_left(target.parent, target)
        assert hub.commits == []
        code, output = export(str(run_folder), "--repo-id", "acme/taken", "--force")
        assert code == 0, output
        assert len(hub.commits) == 1
        assert hub.repos["acme/taken"]["README.md"] != b"an older export\n"


def test_missing_token_and_refused_token(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out" / "export"
    target.parent.mkdir()
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_TOKEN")
        code, output = export(str(run_folder), "--repo-id", "acme/x", "--to-folder", str(target))
        assert code != 0 and "no Hugging Face token" in output and "HF_TOKEN" in output
        assert_nothing_left(target.parent, target)
        wrong = "hf_" + secrets.token_hex(16)
        monkeypatch.setenv("HF_TOKEN", wrong)
        code, output = export(str(run_folder), "--repo-id", "acme/x", "--to-folder", str(target))
        assert code != 0 and "refused the token (HTTP 401)" in output, output
        assert wrong not in output
        assert_nothing_left(target.parent, target)
        assert hub.repos == {}


def test_unreachable_endpoint(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # a port nobody listens on
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    target = tmp_path / "out" / "export"
    target.parent.mkdir()
    code, output = export(str(run_folder), "--repo-id", "acme/x", "--to-folder", str(target))
    assert code != 0
    assert f"cannot reach the Hub at http://127.0.0.1:{port}" in output and "HF_ENDPOINT" in output
    assert token not in output
    assert_nothing_left(target.parent, target)


def test_bad_arguments_are_clear(run_folder: Path, tmp_path: Path) -> None:
    assert "--repo-id ORG/NAME" in export(str(run_folder))[1]
    assert "expected ORG/NAME" in export(str(run_folder), "--repo-id", "no-slash")[1]
    assert (
        "500MB"
        in export(str(run_folder), "--to-folder", str(tmp_path / "e"), "--max-shard-size", "lots")[
            1
        ]
    )
    bad = export(str(run_folder), "--to-folder", str(tmp_path / "e"), "--config", "fr/x")[1]
    assert "--config 'fr/x': use letters, digits and underscores" in bad
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert "--force" in export(str(run_folder), "--to-folder", str(busy))[1]
    assert (busy / "keep.txt").read_text() == "mine"


def test_token_from_the_login_cache(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No HF_TOKEN: the token `hf auth login` cached is used, and still never shown."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf-token"
    cache.write_text(token)
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache))
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, output = export(str(run_folder), "--repo-id", "acme/cached")
        assert code == 0, output
        assert hub.seen_tokens == {token} and "acme/cached" in hub.repos
        assert token not in output


def arrow_bytes(folder: Path, names: list[str]) -> list[int]:
    return [pq.read_table(folder / name).nbytes for name in names]


def test_files_hold_about_the_size_asked_for(run_folder: Path, tmp_path: Path) -> None:
    """The count of files is fixed before the first is written (their names say it), by
    the footers' sizes scaled to Arrow's, and each file is cut where the bytes written
    reach its share: the files come out within 15% of the size asked for (documents are
    4 kB on average here and up to 57 kB, about 37 a file), and from a plain shard (kept
    and dropped rows in one file) only its kept rows."""
    folder = tmp_path / "export"
    code, output = export(str(run_folder), "--to-folder", str(folder), "--max-shard-size", "150KB")
    assert code == 0, output
    names = sorted(n for n in files_under(folder) if n.startswith("data/"))
    sizes = arrow_bytes(folder, names)
    assert len(names) >= 4, sizes
    assert 0.85 * 150_000 <= min(sizes) and max(sizes) <= 1.15 * 150_000, sizes
    assert f"({len(names)} of {len(names)})" in output and "rows," in output

    # a plain shard: every row of the run in one file, drop_reason set on the dropped
    kept = read_output(run_folder, "kept")
    dropped = read_output(run_folder, "dropped")
    shard = tmp_path / "shard.parquet"
    both = pa.concat_tables([kept, dropped], promote_options="permissive")
    pq.write_table(both, shard, row_group_size=97)
    folder = tmp_path / "from-shard"
    code, output = export(str(shard), "--to-folder", str(folder), "--max-shard-size", "150KB")
    assert code == 0, output
    names = sorted(n for n in files_under(folder) if n.startswith("data/"))
    exported = pa.concat_tables([pq.read_table(folder / n) for n in names])
    assert exported["id"].to_pylist() == kept["id"].to_pylist()
    sizes = arrow_bytes(folder, names)
    assert 0.85 * 150_000 <= min(sizes) and max(sizes) <= 1.15 * 150_000, sizes


def test_a_push_holds_one_file_on_disk_at_a_time(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --to-folder each file is sent as it is written and then deleted, so the
    export needs the disk of the files being sent (``UPLOADS``, here 2) and the one being
    written, not of the dataset; more files than one commit carries go in several
    commits, the last with the card."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(hub_module, "COMMIT_FILES", 3)
    monkeypatch.setattr(hub_module, "UPLOADS", 2)
    on_disk: list[int] = []
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.on_put = lambda oid: on_disk.append(len(list(scratch.rglob("*.parquet"))))
        code, output = export(
            str(run_folder), "--repo-id", "acme/lean", "--max-shard-size", "100KB"
        )
        assert code == 0, output
        files = held(hub, "acme/lean")
    shards = sorted(n for n in files if n.startswith("data/"))
    assert len(shards) >= 6
    assert on_disk and max(on_disk) <= 3, on_disk
    assert not list(scratch.iterdir())
    parts = -(-(len(files)) // 3)
    # the first, which opens the pull request, carries a mark to find it by
    summaries = [c["header"]["summary"] for c in hub.commits]
    assert re.fullmatch(
        rf"curation export \({len(files)} files, part 1 of {parts}\) \[[0-9a-f]{{8}}\]",
        summaries[0],
    )
    assert summaries[1:] == [
        f"curation export ({len(files)} files, part {i} of {parts})" for i in range(2, parts + 1)
    ]
    # the commits go to a pull request, merged at the end: main changes in one step
    assert {c["revision"] for c in hub.commits} == {"refs/pr/1"} and hub.merged == [1]
    assert f"{parts} commit(s) to pull request #1, merged into main at once" in output
    kept = read_output(run_folder, "kept")
    exported = pa.concat_tables([pq.read_table(pa.BufferReader(files[n])) for n in shards])
    assert exported["id"].to_pylist() == kept["id"].to_pylist()
    assert "README.md" in files and "sent in" in output


def test_a_new_export_replaces_the_files_of_the_one_before(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--force onto a repo that holds an earlier export with more files: the files this one
    does not overwrite are deleted in its commit (the card's data/train-* would read both),
    other splits and other files stay."""
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, output = export(
            str(run_folder), "--repo-id", "acme/again", "--max-shard-size", "100KB"
        )
        assert code == 0, output
        before = sorted(n for n in held(hub, "acme/again") if n.startswith("data/train-"))
        hub.repos["acme/again"]["data/validation-00000-of-00001.parquet"] = b"other split"
        hub.repos["acme/again"]["notes.txt"] = b"mine"
        folder = tmp_path / "second"
        code, output = export(
            str(run_folder),
            "--repo-id",
            "acme/again",
            "--force",
            "--to-folder",
            str(folder),
            "--max-shard-size",
            "400KB",
        )
        assert code == 0, output
        after = held(hub, "acme/again")
    assert len(before) > len([n for n in after if n.startswith("data/train-")])
    assert after == {
        **files_under(folder),
        "data/validation-00000-of-00001.parquet": b"other split",
        "notes.txt": b"mine",
    }
    assert "earlier export deleted" in hub.commits[-1]["header"]["summary"]


def test_main_keeps_the_earlier_export_whole_when_a_later_one_fails_between_commits(
    run_folder: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export of several commits stops after its first: the repo's main branch still
    holds the earlier export, every file of it and nothing of the new one, and the
    error names the pull request that holds the part that landed. Run again, the export
    replaces the earlier one in one step."""
    monkeypatch.setattr(hub_module, "COMMIT_FILES", 3)
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        args = [str(run_folder), "--repo-id", "acme/whole", "--max-shard-size", "100KB"]
        code, output = export(*args)
        assert code == 0, output
        before = dict(held(hub, "acme/whole"))
        hub.commit_failures = [0, 400]  # the new export's second commit is refused
        again = [*args[:-1], "200KB", "--force"]
        code, output = export(*again)
        assert code != 0
        assert "landed in pull request #2" in output and "main branch is unchanged" in output
        assert held(hub, "acme/whole") == before
        assert hub.merged == [1]
        code, output = export(*again)
        assert code == 0, output
        after = held(hub, "acme/whole")
        assert hub.merged == [1, 3]
    shards = [n for n in after if n.startswith("data/")]
    assert after != before and len(shards) < len([n for n in before if n.startswith("data/")])
    assert all(f"-of-{len(shards):05d}.parquet" in name for name in shards)


@pytest.mark.parametrize("lost", [0, 1])
def test_a_commit_whose_answer_is_lost_is_retried_into_the_same_pull_request(
    run_folder: Path, token: str, monkeypatch: pytest.MonkeyPatch, lost: int
) -> None:
    """The Hub makes a commit of a several-commit export (the first, which opens the pull
    request, or a later one) but its answer never arrives: the retry finds the pull
    request the commit opened instead of opening a second one, and the export lands
    whole through that one pull request, leaving none open."""
    monkeypatch.setattr(hub_module, "COMMIT_FILES", 3)
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.commit_failures = [0] * lost + ["lost"]
        args = [str(run_folder), "--repo-id", "acme/lost", "--max-shard-size", "100KB"]
        code, output = export(*args)
        assert code == 0, output
        assert "upload interrupted" in output
        assert list(hub.titles) == [("acme/lost", 1)] and hub.merged == [1]
        kept = held(hub, "acme/lost")
        # the same files as an export that met no failure (the cards differ in the name)
        code, output = export(*args[:-3], "acme/calm", *args[-2:])
        assert code == 0, output
        calm = held(hub, "acme/calm")
        assert kept.pop("README.md") and calm.pop("README.md")
        assert kept == calm and len(kept) > 3


def test_a_push_that_failed_runs_again_without_force_and_sends_nothing_twice(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Hub refuses the second file it is sent: the export stops, saying nothing was
    committed and to run it again; the repo it made is empty, so the same command (no
    --force) goes on, and the files the Hub took the first time are not sent again."""
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        seen: list[str] = []

        def refuse_the_second(oid: str) -> None:
            if oid not in seen:
                seen.append(oid)
                if len(seen) == 2:
                    hub.refused.add(oid)

        hub.on_put = refuse_the_second
        args = [str(run_folder), "--repo-id", "acme/retry", "--max-shard-size", "100KB"]
        code, output = export(*args)
        assert code != 0
        assert "answered with an error for acme/retry" in output, output
        assert "nothing was committed" in output and "Run the same command again" in output
        assert "--force" not in output.split("nothing was committed")[1]
        assert hub.commits == [] and held(hub, "acme/retry") == {}
        taken = set(hub.stored)
        assert taken and seen[1] not in taken
        hub.on_put, hub.refused = None, set()
        code, output = export(*args)
        assert code == 0, output
        assert all(hub.stored[oid] == 1 for oid in taken)  # held: not sent again
        assert set(hub.stored.values()) == {1}
        assert len(hub.commits) == 1 and token not in output


def test_splits_exported_one_at_a_time_load_as_one_dataset(
    run_folder: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run exported as `train` and a shard as `validation` into one repo: the card lists
    both splits (configs, documents, a block each) and `datasets` loads both; exporting
    `train` again replaces its files, images and block, and `validation` stays as it was."""
    datasets = pytest.importorskip("datasets")
    kept = read_output(run_folder, "kept")
    shard = tmp_path / "held-out.parquet"
    pq.write_table(kept.slice(0, 40), shard)
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, output = export(
            str(run_folder),
            "--repo-id",
            "acme/two",
            "--max-shard-size",
            "100KB",
            "--license",
            "mit",
        )
        assert code == 0, output
        code, output = export(
            str(shard), "--repo-id", "acme/two", "--split", "validation", "--force"
        )
        assert code == 0, output
        both = held(hub, "acme/two")
        code, output = export(
            str(run_folder),
            *("--repo-id", "acme/two", "--force", "--max-shard-size", "400KB"),
            *("--license", "apache-2.0"),
        )
        assert code == 0, output
        again = held(hub, "acme/two")

    card = both["README.md"].decode()
    header = yaml.safe_load(card.split("---")[1])
    assert header["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*"},
                {"split": "validation", "path": "data/validation-*"},
            ],
        }
    ]
    assert {s["name"]: s["num_examples"] for s in header["dataset_info"]["splits"]} == {
        "train": kept.num_rows,
        "validation": 40,
    }
    assert f"{kept.num_rows + 40:,} documents" in card
    assert header["license"] == "mit"  # not told again: the card's stays
    assert "## Split `train`" in card and "## Split `validation`" in card
    assert "images/train/funnel.png" in both and "images/validation/funnel.png" in both

    repo = tmp_path / "repo"
    for name, content in both.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(content)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    loaded = datasets.load_dataset(str(repo), cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded) == ["train", "validation"]
    assert loaded["train"]["id"] == kept["id"].to_pylist()
    assert loaded["validation"]["id"] == kept["id"].to_pylist()[:40]

    train_before = {n for n in both if n.startswith("data/train-")}
    train_after = {n for n in again if n.startswith("data/train-")}
    assert len(train_after) < len(train_before)
    assert {n: v for n, v in again.items() if "validation" in n} == {
        n: v for n, v in both.items() if "validation" in n
    }
    block = card.split("<!-- curation:split validation -->")[1].split("<!-- curation:end")[0]
    assert block in again["README.md"].decode()
    last = yaml.safe_load(again["README.md"].decode().split("---")[1])
    assert last["configs"] == header["configs"] and last["license"] == "apache-2.0"


def test_a_card_written_by_hand_keeps_its_text_and_fields(
    run_folder: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--force onto a repo whose card a person wrote: its text and header fields stay,
    the engine's summary and split block are added; a card whose header does not parse
    stops the export before anything is sent, naming the card."""
    mine = "---\nlanguage:\n- en\nlicense: mit\n---\n\nWritten by hand: cite us.\n"
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.repos["acme/hand"] = {"README.md": mine.encode()}
        code, output = export(str(run_folder), "--repo-id", "acme/hand", "--force")
        assert code == 0, output
        card = hub.repos["acme/hand"]["README.md"].decode()
        hub.repos["acme/broken"] = {"README.md": b"---\nlicense: [mit\n---\n\ntext\n"}
        sent = dict(hub.stored)
        code, output = export(str(run_folder), "--repo-id", "acme/broken", "--force")
        assert code != 0
        assert "README.md of acme/broken" in output and "does not parse" in output
        assert hub.stored == sent and [c["repo"] for c in hub.commits] == ["acme/hand"]
    header = yaml.safe_load(card.split("---")[1])
    assert header["language"] == ["en"] and header["license"] == "mit"
    assert header["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    assert "Written by hand: cite us." in card and "## Split `train`" in card
    assert card.index("<!-- curation:summary -->") < card.index("Written by hand")


def engine_card(split: str, rows: int, note: str, config: str = "default") -> str:
    """A card as ``dataset_card`` makes it, of one split of ``config`` of ``rows``
    documents whose block says ``note``."""
    prefix = hub_module.config_prefix(config)
    info = {"splits": [{"name": split, "num_bytes": rows * 100, "num_examples": rows}]}
    header = {
        "license": "other",
        "pretty_name": "x",
        "size_categories": [hub_module.size_category(rows)],
        "tags": ["curation"],
        "configs": [
            {
                "config_name": config,
                "data_files": [{"split": split, "path": f"data/{prefix}{split}-*"}],
            }
        ],
        "dataset_info": info if config == "default" else [{"config_name": config, **info}],
    }
    key = hub_module.block_key(config, split)
    block = f"<!-- curation:split {key} -->\n{note}\n<!-- curation:end split {key} -->\n"
    summary = hub_module._summary("x", [key], {key: rows})
    return hub_module._with_header(header, summary + "\n" + block)


def test_merge_cards_replaces_one_split_and_keeps_the_rest() -> None:
    """The pure merge: the split's block is replaced in place, other blocks and text stay,
    the summary counts every split; an older card of the engine's without blocks loses
    its body but not its split, and then no split is counted (datasets refuses a card
    that counts some splits and not others)."""

    card = engine_card
    end = "<!-- curation:end split train -->\n"
    one = hub_module.merge_cards(card("train", 10, "train one"), card("test", 5, "test 1"), "test")
    one = one.replace(end, end + "my words\n")
    two = hub_module.merge_cards(one, card("train", 2_000, "train two"), "train")
    header = yaml.safe_load(two.split("---")[1])
    assert [e["split"] for e in header["configs"][0]["data_files"]] == ["train", "test"]
    assert [s["num_examples"] for s in header["dataset_info"]["splits"]] == [2_000, 5]
    assert header["size_categories"] == ["1K<n<10K"]
    assert "2,005 documents" in two and "`train` 2,000, `test` 5" in two
    assert "train one" not in two and "train two" in two and "test 1" in two
    assert two.index("train two") < two.index("my words") < two.index("test 1")
    assert two.count("<!-- curation:summary -->") == 1
    assert hub_module.merge_cards(two, card("train", 2_000, "train two"), "train") == two

    older = yaml.safe_dump(
        {
            "tags": ["curation"],
            "configs": [
                {"config_name": "default", "data_files": [{"split": "old", "path": "data/old-*"}]}
            ],
        }
    )
    merged = hub_module.merge_cards(
        f"---\n{older}---\n\n# x\n\nold body\n", card("train", 3, "new"), "train"
    )
    header = yaml.safe_load(merged.split("---")[1])
    assert "old body" not in merged and "new" in merged
    assert [e["split"] for e in header["configs"][0]["data_files"]] == ["old", "train"]
    assert "dataset_info" not in header and "by split: `old`, `train` 3." in merged

    odd_cards = (  # cards of other shapes: their text stays, their odd fields give way
        "no header at all",
        "---\nconfigs: data/*.parquet\ntags: curation\n---\nhi\n",
        "---\nconfigs:\n- 3\n- config_name: default\n  data_files: x\ndataset_info: [1]\n---\nhi\n",
    )
    for odd in odd_cards:
        merged = hub_module.merge_cards(odd, card("train", 3, "new"), "train")
        header = yaml.safe_load(merged.split("---")[1])
        assert header["configs"] == [
            {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}
        ]
        assert header["dataset_info"]["splits"][0]["num_examples"] == 3
        assert merged.count("<!-- curation:split train -->") == 1
        assert odd.split("---")[-1].strip() in merged
        assert hub_module.merge_cards(merged, card("train", 3, "new"), "train") == merged


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["train", "test", "validation", "extra"]), st.integers(1, 10**7)),
        min_size=1,
        max_size=8,
    )
)
def test_a_card_after_any_exports_describes_each_split_once_as_last_exported(
    exports: list[tuple[str, int]],
) -> None:
    """After any sequence of exports into one repo, the card lists each split exported
    once, in the order first exported, with the documents and block of its last export."""
    merged = None
    for index, (split, rows) in enumerate(exports):
        new = engine_card(split, rows, f"export {index}")
        merged = new if merged is None else hub_module.merge_cards(merged, new, split)
    assert merged is not None
    last = {split: (index, rows) for index, (split, rows) in enumerate(exports)}
    header = yaml.safe_load(merged.split("---")[1])
    order = list(dict.fromkeys(split for split, _ in exports))
    assert [e["split"] for e in header["configs"][0]["data_files"]] == order
    assert [(s["name"], s["num_examples"]) for s in header["dataset_info"]["splits"]] == [
        (split, last[split][1]) for split in order
    ]
    assert f"{sum(rows for _, rows in last.values()):,} documents" in merged
    blocks = re.findall(r"<!-- curation:split (\w+) -->\n(export \d+)\n", merged)
    assert blocks == [(split, f"export {last[split][0]}") for split in order]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["default", "fr", "de"]),
            st.sampled_from(["train", "test"]),
            st.integers(1, 10**7),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_a_card_after_any_exports_of_configs_describes_each_once_as_last_exported(
    exports: list[tuple[str, str, int]],
) -> None:
    """After any sequence of exports of splits of configs into one repo, the card lists
    each config once (the default first, the others in the order first exported), each
    with its splits in the order first exported, counted as last exported; the body has a
    block per config and split, as last exported; the summary counts them all."""
    merged = None
    for index, (config, split, rows) in enumerate(exports):
        new = engine_card(split, rows, f"export {index}", config)
        merged = (
            new if merged is None else hub_module.merge_cards(merged, new, split, config=config)
        )
    assert merged is not None
    last = {(c, s): (index, rows) for index, (c, s, rows) in enumerate(exports)}
    pairs = list(dict.fromkeys((c, s) for c, s, _ in exports))
    configs = list(dict.fromkeys(c for c, _ in pairs))
    if "default" in configs:
        configs = ["default", *(c for c in configs if c != "default")]
    header = yaml.safe_load(merged.split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == configs
    for entry in header["configs"]:
        name = entry["config_name"]
        assert [f["split"] for f in entry["data_files"]] == [s for c, s in pairs if c == name]
    info = header["dataset_info"]
    blocks = [info] if isinstance(info, dict) else info
    assert isinstance(info, dict) == (configs == ["default"])
    counted = {
        (b.get("config_name", "default"), e["name"]): e["num_examples"]
        for b in blocks
        for e in b["splits"]
    }
    assert counted == {pair: rows for pair, (_, rows) in last.items()}
    assert f"{sum(rows for _, rows in last.values()):,} documents" in merged
    found = re.findall(r"<!-- curation:split (\w+(?:/\w+)?) -->\n(export \d+)\n", merged)
    keys = [hub_module.block_key(c, s) for c, s in pairs]
    assert found == [(k, f"export {last[p][0]}") for k, p in zip(keys, pairs, strict=True)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["default", "fr", "de", "en"]),
            st.sampled_from(["train", "test"]),
            st.integers(1, 10**7),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sets(st.sampled_from(["default", "fr", "de", "en", "it", "ja"]), min_size=1),
    st.sampled_from(["train", "test"]),
    st.sampled_from([(), ("license",)]),
)
def test_merging_configs_at_once_is_merging_them_one_after_another(
    before: list[tuple[str, str, int]], configs: set[str], split: str, keep: tuple[str, ...]
) -> None:
    """`merge_many` (one pass, as --config-by merges hundreds of configs) gives the card
    that `merge_cards` of each config's card in turn gives, into any card exports made."""
    old = None
    for index, (config, part, rows) in enumerate(before):
        new = engine_card(part, rows, f"export {index}", config)
        old = new if old is None else hub_module.merge_cards(old, new, part, config=config)
    assert old is not None
    cards = {c: engine_card(split, 7 + i, f"new {c}", c) for i, c in enumerate(sorted(configs))}
    one_by_one = old
    for config, card in cards.items():
        one_by_one = hub_module.merge_cards(one_by_one, card, split, "x", keep, config)
    assert hub_module.merge_many(old, cards, split, "x", keep) == one_by_one


def test_a_slow_push_says_what_is_under_way_without_the_clients_bars(
    run_folder: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uploads slower than the heartbeat: the export says, in its own lines, how many are
    under way and how much is sent; huggingface_hub's per-file bars are off while it runs
    and on again after."""
    from huggingface_hub.utils import are_progress_bars_disabled

    monkeypatch.setattr(hub_module, "HEARTBEAT_S", 0.05)
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.on_put = lambda oid: time.sleep(0.3)
        assert not are_progress_bars_disabled()
        code, output = export(
            str(run_folder), "--repo-id", "acme/slow", "--max-shard-size", "200KB"
        )
        assert code == 0, output
        assert not are_progress_bars_disabled()
    assert "upload(s) under way for" in output and "file(s) sent so far" in output
    assert "%|" not in output and "B/s]" not in output, output


def shard_whose_footers_mislead(path: Path, later_repeat: bool) -> pa.Table:
    """6,000 documents in row groups of 1,000, with a ``licence`` column: 2,000 characters
    repeated (so dictionary-encoded: its footer size is a few bytes a row, its Arrow size
    2 kB a row) in the last 4,000 rows when ``later_repeat``, else in the first 2,000,
    the other rows holding short distinct strings. The footers then tell the Arrow size of
    the first row group (what calibrates the plan) and not of the others."""
    import random

    rng = random.Random(7)
    words = ["".join(rng.choices("abcdefghij", k=rng.randint(2, 9))) for _ in range(500)]
    repeated = "L" * 2000
    rows = []
    for i in range(6000):
        late = i >= 2000
        text = " ".join(rng.choices(words, k=rng.randint(20, 120 if late else 60)))
        licence = repeated if late == later_repeat else f"{rng.getrandbits(120):030x}"
        rows.append({"id": f"doc-{i:05d}", "text": text, "licence": licence})
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path, row_group_size=1000)
    return table


@pytest.mark.parametrize("later_repeat", [True, False], ids=["footers-low", "footers-high"])
def test_files_keep_their_size_where_the_footers_mislead(
    later_repeat: bool, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The footers' estimate is 2.5 times too low (or 5 times too high) for most rows:
    the files still hold about the size asked for (at most 10% more, less than half of it
    only for the last), as few as the rows need; their names say their count, the files
    sent under the first names are committed under the last, and no row moves."""
    table = shard_whose_footers_mislead(tmp_path / "shard.parquet", later_repeat)
    plan = hub_module.plan_shards(hub_module.open_source(tmp_path / "shard.parquet"), 1_000_000)
    off = plan.arrow_bytes / table.nbytes
    assert off < 0.5 if later_repeat else off > 2, off  # the footers do mislead
    folder = tmp_path / "export"
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, output = export(
            str(tmp_path / "shard.parquet"),
            "--repo-id",
            "acme/odd",
            "--to-folder",
            str(folder),
            "--max-shard-size",
            "1MB",
        )
        assert code == 0, output
        assert held(hub, "acme/odd") == files_under(folder)
    names = sorted(n for n in files_under(folder) if n.startswith("data/"))
    assert names == [f"data/train-{i:05d}-of-{len(names):05d}.parquet" for i in range(len(names))]
    assert f"the rows took {len(names)} file(s), not the {plan.files}" in output
    sizes = arrow_bytes(folder, names)
    assert len(names) <= math.ceil(table.nbytes / 1_000_000) + 1, sizes
    assert max(sizes) <= 1.1 * 1_000_000 + 5_000 and min(sizes[:-1]) >= 500_000, sizes
    exported = pa.concat_tables([pq.read_table(folder / n) for n in names])
    assert exported["id"].to_pylist() == table["id"].to_pylist()
    card = yaml.safe_load(files_under(folder)["README.md"].decode().split("---")[1])
    assert card["dataset_info"]["splits"][0]["num_examples"] == 6000


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 3000), min_size=1, max_size=400),
    group=st.integers(1, 120),
    repeat=st.sampled_from(["none", "early", "late"]),
    max_kb=st.integers(5, 60),
)
def test_written_files_hold_every_row_once_in_order_and_about_the_size_asked_for(
    tmp_path_factory: pytest.TempPathFactory,
    lengths: list[int],
    group: int,
    repeat: str,
    max_kb: int,
) -> None:
    """Whatever the rows' sizes, row groups and dictionary-encoded columns: every row once,
    in order; names that say the count; every file but the last between half the size
    asked for and 1.1 times it (within a row)."""
    folder = tmp_path_factory.mktemp("shards")
    n = len(lengths)
    cut = n // 3 if repeat == "early" else 2 * n // 3
    licences = [
        "R" * 500 if (repeat == "early") == (i < cut) and repeat != "none" else f"{i:08d}"
        for i in range(n)
    ]
    table = pa.table(
        {
            "id": [f"d{i:05d}" for i in range(n)],
            "text": ["x" * length for length in lengths],
            "licence": licences,
        }
    )
    pq.write_table(table, folder / "shard.parquet", row_group_size=group)
    source = hub_module.open_source(folder / "shard.parquet")
    max_bytes = max_kb * 1000
    plan = hub_module.plan_shards(source, max_bytes)
    shards = hub_module.write_shards(source, folder / "data", "train", plan)
    names = [Path(s["path"]).name for s in shards]
    assert names == [f"train-{i:05d}-of-{len(names):05d}.parquet" for i in range(len(names))]
    assert sorted(p.name for p in (folder / "data").iterdir()) == names
    tables = [pq.read_table(folder / "data" / name) for name in names]
    assert pa.concat_tables(tables)["id"].to_pylist() == table["id"].to_pylist()
    assert [s["rows"] for s in shards] == [t.num_rows for t in tables]
    row = max(lengths) + 520  # the largest row's bytes, about
    for shard in shards[:-1]:
        assert max_bytes / 2 - row <= shard["arrow_bytes"] <= 1.1 * max_bytes + row, shards


def test_a_folder_takes_another_split_and_keeps_what_else_it_holds(
    run_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--to-folder with --force into a folder that holds an export and a person's files:
    as a push into a repo, the split's files are replaced, the other split's and the
    person's stay, the card lists both splits, and `datasets` loads both. A file given as
    the folder is refused."""
    datasets = pytest.importorskip("datasets")
    kept = read_output(run_folder, "kept")
    shard = tmp_path / "held-out.parquet"
    pq.write_table(kept.slice(0, 25), shard)
    folder = tmp_path / "export"
    code, output = export(str(run_folder), "--to-folder", str(folder), "--max-shard-size", "200KB")
    assert code == 0, output
    (folder / "notes.txt").write_text("mine")
    first_train = {n for n in files_under(folder) if n.startswith("data/train-")}
    code, output = export(str(shard), "--to-folder", str(folder), "--split", "validation")
    assert code != 0 and "--force" in output and "'validation'" in output
    code, output = export(
        str(shard), "--to-folder", str(folder), "--split", "validation", "--force"
    )
    assert code == 0, output
    code, output = export(
        str(run_folder), "--to-folder", str(folder), "--force", "--max-shard-size", "600KB"
    )
    assert code == 0, output
    files = files_under(folder)
    train = {n for n in files if n.startswith("data/train-")}
    assert train and len(train) < len(first_train)
    assert [n for n in files if n.startswith("data/validation-")] == [
        "data/validation-00000-of-00001.parquet"
    ]
    assert files["notes.txt"] == b"mine"
    assert {n.split("/")[1] for n in files if n.startswith("images/")} == {"train", "validation"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".curation-export-")]
    card = files["README.md"].decode()
    assert card.count("<!-- curation:split train -->") == 1 and "## Split `validation`" in card
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert {name: split.num_rows for name, split in loaded.items()} == {
        "train": kept.num_rows,
        "validation": 25,
    }
    assert loaded["train"]["id"] == kept["id"].to_pylist()

    code, output = export(str(shard), "--to-folder", str(folder / "notes.txt"), "--force")
    assert code != 0 and "is a file" in output
    assert (folder / "notes.txt").read_text() == "mine"


def test_files_renamed_after_they_were_sent_are_committed_under_their_last_names(
    token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows take more files than the footers suggested, so the files sent as
    ``train-0000K-of-00003`` are committed as ``...-of-000NN``: all of them, even where
    the repo held the same content under the first name (left by an older engine), which
    the client would otherwise leave out of the commit as unchanged."""
    shard = tmp_path / "shard.parquet"
    table = shard_whose_footers_mislead(shard, later_repeat=True)
    folder = tmp_path / "local"
    code, output = export(str(shard), "--to-folder", str(folder), "--max-shard-size", "1MB")
    assert code == 0, output
    local = {n: v for n, v in files_under(folder).items() if n.startswith("data/")}
    planned = hub_module.plan_shards(hub_module.open_source(shard), 1_000_000).files
    assert len(local) > planned
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        first = sorted(local.items())[:planned]
        hub.repos["acme/older"] = {
            f"data/train-{k:05d}-of-{planned:05d}.parquet": content
            for k, (_, content) in enumerate(first)
        }
        code, output = export(
            str(shard), "--repo-id", "acme/older", "--force", "--max-shard-size", "1MB"
        )
        assert code == 0, output
        repo = {n: v for n, v in held(hub, "acme/older").items() if n.startswith("data/")}
    assert repo == local
    exported = pa.concat_tables([pq.read_table(pa.BufferReader(repo[n])) for n in sorted(repo)])
    assert exported["id"].to_pylist() == table["id"].to_pylist()


def test_files_of_different_columns_export_with_their_union(tmp_path: Path) -> None:
    """A folder of Parquet files whose columns differ (one has a `url`, numbers of two
    widths) exports with the union of their columns, null where a file lacks one; a
    column of types that cannot be reconciled is an error naming it and both files."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(
        pa.table({"id": ["a", "b"], "text": ["x y", "z"], "n": pa.array([1, 2], pa.int32())}),
        folder / "a.parquet",
    )
    pq.write_table(
        pa.table({"id": ["c"], "text": ["w"], "n": pa.array([3], pa.int64()), "url": ["u"]}),
        folder / "b.parquet",
    )
    code, output = export(str(folder), "--to-folder", str(tmp_path / "out"))
    assert code == 0, output
    table = pq.read_table(tmp_path / "out" / "data")
    assert table.to_pylist() == [
        {"id": "a", "text": "x y", "n": 1, "url": None},
        {"id": "b", "text": "z", "n": 2, "url": None},
        {"id": "c", "text": "w", "n": 3, "url": "u"},
    ]
    assert table.schema.field("n").type == pa.int64()

    pq.write_table(pa.table({"id": ["d"], "text": [5]}), folder / "c.parquet")
    code, output = export(str(folder), "--to-folder", str(tmp_path / "again"))
    assert code != 0 and "Traceback" not in output
    assert "'text'" in output and "c.parquet" in output and "a.parquet" in output
    assert not (tmp_path / "again").exists()


def test_unreadable_files_and_sizes_are_clear_errors(tmp_path: Path) -> None:
    """A Parquet file cut short (no footer) or with a damaged page, and a size of 0: an
    error naming the file (or the option) and what to do, no traceback, nothing left."""
    table = pa.table({"id": [f"d{i}" for i in range(2000)], "text": ["w " * 300] * 2000})
    for damage in ("footer", "page"):
        folder = damaged_shards(tmp_path / damage, table, damage)
        target = tmp_path / f"out-{damage}"
        code, output = export(str(folder), "--to-folder", str(target))
        assert code != 0 and "Traceback" not in output, output
        assert "b.parquet: cannot be read as Parquet" in output and "replace or remove" in output
        assert_nothing_left(tmp_path, target)
    code, output = export(
        str(tmp_path / "page"), "--to-folder", str(tmp_path / "z"), "--max-shard-size", "0"
    )
    assert code != 0 and "--max-shard-size '0'" in output


def test_a_run_that_kept_nothing_has_nothing_to_export(tmp_path: Path) -> None:
    """Before, an IndexError from deep in the size plan."""
    run = run_that_kept_nothing(tmp_path)
    code, output = export(str(run), "--to-folder", str(tmp_path / "export"))
    assert code != 0 and "Traceback" not in output
    said = " ".join(output.split())
    assert f"{run}: no kept rows to export (0 kept of 3 documents read)" in said
    assert f"`curate inspect {run}` shows what dropped them" in said


# --config-by: a config for each value of a column, in one push

SUBSET = "metadata.pile_set_name"  # the Pile's subset of each document: a struct's field
SUBSET_RECIPE = "stages:\n  - length_filter: {min_chars: 200}\n"


@pytest.fixture(scope="module")
def subset_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Pile sample's documents of 200 characters or more, run three ways: flat
    Parquet, Parquet a folder per subset, and flat JSON Lines."""
    from tests.conftest import shared_file

    pile = shared_file("web/pile-sample-1000.jsonl")
    folder = tmp_path_factory.mktemp("subsets")
    outputs = {
        "flat": "",
        "partitioned": f"output: {{partition_by: {SUBSET}}}\n",
        "jsonl": "output: {format: jsonl}\n",
    }
    runs = {}
    for name, output in outputs.items():
        runs[name] = folder / name
        run_local(recipe_of(SUBSET_RECIPE + output, pile, text_field="contents"), runs[name])
    return runs


def ids_by_subset(run: Path) -> dict[str, list[str]]:
    """The ids of a flat Parquet run's kept rows by the config name of their subset, in
    their order, as a plain reading of the files finds them."""
    kept = read_output(run, "kept")
    subsets = pc.struct_field(kept["metadata"], "pile_set_name").to_pylist()
    found: dict[str, list[str]] = {}
    for id_, subset in zip(kept["id"].to_pylist(), subsets, strict=True):
        found.setdefault(hub_module.config_name(subset), []).append(id_)
    return found


@pytest.mark.parametrize("kind", ["flat", "partitioned", "jsonl"])
def test_config_by_exports_a_config_per_value_that_loads_by_name(
    subset_runs: dict[str, Path], kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config-by metadata.pile_set_name on the Pile sample: a config for each subset,
    named after it (Pile-CC: Pile_CC), holding that subset's kept rows in the run's order,
    whatever way the run wrote them; the one card lists and counts every config and says
    which rows each holds; `datasets` loads a config by name."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    expected = ids_by_subset(subset_runs["flat"])
    assert len(expected) == 14 and {"Pile_CC", "Wikipedia_en", "USPTO_Backgrounds"} <= set(expected)
    folder = tmp_path / "export"
    code, output = export(
        str(subset_runs[kind]),
        *("--to-folder", str(folder), "--max-shard-size", "100KB", "--config-by", SUBSET),
    )
    assert code == 0, output
    rows = sum(len(ids) for ids in expected.values())
    assert f"exported {rows:,} rows in " in output and " as 14 configs (Pile_CC " in output
    assert "apart once" not in output  # a small run's row groups are cheap to read again
    assert sorted(p.name for p in (folder / "data").iterdir()) == sorted(expected)
    for name, ids in expected.items():
        files = sorted((folder / "data" / name).glob("train-*.parquet"))
        got = pa.concat_tables([pq.read_table(f) for f in files])
        assert got["id"].to_pylist() == ids, name
        assert "drop_reason" not in got.column_names
        assert (folder / "images" / name / "train" / "funnel.png").is_file()
    card = (folder / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == sorted(expected)
    counts = {i["config_name"]: i["splits"][0]["num_examples"] for i in header["dataset_info"]}
    assert counts == {name: len(ids) for name, ids in expected.items()}
    assert "## Config `Wikipedia_en`, split `train`" in card
    assert f"for which `{SUBSET} = 'Wikipedia (en)'` is true" in card
    cache = str(tmp_path / "cache")
    for name in ("Pile_CC", "Wikipedia_en"):
        loaded = datasets.load_dataset(str(folder), name, cache_dir=cache)
        assert loaded["train"]["id"] == expected[name]


def test_config_by_reads_each_configs_own_folder_of_a_partitioned_run(
    subset_runs: dict[str, Path],
) -> None:
    """On a run partitioned by the same column, each config's plan names the row groups
    of its own folder's files alone, so its rows are read from those; on a flat run, the
    plans together hold every kept row once."""
    from curation.inspect.shards import open_source

    run = subset_runs["partitioned"]
    source = open_source(run)
    plans = hub_module.plan_configs(source, 100_000, SUBSET)
    files = hub_module._export_files(source)
    kept = run / "kept"
    for name, plan in plans:
        read = {files[i].parent.name for i, groups in enumerate(plan.groups or ()) if groups}
        assert {hub_module.config_name(folder) for folder in read} == {name}, name
        on_disk = sum(pq.read_metadata(f).num_rows for f in files if f.parent.name in read)
        assert plan.rows == on_disk > 0
    assert sorted(p.name for p in kept.iterdir()) == sorted({f.parent.name for f in files})
    flat = hub_module.plan_configs(open_source(subset_runs["flat"]), 100_000, SUBSET)
    assert {name: plan.rows for name, plan in flat} == {name: plan.rows for name, plan in plans}


def test_config_by_reads_a_flat_runs_rows_once(
    subset_runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a flat run every row group holds several subsets: where reading them again
    would cost more than SPLIT_EXTRA_BYTES (here lowered to nothing: the sample is small),
    the export writes each config's rows apart once (a temporary copy, removed after),
    rather than reading each row group once for every config that has a row in it, and
    exports the same files."""
    run = subset_runs["flat"]
    code, output = export(str(run), "--to-folder", str(tmp_path / "small"), "--config-by", SUBSET)
    assert code == 0 and "apart once" not in output, output  # 13 MB read again: no copy
    monkeypatch.setattr(hub_module, "SPLIT_EXTRA_BYTES", 0)
    reads: list[str] = []  # the files of the run whose rows are read

    class Recording(pq.ParquetFile):
        def __init__(self, source: object, *args: object, **kwargs: object) -> None:
            super().__init__(source, *args, **kwargs)
            self.name = str(source)

        def iter_batches(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            reads.append(self.name)
            return super().iter_batches(*args, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", Recording)
    folder = tmp_path / "export"
    code, output = export(str(run), "--to-folder", str(folder), "--config-by", SUBSET)
    assert code == 0, output
    assert "writing each config's rows apart once" in output
    own = [r for r in reads if r.startswith(str(run))]
    # the plan's calibration and the copy: not once a config (14)
    assert len(own) <= 2 * len(list((run / "kept").glob("*.parquet"))), own
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".curation-export")]
    small = {
        p.name: pq.read_table(p)["id"].to_pylist() for p in (tmp_path / "small" / "data").iterdir()
    }
    assert {
        p.name: pq.read_table(p)["id"].to_pylist() for p in (folder / "data").iterdir()
    } == small
    partitioned = tmp_path / "from-partitioned"
    monkeypatch.undo()
    code, output = export(
        str(subset_runs["partitioned"]), "--to-folder", str(partitioned), "--config-by", SUBSET
    )
    assert code == 0, output
    for name in sorted(p.name for p in (folder / "data").iterdir()):
        ours = pq.read_table(folder / "data" / name)
        theirs = pq.read_table(partitioned / "data" / name)
        assert ours["id"].to_pylist() == theirs["id"].to_pylist(), name


def test_config_by_pushes_every_config_at_once_and_leaves_the_others(
    subset_runs: dict[str, Path], token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push of --config-by into a repo that holds a default config: one commit adds
    every subset's config and keeps the default one; pushed again with --where, each
    config's earlier files are replaced, in one pull request where the files take
    several commits."""
    run = str(subset_runs["partitioned"])
    expected = ids_by_subset(subset_runs["flat"])
    with FakeHub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, output = export(run, "--repo-id", "acme/pile")
        assert code == 0, output
        code, output = export(run, *("--repo-id", "acme/pile", "--config-by", SUBSET, "--force"))
        assert code == 0, output
        assert len(hub.commits) == 2
        first = held(hub, "acme/pile")
        assert {
            n.split("/")[1] for n in first if n.startswith("data/") and n.count("/") == 2
        } == set(expected)
        header = yaml.safe_load(first["README.md"].decode().split("---")[1])
        assert [c["config_name"] for c in header["configs"]] == ["default", *sorted(expected)]
        code, output = export(
            run,
            *("--repo-id", "acme/pile", "--config-by", SUBSET, "--force"),
            *("--where", "length_chars > 600", "--max-shard-size", "10KB"),
        )
        assert code == 0, output
        second = held(hub, "acme/pile")
        assert {c["revision"] for c in hub.commits[2:]} == {"refs/pr/1"} and hub.merged == [1]
    assert {n: v for n, v in second.items() if n.startswith("data/train-")} == {
        n: v for n, v in first.items() if n.startswith("data/train-")
    }
    kept = read_output(subset_runs["flat"], "kept")
    longer = kept.filter(pc.greater(kept["length_chars"], 600))
    subsets = pc.struct_field(longer["metadata"], "pile_set_name").to_pylist()
    for name in expected:
        ids = [
            i
            for i, s in zip(longer["id"].to_pylist(), subsets, strict=True)
            if hub_module.config_name(s) == name
        ]
        files = sorted(n for n in second if n.startswith(f"data/{name}/"))
        if not ids:  # no row of this subset now: its config stays as it was
            assert files == sorted(n for n in first if n.startswith(f"data/{name}/"))
            continue
        got = pa.concat_tables([pq.read_table(pa.BufferReader(second[f])) for f in files])
        assert got["id"].to_pylist() == ids, name


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("en", "en"),
        ("Pile-CC", "Pile_CC"),
        ("Wikipedia (en)", "Wikipedia_en"),
        ("Gutenberg (PG-19)", "Gutenberg_PG_19"),
        ("zh-Hans", "zh_Hans"),
        ("日本語", "日本語"),
        (None, "null"),
        ("", "null"),
        (True, "true"),
        (False, "false"),
        (-3, "3"),
        (42, "42"),
        (__import__("datetime").date(2024, 1, 2), "2024_01_02"),
        ("--", ""),
    ],
)
def test_config_names(value: object, name: str) -> None:
    assert hub_module.config_name(value) == name
    if name:
        assert re.fullmatch(r"\w+", name)


def test_config_by_values_of_each_kind_in_a_shard_and_with_where(tmp_path: Path) -> None:
    """A plain shard: configs by integers, booleans, dates and strings with nulls and
    empty strings (both in `null`), only of its kept rows, each holding the rows of its
    value in order, also where --where picks among them; a value shared by no kept row
    makes no config."""
    import datetime

    day = datetime.date(2024, 5, 1)
    shard = tmp_path / "shard.parquet"
    table = pa.table(
        {
            "id": [f"d{i}" for i in range(8)],
            "text": [f"text {i}" for i in range(8)],
            "n": [1, 2, 1, 3, 2, 1, 9, 2],
            "flag": [True, False, True, True, False, None, True, False],
            "day": pa.array([day, None, day, day, None, day, None, day], pa.date32()),
            "lang": pa.array(["en", None, "fr", "", "en", "fr", "de", "en"]).dictionary_encode(),
            "drop_reason": [None, None, None, None, None, None, "x:y", None],
        }
    )
    pq.write_table(table, shard, row_group_size=3)
    expected = {
        "n": {"1": ["d0", "d2", "d5"], "2": ["d1", "d4", "d7"], "3": ["d3"]},
        "flag": {"true": ["d0", "d2", "d3"], "false": ["d1", "d4", "d7"], "null": ["d5"]},
        "day": {"2024_05_01": ["d0", "d2", "d3", "d5", "d7"], "null": ["d1", "d4"]},
        "lang": {"en": ["d0", "d4", "d7"], "fr": ["d2", "d5"], "null": ["d1", "d3"]},
    }
    for column, configs in expected.items():
        folder = tmp_path / column
        code, output = export(str(shard), "--to-folder", str(folder), "--config-by", column)
        assert code == 0, output
        got = {p.name: pq.read_table(p)["id"].to_pylist() for p in (folder / "data").iterdir()}
        assert got == configs, column
    card = (tmp_path / "lang" / "README.md").read_text()
    assert "for which `lang IS NULL OR lang = ''` is true" in card
    assert "for which `lang = 'en'` is true" in card
    assert (
        "for which `day = DATE '2024-05-01'` is true"
        in (tmp_path / "day" / "README.md").read_text()
    )
    folder = tmp_path / "where"
    code, output = export(
        str(shard), "--to-folder", str(folder), "--config-by", "lang", "--where", "n = 2"
    )
    assert code == 0, output
    got = {p.name: pq.read_table(p)["id"].to_pylist() for p in (folder / "data").iterdir()}
    assert got == {"en": ["d4", "d7"], "null": ["d1"]}
    assert "for which `(n = 2) AND (lang = 'en')` is true" in (folder / "README.md").read_text()


def test_config_by_refuses_what_cannot_name_configs(tmp_path: Path) -> None:
    shard = tmp_path / "shard.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b", "c", "d"],
                "text": ["one", "two", "three", "four"],
                "score": [0.1, 0.2, 0.3, 0.4],
                "src": ["a-b", "a b", "c", "d"],
                "mark": ["x", None, "--", "null"],
                "drop_reason": pa.nulls(4, pa.string()),
            }
        ),
        shard,
    )
    out = str(tmp_path / "out")
    cases = {
        ("--config-by", "score"): "its values are double; a config is named by strings",
        ("--config-by", "nope"): "the kept rows have no such column",
        ("--config-by", "src.x"): "the kept rows have no such column",
        ("--config-by", "src"): "the values 'a b' and 'a-b' would both be the config 'a_b'",
        ("--config-by", "mark", "--where", "id <> 'd'"): "the value '--' has no letter",
        ("--config-by", "mark", "--where", "id <> 'c'"): "the values 'null' and None would",
        ("--config-by", "src", "--config", "x"): "--config 'x' with --config-by 'src'",
    }
    for args, message in cases.items():
        code, output = export(str(shard), "--to-folder", out, *args)
        assert code == 1 and message in output, (args, output)
        assert "Traceback" not in output
        assert_nothing_left(tmp_path, tmp_path / "out")
