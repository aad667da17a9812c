"""Finding runs on a SQLite store: by id, experiment name, `latest` and `best`."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from rnnflow import tracking

TEXT = {"rnnflow_text_model": "text_model"}  # what a run that logged a text model carries


def test_latest_and_best_are_runs_with_a_text_model(store, finished_run):
    low = finished_run("low", metrics={"val_accuracy": 0.6}, tags=TEXT)
    high = finished_run("high", metrics={"val_accuracy": 0.8}, tags=TEXT)
    newest = finished_run("newest", metrics={"val_accuracy": 0.7}, tags=TEXT)
    finished_run("no model", metrics={"val_accuracy": 0.99})
    assert tracking.resolve_run("best") == high
    assert tracking.resolve_run("latest") == newest
    assert tracking.resolve_run(low) == low
    assert tracking.resolve_run("best", "unit") == high
    with pytest.raises(tracking.TrackingError, match="no such experiment"):
        tracking.resolve_run("best", "nope")
    with pytest.raises(tracking.TrackingError, match="no such MLflow run"):
        tracking.resolve_run("0" * 32)


def test_an_empty_store_says_how_to_get_a_run(store):
    with pytest.raises(tracking.TrackingError, match="train one first"):
        tracking.resolve_run("latest")


def test_runs_by_id_or_experiment_with_curves_and_predictions(store, finished_run):
    predictions = pd.DataFrame({"id": ["a", "b"], "label": [1, 0], "probability": [0.9, 0.4]})
    key = {tracking.TRAIN_KEY_TAG: "k"}
    first = finished_run("first", params={"model.num_neurons": 2}, tags=key,
                         predictions=predictions)
    second = finished_run("second", params={"model.num_neurons": 3}, tags=key)
    finished_run("a grid's parent")  # not a training run: no training key
    client = MlflowClient()
    for step, value in ((1, 0.7), (2, 0.5)):
        client.log_metric(first, "loss", value, step=step)

    records = tracking.load_runs(["unit"])
    assert [r.run_id for r in records] == [first, second]  # oldest first
    assert records[0].params["model.num_neurons"] == "2"
    assert records[0].history == {"loss": [0.7, 0.5]}
    pd.testing.assert_frame_equal(records[0].test_predictions, predictions)
    assert records[1].test_predictions is None
    assert [r.run_id for r in tracking.load_runs([second, first])] == [second, first]
    with pytest.raises(tracking.TrackingError, match="no run with this id"):
        tracking.load_runs(["neither"])
