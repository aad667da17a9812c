import numpy as np
import pytest

from rnnflow.config import ModelConfig
from rnnflow.network.evaluate import score
from rnnflow.network.model import build_model, stock_twin


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(("kernel", "lookup", "rnn"), [
    ("fused", "TokenVectors", "FusedSimpleRNN"), ("keras", "Embedding", "SimpleRNN")])
def test_lesson_model_has_the_books_parameter_count(kernel, lookup, rnn):
    import keras

    weights = np.zeros((10, 300), dtype=np.float32)
    model = build_model(ModelConfig(kernel=kernel), weights, maxlen=400)
    # SimpleRNN: 300*50 + 50*50 + 50 = 17,550; Dense over 400*50 flattened outputs: 20,001.
    assert _trainable(model) == 37_551
    assert [layer.__class__.__name__ for layer in model.layers] == [
        "InputLayer", lookup, rnn, "Dropout", "Flatten", "Dense"]
    assert isinstance(model.layers[2], keras.layers.SimpleRNN)  # the fused layer is one too
    assert isinstance(model.layers[1], keras.layers.Embedding)  # and TokenVectors is one


@pytest.mark.parametrize("cfg", [
    ModelConfig(num_neurons=4),
    ModelConfig(cell="gru", num_neurons=3, return_sequences=False, bidirectional=True),
    ModelConfig(cell="lstm", num_neurons=3, num_layers=2, return_sequences=False),
])
def test_stock_twin_computes_the_same_function_without_rnnflow_layers(cfg):
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(9, 5)).astype(np.float32)
    model = build_model(cfg, weights, maxlen=11)
    twin = stock_twin(model, cfg)
    assert not any(type(layer).__module__.startswith("rnnflow") for layer in _all_layers(twin))
    ids = rng.integers(0, 9, size=(6, 11)).astype(np.int32)
    np.testing.assert_allclose(twin.predict(ids, verbose=0), model.predict(ids, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("cfg", "mask"), [
    (ModelConfig(num_neurons=4), False),  # the lesson's shape: every step to Flatten
    (ModelConfig(cell="gru", num_neurons=3, return_sequences=False), False),
    (ModelConfig(cell="lstm", num_neurons=3, return_sequences=False), False),
    (ModelConfig(cell="gru", num_neurons=3, num_layers=2, return_sequences=False), True),
    (ModelConfig(cell="lstm", num_neurons=3, return_sequences=False), True),
    (ModelConfig(cell="simple_rnn", num_neurons=3, return_sequences=False), True),
])
def test_inference_model_looks_up_the_projection_and_predicts_the_same(cfg, mask):
    from rnnflow.network.model import inference_model

    rng = np.random.default_rng(2)
    weights = rng.normal(size=(9, 5)).astype(np.float32)
    weights[0] = 0
    model = build_model(cfg, weights, maxlen=None if mask else 11, mask=mask)
    for w in model.trainable_weights:  # nonzero biases, so their folding is checked too
        w.assign(rng.normal(scale=0.5, size=w.shape).astype(np.float32))
    fast = inference_model(model)
    assert fast is not model
    first = fast.layers[2]
    lookup = fast.get_layer("word2vec_projected")  # one row of x @ W + b per token
    assert first.projected_input and lookup.output_dim == first.cell.recurrent_kernel.shape[1]
    ids = rng.integers(1, 9, size=(7, 11)).astype(np.int32)
    if mask:  # ragged reviews, padded at either end
        ids[1, :4] = 0
        ids[2, 6:] = 0
    np.testing.assert_allclose(fast.predict(ids, verbose=0), model.predict(ids, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_the_projected_table_is_every_row_of_e_at_w_plus_b_however_many_rows():
    """The projection is computed a block of rows at a time: a table of three blocks gives
    each row's E[row] @ W + b, and the model predicts the same for ids from every block."""
    from rnnflow.network.model import inference_model

    rng = np.random.default_rng(3)
    weights = rng.normal(size=(9000, 5)).astype(np.float32)
    weights[0] = 0
    model = build_model(ModelConfig(cell="gru", num_neurons=3, return_sequences=False),
                        weights, maxlen=6)
    for w in model.trainable_weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype(np.float32))
    kernel, _, bias = model.layers[2].cell.get_weights()
    expected = weights.astype(np.float64) @ kernel.astype(np.float64) + bias[0]
    got = inference_model(model).get_layer("word2vec_projected").get_weights()[0]
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6, atol=1e-7)
    ids = rng.integers(1, 9000, size=(16, 6)).astype(np.int32)
    np.testing.assert_allclose(inference_model(model).predict(ids, verbose=0),
                               model.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cfg", [
    ModelConfig(num_neurons=3, kernel="keras"),
    ModelConfig(cell="gru", num_neurons=3, bidirectional=True, return_sequences=False),
])
def test_inference_model_leaves_what_it_cannot_project(cfg):
    from rnnflow.network.model import inference_model

    model = build_model(cfg, np.ones((4, 5), "float32"), maxlen=6)
    assert inference_model(model) is model


