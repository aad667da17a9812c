"""Finding runs by id or experiment name, with what comparing them needs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from mlflow.tracking import MlflowClient

from rnnflow.tracking.resume import TRAIN_KEY_TAG
from rnnflow.tracking.runs import load_test_predictions
from rnnflow.tracking.store import TrackingError, tracking_uri

CURVES = ("loss", "val_loss", "accuracy", "val_accuracy")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    history: dict[str, list[float]]  # per-epoch series, epoch 1 first
    test_predictions: pd.DataFrame | None


def load_runs(refs: list[str]) -> list[RunRecord]:
    """Each ref is a run id, or an experiment name standing for its finished training runs
    (oldest first). A ref that is neither is a TrackingError."""
    client = MlflowClient(tracking_uri())
    runs = []
    for ref in refs:
        try:
            runs.append(client.get_run(ref))
            continue
        except Exception:  # not a run id: an experiment name?
            pass
        experiment = client.get_experiment_by_name(ref)
        if experiment is None:
            raise TrackingError(f"{ref}: no run with this id and no experiment with this name "
                                f"in {tracking_uri()}")
        found = client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.{TRAIN_KEY_TAG} != '' and "
            "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"])
        if not found:
            raise TrackingError(f"experiment {ref} holds no finished training run")
        runs += found
    return [_record(client, run) for run in runs]


def _record(client: MlflowClient, run) -> RunRecord:
    run_id = run.info.run_id
    history = {}
    for key in CURVES:
        points = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        if points:
            history[key] = [v for _, v in points]
    try:
        predictions = load_test_predictions(run_id)
    except Exception:  # a grid's parent or a failed run has none
        predictions = None
    return RunRecord(run_id, run.info.run_name or run_id, dict(run.data.params),
                     dict(run.data.metrics), dict(run.data.tags), history, predictions)
