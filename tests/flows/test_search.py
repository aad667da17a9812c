"""A pruned search, killed and resumed, its winner registered and served as NAME@champion;
system metrics on every run. Through the `rnnflow` command on a tiny archive: a search killed
after its second trial (its own process), resumed, then given a fifth trial (in the test
process). What it proves end to end:
a killed search resumes where it stopped; trials are children of one parent and a pruned
trial's run is KILLED; every training run logs system metrics and its peak RSS; the search's
winner is the champion and predicts by its alias; an unreachable registry exits 2. (The
registry's decision for an equal challenger: tests/flows/test_train_rnn.py.)"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import free_port, project_env, rnnflow_here, synthetic_reviews, write_tar

pytestmark = pytest.mark.slow

# Trial 0 and 1 are the grid's points, in order: 1 explodes (SGD at learning rate 100), so its
# val_loss after epoch 1 is far above trial 0's, the only median there is: pruned, certainly.
SEARCH = """\
name: s
dataset: {{url: {archive}}}
embedding: {{source: train, vector_size: 8, min_count: 1, epochs: 1}}
pad: {{maxlen: 20}}
model: {{num_neurons: 4}}
train: {{epochs: 2, optimizer: sgd}}
grid:
  train.learning_rate: [0.01, 100.0]
search:
  trials: 4
  metric: val_loss
  sampler: random
  pruner: median
  pruner_options: {{n_startup_trials: 1, n_warmup_steps: 0}}
  space:
    train.learning_rate: {{float: [0.001, 100.0], log: true}}
    model.num_neurons: [2, 4]
