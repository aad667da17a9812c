"""Points as SLURM batch jobs: `dask_cluster: {class: dask_jobqueue.SLURMCluster}` against the
one-node cluster of scripts/slurm-local, logged to an `mlflow server` on loopback, the flow in
this process. Skipped, with the reason, where no such cluster is up (CI starts one). What it
proves end to end: a search's trials train as SLURM jobs, two at a time, through the server,
and match a local rerun metric for metric; a job cancelled with `scancel` mid-training is
replaced, and its point goes on from the cancelled run's checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from flows.train_rnn import train_rnn
from tests.helpers import REPO

GRID = str(REPO / "params" / "tiny-grid.yaml")
pytestmark = pytest.mark.slow
_DEFAULT_CONF = Path(os.environ.get("RNNFLOW_SLURM_DIR")
                     or Path(os.environ.get("TMPDIR", "/tmp")) / "rnnflow-slurm") / "slurm.conf"


def _slurm_up() -> str | None:
    """Why SLURM cannot be used here, or None when its node answers idle or mixed."""
    conf = os.environ.get("SLURM_CONF") or str(_DEFAULT_CONF)
    if not Path(conf).is_file():
        return f"no SLURM cluster configured ({conf} missing: run scripts/slurm-local start)"
    try:
        out = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%T"], capture_output=True,
                             text=True, timeout=30, env={**os.environ, "SLURM_CONF": conf})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    states = out.stdout.split()
    if out.returncode or not any(s.startswith(("idle", "mixed")) for s in states):
        return f"the SLURM node is not up ({out.stderr.strip() or states})"
    return None


@pytest.fixture(scope="module")
def slurm() -> str:
    """SLURM_CONF of a running cluster, set for this module's tests (sbatch, squeue, sacct)."""
    pytest.importorskip("dask_jobqueue")
    reason = _slurm_up()
    if reason:
        pytest.skip(reason)
    conf = os.environ.get("SLURM_CONF") or str(_DEFAULT_CONF)
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    yield conf
    if previous is None:
        os.environ.pop("SLURM_CONF", None)


def _cluster(project: Path, jobs: int | None = 2, **extra) -> dict:
    """A SLURMCluster of single-core workers on loopback, running this checkout."""
    return {"class": "dask_jobqueue.SLURMCluster",
            "options": {"cores": 1, "processes": 1, "memory": "3GB", "walltime": "00:20:00",
                        "interface": "lo", "python": sys.executable,
                        "job_name": "rnnflow-test", "log_directory": str(project / "slurm"),
                        "job_script_prologue": [f"export PYTHONPATH={REPO}",
                                                f"cd {project}"],
                        # The scheduler's dashboard, like its comms, on loopback only.
                        "scheduler_options": {"dashboard_address": "127.0.0.1:0"}},
            **({"jobs": jobs} if jobs else {}), **extra}


