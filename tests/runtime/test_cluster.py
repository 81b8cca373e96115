"""Joining a Ray cluster: by --ray-address or RAY_ADDRESS, with clear errors when it fails."""

from __future__ import annotations

import contextlib
import glob
import gzip
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import curation
from curation.recipe import load_recipe, parse_recipe
from curation.runtime.executors import (
    ClusterUnreachable,
    _where,
    check_reachable,
    cluster_address,
    engine_build,
    worker_error_cause,
)
from curation.runtime.run import RunOptions, run
from tests.conftest import free_port, read_output

CURATE = str(Path(sys.executable).with_name("curate"))


def test_the_address_comes_from_the_flag_then_ray_address(monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster_address(None) is None
    assert cluster_address("10.1.2.3:6379") == "10.1.2.3:6379"
    monkeypatch.setenv("RAY_ADDRESS", "10.9.9.9:6379")  # what `ray job submit` sets
    assert cluster_address(None) == "10.9.9.9:6379"
    assert cluster_address("10.1.2.3:6379") == "10.1.2.3:6379"
    monkeypatch.setenv("RAY_ADDRESS", "local")
    assert cluster_address(None) is None


@pytest.mark.ray
def test_an_unreachable_cluster_is_a_plain_error(c4_path: Path, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    recipe = parse_recipe("stages: []\n").with_input(paths=[str(c4_path)])
    with pytest.raises(ClusterUnreachable) as caught:
        run(recipe, tmp_path / "out", RunOptions("ray", ray_address=address, progress=False))
    message = str(caught.value)
    assert f"cannot reach the Ray cluster at {address}" in message
    assert "refused" in message.lower()
    assert "leave out --ray-address and RAY_ADDRESS" in message


def test_a_dashboard_address_is_named_as_one(c4_path: Path, tmp_path: Path) -> None:
    recipe = parse_recipe("stages: []\n").with_input(paths=[str(c4_path)])
    options = RunOptions("ray", ray_address="http://127.0.0.1:8265", progress=False)
    with pytest.raises(ClusterUnreachable, match=r"dashboard address .* host:port"):
        run(recipe, tmp_path / "out", options)


@contextlib.contextmanager
def listening(answer: bytes | None) -> Iterator[str]:
    """A TCP server on a free local port that sends ``answer`` to each connection (an HTTP
    response whatever the request) or, when it is None, reads and says nothing."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = server.accept()
                held.append(connection)
                if answer is not None:
                    connection.recv(1024)
                    connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for connection in held:
            connection.close()


WEB_PAGE = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<!DOCTYPE html><html></html>"


def test_an_address_where_a_web_server_answers_is_not_taken_for_a_cluster(
    c4_path: Path, tmp_path: Path
) -> None:
    # ray.init would retry such an address for about 30 s, logging each attempt
    recipe = parse_recipe("stages: []\n").with_input(paths=[str(c4_path)])
    with listening(WEB_PAGE) as address:
        options = RunOptions("ray", ray_address=address, progress=False)
        with pytest.raises(ClusterUnreachable) as caught:
            run(recipe, tmp_path / "out", options)
    message = str(caught.value)
    assert f"{address} is not a Ray cluster: a web server answers there" in message
    assert "'HTTP/1.0 200 OK'" in message
    assert "Check the address" in message
    assert not (tmp_path / "out" / "stats.json").exists()


def test_the_protocol_check_leaves_silent_servers_and_tls_to_ray(monkeypatch) -> None:
    """What it cannot tell apart from a Ray head, it lets through: a server that says
    nothing (ray.init then decides), and any server when Ray speaks TLS."""
    with listening(None) as address:
        check_reachable(address, answer_s=0.2)
    monkeypatch.setenv("RAY_USE_TLS", "1")
    with listening(WEB_PAGE) as address:
        check_reachable(address)
    monkeypatch.setenv("RAY_USE_TLS", "0")
    with listening(WEB_PAGE) as address, pytest.raises(ClusterUnreachable):
        check_reachable(address)


@contextlib.contextmanager
def head_started_by(python: str, num_cpus: int = 3) -> Iterator[tuple[str, int]]:
    """A Ray head of ``num_cpus`` CPUs started by `ray start` under ``python`` (its workers
    run that interpreter's environment), as on a real cluster, in a folder that is not the
    driver's; killed with its process group afterwards."""
    temp = tempfile.mkdtemp(prefix="curation-ray-", dir="/tmp")  # short: Ray's socket paths
    port = free_port()
    log = open(Path(temp, "head.log"), "wb")  # closed below, after the head
    head = subprocess.Popen(
        [
            *(python, "-c", RAY_CLI, "start", "--head", f"--port={port}"),
            *(f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats"),
            *(f"--temp-dir={temp}", "--block"),
        ],
        cwd=temp,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not Path(temp, "ray_current_cluster").exists():
            if head.poll() is not None or time.monotonic() > deadline:
                tail = Path(temp, "head.log").read_text(errors="replace")[-1500:]
                pytest.fail(f"`ray start --head` did not come up (exit {head.poll()}):\n{tail}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", num_cpus
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # the head, its GCS, raylet and workers
        head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def node_started_by(python: str, address: str, num_cpus: int) -> Iterator[None]:
    """A worker node of ``num_cpus`` CPUs joined to the head at ``address`` by `ray start`
    under ``python``; killed with its process group afterwards."""
    temp = tempfile.mkdtemp(prefix="curation-node-", dir="/tmp")
    log_path = Path(temp, "node.log")
    log = open(log_path, "wb")  # closed below, after the node
    node = subprocess.Popen(
        [
            *(python, "-c", RAY_CLI, "start", f"--address={address}"),
            *(f"--num-cpus={num_cpus}", "--disable-usage-stats", "--block"),
        ],
        cwd=temp,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "block forever" not in log_path.read_text(errors="replace"):
            if node.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-1500:]
                pytest.fail(f"`ray start --address` did not come up (exit {node.poll()}):\n{tail}")
            time.sleep(0.2)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


#: `ray ...` as a program argument to ``python -c``: the interpreter, not the `ray` script
#: on PATH, decides which environment the node runs
RAY_CLI = "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"


@pytest.fixture
def ray_head() -> Iterator[tuple[str, int]]:
    """A Ray head of 3 CPUs in this environment (curation installed)."""
    with head_started_by(sys.executable) as head:
        yield head


def printed_by(python: str, expression: str, module: str) -> str:
    """What ``python`` prints for ``expression`` after importing ``module``."""
    program = f"import {module}; print({expression})"
    done = subprocess.run([python, "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def environment_without_curation(
    folder: Path, source: Path | None = None, base: str | None = None
) -> str:
    """A virtual environment in ``folder`` that sees this one's packages (Ray, pyarrow, ...)
    but not its editable install of curation (a path in a .pth file adds a folder, not
    the .pth files within it); with ``source``, that folder's ``curation`` package comes
    first instead. ``base``: another interpreter of this Python minor version to build it
    on. Returns its interpreter."""
    base = base or getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", folder], check=True)
    python = folder / "bin" / "python"
    site = printed_by(python, "site.getsitepackages()[0]", "site")
    ours = [p for p in sys.path if p.endswith("site-packages")]
    paths = ([str(source)] if source else []) + ours
    Path(site, "others.pth").write_text("".join(f"{p}\n" for p in paths))
    return str(python)


def driver_env(address: str, auth_mode: str = "disabled") -> dict[str, str]:
    """The environment of a driver that joins the head at ``address``: the head runs with
    token auth disabled, and the driver must say the same, as this test process's own
    ``ray.init`` (in earlier tests) sets RAY_AUTH_MODE=token in os.environ."""
    return {**os.environ, "RAY_ADDRESS": address, "RAY_AUTH_MODE": auth_mode}


@pytest.mark.ray
@pytest.mark.slow
def test_a_driver_whose_auth_differs_from_the_cluster_is_told_so(
    c4_path: Path, tmp_path: Path, ray_head: tuple[str, int]
) -> None:
    # such a driver joins and runs tasks, but the cluster cancels its actors before they
    # start: without the probe the run failed deep in Ray Data with "all references to
    # the actor were removed" and a traceback
    address, _ = ray_head
    (tmp_path / "r.yaml").write_text("stages:\n  - length_filter: {min_chars: 300}\n")
    joined = subprocess.run(
        [CURATE, "run", "r.yaml", "--input", str(c4_path), "--output", "out", "--quiet"],
        cwd=tmp_path,
        env=driver_env(address, auth_mode="token"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert joined.returncode != 0
    assert f"joined the Ray cluster at {address}, but it cancelled an actor" in joined.stderr
    assert "RAY_AUTH_MODE=token" in joined.stderr
    assert "Traceback" not in joined.stderr
    assert not (tmp_path / "out" / "stats.json").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_a_joined_cluster_of_two_nodes_reads_the_recipe_paths_from_the_driver_folder(
    c4_path: Path, tmp_path: Path, ray_head: tuple[str, int], monkeypatch
) -> None:
    # relative paths everywhere: the output, the input and a stage's file; the cluster's
    # workers start in the head's folder, so they must resolve them from the driver's.
    # A second node joins the head: four shards over five actors on two nodes
    address, cpus = ray_head
    (tmp_path / "parts").mkdir()
    for i in range(4):
        shutil.copy(c4_path, tmp_path / "parts" / f"c4-{i}.jsonl.gz")
    with gzip.open(c4_path, "rt", encoding="utf-8") as lines:
        first = [json.loads(next(lines))["text"] for _ in range(3)]
    (tmp_path / "bench.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in first), encoding="utf-8"
    )
    (tmp_path / "r.yaml").write_text(
        "stages:\n"
        "  - decontaminate: {benchmarks: [bench.jsonl], ngram: 8}\n"
        "  - length_filter: {min_chars: 300}\n"
    )
    with node_started_by(sys.executable, address, num_cpus=2):
        joined = subprocess.run(
            [CURATE, "run", "r.yaml", "--input", "parts", "--output", "out", "--quiet"],
            cwd=tmp_path,
            env=driver_env(address),
            capture_output=True,
            text=True,
        )
    assert joined.returncode == 0, joined.stderr[-2000:]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["engine"]["executor"] == "ray"
    assert stats["engine"]["workers"] == cpus + 2  # the cluster's CPUs, not this machine's
    assert stats["shards"]["total"] == 4
    assert stats["stages"][1]["dropped_by_reason"]["decontaminate:benchmark_ngram"] >= 4 * 3

    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("r.yaml").with_input(paths=["parts"])
    run(recipe, "local", RunOptions("local", progress=False))
    for part in ("kept", "dropped"):
        assert read_output(tmp_path / "out", part).to_pylist() == (
            read_output(tmp_path / "local", part).to_pylist()
        )


@pytest.mark.ray
def test_the_embedded_cluster_keeps_token_auth_without_warning_on_every_run() -> None:
    # Ray enables token authentication on a new local cluster and warned that it did on
    # every `curate run`; the engine holds that one warning back, not the security
    probe = (
        "import os, ray\n"
        "from curation.runtime.executors import start_or_join_ray\n"
        "assert start_or_join_ray(None, num_cpus=1, include_dashboard=False)\n"
        "print(os.environ.get('RAY_AUTH_MODE'), ray.get(ray.remote(lambda: 7).remote()))\n"
        "ray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["token", "7"]
    assert "Token authentication is enabled" not in done.stderr


RECIPE = "stages:\n  - length_filter: {min_chars: 300}\n"

#: Python run in the driver before the CLI: a node that joins after the driver's probe
SKIP_PROBE = "import curation.runtime.executors as e\ne._probe_actor = lambda *a: None"


def join(
    address: str, cwd: Path, input_path: Path, script: str = ""
) -> subprocess.CompletedProcess:
    """`curate run` with a length filter on ``input_path``, joining the head at ``address``
    (``script``: Python run in the driver before the CLI)."""
    (cwd / "r.yaml").write_text(RECIPE)
    argv = ["r.yaml", "--input", str(input_path), "--output", "out", "--quiet"]
    program = f"{script}\nfrom curation.cli import main\nmain({['run', *argv]!r})\n"
    return subprocess.run(
        [sys.executable, "-c", program],
        cwd=cwd,
        env=driver_env(address),
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.ray
@pytest.mark.slow
def test_a_cluster_whose_nodes_lack_curation_is_named_before_any_shard_runs(
    c4_path: Path, tmp_path: Path
) -> None:
    # the probe actor could not be unpickled there, and the run said "the usual cause is
    # token authentication", which was wrong; a worker of the run itself failed deep in
    # Ray Data with ActorDiedError and a traceback
    python = environment_without_curation(tmp_path / "bare")
    # one node of two lacks it, not the head
    with (
        head_started_by(sys.executable, num_cpus=1) as (address, _),
        node_started_by(python, address, num_cpus=2),
    ):
        joined = join(address, tmp_path, c4_path)
    with head_started_by(python, num_cpus=2) as (address_bare, _):
        later = join(address_bare, tmp_path, c4_path, script=SKIP_PROBE)
    assert joined.returncode != 0
    assert (
        f"joined the Ray cluster at {address}, but a curation worker could not start on the "
        "Ray node at " in joined.stderr
    )
    assert "(ModuleNotFoundError: No module named 'curation')" in joined.stderr
    assert "token authentication" not in joined.stderr
    assert "Traceback" not in joined.stderr
    assert not (tmp_path / "out" / "stats.json").exists()
    # a node that joins after that check: the run's own worker cannot start there
    assert later.returncode != 0
    last = later.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: a curation worker could not start on the Ray node at ")
    assert "(ModuleNotFoundError: No module named 'curation')" in last
    assert "run the same command to resume" in last


@pytest.mark.ray
@pytest.mark.slow
def test_a_cluster_that_runs_another_build_of_curation_is_refused(
    c4_path: Path, tmp_path: Path
) -> None:
    # the same version number, one changed line: its shards would run other code than
    # the run records
    package = Path(curation.__file__).parent
    other = tmp_path / "other" / "curation"
    shutil.copytree(package, other, ignore=shutil.ignore_patterns("__pycache__"))
    with open(other / "batch.py", "a", encoding="utf-8") as changed:
        changed.write("# a local change\n")
    python = environment_without_curation(tmp_path / "env", source=other.parent)
    mine = engine_build()
    with head_started_by(python, num_cpus=2) as (address, _):
        joined = join(address, tmp_path, c4_path)
        later = join(address, tmp_path, c4_path, script=SKIP_PROBE)
    assert joined.returncode != 0
    assert f"joined the Ray cluster at {address}, but the Ray node at " in joined.stderr
    assert f"runs another build of curation ({mine['version']}, source " in joined.stderr
    assert f"in {other.resolve()}; {mine['libraries']}) than this driver ({mine['version']}, " in (
        joined.stderr
    )
    assert f"source {mine['source']}, in {mine['path']}; {mine['libraries']})" in joined.stderr
    assert "Traceback" not in joined.stderr
    # a node that joins after that check: its workers refuse every shard
    assert later.returncode != 0
    assert f"{c4_path}: the Ray worker on " in later.stderr
    assert "runs another build of curation" in later.stderr
    assert not (tmp_path / "out" / "stats.json").exists()


def test_the_cause_of_a_worker_that_could_not_start_is_read_from_rays_message() -> None:
    # as Ray 2.60 words it, colours included
    message = (
        "The actor died because of an error raised in its creation task, \x1b[36mray::"
        "_Probe.__init__()\x1b[39m (pid=23770, ip=10.0.3.7, actor_id=cabf1b)\n"
        "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "RuntimeError: The actor with name _Probe failed to import on the worker. This may "
        "be because needed library dependencies are not installed in the worker "
        "environment:\n\n\x1b[36mray::_Probe.__init__()\x1b[39m (pid=23770, ip=10.0.3.7)\n"
        "ModuleNotFoundError: No module named 'curation'"
    )
    error = RuntimeError(message)
    assert worker_error_cause(error) == "ModuleNotFoundError: No module named 'curation'"
    assert _where(error) == "the Ray node at 10.0.3.7"
    assert worker_error_cause(RuntimeError("\nsomething odd\n")) == "something odd"
    assert _where(RuntimeError("no address")) == "a Ray node"


def other_patch_of_this_python() -> str | None:
    """An interpreter of this Python's minor version but another patch level (whose
    compiled packages this environment's can stand in for), or None."""
    here = platform.python_version()
    minor = ".".join(here.split(".")[:2])
    candidates = [f"/usr/bin/python{minor}", f"/usr/local/bin/python{minor}"]
    candidates += sorted(glob.glob(f"{Path.home()}/.pyenv/versions/{minor}.*/bin/python{minor}"))
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        version = printed_by(candidate, "platform.python_version()", "platform")
        if version.startswith(f"{minor}.") and version != here:
            return candidate
    return None


@pytest.mark.ray
@pytest.mark.slow
def test_a_cluster_on_another_python_says_which_versions_differ(
    c4_path: Path, tmp_path: Path
) -> None:
    # Ray refuses a driver whose Python differs from the cluster's to the patch level; its
    # message's last line, all the join error kept, was only "Python: 3.11.7", followed by
    # "check the address"
    other = other_patch_of_this_python()
    if other is None:
        pytest.skip(f"no interpreter of Python {sys.version_info[:2]} at another patch level")
    python = environment_without_curation(tmp_path / "other", base=other)
    there = printed_by(python, "platform.python_version()", "platform")
    with head_started_by(python, num_cpus=1) as (address, _):
        joined = join(address, tmp_path, c4_path)
    assert joined.returncode != 0
    last = joined.stderr.strip().splitlines()[-1]
    ray_version = importlib.metadata.version("ray")
    assert last == (
        f"Error: the Ray cluster at {address} was started with Ray {ray_version} on Python "
        f"{there}, and this driver runs Ray {ray_version} on Python "
        f"{platform.python_version()}: Ray joins only the same versions (Python to the "
        "patch level), so run the driver with the cluster's, or start the nodes with the "
        "driver's (`make image` builds their image with the versions of .venv)"
    )
