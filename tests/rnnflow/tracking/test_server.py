"""Concurrent runs against one SQLite-backed `mlflow server`, as from Dask workers; `rnnflow
predict` of a model whose artifacts the server serves."""

import multiprocessing
import os
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from rnnflow import tracking

POINTS, EPOCHS = 6, 30


def _log_point(uri: str, experiment_id: str, parent_id: str, i: int) -> None:
    """One worker's share of a grid: params, a metric series with a tag per epoch, a table."""
    ctx = tracking.RunContext(experiment_id, uri, tags={"point": str(i)}, parent_id=parent_id)
    with tracking.start_run(ctx, f"point-{i}"):
        tracking.log_params({f"section.key{k}": k * i for k in range(60)}, f"point: {i}\n")
        for epoch in range(1, EPOCHS + 1):
            tracking.log_epoch(epoch, {"loss": 1 / epoch, "accuracy": epoch / EPOCHS,
                                       "val_loss": 1 / epoch, "val_accuracy": 0.5})
            tracking.set_tags({tracking.EPOCHS_DONE_TAG: str(epoch)})
        tracking.log_frame(pd.DataFrame({"epoch": range(EPOCHS)}), "table.csv")


def _first_writes(uri: str, experiment_id: str, reviews: str, i: int) -> None:
    """A run's first writes in a new experiment, as a grid point on Dask makes them (the tags,
    every param, the reviews as inputs)."""
    ctx = tracking.RunContext(experiment_id, uri, tags={"point": str(i)})
    with tracking.start_run(ctx, f"point-{i}"):
        tracking.log_params({"model.num_neurons": i}, f"point: {i}\n")
        tracking.log_inputs({"reviews": "k"}, Path(reviews), "race")


def _worker(uri: str, experiments: list[str], reviews: str, parent: tuple[str, str], i: int,
            start, errors) -> None:
    """Worker `i` of POINTS processes: each round of first writes, then a grid point's run, each
    step begun by all at once (the barrier `start`)."""
    # A "database is locked" answer must fail the test, not be retried away by the client.
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        tracking.use_tracking_uri(uri)
        for experiment_id in experiments:
            start.wait(timeout=120)  # every process imported and connected: now all at once
            _first_writes(uri, experiment_id, reviews, i)
        start.wait(timeout=120)
        _log_point(uri, *parent, i)
    except Exception as exc:  # reported to the test, which names it
        errors.put(f"point {i}: {exc.__class__.__name__}: {exc}")
        raise


ROUNDS = 8  # experiments, each new: the first writes of its runs are the ones that race


@pytest.mark.slow
def test_concurrent_writes_all_reach_a_sqlite_backed_server(mlflow_server, tmp_path,
                                                            monkeypatch):
    """POINTS processes at once against one server, as the workers of a Dask grid (one set of
    processes for both races: each starts in about 3 s of a core, importing MLflow).

    First writes to a new experiment: every point of a grid logs the same reviews as its
    inputs; the first of them in an experiment makes the dataset records, and MLflow's store
    checks for them before it inserts them, so two runs at once both insert and one hits the
    unique key (the IntegrityError a Dask grid against a server once ended with).

    Then child runs of one parent, each logging params, 30 epochs of metrics with a tag per
    epoch, and a table: none may meet a locked SQLite database."""
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    url, server_log = mlflow_server
    client = MlflowClient(url)
    reviews = tmp_path / "reviews.parquet"
    pd.DataFrame({"id": [f"r{i}" for i in range(30)], "split": ["train", "val", "test"] * 10,
                  "label": [0, 1] * 15, "rating": [1, 8] * 15}).to_parquet(reviews)
    experiments = [client.create_experiment(f"first-writes-{i}") for i in range(ROUNDS)]
    experiment_id = client.create_experiment("concurrent-points")
    parent = client.create_run(experiment_id, run_name="grid")  # RUNNING, as during a grid

    ctx = multiprocessing.get_context("spawn")
    start, errors = ctx.Barrier(POINTS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, experiments, str(reviews),
                                               (experiment_id, parent.info.run_id), i,
                                               start, errors)) for i in range(POINTS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert not failures, failures
    assert [p.exitcode for p in procs] == [0] * POINTS

    for first in experiments:
        runs = client.search_runs([first])
        assert len(runs) == POINTS and all(r.info.status == "FINISHED" for r in runs)
        assert all(len(r.inputs.dataset_inputs) == 3 for r in runs)  # train, val, test

    runs = client.search_runs([experiment_id],
                              f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(runs) == POINTS
    for run in runs:
        assert run.info.status == "FINISHED"
        i = int(run.data.tags["point"])
        assert run.data.params["section.key59"] == str(59 * i) and len(run.data.params) == 60
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == \
            list(range(1, EPOCHS + 1))
        assert run.data.tags[tracking.EPOCHS_DONE_TAG] == str(EPOCHS)
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
            "config.yaml", "table.csv"}
    assert "database is locked" not in server_log.read_text()


@pytest.mark.slow
def test_predict_downloads_the_text_model_from_a_server_quietly(mlflow_server, tmp_path,
                                                                monkeypatch):
    """From a server with served artifacts the model cannot be read in place: `rnnflow
    predict` downloads it, and still prints nothing but the predictions and the `# run` line."""
    import subprocess
    import sys

    import mlflow
    import numpy as np

    from rnnflow import api
    from rnnflow.config import ModelConfig, PadConfig, TokenizeConfig
    from rnnflow.network import predict
    from rnnflow.network.model import build_model
    from tests.helpers import project_env

    url, _ = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    mlflow.set_tracking_uri(url)
    weights = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    model = build_model(ModelConfig(num_neurons=2), weights, maxlen=5)
    with mlflow.start_run(experiment_id=MlflowClient(url).create_experiment("served")) as run:
        text_model = predict.TextModel(model, ["good", "bad"], TokenizeConfig(),
                                       PadConfig(maxlen=5))
        tracking.log_text_model(predict.save_text_model(text_model, tmp_path), api.LOADER,
                                predict.OUTPUTS, code_paths=[])
    run_id = run.info.run_id
    assert tracking.local_model_dir(run_id) is None

    texts = ["good good bad", "nothing known"]
    result = subprocess.run(
        [sys.executable, "-m", "rnnflow.cli", "predict", "--run", run_id, *texts], cwd=tmp_path,
        env={**project_env(tmp_path), "MLFLOW_TRACKING_URI": url}, capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == f"# run {run_id}\n"
    expected = text_model.predict(texts)
    assert result.stdout.splitlines() == [
        f"{expected.probability[0]:.3f}\t{'positive' if expected.label[0] else 'negative'}\t"
        f"{texts[0]}", f"0.500\tunknown\t{texts[1]}"]
