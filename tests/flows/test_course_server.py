"""A class on one server (docs/course-server.md): PostgreSQL from scripts/postgres-local, then
the MLflow server with its authentication app and the Prefect server on it, and the class's
users, all started once for the module by running the page's own `sh` blocks; then a student's
Dask grid (the page's last block), the refusals, a search whose study is on PostgreSQL, and
restarts of the MLflow server and of the database in the middle of a run.

The commands are the page's own, so that the page and this test cannot drift apart. The tests
skip where PostgreSQL cannot be installed (not root, not installed), and never in CI (CI=true).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import REPO, TINY_GRID, free_port, project_env, stop_group, wait_until_healthy

pytestmark = pytest.mark.slow

POSTGRES = REPO / "scripts" / "postgres-local"
SERVER_BLOCK = "# in a terminal of its own"
STUDENT_RUN = "rnnflow run params/tiny-grid.yaml"
TEACHER = ("teacher", "change-this-teacher-password")
DB_PASSWORD = "course-db-password"
COURSE_DATABASES = ("course_mlflow", "course_auth", "course_prefect", "course_optuna")


def page_text() -> str:
    return (REPO / "docs" / "course-server.md").read_text(encoding="utf-8")


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def replaced(block: str, swaps: dict[str, str]) -> str:
    for old, new in swaps.items():
        block = block.replace(old, new)
    return block


@dataclass
class Server:
    """A server block of the page, started in its own session with its own log."""

    script: str
    health: str
    log: Path
    cwd: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = field(default=None)

    def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", self.script],
                                         cwd=self.cwd, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self) -> None:
        assert self.proc is not None
        wait_until_healthy(self.health, self.proc, self.log, 300)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_group(self.proc)


@dataclass
class Course:
    root: Path
    mlflow_url: str
    prefect_api: str
    passwords: dict[str, str]
    student_block: str
    mlflow: Server
    optuna_url: str
    env: dict[str, str]


def _run_block(script: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{script}\n---\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def postgres():
    """The environment that reaches scripts/postgres-local's cluster (started here unless it
    runs, as under .ci/run), with no database or role of the page left from an earlier run."""
    started = False
    if subprocess.run([str(POSTGRES), "status"], capture_output=True).returncode != 0:
        start = subprocess.run([str(POSTGRES), "start"], capture_output=True, text=True,
                               timeout=600)
        if start.returncode != 0:
            reason = f"PostgreSQL cannot be started here: {start.stderr.strip()[-500:]}"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        started = True
    env = dict(line.split("=", 1) for line in subprocess.run(
        ["bash", "-c", f'eval "$({POSTGRES} env)" && env -0'], capture_output=True, text=True,
        check=True).stdout.split("\0") if "=" in line)
    drops = "; ".join([f"DROP DATABASE IF EXISTS {d} WITH (FORCE)" for d in COURSE_DATABASES]
                      + ["DROP ROLE IF EXISTS course"])
    for statement in drops.split("; "):
        _run_block(f"psql -d postgres -qc '{statement}'", REPO, env)
    try:
        yield env
    finally:
        if started:
            subprocess.run([str(POSTGRES), "stop"], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def course(postgres, tmp_path_factory):
    """The page's setup run as written, but on loopback ports of the test's own and in a
    temporary folder: PostgreSQL's role and databases, both servers, the class's users."""
    root = tmp_path_factory.mktemp("course")
    mlflow_port, prefect_port = free_port(), free_port()
    swaps = {"127.0.0.1:5432": f"127.0.0.1:{postgres['PGPORT']}", "/srv/course": str(root),
             "--host 0.0.0.0": "--host 127.0.0.1", "course-host": "127.0.0.1",
             ":5000": f":{mlflow_port}", "--port 5000": f"--port {mlflow_port}",
             ":4200": f":{prefect_port}", "--port 4200": f"--port {prefect_port}"}
    text = page_text()
    for old in swaps:  # the page still says what this test expects of it
        assert old in text, f"the page no longer holds {old!r}: update this test with it"
    # As conftest's mlflow_server: no job runner beside the server (processes the tests never
    # use, on a 2-core machine).
    env = {**postgres, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{postgres['PATH']}",
           "PREFECT_HOME": str(root / "prefect-home"),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    for inherited in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "MLFLOW_TRACKING_USERNAME",
                      "MLFLOW_TRACKING_PASSWORD", "RNNFLOW_DATA_DIR"):
        env.pop(inherited, None)
    servers: list[Server] = []
    waiting: list[Server] = []
    student_block = ""
    try:
        for block in sh_blocks(text):
            if STUDENT_RUN in block:
                student_block = block  # the test below runs it
                continue
            script = replaced(block, swaps)
            if block.startswith(SERVER_BLOCK):
                # Both servers boot at once (each takes a while); the next step waits.
                health = (f"http://127.0.0.1:{mlflow_port}/health" if "mlflow server" in block
                          else f"http://127.0.0.1:{prefect_port}/api/health")
                server = Server(script, health, root / f"server-{len(servers)}.log", root, env)
                server.start()
                servers.append(server)
                waiting.append(server)
                continue
            while waiting:
                waiting.pop(0).wait()
            _run_block(script, root, env)
        while waiting:
            waiting.pop(0).wait()
        assert student_block, f"no `{STUDENT_RUN}` block on the page"
        with (root / "passwords.csv").open() as fh:
            passwords = {row["name"]: row["password"] for row in csv.DictReader(fh)}
        (mlflow,) = [s for s in servers if s.health.endswith(f"{mlflow_port}/health")]
        yield Course(root, f"http://127.0.0.1:{mlflow_port}",
                     f"http://127.0.0.1:{prefect_port}/api", passwords, student_block, mlflow,
                     f"postgresql+psycopg://course:{DB_PASSWORD}@127.0.0.1:{postgres['PGPORT']}"
                     "/course_optuna", env)
    finally:
        for server in servers:
            server.stop()


def student_env(course: Course, project: Path, user: str, password: str | None = None,
                **extra: str) -> dict[str, str]:
    return project_env(project, fresh_prefect=True, api_url=course.prefect_api,
                       MLFLOW_TRACKING_URI=course.mlflow_url, MLFLOW_TRACKING_USERNAME=user,
                       MLFLOW_TRACKING_PASSWORD=password or course.passwords[user],
                       RNNFLOW_DATA_DIR=str(project / "data"), **extra)


def rnnflow_run(course: Course, project: Path, user: str, *sets: str,
                password: str | None = None, **extra: str) -> subprocess.CompletedProcess:
    args = [a for s in sets for a in ("--set", s)]
    return subprocess.run(
        [sys.executable, "-m", "rnnflow.cli", "run", str(TINY_GRID), *args], cwd=project,
        env=student_env(course, project, user, password, **extra), capture_output=True,
        text=True, timeout=900)


def teacher(course: Course, monkeypatch):
    """An MlflowClient of the server's admin (MLflow's client reads the credentials from the
    environment on every request)."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", TEACHER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", TEACHER[1])
    return MlflowClient(course.mlflow_url)


