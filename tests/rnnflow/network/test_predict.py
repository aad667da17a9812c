"""What a text model answers: every kind names the predicted class in a `class` column (the
sentiment pair in words, other two-class labels by name, k classes as their label), and the
logged signature lists exactly the columns it answers with."""

from __future__ import annotations

import numpy as np
import pytest

from rnnflow.config import PadConfig, TokenizeConfig
from rnnflow.network.predict import (
    NO_EVIDENCE_CLASS,
    TextModel,
    load_text_model,
    outputs,
    save_text_model,
)

TEXTS = ["good good film", "bad bad film", "zzz", ""]


class _ShareOfGood:
    """A stand-in network: the probability of class 1 is the share of `good` (id 1) among a
    text's tokens, so which class each text gets is known without training anything."""

    def predict(self, x, verbose=0, batch_size=None):  # noqa: ARG002 - Keras' signature
        tokens = (x > 0).sum(axis=1)
        return ((x == 1).sum(axis=1) / np.maximum(tokens, 1)).reshape(-1, 1)

    def save(self, path):
        path.write_bytes(b"")  # save_text_model writes one; these tests never load it


def two_class_model(binary_names: list[str] | None) -> TextModel:
    """`good` for class 1, `bad` for class 0, `film` in between; named `binary_names`."""
    return TextModel(_ShareOfGood(), ["good", "bad", "film"], TokenizeConfig(),
                     PadConfig(maxlen=4), binary_names=binary_names)


@pytest.mark.parametrize(("binary_names", "words"), [
    (None, ["negative", "positive"]),  # logged before models kept names: sentiment
    (["neg", "pos"], ["negative", "positive"]),  # the sentiment pair, named
    (["ham", "spam"], ["ham", "spam"]),
    (["Inland", "Sport"], ["Inland", "Sport"]),
])
def test_two_classes_name_the_predicted_class(binary_names, words):
    out = two_class_model(binary_names).predict(TEXTS)
    assert out.label.tolist() == [1, 0, -1, -1]
    assert out["class"].tolist() == [words[1], words[0], NO_EVIDENCE_CLASS, NO_EVIDENCE_CLASS]
    # The probability stays that of class 1, whatever the class is called.
    assert out.probability.tolist() == pytest.approx([2 / 3, 0.0, 0.5, 0.5])


def test_the_names_survive_save_and_load(tmp_path, monkeypatch):
    saved = save_text_model(two_class_model(["ham", "spam"]), tmp_path)
    monkeypatch.setattr("rnnflow.network.model.load_model", lambda path: _ShareOfGood())
    loaded = load_text_model({k: str(v) for k, v in saved.items()})
    assert loaded.predict(TEXTS[:2])["class"].tolist() == ["spam", "ham"]


def test_the_signature_lists_the_columns_answered():
    from tests.rnnflow.network.test_classes import _text_model

    for text_model in (two_class_model(["ham", "spam"]), two_class_model(None),
                       _text_model()):
        out = text_model.predict(["good film w1", "zzz"])
        assert list(outputs(text_model)) == list(out.columns)
        assert out["class"].map(type).eq(str).all()
