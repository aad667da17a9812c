"""Grids, step caching and continued training, with the flow run in this process."""

from collections import Counter

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.train_rnn import train_rnn
from tests.helpers import REPO

GRID = str(REPO / "params" / "tiny-grid.yaml")
pytestmark = pytest.mark.slow


def _run(archive, **overrides):
    state = train_rnn(GRID, {"dataset.url": str(archive), **overrides}, return_state=True)
    rows = state.result()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    counts = Counter((r.name.rsplit("-", 1)[0], r.state.name) for r in runs)
    return rows, counts


def _client(project):
    return MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def test_grid_runs_four_children_and_preprocesses_once(project, tiny_archive):
    rows, counts = _run(tiny_archive)
    assert len(rows) == 4
    # Everything up to vectorize runs once for the 4 points, pad once per maxlen.
    for step in ("download_dataset", "read_reviews", "tokenize_reviews", "build_embeddings",
                 "vectorize_tokens"):
        assert counts[(step, "Completed")] == 1 and counts[(step, "Cached")] == 3, step
    assert counts[("pad_sequences", "Completed")] == 2
    assert counts[("pad_sequences", "Cached")] == 2
    assert counts[("train_model", "Completed")] == 4

    client = _client(project)
    exp = client.get_experiment_by_name("tiny-grid")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4
    assert len({frozenset(c.data.params) for c in children}) == 1  # same keys: comparable
    assert {(c.data.params["model.num_neurons"], c.data.params["pad.maxlen"]) for c in children} \
        == {("2", "20"), ("2", "40"), ("4", "20"), ("4", "40")}

    path = client.download_artifacts(parent.info.run_id, "results.csv", str(project))
    table = pd.read_csv(path)
    assert len(table) == 4 and {"model.num_neurons", "pad.maxlen", "val_accuracy",
                                "test_accuracy", "duration_seconds", "run_id"} <= set(table)
    best = table.run_id[table.val_accuracy.idxmax()]
    assert parent.data.tags["best_run_id"] == best
    assert client.get_run(best).data.tags["best"] == "true"

    # The same table and a summary of the best point are Prefect artifacts with keys.
    import json

    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    # This flow run's: other tests in this process log artifacts under the same keys.
    flow_run_id = parent.data.tags["prefect.flow_run_id"]
    with get_client(sync_client=True) as prefect:
        artifacts = {a.key: a for a in prefect.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["tiny-grid-results", "tiny-grid-summary"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))}
    assert artifacts["tiny-grid-results"].type == "table"
    rows = artifacts["tiny-grid-results"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert sorted(r["run_id"] for r in rows) == sorted(table.run_id)
    assert artifacts["tiny-grid-summary"].type == "markdown"
    assert best in artifacts["tiny-grid-summary"].data


def test_second_run_recomputes_nothing_before_training(project, tiny_archive):
    _run(tiny_archive, grid={"model.num_neurons": [2, 3]})
    rows, counts = _run(tiny_archive, grid={"model.num_neurons": [2, 3]})
    assert len(rows) == 2
    assert not [k for k, n in counts.items() if k[1] == "Completed" and k[0] not in (
        "train_model", "evaluate_model")]
    assert counts[("pad_sequences", "Cached")] == 2


def test_deleted_stage_files_are_recomputed(project, tiny_archive):
    import shutil

    _run(tiny_archive, grid={}, variants=[{}])
    shutil.rmtree(project / "data" / "tokens")
    _, counts = _run(tiny_archive, grid={}, variants=[{}])
    assert counts[("tokenize_reviews", "Completed")] == 1
    assert counts[("read_reviews", "Cached")] == 1


def test_more_epochs_continue_the_earlier_run(project, tiny_archive):
    (first,), _ = _run(tiny_archive, grid={})
    (second,), _ = _run(tiny_archive, grid={}, **{"train.epochs": 2})
    client = _client(project)
    run = client.get_run(second["run_id"])
    assert run.data.tags["continued_from"] == first["run_id"]
    assert [m.step for m in client.get_metric_history(second["run_id"], "loss")] == [2]
    assert run.data.tags["rnnflow_epochs_done"] == "2"
    (third,), _ = _run(tiny_archive, grid={}, **{"train.epochs": 3})
    assert client.get_run(third["run_id"]).data.tags["continued_from"] == second["run_id"]


def test_fresh_starts_from_scratch(project, tiny_archive):
    _run(tiny_archive, grid={})
    state = train_rnn(GRID, {"dataset.url": str(tiny_archive), "grid": {}, "train.epochs": 2},
                      fresh=True, return_state=True)
    (row,) = state.result()
    client = _client(project)
    assert "continued_from" not in client.get_run(row["run_id"]).data.tags
    assert [m.step for m in client.get_metric_history(row["run_id"], "loss")] == [1, 2]