def test_projected_layer_refuses_training():
    from rnnflow.network.model import inference_model

    model = build_model(ModelConfig(num_neurons=3), np.ones((4, 5), "float32"), maxlen=6)
    with pytest.raises(ValueError, match="inference"):
        inference_model(model)(np.ones((2, 6), "int32"), training=True)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        yield from (getattr(layer, a) for a in ("forward_layer", "backward_layer")
                    if hasattr(layer, a))


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


def test_stacked_bidirectional_layers():
    weights = np.zeros((4, 8), "float32")
    cfg = ModelConfig(cell="gru", num_neurons=5, num_layers=2, bidirectional=True,
                      return_sequences=False)
    model = build_model(cfg, weights, 3)
    gru1 = 3 * (8 * 5 + 5 * 5 + 2 * 5)  # first layer reads the 8-d vectors
    gru2 = 3 * (10 * 5 + 5 * 5 + 2 * 5)  # second reads both directions of the first (10-d)
    assert _trainable(model) == 2 * gru1 + 2 * gru2 + 10 + 1


def test_trainable_embedding_adds_the_table():
    weights = np.zeros((4, 8), "float32")
    frozen = _trainable(build_model(ModelConfig(num_neurons=2), weights, 3))
    tuned = _trainable(build_model(ModelConfig(num_neurons=2), weights, 3,
                                   trainable_embedding=True))
    assert tuned - frozen == 4 * 8


