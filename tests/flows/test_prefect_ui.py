"""What the Prefect UI shows of a run, with the flow in this process: the flow run named after
its params file, a link to every MLflow run, and the champion's promotion as an event."""

from __future__ import annotations

import re
import time

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.events.filters import EventFilter, EventNameFilter

from flows.champion import PROMOTED
from flows.train_rnn import train_rnn
from tests.helpers import REPO

pytestmark = pytest.mark.slow


def _promotions(run_id: str, timeout: float = 60.0) -> list:
    """The `rnnflow.model.promoted` events of `run_id`, once the API has stored one (it
    writes events after it receives them)."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(EventFilter(event=EventNameFilter(name=[PROMOTED])), 50)
            found = [e for e in page.events if e.payload.get("run_id") == run_id]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


def test_a_flow_run_is_named_after_its_params_file_and_links_its_mlflow_runs(
        project, tiny_archive):
    state = train_rnn(str(REPO / "params" / "tiny-grid.yaml"),
                      {"dataset.url": str(tiny_archive), "grid": {"model.num_neurons": [2, 3]},
                       "train.epochs": 1}, return_state=True)
    rows = state.result()
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run_id).name == "tiny-grid"
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    # A link artifact is stored as markdown, `[text](url)`.
    links = [a for a in artifacts if a.data.startswith("[MLflow run ")]

    mlflow = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("tiny-grid")
    runs = mlflow.search_runs([experiment.experiment_id])
    assert len(runs) == 3  # the grid's parent and its two points
    # No server here: each link is the page `mlflow ui` serves, and says how to start it.
    assert sorted(re.search(r"\]\((.*)\)$", a.data).group(1) for a in links) == sorted(
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs/{r.info.run_id}"
        for r in runs)
    assert all("mlflow ui --backend-store-uri sqlite:///" in a.description for a in links)

    # The first winner of a store is promoted: an event with the decision's figures.
    winner = max(rows, key=lambda r: r["val_accuracy"])["run_id"]
    (event,) = _promotions(winner)
    assert event.resource.id == "mlflow.registered-model.tiny-grid"
    assert event.payload["model"] == "tiny-grid" and event.payload["version"] == "1"
    assert event.payload["promoted"] == "true"
    assert event.payload["decision_reason"] == "no champion yet"
    assert float(event.payload["challenger_test_accuracy"]) == pytest.approx(
        max(rows, key=lambda r: r["val_accuracy"])["test_accuracy"])
