"""Helpers shared by the tests: archive builders, the `rnnflow` command in a subprocess, a model
served over REST, and stopping the process groups tests start. Fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# The checkout, and the shared 5,000-review sample of the real dataset beside it (the tests'
# source of real reviews).
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "aclImdb_sample.tar.gz"
TINY_GRID = REPO / "params" / "tiny-grid.yaml"

_POS = "wonderful superb moving brilliant delightful great loved masterpiece".split()
_NEG = "awful boring dull terrible waste worst hated mess".split()
_FILL = "the film movie plot actor scene story and was it this a of".split()


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102
        pass


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, root) of an HTTP server on 127.0.0.1 serving `root`, while the block runs."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


_PREFECT_HOME_LOCK = threading.Lock()


@functools.cache
def migrated_prefect_home() -> Path:
    """A Prefect home whose database is migrated, made once per test session. A new home
    spends about 9 s of a 2-core machine migrating before its server answers; a project's home
    starts as a copy of this one instead (`project_env`)."""
    home = Path(tempfile.mkdtemp(prefix="rnnflow-test-prefect-template-"))
    subprocess.run([str(Path(sys.executable).with_name("prefect")), "server", "database",
                    "upgrade", "-y"], env={**os.environ, "PREFECT_HOME": str(home)},
                   check=True, capture_output=True, timeout=300)
    return home


# What a command in a test's project must not take from the test process: the servers and the
# store an earlier test pointed this process at.
_NOT_INHERITED = ("PREFECT_API_URL", "PREFECT_UI_URL", "MLFLOW_TRACKING_URI", "RNNFLOW_DATA_DIR")


def project_env(project: Path, fresh_prefect: bool = False, api_url: str | None = None,
                **extra: str) -> dict[str, str]:
    """The environment of an `rnnflow` subprocess working in `project`: Prefect state, data and
    the MLflow store all inside it (MLflow exports the tracking URI an earlier test set in this
    process), no API server inherited; then `extra`. The Prefect home starts migrated unless
    `fresh_prefect` (what a new machine has). `api_url`: the Prefect API a run uses instead of
    starting its temporary one (the `prefect_api_url` fixture's)."""
    home = project / ".prefect"
    if not fresh_prefect:
        with _PREFECT_HOME_LOCK:
            if not home.exists():
                shutil.copytree(migrated_prefect_home(), home)
    env = {**os.environ, "PREFECT_HOME": str(home)}
    for inherited in _NOT_INHERITED:
        env.pop(inherited, None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return {**env, **extra}


@contextlib.contextmanager
def prefect_server() -> Iterator[str]:
    """The API URL of a `prefect server start` on loopback, on a migrated home of its own,
    while the block runs."""
    home = Path(tempfile.mkdtemp(prefix="rnnflow-test-prefect-server-"))
    shutil.copytree(migrated_prefect_home(), home, dirs_exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    with (home / "server.log").open("w") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host",
             "127.0.0.1", "--port", str(port)], cwd=home, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url},
            start_new_session=True)
    try:
        wait_until_healthy(f"{url}/health", server, home / "server.log", 180)
        yield url
    finally:
        stop_group(server)


