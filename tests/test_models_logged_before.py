"""Models logged by earlier versions of rnnflow load and predict as they did then, and a
checkpoint of then trains on (docs/compatibility.md).

Each fixture's README says how it was made:
- logged_at_57c7f77.zip: before the library was grouped into sub-packages, two `text_model`
  folders exactly as MLflow wrote them, whose text_pyfunc.py imports the module names of then
  (rnnflow/_compat/ answers them), two epoch-1 checkpoints, and what that code predicted;
- pickled_at_1a849ab.zip: a text model pickled before text models were logged from code;
- logged_through_rnnflow_api.zip: a text model whose MLmodel names the public loader,
  `rnnflow.api:load_text_model`, as every text model logged since does;
- every name of rnnflow/_compat/__init__.py's KEPT resolves in this rnnflow.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Imported first, as `rnnflow predict` has it: the model must then load with this rnnflow, not
# with the copy of then in its code/ folder (which a process without rnnflow would use).
import rnnflow.network.predict

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "logged_at_57c7f77.zip"
NAMES = ("w2v", "onehot")  # word2vec + fused SimpleRNN; one-hot + fused GRU


def _extract(archive: Path, folder: Path) -> Path:
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(folder)
    return folder


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> Path:
    return _extract(FIXTURE, tmp_path_factory.mktemp("logged"))


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
    from rnnflow.api import load_keras_model

    model = load_keras_model(str(logged / f"{name}_checkpoint.keras"))
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


def _predicts_as_recorded(model, then: dict) -> None:
    """`model`: a pyfunc (a DataFrame of texts in) or a TextModel (a list of texts in)."""
    texts = then["texts"]
    out = model.predict(texts if hasattr(model, "vocab") else pd.DataFrame({"text": texts}))
    assert out.label.tolist() == then["label"]
    assert out.known_tokens.tolist() == then["known_tokens"]
    np.testing.assert_allclose(out.probability, then["probability"], atol=1e-6)


def test_a_text_model_pickled_before_models_from_code_predicts_as_it_did(tmp_path, monkeypatch):
    """Its pickle names rnnflow.tracking.text_model.TextPyfunc and its MLmodel no loader."""
    import mlflow.pyfunc

    folder = _extract(FIXTURES / "pickled_at_1a849ab.zip", tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    model = mlflow.pyfunc.load_model(str(folder / "text_model"))
    assert type(model.unwrap_python_model()).__module__ == "rnnflow.tracking.text_model"
    assert type(model.unwrap_python_model().text_model) is rnnflow.network.predict.TextModel
    _predicts_as_recorded(model, json.loads((folder / "expected.json").read_text()))


def test_every_name_that_logged_models_use_resolves():
    from rnnflow._compat import KEPT

    missing = []
    for name in KEPT:
        module, _, attribute = name.partition(":")
        try:
            getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{name}: {exc!r}")
    assert not missing, missing


@pytest.fixture(scope="module")
def through_api(tmp_path_factory) -> Path:
    return _extract(FIXTURES / "logged_through_rnnflow_api.zip",
                    tmp_path_factory.mktemp("through_api"))


def _loader(model_folder: Path) -> str:
    import yaml

    mlmodel = yaml.safe_load((model_folder / "MLmodel").read_text())
    return mlmodel["flavors"]["python_function"]["config"]["loader"]


def test_a_text_model_logged_through_rnnflow_api_predicts_as_recorded(through_api, monkeypatch):
    import mlflow.pyfunc

    from rnnflow import api

    assert _loader(through_api / "text_model") == "rnnflow.api:load_text_model"
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    model = mlflow.pyfunc.load_model(str(through_api / "text_model"))
    assert type(model.unwrap_python_model().text_model) is api.TextModel
    _predicts_as_recorded(model, json.loads((through_api / "expected.json").read_text()))


def test_a_logged_text_model_loads_by_hand_without_mlflow(through_api):
    """What docs/compatibility.md shows: the model folder's three files into rnnflow.api."""
    from rnnflow import api

    files = through_api / "text_model" / "artifacts"
    text_model = api.load_text_model({"keras_model": str(files / "model.keras"),
                                      "vocab": str(files / "vocab.json"),
                                      "config": str(files / "config.json")})
    _predicts_as_recorded(text_model, json.loads((through_api / "expected.json").read_text()))


def test_a_text_model_naming_the_loader_of_before_rnnflow_api_predicts_the_same(
        through_api, tmp_path, monkeypatch):
    """Models logged from b183ead until rnnflow.api name rnnflow.network.predict's function;
    apart from that string (and the code/ copy, unused where rnnflow is imported) they are
    the files of today."""
    import shutil

    import mlflow.pyfunc

    folder = shutil.copytree(through_api / "text_model", tmp_path / "text_model")
    mlmodel = folder / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace(
        "loader: rnnflow.api:load_text_model", "loader: rnnflow.network.predict:load_text_model"))
    assert _loader(folder) == "rnnflow.network.predict:load_text_model"
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    model = mlflow.pyfunc.load_model(str(folder))
    _predicts_as_recorded(model, json.loads((through_api / "expected.json").read_text()))
