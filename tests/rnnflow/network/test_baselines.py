"""The baselines on tiny generated tables: what they score where the labels are in the words and
where they are not, the network's metric keys, and the cache that spares a second fit."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from rnnflow.comparisons.stats import correct
from rnnflow.config import DatasetConfig
from rnnflow.data.reviews import read_reviews
from rnnflow.network import baselines
from rnnflow.network.baselines import baseline_stage, fit_baseline, load_baseline

WORDS = "apple river stone cloud piano tiger lemon shadow candle forest".split()


def _table(path: Path, classes: list[str], n: int, separable: bool, seed: int = 0) -> Path:
    """`n` texts per class and split. Separable: each text holds its own class's marker word
    among random filler words; otherwise the labels are drawn at random, apart from the
    words."""
    rng = random.Random(seed)
    rows = []
    for split in ("train", "dev", "test"):
        for i, cls in enumerate(classes):
            for _ in range(n):
                words = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
                if separable:
                    words.insert(rng.randint(0, len(words)), f"marker{i}")
                label = cls if separable else rng.choice(classes)
                rows.append({"text": " ".join(words), "label": label, "split": split})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _reviews(path: Path):
    return read_reviews(path, f"digest-{path.stem}", DatasetConfig(source="csv", url=str(path)))


@pytest.mark.parametrize("classes", [["no", "yes"], ["a", "b", "c", "d"]])
def test_separable_labels_give_a_perfect_bag_of_words(project, classes):
    reviews = _reviews(_table(project / "sep.csv", classes, 30, separable=True))
    fitted = load_baseline(fit_baseline(reviews, "bag_of_words"), reviews)
    assert fitted.evaluation.metrics["test_accuracy"] == 1.0
    assert fitted.evaluation.metrics["val_accuracy"] == 1.0
    assert fitted.params["analyzer"] in ("word", "char_wb")
    # the same keys as a network's evaluation, per-class tables with k > 2 classes
    keys = {"val_accuracy", "test_accuracy", "test_loss", "test_auc"}
    keys |= {"test_macro_f1", "test_weighted_f1"} if len(classes) > 2 else {"test_f1"}
    assert keys <= set(fitted.evaluation.metrics)
    assert (fitted.evaluation.per_class is not None) == (len(classes) > 2)
    # per-review correctness, for the paired tests
    test = fitted.evaluation.predictions["test"]
    assert len(test) == 30 * len(classes) and correct(test).all()


def test_the_majority_scores_the_majority_share(project):
    path = _table(project / "maj.csv", ["a", "b", "c"], 10, separable=True)
    frame = pd.read_csv(path)
    extra = frame[(frame.label == "b") & (frame.split == "train")].head(5)
    pd.concat([frame, extra]).to_csv(path, index=False)  # b is the train split's majority
    reviews = _reviews(path)
    fitted = load_baseline(fit_baseline(reviews, "majority"), reviews)
    assert fitted.params == {"majority_class": 1}
    test = fitted.evaluation.predictions["test"]
    assert (test.predicted == 1).all()
    assert fitted.evaluation.metrics["test_accuracy"] == pytest.approx((test.label == 1).mean())


def test_shuffled_labels_give_about_chance(project):
    reviews = _reviews(_table(project / "noise.csv", ["no", "yes"], 150, separable=False))
    fitted = load_baseline(fit_baseline(reviews, "bag_of_words"), reviews)
    # 300 test texts: chance is 0.5 with a standard deviation of about 0.03
    assert 0.38 < fitted.evaluation.metrics["test_accuracy"] < 0.62


def test_a_fitted_baseline_is_reused_not_refitted(project, monkeypatch):
    reviews = _reviews(_table(project / "sep.csv", ["no", "yes"], 5, separable=True))
    first = fit_baseline(reviews, "bag_of_words")
    before = load_baseline(first, reviews).evaluation.metrics

    def refit(*_args, **_kwargs):
        raise AssertionError("refitted a baseline whose stage is on disk")

    monkeypatch.setattr(baselines, "_bag_of_words", refit)
    monkeypatch.setattr(baselines, "_majority", refit)
    again = fit_baseline(reviews, "bag_of_words")
    assert again == first and load_baseline(again, reviews).evaluation.metrics == before
    # another baseline, or other settings, is another stage
    assert baseline_stage(reviews, "majority").key != first.key
    monkeypatch.setitem(baselines.SETTINGS, "bag_of_words",
                        {**baselines.SETTINGS["bag_of_words"], "C": 1.0})
    assert baseline_stage(reviews, "bag_of_words").key != first.key


def test_a_point_is_framed_against_the_fitted_baselines_only(project):
    from rnnflow.network.baselines import fitted_baselines

    reviews = _reviews(_table(project / "sep.csv", ["no", "yes"], 5, separable=True))
    assert fitted_baselines(reviews, ("majority", "bag_of_words")) == []
    fit_baseline(reviews, "bag_of_words")
    fitted = fitted_baselines(reviews, ("majority", "bag_of_words"))
    assert [b.name for b in fitted] == ["bag_of_words"]  # never fitted on the way
    fit_baseline(reviews, "majority")
    assert [b.name for b in fitted_baselines(reviews, ("bag_of_words", "majority"))] == [
        "bag_of_words", "majority"]


@pytest.mark.parametrize("candidate", ["word", "char_wb"])
@pytest.mark.parametrize("classes", [["no", "yes"], ["a", "b", "c", "d"]])
def test_the_fitted_baseline_reads_raw_text_as_it_scored_the_test_split(project, classes,
                                                                        candidate, monkeypatch):
    """The baseline's text model, loaded by the public loader from its saved files, gives the
    stored test probabilities for the same raw texts, whichever candidate it kept."""
    import json

    from rnnflow import api

    candidates = baselines.SETTINGS["bag_of_words"]["candidates"]
    if candidate == "word":  # no character candidate
        monkeypatch.setitem(candidates, "char_wb", {**candidates["char_wb"], "max_train": 0})
    else:  # words that cannot tell the classes apart: one feature
        monkeypatch.setitem(candidates, "word", {**candidates["word"], "max_features": 1})
    reviews = _reviews(_table(project / "raw.csv", classes, 30, separable=True, seed=3))
    info = json.loads(fit_baseline(reviews, "bag_of_words").file("baseline.json").read_text())
    assert info["params"]["analyzer"] == candidate
    texts = pd.read_parquet(reviews.file("reviews.parquet")).set_index("id").text
    for name in ("bag_of_words", "majority"):
        out = fit_baseline(reviews, name)
        stored = pd.read_parquet(out.file("test_predictions.parquet"))
        model = api.load_text_model(baselines.baseline_model_files(out))
        answer = model.predict(texts.loc[stored.id].tolist())
        columns = ["probability"] + [c for c in stored if c.startswith("prob_")]
        assert set(columns) <= set(answer)
        for column in columns:
            assert answer[column].to_numpy() == pytest.approx(stored[column].to_numpy(),
                                                              abs=1e-9), (name, column)


def test_the_character_candidate_is_fitted_on_small_train_splits_only(project, monkeypatch):
    import json

    reviews = _reviews(_table(project / "small.csv", ["no", "yes"], 20, separable=True))
    info = json.loads(fit_baseline(reviews, "bag_of_words").file("baseline.json").read_text())
    assert set(info["val_accuracy_by_analyzer"]) == {"word", "char_wb"}
    char = {**baselines.SETTINGS["bag_of_words"]["candidates"]["char_wb"], "max_train": 39}
    monkeypatch.setitem(baselines.SETTINGS["bag_of_words"]["candidates"], "char_wb", char)
    info = json.loads(fit_baseline(reviews, "bag_of_words").file("baseline.json").read_text())
    assert set(info["val_accuracy_by_analyzer"]) == {"word"}  # 40 train texts > 39
    assert info["params"]["analyzer"] == "word"


@pytest.mark.parametrize("labels", [[0, 2], [0, 1, 3]])
def test_the_saved_weights_give_the_regressions_probabilities(labels):
    """The baseline model applies the logistic regression's weights itself (nothing pickled):
    its probabilities are scikit-learn's, with 0 for a class the train split lacked (k = 4)."""
    import numpy as np
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    from rnnflow.network.baseline_model import Linear

    rng = np.random.default_rng(0)
    x = sparse.csr_matrix(rng.random((60, 7)))
    y = np.array(labels)[rng.integers(0, len(labels), 60)]
    regression = LogisticRegression().fit(x, y)
    ours = Linear(regression.coef_, regression.intercept_, regression.classes_).probabilities(x, 4)
    np.testing.assert_allclose(ours[:, labels], regression.predict_proba(x), rtol=1e-12)
    absent = [c for c in range(4) if c not in labels]
    assert (ours[:, absent] == 0).all()
