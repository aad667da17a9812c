"""Shared fixtures: a throw-away project folder, tiny aclImdb archives, a loopback HTTP server."""

from __future__ import annotations

import functools
import http.server
import io
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Prefect keeps its SQLite state away from the user's ~/.prefect, and its INFO lines (one is
# logged at interpreter exit, after pytest has closed the streams) out of the test output.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rnnflow-test-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network in tests

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "aclImdb_sample.tar.gz"

_POS = "wonderful superb moving brilliant delightful great loved masterpiece".split()
_NEG = "awful boring dull terrible waste worst hated mess".split()
_FILL = "the film movie plot actor scene story and was it this a of".split()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working folder: data/, mlflow.db and mlruns/ all land inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RNNFLOW_DATA_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import mlflow

    # An in-process flow of an earlier test leaves MLflow pointed at that test's database.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def synthetic_reviews(n_per_class: int, seed: int = 0) -> dict[str, str]:
    """{'aclImdb/<split>/<cls>/<id>_<rating>.txt': text}, with words that separate the classes."""
    rng = random.Random(seed)
    files = {}
    for split in ("train", "test"):
        for cls, words in (("pos", _POS), ("neg", _NEG)):
            for i in range(n_per_class):
                rating = rng.choice([7, 8, 9, 10] if cls == "pos" else [1, 2, 3, 4])
                body = [rng.choice(words if rng.random() < 0.3 else _FILL)
                        for _ in range(rng.randint(5, 40))]
                text = " ".join(body).capitalize() + ".<br /><br />I " + rng.choice(words) + " it."
                files[f"aclImdb/{split}/{cls}/{i}_{rating}.txt"] = text
    return files


def write_tar(path: Path, files: dict[str, str | bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    """The files of `write_tar`, extracted: `root` then holds aclImdb/."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


@pytest.fixture
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The aclImdb/ folder of `tiny_archive`, extracted (its parent holds only it)."""
    return write_folder(tmp_path_factory.mktemp("extracted"), synthetic_reviews(20)) / "aclImdb"


@pytest.fixture
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic aclImdb-layout .tar.gz: 20 reviews per class and split."""
    return write_tar(tmp_path_factory.mktemp("archive") / "aclImdb_tiny.tar.gz",
                     synthetic_reviews(20))


@pytest.fixture(scope="session")
def sample_cut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real reviews: 60 per class and split cut from ../shared/data/aclImdb_sample.tar.gz."""
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} is not present (the shared 5,000-review sample)")
    per_group: dict[tuple[str, str], int] = {}
    files: dict[str, str | bytes] = {}
    with tarfile.open(SAMPLE) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or parts[1] not in ("train", "test"):
                continue
            group = (parts[1], parts[2])
            if per_group.get(group, 0) >= 60:
                continue
            per_group[group] = per_group.get(group, 0) + 1
            files[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return write_tar(tmp_path_factory.mktemp("sample") / "aclImdb_cut.tar.gz", files)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102
        pass


@pytest.fixture
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, folder it serves) of an HTTP server on 127.0.0.1."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(URL, server log) of a real `mlflow server` on 127.0.0.1: SQLite backend store, artifacts
    served by the server from a folder of its own, two server processes."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = root / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server",
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            os.killpg(server.pid, signal.SIGKILL)
            pytest.fail(f"mlflow server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    try:
        yield url, log
    finally:
        stop_group(server)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM a process started with start_new_session, and its children; SIGKILL after 30 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
