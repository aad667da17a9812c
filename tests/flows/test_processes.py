"""Real processes: a run killed mid-training resumes, and a served deployment is triggered
with `prefect deployment run` from another process."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import REPO, project_env, run_tiny_grid, stop_group

pytestmark = pytest.mark.slow


def test_killed_training_resumes_from_its_last_epoch(project, tiny_archive):
    killed = run_tiny_grid(project, tiny_archive, "train.epochs=3", RNNFLOW_FAULT="after_epoch:1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny-grid")
    (dead,) = client.search_runs([exp.experiment_id])
    assert dead.info.status == "RUNNING" and dead.data.tags["rnnflow_epochs_done"] == "1"

    again = run_tiny_grid(project, tiny_archive, "train.epochs=3")
    assert again.returncode == 0, again.stderr[-3000:]
    runs = {r.info.run_id: r for r in client.search_runs([exp.experiment_id])}
    (new,) = [r for r in runs.values() if r.info.run_id != dead.info.run_id]
    assert new.data.tags["continued_from"] == dead.info.run_id
    assert [m.step for m in client.get_metric_history(new.info.run_id, "loss")] == [2, 3]
    assert runs[dead.info.run_id].info.status == "KILLED"
    assert not list((project / "data").rglob(".tmp-*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def test_served_deployment_runs_when_triggered(project, tiny_archive):
    port = _free_port()
    log = (project / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "rnnflow.cli", "serve", str(REPO / "params"), "--port", str(port)],
        cwd=project, env=project_env(project), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        _wait_for_deployment(f"http://127.0.0.1:{port}/api", "train-rnn/tiny-grid", serve,
                             project / "serve.log", timeout=240)
        overrides = json.dumps({"dataset.url": str(tiny_archive), "grid": {}})
        trigger = subprocess.run(
            [str(Path(sys.executable).with_name("prefect")), "deployment", "run",
             "train-rnn/tiny-grid", "--watch", "--watch-timeout", "400",
             "-p", f"overrides={overrides}"],
            env={**project_env(project), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"},
            capture_output=True, text=True, timeout=500)
        assert trigger.returncode == 0, trigger.stdout[-3000:] + trigger.stderr[-2000:]
        assert "Completed" in trigger.stdout
    finally:
        stop_group(serve)
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny-grid").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["dataset.url"] == str(tiny_archive)
