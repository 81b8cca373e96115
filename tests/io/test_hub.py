"""`curate export`: the Hub layout, a push through the real huggingface_hub client to a
local Hub, retries that resume, clear refusals that leave nothing behind, and a token
that never shows."""

from __future__ import annotations

import secrets
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from curation.cli import main
from curation.io import hub as hub_module
from tests.conftest import free_port, read_output, recipe_of, run_local
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
        assert hub.repos["acme/c4-long"] == local  # every file, byte for byte
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
    assert "images/length_chars.png" in card and "images/length_chars.png" in local
    assert local["images/length_chars.png"].startswith(b"\x89PNG")
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
