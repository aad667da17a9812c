import numpy as np
import pytest

from rnnflow.config import ModelConfig
from rnnflow.evaluate import score
from rnnflow.model import build_model


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_lesson_model_has_the_books_parameter_count():
    weights = np.zeros((10, 300), dtype=np.float32)
    model = build_model(ModelConfig(), weights, maxlen=400)
    # SimpleRNN: 300*50 + 50*50 + 50 = 17,550; Dense over 400*50 flattened outputs: 20,001.
    assert _trainable(model) == 37_551
    assert [layer.__class__.__name__ for layer in model.layers] == [
        "InputLayer", "Embedding", "SimpleRNN", "Dropout", "Flatten", "Dense"]


@pytest.mark.parametrize(("cell", "expected"), [
    ("lstm", 4 * (8 * 5 + 5 * 5 + 5) + 5 * 3 + 1),
    ("gru", 3 * (8 * 5 + 5 * 5 + 2 * 5) + 5 * 3 + 1),  # Keras GRU: reset_after, two biases
])
def test_other_cells(cell, expected):
    model = build_model(ModelConfig(cell=cell, num_neurons=5), np.zeros((4, 8), "float32"), 3)
    assert _trainable(model) == expected


def test_frozen_embedding_is_the_word2vec_table_with_a_zero_row():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 4)).astype(np.float32)
    weights[0] = 0
    model = build_model(ModelConfig(num_neurons=3), weights, maxlen=5)
    embed = model.get_layer("word2vec")
    assert not embed.trainable
    ids = np.array([[1, 5, 2, 0, 0]], dtype=np.int32)
    # The lookup is exactly the book's input: the word vectors, zero vectors for padding.
    np.testing.assert_array_equal(np.asarray(embed(ids))[0], weights[[1, 5, 2, 0, 0]])


def test_score_on_hand_computed_case():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    s = score(y, p)
    assert s["accuracy"] == 0.5 and s["precision"] == 0.5 and s["recall"] == 0.5
    assert s["f1"] == 0.5 and s["auc"] == 0.75
    assert s["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.4, 0.9])))
