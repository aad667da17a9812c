"""End to end: `rnnflow run` downloads a real-review archive over loopback HTTP and leaves a
complete MLflow run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from rnnflow.config import Params

REPO = Path(__file__).resolve().parents[2]
# Shrink the quick params file further: tiny vectors and network, 2 epochs for per-epoch steps.
SHRINK = ["embedding.vector_size=16", "embedding.min_count=1", "embedding.epochs=1",
          "model.num_neurons=4", "pad.maxlen=60", "train.epochs=2", "dataset.limit=null"]


def _rnnflow(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_HOME": str(project / ".prefect"), "PREFECT_LOGGING_LEVEL": "INFO"}
    cmd = [sys.executable, "-m", "rnnflow.cli", *args]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_quick_run_is_fully_tracked(project, sample_cut, http_server):
    base, root = http_server
    shutil.copy(sample_cut, root / "aclImdb_cut.tar.gz")
    url = f"{base}/aclImdb_cut.tar.gz"
    sets = [a for s in [f"dataset.url={url}", *SHRINK] for a in ("--set", s)]
    first = _rnnflow(project, "run", str(REPO / "params" / "quick.yaml"), *sets)
    assert first.returncode == 0, first.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quick")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"

    params = run.data.params
    assert set(Params().flat()) <= set(params)
    assert params["dataset.url"] == url and params["model.num_neurons"] == "4"
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == [1, 2], key
    for split in ("val", "test"):
        for name in ("loss", "accuracy", "precision", "recall", "f1", "auc"):
            assert f"{split}_{name}" in run.data.metrics
    assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    artifacts |= {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"config.yaml", "plots/learning_curves.png", "plots/confusion_matrix.png",
            "plots/roc_pr_curves.png", "test_predictions.parquet", "confident_mistakes.csv",
            "examples.csv"} <= artifacts
    predictions = pd.read_parquet(client.download_artifacts(
        run.info.run_id, "test_predictions.parquet", str(project)))
    assert list(predictions.columns) == ["id", "label", "probability"] and len(predictions) == 120
    examples = pd.read_csv(client.download_artifacts(run.info.run_id, "examples.csv",
                                                     str(project)))
    assert list(examples.columns) == ["text", "probability", "label", "known_tokens"]
    assert len(examples) == len(Params().evaluate.sentences)
    assert (project / "mlruns").is_dir()

    contexts = {d.tags[0].value for d in run.inputs.dataset_inputs}
    assert contexts == {"training", "validation", "test"}
    assert run.data.tags["prefect.flow_run_id"]
    assert run.data.tags["stage.padded"]

    import mlflow.keras
    import numpy as np

    model = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    assert model.predict(np.zeros((2, 60), dtype=np.int32), verbose=0).shape == (2, 1)

    # The raw-text model: tokenizer, vocabulary and network in one pyfunc.
    import mlflow.pyfunc

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    text_model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/text_model")
    out = text_model.predict(pd.DataFrame({"text": ["A wonderful film, I loved it.", "  "]}))
    assert list(out.columns) == ["probability", "label", "known_tokens"]
    assert out.label[1] == -1 and out.known_tokens[0] > 0 and 0 <= out.probability[0] <= 1

    # No half-written stage is left behind.
    assert not list((project / "data").rglob(".tmp-*"))

    # A second run is a second MLflow run; Prefect serves all six preprocessing steps from cache.
    second = _rnnflow(project, "run", str(REPO / "params" / "quick.yaml"), *sets)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(client.search_runs([experiment.experiment_id])) == 2
    assert first.stderr.count("Cached(type=COMPLETED)") == 0
    assert second.stderr.count("Cached(type=COMPLETED)") == 6

    # `rnnflow predict` finds the best run and scores texts from arguments and from a file.
    texts = project / "texts.txt"
    texts.write_text("What a great movie\n\nAn awful, boring film\n")
    predicted = _rnnflow(project, "predict", "--run", "best", "Loved every minute",
                         "--file", str(texts))
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = predicted.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.split("\t")[1] in ("positive", "negative", "unknown")
                                   for line in lines)

    latest = _rnnflow(project, "predict", "--run", "latest", "--experiment", "quick", "Fine.")
    assert latest.returncode == 0, latest.stderr[-3000:]
    newest = client.search_runs([experiment.experiment_id],
                                order_by=["attributes.start_time DESC"])[0]
    assert f"# run {newest.info.run_id}" in latest.stderr
    by_id = _rnnflow(project, "predict", "--run", run.info.run_id, "Fine.")
    assert by_id.returncode == 0 and f"# run {run.info.run_id}" in by_id.stderr
    missing = _rnnflow(project, "predict", "--experiment", "nope", "Fine.")
    assert missing.returncode == 2 and "no such experiment" in missing.stderr

    # `mlflow models serve` answers a POST of raw text on loopback.
    _serve_and_post(project, run.info.run_id)


def test_bad_params_exit_2_and_touch_nothing(project):
    bad = project / "bad.yaml"
    bad.write_text("model: {num_neuron: 5}\n")
    result = _rnnflow(project, "run", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr and "model.num_neurons" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "data").exists() and not (project / "mlflow.db").exists()


def _serve_and_post(project: Path, run_id: str) -> None:
    import json
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The scoring server execs `uvicorn`, which must be on PATH (it is in an activated venv).
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    log = (project / "serve.log").open("w")
    server = subprocess.Popen(
        [mlflow_bin, "models", "serve", "-m", f"runs:/{run_id}/text_model", "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body = json.dumps({"dataframe_split": {"columns": ["text"],
                                               "data": [["A moving, beautiful film."], [""]]}})
        deadline = time.monotonic() + 180
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                    headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None, (project / "serve.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "mlflow models serve did not answer"
                time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    rows = answer["predictions"]
    assert len(rows) == 2 and rows[1]["label"] == -1 and rows[1]["probability"] == 0.5
    assert 0 <= rows[0]["probability"] <= 1 and rows[0]["known_tokens"] > 0
