"""End to end: `rnnflow run` downloads a real-review archive over loopback HTTP and leaves a
complete MLflow run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert {"config.yaml", "plots/learning_curves.png", "plots/confusion_matrix.png"} <= artifacts
    assert (project / "mlruns").is_dir()

    contexts = {d.tags[0].value for d in run.inputs.dataset_inputs}
    assert contexts == {"training", "validation", "test"}
    assert run.data.tags["prefect.flow_run_id"]
    assert run.data.tags["stage.padded"]

    import mlflow.keras
    import numpy as np

    model = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    assert model.predict(np.zeros((2, 60), dtype=np.int32), verbose=0).shape == (2, 1)

    # No half-written stage is left behind.
    assert not list((project / "data").rglob(".tmp-*"))

    # A second run is a second MLflow run; Prefect serves all six preprocessing steps from cache.
    second = _rnnflow(project, "run", str(REPO / "params" / "quick.yaml"), *sets)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(client.search_runs([experiment.experiment_id])) == 2
    assert first.stderr.count("Cached(type=COMPLETED)") == 0
    assert second.stderr.count("Cached(type=COMPLETED)") == 6


def test_bad_params_exit_2_and_touch_nothing(project):
    bad = project / "bad.yaml"
    bad.write_text("model: {num_neuron: 5}\n")
    result = _rnnflow(project, "run", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr and "model.num_neurons" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "data").exists() and not (project / "mlflow.db").exists()
