"""A local Prefect server for commands that find no PREFECT_API_URL.

Imports nothing from Prefect at import time: the URL has to be in the environment before
Prefect is imported (it reads its settings then).
- `rnnflow run` gets a temporary API-only server on a free port, served from a thread of the
  run's own process. Its socket is bound first thing, so the URL is known before the flow is
  imported and no other process can take the port meanwhile; the server's modules are imported
  once the flow's are. It has no UI and is gone when the run ends, so Prefect is told of no UI
  (PREFECT_UI_URL empty) and prints no "View at" link to it; the link that lasts is MLflow's,
  which the run prints at its end.
- `rnnflow serve` gets a server with the UI in a process of its own, on a fixed port, so other
  shells can reach it for as long as it serves.

Why a thread for `rnnflow run` (bench/NOTES.md, "The Prefect server in the run's process"): a
server process imports Prefect, pydantic, SQLAlchemy and FastAPI again and held 216-258 MB of
a lesson run's peak; in the run's process the same server adds about 110 MB, because the flow
has imported most of that already. It costs seconds: the server boots after the flow's imports
instead of beside them (booting it first, in its thread, is no faster: one GIL), and shares the
process while it starts; measured, a run begins 1.5 s later and ends about 2.5 s later.
Prefect's own temporary server is a process too, started on the first API call.
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
import threading
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
    if port is None and not ui:
        with _in_this_process(timeout, meanwhile) as result:
            yield result
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


@contextlib.contextmanager
def _in_this_process(timeout: float, meanwhile: Callable[[], T] | None) -> Iterator[T | None]:
    """A temporary API-only server (no UI, no background services, as `prefect server start
    --no-ui --no-services` serves) on a thread of this process, stopped at exit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # clients that come before the server runs wait in the backlog
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    os.environ["PREFECT_API_URL"] = url
    ui_url = os.environ.get("PREFECT_UI_URL")
    os.environ["PREFECT_UI_URL"] = ""  # no UI to link to
    server = None
    lock = None
    # Said before Prefect is imported: after, its API log handler wants a flow run for it.
    log.info("serving a temporary Prefect API on %s from this process", url)
    try:
        result = meanwhile() if meanwhile else None
        lock = _start_lock()  # held while the server migrates the database
        server = _ThreadServer(sock)
        deadline = time.monotonic() + timeout
        while not healthy(url):
            if server.thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            why = (f"failed: {server.error!r}" if server.error
                   else "did not answer in time" if server.thread.is_alive() else "stopped")
            raise RuntimeError(f"the temporary Prefect server on {url} {why}. Set "
                               "PREFECT_API_URL to a running server to use that one instead.")
    except BaseException:
        os.environ.pop("PREFECT_API_URL", None)
        if ui_url is None:
            os.environ.pop("PREFECT_UI_URL", None)
        else:
            os.environ["PREFECT_UI_URL"] = ui_url
        if server is not None:
            server.stop()
        sock.close()
        raise
    finally:
        if lock is not None:
            lock.close()
    # At interpreter exit, not when the block ends: Prefect sends its last logs and events
    # from exit hooks that run before this one (registered later, run earlier).
    atexit.register(server.stop)
    yield result


_STOP_GRACE_S = 0.5


class _ThreadServer:
    """uvicorn serving Prefect's API app on `sock` from a daemon thread."""

    def __init__(self, sock: socket.socket) -> None:
        import uvicorn
        from prefect.server.api.server import create_app
        from prefect.settings import (
            PREFECT_SERVER_ANALYTICS_ENABLED,
            PREFECT_UI_ENABLED,
            temporary_settings,
        )

        self.sock, self.error = sock, None
        # Settings are per thread (a context variable): the run's own are left as they are.
        self._settings = lambda: temporary_settings(
            {PREFECT_UI_ENABLED: False, PREFECT_SERVER_ANALYTICS_ENABLED: False})
        with self._settings():
            app = create_app(final=True, webserver_only=True)
        # log_config=None: uvicorn leaves the run's logging as it is configured
        self.server = uvicorn.Server(uvicorn.Config(
            app, log_config=None, log_level="error", access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self._serve, name="prefect-api", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            with self._settings():
                self.server.run(sockets=[self.sock])
        except BaseException as exc:  # noqa: BLE001 - reported by the thread that waits
            self.error = exc

    def stop(self) -> None:
        # At exit Prefect has sent its last logs and events, and every write is committed. The
        # connections its client keeps open are not waited for, nor the app's shutdown beyond
        # half a second (its task queue's worker took 30 s to stop, measured): the thread is a
        # daemon, and goes with the process, as a server process would with SIGTERM.
        self.server.should_exit = self.server.force_exit = True
        self.thread.join(timeout=_STOP_GRACE_S)


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
