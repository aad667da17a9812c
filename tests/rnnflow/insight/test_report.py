"""summarize: a run's final metrics, figures and tables, without a tracking store."""

import numpy as np
import pandas as pd
import pytest

from rnnflow.config import PadConfig, Point, TokenizeConfig
from rnnflow.insight.report import FinishedRun, summarize
from rnnflow.network.evaluate import Evaluation
from rnnflow.network.predict import TextModel
from rnnflow.network.train import Fit


@pytest.fixture(autouse=True)
def _figures_closed():
    """summarize hands its figures to the caller, which closes them once logged
    (tracking.log_report); here the test is the caller. Left open, they pile up in pyplot's
    registry for the rest of the test process."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(6,), dtype="int32")
    x = keras.layers.Embedding(5, 3, trainable=False)(inputs)
    x = keras.layers.SimpleRNN(2)(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def _evaluation() -> Evaluation:
    test = pd.DataFrame({"id": ["a", "b", "c", "d"], "label": [1, 0, 1, 0],
                         "probability": [0.9, 0.95, 0.2, 0.4]})
    val = test.assign(id=["e", "f", "g", "h"])
    return Evaluation(
        metrics={"val_loss": 0.6, "val_accuracy": 0.5, "test_loss": 0.7, "test_accuracy": 0.5},
        confusion={s: np.array([[1, 1], [1, 1]]) for s in ("val", "test")},
        predictions={"val": val, "test": test})


def test_summarize_reports_metrics_figures_and_tables(model, tmp_path):
    reviews = tmp_path / "reviews.parquet"
    pd.DataFrame({"id": ["a", "b", "c", "d"], "split": ["test"] * 4,
                  "text": ["good", "bad film", "fine", "meh"]}).to_parquet(reviews)
    text_model = TextModel(model, ["good", "bad", "film", "fine"], TokenizeConfig(),
                           PadConfig(maxlen=6))
    history = {"loss": [0.7, 0.6], "val_loss": [0.69, 0.6], "val_accuracy": [0.4, 0.5]}
    point = Point(evaluate={"mistakes": 1, "sentences": ["good film", "zzz"],
                                      "checks": "none"})
    report = summarize(FinishedRun(
        point=point, model=model, text_model=text_model,
        fit=Fit(history=history, fit_seconds=2.0, train_samples_per_s=50.0),
        evaluation=_evaluation(), history=history,
        vector_stats={"oov_tokens": 5, "tokens": 20, "empty_docs": 1},
        seconds={"train": 3.0, "evaluate": 1.0}, preprocess_seconds=4.0,
        reviews_parquet=reviews))

    m = report.metrics
    # The per-epoch series already end with the final val_loss/val_accuracy.
    assert "val_loss" not in m and "val_accuracy" not in m
    assert (m["test_loss"], m["test_accuracy"]) == (0.7, 0.5)
    assert m["oov_rate"] == 0.25 and m["empty_docs"] == 1
    # Embedding frozen: SimpleRNN(2) on 3 inputs (3*2 + 2*2 + 2) and Dense(1) (2 + 1).
    assert m["trainable_params"] == 15
    assert (m["train_seconds"], m["seconds_evaluate"], m["preprocess_seconds"]) == (3, 1, 4)
    assert (m["fit_seconds"], m["train_samples_per_s"]) == (2.0, 50.0)
    assert set(report.figures) == {"learning_curves.png", "confusion_matrix.png",
                                   "roc_pr_curves.png"}

    mistakes = report.frames["confident_mistakes.csv"]
    assert mistakes.id.tolist() == ["b"] and mistakes.text.tolist() == ["bad film"]
    examples = report.frames["examples.csv"]
    assert examples.text.tolist() == ["good film", "zzz"]
    assert examples.known_tokens.tolist() == [2, 0] and examples.label[1] == -1
    assert report.frames["test_predictions.parquet"].id.tolist() == ["a", "b", "c", "d"]


def _summarize_binary(model, tmp_path, point, text_model, classes=None, **framing):
    reviews = tmp_path / "reviews.parquet"
    pd.DataFrame({"id": ["a", "b", "c", "d"], "split": ["test"] * 4,
                  "text": ["good", "bad film", "fine", "meh"]}).to_parquet(reviews)
    history = {"loss": [0.7], "val_loss": [0.6], "val_accuracy": [0.5]}
    return summarize(FinishedRun(
        point=point, model=model, text_model=text_model,
        fit=Fit(history=history, fit_seconds=2.0, train_samples_per_s=50.0),
        evaluation=_evaluation(), history=history,
        vector_stats={"oov_tokens": 5, "tokens": 20, "empty_docs": 1},
        seconds={"train": 3.0}, preprocess_seconds=4.0, reviews_parquet=reviews,
        classes=classes, **framing))


def test_two_named_classes_are_spoken_of_and_the_built_in_examples_skipped(model, tmp_path,
                                                                            caplog):
    """A csv corpus labelled ham/spam: the report, explanations and model card name the
    classes, and the built-in movie sentences and sentiment checks are skipped with one logged
    reason that says how to give one's own."""
    names = ["ham", "spam"]
    text_model = TextModel(model, ["good", "bad", "film", "fine"], TokenizeConfig(),
                           PadConfig(maxlen=6), binary_names=names)
    point = Point(dataset={"source": "csv", "url": "mail.csv"}, evaluate={"mistakes": 2})
    with caplog.at_level("INFO", logger="rnnflow.insight.report"):
        report = _summarize_binary(model, tmp_path, point, text_model, classes=names)
    reasons = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(reasons) == 1
    assert "evaluate.sentences:" in reasons[0] and "evaluate.checks:" in reasons[0]
    assert "ham, spam" in reasons[0]
    assert "examples.csv" not in report.frames
    assert not any(k.startswith("checks_") for k in report.metrics)
    page, card = report.texts["report.html"], report.texts["model_card.md"]
    assert "evaluate.sentences:" in page  # the reason, where the sentences would be
    assert "positive" not in page.lower().replace("false positive", "")
    assert "truly spam, predicted ham" in page or "truly ham, predicted spam" in page
    assert "Two classes (ham / spam)" in card and "probability of spam" in card
    assert "movie" not in card and "positive" not in card


