"""What `mlflow ui` shows of an experiment: a saved view of the comparison, the best point's
metrics on a grid's or search's parent run, and the link that opens the view.

What MLflow 3's UI (3.17, read from its source and checked in headless Chromium) lets a
tracking store steer, and what not:
- The GenAI or model-training view is the browser's choice: the `workflowType` URL parameter,
  else the browser's local storage, else GenAI. The experiment tag `mlflow.experimentKind` is not
  read while the UI shows its GenAI / Model training switch. Only the link can choose.
- A saved view is an experiment tag `mlflow.sharedViewState.<id>`; the runs page lists it under
  its name and opens it with `?viewStateShareKey=<id>`. It holds the sort, the columns and the
  charts, but never which parent rows are expanded. Sorted by a metric, though, the runs table
  lists every run flat instead of nesting children under their parent, so a grid's points show
  without a click.
- A bare page shows a grid's parent run collapsed, with the columns of the parent's own
  metrics: so the parent carries the best point's metrics.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from rnnflow.tracking.store import experiment_name, tracking_uri

# Where `mlflow ui` serves a local store (its default address).
MLFLOW_UI = "http://127.0.0.1:5000"
VIEW_ID = "rnnflow"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_ID}"
# The learning curves: copied to a parent run with their epochs, so its line charts are the
# best point's.
CURVES = ("accuracy", "loss", "val_accuracy", "val_loss")
_SECTION, _MODEL, _SYSTEM = "rnnflow-comparison", "rnnflow-model-metrics", "rnnflow-system"


def _column(kind: str, key: str) -> str:
    """A runs-table column as the UI names it (its canonical sort key)."""
    return f"{kind}.`{key}`"


def view_state(varied: list[str], metric: str = "val_accuracy",
               higher_is_better: bool = True) -> dict:
    """The saved view: every run sorted by `metric` (best first), the accuracies and the varied
    params as columns; charts of the varied params against `metric` (parallel coordinates),
    val/test accuracy per run, and the learning curves, above the UI's own charts of every
    other metric; system metrics folded away."""
    shown = dict.fromkeys([metric, "val_accuracy", "test_accuracy", "val_loss"])
    charts: list[dict] = []
    if varied:  # nothing to draw against for a single point
        charts.append({"type": "PARALLEL", "selectedParams": list(varied),
                       "selectedMetrics": list(dict.fromkeys([metric, "test_accuracy"])),
                       "showAllRuns": True, "displayName": f"{', '.join(varied)} vs {metric}"})
    charts += [{"type": "BAR", "metricKey": key} for key in ("val_accuracy", "test_accuracy")]
    charts += [{"type": "LINE", "metricKey": first, "selectedMetricKeys": [first, second],
                "xAxisKey": "step", "useGlobalXaxisKey": False, "displayName": title}
               for first, second, title in (("accuracy", "val_accuracy", "accuracy by epoch"),
                                            ("loss", "val_loss", "loss by epoch"))]
    for i, chart in enumerate(charts):
        chart.update(uuid=f"rnnflow-{i}", metricSectionId=_SECTION, deleted=False,
                     isGenerated=False, runsCountToCompare=100)
    return {
        "orderByKey": _column("metrics", metric), "orderByAsc": not higher_is_better,
        "selectedColumns": [_column("metrics", k) for k in shown]
        + [_column("params", k) for k in varied],
        # A chart plots the runs the table shows; a grid's every point, not its first ten.
        "runsHiddenMode": "SHOW_ALL",
        "compareRunSections": [
            {"uuid": _SECTION, "name": "rnnflow: the comparison", "display": True,
             "isReordered": True},
            {"uuid": _MODEL, "name": "Model metrics", "display": True, "isReordered": False},
            {"uuid": _SYSTEM, "name": "System metrics", "display": False,
             "isReordered": False}],
        "compareRunCharts": charts,
        "isAccordionReordered": True,  # the sections stay in the order above
        "hideEmptyCharts": True,
    }


def save_comparison_view(experiment_id: str, varied: list[str], metric: str = "val_accuracy",
                         higher_is_better: bool = True) -> None:
    """Save the comparison as the experiment's view `rnnflow` (replacing an earlier one: the
    latest params file's varied keys are the ones shown)."""
    envelope = {"name": f"rnnflow: runs by {metric}", "createdAt": int(time.time() * 1000),
                "state": json.dumps(view_state(varied, metric, higher_is_better))}
    MlflowClient().set_experiment_tag(experiment_id, VIEW_TAG, json.dumps(envelope))


def comparison_url(experiment_id: str, tracking_uri: str) -> str:
    """The experiment's runs page in the model-training view, opened on the saved view: on the
    tracking server, or where `mlflow ui` serves a local store."""
    server = tracking_uri if tracking_uri.startswith(("http://", "https://")) else MLFLOW_UI
    query = urlencode({"viewStateShareKey": VIEW_ID, "workflowType": "machine_learning"})
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def comparison_command(experiment_id: str, tracking_uri: str) -> str:
    """What to type to see the comparison: the link, after the `mlflow ui` that serves the
    store where no server does (a bare `mlflow ui` for ./mlflow.db, which it opens itself)."""
    url = comparison_url(experiment_id, tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {url}"
    here = tracking_uri in ("sqlite:///mlflow.db", f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    start = "mlflow ui" if here else f"mlflow ui --backend-store-uri {tracking_uri}"
    return f"{start}  # then open {url}"


def log_best_on_parent(parent_id: str, best_run_id: str) -> None:
    """Copy the best run's metrics to the parent run (the learning curves with their epochs,
    the rest as their last value; not the system metrics, which are the parent's own), and
    tag the best run's name, beside `best_run_id`."""
    client = MlflowClient()
    best = client.get_run(best_run_id)
    now = int(time.time() * 1000)
    metrics = []
    for key, value in best.data.metrics.items():
        if key.startswith("system/"):
            continue
        if key in CURVES:
            metrics += [Metric(key, m.value, m.timestamp, m.step)
                        for m in client.get_metric_history(best_run_id, key)]
        else:
            metrics.append(Metric(key, value, now, 0))
    tags = [RunTag("best_run_id", best_run_id),
            RunTag("best_run_name", best.info.run_name or best_run_id)]
    for start in range(0, len(metrics), 1000):  # log_batch takes up to 1000 metrics
        client.log_batch(parent_id, metrics=metrics[start:start + 1000],
                         tags=tags if start == 0 else [])
    if not metrics:
        client.log_batch(parent_id, tags=tags)


def link_for(name: str) -> str | None:
    """`comparison_command` for an experiment of the tracking store, by a params file's name
    (per user on a server with users: `experiment_name`); None if the store holds no such
    experiment."""
    uri = tracking_uri()
    experiment = MlflowClient(uri).get_experiment_by_name(experiment_name(name))
    return experiment and comparison_command(experiment.experiment_id, uri)