def prefect_post(course: Course, path: str, body: dict) -> list[dict]:
    request = urllib.request.Request(f"{course.prefect_api}/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def all_runs(client) -> list:
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


PREPROCESSING = ("download_dataset", "read_reviews", "tokenize_reviews", "build_embeddings",
                 "vectorize_tokens", "pad_sequences")


def test_the_page_runs_end_to_end_a_students_grid_on_dask(course, sample_cut, tmp_path,
                                                          monkeypatch):
    """The page's last block as Alice, narrowed to a 2-point grid on the small sample, on the
    Dask runner's own LocalCluster (the suite's one grid on Dask end to end; without
    PostgreSQL it skips, as the module does): every point reaches the PostgreSQL-backed server,
    with its artifacts served by it, and the flow run is the PostgreSQL-backed Prefect
    server's. Preprocessing ran once, in the flow, before the fan-out; each worker held
    TensorFlow to its one thread; the model a worker logged loads back from the server."""
    import mlflow
    import pandas as pd

    assert set(course.passwords) == {"alice", "bob", "carol"}
    narrowed = (f"{STUDENT_RUN} --set dataset.url={sample_cut} --set baselines=none "
                "--set 'grid={model.num_neurons: [2, 4]}' --runner dask")
    script = replaced(course.student_block, {
        "course-host:5000": course.mlflow_url.removeprefix("http://"),
        "course-host:4200/api": course.prefect_api.removeprefix("http://"),
        "the-password-from-passwords.csv": course.passwords["alice"], STUDENT_RUN: narrowed})
    env = {k: v for k, v in student_env(course, tmp_path, "alice").items()
           if not k.startswith(("MLFLOW_TRACKING", "PREFECT_API_URL"))}  # the block sets them
    env["PATH"] = course.env["PATH"]  # `rnnflow` from this .venv, as after `make install`
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    client = teacher(course, monkeypatch)
    experiment = client.get_experiment_by_name("alice/tiny-grid")
    assert experiment is not None and experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(children) == 2
    assert sorted(int(c.data.params["model.num_neurons"]) for c in children) == [2, 4]
    for child in children:
        run_id = child.info.run_id
        assert child.info.status == "FINISHED" and child.data.tags["dask_worker"]
        assert child.data.tags["tensorflow_threads"] == "1"
        assert {"val_accuracy", "test_accuracy", "test_auc", "train_seconds"} <= set(
            child.data.metrics)
        assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1]
        assert {"config.yaml", "plots", "checkpoint", "test_predictions.parquet",
                "examples.csv"} <= {a.path for a in client.list_artifacts(run_id)}
        png = client.download_artifacts(run_id, "plots/learning_curves.png", str(tmp_path))
        assert Path(png).read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "results.csv",
                                                  str(tmp_path)))
    assert sorted(table["model.num_neurons"]) == [2, 4]
    assert set(table.run_id) == {c.info.run_id for c in children}
    (version,) = client.search_model_versions("name = 'alice.tiny-grid'")
    assert version.run_id in {c.info.run_id for c in children}
    best = parent.data.tags["best_run_id"]
    assert best in set(table.run_id)
    # The teacher's credentials come from the env. The process's store is put back after: this
    # server stops with the module, and a later test's command in this process would find it.
    before = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", course.mlflow_url)  # set_tracking_uri sets it too
    mlflow.set_tracking_uri(course.mlflow_url)
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{best}/text_model")
    finally:
        mlflow.set_tracking_uri(before)
    assert len(model.predict(pd.DataFrame({"text": ["A fine film."]}))) == 1

    # The Prefect server kept its state in PostgreSQL: no SQLite file in its home.
    assert not list((course.root / "prefect-home").glob("*.db"))
    (flow_run,) = [r for r in prefect_post(course, "flow_runs/filter", {})
                   if r["name"] == "tiny-grid"]
    assert flow_run["state_type"] == "COMPLETED"
    task_runs = prefect_post(course, "task_runs/filter",
                             {"flow_runs": {"id": {"any_": [flow_run["id"]]}}})
    states = Counter((r["name"].rsplit("-", 1)[0], r["state_name"]) for r in task_runs)
    assert states[("train_point", "Completed")] == 2
    # Each stage built once, in the flow; the second point's and both workers' chains found
    # it Cached.
    for step in PREPROCESSING:
        assert states[(step, "Completed")] == 1 and states[(step, "Cached")] == 3, (step, states)


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return errors[0]


