"""Executors: run ``process_shard`` over the pending shards and stream results back.

- ``LocalExecutor``: in this process, one shard after another (tests, debugging, small
  jobs). Progress is reported per batch.
- ``RayExecutor``: Ray Data's streaming executor over the list of shards with an actor
  pool of ``workers`` actors; each actor builds and sets up the stages once (models load
  once per worker) and runs the fused pass on whole shards. Without an address (see
  ``cluster_address``) it starts an embedded local Ray cluster and stops it afterwards;
  with one it joins that cluster (whose workers must have ``curation`` installed and
  see the driver's files at the same paths; each actor works in the driver's folder, so
  relative paths mean the same there), one actor per cluster CPU unless told. A pass
  whose stages hold a model (``lm_loss``, ``color_filter``) asks for one GPU per actor
  where the cluster has GPUs; each pass's pool (actors, GPUs each, the GPU ids Ray gave,
  whether torch saw CUDA there, the GPU ids where it did not) is kept in ``pools`` for
  the run's stats, and a GPU that torch cannot use is reported on stderr once a pass.

Both give the same shard results for the same input and recipe, whatever the number of
workers, because a shard's output depends only on the shard and the recipe.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
import sys
import traceback
from collections.abc import Generator, Iterator
from typing import Any

from curation.io.inputs import InputError, InputShard
from curation.runtime.shard import (
    MAX_STARTS,
    BatchCallback,
    SegmentPlan,
    ShardResult,
    StageContractError,
    count_start,
    forget_starts,
    process_shard,
)


class ShardFailed(RuntimeError):
    """A shard could not be processed; the message names it and says why."""

    @classmethod
    def of(cls, label: str, message: str) -> ShardFailed:
        """``message`` about the shard ``label``, naming it once."""
        return cls(message if label in message else f"{label}: {message}")


class WorkerStartFailed(RuntimeError):
    """A Ray worker could not start (its node lacks curation or a dependency); the message
    names the worker and the cause."""


class ClusterUnreachable(RuntimeError):
    """The Ray cluster named by ``--ray-address`` (or ``RAY_ADDRESS``) could not be joined;
    the message names the address, says why and what to do."""


_JOIN_HELP = (
    "check the address (`ray start --head` prints it on the head node: port 6379, or "
    "10001 for a ray:// client address) and that this machine can reach it, or leave out "
    "--ray-address and RAY_ADDRESS to run on an embedded local cluster"
)


def cluster_address(address: str | None) -> str | None:
    """The Ray cluster to join: ``address`` when given, else the environment's
    ``RAY_ADDRESS`` (what ``ray job submit`` sets for its driver), else None (start an
    embedded local cluster). ``local`` means None, as it does to ``ray.init``."""
    chosen = address or os.environ.get("RAY_ADDRESS") or None
    return None if chosen == "local" else chosen


#: an HTTP/2 client's connection preface and an empty SETTINGS frame (RFC 9113, 3.4)
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS_FRAME = 4


def check_reachable(address: str, timeout_s: float = 5.0, answer_s: float = 2.0) -> None:
    """Fail in seconds, with a plain message, on an address that is not a Ray cluster
    (``ray.init`` retries for 20 to 30 s, logging each attempt). ``auto`` and addresses
    without a port are left to Ray.

    Opens a TCP connection to ``host:port`` and speaks the first words of HTTP/2: a Ray
    head's GCS (and a Ray Client server) are gRPC servers, which answer with a SETTINGS
    frame. A server that answers anything else (a web page, the dashboard) is refused; one
    that says nothing within ``answer_s``, and any server when ``RAY_USE_TLS`` is on, is
    left to ``ray.init``."""
    if address.startswith(("http://", "https://")):
        raise ClusterUnreachable(
            f"{address} is a Ray dashboard address (what `ray job submit` takes), not a "
            "cluster's: give the head's host:port (port 6379 by default) or ray://host:10001"
        )
    bare = address.removeprefix("ray://")
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        connection = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
    except OSError as err:
        reason = "timed out" if isinstance(err, TimeoutError) else err.strerror or str(err)
        raise ClusterUnreachable(
            f"cannot reach the Ray cluster at {address} ({reason}): {_JOIN_HELP}"
        ) from None
    with connection:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return
        try:
            connection.settimeout(answer_s)
            connection.sendall(_H2_PREFACE)
            answer = connection.recv(64)
        except OSError:
            return
    if len(answer) < 4 or answer[3] == _SETTINGS_FRAME:
        return
    head = answer.split(b"\n", 1)[0][:40].decode("ascii", "replace").strip()
    kind = "a web server" if answer.startswith((b"HTTP/", b"<")) else "something else"
    raise ClusterUnreachable(
        f"{address} is not a Ray cluster: {kind} answers there ({head!r}), where a Ray head "
        f"answers gRPC. {_JOIN_HELP[0].upper()}{_JOIN_HELP[1:]}"
    )


def start_or_join_ray(address: str | None, num_cpus: int | None = None, **kwargs: Any) -> bool:
    """Join the Ray cluster at ``address`` (see ``cluster_address``) or, when it is None,
    start an embedded local one with ``num_cpus`` CPUs. Returns True when it started one
    (the caller shuts it down), False when it joined one. Raises ``ClusterUnreachable``
    when the cluster cannot be joined."""
    import ray

    if address is None:
        # "local" starts a new cluster: with no address ray.init would join one that
        # `ray start` left running on this machine, and refuse num_cpus there. Ray turns
        # token authentication on for it when RAY_AUTH_MODE is unset and warns on every
        # run that it did; the cluster is the engine's own, so that warning is held back
        # (only that logger's, only while it starts)
        quiet = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            ray.init(address="local", num_cpus=num_cpus, **kwargs)
        finally:
            quiet.setLevel(level)
        return True
    check_reachable(address)
    auth_mode = os.environ.get("RAY_AUTH_MODE")  # ray.init may set it; say what was given
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError) as err:
        if (versions := _version_mismatch(err)) is not None:
            raise ClusterUnreachable(f"the Ray cluster at {address} {versions}") from None
        raise ClusterUnreachable(
            f"could not join the Ray cluster at {address} ({_root_cause(err)}): {_JOIN_HELP}"
        ) from None
    _probe_actor(address, auth_mode)
    return False


def engine_build() -> dict[str, str]:
    """The build of this engine, which every Ray worker must share with the driver: the
    ``curation`` version, a digest of its source (SHA-256 over every ``.py`` file of the
    package, by relative path; 12 hex digits, about 2 ms) and where it was imported from.
    A worker that runs other code than its driver would give other rows than the run
    records, so two builds whose ``version`` or ``source`` differ are refused; so are two
    under other polars or pyarrow versions (``libraries``), whose dedup hashes differ.
    Read once per process, near the time its modules were imported: files changed later
    (a checkout updated during a run) do not change it, while a worker started after
    that reads the new files, and is refused."""
    return dict(_engine_build())


@functools.cache
def _engine_build() -> dict[str, str]:
    import hashlib
    from pathlib import Path

    import curation

    root = Path(curation.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    from curation.cache import hashing_libraries, libraries_text

    return {
        "version": curation.__version__,
        "source": digest.hexdigest()[:12],
        "path": str(root),
        # the dedups' hashes, made on the workers, must match across nodes
        "libraries": libraries_text(hashing_libraries()),
    }


def _same_build(theirs: dict[str, str], mine: dict[str, str]) -> bool:
    keys = ("version", "source", "libraries")
    return all(theirs.get(key) == mine.get(key) for key in keys)


def other_build_message(where: str, theirs: dict[str, str], mine: dict[str, str]) -> str:
    """What to say when a Ray worker at ``where`` runs another build than the driver."""
    return (
        f"{where} runs another build of curation ({theirs['version']}, source "
        f"{theirs['source']}, in {theirs['path']}; {theirs.get('libraries', '?')}) than this "
        f"driver ({mine['version']}, source {mine['source']}, in {mine['path']}; "
        f"{mine['libraries']}): install the driver's build on every node (the same wheel or "
        "checkout and the same polars and pyarrow, or an image built from it with "
        "docker/Dockerfile), so that every shard runs the same code"
    )


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def worker_error_cause(err: BaseException) -> str:
    """The error that stopped a Ray actor's creation, from Ray's message (whose last line
    that names an exception is it: ``ModuleNotFoundError: No module named 'curation'``),
    else the message's first line."""
    lines = [_ANSI.sub("", line).strip() for line in str(err).splitlines()]
    named = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*:", line)]
    return named[-1] if named else next((line for line in lines if line), type(err).__name__)


