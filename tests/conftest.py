"""Shared fixtures: a throw-away project folder, tiny aclImdb archives, a loopback HTTP server."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    SAMPLE,
    free_port,
    prefect_server,
    serve_folder,
    stop_group,
    synthetic_reviews,
    wait_until_healthy,
    write_folder,
    write_tar,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Prefect keeps its SQLite state away from the user's ~/.prefect, and its INFO lines (one is
# logged at interpreter exit, after pytest has closed the streams) out of the test output.
# One home per test process, unless the caller chose one: xdist's workers inherit the
# controller's environment, and two workers' Prefect servers writing one SQLite database can
# find it locked under load.
if os.environ.get("PREFECT_HOME") in (None, os.environ.get("RNNFLOW_TEST_PREFECT_HOME")):
    os.environ["PREFECT_HOME"] = os.environ["RNNFLOW_TEST_PREFECT_HOME"] = tempfile.mkdtemp(
        prefix=f"rnnflow-test-prefect-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network in tests
# The in-process flows' ephemeral Prefect server gets 20 s to answer; a busy 2-core machine
# running two test processes, each with its own server, can take longer.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The modules that hold end-to-end (`slow`) tests first, the unit tests after them, each
    module's tests in their own order. With `--dist loadfile` a test process takes the next
    module whenever it runs short of work: many small modules at the end keep both processes
    busy to the last minute, where one long module would leave the other idle."""
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


@pytest.fixture(autouse=True, scope="module")
def _frozen_heap() -> None:
    """Freeze what is alive as each module starts, after a collection that frees what is
    dead, as `rnnflow run` does once its flow is loaded (rnnflow/memory.py): before the first
    module, what collection imported (TensorFlow, Prefect, MLflow, the test modules: about a
    million objects); before each later one, what the modules before it left alive (servers'
    clients, in-process flows' caches, traced functions). Each training ends in a full
    collection (rnnflow.memory.release_memory), and there are hundreds in a test process; one
    that walked it all took 0.26 s after the end-to-end modules, most of a unit test's time
    (tests/rnnflow/network/test_baselines.py: 26 s of CPU in the suite, 3 s alone)."""
    import gc

    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _no_api_url_left_behind() -> Iterator[None]:
    """A test that ran a command in this process leaves PREFECT_API_URL as it found it. The
    command sets it for the rest of its process, and the server it names is stopped (by the
    test or at the process's exit), so a later test's subprocesses would inherit a dead URL."""
    before = {name: os.environ.get(name) for name in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    yield
    for name, value in before.items():  # the temporary server's run empties PREFECT_UI_URL
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


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


@pytest.fixture
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, folder it serves) of an HTTP server on 127.0.0.1."""
    with serve_folder(tmp_path_factory.mktemp("www")) as served:
        yield served


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """The URL of one Prefect server for this test process, for the `rnnflow run`s of the
    end-to-end modules whose point is not the server: each run's temporary server costs about
    12 s of a core to boot, and is proven by test_train_rnn, test_failures and
    test_local_server."""
    with prefect_server() as url:
        yield url
        # Flow runs of this process (rnnflow_here's runs) hand their logs to Prefect's
        # background worker; sent now, not at exit to a server stopped by then.
        if "prefect.logging.handlers" in sys.modules:
            sys.modules["prefect.logging.handlers"].APILogWorker.drain_all(timeout=30)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(URL, server log) of a real `mlflow server` on 127.0.0.1: SQLite backend store, artifacts
    served by the server from a folder of its own, two server processes."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
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
    try:
        wait_until_healthy(f"{url}/health", server, log, 120)
        yield url, log
    finally:
        stop_group(server)
