"""One-hot inputs as a row lookup: the same function and gradients as a stock recurrent layer fed
explicit one-hot vectors, the right trainable parameters, and a selection that never trains."""

import numpy as np
import pytest

from rnnflow.config import ModelConfig
from rnnflow.network.model import build_model, load_model, stock_twin

V, UNITS = 6, 3
GATES = {"simple_rnn": 1, "gru": 3, "lstm": 4}


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _ids():
    # Padding (0) after, before and inside nothing: the lesson's unmasked zero vectors.
    return np.array([[1, 6, 3, 3, 0, 0], [0, 0, 2, 5, 4, 1], [6, 6, 6, 6, 6, 6]], np.int32)


def _onehot(ids):
    """The explicit one-hot array: id i -> e_{i-1} over V tokens, padding -> the zero vector."""
    out = np.zeros((*ids.shape, V), np.float32)
    rows, cols = np.nonzero(ids)
    out[rows, cols, ids[rows, cols] - 1] = 1.0
    return out


@pytest.mark.parametrize("kernel", ["fused", "keras"])
@pytest.mark.parametrize("cell", ["simple_rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lookup_equals_a_stock_layer_fed_one_hot_vectors(cell, kernel, bidirectional):
    """Outputs at every step, and gradients w.r.t. W, U and b, against the stock layer with the
    same weights fed float one-hot inputs (each direction its own W)."""
    import keras
    import tensorflow as tf

    from rnnflow.network.fused import recurrent_layer
    from rnnflow.network.onehot import OneHotProjection, pinned

    rng = np.random.default_rng(0)
    dirs = 2 if bidirectional else 1
    width = GATES[cell] * UNITS

    stock = {"simple_rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU,
             "lstm": keras.layers.LSTM}[cell](UNITS, return_sequences=True)
    ref_in = keras.Input((6, V))
    ref = keras.Model(ref_in, (keras.layers.Bidirectional(stock) if bidirectional
                               else stock)(ref_in))

    def layer(backwards):
        rnn, _ = recurrent_layer(cell, UNITS, return_sequences=True, kernel=kernel,
                                 **({"go_backwards": True} if backwards else {}))
        return pinned(rnn, int(backwards))

    ids_in = keras.Input((6,), dtype="int32")
    x = OneHotProjection(V, dirs * width, blocks=dirs)(ids_in)
    x = (keras.layers.Bidirectional(layer(False), backward_layer=layer(True)) if bidirectional
         else layer(False))(x)
    ours = keras.Model(ids_in, x)

    # Reference weights, per direction: kernel W (V x width), recurrent U, bias b.
    ref_weights = [rng.normal(size=w.shape).astype(np.float32) for w in ref.get_weights()]
    ref.set_weights(ref_weights)
    per_dir = len(ref_weights) // dirs
    kernels = [ref_weights[d * per_dir] for d in range(dirs)]
    rest = [w for d in range(dirs) for w in ref_weights[d * per_dir + 1:(d + 1) * per_dir]]
    ours_weights = ours.trainable_weights
    assert [tuple(w.shape) for w in ours_weights] == (
        [(V, dirs * width)] + [w.shape for w in rest])  # W, then U and b: nothing else trains
    for var, value in zip(ours_weights, [np.concatenate(kernels, axis=1), *rest], strict=True):
        var.assign(value)

    ids = _ids()
    probe = rng.normal(size=(3, 6, dirs * UNITS)).astype(np.float32)
    with tf.GradientTape(persistent=True) as tape:
        out_ref = ref(_onehot(ids))
        out_ours = ours(ids)
        loss_ref = tf.reduce_sum(out_ref * probe)
        loss_ours = tf.reduce_sum(out_ours * probe)
    np.testing.assert_allclose(out_ours, out_ref, rtol=1e-5, atol=1e-6)

    g_ref = tape.gradient(loss_ref, ref.trainable_weights)
    g_ours = [tf.convert_to_tensor(g) for g in tape.gradient(loss_ours, ours_weights)]
    g_kernels = [g_ref[d * per_dir] for d in range(dirs)]
    g_rest = [g for d in range(dirs) for g in g_ref[d * per_dir + 1:(d + 1) * per_dir]]
    np.testing.assert_allclose(g_ours[0], np.concatenate(g_kernels, axis=1), rtol=1e-4,
                               atol=1e-5)
    for ours_g, ref_g in zip(g_ours[1:], g_rest, strict=True):
        np.testing.assert_allclose(ours_g, ref_g, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("cfg", "expected"), [
    # The lesson's SimpleRNN(3) over a one-hot input of V tokens, then Dense over 6 x 3 outputs.
    (ModelConfig(num_neurons=UNITS), V * 3 + 3 * 3 + 3 + 6 * 3 + 1),
    (ModelConfig(cell="lstm", num_neurons=UNITS, return_sequences=False, bidirectional=True,
                 num_layers=2),
     2 * (4 * (V * 3 + 3 * 3 + 3)) + 2 * (4 * (6 * 3 + 3 * 3 + 3)) + 6 + 1),
])
def test_trainable_params_are_a_one_hot_inputs_own(cfg, expected):
    model = build_model(cfg, None, 6, onehot_tokens=V)
    assert _trainable(model) == expected


@pytest.mark.parametrize("kernel", ["fused", "keras"])
def test_checkpoint_load_and_continue_keep_the_selection_fixed(tmp_path, kernel):
    cfg = ModelConfig(cell="gru", num_neurons=UNITS, return_sequences=False, kernel=kernel,
                      bidirectional=True)
    model = build_model(cfg, None, None, onehot_tokens=V, mask=True)
    model.compile("rmsprop", "binary_crossentropy")
    ids, y = _ids(), np.array([1.0, 0.0, 1.0], np.float32)
    fixed = [w.numpy().copy() for w in model.non_trainable_weights]
    lookup = model.get_layer("onehot").kernel.numpy().copy()
    model.fit(ids, y, epochs=1, verbose=0)
    assert not np.array_equal(model.get_layer("onehot").kernel.numpy(), lookup)  # W trains
    model.save(tmp_path / "last.keras")
    loaded = load_model(tmp_path / "last.keras")  # safe mode
    assert _trainable(loaded) == _trainable(model)
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    loaded.fit(ids, y, epochs=2, verbose=0)  # continued, with the saved optimizer state
    for before, after in zip(fixed, loaded.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(after.numpy(), before)
    twin = stock_twin(loaded, cfg)
    assert not any(type(layer).__module__.startswith("rnnflow") for layer in twin.layers)
    np.testing.assert_allclose(twin.predict(ids, verbose=0), loaded.predict(ids, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_padding_reads_the_zero_vector_and_trains_nothing():
    import tensorflow as tf

    from rnnflow.network.onehot import OneHotProjection

    layer = OneHotProjection(V, 4)
    layer.build((1, 3))
    ids = np.array([[0, 2, 0]], np.int32)
    with tf.GradientTape() as tape:
        out = layer(ids)
        total = tf.reduce_sum(out)
    np.testing.assert_array_equal(out[0, 0], 0.0)
    np.testing.assert_array_equal(out[0, 1], layer.kernel.numpy()[1])
    (grad,) = tape.gradient(total, layer.trainable_weights)
    grad = tf.convert_to_tensor(grad).numpy()
    assert np.count_nonzero(grad.any(axis=1)) == 1 and grad[1].all()  # only token 2's row
