"""End to end: `rnnflow run` of the quick params file downloads a real-review archive over
loopback HTTP and leaves a complete MLflow run; then the same command with `--fresh`. What it
proves end to end: every param, metric, artifact, input and device tag of a run; the Keras and
the raw-text model load and predict, the text model is a model from code (served over REST by
its alias: test_classes.py); `rnnflow predict` finds the best run and prints only predictions;
a second run finds every step cached; `--fresh` trains again instead of reusing the finished
run; the first winner becomes the champion and an equal challenger is not promoted. Bad params
exit 2 before any work. What a run prints of the UIs: the `mlflow ui` link that opens the
comparison; Prefect's "View at" link only to a server that outlives the run; on that server,
rnnflow's log lines and the results table are the flow run's."""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
)
from prefect.settings import PREFECT_API_URL, temporary_settings

from rnnflow.config import Point
from tests.helpers import REPO, flow_run_logs, rnnflow_cli, rnnflow_here, serve_folder

# Shrink the quick params file further: tiny vectors and network, 2 epochs for per-epoch steps.
SHRINK = ["embedding.vector_size=16", "embedding.min_count=1", "embedding.epochs=1",
          "model.num_neurons=4", "pad.maxlen=60", "train.epochs=2", "dataset.limit=null"]


@dataclass(frozen=True)
class TrackedRun:
    """One `rnnflow run` of the quick params file, downloaded over loopback HTTP, then run
    again; the tests below read what it left."""

    project: Path
    url: str
    first: subprocess.CompletedProcess
    second: subprocess.CompletedProcess
    client: MlflowClient
    experiment_id: str
    run: Any  # the first run's mlflow.entities.Run
    prefect_api_url: str  # the Prefect server of the second run (the first had its own)

    def artifact(self, path: str) -> str:
        return self.client.download_artifacts(self.run.info.run_id, path, str(self.project))


def _training_runs(client: MlflowClient, experiment_id: str, **search) -> list:
    """The experiment's runs but the baseline runs beside them."""
    return [r for r in client.search_runs([experiment_id], **search)
            if r.data.tags.get("rnnflow.kind") != "baseline"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, sample_cut, prefect_api_url) -> Iterator[TrackedRun]:
    project = tmp_path_factory.mktemp("tracked")
    with serve_folder(tmp_path_factory.mktemp("www")) as (base, root):
        shutil.copy(sample_cut, root / "aclImdb_cut.tar.gz")
        url = f"{base}/aclImdb_cut.tar.gz"
        sets = [a for s in [f"dataset.url={url}", *SHRINK] for a in ("--set", s)]
        first = rnnflow_cli(project, "run", str(REPO / "params" / "quick.yaml"), *sets)
        assert first.returncode == 0, first.stderr[-3000:]
        client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("quick")
        (run,) = _training_runs(client, experiment.experiment_id)
        # A second run, trained again (--fresh), is a second MLflow run, with every
        # preprocessing step cached; its model, trained the same way, is an equal challenger.
        # The first run boots its own Prefect server, as a user's does; this one need not.
        second = rnnflow_cli(project, "run", str(REPO / "params" / "quick.yaml"), *sets,
                             "--fresh", api_url=prefect_api_url)
    yield TrackedRun(project, url, first, second, client, experiment.experiment_id, run,
                     prefect_api_url)


@pytest.mark.slow
def test_run_logs_every_param_and_metric(tracked):
    run, client = tracked.run, tracked.client
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert set(Point().flat()) <= set(params)
    assert params["dataset.url"] == tracked.url and params["model.num_neurons"] == "4"
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == [1, 2], key
    for split in ("val", "test"):
        for name in ("loss", "accuracy", "precision", "recall", "f1", "auc"):
            assert f"{split}_{name}" in run.data.metrics
    assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_a_binary_run_logs_the_keys_it_logged_before_classes(tracked):
    # tests/fixtures/binary_run_keys.json: this very run's keys, from the code before
    # k-class labels (the script beside it says how it was made).
    before = json.loads((REPO / "tests" / "fixtures" / "binary_run_keys.json").read_text())
    run = tracked.run
    metrics = {k for k in run.data.metrics if not k.startswith("system/")}
    # The one output added on purpose since: the result framed against the baselines.
    framing = {"test_delta_vs_baseline", "test_delta_vs_baseline_low",
               "test_delta_vs_baseline_high", "learned_nothing"}
    assert framing <= metrics and metrics - framing == set(before["metrics"])
    params = set(run.data.params)
    assert set(before["params"]) <= params
    # Anything new is a setting (a key every run logs, its default here), never an output.
    assert params - set(before["params"]) <= set(Point().flat())
    assert "classes" not in run.data.tags and "dropped_rows" not in run.data.metrics


