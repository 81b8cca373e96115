"""The code path that asks Ray for GPUs, on a cluster that advertises one.

Ray's GPUs are logical resources: a local cluster started with ``num_gpus=1`` schedules
GPU tasks and actors, gives them GPU id 0 and sets ``CUDA_VISIBLE_DEVICES``, whatever the
hardware. On this CPU machine (torch's CPU build) torch then sees no CUDA device, so the
model runs on the CPU and the engine must say so. On a GPU machine the same requests put
the model on the GPU (``benchmarks/lm_throughput.py`` measures it there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from curation.cli import main
from curation.lm.train import TrainConfig, train_lm
from curation.runtime.run import RunOptions, run
from tests.conftest import c4_texts, read_output, recipe_of, run_local, train_tiny_lm_on_ray
from tests.lm.test_train import assert_same_weights

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster_with_a_gpu() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs and 1 (logical) GPU, shared by this module's tests;
    the engine joins a cluster that is already up instead of starting its own."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


needs_cpu_torch = pytest.mark.skipif(
    torch.cuda.is_available(), reason="asserts the CPU fallback: this torch sees a real GPU"
)


@needs_cpu_torch
def test_train_lm_asks_for_the_gpu_and_says_when_torch_cannot_use_it(
    cluster_with_a_gpu: None, c4_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lm"
    result = train_tiny_lm_on_ray(c4_path, out)
    assert result.exit_code == 0, result.output
    assert "as a Ray task with num_gpus=1" in result.output
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["placement"] == {"ray_gpu_ids": ["0"]}  # Ray gave the task the GPU
    assert training["device"] == "cpu"
    assert "Ray gave the task GPU 0, but torch there sees no CUDA device" in result.output
    assert "install a CUDA build of torch" in result.output


@needs_cpu_torch
def test_train_lm_on_token_files_as_a_ray_task_trains_the_local_model(
    cluster_with_a_gpu: None, tmp_path: Path
) -> None:
    """--tokens with --executor ray: the task asks for the GPU, reads the memory-mapped
    folder where it runs, and writes the weights the local run writes."""
    from curation.io.tokens import TokenizeOptions, TokenizerSpec, tokenize

    quick = TrainConfig(steps=5, batch_size=4, warmup_steps=2, seed=0)
    train_lm(c4_texts(0, 100), tmp_path / "tok", preset="tiny", train=quick, vocab_size=600,
             log=lambda m: None)  # fmt: skip
    source = tmp_path / "d.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in c4_texts(100, 80)))
    spec = TokenizerSpec(str(tmp_path / "tok"), "</s>", "<s>")
    tokenize([str(source)], tmp_path / "t", TokenizeOptions(spec), progress=False)
    runs = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        runs[executor] = CliRunner().invoke(
            main,
            ["train-lm", "--tokens", str(tmp_path / "t"), "--output", str(out), "--config",
             "tiny", "--steps", "5", "--batch-size", "4", "--executor", executor],
        )  # fmt: skip
        assert runs[executor].exit_code == 0, runs[executor].output
    assert "as a Ray task with num_gpus=1" in runs["ray"].output
    training = json.loads((tmp_path / "ray" / "config.json").read_text())["training"]
    assert training["placement"] == {"ray_gpu_ids": ["0"]}
    assert training["tokens"]["folder"] == str((tmp_path / "t").resolve())
    assert_same_weights(tmp_path / "local", tmp_path / "ray")


def test_train_lm_errors_from_the_task_read_as_the_engines_own(
    cluster_with_a_gpu: None, c4_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(
        main,
        ["train-lm", "--input", str(c4_path), "--output", str(tmp_path / "lm"),
         "--config", "tiny", "--steps", "2", "--executor", "ray"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "exists and is not empty: choose another --output" in result.output
    assert "Traceback" not in result.output and "RayTaskError" not in result.output


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model of 10 steps on C4 text: what it scores does not matter here."""
    out = tmp_path_factory.mktemp("tiny") / "lm"
    quiet = TrainConfig(steps=10, batch_size=4, warmup_steps=2, seed=0)
    train_lm(c4_texts(0, 200), out, preset="tiny", train=quiet, vocab_size=600,
             log=lambda m: None)  # fmt: skip
    return out


def write_shards(folder: Path) -> tuple[list[dict], list[Path]]:
    """60 C4 documents in 3 Parquet shards."""
    docs = [{"id": f"c4/{i}", "text": t} for i, t in enumerate(c4_texts(300, 60))]
    for shard in range(3):
        pq.write_table(pa.Table.from_pylist(docs[shard::3]), folder / f"part-{shard}.parquet")
    return docs, sorted(folder.glob("part-*.parquet"))


