"""A temporary SQLite tracking store for the tracking package's unit tests."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from rnnflow import tracking


@pytest.fixture
def store(project, monkeypatch) -> tracking.RunContext:
    """The context of runs logged to `project`'s mlflow.db, system metrics off (a thread per
    run that these tests do not look at)."""
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    return tracking.RunContext(tracking.use_experiment("unit"), tracking.tracking_uri())


@pytest.fixture
def finished_run(store) -> Callable[..., str]:
    """make(name, metrics=..., params=..., tags=..., predictions=...) -> the id of a FINISHED
    run logged through `tracking.start_run`."""

    def make(name: str = "run", *, metrics: dict[str, float] | None = None,
             params: dict[str, object] | None = None, tags: dict[str, str] | None = None,
             predictions: pd.DataFrame | None = None) -> str:
        with tracking.start_run(store, name) as run_id:
            if params:
                tracking.log_params(params, "params: {}\n")
            if tags:
                tracking.set_tags(tags)
            if metrics:
                tracking.log_metrics(metrics)
            if predictions is not None:
                tracking.log_frame(predictions, "test_predictions.parquet")
        return run_id

    return make
