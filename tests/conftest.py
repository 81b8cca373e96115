"""Shared fixtures: the real data in ../shared/data, and a helper to run recipes."""

from __future__ import annotations

import os

# `make test` runs the tests in one pytest-xdist worker per core. torch's OpenMP takes one
# thread per core in each worker, and two workers' threads then spin against each other (a
# 6 s training test took 80 s): each worker, and the Ray workers and subprocesses it starts,
# get one thread. Set before anything imports torch.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

from curation.recipe import Recipe, parse_recipe
from curation.runtime.run import RunOptions, run

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# CI (.ci/run sets CURATION_TEST_DERANDOMIZE) draws each property test's examples from the
# test's name, so that its verdict is the change's and can be reproduced; other runs draw
# at random, and so keep finding new cases (as they did for inspect's summaries), which
# then become @examples
settings.register_profile("derandomized", derandomize=True, database=None)
if os.environ.get("CURATION_TEST_DERANDOMIZE"):
    settings.load_profile("derandomized")


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine's cache (``CURATION_CACHE_DIR``) in a folder of this test session, not
    the user's ``~/.cache``; Ray workers the tests start inherit it."""
    folder = tmp_path_factory.mktemp("curation-cache")
    os.environ["CURATION_CACHE_DIR"] = str(folder)
    return folder


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or skip the test with a clear message when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data {path} is absent (the shared data folder sits beside the repo)")
    return path


def c4_texts(start: int, count: int) -> list[str]:
    """Texts ``start`` to ``start + count`` of the real C4 sample (skips when absent)."""
    import gzip
    import json

    with gzip.open(shared_file("web/c4-sample-1000.jsonl.gz"), "rt", encoding="utf-8") as f:
        rows = [json.loads(line)["text"] for line in f]
    return rows[start : start + count]


@pytest.fixture
def c4_path() -> Path:
    return shared_file("web/c4-sample-1000.jsonl.gz")


@pytest.fixture
def pile_path() -> Path:
    return shared_file("web/pile-sample-1000.jsonl")


@pytest.fixture
def warc_dir() -> Path:
    return shared_file("warc")


def train_tiny_lm_on_ray(corpus: Path, out: Path) -> Result:
    """``curate train-lm`` of the tiny preset for 5 steps on ``corpus`` into ``out``, as a
    Ray task on whatever cluster is up (or an embedded one); the CLI's result."""
    from curation.cli import main

    return CliRunner().invoke(
        main,
        ["train-lm", "--input", str(corpus), "--output", str(out), "--config", "tiny",
         "--steps", "5", "--batch-size", "4", "--vocab-size", "600", "--executor", "ray"],
    )  # fmt: skip


def train_bytelevel_bpe(
    texts: list[str], vocab_size: int, path: Path, special: str, split: str | None = None
) -> Path:
    """A byte-level BPE ``tokenizer.json`` trained on ``texts`` with the special token
    ``special``, written to ``path``: GPT-2's pipeline (``ByteLevel`` with its regex), or
    with ``split`` Llama 3's (a ``Split`` by that regex, then ``ByteLevel`` without its
    own, merges ignored for whole words). The kinds of tokenizer `curate tokenize` takes,
    made here (nothing is downloaded)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    if split is None:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tokenizer = Tokenizer(models.BPE(ignore_merges=True))
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[special],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(path))
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (free when this returns)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def recipe_of(text: str, *paths: Path | str, **input_overrides: object) -> Recipe:
    """A recipe from YAML text with the given input paths."""
    return parse_recipe(text, "test-recipe.yaml").with_input(
        paths=[str(p) for p in paths], **input_overrides
    )


def run_local(recipe: Recipe, out: Path, **options: object) -> dict:
    """Run with the local executor, quietly; return stats."""
    opts = {"executor": "local", "progress": False, **options}
    return run(recipe, out, RunOptions(**opts))  # type: ignore[arg-type]


def run_that_kept_nothing(folder: Path) -> Path:
    """A finished run (of 3 documents) whose every document was dropped: no kept/ part."""
    docs = folder / "three.jsonl"
    docs.write_text("".join(f'{{"text": "short {i}"}}\n' for i in range(3)))
    out = folder / "kept-nothing"
    run_local(recipe_of("stages:\n  - length_filter: {min_chars: 1000}\n", docs), out)
    assert not list((out / "kept").iterdir())
    return out


def read_output(out: Path, kind: str) -> pa.Table:
    """All rows of OUT/kept or OUT/dropped, in file order."""
    files = sorted((out / kind).glob("part-*.parquet"))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


EXECUTORS = {
    "local": {"executor": "local"},
    "ray1": {"executor": "ray", "workers": 1},
    "ray2": {"executor": "ray", "workers": 2},
}


def on_every_executor(recipe: Recipe, tmp_path: Path) -> dict[str, tuple[list, list]]:
    """Run ``recipe`` locally and on Ray with 1 and 2 workers; kept and dropped rows of each."""
    outputs = {}
    for name, options in EXECUTORS.items():
        run_local(recipe, tmp_path / name, **options)
        outputs[name] = (
            read_output(tmp_path / name, "kept").to_pylist(),
            read_output(tmp_path / name, "dropped").to_pylist(),
        )
    return outputs


def warc_record(kind: str, headers: dict[str, str], block: bytes) -> bytes:
    """One WARC/1.0 record of type ``kind`` with ``headers`` (Content-Length is added)
    and ``block`` as its content, uncompressed."""
    head = [f"WARC/1.0\r\nWARC-Type: {kind}\r\n"]
    head += [f"{name}: {value}\r\n" for name, value in headers.items()]
    head.append(f"Content-Length: {len(block)}\r\n\r\n")
    return "".join(head).encode() + block + b"\r\n\r\n"


def damaged_shards(folder: Path, table: pa.Table, damage: str) -> Path:
    """``folder`` with ``table`` as an intact ``a.parquet`` and a damaged ``b.parquet``:
    cut in half (``footer``: no footer) or with 300 bytes zeroed in a page of its first
    two columns (``page``)."""
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "a.parquet")
    pq.write_table(table, folder / "b.parquet", compression="zstd")
    data = bytearray((folder / "b.parquet").read_bytes())
    if damage == "footer":
        del data[len(data) // 2 :]
    else:
        second = pq.ParquetFile(folder / "b.parquet").metadata.row_group(0).column(1)
        for start in (100, second.data_page_offset + 50):
            data[start : start + 300] = bytes(300)
    (folder / "b.parquet").write_bytes(bytes(data))
    return folder
