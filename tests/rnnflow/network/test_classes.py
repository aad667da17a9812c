"""A softmax head over k classes: the fused kernels, the evaluation fast path and bucketed
inference give the stock model's class probabilities; k-class scores, class weights, the
text model by class name and integrated gradients of one class."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rnnflow.config import ModelConfig, PadConfig, TokenizeConfig  # noqa: E402
from rnnflow.data.pad import Sequences  # noqa: E402
from rnnflow.insight import explain as ex  # noqa: E402
from rnnflow.network import buckets  # noqa: E402
from rnnflow.network.evaluate import per_class, score_classes  # noqa: E402
from rnnflow.network.model import (  # noqa: E402
    build_model,
    inference_model,
    n_classes,
    stock_twin,
)
from rnnflow.network.predict import (  # noqa: E402
    NO_OPINION,
    TextModel,
    load_text_model,
    save_text_model,
)
from rnnflow.network.train import class_weights  # noqa: E402

K, V, DIM, T = 4, 30, 6, 9


def _softmax_model(cell="simple_rnn", return_sequences=False, mask=False, seed=0):
    keras.utils.set_random_seed(seed)
    weights = np.random.default_rng(seed).normal(size=(V + 1, DIM)).astype("float32")
    weights[0] = 0.0
    cfg = ModelConfig(cell=cell, num_neurons=5, return_sequences=return_sequences,
                      kernel="fused")
    model = build_model(cfg, weights, None if mask else T, mask=mask, n_classes=K)
    # Non-trivial weights everywhere, biases included.
    rng = np.random.default_rng(seed + 1)
    model.set_weights([weights, *(rng.normal(scale=0.5, size=w.shape).astype("float32")
                                  for w in model.get_weights()[1:])])
    return model, cfg


def _ids(n=7, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V + 1, size=(n, T)).astype("int32")
    x[1, 5:] = 0  # padding after the text, as pad.padding: post leaves it
    return x


@pytest.mark.parametrize("cell", ["simple_rnn", "gru", "lstm"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_fused_and_fast_path_give_the_stock_class_probabilities(cell, return_sequences):
    model, cfg = _softmax_model(cell, return_sequences)
    assert model.output_shape == (None, K) and n_classes(model) == K
    x = _ids()
    stock = stock_twin(model, cfg).predict(x, verbose=0)
    assert np.allclose(stock.sum(axis=1), 1.0, atol=1e-5)
    fused = model.predict(x, verbose=0)
    fast = inference_model(model)
    assert fast is not model  # the projection looked up
    np.testing.assert_allclose(fused, stock, atol=1e-5)
    np.testing.assert_allclose(fast.predict(x, verbose=0), stock, atol=1e-5)


def test_bucketed_inference_gives_each_review_its_class_probabilities():
    model, cfg = _softmax_model(mask=True)
    lists = [[3, 4, 5], [7], [1, 2, 3, 4, 5, 6, 7, 8], [9, 9]]
    seqs = Sequences.from_lists(lists, "post")
    prob = buckets.predict(model, seqs, batch_size=2)
    assert prob.shape == (len(lists), K)
    stock = stock_twin(model, cfg)
    for row, ids in zip(prob, lists, strict=True):
        alone = stock.predict(np.array([ids], dtype="int32"), verbose=0)[0]
        np.testing.assert_allclose(row, alone, atol=1e-5)


def test_k_class_scores_agree_with_the_per_class_table():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(K), 6)
    prob = rng.dirichlet(np.ones(K), size=len(y))
    prob[np.arange(len(y)), y] += rng.random(len(y))  # better than chance, not perfect
    prob /= prob.sum(axis=1, keepdims=True)
    scores = score_classes(y, prob)
    table = per_class(y, prob.argmax(axis=1), [f"c{i}" for i in range(K)])
    assert scores["accuracy"] == pytest.approx(np.mean(prob.argmax(axis=1) == y))
    assert scores["macro_f1"] == pytest.approx(table.f1.mean())
    assert scores["weighted_f1"] == pytest.approx(np.average(table.f1, weights=table.support))
    assert scores["loss"] == pytest.approx(-np.mean(np.log(prob[np.arange(len(y)), y])))
    assert 0.5 < scores["auc"] <= 1.0 and list(table.support) == [6] * K


def test_the_logged_per_class_table_holds_every_split_under_its_name():
    from rnnflow.network.evaluate import prediction_table, scored

    rng = np.random.default_rng(1)
    names = [f"c{i}" for i in range(K)]
    predictions = {}
    for split, n in (("val", 8), ("test", 12)):
        prob = rng.dirichlet(np.ones(K), size=n)
        predictions[split] = prediction_table(list(range(n)), rng.integers(0, K, n), prob, names)
    evaluation = scored(predictions, names)
    frame = evaluation.per_class_frame()
    assert list(frame.columns) == ["split", *evaluation.per_class["val"].columns]
    for split in ("val", "test"):
        rows = frame[frame.split == split].drop(columns="split").reset_index(drop=True)
        assert rows.equals(evaluation.per_class[split].reset_index(drop=True))


def test_class_weights_balanced_and_by_name():
    y = np.array([0, 0, 0, 1, 2, 2], dtype="float32")
    balanced = class_weights("balanced", y, ["a", "b", "c"])
    assert balanced == pytest.approx({0: 6 / 9, 1: 2.0, 2: 1.0})
    assert class_weights({"b": 3.0}, y, ["a", "b", "c"]) == {0: 1.0, 1: 3.0, 2: 1.0}
    assert class_weights(None, y, ["a", "b"]) is None
    with pytest.raises(ValueError, match="'z'"):
        class_weights({"z": 2.0}, y, ["a", "b", "c"])


def _text_model(tmp_path=None):
    model, _cfg = _softmax_model()
    vocab = [f"w{i}" for i in range(V - 3)] + ["felicità", "l'", "amore"]
    classes = ["gioia", "paura", "rabbia", "città"]
    return TextModel(model, vocab, TokenizeConfig(tokenizer="regexp", pattern=r"\w+'|\w+"),
                     PadConfig(maxlen=T), classes=classes)


def test_text_model_names_the_class_and_round_trips(tmp_path):
    text_model = _text_model()
    texts = ["felicità w3 l'amore", "nothing known here", "w1 w2 w5"]
    out = text_model.predict(texts)
    assert list(out.columns) == ["probability", "label", "known_tokens", "class",
                                 *(f"prob_{c}" for c in text_model.classes)]
    assert out["class"].tolist() == out.label.tolist()  # the column every kind of model has
    probs = out[[f"prob_{c}" for c in text_model.classes]].to_numpy()
    assert out.label[1] == NO_OPINION and out.known_tokens[1] == 0
    np.testing.assert_allclose(probs[1], 1.0 / K)
    for i in (0, 2):
        assert out.label[i] == text_model.classes[int(probs[i].argmax())]
        assert out.probability[i] == pytest.approx(probs[i].max())
    # The regexp tokenizer keeps the elision apart: felicità, w3, l', amore.
    assert text_model._tokenizer("felicità w3 l'amore") == ["felicità", "w3", "l'", "amore"]
    assert out.known_tokens[0] == 4
    loaded = load_text_model({k: str(v) for k, v in
                              save_text_model(text_model, tmp_path).items()})
    assert loaded.classes == text_model.classes and loaded.vocab == text_model.vocab
    again = loaded.predict(texts)
    np.testing.assert_allclose(again[[f"prob_{c}" for c in loaded.classes]].to_numpy(), probs,
                               atol=1e-6)


def test_explain_attributes_the_chosen_class_with_completeness():
    text_model = _text_model()
    texts = ["felicità w3 w4 w5", "w7 w8"]
    predicted = ex.explain(text_model, texts, steps=64)
    prob, _known = text_model.class_probabilities(texts)
    for e, p in zip(predicted, prob, strict=True):
        assert e.class_name == text_model.classes[int(p.argmax())] == e.predicted
        assert e.probability == pytest.approx(p.max(), abs=1e-5)
        assert e.total == pytest.approx(e.output - e.baseline, abs=1e-2)
    chosen = ex.explain(text_model, texts, steps=64, target="città")
    for e, p in zip(chosen, prob, strict=True):
        assert e.class_name == "città" and e.probability == pytest.approx(p[3], abs=1e-5)
        assert e.output == pytest.approx(p[3], abs=1e-5)
        assert e.total == pytest.approx(e.output - e.baseline, abs=1e-2)
    with pytest.raises(ValueError, match="no class 'noia'"):
        ex.explain(text_model, texts, target="noia")


def test_user_checks_name_classes():
    from rnnflow.insight.cases import load_cases
    from rnnflow.insight.checks import run_checks

    text_model = _text_model()
    a, b = "felicità w3 w4", "w7 w8 w9"
    out = text_model.predict([a, b])
    right, other = out.label[0], next(c for c in text_model.classes if c != out.label[0])
    cases = load_cases([{"kind": "mft", "text": a, "label": right},
                        {"kind": "mft", "text": a, "label": other},
                        {"kind": "inv", "text": a, "variant": a},
                        {"kind": "dir", "text": a, "variant": b, "direction": "lower"}])
    metrics, failures = run_checks(text_model, cases, text_model.classes)
    assert metrics["checks_mft"] == 0.5 and metrics["checks_inv"] == 1.0
    column = f"prob_{right}"
    lower = text_model.predict([b])[column][0] < out[column][0]
    assert metrics["checks_dir"] == float(lower)
    mft = failures[failures.kind == "mft"]
    assert list(mft.expected) == [f"label {other}"] and list(mft.label) == [right]
    with pytest.raises(ValueError, match="0, 1 or a class name"):
        load_cases([{"kind": "mft", "text": a, "label": 2.5}])
