"""`rnnflow predict` names the predicted class: of a model of more than two classes, of a
two-class model by its class names, of a sentiment model as positive/negative; with the run
lookup replaced."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from rnnflow import tracking
from rnnflow.cli import app
from tests.rnnflow.network.test_classes import _text_model
from tests.rnnflow.network.test_predict import TEXTS, two_class_model


class _Pyfunc:
    def __init__(self, text_model):
        self.text_model = text_model

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.text_model.predict(list(frame.text))


def _as_run(monkeypatch, text_model):
    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    monkeypatch.setattr(tracking, "resolve_run", lambda run, experiment: "r1")
    monkeypatch.setattr(tracking, "load_text_model",
                        lambda run_id, quiet=False: _Pyfunc(text_model))
    return text_model


@pytest.fixture
def k_class_run(monkeypatch):
    return _as_run(monkeypatch, _text_model())


def test_predict_prints_the_class_and_its_probability(k_class_run):
    texts = ["felicità w3 l'amore", "nothing known"]
    result = CliRunner().invoke(app, ["predict", *texts])
    assert result.exit_code == 0, result.output
    expected = k_class_run.predict(texts)
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [r[1] for r in rows] == list(expected.label)
    assert [float(r[0]) for r in rows] == pytest.approx(list(expected.probability), abs=1e-3)
    assert rows[1][1] == "no opinion" and [r[2] for r in rows] == texts


@pytest.mark.parametrize(("binary_names", "expected"), [
    (["ham", "spam"], ["spam", "ham", "unknown"]),
    (None, ["positive", "negative", "unknown"]),  # sentiment prints as it always did
])
def test_predict_names_a_two_class_models_classes(monkeypatch, binary_names, expected):
    """The second column is the class the model answers (what a served model returns in its
    `class` column); the first stays the probability of class 1."""
    text_model = _as_run(monkeypatch, two_class_model(binary_names))
    texts = TEXTS[:3]
    result = CliRunner().invoke(app, ["predict", *texts])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [r[1] for r in rows] == expected
    answered = text_model.predict(texts)
    assert [r[1] for r in rows] == answered["class"].tolist()
    assert [float(r[0]) for r in rows] == pytest.approx(list(answered.probability), abs=1e-3)
    assert [r[2] for r in rows] == texts
