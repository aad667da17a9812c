"""Models logged before the library was grouped into sub-packages load and predict as they did
then, and a checkpoint of then trains on.

The fixture holds what rnnflow logged at commit 57c7f77 (its README says how it was made): two
`text_model` folders exactly as MLflow wrote them, whose text_pyfunc.py imports the module
names of then (rnnflow/_moved.py answers them), two epoch-1 checkpoints, and what that code
predicted with each.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Imported first, as `rnnflow predict` has it: the model must then load with this rnnflow, not
# with the copy of then in its code/ folder (which a process without rnnflow would use).
import rnnflow.network.predict

FIXTURE = Path(__file__).parent / "fixtures" / "logged_at_57c7f77.zip"
NAMES = ("w2v", "onehot")  # word2vec + fused SimpleRNN; one-hot + fused GRU


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("logged")
    with zipfile.ZipFile(FIXTURE) as archive:
        archive.extractall(folder)
    return folder


@pytest.fixture(scope="module")
def expected(logged) -> dict:
    return json.loads((logged / "expected.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_a_text_model_logged_then_predicts_as_it_did(logged, expected, name, monkeypatch):
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    model = mlflow.pyfunc.load_model(str(logged / f"{name}_text_model"))
    assert type(model.unwrap_python_model().text_model) is rnnflow.network.predict.TextModel
    out = model.predict(pd.DataFrame({"text": expected["texts"]}))
    then = expected[name]
    assert out.label.tolist() == then["label"]
    assert out.known_tokens.tolist() == then["known_tokens"]
    np.testing.assert_allclose(out.probability, then["probability"], atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_of_then_loads_with_its_optimizer(logged, expected, name):
    from rnnflow.network.model import load_model

    model = load_model(logged / f"{name}_checkpoint.keras")
    then = expected[f"{name}_checkpoint"]
    x = np.asarray(then["x"], dtype=np.int32)
    np.testing.assert_allclose(model.predict(x, verbose=0).ravel(), then["y"], atol=1e-6)
    assert int(model.optimizer.iterations.numpy()) == then["optimizer_iterations"]


@pytest.mark.slow
def test_a_checkpoint_of_then_is_continued_by_a_run_of_now(logged, project, tiny_archive):
    """The fixture's runs trained one epoch on synthetic_reviews(20) with tiny-grid's settings;
    a run asking for two continues from that checkpoint, as `train-rnn` does."""
    from rnnflow.config import ModelConfig, TrainConfig
    from rnnflow.data.download import download_dataset
    from rnnflow.network.train import train_model
    from tests.helpers import build_stages

    path, digest = download_dataset(str(tiny_archive))
    padded, table = build_stages(path, 12, digest=digest, limit=200, vector_size=16,
                                 min_count=2, seed=42)
    epochs = []
    model, fit = train_model(
        padded=padded, embeddings=table, model_cfg=ModelConfig(num_neurons=3),
        train_cfg=TrainConfig(epochs=2), checkpoint_dir=project / "ckpt",
        on_epoch_end=lambda epoch, logs, path: epochs.append(epoch),
        resume_from=logged / "w2v_checkpoint.keras", initial_epoch=1)
    assert epochs == [2] and len(fit.history["loss"]) == 1
    assert int(model.optimizer.iterations.numpy()) > 1  # went on from the saved optimizer