@pytest.mark.slow
def test_run_logs_its_report_artifacts(tracked):
    run, client = tracked.run, tracked.client
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    artifacts |= {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"config.yaml", "plots/learning_curves.png", "plots/confusion_matrix.png",
            "plots/roc_pr_curves.png", "test_predictions.parquet", "confident_mistakes.csv",
            "examples.csv"} <= artifacts
    predictions = pd.read_parquet(tracked.artifact("test_predictions.parquet"))
    assert list(predictions.columns) == ["id", "label", "probability"] and len(predictions) == 120
    examples = pd.read_csv(tracked.artifact("examples.csv"))
    assert list(examples.columns) == ["text", "probability", "label", "known_tokens", "class"]
    assert len(examples) == len(Point().evaluate.sentences)
    assert (tracked.project / "mlruns").is_dir()


@pytest.mark.slow
def test_run_records_its_inputs_and_origin(tracked):
    run = tracked.run
    contexts = {d.tags[0].value for d in run.inputs.dataset_inputs}
    assert contexts == {"training", "validation", "test"}
    assert run.data.tags["prefect.flow_run_id"]
    assert run.data.tags["stage.padded"]
    # Where it trained, on which kernel and why (this machine: the CPU, the fused SimpleRNN).
    from rnnflow.network.device import setup

    here = setup()
    tags = run.data.tags
    assert (tags["device"], tags["device_name"]) == (here.kind, here.name)
    assert int(tags["device_memory_mb"]) == here.memory_mb
    assert tags["precision"] == "float32"
    if here.kind == "cpu":
        assert tags["kernel"] == "fused" and "covers" in tags["kernel_reason"]
    # No half-written stage is left behind.
    assert not list((tracked.project / "data").rglob(".tmp-*"))


@pytest.mark.slow
def test_keras_and_text_models_load_and_predict(tracked, monkeypatch):
    import mlflow.keras
    import mlflow.pyfunc
    import numpy as np

    # The text model is a model from code: loading it must not need to unpickle anything.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")

    run_id = tracked.run.info.run_id
    mlflow.set_tracking_uri(f"sqlite:///{tracked.project / 'mlflow.db'}")
    model = mlflow.keras.load_model(f"runs:/{run_id}/model")
    assert model.predict(np.zeros((2, 60), dtype=np.int32), verbose=0).shape == (2, 1)

    # The raw-text model: tokenizer, vocabulary and network in one pyfunc.
    text_model = mlflow.pyfunc.load_model(f"runs:/{run_id}/text_model")
    out = text_model.predict(pd.DataFrame({"text": ["A wonderful film, I loved it.", "  "]}))
    assert list(out.columns) == ["probability", "label", "known_tokens", "class"]
    assert out.label[1] == -1 and out.known_tokens[0] > 0 and 0 <= out.probability[0] <= 1
    # A sentiment model's class in words, as `rnnflow predict` prints it.
    assert out["class"].tolist() == [["negative", "positive"][out.label[0]], "unknown"]


@pytest.mark.slow
def test_text_model_is_a_model_from_code(tracked):
    """The pyfunc is logged as code (text_pyfunc.py) plus artifacts: no pickle in the model."""
    import yaml
    from mlflow.utils.file_utils import local_file_uri_to_path

    run_id = tracked.run.info.run_id
    (logged,) = tracked.client.search_logged_models(
        [tracked.experiment_id],
        filter_string=f"name = 'text_model' AND source_run_id = '{run_id}'")
    folder = Path(local_file_uri_to_path(logged.artifact_location))
    assert (folder / "MLmodel").is_file()
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle", ".cloudpickle")]
    pyfunc = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert Path(pyfunc["model_code_path"]).name == "text_pyfunc.py"
    assert (folder / "text_pyfunc.py").is_file() and "python_model" not in pyfunc
    assert set(pyfunc["artifacts"]) == {"keras_model", "vocab", "config"}
    # It is told to load through the public entry point, whose name does not move.
    assert pyfunc["config"] == {"loader": "rnnflow.api:load_text_model"}
    # Logging it no longer warns that the model is serialized with CloudPickle.
    assert "CloudPickle" not in tracked.first.stderr


@pytest.mark.slow
def test_predict_prints_the_predictions_and_nothing_else(tracked):
    """stdout: one line per text; stderr: only the `# run` line. No library warnings, no
    download progress bars, no TensorFlow start-up notes."""
    import mlflow.pyfunc

    run_id = tracked.run.info.run_id
    texts = ["A wonderful film, I loved it.", "Dull and far too long.", "   "]
    result = rnnflow_cli(tracked.project, "predict", "--run", run_id, *texts)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == f"# run {run_id}\n"

    mlflow.set_tracking_uri(f"sqlite:///{tracked.project / 'mlflow.db'}")
    expected = mlflow.pyfunc.load_model(f"runs:/{run_id}/text_model").predict(
        pd.DataFrame({"text": texts}))
    names = {1: "positive", 0: "negative", -1: "unknown"}
    assert result.stdout.splitlines() == [
        f"{p:.3f}\t{names[label]}\t{text}"
        for text, p, label in zip(texts, expected.probability, expected.label, strict=True)]