def _completed_jobs(ids: set[str], deadline_s: float = 120) -> dict[str, tuple[str, str]]:
    """{job id: (name, state)} from `sacct --completion` once every one of `ids` is there
    (a job is written to the completion log when it ends)."""
    deadline = time.monotonic() + deadline_s
    while True:
        out = subprocess.run(["sacct", "--completion", "--noheader", "--parsable2",
                              "--format=JobID,JobName,State"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        jobs = {line.split("|")[0]: tuple(line.split("|")[1:3])
                for line in out.splitlines() if line.count("|") >= 2}
        if ids <= set(jobs) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.5)


def test_a_search_trains_its_trials_as_slurm_jobs_two_at_a_time(slurm, project, tiny_archive,
                                                                 mlflow_server, monkeypatch):
    """3 trials on two single-core SLURM jobs: each trial a batch job's run, logged through
    the server, never more than two at once, the jobs ended with the flow's cluster; the same
    point trained locally matches its trial metric for metric. (A grid's fan-out to Dask workers is
    the search's, proven on a LocalCluster in test_course_server.py.)"""
    url, _ = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    base = {"dataset.url": str(tiny_archive), "name": "slurm-search", "grid": {},
            "registry.enabled": False, "baselines": "none"}
    train_rnn(GRID, {**base, "runner": "dask", "dask_cluster": _cluster(project, jobs=2),
                     "search": {"trials": 3, "sampler": "random", "pruner": "none",
                                "space": {"model.num_neurons": [2, 3, 4]}}})
    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("slurm-search")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # served by the server
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    jobs = set()
    for run in trials:
        assert {"val_accuracy", "test_accuracy", "test_auc"} <= set(run.data.metrics)
        assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0
        assert run.data.tags["dask_worker"].startswith("tcp://127.0.0.1:")  # loopback only
        scheduler, _, job = run.data.tags["batch_job"].partition(":")
        assert scheduler == "slurm" and job.isdigit()
        jobs.add(job)
        # The jobs logged their artifacts through the server.
        assert {"config.yaml", "test_predictions.parquet"} <= {
            a.path for a in client.list_artifacts(run.info.run_id)}
    assert 1 <= len(jobs) <= 2  # two single-core jobs trained the three trials
    # Never more than two trials at once: at each trial's start, at most one other runs.
    spans = [(r.info.start_time, r.info.end_time) for r in trials]
    for start, _ in spans:
        assert sum(s <= start < e for s, e in spans) <= 2, spans
    # Each trial's job is in SLURM's record (one job may have trained several: a worker takes
    # the next trial when it is free), and the jobs ended with the flow's cluster.
    record = _completed_jobs(jobs)
    for job in jobs:
        assert job in record, record
        assert record[job][0] == "rnnflow-test"
    running = subprocess.run(["squeue", "--noheader", "--format=%i", "--name=rnnflow-test"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    assert not set(running.split()) & jobs

    # The same seed on the local runner, from the same cached stages, trains the same model
    # (one point suffices). `fresh`: the local run must train, not reuse the job's run.
    on_slurm = {int(r.data.params["model.num_neurons"]): r for r in trials}
    on_slurm = {n: on_slurm[n] for n in sorted(on_slurm)[:1]}
    train_rnn(GRID, {**base, "grid": {"model.num_neurons": sorted(on_slurm)}}, fresh=True)
    local = {int(r.data.params["model.num_neurons"]): r
             for r in client.search_runs([experiment.experiment_id])
             if "mlflow.parentRunId" in r.data.tags and "batch_job" not in r.data.tags}
    assert sorted(local) == sorted(on_slurm)
    for n, run in on_slurm.items():
        for key in ("loss", "val_loss", "test_loss", "test_accuracy", "test_auc"):
            assert local[n].data.metrics[key] == run.data.metrics[key], (n, key)


def test_a_cancelled_job_is_continued_from_its_checkpoint(slurm, project, tiny_archive,
                                                          mlflow_server, monkeypatch):
    """`scancel` of the job training a point, after its first epoch: the cluster (`jobs: 1`)
    submits another job, the point is retried there and goes on from the cancelled run's
    checkpoint; a later run reuses the result. One KILLED run (epoch 1) and one FINISHED run
    (epochs 2-3, continuing it) are all MLflow holds."""
    import threading

    url, _ = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    # The job's worker holds after its first epoch is saved and logged, until it is cancelled:
    # the cancel lands mid-training, not before or after it.
    monkeypatch.setenv("RNNFLOW_FAULT", "hold:after_epoch:1")
    overrides = {"dataset.url": str(tiny_archive), "name": "slurm-cancel", "grid": {},
                 "train.epochs": 3, "registry.enabled": False, "baselines": "none"}
    on_slurm = {"runner": "dask", "dask_cluster": _cluster(project, jobs=1)}
    outcome: dict = {}

    def flow():
        try:
            outcome["rows"] = train_rnn(GRID, {**overrides, **on_slurm})
        except BaseException as exc:  # noqa: BLE001 - the test reports how the flow ended
            outcome["error"] = exc

    thread = threading.Thread(target=flow, daemon=True)
    thread.start()
    client = MlflowClient(url)
    deadline = time.monotonic() + 300
    while True:  # wait for the condition: a run that has logged epoch 1 and holds
        experiment = client.get_experiment_by_name("slurm-cancel")
        held = [r for r in (client.search_runs([experiment.experiment_id]) if experiment else [])
                if r.data.tags.get("rnnflow_epochs_done") == "1"]
        if held:
            break
        assert thread.is_alive() and time.monotonic() < deadline, outcome
        time.sleep(0.5)
    (cancelled,) = held
    job = cancelled.data.tags["batch_job"].removeprefix("slurm:")
    subprocess.run(["scancel", job], check=True, timeout=30)
    thread.join(timeout=600)
    assert not thread.is_alive(), "the flow did not end after the job was cancelled"
    assert "error" not in outcome, outcome
    (row,) = outcome["rows"]

    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {cancelled.info.run_id, row["run_id"]}
    old, new = runs[cancelled.info.run_id], runs[row["run_id"]]
    assert old.info.status == "KILLED" and old.data.tags["rnnflow_epochs_done"] == "1"
    assert new.info.status == "FINISHED" and new.data.tags["rnnflow_epochs_done"] == "3"
    assert new.data.tags["continued_from"] == old.info.run_id
    assert new.data.tags["batch_job"] != old.data.tags["batch_job"]  # another job trained it
    # Each epoch once: epoch 1 in the cancelled run, epochs 2 and 3 in the one that went on.
    assert [m.step for m in client.get_metric_history(old.info.run_id, "loss")] == [1]
    assert [m.step for m in client.get_metric_history(new.info.run_id, "loss")] == [2, 3]
    assert job in _completed_jobs({job})

    # The next run (here, on the local runner) reuses it and logs nothing new.
    monkeypatch.delenv("RNNFLOW_FAULT")
    (again,) = train_rnn(GRID, overrides)
    assert again["reused"] and again["run_id"] == new.info.run_id
    assert len(client.search_runs([experiment.experiment_id])) == 2
