"""Repeats, paired verdicts, reuse of finished runs and `rnnflow compare`, through the `rnnflow`
command (in the test process) on a tiny archive: a 2-point grid of 2 repeats each, then the
same command again. What it proves end to end: each repeat is a child of its point's group run,
which logs their mean and spread; the results table's paired verdicts; a finished point is
reused, not trained again (the one end-to-end proof of reuse; `--fresh` is proven in
test_train_rnn.py); `rnnflow compare` on the runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY_GRID, rnnflow_here, synthetic_reviews, write_tar

pytestmark = pytest.mark.slow
SETS = ["grid={model.num_neurons: [2, 3]}", "repeats=2", "train.epochs=1", "baselines=none"]


def _run(project: Path, archive: Path, api_url: str):
    """The command in this process: what the runs log is the point here, not the process."""
    args = ["run", str(TINY_GRID), "--set", f"dataset.url={archive}"]
    for s in SETS:
        args += ["--set", s]
    return rnnflow_here(project, *args, api_url=api_url)


@dataclass(frozen=True)
class Scenario:
    project: Path
    client: MlflowClient
    first: object
    again: object
    trained: dict[str, int]  # training runs in the store after each invocation


    def runs(self):
        exp = self.client.get_experiment_by_name("tiny-grid")
        return self.client.search_runs([exp.experiment_id], max_results=1000)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, prefect_api_url) -> Scenario:
    project = tmp_path_factory.mktemp("repeats")
    archive = write_tar(project / "tiny.tar.gz", synthetic_reviews(20))
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")

    def trained() -> int:  # runs that trained a model carry their training key
        exp = client.get_experiment_by_name("tiny-grid")
        return len(client.search_runs([exp.experiment_id], "tags.rnnflow_train_key != ''",
                                      max_results=1000))

    counts = {}
    first = _run(project, archive, prefect_api_url)
    counts["first"] = trained()
    again = _run(project, archive, prefect_api_url)  # nothing new: every run is reused
    counts["again"] = trained()
    return Scenario(project, client, first, again, counts)


def test_each_repeat_is_a_child_of_its_point(scenario):
    assert scenario.first.returncode == 0, scenario.first.stderr[-3000:]
    runs = [r for r in scenario.runs()
            if r.info.start_time <= _finished_at(scenario, "first")]
    by_id = {r.info.run_id: r for r in runs}
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    groups = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(g.info.run_name for g in groups) == ["num_neurons=2", "num_neurons=3"]
    for group in groups:
        children = [r for r in runs
                    if r.data.tags.get("mlflow.parentRunId") == group.info.run_id]
        assert sorted(c.data.params["train.seed"] for c in children) == ["1337", "1338"]
        assert all(c.info.status == "FINISHED" for c in children)
        accs = [c.data.metrics["test_accuracy"] for c in children]
        assert group.data.metrics["test_accuracy_mean"] == pytest.approx(sum(accs) / 2)
        assert group.data.metrics["test_accuracy_std"] == pytest.approx(
            abs(accs[0] - accs[1]) / 2 ** 0.5)
        assert group.info.status == "FINISHED"
    assert len(by_id) == 1 + 2 + 4


def test_results_table_has_mean_std_and_paired_verdicts(scenario):
    runs = scenario.runs()
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags
                 and r.info.start_time <= _finished_at(scenario, "first")]
    table = pd.read_csv(scenario.client.download_artifacts(
        parent.info.run_id, "results.csv", str(scenario.project)))
    assert list(table["model.num_neurons"]) == [2, 3]
    assert {"val_accuracy", "val_accuracy_std", "test_accuracy", "test_accuracy_std",
            "repeats", "test_delta_vs_best", "delta_low", "delta_high", "vs_best"} <= set(table)
    assert (table.repeats == 2).all() and (table.test_accuracy_std >= 0).all()
    assert (table.vs_best == "best").sum() == 1
    other = table[table.vs_best != "best"].iloc[0]
    assert other.delta_low <= other.test_delta_vs_best <= other.delta_high
    assert "at 95%" in other.vs_best
    assert parent.data.tags["best_run_id"] == table.run_id[table.vs_best == "best"].iloc[0]
    plots = {a.path for a in scenario.client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/test_accuracy.png" in plots


def test_finished_points_are_reused_not_trained(scenario):
    assert scenario.again.returncode == 0, scenario.again.stderr[-3000:]
    # No training happened: the first invocation's four runs are all the store holds.
    assert scenario.trained["first"] == scenario.trained["again"] == 4
    assert scenario.again.stdout.count("(reused)") == 4
    first_ids = {line.split()[1].rstrip(":") for line in scenario.first.stdout.splitlines()
                 if line.startswith("run ")}
    again_ids = {line.split()[1].rstrip(":") for line in scenario.again.stdout.splitlines()
                 if line.startswith("run ")}
    assert first_ids == again_ids and len(first_ids) == 4


def test_compare_prints_what_differs_and_writes_curves(scenario):
    out = scenario.project / "curves.png"
    result = rnnflow_here(scenario.project, "compare", "tiny-grid", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert "params that differ" in text and "model.num_neurons" in text and "train.seed" in text
    assert "pad.maxlen" not in text  # the same everywhere: not shown
    assert "95%" in text and "McNemar" in text and "first stage that differs: none" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = rnnflow_here(scenario.project, "compare", "nope", "alsonope")
    assert missing.returncode == 2 and "no run with this id" in missing.stderr


def _finished_at(scenario: Scenario, which: str) -> int:
    """The start time of the second invocation's runs: runs of `first` began before it."""
    if which != "first":
        raise ValueError(which)
    starts = sorted(r.info.start_time for r in scenario.runs())
    return starts[6]  # the first invocation made 7 runs (parent, 2 groups, 4 repeats)
