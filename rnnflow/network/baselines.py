"""Reference models beside the RNN, on the same reviews and splits: a result means something
only beside what a trivial or a classical model scores on the same test reviews.

- `majority`: every review gets the train split's class shares as its probabilities, so it is
  predicted the train split's most frequent class (on a tie: of two classes the second, as a
  probability of 0.5 reads as class 1; of more, the first);
- `bag_of_words`: TF-IDF (sublinear term frequency) with logistic regression, fitted on the
  train split on word uni- and bigrams and, on a train split of at most `CHAR_MAX_TRAIN`
  reviews, on character n-grams too; the candidate with the better val accuracy is kept
  (`analyzer` in its params; a tie keeps words, the cheaper and the more readable).

The word candidate reads the tokens stage (rnnflow/data/tokens.py) of the baseline's own
tokenize settings (`TOKENIZE`: the defaults, the lesson's Treebank tokens), lowercased, and
counts its n-grams with array operations (rnnflow/network/bag_of_words.py): the chain writes
those tokens anyway for every point that keeps the default tokenizer, so on the lesson the
baseline tokenizes nothing of its own. A params file with other tokenize settings costs one
more tokenization per dataset, once; the baseline stays the same reference whatever the
points' settings.

The character candidate (char_wb 2-5-grams, counted as scikit-learn's analyzer counts them,
once per distinct word) holds up where words are sparse: small corpora, inflected languages,
misspellings. On a large train split it costs the most and gains nothing: on the full IMDB
archive (20,000 train reviews) it scored below the words (val 0.901 against 0.907) and, with
scikit-learn, took three times the word candidate's time (92 s against 31 s, 2 cores); even
counted once per word it would stay above the cost target of the whole baseline there (10% of
the lesson's run). So it is fitted only up to `CHAR_MAX_TRAIN` train reviews: the small
corpora users iterate on (1,000-5,000 texts) and the 5,000-review IMDB sample (2,000 train
reviews) keep it; the full archive does not.

Each baseline is a stage of its own, data/baselines/<key>/, keyed by the reviews stage's key
and the baseline's settings (`SETTINGS`): fitted once per dataset, then reused by every later
run, grid point and repeat. It holds val_predictions.parquet and test_predictions.parquet, in
the network's own form (rnnflow/network/evaluate.py `prediction_table`), so the same metric
code scores both and the paired tests (rnnflow/comparisons/stats.py) compare them review by
review; baseline.json, what was chosen and why; and model/, the fitted baseline as a raw-text
model (rnnflow/network/baseline_model.py), which computed those predictions and which the
baseline's run logs as its text model.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rnnflow.config import BASELINE_TITLES, BASELINES, TokenizeConfig
from rnnflow.data.reviews import read_labels
from rnnflow.data.storage import Stage, stage, write_parquet, writing
from rnnflow.data.tokens import tokenize_reviews, tokens_stage
from rnnflow.network.bag_of_words import fit_chars, fit_words
from rnnflow.network.baseline_model import (
    BaselineModel,
    Linear,
    load_baseline_model,
    model_files,
    save_baseline_model,
)
from rnnflow.network.evaluate import Evaluation, prediction_table, scored

log = logging.getLogger(__name__)

# 2: words from the tokens stage, counted by rnnflow/network/bag_of_words.py; the character
# candidate only on small train splits; the fitted model saved beside the predictions.
VERSION = 2
INFO_FILE = "baseline.json"
MODEL_DIR = "model"
# The bag-of-words baseline's tokens: the default settings, which the lesson uses, so that its
# tokens stage is the chain's own.
TOKENIZE = TokenizeConfig()
# The largest train split the character candidate is fitted on (see the module's docstring).
CHAR_MAX_TRAIN = 5_000
# What each baseline is fitted with: part of its stage key, so a change here refits it. Word
# uni- and bigrams are the classical text-classification baseline; character 2-5-grams within
# word boundaries hold up on inflected languages and misspellings, where words are sparse. The
# feature caps bound the memory and the fit time on the full archive.
SETTINGS: dict[str, dict[str, Any]] = {
    "majority": {},
    "bag_of_words": {
        "tokenize": TOKENIZE.model_dump(),
        "candidates": {
            "word": {"analyzer": "word", "ngram_range": [1, 2], "min_df": 1,
                     "max_features": 200_000, "lowercase": True},
            "char_wb": {"analyzer": "char_wb", "ngram_range": [2, 5], "min_df": 1,
                        "max_features": 200_000, "max_train": CHAR_MAX_TRAIN},
        },
        "C": 4.0,
        "max_iter": 1000,
        # SAG, not scikit-learn's default L-BFGS: the L2-regularised loss has one optimum, and
        # on TF-IDF rows of unit length SAG reaches it in a fraction of the time. Measured
        # 2026-12-05, same sitting, scikit-learn 1.9.1: full IMDB words (20,000 x 200,000),
        # 1.3 s of CPU against 4.7 s, test accuracy 0.9011 against 0.9013; gnad10k words, 9
        # classes, 0.8 s against 19 s, the same 0.704 (L-BFGS's step alone costs 0.1 s per
        # iteration over 1.8 million coefficients). tests/rnnflow/network/test_bag_of_words.py
        # proves the two solvers' probabilities equal.
        "solver": "sag",
    },
}
TITLES = BASELINE_TITLES  # how the runs and the tables name each baseline to a user
assert set(SETTINGS) == set(BASELINES) == set(TITLES)
SPLITS = ("train", "val", "test")


def baseline_stage(reviews: Stage, name: str) -> Stage:
    """Where `fit_baseline` writes baseline `name` of these reviews."""
    return stage("baselines", {"baseline": name, **SETTINGS[name]}, reviews.key, VERSION)


def needs_tokens(name: str) -> bool:
    """Whether baseline `name` reads the tokens stage of `TOKENIZE` (`fit_baseline`'s
    `tokens`)."""
    return name == "bag_of_words"


def fit_baseline(reviews: Stage, name: str, tokens: Stage | None = None) -> Stage:
    """Fit baseline `name` on the train split of the reviews stage and write its val and test
    predictions and its model; returns at once where the stage is already on disk. `tokens`:
    the reviews' tokens stage of `TOKENIZE`, for the bag-of-words (written here if not
    given)."""
    out = baseline_stage(reviews, name)
    if out.done():
        log.info("baseline %s: reusing %s", name, out.path)
        return out
    if needs_tokens(name):
        expected = tokens_stage(reviews, TOKENIZE)
        if tokens is None:
            tokens = tokenize_reviews(reviews, TOKENIZE)
        elif tokens.key != expected.key:
            raise ValueError(f"baseline {name} reads the tokens stage {expected.key} (its own "
                             f"tokenize settings), not {tokens.key}")
    labels = read_labels(reviews)
    classes = labels.classes
    frame = pq.read_table(reviews.file("reviews.parquet"), columns=["id", "split", "label"])
    split = frame["split"].to_numpy(zero_copy_only=False)
    rows = {s: np.flatnonzero(split == s) for s in SPLITS}
    ids = {s: frame["id"].take(pa.array(rows[s])).to_pylist() for s in SPLITS}
    y = {s: frame["label"].take(pa.array(rows[s])).to_numpy().astype(int) for s in SPLITS}
    started = time.perf_counter()
    names = classes if len(classes) > 2 else None
    model = BaselineModel(name, len(classes), TOKENIZE, classes=names,
                          binary_names=labels.binary_names)
    if name == "majority":
        probs, info = _majority(model, y)
    else:
        probs, info = _bag_of_words(model, reviews, tokens, rows, y)  # type: ignore[arg-type]
    info = {"baseline": name, **info, "fit_seconds": time.perf_counter() - started}
    with writing(out) as tmp:
        for s in ("val", "test"):
            prob = probs[s] if names else probs[s][:, 1]
            table = prediction_table(ids[s], y[s], prob, names)
            write_parquet(pa.Table.from_pandas(table, preserve_index=False),
                          tmp / f"{s}_predictions.parquet")
        (tmp / INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=2))
        save_baseline_model(model, tmp / MODEL_DIR)
    log.info("baseline %s: fitted in %.1f s -> %s", name, info["fit_seconds"], out.path)
    return out


def baseline_model_files(out: Stage) -> dict[str, Path]:
    """The files of the fitted baseline's raw-text model, by the keys its loader reads."""
    return model_files(out.path / MODEL_DIR)


