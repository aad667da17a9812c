"""A 4-point grid with the flow run in this process, then the same grid again after one stage's
files were deleted. What it proves end to end, and nowhere else:
- a grid is a parent run with a child per point; its preprocessing runs once (padding once per
  maxlen), every other point finding the stages Cached in Prefect;
- the results table and the best point, on the parent run and as Prefect artifacts;
- what the Prefect UI shows: the flow run named after its params file, a link to every MLflow
  run, the first winner's promotion as an event, rnnflow's own log lines in the flow run's logs
  (a flow called as a function, as a deployment's process calls it: not through `rnnflow run`);
- what `mlflow ui` shows: the parent run holding the best point's metrics, and the comparison
  link, loaded in headless Chromium from a real `mlflow server`, showing every point's val and
  test accuracy;
- a stage whose files were deleted runs again, though Prefect had it cached.
A second run recomputing nothing is proven by tests/flows/test_train_rnn.py, reuse of finished
runs by test_repeats.py, continued training by test_processes.py, `--fresh` by
test_train_rnn.py (the details between: tests/flows/test_point_run.py)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.events.filters import EventFilter, EventNameFilter

from flows.champion import PROMOTED
from flows.train_rnn import train_rnn
from rnnflow import tracking
from tests.helpers import (
    TINY_GRID,
    chromium,
    flow_run_logs,
    free_port,
    stop_group,
    synthetic_reviews,
    wait_until_healthy,
    write_tar,
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class FlowRun:
    """What one in-process `train_rnn` left: its rows, its id, its task runs by (step, state)."""

    rows: list[dict[str, Any]]
    flow_run_id: str
    counts: Counter


def _run(archive: Path, **overrides: Any) -> FlowRun:
    state = train_rnn(str(TINY_GRID), {"dataset.url": str(archive), **overrides},
                      return_state=True)
    rows = state.result()
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id])))
    counts = Counter((r.name.rsplit("-", 1)[0], r.state.name) for r in runs)
    return FlowRun(rows, str(flow_run_id), counts)


@dataclass(frozen=True)
class Scenario:
    project: Path
    client: MlflowClient
    grid: FlowRun  # params/tiny-grid.yaml's 2 x 2 grid
    again: FlowRun  # the same grid, after data/tokens was deleted

    def runs(self, flow_run: FlowRun) -> list:
        """The MLflow runs that `flow_run` logged."""
        experiment = self.client.get_experiment_by_name("tiny-grid")
        return [r for r in self.client.search_runs([experiment.experiment_id])
                if r.data.tags.get("prefect.flow_run_id") == flow_run.flow_run_id]

    def parent(self):
        (parent,) = [r for r in self.runs(self.grid) if "mlflow.parentRunId" not in r.data.tags
                     and r.data.tags.get("rnnflow.kind") != "baseline"]
        return parent


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Iterator[Scenario]:
    project = tmp_path_factory.mktemp("grid")
    archive = write_tar(project / "tiny.tar.gz", synthetic_reviews(20))
    with pytest.MonkeyPatch.context() as mp:  # data/, mlflow.db and mlruns/ inside project
        mp.chdir(project)
        mp.delenv("RNNFLOW_DATA_DIR", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
        grid = _run(archive)
        shutil.rmtree(project / "data" / "tokens")
        # Every point finished before: reused, so this run only walks the chain's stages.
        again = _run(archive, **{"registry.enabled": False})
    yield Scenario(project, MlflowClient(f"sqlite:///{project / 'mlflow.db'}"), grid, again)


def test_grid_runs_four_children_and_preprocesses_once(scenario):
    rows, counts = scenario.grid.rows, scenario.grid.counts
    assert len(rows) == 4
    # Everything up to vectorize runs once for the 4 points, pad once per maxlen; the
    # baselines read the reviews first, once for the four points' one dataset.
    for step in ("download_dataset", "read_reviews"):
        assert counts[(step, "Completed")] == 1 and counts[(step, "Cached")] == 7, step
    for step in ("build_embeddings", "vectorize_tokens"):
        assert counts[(step, "Completed")] == 1 and counts[(step, "Cached")] == 3, step
    # The bag-of-words baseline tokenizes first, with the default settings the grid keeps:
    # the four points find its tokens.
    assert counts[("tokenize_reviews", "Completed")] == 1
    assert counts[("tokenize_reviews", "Cached")] == 4
    assert counts[("fit_baseline", "Completed")] == 2
    assert counts[("pad_sequences", "Completed")] == 2
    assert counts[("pad_sequences", "Cached")] == 2
    assert counts[("train_model", "Completed")] == 4

    parent = scenario.parent()
    children = [r for r in scenario.runs(scenario.grid)
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4
    assert len({frozenset(c.data.params) for c in children}) == 1  # same keys: comparable
    assert {(c.data.params["model.num_neurons"], c.data.params["pad.maxlen"]) for c in children} \
        == {("2", "20"), ("2", "40"), ("4", "20"), ("4", "40")}


def test_the_results_table_and_the_best_point_are_on_the_parent_and_in_prefect(scenario):
    client, parent = scenario.client, scenario.parent()
    path = client.download_artifacts(parent.info.run_id, "results.csv", str(scenario.project))
    table = pd.read_csv(path)
    assert len(table) == 4 and {"model.num_neurons", "pad.maxlen", "val_accuracy",
                                "test_accuracy", "duration_seconds", "run_id"} <= set(table)
    # Each point beside the baselines: its run's difference, and the word where it learned
    # nothing (read back from the run, whatever the tiny points scored).
    for row in table.itertuples(index=False):
        logged = client.get_run(row.run_id).data.metrics
        assert row.test_delta_vs_baseline == pytest.approx(logged["test_delta_vs_baseline"])
        assert (row.warning if isinstance(row.warning, str) else "") == (
            "learned nothing" if logged["learned_nothing"] else "")
    best = table.run_id[table.val_accuracy.idxmax()]
    assert parent.data.tags["best_run_id"] == best
    assert client.get_run(best).data.tags["best"] == "true"

    # The same table and a summary of the best point are Prefect artifacts with keys; this
    # flow run's: other tests in this process log artifacts under the same keys.
    with get_client(sync_client=True) as prefect:
        artifacts = {a.key: a for a in prefect.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["tiny-grid-results", "tiny-grid-summary"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[scenario.grid.flow_run_id])))}
    assert artifacts["tiny-grid-results"].type == "table"
    rows = artifacts["tiny-grid-results"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert sorted(r["run_id"] for r in rows) == sorted(table.run_id)
    assert artifacts["tiny-grid-summary"].type == "markdown"
    assert best in artifacts["tiny-grid-summary"].data
    # the winning run beside the baselines, in the end-of-run line's form
    (winner,) = [r for r in scenario.grid.rows if r["run_id"] == best]
    assert (f"- **beside the baselines**: test accuracy {winner['test_accuracy']:.3f}; "
            f"{winner['vs_baselines']}") in artifacts["tiny-grid-summary"].data.splitlines()
    assert " points [" in winner["vs_baselines"]


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


def test_the_flow_run_is_named_after_its_params_file_and_links_its_mlflow_runs(scenario):
    flow_run_id = scenario.grid.flow_run_id
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run_id).name == "tiny-grid"
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    # A link artifact is stored as markdown, `[text](url)`.
    links = [a for a in artifacts if a.data.startswith("[MLflow run ")]
    experiment = scenario.client.get_experiment_by_name("tiny-grid")
    runs = scenario.runs(scenario.grid)
    assert len(runs) == 7  # the grid's parent, its four points and the two baselines
    # No server here: each link is the page `mlflow ui` serves, and says how to start it.
    assert sorted(re.search(r"\]\((.*)\)$", a.data).group(1) for a in links) == sorted(
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs/{r.info.run_id}"
        for r in runs)
    assert all("mlflow ui --backend-store-uri sqlite:///" in a.description for a in links)


def test_the_first_winner_is_promoted_with_an_event(scenario):
    winner = scenario.parent().data.tags["best_run_id"]
    (row,) = [r for r in scenario.grid.rows if r["run_id"] == winner]
    (event,) = _promotions(winner)
    assert event.resource.id == "mlflow.registered-model.tiny-grid"
    assert event.payload["model"] == "tiny-grid" and event.payload["version"] == "1"
    assert event.payload["promoted"] == "true"
    assert event.payload["decision_reason"] == "no champion yet"
    assert float(event.payload["challenger_test_accuracy"]) == pytest.approx(
        row["test_accuracy"])


def test_deleted_stage_files_are_recomputed(scenario):
    counts = scenario.again.counts
    # Prefect had tokenize cached; its files were gone, so it ran again, once: the other
    # points found them. The stages before and after it were still there.
    assert counts[("tokenize_reviews", "Completed")] == 1
    assert counts[("tokenize_reviews", "Cached")] == 3
    # (read by the baselines first, then by each point)
    assert counts[("read_reviews", "Cached")] == 8 and counts[("read_reviews", "Completed")] == 0
    assert counts[("build_embeddings", "Cached")] == 4
    assert (scenario.project / "data" / "tokens").is_dir()
    # The points themselves were trained before: reused, not trained again.
    assert counts[("train_model", "Completed")] == 0
    assert all(r["reused"] for r in scenario.again.rows)


def test_the_parent_run_holds_the_best_points_metrics(scenario):
    parent = scenario.parent()
    best = scenario.client.get_run(parent.data.tags["best_run_id"])
    assert parent.data.tags["best_run_name"] == best.info.run_name
    for key in ("val_accuracy", "test_accuracy", "val_loss", "accuracy", "loss"):
        assert parent.data.metrics[key] == best.data.metrics[key], key


def test_rnnflow_log_lines_are_the_flow_runs_logs(scenario):
    logs = flow_run_logs(scenario.grid.flow_run_id,
                         lambda logs: any(log.name.startswith("rnnflow.") for log in logs))
    ours = [log for log in logs if log.name.startswith("rnnflow.")]
    # Each point's closing line, with its accuracies, from the point's own run.
    for run in scenario.runs(scenario.grid):
        if "mlflow.parentRunId" in run.data.tags:
            assert any(run.info.run_id in log.message and "test_accuracy" in log.message
                       for log in ours), run.info.run_id


def _js_number(value: float) -> str:
    """A number as the UI's JavaScript prints it: the shortest repr, as Python's, but an
    integral value without its `.0`."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def test_the_comparison_link_shows_every_points_accuracies_in_the_browser(scenario,
                                                                           tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (.ci/run installs it): mlflow ui is not "
                    "opened in a real browser")
    experiment = scenario.client.get_experiment_by_name("tiny-grid")
    port = free_port()
    log = tmp_path / "mlflow-server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
             f"sqlite:///{scenario.project / 'mlflow.db'}", "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1"], cwd=scenario.project, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/health", server, log, 120)
        # The link `rnnflow run` prints, on this server.
        url = tracking.comparison_command(experiment.experiment_id,
                                          f"http://127.0.0.1:{port}").removeprefix("open ")
        # The budget is virtual time: the page's timers run ahead, its requests are awaited.
        dom = chromium(tmp_path, "--window-size=1600,1000", "--virtual-time-budget=30000",
                       "--dump-dom", url)
    finally:
        stop_group(server)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = re.sub(r"<[^>]+>", " ", dom.stdout)  # the page's text, cell by cell
    children = [r for r in scenario.runs(scenario.grid) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4
    for run in children:  # every point, without a click: not collapsed under the parent
        assert run.info.run_name in text, run.info.run_name
        for key in ("val_accuracy", "test_accuracy"):
            value = run.data.metrics[key]
            assert not math.isnan(value)
            assert re.search(rf"(?<![\d.]){re.escape(_js_number(value))}(?!\d)", text), (
                key, value, run.info.run_name)


def test_the_baselines_are_fitted_once_and_their_runs_reused(scenario):
    """The grid's one dataset gets each baseline once, as a top-level run of the experiment;
    the same grid again finds the fitted stages Cached and reuses the runs."""
    baselines = [r for r in scenario.runs(scenario.grid)
                 if r.data.tags.get("rnnflow.kind") == "baseline"]
    assert sorted(r.data.tags["rnnflow.baseline"] for r in baselines) == \
        ["bag_of_words", "majority"]
    assert all("mlflow.parentRunId" not in r.data.tags for r in baselines)
    assert scenario.again.counts[("fit_baseline", "Cached")] == 2
    assert ("fit_baseline", "Completed") not in scenario.again.counts
    assert ("log_baseline", "Completed") not in scenario.again.counts
    assert not [r for r in scenario.runs(scenario.again)
                if r.data.tags.get("rnnflow.kind") == "baseline"]
    # the best point is a trained one, whatever the baselines scored
    best = scenario.parent().data.tags["best_run_id"]
    assert best not in {r.info.run_id for r in baselines}


def test_a_baseline_run_predicts_raw_text_as_it_scored_its_test_reviews(scenario, monkeypatch):
    """`rnnflow predict --run <baseline run>` and `mlflow models serve` load the baseline's
    text model: on the test reviews' raw text it gives the probabilities the baseline run
    stored for them. `--run latest` still means a trained model, and the registry refuses a
    baseline."""
    # rnnflow's tracking calls read the store from the environment (else ./mlflow.db): this
    # scenario's, whatever an earlier test of this process left in place.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{scenario.project / 'mlflow.db'}")
    baselines = {r.data.tags["rnnflow.baseline"]: r for r in scenario.runs(scenario.grid)
                 if r.data.tags.get("rnnflow.kind") == "baseline"}
    (reviews,) = (scenario.project / "data" / "reviews").glob("*/reviews.parquet")
    texts = pd.read_parquet(reviews, columns=["id", "text"]).set_index("id").text
    for name, run in baselines.items():
        stored = pd.read_parquet(scenario.client.download_artifacts(
            run.info.run_id, "test_predictions.parquet", str(scenario.project / name)))
        model = tracking.load_text_model(run.info.run_id, quiet=True)
        answer = model.predict(pd.DataFrame({"text": texts.loc[stored.id].tolist()}))
        assert answer.probability.to_numpy() == pytest.approx(
            stored.probability.to_numpy(), abs=1e-6), name
        assert (answer.label.to_numpy() == (stored.probability >= 0.5).to_numpy()).all(), name
    assert tracking.resolve_run("latest", "tiny-grid") not in {
        r.info.run_id for r in baselines.values()}
    with pytest.raises(tracking.TrackingError, match="baseline"):
        tracking.promote("tiny-grid", run_id=baselines["bag_of_words"].info.run_id)
    with pytest.raises(tracking.TrackingError, match="no network to explain"):
        tracking.load_text_model_object(baselines["bag_of_words"].info.run_id)
