"""Joining a Ray cluster: by --ray-address or RAY_ADDRESS, with clear errors when it fails."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
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

from curation.recipe import load_recipe, parse_recipe
from curation.runtime.executors import ClusterUnreachable, _check_reachable, cluster_address
from curation.runtime.run import RunOptions, run
from tests.conftest import free_port, read_output

CURATE = str(Path(sys.executable).with_name("curate"))
RAY = str(Path(sys.executable).with_name("ray"))


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
        _check_reachable(address, answer_s=0.2)
    monkeypatch.setenv("RAY_USE_TLS", "1")
    with listening(WEB_PAGE) as address:
        _check_reachable(address)
    monkeypatch.setenv("RAY_USE_TLS", "0")
    with listening(WEB_PAGE) as address, pytest.raises(ClusterUnreachable):
        _check_reachable(address)


@pytest.fixture
def ray_head() -> Iterator[tuple[str, int]]:
    """A Ray head of 3 CPUs started by `ray start`, as on a real cluster, in a folder that
    is not the driver's; killed with its process group afterwards."""
    temp = tempfile.mkdtemp(prefix="curation-ray-", dir="/tmp")  # short: Ray's socket paths
    port = free_port()
    log = open(Path(temp, "head.log"), "wb")  # closed below, after the head
    head = subprocess.Popen(
        [
            *(RAY, "start", "--head", f"--port={port}", "--num-cpus=3"),
            *("--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"),
            "--block",
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
        yield f"127.0.0.1:{port}", 3
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # the head, its GCS, raylet and workers
        head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


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
def test_a_joined_cluster_reads_the_recipe_paths_from_the_driver_folder(
    c4_path: Path, tmp_path: Path, ray_head: tuple[str, int], monkeypatch
) -> None:
    # relative paths everywhere: the output, the input and a stage's file; the cluster's
    # workers start in the head's folder, so they must resolve them from the driver's
    address, cpus = ray_head
    shutil.copy(c4_path, tmp_path / "c4.jsonl.gz")
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
    joined = subprocess.run(
        [CURATE, "run", "r.yaml", "--input", "c4.jsonl.gz", "--output", "out", "--quiet"],
        cwd=tmp_path,
        env=driver_env(address),
        capture_output=True,
        text=True,
    )
    assert joined.returncode == 0, joined.stderr[-2000:]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["engine"]["executor"] == "ray"
    assert stats["engine"]["workers"] == cpus  # the cluster's CPUs, not this machine's
    assert stats["stages"][1]["dropped_by_reason"]["decontaminate:benchmark_ngram"] >= 3

    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("r.yaml").with_input(paths=["c4.jsonl.gz"])
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
