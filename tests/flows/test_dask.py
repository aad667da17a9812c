"""A grid on Dask, with real processes on loopback: an `mlflow server` (SQLite, artifacts
served), a 2-worker LocalCluster joined by address, and the flow in this process."""

import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect import task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.train_rnn import train_rnn
from rnnflow.config import ConfigError
from tests.helpers import REPO

GRID = str(REPO / "params" / "tiny-grid.yaml")
PREPROCESSING = ("download_dataset", "read_reviews", "tokenize_reviews", "build_embeddings",
                 "vectorize_tokens", "pad_sequences")


def _tensorflow_threads() -> tuple[int, int] | None:
    """In a worker: TensorFlow's thread pools, if this worker trained a point."""
    if "tensorflow" not in sys.modules:
        return None
    threading = sys.modules["tensorflow"].config.threading
    return (threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads())


def test_task_runner_without_address_is_one_single_threaded_worker_per_core(monkeypatch):
    from flows.on_dask import task_runner

    monkeypatch.setattr("flows.on_dask.cores", lambda: 3)
    runner = task_runner(None)
    assert runner.address is None
    assert runner.cluster_kwargs["n_workers"] == 3
    assert runner.cluster_kwargs["threads_per_worker"] == 1
    assert task_runner("tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"


def test_the_local_cluster_listens_on_loopback_only():
    """The runner's LocalCluster (scheduler, nannies, workers, dashboard) accepts connections
    on 127.0.0.1 only: a scheduler runs whatever it is sent."""
    import psutil
    from distributed import LocalCluster

    from flows.on_dask import task_runner

    kwargs = {**task_runner(None).cluster_kwargs, "n_workers": 1}
    with LocalCluster(**kwargs) as cluster:
        cluster.wait_for_workers(1, timeout=120)
        me = psutil.Process()
        listening = {c.laddr.ip for p in [me, *me.children(recursive=True)]
                     for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert listening == {"127.0.0.1"}


@task
def _point(i: int, done: str) -> int:
    """Point 0 fails at once; the others wait until it has, then leave a mark."""
    failed = Path(done) / "0-failed"
    if i == 0:
        failed.write_text("")
        raise ValueError("point 0 failed")
    deadline = time.monotonic() + 120
    while not failed.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("point 0 never failed")
        time.sleep(0.05)
    (Path(done) / str(i)).write_text("finished")
    return i


# The tasks run outside a flow here, so Prefect's API log handler has no flow run to log to.
@pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted to send logs")
def test_a_failed_point_waits_for_the_others_then_raises(tmp_path, monkeypatch):
    from prefect_dask import DaskTaskRunner

    from flows.on_dask import run_on_dask

    # Threads, not processes: what is tested is the waiting, and threads start in no time.
    # Over TCP on loopback: a threads cluster's own defaults listen on every interface.
    monkeypatch.setattr("flows.on_dask.task_runner", lambda address, cluster=None: DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": False,
                        "protocol": "tcp://", "host": "127.0.0.1",
                        "dashboard_address": "127.0.0.1:0"}))
    with pytest.raises(ValueError, match="point 0 failed"):
        run_on_dask(_point, [{"i": i, "done": str(tmp_path)} for i in range(3)], None)
    # Both finished after point 0 had failed, and before the error reached the caller.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0-failed", "1", "2"]


def test_no_scheduler_at_the_address_is_a_clear_error(monkeypatch):
    from flows.on_dask import run_on_dask

    monkeypatch.setattr("flows.on_dask._CONNECT_TIMEOUT", "2s")
    with pytest.raises(ConfigError, match="tcp://127.0.0.1:9: no Dask scheduler answers"):
        run_on_dask(_point, [{"i": 1, "done": "/nonexistent"}], "tcp://127.0.0.1:9")


@pytest.mark.slow
def test_grid_on_dask_logs_every_point_to_the_tracking_server(project, sample_cut,
                                                              mlflow_server, monkeypatch):
    from distributed import Client, LocalCluster

    url, _ = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    grid = {"model.num_neurons": [2, 4]}  # one point per worker
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        # Its own name: Prefect artifacts of other tests' tiny-grid runs share this session.
        state = train_rnn(GRID, {"name": "dask-grid", "dataset.url": str(sample_cut),
                                 "grid": grid, "baselines": "none",
                                 "runner": "dask", "dask_address": cluster.scheduler_address},
                          return_state=True)
        rows = state.result()
        with Client(cluster.scheduler_address, set_as_default=False) as client:
            threads = client.run(_tensorflow_threads)
    assert len(rows) == 2

    # Preprocessing ran once, here, before the fan-out: the second point and both workers'
    # chains found every stage Cached.
    with get_client(sync_client=True) as prefect:
        task_runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    counts = Counter((r.name.rsplit("-", 1)[0], r.state.name) for r in task_runs)
    for step in PREPROCESSING:
        assert counts[(step, "Completed")] == 1 and counts[(step, "Cached")] == 3, step
    assert counts[("train_point", "Completed")] == 2
    assert counts[("train_model", "Completed")] == 2
    # Every worker that trained held TensorFlow to its one thread.
    trained = [t for t in threads.values() if t is not None]
    assert trained and all(t == (1, 1) for t in trained), threads

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("dask-grid")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # served by the server
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(children) == 2
    assert sorted(int(c.data.params["model.num_neurons"]) for c in children) == [2, 4]
    for child in children:
        run_id = child.info.run_id
        assert child.info.status == "FINISHED"
        assert {"val_accuracy", "test_accuracy", "test_auc", "train_seconds"} <= set(
            child.data.metrics)
        assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1]
        assert {"config.yaml", "plots", "checkpoint", "test_predictions.parquet",
                "examples.csv"} <= {a.path for a in client.list_artifacts(run_id)}
        png = client.download_artifacts(run_id, "plots/learning_curves.png", str(project))
        assert Path(png).read_bytes()[:4] == b"\x89PNG"

    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "results.csv",
                                                  str(project)))
    assert sorted(table["model.num_neurons"]) == [2, 4]
    assert set(table.run_id) == {c.info.run_id for c in children}
    assert sorted(r["run_id"] for r in rows) == sorted(table.run_id)
    best = parent.data.tags["best_run_id"]
    assert best in set(table.run_id)
    # The model a worker logged loads back from the server, raw text in.
    import mlflow

    mlflow.set_tracking_uri(url)
    model = mlflow.pyfunc.load_model(f"runs:/{best}/text_model")
    assert len(model.predict(pd.DataFrame({"text": ["A fine film."]}))) == 1