def baseline_model(out: Stage) -> BaselineModel:
    """The fitted baseline as a raw-text model."""
    return load_baseline_model(baseline_model_files(out))


def _majority(model: BaselineModel, y: dict[str, np.ndarray]
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The train split's class shares as every review's probabilities."""
    counts = np.bincount(y["train"], minlength=model.k)
    model.shares = counts / counts.sum()
    probs = {s: model.class_probabilities([""] * len(y[s]))[0] for s in ("val", "test")}
    # The class these probabilities are read as (a tie of two classes reads as class 1).
    shares = model.shares
    predicted = int(shares[1] >= 0.5) if model.k == 2 else int(shares.argmax())
    return probs, {"params": {"majority_class": predicted}}


def _bag_of_words(model: BaselineModel, reviews: Stage, tokens: Stage,
                  rows: dict[str, np.ndarray], y: dict[str, np.ndarray]
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Each candidate fitted on train and scored on val; the best one's val and test
    probabilities (reviews x k), and the best one kept in `model`."""
    settings = SETTINGS["bag_of_words"]
    candidates = settings["candidates"]
    seconds: dict[str, float] = {}
    fits: dict[str, tuple[float, dict[str, np.ndarray], BaselineModel]] = {}

    started = time.perf_counter()
    table = pq.read_table(tokens.file("tokens.parquet"), columns=["id", "tokens"])
    # The tokens stage is written in the reviews stage's row order; `rows` index both.
    review_ids = pq.read_table(reviews.file("reviews.parquet"), columns=["id"])["id"]
    if not table["id"].cast(pa.large_string()).equals(review_ids.cast(pa.large_string())):
        raise ValueError(f"the tokens stage {tokens.key} is not of the reviews {reviews.key}")
    lists = table["tokens"]
    del table
    word = candidates["word"]
    vectorizer, x_train = fit_words(lists.take(pa.array(rows["train"])), word["ngram_range"],
                                    word["min_df"], word["max_features"], word["lowercase"])
    fits["word"] = _fitted(
        model, {"words": vectorizer}, x_train, y,
        {s: vectorizer.transform(lists.take(pa.array(rows[s]))) for s in ("val", "test")})
    seconds["word"] = time.perf_counter() - started
    del lists

    char = candidates["char_wb"]
    if len(rows["train"]) <= char["max_train"]:
        started = time.perf_counter()
        table = pq.read_table(reviews.file("reviews.parquet"), columns=["text"])["text"]
        texts = {s: pc.fill_null(table.take(pa.array(rows[s])), "").to_pylist() for s in SPLITS}
        chars, x_train = fit_chars(texts["train"], char["ngram_range"], char["min_df"],
                                   char["max_features"])
        fits["char_wb"] = _fitted(model, {"chars": chars}, x_train, y,
                                  {s: chars.transform(texts[s]) for s in ("val", "test")})
        seconds["char_wb"] = time.perf_counter() - started

    val_scores = {c: fit[0] for c, fit in fits.items()}
    best = max(fits, key=lambda c: val_scores[c])  # a tie: the first, words
    _, probs, chosen = fits[best]
    model.words, model.chars, model.linear = chosen.words, chosen.chars, chosen.linear
    return probs, {"params": {"analyzer": best}, "val_accuracy_by_analyzer": val_scores,
                   "seconds_by_analyzer": seconds}


def _fitted(model: BaselineModel, vectorizer: dict[str, Any], x_train, y: dict[str, np.ndarray],
            x: dict[str, Any]) -> tuple[float, dict[str, np.ndarray], BaselineModel]:
    """A logistic regression fitted on `x_train`: its val accuracy, its val and test
    probabilities (computed by the model that predicts raw text later) and that model."""
    from sklearn.linear_model import LogisticRegression

    settings = SETTINGS["bag_of_words"]
    regression = LogisticRegression(C=settings["C"], max_iter=settings["max_iter"],
                                    solver=settings["solver"], random_state=0)
    regression.fit(x_train, y["train"])
    candidate = BaselineModel(model.baseline, model.k, model.tokenize, **vectorizer,
                              linear=Linear(regression.coef_.astype(np.float64),
                                            regression.intercept_.astype(np.float64),
                                            regression.classes_.astype(np.int64)))
    probs = {s: candidate.scored(x[s]) for s in ("val", "test")}
    return float((probs["val"].argmax(axis=1) == y["val"]).mean()), probs, candidate


@dataclass(frozen=True)
class Baseline:
    """A fitted baseline: its name, stage, what its fit wrote down (`info`, the stage's
    baseline.json) and its scores, in the network's Evaluation form."""

    name: str
    stage: Stage
    info: dict[str, Any]
    evaluation: Evaluation

    @property
    def title(self) -> str:
        return TITLES[self.name]

    @property
    def params(self) -> dict[str, Any]:
        """What the fit chose (the majority class, the bag-of-words' analyzer)."""
        return self.info.get("params", {})


def fitted_baselines(reviews: Stage, names: tuple[str, ...] | list[str]) -> list[Baseline]:
    """Those of baselines `names` already fitted on these reviews, in the order given: what a
    point's result is framed against. One not on disk (a search trial's other dataset) is
    left out rather than fitted in the middle of a point."""
    stages = [baseline_stage(reviews, name) for name in names]
    return [load_baseline(out, reviews) for out in stages if out.done()]


def load_baseline(out: Stage, reviews: Stage) -> Baseline:
    """A fitted baseline's stage, scored with the network's metric code."""
    info = json.loads(out.file(INFO_FILE).read_text(encoding="utf-8"))
    classes = read_labels(reviews).classes
    predictions = {s: pd.read_parquet(out.file(f"{s}_predictions.parquet"))
                   for s in ("val", "test")}
    evaluation = scored(predictions, classes if len(classes) > 2 else None)
    return Baseline(info["baseline"], out, info, evaluation)
