"""The local Prefect servers: `rnnflow run`'s temporary one serves from a thread of the run's
process; the server process of `rnnflow serve` (a fixed port): a start that fails says why and
leaves no URL behind, and a server that exits before it answers is started again."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from flows import local_server
from tests.helpers import REPO, migrated_prefect_home


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "prefect"
    shutil.copytree(migrated_prefect_home(), home)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return home


@pytest.fixture
def taken_port():
    """A port something else listens on (and never answers HTTP)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def _servers_on(port: int) -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "server" in p.cmdline() and str(port) in p.cmdline()]


def test_a_failed_start_says_why_and_leaves_no_url(home, taken_port, monkeypatch):
    monkeypatch.setattr(local_server, "_STARTS", 1)
    port = taken_port.getsockname()[1]
    with pytest.raises(RuntimeError) as failed, local_server.prefect_api(port=port):
        pytest.fail("the block ran without a server")
    message = str(failed.value)
    assert f"port {port} exited with code" in message
    assert "already in use" in message  # the server's own words, from its log
    assert "PREFECT_API_URL" not in os.environ
    assert not _servers_on(port)


def test_a_server_that_exits_before_it_answers_is_started_again(home, taken_port):
    port = taken_port.getsockname()[1]
    log_file = home / f"rnnflow-server-{port}.log"

    def free_the_port_once_refused():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if log_file.is_file() and "already in use" in log_file.read_text(errors="replace"):
                taken_port.close()
                return
            time.sleep(0.05)

    freer = threading.Thread(target=free_the_port_once_refused, daemon=True)
    freer.start()
    try:
        with local_server.prefect_api(port=port):
            assert os.environ["PREFECT_API_URL"] == f"http://127.0.0.1:{port}/api"
            assert local_server.healthy(os.environ["PREFECT_API_URL"])
            assert "already in use" in log_file.read_text()  # the first try did fail
    finally:
        freer.join(timeout=5)
        for server in _servers_on(port):  # not left for the test process's exit
            server.terminate()
            server.wait(timeout=30)


# A flow with tasks run against the temporary server, in a process of its own (Prefect reads
# PREFECT_API_URL when it is imported, which this test process did long ago).
_TEMPORARY_RUN = """
import json, os, psutil
from flows.local_server import prefect_api

def load():
    from prefect import flow, task

    @task
    def double(i):
        return 2 * i

    @flow(name="thread-served")
    def doubles():
        return [double(i) for i in range(3)]

    return doubles

with prefect_api(meanwhile=load) as doubles:
    result = doubles()
    from prefect import get_client
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs()
        print(json.dumps({
            "env_url": os.environ["PREFECT_API_URL"], "client_url": str(client.api_url),
            "result": result, "flow": client.read_flow(run.flow_id).name,
            "state": run.state.type.value,
            "children": [" ".join(p.cmdline()) for p in psutil.Process().children(True)]}))
"""


def test_the_temporary_server_serves_a_flow_from_the_runs_own_process(home):
    done = subprocess.run([sys.executable, "-c", _TEMPORARY_RUN], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["client_url"].rstrip("/") == seen["env_url"]
    assert seen["env_url"].startswith("http://127.0.0.1:")
    assert seen["result"] == [0, 2, 4] and seen["flow"] == "thread-served"
    assert seen["state"] == "COMPLETED"  # (task runs are recorded by services it runs without)
    assert seen["children"] == []  # no server process
    assert "Traceback" not in done.stderr  # nor one from the server stopping at exit


def test_a_temporary_server_that_fails_says_why_and_leaves_no_url(home, monkeypatch):
    def fail(self):
        self.error = OSError("no sockets today")

    monkeypatch.setattr(local_server._ThreadServer, "_serve", fail)
    with pytest.raises(RuntimeError) as failed, local_server.prefect_api():
        pytest.fail("the block ran without a server")
    assert "no sockets today" in str(failed.value)
    assert "PREFECT_API_URL" not in os.environ