def wait_until_healthy(health_url: str, server: subprocess.Popen, log: Path,
                       seconds: float) -> None:
    """Poll a server's health endpoint until it answers 200; an AssertionError with the end of
    its log if the process exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert server.poll() is None, f"{health_url}: the server exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, (
            f"{health_url}: no answer in {seconds:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def flow_run_logs(flow_run_id: str, until, timeout: float = 60.0) -> list:
    """The logs of a flow run (its tasks' included) from the Prefect API the settings name,
    once `until(logs)` holds, else at `timeout` (the caller's assertion then says what is
    missing): Prefect sends logs in batches, from a thread of its own."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            if until(logs) or time.monotonic() > deadline:
                return logs
            time.sleep(0.2)


def tiny_grid_args(archive: Path | str, *sets: str) -> list[str]:
    """`run params/tiny-grid.yaml` on `archive` as one point, without baselines, and `sets`."""
    args = ["run", str(TINY_GRID), "--set", f"dataset.url={archive}", "--set", "grid={}",
            "--set", "baselines=none"]
    for s in sets:
        args += ["--set", s]
    return args


def run_tiny_grid(project: Path, archive: Path | str, *sets: str, fresh_prefect: bool = False,
                  api_url: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """`rnnflow run params/tiny-grid.yaml` on `archive` as one point, in its own session, on
    the Prefect API `api_url` (None: its own temporary one, as a user without a server has).
    Without baselines (`baselines=none`, unless `sets` say otherwise): they are the concern of
    tests/flows/test_grid.py and test_train_rnn.py, and elsewhere would only add fits and runs
    to what a test counts.
    Output goes to a file, not a pipe: a killed run's Prefect server child would hold a pipe
    open; the session is cleaned up afterwards."""
    out = project / f"run-{time.monotonic_ns()}.log"
    with out.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "rnnflow.cli",
                                 *tiny_grid_args(archive, *sets)], cwd=project,
                                env=project_env(project, fresh_prefect, api_url, **env),
                                stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, code, "", out.read_text())


def rnnflow_cli(project: Path, *args: str, api_url: str | None = None
                ) -> subprocess.CompletedProcess:
    """`rnnflow ARGS` in `project`, output captured, Prefect's INFO lines included; a run on
    the Prefect API `api_url` (None: its own temporary one)."""
    cmd = [sys.executable, "-m", "rnnflow.cli", *args]
    return subprocess.run(cmd, cwd=project, env=project_env(project, api_url=api_url,
                                                            PREFECT_LOGGING_LEVEL="INFO"),
                          capture_output=True, text=True, timeout=600)


def rnnflow_here(project: Path, *args: str, api_url: str | None = None
                 ) -> subprocess.CompletedProcess:
    """`rnnflow ARGS` in this test process (typer's CliRunner), in `project` and its tracking
    store, for the commands whose output and results a test reads (predict, explain, compare,
    and the runs whose point is what they log) rather than their process: a subprocess spends
    about 7 s of a core importing TensorFlow, Prefect and MLflow again. A run goes to the
    Prefect API `api_url` (the test process's server, prefect_api_url), never to a temporary
    server of its own, which would boot in this process and stop with it. What only a
    process shows (a stdout with nothing but the predictions, what a run prints on its first
    screen, a run killed or two at once) stays with rnnflow_cli and run_tiny_grid.
    A result like a subprocess's, with the traceback of an unexpected exception in stderr."""
    from typer.testing import CliRunner

    from rnnflow.cli import app

    assert api_url or args[:1] != ("run",), "a run in this process needs api_url"
    env = {**dict.fromkeys(_NOT_INHERITED), "PREFECT_API_URL": api_url}
    _prefect_console_follows_stderr()  # those set up before this command
    with contextlib.chdir(project):
        result = CliRunner().invoke(app, list(args), env=env)
    _prefect_console_follows_stderr()  # those it set up
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["rnnflow", *args], result.exit_code, result.stdout,
                                       stderr)


