"""`train.loss_steps: all` (rnnflow/network/steps.py): the loss at every real step against a
hand computation, the fused kernels against the stock layers, the prediction twin, and a
`last` model unchanged (tests/fixtures/model_keys.json, written by the code before the
setting)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnflow.config import ModelConfig
from rnnflow.network.model import build_model, load_model, prediction_twin
from rnnflow.network.steps import StepAccuracy, StepLoss

FIXTURE = Path(__file__).parents[2] / "fixtures" / "model_keys.json"
# Two reviews post-padded to 4 steps: 3 real tokens, then 1.
X = np.array([[1, 2, 3, 0], [2, 0, 0, 0]], dtype=np.int32)
LENGTHS = [3, 1]


def _table(seed=0, rows=5, dim=3):
    table = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    table[0] = 0
    return table


def _randomised(model, seed=1):
    """Nonzero biases and larger weights, so every term of the hand computation counts."""
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        w.assign(rng.normal(scale=0.7, size=w.shape).astype(np.float32))
    return model


def _states(model, table, ids):
    """SimpleRNN states by hand: h_t = tanh(e_t W + h_{t-1} U + b), over one review's ids."""
    w, u, b = (np.asarray(v, dtype=np.float64) for v in model.get_layer("simple_rnn")
               .cell.get_weights())
    h, out = np.zeros(u.shape[0]), []
    for i in ids:
        h = np.tanh(table[i].astype(np.float64) @ w + h @ u + b)
        out.append(h)
    return np.array(out)


def _cross_entropy(p, y):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    if p.shape[-1] == 1:
        return -(y * np.log(p[..., 0]) + (1 - y) * np.log(1 - p[..., 0]))
    return -np.log(p[..., y])