"""


def _cli(project: Path, *args: str, api_url: str | None = None,
         **env: str) -> subprocess.CompletedProcess:
    """`rnnflow ARGS` in its own session, output to files: a SIGKILLed run's Prefect server
    child would hold a pipe open. The session is cleaned up afterwards. A run uses the Prefect
    API `api_url` (None: its own temporary one)."""
    out, err = (project / f"cli-{time.monotonic_ns()}.{s}" for s in ("out", "err"))
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "rnnflow.cli", *args], cwd=project,
                                env=project_env(project, api_url=api_url,
                                                PREFECT_LOGGING_LEVEL="INFO", **env),
                                stdout=fo, stderr=fe, start_new_session=True)
        try:
            code = proc.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, code, out.read_text(), err.read_text())


@dataclass(frozen=True)
class Scenario:
    project: Path
    client: MlflowClient
    killed: subprocess.CompletedProcess
    trials_after_kill: int
    resumed: subprocess.CompletedProcess
    more: subprocess.CompletedProcess

    def runs(self):
        exp = self.client.get_experiment_by_name("s")
        return self.client.search_runs([exp.experiment_id], max_results=1000)

    def study(self):
        return optuna.load_study(study_name="s",
                                 storage=f"sqlite:///{self.project / 'optuna.db'}")


def _counted(study) -> int:
    return sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, prefect_api_url) -> Scenario:
    project = tmp_path_factory.mktemp("search")
    archive = write_tar(project / "tiny.tar.gz", synthetic_reviews(20))
    (project / "s.yaml").write_text(SEARCH.format(archive=archive))
    killed = _cli(project, "run", "s.yaml", api_url=prefect_api_url, RNNFLOW_FAULT="after_trial:1")
    storage = f"sqlite:///{project / 'optuna.db'}"
    trials_after_kill = _counted(optuna.load_study(study_name="s", storage=storage))
    # Resumed with a space of learning rates that explode as trial 1 did, so its trials are
    # pruned too (a resumed study keeps its trials; the grid only seeds a new one). The kill
    # needs a process of its own; the runs after it are read for what they log, and run here.
    resumed = rnnflow_here(project, "run", "s.yaml", "--set", "grid={}", "--set",
                           "search.space.train.learning_rate={float: [50.0, 100.0], log: true}",
                           api_url=prefect_api_url)
    more = rnnflow_here(project, "run", "s.yaml", "--set", "search.trials=5",
                        api_url=prefect_api_url)
    return Scenario(project, MlflowClient(f"sqlite:///{project / 'mlflow.db'}"), killed,
                    trials_after_kill, resumed, more)


def test_a_killed_search_resumes_where_it_stopped(scenario):
    assert scenario.killed.returncode != 0  # SIGKILLed after trial 1 was told
    assert scenario.trials_after_kill == 2
    assert scenario.resumed.returncode == 0, scenario.resumed.stderr[-3000:]
    assert "2 of 4 trial(s) done, 2 to run" in scenario.resumed.stderr
    assert scenario.more.returncode == 0, scenario.more.stderr[-3000:]
    assert "4 of 5 trial(s) done, 1 to run" in scenario.more.stderr
    study = scenario.study()
    assert _counted(study) == 5
    assert [t.params["train.learning_rate"] for t in study.trials[:2]] == [0.01, 100.0]


def test_trials_are_children_of_one_parent_and_a_pruned_trial_is_killed(scenario):
    runs = scenario.runs()
    parents = [r for r in runs if r.info.run_name == "s-search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # reopened, not new
    parent = parents[0]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in trials) == [f"trial-{i}" for i in range(5)]
    exploded = next(r for r in trials if r.info.run_name == "trial-1")
    assert exploded.info.status == "KILLED"
    assert exploded.data.tags["pruned"] == "true"
    assert exploded.data.tags["pruned_at_epoch"] == "1"
    assert "error" not in exploded.data.tags
    study = scenario.study()
    assert study.trials[1].state.name == "PRUNED"
    assert all(r.info.status in ("FINISHED", "KILLED") for r in trials)
    assert parent.data.tags["best_run_id"] == study.best_trial.user_attrs["run_id"]
    assert parent.data.tags["best.train.learning_rate"] == str(
        study.best_trial.params["train.learning_rate"])
    files = {a.path for a in scenario.client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "trials.parquet", "best_params.json", "config.yaml"} <= files
    plots = {a.path for a in scenario.client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in plots
    assert "trial 1 pruned at epoch 1" in scenario.killed.stderr
    pruned_here = [t.number for t in study.trials[2:4] if t.state.name == "PRUNED"]
    assert pruned_here
    for number in pruned_here:  # the resumed invocation prints its pruned trials
        assert f"(trial {number}, pruned at epoch" in scenario.resumed.stdout


def test_the_trials_table_frames_each_finished_trial_against_the_baselines(scenario):
    """The trials table on the parent run: each finished trial's line in the end-of-run
    line's form, its difference to the best baseline and its warning, as its run logged
    them; a pruned trial has none."""
    import pandas as pd

    from rnnflow.comparisons.framing import result_line

    runs = scenario.runs()
    (parent,) = [r for r in runs if r.info.run_name == "s-search"]
    table = pd.read_csv(scenario.client.download_artifacts(
        parent.info.run_id, "trials.csv", str(scenario.project)))
    assert {"vs_baselines", "test_delta_vs_baseline", "warning"} <= set(table)
    done = table[table.state == "COMPLETE"]
    assert len(done) and table[table.state == "PRUNED"].vs_baselines.isna().all()
    for row in done.itertuples(index=False):
        logged = scenario.client.get_run(row.run_id).data
        assert row.vs_baselines.startswith(result_line(row.test_accuracy, "") + "; ")
        assert " points [" in row.vs_baselines and "majority " in row.vs_baselines
        assert row.test_delta_vs_baseline == pytest.approx(
            logged.metrics["test_delta_vs_baseline"])
        warning = row.warning if isinstance(row.warning, str) else ""
        assert warning == logged.tags.get("rnnflow.warning", "")


def test_every_training_run_logs_system_metrics_and_peak_rss(scenario):
    for run in scenario.runs():
        if run.info.run_name == "s-search" or run.data.tags.get("rnnflow.kind") == "baseline":
            continue
        metrics = run.data.metrics
        assert metrics["peak_rss_mb"] > 100  # TensorFlow alone holds more
        assert "system/cpu_utilization_percentage" in metrics
        assert "system/system_memory_usage_megabytes" in metrics
        assert run.data.tags["node"] == os.uname().nodename


def test_the_search_winner_is_the_champion_and_predicts(scenario):
    champion = scenario.client.get_model_version_by_alias("s", "champion")
    assert champion.run_id == scenario.study().best_trial.user_attrs["run_id"]
    assert scenario.client.get_model_version_by_alias("s", "challenger").version == \
        champion.version
    result = rnnflow_here(scenario.project, "predict", "--model", "s@champion",
                         "A wonderful, superb film.")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "models:/s@champion" in result.stderr
    prob, label, _ = result.stdout.strip().split("\t")
    assert 0 <= float(prob) <= 1 and label in ("positive", "negative", "unknown")


def test_an_unreachable_registry_exits_2(scenario):
    """The command's answer to a registry error; a model missing from the registry is the same
    error class, its message checked in tests/rnnflow/tracking/test_registry.py."""
    down = _cli(scenario.project, "predict", "--model", "s@champion", "Fine.",
                MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 2 and "not reachable" in down.stderr
    assert "Traceback" not in down.stderr