class _CurrentStderr:
    """sys.stderr as it is at each write, not as it was when a handler was made."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return False


def _prefect_console_follows_stderr() -> None:
    """Prefect's console handlers write to the sys.stderr of the moment they were set up: at
    import (pytest's capture, and a command's log lines never reach its result), or in a
    command's first flow run (that CliRunner's stream, closed once it returns: "I/O operation
    on closed file" for the next). Pointed at whatever sys.stderr is when they write, each
    command's log lines reach its own result."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict
                                      .values() if isinstance(logger, logging.Logger))]
    for handler in {h for logger in loggers for h in logger.handlers}:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.stream,
                                                                         _CurrentStderr):
            handler.stream = handler.console.file = _CurrentStderr()  # not setStream: it
            # flushes the closed stream first


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM a process started with start_new_session, and its children; SIGKILL after 30 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def build_stages(archive: Path, maxlen: int | None = 20, *, digest: str = "d", limit=None,
                 vector_size: int = 8, min_count: int = 1, seed: int = 0):
    """(padded, embeddings): the preprocessing stages of `archive` under ./data, word2vec
    trained on it (one epoch), for tests of training and evaluation."""
    from rnnflow.config import DatasetConfig, EmbeddingConfig, PadConfig, TokenizeConfig
    from rnnflow.data.embeddings import build_embeddings
    from rnnflow.data.pad import pad_sequences
    from rnnflow.data.reviews import read_reviews
    from rnnflow.data.tokens import tokenize_reviews
    from rnnflow.data.vectorize import vectorize_tokens

    tokens = tokenize_reviews(read_reviews(archive, digest, DatasetConfig(limit=limit)),
                              TokenizeConfig())
    table = build_embeddings(tokens, EmbeddingConfig(source="train", vector_size=vector_size,
                                                     min_count=min_count, epochs=1), seed=seed)
    return pad_sequences(vectorize_tokens(tokens, table)[0], PadConfig(maxlen=maxlen)), table



# Words that mark each class of `synthetic_table`: non-ASCII and elided forms among them.
CLASS_WORDS = {
    "gioia": "felicità allegria l'amore sorriso festa".split(),
    "rabbia": "furia collera odio s'arrabbia grido".split(),
    "paura": "terrore ansia buio tremare incubo".split(),
    "tristezza": "lacrime dolore perdita malinconia addio".split(),
    "sorpresa": "stupore meraviglia improvviso incredibile già".split(),
}
_CLASS_FILL = "il la di che e un una è per non con si".split()


def synthetic_table(path: Path, classes: list[str], n_per_class: int, seed: int = 0,
                    val: bool = True, empty_labels: int = 0) -> Path:
    """A csv of text, label and split: `n_per_class` rows per class in each of train and test
    (and val, if `val`), each text marked by its class's words (CLASS_WORDS); then
    `empty_labels` rows with an empty label and one with an empty text."""
    import pandas as pd

    rng = random.Random(seed)
    rows = []
    for split in ("train", "dev", "test") if val else ("train", "test"):
        for cls in classes:
            for _ in range(n_per_class):
                words = [rng.choice(CLASS_WORDS[cls] if rng.random() < 0.4 else _CLASS_FILL)
                         for _ in range(rng.randint(4, 12))]
                rows.append({"text": " ".join(words), "label": cls, "split": split})
    rows += [{"text": "didascalia senza etichetta", "label": "", "split": "train"}
             for _ in range(empty_labels)]
    rows.append({"text": "   ", "label": classes[0], "split": "train"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def serve_and_post(project: Path, model_uri: str, texts: list[str], **extra_env: str) -> list:
    """`mlflow models serve -m MODEL_URI` on loopback, in `project` (its mlflow.db); the
    predictions it answers to a POST of `texts`, then stopped."""
    port = free_port()
    # The scoring server execs `uvicorn`, which must be on PATH (it is in an activated venv).
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           **extra_env}
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    log = (project / "serve.log").open("w")
    server = subprocess.Popen(
        [mlflow_bin, "models", "serve", "-m", model_uri, "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body = json.dumps({"dataframe_split": {"columns": ["text"],
                                               "data": [[t] for t in texts]}})
        deadline = time.monotonic() + 180
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                    headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None, (project / "serve.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "mlflow models serve did not answer"
                time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return answer["predictions"]


def chromium(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium: a fresh profile in `folder` (no earlier page's local storage), no
    sandbox (root in CI), and none of its own network traffic (component updates, sync,
    first-run and background fetches)."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=folder)
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                           *args], capture_output=True, text=True, timeout=180)