def _where(err: BaseException) -> str:
    """``the Ray node at <ip>`` when Ray's message names the worker's address."""
    found = re.search(r"\bip=([0-9A-Fa-f.:]+)", str(err))
    return f"the Ray node at {found.group(1)}" if found else "a Ray node"


def _cannot_start_message(where: str, cause: str) -> str:
    return (
        f"a curation worker could not start on {where} ({cause}): every node that runs work "
        "needs curation and its dependencies installed as on this driver (the same wheel or "
        "checkout, or an image built from it with docker/Dockerfile)"
    )


class _Probe:
    def build(self) -> dict[str, str]:
        return engine_build()


def _probe_actor(address: str, auth_mode: str | None, timeout_s: float = 30.0) -> None:
    """Start one actor of no CPUs on each live node of the joined cluster that has CPUs or
    GPUs (where the run's work goes) and ask it for the engine's build (the nodes at once:
    0.54 s for two nodes on this project's 2-core VM, where one probe took 0.52 s).

    - A node that cannot import curation (or a dependency) is named, with the cause.
    - A node that runs another build than the driver (``engine_build``) is named.
    - A driver whose token authentication differs from the cluster's (``RAY_AUTH_MODE=token``
      here, ``disabled`` there) joins and runs tasks, but the cluster cancels every actor
      before it starts, which Ray reports deep in the run as "all references to the actor
      were removed"; this says so at once, with what to change.

    Each raises ``ClusterUnreachable`` (after ``ray.shutdown``). A probe that is not
    scheduled within ``timeout_s`` (a busy cluster) is left to the run's own actors, whose
    workers check the build again when they start (``_ShardWorker``)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    mine = engine_build()
    nodes = [
        node
        for node in ray.nodes()
        if node.get("Alive") and any(node["Resources"].get(k, 0) > 0 for k in ("CPU", "GPU"))
    ]
    probes = {}
    for node in nodes:
        on_node = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        actor = ray.remote(num_cpus=0)(_Probe).options(scheduling_strategy=on_node).remote()
        probes[actor.build.remote()] = (f"the Ray node at {node['NodeManagerAddress']}", actor)
    ready, _ = ray.wait(list(probes), num_returns=len(probes), timeout=timeout_s)
    try:
        for ref in ready:
            where = probes[ref][0]
            try:
                theirs = ray.get(ref)
            except ray.exceptions.ActorDiedError as err:
                if "creation task" in str(err):
                    message = _cannot_start_message(where, worker_error_cause(err))
                    raise ClusterUnreachable(
                        f"joined the Ray cluster at {address}, but {message}"
                    ) from None
                lines = [line.strip() for line in str(err).splitlines()]
                reason = next(
                    (line for line in lines if line.startswith("The actor is dead")), lines[0]
                )
                raise ClusterUnreachable(
                    f"joined the Ray cluster at {address}, but it cancelled an actor before "
                    f"it started ({reason.rstrip('.')}): the usual cause is token "
                    f"authentication set differently here (RAY_AUTH_MODE={auth_mode or 'unset'}) "
                    "and on the cluster; set RAY_AUTH_MODE in this shell to the mode the "
                    "cluster was started with (token, with its RAY_AUTH_TOKEN, or disabled)"
                ) from None
            if not _same_build(theirs, mine):
                raise ClusterUnreachable(
                    f"joined the Ray cluster at {address}, but "
                    + other_build_message(where, theirs, mine)
                )
    except ClusterUnreachable:
        ray.shutdown()
        raise
    for _, actor in probes.values():
        ray.kill(actor)


_VERSIONS = re.compile(r"Ray: (\S+)\s+Python: (\S+)")


def _version_mismatch(err: BaseException) -> str | None:
    """What to say when Ray refused to join because the cluster's Ray or Python version
    differs from the driver's (Ray's "Version mismatch" message, whose last line, all
    ``_root_cause`` would keep, is only the driver's Python version); None otherwise."""
    seen: BaseException | None = err
    while seen is not None:
        text = str(seen)
        if "Version mismatch" in text and len(found := _VERSIONS.findall(text)) == 2:
            (ray_there, python_there), (ray_here, python_here) = found
            return (
                f"was started with Ray {ray_there} on Python {python_there}, and this driver "
                f"runs Ray {ray_here} on Python {python_here}: Ray joins only the same "
                "versions (Python to the patch level), so run the driver with the "
                "cluster's, or start the nodes with the driver's (`make image` builds their "
                "image with the versions of .venv)"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _root_cause(err: BaseException) -> str:
    """The last line of the innermost error of ``err``'s chain: Ray wraps the reason (an
    RPC error, a missing auth token) in two errors whose messages carry a traceback."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


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
    ) -> Generator[ShardResult, None, None]:
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
                raise ShardFailed.of(shard.label, str(err)) from err
            yield result

    def close(self) -> None:
        """Nothing to release."""


class _ShardWorker:
    """A Ray Data actor: builds the stages once, then processes whole shards."""

    def __init__(self, plan: SegmentPlan, cwd: str, build: dict[str, str]) -> None:
        logging.getLogger("ray").setLevel(logging.WARNING)
        # the driver's folder, where the recipe's relative paths (models, lists) point:
        # Ray starts the workers of a joined cluster in folders of their own
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.plan = plan
        self.placement = json.dumps(_placement())
        self.setup_error = ""
        mine = engine_build()
        if not _same_build(mine, build):
            # a node that joined after the driver's probe (``_probe_actor``)
            where = f"the Ray worker on {socket.gethostname()}"
            self.setup_error = other_build_message(where, mine, build)
            return
        try:
            self.stages, self.measure = plan.build()
        except (InputError, RuntimeError, ValueError, OSError) as err:
            # said once per shard as the shard's error, instead of Ray's actor traceback
            self.setup_error = (
                f"setting up the stages on Ray worker {socket.gethostname()} "
                f"(in {os.getcwd()}) failed: {err}; every worker needs the recipe's files "
                "(models, lists) at the same paths as the driver"
            )

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        shard = InputShard.from_dict(json.loads(row["shard"]))
        done = {"shard": row["shard"], "placement": self.placement}
        if self.setup_error:
            return {**done, "result": "", "error": self.setup_error}
        starts = count_start(self.plan, shard)
        if starts > MAX_STARTS:
            return {**done, "result": "", "error": _DIED.format(died=starts - 1)}
        try:
            result = process_shard(shard, self.plan, self.stages, self.measure)
        except (InputError, StageContractError, RuntimeError, ValueError) as err:
            return {**done, "result": "", "error": str(err)}
        except Exception:
            return {**done, "result": "", "error": traceback.format_exc()}
        forget_starts(self.plan, shard)
        return {**done, "result": result.to_json(), "error": ""}


_DIED = (
    "its Ray worker died {died} times while running it (killed, by the kernel's OOM killer "
    "or Ray's memory monitor when memory runs short, or crashed in native code: Ray's lines "
    "above say which), so it is not started again: run the same command to resume (the "
    "finished shards are kept), with fewer --workers if memory ran short"
)


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
        self.address = cluster_address(address)
        self._workers_given = workers
        self.workers = workers or os.cpu_count() or 1
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
        self._started = start_or_join_ray(self.address, self.workers, **kwargs)
        if not self._started and not self._workers_given:
            # a joined cluster: one actor per CPU of the cluster, not of this machine
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(
        self,
        shards: list[InputShard],
        plan: SegmentPlan,
        on_batch: BatchCallback | None = None,
    ) -> Generator[ShardResult, None, None]:
        """Yield each shard's result as it finishes (in completion order)."""
        if not shards:
            return
        self._init()
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the engine shows its own progress
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)

        items = [{"shard": json.dumps(shard.to_dict())} for shard in shards]
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
            fn_constructor_kwargs={"plan": plan, "cwd": os.getcwd(), "build": engine_build()},
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=1,
            num_gpus=num_gpus,
        )
        # what Ray gave the actors: GPU ids seen, whether torch saw CUDA in all of them, and
        # every GPU id where it did not (the warning, said once a pass, names the first)
        pool: dict[str, Any] = {"pass": plan.segment.index + 1, "actors": size}
        pool.update(gpus_each=num_gpus, gpu_ids=[], cuda=None, gpu_ids_without_cuda=[])
        self.pools.append(pool)
        rows = _rows_or_worker_error(results)
        try:
            yield from self._results(rows, pool, on_batch)
        finally:
            # a failed shard (or a consumer that stopped) leaves Ray Data's iteration
            # suspended: closing it now shuts its executor down here, not whenever the
            # garbage collector gets to it (possibly after ray.shutdown)
            rows.close()

    @staticmethod
    def _results(
        rows: Iterator[dict[str, Any]], pool: dict[str, Any], on_batch: BatchCallback | None
    ) -> Iterator[ShardResult]:
        """Each row's ``ShardResult``, noting where its actor ran in ``pool``; a row that
        carries an error is ``ShardFailed``."""
        for row in rows:
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
                label = InputShard.from_dict(json.loads(row["shard"])).label
                raise ShardFailed.of(label, row["error"])
            result = ShardResult.from_json(row["result"])
            if on_batch is not None and result.stages:
                on_batch(result.stages[0].rows_in, result.stages[0].bytes_in)
            yield result

    def close(self) -> None:
        """Stop the embedded cluster if this executor started it, once Ray Data's
        iteration threads have ended (see ``_await_iteration_threads``)."""
        if self._started:
            import ray

            _await_iteration_threads()
            ray.shutdown()
            self._started = False