def test_given_sentences_are_scored_whatever_the_labels(model, tmp_path, caplog):
    names = ["ham", "spam"]
    text_model = TextModel(model, ["good", "bad", "film", "fine"], TokenizeConfig(),
                           PadConfig(maxlen=6), binary_names=names)
    point = Point(dataset={"source": "csv", "url": "mail.csv"},
                  evaluate={"sentences": ["good film"], "checks": "none"})
    with caplog.at_level("INFO", logger="rnnflow.insight.report"):
        report = _summarize_binary(model, tmp_path, point, text_model, classes=names)
    assert report.frames["examples.csv"].text.tolist() == ["good film"]
    assert not [r for r in caplog.records if "skipped" in r.getMessage()]
    assert "attribution to the probability of &lsquo;spam&rsquo;" in report.texts["report.html"]


def test_sentiment_keeps_the_built_in_examples_and_names_pos(model, tmp_path):
    text_model = TextModel(model, ["good", "bad", "film", "fine"], TokenizeConfig(),
                           PadConfig(maxlen=6))
    report = _summarize_binary(model, tmp_path, Point(evaluate={"checks": "none"}), text_model)
    assert len(report.frames["examples.csv"]) == len(Point().evaluate.sentences)
    page = report.texts["report.html"]
    assert "attribution to the probability of &lsquo;pos&rsquo;" in page
    assert "Binary sentiment (neg / pos) of English movie reviews" in \
        report.texts["model_card.md"]



VERSUS = "test accuracy 0.500; bag-of-words 0.750: -25.0 points [-60.0, +10.0]; majority 0.500"
WHY = "predicts pos for 100% of the test reviews (the labels give it 50%)"


def test_a_model_that_learned_nothing_gets_a_banner_on_top_of_both_documents(model, tmp_path):
    text_model = TextModel(model, ["good", "bad", "film", "fine"], TokenizeConfig(),
                           PadConfig(maxlen=6))
    point = Point(evaluate={"mistakes": 1, "checks": "none"})
    report = _summarize_binary(model, tmp_path, point, text_model, versus=VERSUS,
                               warnings=[WHY])
    page, card = report.texts["report.html"], report.texts["model_card.md"]
    body = page[page.index("<main"):]
    assert body.index("This model learned nothing") < body.index('class="cards"')
    assert WHY in page and VERSUS in page
    lines = card.splitlines()
    assert lines[0].startswith("# Model card")
    assert lines[2] == f"> **This model learned nothing:** {WHY}."
    assert VERSUS in card[card.index("## Metrics"):card.index("| split |")]

    quiet = _summarize_binary(model, tmp_path, point, text_model)
    for text in (quiet.texts["report.html"], quiet.texts["model_card.md"]):
        assert "learned nothing" not in text and "Beside the baselines" not in text


def test_the_card_of_k_classes_keeps_the_banner_above_its_description():
    from rnnflow.insight.findings import Findings
    from rnnflow.insight.model_card import model_card

    card = model_card(Findings(params=Point().flat(), metrics={}, history={},
                               split_sizes={"test": 1}, mistakes=pd.DataFrame(),
                               failures=pd.DataFrame(), classes=["a", "b", "c"],
                               names=["a", "b", "c"], versus=VERSUS, warnings=[WHY]))
    lines = card.splitlines()
    assert lines[2] == f"> **This model learned nothing:** {WHY}."
    assert lines[4].startswith("3 classes (a, b, c)")
    assert VERSUS in card and "| split | accuracy | macro F1" in card


@pytest.mark.parametrize(("sets", "expected"), [
    ({"embedding.source": "learned", "embedding.vector_size": 24, "model.pooling": "max"},
     ["24-d vectors learned from scratch", "the max of every time step's state"]),
    ({"embedding.source": "fasttext", "embedding.min_n": 2, "embedding.max_n": 4},
     ["gensim FastText", "character n-grams of 2-4", "every time step, flattened"]),
])
def test_the_card_says_which_vectors_and_head_a_small_corpus_model_has(sets, expected):
    from rnnflow.config import with_values
    from rnnflow.insight.findings import Findings
    from rnnflow.insight.model_card import model_card

    params = with_values(Point(), sets, "test").flat()
    card = model_card(Findings(params=params, metrics={}, history={}, split_sizes={"test": 1},
                               mistakes=pd.DataFrame(), failures=pd.DataFrame(),
                               classes=["a", "b", "c"], names=["a", "b", "c"], versus=VERSUS,
                               warnings=[]))
    for text in expected:
        assert text in card, text
