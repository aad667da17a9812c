"""A local Prefect server for commands that find no PREFECT_API_URL.

Imports nothing from Prefect: the URL has to be in the environment before Prefect is imported
(it reads its settings then), and the server can boot in its own process while this one imports
the flow. `rnnflow run` gets a temporary API-only server on a free port; `rnnflow serve` a
server with the UI on a fixed port, so other shells can reach it.

Why not Prefect's own temporary server: Prefect starts it on the first API call, after the flow
and all its imports are loaded, and it imports the server's modules into the flow process to do
so. Started here it boots while the flow is imported (about 3.5 s saved on 2 cores) and the flow
process stays 75 MB smaller.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("rnnflow.server")
T = TypeVar("T")


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def prefect_api(port: int | None = None, ui: bool = False, timeout: float = 120.0,
                meanwhile: Callable[[], T] | None = None) -> Iterator[T | None]:
    """Yield with PREFECT_API_URL set: to the caller's server if it was set, else to a server
    started here (on `port`, or a free one) and stopped when the process exits. `meanwhile`
    runs while the server boots; its result is what the context yields."""
    if os.environ.get("PREFECT_API_URL"):
        yield meanwhile() if meanwhile else None
        return
    chosen_here = port is None
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/api"
    server = None
    lock = None
    log_file = None
    if not healthy(url):
        lock = _start_lock()
        log_file = _home() / f"rnnflow-server-{port}.log"
        log_file.unlink(missing_ok=True)
        server = _start(port, ui, log_file)
    os.environ["PREFECT_API_URL"] = url
    try:
        result = meanwhile() if meanwhile else None
        deadline = time.monotonic() + timeout
        starts = 1
        while not healthy(url):
            if server is not None and server.poll() is not None and starts < _STARTS:
                # A server that exits before it answers met something passing: SQLite busy
                # with another process's server, or, on a port chosen here, a socket that
                # took the port in the seconds the server spends importing. Prefect has read
                # PREFECT_API_URL by now (the flow is imported), so the port stays: start again.
                log.warning("the Prefect server on port %s exited before it answered; "
                            "starting it again", port)
                time.sleep(starts)
                server = _start(port, ui, log_file)
                starts += 1
                continue
            if (server is not None and server.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(_why_not(port, chosen_here, server, log_file))
            time.sleep(0.1)
    except BaseException:
        # Leave no URL of a server that is not there for what runs next in this process.
        os.environ.pop("PREFECT_API_URL", None)
        if server is not None and server.poll() is None:
            _stop(server)
        raise
    finally:
        if lock is not None:
            lock.close()  # the database is migrated (or the start failed): the next may start
    if server is not None:
        # At interpreter exit, not when the block ends: Prefect sends its last logs and events
        # from exit hooks that run before atexit's, and they need the server up.
        atexit.register(_stop, server, log_file)
    yield result


_STARTS = 3  # tries before a server that keeps exiting is an error


def _start(port: int, ui: bool, log_file: Path) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("prefect")), "server", "start",
               "--host", "127.0.0.1", "--port", str(port)]
    command += [] if ui else ["--no-ui", "--no-services"]
    log.info("starting a Prefect server on http://127.0.0.1:%s/api%s (its log: %s)", port,
             f" (UI: http://127.0.0.1:{port})" if ui else "", log_file)
    with open(log_file, "ab") as out:  # appended: a restart keeps the first try's lines
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def _why_not(port: int, chosen_here: bool, server: subprocess.Popen | None,
             log_file: Path | None) -> str:
    if server is None:
        return (f"the Prefect server on port {port} stopped answering; set PREFECT_API_URL to "
                "a running one")
    state = ("exited with code " + str(server.returncode) if server.poll() is not None
             else "did not answer in time")
    advice = ("Set PREFECT_API_URL to a running server to use that one instead." if chosen_here
              else "Is the port taken? Choose another, or set PREFECT_API_URL to a running "
              "server.")
    tail = log_file.read_text(errors="replace").strip().splitlines()[-15:] if log_file else []
    return (f"the Prefect server on port {port} {state}. {advice} The end of its log "
            f"({log_file}):\n" + "\n".join(tail))


def _home() -> Path:
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def _start_lock():
    """Hold a lock in PREFECT_HOME while a server starts. A server migrates Prefect's database
    when it starts, and two migrating a new database at once fail ("Online migration expected
    to match one row"): two `rnnflow run` started together on a fresh machine did."""
    handle = open(_home() / ".rnnflow-server-start.lock", "w")  # noqa: SIM115 - held until healthy
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when this process dies, even by SIGKILL or an OOM kill,
    so a crashed run leaves no server behind."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(server: subprocess.Popen, log_file: Path | None = None) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    if log_file is not None:  # it is kept only where a start failed, for the error's reader
        log_file.unlink(missing_ok=True)
