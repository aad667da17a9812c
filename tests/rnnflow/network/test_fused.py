"""The fused recurrent layers compute what the stock Keras layers compute.

Correctness only (no timings): outputs, gradients, SGD training, masking, Bidirectional,
stacking and saving, each against keras.layers.SimpleRNN / GRU / LSTM from the same weights.
Shapes are small; 13 and 19 time steps leave a remainder after the 8-step loop iterations.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnnflow.network.fused import (  # noqa: E402
    FusedGRU,
    FusedLSTM,
    FusedSimpleRNN,
    fallback_reason,
    recurrent_layer,
)

CELLS = ("simple_rnn", "gru", "lstm")
STOCK = {"simple_rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}
FUSED = {"simple_rnn": FusedSimpleRNN, "gru": FusedGRU, "lstm": FusedLSTM}
B, T, D, U = 5, 13, 6, 5


def _rnn(kernel, cell, units=U, **kw):
    cls = FUSED[cell] if kernel == "fused" else STOCK[cell]
    return cls(units, **kw)


def _model(kernel, cell, variant, return_sequences, t=T):
    """A small model around the recurrent layer(s); same structure for both kernels."""
    inputs = keras.Input((t, D))
    if variant == "plain":
        x = _rnn(kernel, cell, return_sequences=return_sequences)(inputs)
    elif variant == "backwards":
        x = _rnn(kernel, cell, return_sequences=return_sequences, go_backwards=True)(inputs)
    elif variant == "bidirectional":
        x = keras.layers.Bidirectional(_rnn(kernel, cell, return_sequences=return_sequences))(
            inputs
        )
    elif variant == "stacked":
        x = _rnn(kernel, cell, units=U + 2, return_sequences=True)(inputs)
        x = _rnn(kernel, cell, return_sequences=return_sequences)(x)
    else:
        raise ValueError(variant)
    return keras.Model(inputs, keras.layers.Dense(1)(x))


def _pair(cell, variant, return_sequences, seed=0, t=T):
    """Stock and fused models with identical, non-trivial weights (biases included).

    Keras's initialisers are seeded too, so every machine starts from the same weights: an
    unseeded start once put the SGD test below on a diverging path (loss 0.19 -> 1.03), where
    float32 round-off grows step by step whichever kernel runs.
    """
    keras.utils.set_random_seed(seed)
    stock = _model("keras", cell, variant, return_sequences, t)
    fused = _model("fused", cell, variant, return_sequences, t)
    rng = np.random.default_rng(seed)
    weights = [
        w + rng.normal(scale=0.2, size=w.shape).astype("float32") for w in stock.get_weights()
    ]
    stock.set_weights(weights)
    fused.set_weights(weights)
    return stock, fused


def _inputs(seed=1, b=B, t=T):
    return np.random.default_rng(seed).normal(size=(b, t, D)).astype("float32")


def _loss_and_grads(model, x, mask=None):
    with tf.GradientTape() as tape:
        y = model(x) if mask is None else model(x, mask=mask)
        loss = tf.reduce_sum(tf.square(y - 0.3))
    return y.numpy(), tape.gradient(loss, model.trainable_weights)


def _assert_grads_close(g_stock, g_fused, rtol=1e-5):
    assert len(g_stock) == len(g_fused)
    for a, b in zip(g_stock, g_fused, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        scale = max(np.abs(a).max(), 1e-3)
        assert np.abs(a - b).max() / scale < rtol


VARIANTS = ("plain", "backwards", "bidirectional", "stacked")


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell", CELLS)
def test_outputs_and_gradients_equal_stock(cell, variant, return_sequences):
    stock, fused = _pair(cell, variant, return_sequences)
    x = _inputs()
    y_stock, g_stock = _loss_and_grads(stock, x)
    y_fused, g_fused = _loss_and_grads(fused, x)
    np.testing.assert_allclose(y_fused, y_stock, atol=1e-5, rtol=0)
    _assert_grads_close(g_stock, g_fused)


@pytest.mark.parametrize("cell", CELLS)
def test_weights_have_the_stock_layout(cell):
    stock, fused = _rnn("keras", cell), _rnn("fused", cell)
    stock.build((None, T, D))
    fused.build((None, T, D))
    assert fused.fused_unsupported() is None  # the fused kernel runs, not the stock loop
    assert [w.shape for w in fused.weights] == [w.shape for w in stock.weights]
    assert [w.name for w in fused.weights] == [w.name for w in stock.weights]
    assert [w.path.split("/", 1)[1] for w in fused.weights] == [
        w.path.split("/", 1)[1] for w in stock.weights
    ]


@pytest.mark.parametrize("cell", CELLS)
def test_sgd_training_gives_the_same_losses(cell):
    # Stacked: sequences into a last-state layer, so both kinds of loop train.
    stock, fused = _pair(cell, "stacked", return_sequences=False, seed=2)
    x = _inputs(seed=3, b=8, t=19)[:, :T]
    y = np.random.default_rng(4).normal(size=(8, 1)).astype("float32")
    losses = {}
    for name, model in (("stock", stock), ("fused", fused)):
        opt = keras.optimizers.SGD(learning_rate=0.05)
        out = []
        for _ in range(30):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x) - y))
            grads = tape.gradient(loss, model.trainable_weights)
            opt.apply_gradients(zip(grads, model.trainable_weights, strict=True))
            out.append(float(loss))
        losses[name] = np.array(out)
    # It trained, on a steadily falling path: on a diverging one round-off is amplified and
    # the comparison would measure the path, not the kernel.
    assert np.all(np.diff(losses["stock"]) < 0)
    np.testing.assert_allclose(losses["fused"], losses["stock"], atol=1e-6, rtol=1e-5)


LENGTHS = (13, 7, 1, 10, 8)


def _padded(x, padding):
    """x with each row cut to its length in LENGTHS and zero-padded post or pre; its mask."""
    mask = np.zeros(x.shape[:2], bool)
    for i, n in enumerate(LENGTHS):
        if padding == "post":
            mask[i, :n] = True
        else:
            mask[i, T - n :] = True
    return np.where(mask[..., None], x, 0.0).astype("float32"), mask


@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("variant", ["plain", "backwards", "bidirectional"])
@pytest.mark.parametrize("cell", CELLS)
def test_masked_batch_equals_stock_and_each_sequence_alone(cell, variant, padding):
    kw = {"go_backwards": True} if variant == "backwards" else {}
    rng = np.random.default_rng(5)
    x, mask = _padded(_inputs(seed=6), padding)
    for return_sequences in (False, True):
        layers = {}
        for kernel in ("keras", "fused"):
            layer = _rnn(kernel, cell, return_sequences=return_sequences, **kw)
            if variant == "bidirectional":
                layer = keras.layers.Bidirectional(layer)
            layer.build((None, T, D))
            layers[kernel] = layer
        weights = [w + rng.normal(scale=0.2, size=w.shape) for w in layers["keras"].get_weights()]
        for layer in layers.values():
            layer.set_weights(weights)
        ys = {}
        for kernel, layer in layers.items():
            with tf.GradientTape() as tape:
                y = layer(x, mask=mask)
                loss = tf.reduce_sum(tf.square(y - 0.3))
            ys[kernel] = (y.numpy(), tape.gradient(loss, layer.trainable_weights))
        np.testing.assert_allclose(ys["fused"][0], ys["keras"][0], atol=1e-5, rtol=0)
        _assert_grads_close(ys["keras"][1], ys["fused"][1])

        # Each sequence alone, at its true length, through the fused layer.
        for i, n in enumerate(LENGTHS):
            valid = x[i : i + 1][mask[i : i + 1]][None]
            alone = layers["fused"](valid).numpy()[0]
            batched = ys["fused"][0][i]
            if not return_sequences:
                np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)
            elif variant == "plain":
                np.testing.assert_allclose(batched[mask[i]], alone, atol=1e-5, rtol=0)
            elif variant == "backwards":
                # Outputs in processing order: the valid steps come first, reversed.
                order = np.flatnonzero(mask[i][::-1])
                np.testing.assert_allclose(batched[order], alone, atol=1e-5, rtol=0)
            else:
                np.testing.assert_allclose(batched[mask[i]], alone, atol=1e-5, rtol=0)
                assert n == T or np.all(batched[~mask[i]] == 0)  # Keras zeros masked outputs


@pytest.mark.parametrize("cell", CELLS)
def test_embedding_mask_flows_through_a_stacked_model(cell):
    def build(kernel):
        inputs = keras.Input((T,), dtype="int32")
        x = keras.layers.Embedding(30, D, mask_zero=True)(inputs)
        x = _rnn(kernel, cell, return_sequences=True)(x)
        x = _rnn(kernel, cell)(x)
        return keras.Model(inputs, keras.layers.Dense(1)(x))

    stock, fused = build("keras"), build("fused")
    fused.set_weights(stock.get_weights())
    ids = np.random.default_rng(7).integers(1, 30, size=(B, T))
    for i, n in enumerate(LENGTHS):
        ids[i, n:] = 0
    np.testing.assert_allclose(fused(ids).numpy(), stock(ids).numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_save_load_and_weights_cross_load(cell, tmp_path):
    stock, fused = _pair(cell, "stacked", return_sequences=False, seed=8)
    x = _inputs(seed=9)
    expected = fused.predict(x, verbose=0)

    path = tmp_path / "fused.keras"
    fused.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded.layers[1]) is FUSED[cell]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)

    bi = _model("fused", cell, "bidirectional", return_sequences=True)
    bi_path = tmp_path / "bi.keras"
    bi.save(bi_path)
    bi_loaded = keras.models.load_model(bi_path, safe_mode=True)
    np.testing.assert_array_equal(bi_loaded.predict(x, verbose=0), bi.predict(x, verbose=0))

    # Weights cross-load both ways, in Keras's layer order: a saved stock model's weights
    # into a fresh fused model, and the fused model's into a fresh stock model. (Keras's
    # .weights.h5 files are keyed by class name, so the transfer goes through get/set_weights.)
    stock_path = tmp_path / "stock.keras"
    stock.save(stock_path)
    fresh_fused = _model("fused", cell, "stacked", return_sequences=False)
    fresh_fused.set_weights(keras.models.load_model(stock_path, safe_mode=True).get_weights())
    np.testing.assert_allclose(
        fresh_fused.predict(x, verbose=0), stock.predict(x, verbose=0), atol=1e-5, rtol=0
    )
    fresh_stock = _model("keras", cell, "stacked", return_sequences=False)
    fresh_stock.set_weights(loaded.get_weights())
    np.testing.assert_allclose(fresh_stock.predict(x, verbose=0), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_unknown_length_and_graph_mode(cell):
    stock, fused = (
        _rnn("keras", cell, return_sequences=True),
        _rnn("fused", cell, return_sequences=True),
    )
    stock.build((None, None, D))
    fused.build((None, None, D))
    fused.set_weights(stock.get_weights())
    run = tf.function(lambda x: fused(x), input_signature=[tf.TensorSpec((None, None, D))])
    x = _inputs(seed=10)
    np.testing.assert_allclose(run(x).numpy(), stock(x).numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_input_dropout_uses_the_stock_mask(cell):
    stock = _rnn("keras", cell, dropout=0.4, seed=3)
    fused = _rnn("fused", cell, dropout=0.4, seed=3)
    stock.build((None, T, D))
    fused.build((None, T, D))
    fused.set_weights(stock.get_weights())
    x = _inputs(seed=11)
    np.testing.assert_allclose(
        fused(x, training=True).numpy(), stock(x, training=True).numpy(), atol=1e-5, rtol=0
    )


def test_recurrent_layer_gives_fused_layers_and_says_when_it_falls_back():
    for cell in CELLS:
        layer, reason = recurrent_layer(cell, 7, return_sequences=True, name=f"r_{cell}")
        assert type(layer) is FUSED[cell] and reason is None
        assert layer.name == f"r_{cell}" and layer.units == 7 and layer.return_sequences
        layer, reason = recurrent_layer(cell, 7, return_sequences=False, kernel="keras")
        assert type(layer) is STOCK[cell] and reason is None

    for cell, kw in [
        ("simple_rnn", {"recurrent_dropout": 0.2}),
        ("gru", {"recurrent_dropout": 0.2}),
        ("lstm", {"recurrent_dropout": 0.2}),
        ("simple_rnn", {"activation": "relu"}),
        ("lstm", {"recurrent_activation": "hard_sigmoid"}),
        ("gru", {"reset_after": False}),
        ("gru", {"dtype": "mixed_float16"}),
    ]:
        layer, reason = recurrent_layer(cell, 7, return_sequences=False, **kw)
        assert type(layer) is STOCK[cell], kw
        assert isinstance(reason, str) and "\n" not in reason and cell in reason
        assert fallback_reason(cell, **kw)

    with pytest.raises(ValueError):
        recurrent_layer("transformer", 7, return_sequences=False)
    with pytest.raises(ValueError):
        recurrent_layer("gru", 7, return_sequences=False, kernel="cuda")


def test_config_round_trip_keeps_steps():
    layer = FusedGRU(6, steps=4, return_sequences=True, go_backwards=True)
    clone = FusedGRU.from_config(layer.get_config())
    assert clone.steps == 4 and clone.go_backwards and clone.return_sequences
    assert keras.saving.get_registered_name(FusedGRU) == "rnnflow>FusedGRU"


# --- TokenVectors: the fused layer projects each distinct token once -----------------------------
def _lookup_model(kernel, cell, variant, mask_zero, trainable, vocab=9, t=T):
    """ids -> word vectors (TokenVectors for fused, Embedding for stock) -> recurrent -> Dense."""
    from rnnflow.network.fused import TokenVectors

    lookup = TokenVectors if kernel == "fused" else keras.layers.Embedding
    inputs = keras.Input((t,), dtype="int32")
    x = lookup(vocab, D, mask_zero=mask_zero, trainable=trainable)(inputs)
    if variant == "bidirectional":
        x = keras.layers.Bidirectional(_rnn(kernel, cell, return_sequences=True))(x)
    else:
        x = _rnn(kernel, cell, return_sequences=True, go_backwards=variant == "backwards")(x)
    return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(x)))


# With mask_zero the masked sequences reach a Flatten, which warns that it drops the mask: here
# it is meant to (both models flatten the same masked outputs), as no rnnflow model does.
@pytest.mark.filterwarnings("ignore:Layer 'flatten.*' .* was passed an input with a mask")
@pytest.mark.parametrize(("variant", "mask_zero", "trainable"), [
    ("plain", False, False), ("plain", True, False), ("backwards", False, True),
    ("bidirectional", True, True)])
@pytest.mark.parametrize("cell", CELLS)
def test_distinct_token_projection_gives_the_stock_outputs_and_gradients(
        cell, variant, mask_zero, trainable):
    stock = _lookup_model("keras", cell, variant, mask_zero, trainable)
    fused = _lookup_model("fused", cell, variant, mask_zero, trainable)
    rng = np.random.default_rng(3)
    weights = [w + rng.normal(scale=0.3, size=w.shape).astype("float32")
               for w in stock.get_weights()]
    stock.set_weights(weights)
    fused.set_weights(weights)
    ids = rng.integers(1, 9, size=(B, T)).astype("int32")  # 9 ids over 65 positions: repeats
    ids[0, 9:] = 0
    ids[3, :4] = 0
    y_stock, g_stock = _loss_and_grads(stock, ids)
    y_fused, g_fused = _loss_and_grads(fused, ids)
    np.testing.assert_allclose(y_fused, y_stock, rtol=1e-5, atol=1e-5)
    dense = [[tf.convert_to_tensor(g) for g in grads] for grads in (g_stock, g_fused)]
    _assert_grads_close(*dense)  # the table's gradient, if trainable, is IndexedSlices


def _traced_ops(model, training):
    fn = tf.function(lambda ids: model(ids, training=training))
    graph = fn.get_concrete_function(tf.TensorSpec((None, T), tf.int32)).graph
    return {op.type for op in graph.get_operations()}


def test_the_fused_layer_projects_distinct_tokens_only_behind_token_vectors():
    fused = _lookup_model("fused", "lstm", "plain", False, False)
    assert "Unique" in _traced_ops(fused, training=True)
    assert "Unique" in _traced_ops(fused, training=False)
    # Input dropout draws a mask per review, so every position is projected.
    inputs = keras.Input((T,), dtype="int32")
    from rnnflow.network.fused import TokenVectors

    x = FusedLSTM(U, dropout=0.3)(TokenVectors(9, D)(inputs))
    dropped = keras.Model(inputs, x)
    assert "Unique" not in _traced_ops(dropped, training=True)
    assert "Unique" in _traced_ops(dropped, training=False)
    # A fused layer on plain vectors (no lookup in front) never sees ids.
    plain = _model("fused", "lstm", "plain", False)
    fn = tf.function(lambda v: plain(v, training=True))
    graph = fn.get_concrete_function(tf.TensorSpec((None, T, D), tf.float32)).graph
    assert "Unique" not in {op.type for op in graph.get_operations()}


def test_a_later_lookup_does_not_leak_into_another_call():
    """The record of the latest lookup is matched by tensor identity: a fused layer called on
    other vectors of the same shape computes with those vectors."""
    from rnnflow.network.fused import TokenVectors

    lookup = TokenVectors(9, D)
    rnn = FusedGRU(U, return_sequences=True)
    stock = keras.layers.GRU(U, return_sequences=True)
    ids = np.random.default_rng(4).integers(0, 9, size=(B, T)).astype("int32")
    looked_up = lookup(ids)
    other = tf.random.normal(looked_up.shape, seed=1)
    rnn(other)
    stock(other)
    stock.set_weights(rnn.get_weights())
    np.testing.assert_allclose(rnn(other), stock(other), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rnn(looked_up), stock(looked_up), rtol=1e-5, atol=1e-6)