#: the threads Ray Data's iteration starts in the driver (its scheduling loop, block
#: fetchers and prefetcher), by name; each calls into Ray's core worker
_ITERATION_THREADS = ("StreamingExecutor-", "iter_threaded", "Prefetcher")


def _await_iteration_threads(timeout_s: float = 10.0) -> list[str]:
    """Wait up to ``timeout_s`` seconds in all for Ray Data's iteration threads in this
    process to end; return the names of those still running then.

    Ray Data tells them to stop when an iteration closes but does not wait for them. Its
    block prefetcher is stopped only when an iteration runs to its end (Ray Data 2.60):
    after a failed shard its thread would wait for blocks for the rest of the process, as
    it holds its own prefetcher, so it is stopped here. A thread still inside a
    ``ray.get`` or ``ray.wait`` when ``ray.shutdown`` tears the core worker down can take
    the process with it (a run whose shard failed, on a loaded machine)."""
    import threading
    import time

    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if not thread.name.startswith(_ITERATION_THREADS):
            continue
        # a running thread's target is its prefetcher's bound method
        prefetcher = getattr(getattr(thread, "_target", None), "__self__", None)
        if thread.name == "Prefetcher" and callable(getattr(prefetcher, "stop", None)):
            prefetcher.stop()
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threading.enumerate() if t.name.startswith(_ITERATION_THREADS)]


def _rows_or_worker_error(results: Any) -> Iterator[dict[str, Any]]:
    """The rows of Ray Data's ``results``; an actor whose creation failed (a node without
    curation or one of its dependencies, which Ray reports as a traceback from deep in
    Ray Data) is ``WorkerStartFailed``, naming the worker and the cause."""
    import ray

    try:
        yield from results.iter_rows()
    except ray.exceptions.ActorDiedError as err:
        if "creation task" not in str(err):
            raise
        raise WorkerStartFailed(
            _cannot_start_message(_where(err), worker_error_cause(err))
            + "; the shards that finished are kept: run the same command to resume"
        ) from None


def make_executor(
    kind: str, workers: int | None = None, address: str | None = None
) -> LocalExecutor | RayExecutor:
    """``local`` or ``ray``; an address implies Ray."""
    if kind == "local":
        return LocalExecutor()
    if kind == "ray":
        return RayExecutor(workers, address)
    raise ValueError(f"unknown executor {kind!r}: use local or ray")