def test_text_model_scores_raw_text_and_flags_no_evidence():
    from rnnflow.config import PadConfig, TokenizeConfig
    from rnnflow.network.predict import TextModel

    weights = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    model = build_model(ModelConfig(num_neurons=2), weights, maxlen=5)
    text_model = TextModel(model, ["good", "bad"], TokenizeConfig(), PadConfig(maxlen=5))
    x, known = text_model.ids(["good bad good", "nothing known", ""])
    np.testing.assert_array_equal(x[0], [1, 2, 1, 0, 0])
    assert list(known) == [3, 0, 0]
    out = text_model.predict(["good bad good", "   ", "", None])
    assert list(out.label[1:]) == [-1, -1, -1] and list(out.probability[1:]) == [0.5] * 3
    assert out.label[0] in (0, 1) and 0 <= out.probability[0] <= 1
    expected = float(model.predict(x[:1], verbose=0)[0, 0])
    assert out.probability[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("cfg", [
    ModelConfig(num_neurons=3, dropout=0.5),
    ModelConfig(cell="gru", num_neurons=3, return_sequences=False, bidirectional=True),
])
@pytest.mark.parametrize("onehot", [False, True])
def test_a_seed_builds_the_same_model_while_another_thread_draws_from_random(cfg, onehot):
    # What a Dask worker does: its event loop draws from Python's global `random` while a
    # point's model is built. Without explicit seeds Keras takes layers' seeds from that
    # stream, and the worker's model differed from a local run's.
    import random
    import threading

    rng = np.random.default_rng(3)
    vectors = None if onehot else rng.normal(size=(9, 5)).astype(np.float32)
    extra = {"onehot_tokens": 8} if onehot else {}

    def build(seed):
        random.seed(0)
        return build_model(cfg, vectors, maxlen=11, seed=seed, **extra)

    quiet = build(7)
    stop = threading.Event()

    def draw():
        while not stop.is_set():
            random.random()

    drawer = threading.Thread(target=draw)
    drawer.start()
    try:
        busy = build(7)
        unseeded = [build(None).get_weights() for _ in range(2)]
    finally:
        stop.set()
        drawer.join()
    for a, b in zip(quiet.get_weights(), busy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # The check can fail: unseeded builds beside the thread differ from each other.
    assert any(not np.array_equal(a, b) for a, b in zip(*unseeded, strict=True))
    # Every weight drawn at random moves with the seed (not the word2vec table, zero biases).
    drawn = [(a.numpy(), b.numpy()) for a, b in zip(quiet.trainable_weights,
                                                    build(8).trainable_weights, strict=True)]
    assert all(not np.array_equal(a, b) for a, b in drawn if a.std() > 0)
    dropout = next(layer for layer in busy.layers if layer.name.startswith("dropout"))
    assert dropout.seed is not None
    if cfg.bidirectional:  # each direction starts from weights of its own
        bi = busy.layers[2]
        fwd, bwd = bi.forward_layer.get_weights(), bi.backward_layer.get_weights()
        assert not np.array_equal(fwd[-2], bwd[-2])  # the recurrent kernels
    if onehot:  # each block of the input weights is drawn on its own
        blocks = np.split(busy.get_layer("onehot").get_weights()[0], 2 if cfg.bidirectional
                          else 1, axis=1)
        assert all(not np.array_equal(blocks[0], b) for b in blocks[1:])


@pytest.mark.parametrize("pooling", ["max", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_pooling_over_time_reads_the_real_steps_only(pooling, bidirectional):
    """With masked padding, a text and the same text with more padding score the same (the
    pool leaves the padding out); the fused layers, the stock twin, the projected inference
    model and a saved and loaded copy compute one function."""
    from rnnflow.network.model import inference_model

    cfg = ModelConfig(cell="gru", num_neurons=3, pooling=pooling, bidirectional=bidirectional)
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(9, 5)).astype(np.float32)
    model = build_model(cfg, weights, maxlen=None, mask=True, n_classes=3, seed=4)
    # Wider than the recurrent layer: the head reads one pooled vector, not the steps.
    assert model.get_layer("classes").kernel.shape[0] == 3 * (2 if bidirectional else 1)
    short = rng.integers(1, 9, size=(4, 6)).astype(np.int32)
    padded = np.concatenate([short, np.zeros((4, 5), np.int32)], axis=1)
    out = model.predict(short, verbose=0)
    np.testing.assert_allclose(model.predict(padded, verbose=0), out, rtol=1e-5, atol=1e-6)
    for other in (stock_twin(model, cfg), inference_model(model)):
        np.testing.assert_allclose(other.predict(padded, verbose=0), out, rtol=1e-5, atol=1e-6)


def test_max_pooling_without_a_mask_is_stock_keras(tmp_path):
    """Unmasked (a fixed maxlen), the pool is Keras's own layer: the exported model needs no
    rnnflow code, and a saved model loads back to the same function."""
    from rnnflow.network.model import load_model

    cfg = ModelConfig(cell="lstm", num_neurons=4, pooling="max")
    weights = np.random.default_rng(5).normal(size=(7, 3)).astype(np.float32)
    model = build_model(cfg, weights, maxlen=8, seed=1)
    twin = stock_twin(model, cfg)
    assert not any(type(layer).__module__.startswith("rnnflow") for layer in _all_layers(twin))
    ids = np.random.default_rng(6).integers(0, 7, size=(5, 8)).astype(np.int32)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(ids, verbose=0),
                               model.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_masked_max_pool_survives_saving(tmp_path):
    from rnnflow.network.model import load_model

    cfg = ModelConfig(cell="gru", num_neurons=3, pooling="max", bidirectional=True)
    weights = np.random.default_rng(7).normal(size=(7, 3)).astype(np.float32)
    model = build_model(cfg, weights, maxlen=None, mask=True, seed=2)
    ids = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0]], np.int32)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(ids, verbose=0),
                               model.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
