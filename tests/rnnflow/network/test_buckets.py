"""Length-bucketed batches: every review once per epoch, like lengths together, the padding side
kept, and scores that do not depend on the batch."""

import numpy as np
import pytest

from rnnflow.config import ModelConfig, PadConfig, TokenizeConfig
from rnnflow.data.pad import ROUND, Sequences, batch_length
from rnnflow.network.buckets import TrainBatches, bucket_plan, predict, sorted_plan


def _lengths(n=1000, seed=0):
    return np.random.default_rng(seed).integers(0, 400, size=n)


def test_every_review_exactly_once_per_epoch_and_lengths_close():
    lengths = _lengths()
    for seed in (0, 1):
        plan = bucket_plan(lengths, 16, seed, chunk_batches=8)
        rows = np.concatenate(plan)
        assert sorted(rows) == list(range(len(lengths)))
        assert all(1 <= len(b) <= 16 for b in plan)
        spread = np.mean([np.ptp(lengths[b]) for b in plan])
        random_spread = np.mean([np.ptp(lengths[b]) for b in np.array_split(
            np.random.default_rng(seed).permutation(len(lengths)), len(plan))])
        assert spread < random_spread / 5  # buckets, not a random cut
    assert [list(b) for b in bucket_plan(lengths, 16, 7)] == [
        list(b) for b in bucket_plan(lengths, 16, 7)]  # seeded
    first, second = bucket_plan(lengths, 16, 1), bucket_plan(lengths, 16, 2)
    assert [list(b) for b in first] != [list(b) for b in second]  # a new order every epoch


def test_inference_batches_are_sorted_and_complete():
    lengths = _lengths(100)
    plan = sorted_plan(lengths, 32)
    rows = np.concatenate(plan)
    assert sorted(rows) == list(range(100)) and list(lengths[rows]) == sorted(lengths)


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_batches_are_padded_on_their_side_to_a_multiple_of_eight(padding):
    seqs = Sequences.from_lists([[1, 2, 3], [4], [], [5] * 10], padding)
    x = seqs.batch(np.array([0, 1]))
    assert x.shape == (2, ROUND)
    if padding == "post":
        assert list(x[0]) == [1, 2, 3] + [0] * 5 and list(x[1]) == [4] + [0] * 7
    else:
        assert list(x[0]) == [0] * 5 + [1, 2, 3] and list(x[1]) == [0] * 7 + [4]
    assert seqs.batch(np.array([3, 2])).shape == (2, 16)
    assert batch_length(0) == ROUND and batch_length(17) == 24 and batch_length(17, cap=20) == 20


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_fixed_rows_are_trimmed_on_their_padding_side(padding):
    """pad.bucket with a fixed maxlen: each batch is the rows with their common padding cut."""
    from keras.utils import pad_sequences as keras_pad

    lists = [[3, 1, 4, 1, 5], [9, 2], [6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8]]
    x = keras_pad(lists, maxlen=10, padding=padding, truncating="post", dtype="int32")
    seqs = Sequences.from_padded(x, padding)
    assert seqs.cap == 10 and list(seqs.lengths) == [5, 2, 10]
    trimmed = seqs.batch(np.array([0, 1]))
    np.testing.assert_array_equal(trimmed, x[:2, :8] if padding == "post" else x[:2, -8:])
    np.testing.assert_array_equal(seqs.batch(np.array([0, 2])), x[[0, 2]])  # capped at maxlen


def _masked_model(maxlen=None, cell="gru"):
    rng = np.random.default_rng(0)
    from rnnflow.network.model import build_model

    weights = rng.normal(size=(30, 4)).astype(np.float32)
    weights[0] = 0
    cfg = ModelConfig(cell=cell, num_neurons=3, return_sequences=False)
    return build_model(cfg, weights, maxlen, mask=True)


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_scores_do_not_depend_on_the_batch(padding):
    model = _masked_model()
    rng = np.random.default_rng(1)
    lists = [list(rng.integers(1, 30, size=n)) for n in (3, 17, 1, 40, 9, 25)]
    seqs = Sequences.from_lists(lists, padding)
    together = predict(model, seqs, batch_size=4)
    alone = [float(model.predict(np.array([ids], np.int32), verbose=0)[0, 0]) for ids in lists]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_each_epoch_trains_on_its_own_seeded_plan():
    """Epoch e draws bucket_plan(seed + e), also from a resumed run's initial_epoch on."""
    model = _masked_model(cell="simple_rnn")
    model.compile("rmsprop", "binary_crossentropy")
    rng = np.random.default_rng(2)
    seqs = Sequences.from_lists([list(rng.integers(1, 30, size=n))
                                 for n in rng.integers(1, 60, size=40)])
    y = rng.integers(0, 2, size=40).astype(np.float32)
    batches = TrainBatches(seqs, y, batch_size=4, seed=10, initial_epoch=1)
    model.fit(batches.dataset(), epochs=3, initial_epoch=1, callbacks=[batches.callback()],
              shuffle=False,
              verbose=0)
    expected = [seqs.batch_length(rows) for epoch in (1, 2) for rows in batches.plan(epoch)]
    assert batches.lengths_served == expected


def test_text_model_without_maxlen_scores_whole_texts():
    from rnnflow.network.predict import TextModel

    model = _masked_model()
    vocab = [f"w{i}" for i in range(1, 30)]
    text_model = TextModel(model, vocab, TokenizeConfig(), PadConfig(maxlen=None))
    texts = ["w1 w2 w3", " ".join(f"w{i % 29 + 1}" for i in range(50)), "nothing", "w7"]
    x, known = text_model.ids(texts)
    assert x.shape == (4, 50) and list(known) == [3, 50, 0, 1]  # padded to the longest text
    out = text_model.predict(texts)
    assert out.label[2] == -1 and out.probability[2] == 0.5
    for i in (0, 1, 3):
        alone = text_model.predict([texts[i]]).probability[0]
        whole = float(model.predict(x[i:i + 1, :known[i]], verbose=0)[0, 0])
        assert out.probability[i] == pytest.approx(alone, rel=1e-5)
        assert out.probability[i] == pytest.approx(whole, rel=1e-5)
