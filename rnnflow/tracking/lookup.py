"""Finding runs: by id, experiment name, `latest` or `best`, with what comparing them needs."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from rnnflow.tracking.baselines import BASELINE, BASELINE_TAG, KIND_TAG, REVIEWS_TAG
from rnnflow.tracking.models import TEXT_MODEL, TEXT_MODEL_TAG
from rnnflow.tracking.resume import TRAIN_KEY_TAG
from rnnflow.tracking.runs import load_test_predictions
from rnnflow.tracking.store import TrackingError, experiment_name, tracking_uri

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
    # The process's store, not only this client's: each record's test predictions are
    # downloaded through it (load_test_predictions), and must come from the same store.
    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    runs = []
    for ref in refs:
        try:
            runs.append(client.get_run(ref))
            continue
        except Exception:  # not a run id: an experiment name?
            pass
        experiment = client.get_experiment_by_name(experiment_name(ref))
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


def load_baseline_runs(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """For each record of a trained run, by run id: the newest finished run of each baseline
    in its experiment fitted on the same reviews (tag `stage.reviews`), what its result is
    framed against; empty for a baseline run itself and for runs logged before baseline runs
    carried that tag."""
    client = MlflowClient(tracking_uri())
    found: dict[tuple[str, str], list[RunRecord]] = {}
    out: dict[str, list[RunRecord]] = {}
    for record in records:
        reviews = record.tags.get(REVIEWS_TAG)
        if not reviews or record.tags.get(KIND_TAG) == BASELINE:
            out[record.run_id] = []
            continue
        experiment_id = client.get_run(record.run_id).info.experiment_id
        if (experiment_id, reviews) not in found:
            runs = client.search_runs(
                [experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{BASELINE}' and "
                f"tags.`{REVIEWS_TAG}` = '{reviews}' and attributes.status = 'FINISHED'",
                order_by=["attributes.start_time DESC"])
            newest = {}
            for run in runs:
                newest.setdefault(run.data.tags.get(BASELINE_TAG), run)
            found[(experiment_id, reviews)] = [_record(client, r) for r in newest.values()]
        out[record.run_id] = found[(experiment_id, reviews)]
    return out


def _record(client: MlflowClient, run) -> RunRecord:
    run_id = run.info.run_id
    # An early-stopped run logs its model's own scores one step after its last epoch
    # (`stopped_epoch`): not a point of its curves.
    last = run.data.metrics.get("stopped_epoch", float("inf"))
    history = {}
    for key in CURVES:
        points = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        if points := [(step, v) for step, v in points if step <= last]:
            history[key] = [v for _, v in points]
    try:
        predictions = load_test_predictions(run_id)
    except Exception:  # a grid's parent or a failed run has none
        predictions = None
    return RunRecord(run_id, run.info.run_name or run_id, dict(run.data.params),
                     dict(run.data.metrics), dict(run.data.tags), history, predictions)


def resolve_run(which: str, experiment: str | None = None) -> str:
    """A run id from `which`: a run id, `latest` (newest run with a text model) or `best`
    (highest val_accuracy), within one experiment or all of them."""
    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    if which not in ("latest", "best"):
        try:
            return client.get_run(which).info.run_id
        except Exception as exc:
            raise TrackingError(f"--run {which}: no such MLflow run in {tracking_uri()}") from exc
    if experiment is not None:
        found = client.get_experiment_by_name(experiment_name(experiment))
        if found is None:
            raise TrackingError(f"--experiment {experiment}: no such experiment")
        ids = [found.experiment_id]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    order = "attributes.start_time DESC" if which == "latest" else "metrics.val_accuracy DESC"
    runs = client.search_runs(ids, filter_string=f"tags.{TEXT_MODEL_TAG} = '{TEXT_MODEL}' and "
                              "attributes.status = 'FINISHED'", order_by=[order], max_results=1)
    if not runs:
        raise TrackingError(f"no finished rnnflow run with a model in {tracking_uri()}"
                            + (f" (experiment {experiment})" if experiment else "")
                            + "; train one first: rnnflow run params/quick.yaml")
    return runs[0].info.run_id