@pytest.mark.slow
def test_second_run_is_a_new_run_with_every_step_cached(tracked):
    assert tracked.second.returncode == 0, tracked.second.stderr[-3000:]
    # The baselines read the reviews, and tokenize them with the lesson's settings, first:
    # the point's download, read and tokenize (quick.yaml keeps those settings) are Cached.
    assert tracked.first.stderr.count("Cached(type=COMPLETED)") == 3
    # The six steps, the baselines' download and read, and the two fitted baselines.
    assert tracked.second.stderr.count("Cached(type=COMPLETED)") == 10
    # --fresh: the finished run with the same settings is not reused; a new run trains.
    runs = _training_runs(tracked.client, tracked.experiment_id)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert "(reused)" not in tracked.second.stdout
    (new,) = [r for r in runs if r.info.run_id != tracked.run.info.run_id]
    assert f"run {new.info.run_id}:" in tracked.second.stdout
    assert "continued_from" not in new.data.tags
    assert [m.step for m in tracked.client.get_metric_history(new.info.run_id, "loss")] == [1, 2]


@pytest.mark.slow
def test_an_equal_challenger_is_not_promoted(tracked):
    """The first run is the first champion; the second, trained again the same way, has equal
    test predictions: a challenger the paired test does not promote."""
    assert "promoted to champion (no champion): no champion yet" in tracked.first.stderr
    client = tracked.client
    v1 = client.get_model_version_by_alias("quick", "champion")
    v2 = client.get_model_version_by_alias("quick", "challenger")
    assert (str(v1.version), str(v2.version)) == ("1", "2")
    assert v1.run_id == tracked.run.info.run_id != v2.run_id
    assert v2.tags["promoted"] == "false" and v2.tags["decision_test"] == "paired_bootstrap"
    assert float(v2.tags["delta_low"]) <= 0 <= float(v2.tags["delta_high"])
    assert "not better beyond the noise" in v2.tags["decision_reason"]
    assert v2.tags["champion_test_accuracy"] and v2.tags["challenger_test_accuracy"]
    assert "not promoted" in tracked.second.stderr


@pytest.mark.slow
def test_predict_finds_the_best_run_and_scores_texts_from_a_file(tracked):
    """`rnnflow predict --run best` scores texts from arguments and from a file (blank lines
    skipped). How `best`, `latest` and an unknown experiment resolve: tests/rnnflow/tracking/
    test_lookup.py; `latest` through the command: test_classes.py; an error's exit 2:
    test_search.py."""
    project = tracked.project
    texts = project / "texts.txt"
    texts.write_text("What a great movie\n\nAn awful, boring film\n")
    predicted = rnnflow_here(project, "predict", "--run", "best", "Loved every minute",
                            "--file", str(texts))
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = predicted.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.split("\t")[1] in ("positive", "negative", "unknown")
                                   for line in lines)
    # the best trained run: never a baseline, though one may score higher
    best = max(_training_runs(tracked.client, tracked.experiment_id),
               key=lambda r: r.data.metrics["val_accuracy"]).data.metrics["val_accuracy"]
    (line,) = [x for x in predicted.stderr.splitlines() if x.startswith("# run ")]
    chosen = tracked.client.get_run(line.removeprefix("# run ").strip())
    assert chosen.data.metrics["val_accuracy"] == best


def test_bad_params_exit_2_and_touch_nothing(project):
    bad = project / "bad.yaml"
    bad.write_text("model: {num_neuron: 5}\n")
    result = rnnflow_cli(project, "run", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr and "model.num_neurons" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "data").exists() and not (project / "mlflow.db").exists()


@pytest.mark.slow
def test_a_run_prints_the_link_to_the_comparison_and_none_to_a_server_gone(tracked):
    from rnnflow.tracking import comparison_command

    # The store is ./mlflow.db, which a bare `mlflow ui` in the project opens.
    link = comparison_command(tracked.experiment_id, "sqlite:///mlflow.db")
    assert link.startswith("mlflow ui  # then open http://127.0.0.1:5000/#/experiments/")
    for done in (tracked.first, tracked.second):
        lines = [line for line in done.stdout.splitlines() if "mlflow ui" in line]
        assert lines == [f"compare the runs: {link}"]
    # The first run's temporary Prefect server is gone with the run: no link to it. The second
    # run's server is the user's own (PREFECT_API_URL), and outlives the run: its link stays.
    assert "View at" not in tracked.first.stderr
    ui = tracked.prefect_api_url.removesuffix("/api")
    assert re.search(rf"View at {re.escape(ui)}/runs/flow-run/[0-9a-f-]+", tracked.second.stderr)


