"""What `mlflow ui` opens on: the saved comparison view, the best point's metrics on a parent
run, the link. (The page itself, rendered in Chromium: tests/flows/test_grid.py.)"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import mlflow
from mlflow.tracking import MlflowClient

from rnnflow import tracking
from rnnflow.tracking import view


def test_the_view_sorts_by_the_metric_and_shows_the_varied_params(store):
    varied = ["model.num_neurons", "pad.maxlen"]
    tracking.save_comparison_view(store.experiment_id, varied, "val_loss", higher_is_better=False)
    tags = MlflowClient().get_experiment(store.experiment_id).tags
    envelope = json.loads(tags[view.VIEW_TAG])
    assert isinstance(envelope["name"], str) and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    # Sorted by a metric, the UI lists a parent's children flat: no click to see them.
    assert state["orderByKey"] == "metrics.`val_loss`" and state["orderByAsc"] is True
    for column in ("metrics.`val_loss`", "metrics.`val_accuracy`", "metrics.`test_accuracy`",
                   *(f"params.`{k}`" for k in varied)):
        assert column in state["selectedColumns"], column
    (parallel,) = [c for c in state["compareRunCharts"] if c["type"] == "PARALLEL"]
    assert parallel["selectedParams"] == varied and parallel["selectedMetrics"][0] == "val_loss"
    lines = {m for c in state["compareRunCharts"] if c["type"] == "LINE"
             for m in c["selectedMetricKeys"]}
    assert {"accuracy", "val_accuracy", "loss", "val_loss"} <= lines
    sections = {s["uuid"]: s for s in state["compareRunSections"]}
    assert all(c["metricSectionId"] in sections for c in state["compareRunCharts"])
    assert [s["display"] for s in state["compareRunSections"]
            if s["name"] == "System metrics"] == [False]
    assert len({c["uuid"] for c in state["compareRunCharts"]}) == len(state["compareRunCharts"])

    tracking.save_comparison_view(store.experiment_id, [])  # a single point: nothing to vary
    tags = MlflowClient().get_experiment(store.experiment_id).tags
    state = json.loads(json.loads(tags[view.VIEW_TAG])["state"])
    assert state["orderByKey"] == "metrics.`val_accuracy`" and state["orderByAsc"] is False
    assert "PARALLEL" not in {c["type"] for c in state["compareRunCharts"]}


def test_the_link_opens_the_view_in_the_model_training_pages(project):
    local = f"sqlite:///{project / 'mlflow.db'}"
    command = tracking.comparison_command("7", local)
    start, _, url = command.partition("  # then open ")
    assert start == "mlflow ui"  # ./mlflow.db is what a bare `mlflow ui` opens
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == tracking.MLFLOW_UI
    route, _, query = parts.fragment.partition("?")
    assert route == "/experiments/7/runs"
    assert parse_qs(query) == {"viewStateShareKey": [view.VIEW_ID],
                               "workflowType": ["machine_learning"]}

    elsewhere = "sqlite:////data/runs/mlflow.db"
    assert tracking.comparison_command("7", elsewhere).startswith(
        f"mlflow ui --backend-store-uri {elsewhere}  # then open http://127.0.0.1:5000/")
    served = tracking.comparison_command("7", "http://tracking.example:5000/")
    assert served.startswith("open http://tracking.example:5000/#/experiments/7/runs?")


def test_link_for_names_an_experiment_of_the_store_or_none(store):
    assert store.experiment_id in tracking.link_for("unit")
    assert tracking.link_for("no-such-experiment") is None


def test_the_parent_gets_the_best_runs_metrics_and_curves(store):
    client = MlflowClient()
    with tracking.start_run(store, "best point") as best_id:
        for epoch, (acc, loss) in enumerate([(0.5, 0.7), (0.75, 0.5)], start=1):
            tracking.log_epoch(epoch, {"accuracy": acc, "loss": loss, "val_accuracy": acc - 0.1,
                                       "val_loss": loss + 0.1})
        tracking.log_metrics({"test_accuracy": 0.625, "val_f1": 0.6})
        mlflow.log_metric("system/cpu_utilization_percentage", 12.0)
    with tracking.group_run(store, "grid") as parent_id:
        tracking.log_best_on_parent(parent_id, best_id)
    parent, best = client.get_run(parent_id), client.get_run(best_id)
    own = {k: v for k, v in best.data.metrics.items() if not k.startswith("system/")}
    assert parent.data.metrics == own
    for key in view.CURVES:
        assert [(m.step, m.value) for m in client.get_metric_history(parent_id, key)] == [
            (m.step, m.value) for m in client.get_metric_history(best_id, key)], key
    assert parent.data.tags["best_run_id"] == best_id
    assert parent.data.tags["best_run_name"] == "best point"
