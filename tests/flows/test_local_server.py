"""The temporary Prefect server of `rnnflow run`: a start that fails says why and leaves no URL
behind; a server that exits before it answers is started again."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import psutil
import pytest

from flows import local_server
from tests.helpers import migrated_prefect_home


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