def pool(number: int, actors: int, gpus: float) -> dict:
    """A pass's pool as the stats record it on this cluster (torch sees no CUDA)."""
    on_gpu = ["0"] if gpus else []
    return {
        "pass": number,
        "actors": actors,
        "gpus_each": gpus,
        "gpu_ids": on_gpu,
        "cuda": False,
        "gpu_ids_without_cuda": on_gpu,
    }


@needs_cpu_torch
def test_lm_loss_actors_hold_the_gpu_and_score_as_the_local_run(
    cluster_with_a_gpu: None, tiny_lm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs, shards = write_shards(tmp_path)
    recipe = recipe_of(f"stages:\n  - lm_loss: {{model: '{tiny_lm}'}}\n", *shards)
    stats = run(recipe, tmp_path / "ray", RunOptions("ray", workers=2, progress=False))
    # one actor for the one GPU (not one per worker), and Ray gave it that GPU
    assert stats["engine"]["pools"] == [
        {
            "pass": 1,
            "actors": 1,
            "gpus_each": 1.0,
            "gpu_ids": ["0"],
            "cuda": False,
            "gpu_ids_without_cuda": ["0"],
        }
    ]
    assert "Ray gave the model actors GPU 0, but torch there sees no CUDA device" in (
        capsys.readouterr().err
    )
    run_local(recipe, tmp_path / "local")
    local = {r["id"]: r for r in read_output(tmp_path / "local", "kept").to_pylist()}
    on_ray = {r["id"]: r for r in read_output(tmp_path / "ray", "kept").to_pylist()}
    assert on_ray.keys() == local.keys() == {d["id"] for d in docs}
    for key, row in on_ray.items():
        assert row["lm_tokens"] == local[key]["lm_tokens"]
        assert row["lm_loss_mean"] == pytest.approx(local[key]["lm_loss_mean"], rel=1e-6)


@needs_cpu_torch
def test_cpu_stages_and_the_model_run_in_pools_of_their_own(
    cluster_with_a_gpu: None, tiny_lm: Path, tmp_path: Path
) -> None:
    # NeMo Curator's split: the filters before a model run on an actor per CPU, the model
    # on an actor per GPU, and a global selector's decisions again on CPUs
    docs, shards = write_shards(tmp_path)
    scoring = recipe_of(
        f"stages:\n  - length_filter: {{min_chars: 500}}\n  - lm_loss: {{model: '{tiny_lm}'}}\n",
        *shards,
    )
    selecting = recipe_of(
        "stages:\n  - length_filter: {min_chars: 500}\n"
        f"  - color_filter: {{prior: '{tiny_lm}', conditional: '{tiny_lm}', tau: 2}}\n"
        "  - sample: {rate: 0.7, seed: 1}\n",
        *shards,
    )
    for name, recipe, pools in (
        ("scoring", scoring, [pool(1, 2, 0), pool(2, 1, 1.0)]),
        ("selecting", selecting, [pool(1, 2, 0), pool(2, 1, 1.0), pool(3, 2, 0)]),
    ):
        stats = run(recipe, tmp_path / name, RunOptions("ray", workers=2, progress=False))
        assert stats["engine"]["pools"] == pools
        assert [s["name"] for s in stats["stages"]] == ["read"] + [s.name for s in recipe.stages]
        run_local(recipe, tmp_path / f"{name}-local")
        for part in ("kept", "dropped"):
            local = read_output(tmp_path / f"{name}-local", part).to_pylist()
            on_ray = read_output(tmp_path / name, part).to_pylist()
            assert [r["id"] for r in on_ray] == [r["id"] for r in local]
        dropped = stats["stages"][1]["dropped_by_reason"]
        assert 0 < dropped["length_filter:too_short"] < len(docs)


def test_a_finished_run_with_a_model_pass_resumes_every_pass(tiny_lm: Path, tmp_path: Path) -> None:
    # the model's pass has no barrier before it: a finished run run again finds every
    # pass done, and no barrier decides again
    _, shards = write_shards(tmp_path)
    recipe = recipe_of(
        "stages:\n  - length_filter: {min_chars: 500}\n"
        f"  - color_filter: {{prior: '{tiny_lm}', conditional: '{tiny_lm}', tau: 2}}\n",
        *shards,
    )
    first = run_local(recipe, tmp_path / "out")
    assert first["shards"]["passes"] == 3
    kept = read_output(tmp_path / "out", "kept")
    again = run_local(recipe, tmp_path / "out")
    assert again["shards"]["resumed"] == 3 * first["shards"]["total"]
    assert again["rows"] == first["rows"] and read_output(tmp_path / "out", "kept") == kept