def _compiled(model):
    model.compile(optimizer="sgd", loss=StepLoss(), metrics=[StepAccuracy()])
    return model


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_loss_is_the_mean_over_real_steps_of_each_steps_cross_entropy(n_classes):
    table = _table()
    cfg = ModelConfig(num_neurons=2, return_sequences=False, dropout=0.0)
    model = _compiled(_randomised(build_model(cfg, table, 4, mask=True, steps=True,
                                              n_classes=n_classes)))
    y = np.array([1, 0])
    dense_w, dense_b = (np.asarray(v, np.float64) for v in model.layers[-1].get_weights())
    terms = []
    for row, n, label in zip(X, LENGTHS, y, strict=True):
        logits = _states(model, table, row[:n]) @ dense_w + dense_b
        p = (1 / (1 + np.exp(-logits)) if n_classes == 2
             else np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
        terms += list(_cross_entropy(p, label))
    assert len(terms) == 4  # the padded steps are not scored
    loss = model.evaluate(X, y, batch_size=2, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(loss, np.mean(terms), rtol=1e-5)


def test_a_flatten_network_reads_the_steps_so_far_at_every_step():
    table = _table(seed=2)
    cfg = ModelConfig(num_neurons=2, return_sequences=True, dropout=0.0)
    model = _compiled(_randomised(build_model(cfg, table, 4, mask=True, steps=True), seed=3))
    y = np.array([0, 1])
    kernel, bias = (np.asarray(v, np.float64) for v in model.layers[-1].get_weights())
    per_step = kernel.reshape(4, 2, 1)  # the Dense's rows, step by step
    terms, outputs = [], model.predict(X, verbose=0)
    for b, (row, n, label) in enumerate(zip(X, LENGTHS, y, strict=True)):
        h = _states(model, table, row[:n])
        for t in range(n):
            logit = sum(h[s] @ per_step[s] for s in range(t + 1)) + bias
            p = 1 / (1 + np.exp(-logit))
            np.testing.assert_allclose(outputs[b, t], p, rtol=1e-5)
            terms.append(_cross_entropy(p[None], label)[0])
    loss = model.evaluate(X, y, batch_size=2, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(loss, np.mean(terms), rtol=1e-5)


@pytest.mark.parametrize("cfg", [
    ModelConfig(num_neurons=3, return_sequences=True),
    ModelConfig(cell="gru", num_neurons=3, return_sequences=False),
    ModelConfig(cell="lstm", num_neurons=3, return_sequences=False, num_layers=2),
])
def test_the_prediction_twin_outputs_the_last_real_step(cfg):
    table = _table(seed=4)
    model = _randomised(build_model(cfg, table, 4, mask=True, steps=True, n_classes=3))
    twin = prediction_twin(model, cfg)
    assert twin.output_shape == (None, 3)
    steps = model.predict(X, verbose=0)
    last = steps[np.arange(len(X)), np.array(LENGTHS) - 1]
    np.testing.assert_allclose(twin.predict(X, verbose=0), last, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(steps[:, -1], last, rtol=1e-5, atol=1e-6)  # carried


def test_onehot_inputs_train_every_step_and_the_twin_predicts_the_same():
    cfg = ModelConfig(cell="gru", num_neurons=3, return_sequences=False)
    model = _compiled(build_model(cfg, None, None, onehot_tokens=4, mask=True, steps=True,
                                  seed=5))
    model.fit(X, np.array([1, 0]), epochs=2, verbose=0)
    twin = prediction_twin(model, cfg)
    np.testing.assert_allclose(twin.predict(X, verbose=0)[:, 0],
                               model.predict(X, verbose=0)[[0, 1], [2, 0], 0], rtol=1e-5)


def _pair(cfg, seed):
    """The same `all` network and weights with the fused and with the stock layers."""
    table = _table(seed=seed, rows=9, dim=5)
    stock = build_model(cfg.model_copy(update={"kernel": "keras"}), table, 13, mask=True,
                        steps=True, seed=seed)
    fused = build_model(cfg, table, 13, mask=True, steps=True, seed=seed)
    fused.set_weights(_randomised(stock, seed).get_weights())
    return stock, fused


def _batch(seed=6):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 9, size=(5, 13)).astype(np.int32)
    for row, n in zip(x, (13, 7, 1, 10, 4), strict=True):
        row[n:] = 0
    return x, rng.integers(0, 2, size=5)


@pytest.mark.parametrize("cfg", [
    ModelConfig(num_neurons=4, dropout=0.0),
    ModelConfig(cell="simple_rnn", num_neurons=4, return_sequences=False, dropout=0.0),
    ModelConfig(cell="gru", num_neurons=4, return_sequences=False, dropout=0.0),
    ModelConfig(cell="lstm", num_neurons=4, return_sequences=False, dropout=0.0),
])
def test_fused_and_stock_give_equal_outputs_gradients_and_losses(cfg):
    from rnnflow.network.model import kernel_used

    stock, fused = _pair(cfg, seed=7)
    assert kernel_used(fused, cfg)[0] == "fused" and kernel_used(stock, cfg)[0] == "keras"
    x, y = _batch()
    loss = StepLoss()
    found = {}
    for name, model in (("stock", stock), ("fused", fused)):
        with tf.GradientTape() as tape:
            out = model(x)
            value = loss(y, out)
        found[name] = (out.numpy(), float(value),
                       tape.gradient(value, model.trainable_weights))
    np.testing.assert_allclose(found["fused"][0], found["stock"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(found["fused"][1], found["stock"][1], rtol=1e-5)
    for a, b in zip(found["stock"][2], found["fused"][2], strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert np.abs(a - b).max() / max(np.abs(a).max(), 1e-3) < 1e-5
    # And over training: SGD on the same path, epoch losses equal.
    histories = {}
    for name, model in (("stock", stock), ("fused", fused)):
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=StepLoss(),
                      metrics=[StepAccuracy()])
        histories[name] = model.fit(x, y, batch_size=5, epochs=10, shuffle=False,
                                    verbose=0).history["loss"]
    assert histories["stock"][-1] < histories["stock"][0]
    np.testing.assert_allclose(histories["fused"], histories["stock"], rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_every_step_saves_and_loads_with_its_loss(tmp_path):
    cfg = ModelConfig(num_neurons=3, return_sequences=False)
    model = _compiled(build_model(cfg, _table(), None, mask=True, steps=True, seed=8))
    model.fit(X, np.array([1, 0]), epochs=1, verbose=0)
    model.save(tmp_path / "last.keras")
    again = load_model(tmp_path / "last.keras")
    assert isinstance(again.loss, StepLoss)
    np.testing.assert_allclose(again.predict(X, verbose=0), model.predict(X, verbose=0))
    again.fit(X, np.array([1, 0]), epochs=1, verbose=0)  # continued training goes on


def test_accuracy_is_the_predictions():
    metric = StepAccuracy()
    # Two reviews, three steps: only the last step is the prediction.
    metric.update_state(np.array([1, 0]), np.array([[[0.1], [0.2], [0.9]],
                                                    [[0.1], [0.8], [0.7]]]))
    assert float(metric.result()) == 0.5


def _keys():
    import importlib.util

    spec = importlib.util.spec_from_file_location("model_keys", FIXTURE.with_suffix(".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_last_model_is_the_model_of_before():
    module = _keys()
    before = json.loads(FIXTURE.read_text())["models"]
    assert set(before) == set(module.MODELS)
    for name, shape in module.MODELS.items():
        assert module.describe(module.build(*shape)) == before[name], name


# Param keys added since the fixture's commit by other settings (the small-corpus embeddings
# and pooling), not by this one.
ADDED_BESIDE = {"embedding.min_n", "embedding.max_n", "model.pooling"}


def test_the_one_param_key_added_is_the_setting():
    """A run logs every key it logged before, and the setting besides (its value `last` for a
    vanilla run), so `mlflow ui` can tell the two ways apart."""
    from rnnflow.config import Point

    before = set(json.loads(FIXTURE.read_text())["params"])
    assert set(Point().flat()) - before - ADDED_BESIDE == {"train.loss_steps"}
    assert before <= set(Point().flat()) and Point().flat()["train.loss_steps"] == "last"