@pytest.mark.slow
def test_the_flow_run_holds_rnnflows_log_lines_and_the_results_table(tracked):
    experiment_runs = _training_runs(tracked.client, tracked.experiment_id,
                                     order_by=["attributes.start_time DESC"])
    second = experiment_runs[0]  # the --fresh run, on the test process's Prefect server
    flow_run_id = second.data.tags["prefect.flow_run_id"]
    def closing_lines(logs: list) -> list:
        return [log for log in logs if log.name.startswith("rnnflow.")
                and f"run {second.info.run_id}: val_accuracy" in log.message]

    with temporary_settings({PREFECT_API_URL: tracked.prefect_api_url}):
        logs = flow_run_logs(flow_run_id, closing_lines)  # the last batch holds the closing line
        closing = closing_lines(logs)
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    assert closing, sorted({log.name for log in logs})
    assert f"{second.data.metrics['test_accuracy']:.4f}" in closing[0].message
    # The results table is an artifact of the flow run itself: its page shows it.
    (table,) = [a for a in artifacts if a.type == "table"]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [r["run_id"] for r in rows] == [second.info.run_id]


@pytest.mark.slow
def test_the_baselines_are_runs_beside_the_point_with_its_metric_keys(tracked):
    """Each flow run logs the two baselines (--fresh logs them again, from the fitted stage
    on disk), tagged so that `mlflow ui` can filter them, with a point's metric keys and
    per-review test predictions."""
    runs = tracked.client.search_runs([tracked.experiment_id],
                                      "tags.`rnnflow.kind` = 'baseline'")
    assert sorted(r.data.tags["rnnflow.baseline"] for r in runs) == \
        ["bag_of_words", "bag_of_words", "majority", "majority"]
    assert len({r.data.tags["rnnflow.baseline_key"] for r in runs}) == 2
    keys = {k for k in tracked.run.data.metrics if k.startswith(("val_", "test_"))
            and not k.startswith("test_delta_vs_baseline")}
    for run in runs:
        assert run.info.status == "FINISHED"
        assert keys <= set(run.data.metrics), keys - set(run.data.metrics)
        assert run.data.tags["stage.reviews"] == tracked.run.data.tags["stage.reviews"]
        artifacts = {a.path for a in tracked.client.list_artifacts(run.info.run_id)}
        assert {"test_predictions.parquet", "baseline.json"} <= artifacts
    (majority,) = {r.data.metrics["test_accuracy"] for r in runs
                   if r.data.tags["rnnflow.baseline"] == "majority"}
    labels = pd.read_parquet(tracked.artifact("test_predictions.parquet")).label
    assert majority == pytest.approx(max(labels.mean(), 1 - labels.mean()), abs=0.05)
    assert {r.data.params["baseline.analyzer"] for r in runs
            if r.data.tags["rnnflow.baseline"] == "bag_of_words"} <= {"word", "char_wb"}


@pytest.mark.slow
def test_the_point_is_framed_against_the_baselines_everywhere(tracked):
    """The point's run logs its difference to the better baseline on val, the closing line
    and report.html carry the line, and a verdict of learned nothing (likely on 60 reviews a
    class) is a tag and a banner, or neither."""
    run = tracked.run
    baselines = tracked.client.search_runs(
        [tracked.experiment_id], "tags.`rnnflow.kind` = 'baseline'",
        order_by=["attributes.start_time ASC"], max_results=2)
    best = max(baselines, key=lambda r: r.data.metrics["val_accuracy"])
    m = run.data.metrics
    # Same test reviews: the paired mean difference is the difference in accuracy.
    assert m["test_delta_vs_baseline"] == pytest.approx(
        m["test_accuracy"] - best.data.metrics["test_accuracy"], abs=1e-9)
    assert m["test_delta_vs_baseline_low"] <= m["test_delta_vs_baseline"] \
        <= m["test_delta_vs_baseline_high"]
    title = {"majority": "majority", "bag_of_words": "bag-of-words"}[
        best.data.tags["rnnflow.baseline"]]
    versus = f"{title} {best.data.metrics['test_accuracy']:.3f}: "
    closing = next(line for line in tracked.first.stdout.splitlines()
                   if line.startswith(f"run {run.info.run_id}"))
    assert f"; {versus}" in closing
    page = Path(tracked.artifact("report.html")).read_text(encoding="utf-8")
    assert versus in page
    flagged = m["learned_nothing"] == 1.0
    assert run.data.tags.get("rnnflow.warning", "").startswith("learned nothing") == flagged
    assert ("This model learned nothing" in page) == flagged
    assert closing.endswith(" - LEARNED NOTHING") == flagged