def test_a_wrong_password_and_another_users_experiment_stop_the_run_first(
        course, sample_cut, tmp_path, monkeypatch):
    client = teacher(course, monkeypatch)
    before = {r.info.run_id for r in all_runs(client)}

    done = rnnflow_run(course, tmp_path, "alice", f"dataset.url={sample_cut}", "grid={}",
                       "baselines=none", password="not-alices-password")
    line = _one_error_line(done)
    assert "refused the credentials of user 'alice'" in line and course.mlflow_url in line

    # Carol makes `bob/tiny-grid` with the plain MLflow client before Bob runs tiny-grid.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "carol")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", course.passwords["carol"])
    from mlflow.tracking import MlflowClient

    squatted = MlflowClient(course.mlflow_url).create_experiment("bob/tiny-grid")
    done = rnnflow_run(course, tmp_path, "bob", f"dataset.url={sample_cut}", "grid={}",
                       "baselines=none")
    line = _one_error_line(done)
    assert "experiment bob/tiny-grid" in line and "may only read it" in line

    client = teacher(course, monkeypatch)
    assert client.search_runs([squatted]) == []
    assert {r.info.run_id for r in all_runs(client)} == before  # no half-made run anywhere


def test_a_search_keeps_its_study_on_postgresql(course, sample_cut, tmp_path, monkeypatch):
    import optuna

    search = ("search={trials: 2, pruner: none, sampler: random, "
              f"space: {{model.num_neurons: [2, 4]}}, storage: '{course.optuna_url}'}}")
    done = rnnflow_run(course, tmp_path, "carol", f"dataset.url={sample_cut}", "grid={}",
                       "baselines=none", "registry.enabled=false", search)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = optuna.load_study(study_name="carol/tiny-grid", storage=course.optuna_url)
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(finished) == 2
    client = teacher(course, monkeypatch)
    experiment = client.get_experiment_by_name("carol/tiny-grid")
    trial_runs = {t.user_attrs["run_id"] for t in finished}
    runs = client.search_runs([experiment.experiment_id])
    assert trial_runs <= {r.info.run_id for r in runs if r.info.status == "FINISHED"}


