"""Executors: run ``process_shard`` over the pending shards and stream results back.

- ``LocalExecutor``: in this process, one shard after another (tests, debugging, small
  jobs). Progress is reported per batch.
- ``RayExecutor``: Ray Data's streaming executor over the list of shards with an actor
  pool of ``workers`` actors; each actor builds and sets up the stages once (models load
  once per worker) and runs the fused pass on whole shards. Without an address it starts
  an embedded local Ray cluster and stops it afterwards; with one it joins that cluster
  (whose workers must have ``curation`` installed). A pass whose stages hold a model
  (``lm_loss``, ``color_filter``) asks for one GPU per actor where the cluster has GPUs;
  each pass's pool (actors, GPUs each, the GPU ids Ray gave, whether torch saw CUDA
  there, the GPU ids where it did not) is kept in ``pools`` for the run's stats, and a GPU
  that torch cannot use is reported on stderr once a pass.

Both give the same shard results for the same input and recipe, whatever the number of
workers, because a shard's output depends only on the shard and the recipe.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from curation.io.inputs import InputError, InputShard
from curation.runtime.shard import (
    BatchCallback,
    SegmentPlan,
    ShardResult,
    StageContractError,
    process_shard,
)


class ShardFailed(RuntimeError):
    """A shard could not be processed; the message names it and says why."""


class LocalExecutor:
    """Runs shards one after another in the calling process."""

    name = "local"

    workers = 1

    def __init__(self) -> None:
        self.pools: list[dict[str, Any]] = []  # no actor pools: all runs in this process

    def run(
        self,
        shards: list[InputShard],
        plan: SegmentPlan,
        on_batch: BatchCallback | None = None,
    ) -> Iterator[ShardResult]:
        """Yield each shard's result as it finishes."""
        if not shards:
            return
        stages, measure = plan.build()
        for shard in shards:
            try:
                result = process_shard(shard, plan, stages, measure, on_batch)
            except InputError:
                raise  # names the file and the row already
            except (StageContractError, ValueError, RuntimeError) as err:
                # as on Ray: a stage's refusal names the shard, without a traceback
                raise ShardFailed(f"{shard.url}: {err}") from err
            yield result

    def close(self) -> None:
        """Nothing to release."""


class _ShardWorker:
    """A Ray Data actor: builds the stages once, then processes whole shards."""

    def __init__(self, plan: SegmentPlan) -> None:
        logging.getLogger("ray").setLevel(logging.WARNING)
        self.plan = plan
        self.placement = json.dumps(_placement())
        self.stages, self.measure = plan.build()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        shard = InputShard(**json.loads(row["shard"]))
        done = {"shard": row["shard"], "placement": self.placement}
        try:
            result = process_shard(shard, self.plan, self.stages, self.measure)
        except (InputError, StageContractError, RuntimeError, ValueError) as err:
            return {**done, "result": "", "error": str(err)}
        except Exception:
            return {**done, "result": "", "error": traceback.format_exc()}
        return {**done, "result": result.to_json(), "error": ""}


def ray_gpu_ids() -> list[str]:
    """The GPUs Ray assigned to the calling task or actor (empty outside Ray, or when it
    asked for none). Outside Ray it does not import Ray (half a second)."""
    ray = sys.modules.get("ray")
    return [str(i) for i in ray.get_gpu_ids()] if ray and ray.is_initialized() else []


def _placement() -> dict[str, Any]:
    """Where this actor runs: the GPU ids Ray gave it and whether torch sees CUDA there
    (torch is imported only when Ray gave it a GPU)."""
    ids = ray_gpu_ids()
    cuda = False
    if ids:
        import torch

        cuda = torch.cuda.is_available()
    return {"gpu_ids": ids, "cuda": cuda}


class RayExecutor:
    """Runs shards on a Ray cluster (an embedded local one unless ``address`` is given)."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.address = address
        self._started = False
        self.pools: list[dict[str, Any]] = []

    def _init(self) -> None:
        import ray

        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if self.address:
            ray.init(address=self.address, **kwargs)
        else:
            ray.init(num_cpus=self.workers, **kwargs)
        self._started = True

    def run(
        self,
        shards: list[InputShard],
        plan: SegmentPlan,
        on_batch: BatchCallback | None = None,
    ) -> Iterator[ShardResult]:
        """Yield each shard's result as it finishes (in completion order)."""
        if not shards:
            return
        self._init()
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the engine shows its own progress
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)

        items = [{"shard": json.dumps(asdict(shard))} for shard in shards]
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        size = max(1, min(self.workers, len(shards)))
        # model stages (lm_loss, color_filter) hold their model on a GPU when the cluster
        # has them: one actor per GPU then; on a cluster without GPUs they run on CPUs
        gpus = plan.gpus()
        have = float(ray.cluster_resources().get("GPU", 0))
        num_gpus = gpus if gpus and have >= gpus else 0
        if num_gpus:
            size = max(1, min(size, int(have // num_gpus)))
        results = dataset.map(
            _ShardWorker,
            fn_constructor_kwargs={"plan": plan},
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=1,
            num_gpus=num_gpus,
        )
        # what Ray gave the actors: GPU ids seen, whether torch saw CUDA in all of them, and
        # every GPU id where it did not (the warning, said once a pass, names the first)
        pool: dict[str, Any] = {"pass": plan.segment.index + 1, "actors": size}
        pool.update(gpus_each=num_gpus, gpu_ids=[], cuda=None, gpu_ids_without_cuda=[])
        self.pools.append(pool)
        for row in results.iter_rows():
            placement = json.loads(row["placement"])
            ids = placement["gpu_ids"]  # empty unless the actors asked for GPUs
            pool["gpu_ids"] = sorted({*pool["gpu_ids"], *ids})
            pool["cuda"] = placement["cuda"] and pool["cuda"] is not False
            if ids and not placement["cuda"]:
                if not pool["gpu_ids_without_cuda"]:
                    print(
                        f"warning: Ray gave the model actors GPU {', '.join(ids)}, but torch "
                        "there sees no CUDA device, so the models run on the CPU: install a "
                        "CUDA build of torch where the Ray workers run (the run's stats list "
                        "every such GPU under engine.pools)",
                        file=sys.stderr,
                    )
                pool["gpu_ids_without_cuda"] = sorted({*pool["gpu_ids_without_cuda"], *ids})
            if row["error"]:
                url = json.loads(row["shard"])["url"]
                message = row["error"]
                raise ShardFailed(message if url in message else f"{url}: {message}")
            result = ShardResult.from_json(row["result"])
            if on_batch is not None and result.stages:
                on_batch(result.stages[0].rows_in, result.stages[0].bytes_in)
            yield result

    def close(self) -> None:
        """Stop the embedded cluster if this executor started it."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def make_executor(
    kind: str, workers: int | None = None, address: str | None = None
) -> LocalExecutor | RayExecutor:
    """``local`` or ``ray``; an address implies Ray."""
    if kind == "local":
        return LocalExecutor()
    if kind == "ray":
        return RayExecutor(workers, address)
    raise ValueError(f"unknown executor {kind!r}: use local or ray")
