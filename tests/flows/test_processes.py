"""Real processes and real SIGKILLs, one scenario on an archive served over loopback HTTP: a
run killed while downloading, the next killed while building the ids, the next killed after
its first epoch of three, then the same point as a served deployment, triggered with `prefect
deployment run` from another process. What it proves end to end: each kill leaves
half-written files that the next run cleans up, reusing the steps that had finished; a served
deployment runs when triggered; a run killed mid-training is continued from its last epoch by
the next run of the same point, whichever process runs it (the one end-to-end proof of
continued training)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import (
    TINY_GRID,
    free_port,
    project_env,
    run_tiny_grid,
    serve_folder,
    stop_group,
    synthetic_reviews,
    write_tar,
)

pytestmark = pytest.mark.slow


def _wait_for_deployment(api_url: str, name: str, serve: subprocess.Popen, log: Path,
                         timeout: float) -> None:
    """Poll the API until it knows deployment `name`: the condition `prefect deployment run`
    needs, rather than a line in the log."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings({PREFECT_API_URL: api_url}):
        while True:
            assert serve.poll() is None, log.read_text()[-3000:]
            try:
                with get_client(sync_client=True) as client:  # a new one: none retries
                    client.read_deployment_by_name(name)      # before its first connection
                return
            except (ObjectNotFound, httpx.HTTPError):  # not registered yet, or server booting
                pass
            assert time.monotonic() < deadline, f"{name} not on the API:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)


@dataclass(frozen=True)
class Killed:
    """A run SIGKILLed at one point, and the leftovers of the data folder after it."""

    run: subprocess.CompletedProcess
    leftovers: list[Path]  # .tmp-* anywhere under data/


@dataclass(frozen=True)
class Scenario:
    project: Path
    archive: Path  # as served
    url: str
    client: MlflowClient
    in_download: Killed
    in_vectors: Killed
    killed: Killed  # after its first epoch
    left: list  # the runs the last kill left, as it left them
    trigger: subprocess.CompletedProcess  # `prefect deployment run --watch`

    def runs(self) -> dict[str, object]:
        experiment = self.client.get_experiment_by_name("tiny-grid")
        return {r.info.run_id: r for r in self.client.search_runs([experiment.experiment_id])}


def _serve_and_trigger(project: Path, overrides: dict) -> subprocess.CompletedProcess:
    """`rnnflow serve` of a folder holding params/tiny-grid.yaml, then `prefect deployment run
    train-rnn/tiny-grid` with `overrides`, watched until the flow run ends; the server stopped
    afterwards. (Serving every file of a folder: tests/flows/test_serve.py.)"""
    params = project / "params"
    params.mkdir()
    shutil.copy(TINY_GRID, params)
    port = free_port()
    log = (project / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "rnnflow.cli", "serve", str(params), "--port", str(port)],
        # The runner looks for triggered runs every second rather than every ten: the test
        # waits for what the run does, not for the runner's next look.
        cwd=project, env=project_env(project, PREFECT_RUNNER_POLL_FREQUENCY="1"), stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_deployment(f"http://127.0.0.1:{port}/api", "train-rnn/tiny-grid", serve,
                             project / "serve.log", timeout=240)
        return subprocess.run(
            [str(Path(sys.executable).with_name("prefect")), "deployment", "run",
             "train-rnn/tiny-grid", "--watch", "--watch-interval", "1", "--watch-timeout", "400",
             "-p", f"overrides={json.dumps(overrides)}"],
            env={**project_env(project), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"},
            capture_output=True, text=True, timeout=500)
    finally:
        stop_group(serve)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, prefect_api_url) -> Iterator[Scenario]:
    """The kills run on the test process's Prefect server: the files and runs they leave are
    the point (a run's own temporary server is test_local_server.py's)."""
    project = tmp_path_factory.mktemp("processes")
    with serve_folder(tmp_path_factory.mktemp("www")) as (base, root):
        archive = write_tar(root / "tiny.tar.gz", synthetic_reviews(20))
        url = f"{base}/{archive.name}"

        def kill(fault: str, *sets: str, **env: str) -> Killed:
            run = run_tiny_grid(project, url, *sets, api_url=prefect_api_url,
                                RNNFLOW_FAULT=fault, **env)
            return Killed(run, sorted((project / "data").rglob(".tmp-*")))

        in_download = kill("download")
        in_vectors = kill("vectors")
        # The same point as the served deployment's below; its Prefect lines show the cache.
        killed = kill("after_epoch:1", "train.epochs=3", PREFECT_LOGGING_LEVEL="INFO")
        client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("tiny-grid")
        left = client.search_runs([experiment.experiment_id]) if experiment else []
        # The same point, from the served deployment: its run goes on from the killed one.
        trigger = _serve_and_trigger(project, {"dataset.url": url, "grid": {},
                                               "baselines": "none", "train.epochs": 3})
    yield Scenario(project, archive, url, client, in_download, in_vectors, killed, left,
                   trigger)


def test_killed_runs_leave_nothing_the_next_run_trips_on(scenario):
    """SIGKILLed mid-download, then (the next run) mid-way through building the ids: each kill
    leaves half-written files; the run after each one cleans them up and goes on."""
    raw = scenario.project / "data" / "raw"
    download, vectors = scenario.in_download, scenario.in_vectors
    assert download.run.returncode == vectors.run.returncode == -signal.SIGKILL
    assert download.leftovers and all(p.parent == raw and p.name.startswith(".tmp-download-")
                                      for p in download.leftovers)
    # The download restarted cleanly before the second kill, which left a half-built stage.
    assert not set(download.leftovers) & set(vectors.leftovers) and vectors.leftovers
    (archive,) = raw.iterdir()
    assert archive.read_bytes() == scenario.archive.read_bytes()
    # The run after it reused the four steps that had finished (Cached) and cleaned up.
    assert scenario.killed.run.stderr.count("Cached(type=COMPLETED)") == 4
    assert not set(vectors.leftovers) & set(scenario.killed.leftovers)


def test_served_deployment_runs_when_triggered(scenario):
    trigger = scenario.trigger
    assert trigger.returncode == 0, trigger.stdout[-3000:] + trigger.stderr[-2000:]
    assert "Completed" in trigger.stdout
    before = {r.info.run_id for r in scenario.left}
    (run,) = [r for r in scenario.runs().values() if r.info.run_id not in before]
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset.url"] == scenario.url


def test_killed_training_resumes_from_its_last_epoch(scenario):
    killed = scenario.killed.run
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (dead,) = scenario.left
    assert dead.info.status == "RUNNING" and dead.data.tags["rnnflow_epochs_done"] == "1"

    assert scenario.trigger.returncode == 0, scenario.trigger.stdout[-3000:]
    runs = scenario.runs()
    (new,) = [r for r in runs.values() if r.info.run_id != dead.info.run_id]
    assert new.data.tags["continued_from"] == dead.info.run_id
    assert [m.step for m in scenario.client.get_metric_history(new.info.run_id, "loss")] \
        == [2, 3]
    assert runs[dead.info.run_id].info.status == "KILLED"
    assert not list((scenario.project / "data").rglob(".tmp-*"))