def _wait_for(path: Path, proc: subprocess.Popen, out: Path, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name}:\n{out.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {path.name} in {seconds:.0f} s"
        time.sleep(0.1)


def test_a_run_survives_a_restart_of_the_server_and_of_the_database(course, sample_cut,
                                                                      tmp_path, monkeypatch):
    """Stopped after epoch 1, the MLflow server is down while the run logs epoch 2 and comes
    back; stopped after epoch 3, PostgreSQL restarts under the server. The run finishes, and
    every epoch is in MLflow once."""
    gate = tmp_path / "gate"
    gate.mkdir()
    out = tmp_path / "run.log"
    sets = [f"dataset.url={sample_cut}", "grid={}", "baselines=none", "train.epochs=5",
            "name=restarts", "registry.enabled=false"]
    with out.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rnnflow.cli", "run", str(TINY_GRID),
             *[a for s in sets for a in ("--set", s)]], cwd=tmp_path,
            env=student_env(course, tmp_path, "bob", RNNFLOW_FAULT="gate:after_epoch:1,"
                            "after_epoch:3", RNNFLOW_FAULT_GATE=str(gate)),
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(gate / "after_epoch:1.reached", proc, out)
        course.mlflow.stop()
        (gate / "after_epoch:1.go").write_text("")  # epoch 2 is logged to no server
        course.mlflow.start()
        course.mlflow.wait()
        _wait_for(gate / "after_epoch:3.reached", proc, out)
        subprocess.run([str(POSTGRES), "restart"], check=True, capture_output=True,
                       timeout=120)
        (gate / "after_epoch:3.go").write_text("")
        code = proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            stop_group(proc)
    assert code == 0, out.read_text()[-4000:]

    client = teacher(course, monkeypatch)
    experiment = client.get_experiment_by_name("bob/restarts")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [
            1, 2, 3, 4, 5], key
