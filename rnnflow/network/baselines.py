"""Reference models beside the RNN, on the same reviews and splits: a result means something
only beside what a trivial or a classical model scores on the same test reviews.

- `majority`: every review gets the train split's class shares as its probabilities, so it is
  predicted the train split's most frequent class (on a tie: of two classes the second, as a
  probability of 0.5 reads as class 1; of more, the first);
- `bag_of_words`: TF-IDF (sublinear term frequency) with logistic regression, fitted on the
  train split once on word n-grams and once on character n-grams; the one with the better val
  accuracy is kept (`analyzer` in its params; a tie keeps words, the cheaper and the more
  readable).

Each baseline is a stage of its own, data/baselines/<key>/, keyed by the reviews stage's key
and the baseline's settings (`SETTINGS`): fitted once per dataset, then reused by every later
run, grid point and repeat. It holds val_predictions.parquet and test_predictions.parquet, in
the network's own form (rnnflow/network/evaluate.py `prediction_table`), so the same metric
code scores both and the paired tests (rnnflow/comparisons/stats.py) compare them review by
review; and baseline.json, what was chosen and why.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rnnflow.config import BASELINES
from rnnflow.data.reviews import read_labels
from rnnflow.data.storage import Stage, stage, write_parquet, writing
from rnnflow.network.evaluate import Evaluation, prediction_table, scored

log = logging.getLogger(__name__)

VERSION = 1
INFO_FILE = "baseline.json"
# What each baseline is fitted with: part of its stage key, so a change here refits it. Word
# uni- and bigrams are the classical text-classification baseline; character 2-5-grams within
# word boundaries hold up on inflected languages and misspellings, where words are sparse. The
# feature caps bound the memory and the fit time on the full archive.
SETTINGS: dict[str, dict[str, Any]] = {
    "majority": {},
    "bag_of_words": {
        "candidates": {
            "word": {"analyzer": "word", "ngram_range": [1, 2], "min_df": 1,
                     "max_features": 200_000},
            "char_wb": {"analyzer": "char_wb", "ngram_range": [2, 5], "min_df": 1,
                        "max_features": 200_000},
        },
        "C": 4.0,
        "max_iter": 1000,
    },
}
# How the tracking layer and the tables name each baseline to a user.
TITLES = {"majority": "majority", "bag_of_words": "bag-of-words"}
assert set(SETTINGS) == set(BASELINES) == set(TITLES)


def baseline_stage(reviews: Stage, name: str) -> Stage:
    """Where `fit_baseline` writes baseline `name` of these reviews."""
    return stage("baselines", {"baseline": name, **SETTINGS[name]}, reviews.key, VERSION)


def fit_baseline(reviews: Stage, name: str) -> Stage:
    """Fit baseline `name` on the train split of the reviews stage and write its val and test
    predictions; returns at once where the stage is already on disk."""
    out = baseline_stage(reviews, name)
    if out.done():
        log.info("baseline %s: reusing %s", name, out.path)
        return out
    frame = pq.read_table(reviews.file("reviews.parquet"),
                          columns=["id", "split", "label", "text"]).to_pandas()
    classes = read_labels(reviews).classes
    splits = {s: frame[frame.split == s].reset_index(drop=True)
              for s in ("train", "val", "test")}
    started = time.perf_counter()
    fit = _majority if name == "majority" else _bag_of_words
    probs, info = fit(splits, len(classes))
    info = {"baseline": name, **info, "fit_seconds": time.perf_counter() - started}
    names = classes if len(classes) > 2 else None
    with writing(out) as tmp:
        for split in ("val", "test"):
            prob = probs[split] if names else probs[split][:, 1]
            table = prediction_table(splits[split].id.tolist(), splits[split].label.to_numpy(),
                                     prob, names)
            write_parquet(pa.Table.from_pandas(table, preserve_index=False),
                          tmp / f"{split}_predictions.parquet")
        (tmp / INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=2))
    log.info("baseline %s: fitted in %.1f s -> %s", name, info["fit_seconds"], out.path)
    return out


def _majority(splits: dict[str, pd.DataFrame], k: int
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The train split's class shares as every review's probabilities."""
    counts = np.bincount(splits["train"].label.to_numpy().astype(int), minlength=k)
    shares = counts / counts.sum()
    probs = {s: np.tile(shares, (len(splits[s]), 1)) for s in ("val", "test")}
    # The class these probabilities are read as (a tie of two classes reads as class 1).
    predicted = int(shares[1] >= 0.5) if k == 2 else int(shares.argmax())
    return probs, {"params": {"majority_class": predicted}}


def _bag_of_words(splits: dict[str, pd.DataFrame], k: int
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Each candidate fitted on train and scored on val; the best one's val and test
    probabilities (reviews x k)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    settings = SETTINGS["bag_of_words"]
    train, y = splits["train"].text.fillna(""), splits["train"].label.to_numpy().astype(int)
    best: tuple[float, str, dict[str, np.ndarray]] | None = None
    val_scores = {}
    for candidate, options in settings["candidates"].items():
        vectorizer = TfidfVectorizer(**{**options, "ngram_range": tuple(options["ngram_range"])},
                                     sublinear_tf=True, dtype=np.float32)
        model = LogisticRegression(C=settings["C"], max_iter=settings["max_iter"])
        model.fit(vectorizer.fit_transform(train), y)
        probs = {s: _all_classes(model, model.predict_proba(
            vectorizer.transform(splits[s].text.fillna(""))), k) for s in ("val", "test")}
        val_y = splits["val"].label.to_numpy().astype(int)
        val_scores[candidate] = float((probs["val"].argmax(axis=1) == val_y).mean())
        if best is None or val_scores[candidate] > best[0]:
            best = (val_scores[candidate], candidate, probs)
    assert best is not None
    return best[2], {"params": {"analyzer": best[1]},
                     "val_accuracy_by_analyzer": val_scores}


def _all_classes(model, prob: np.ndarray, k: int) -> np.ndarray:
    """Probabilities over all k classes: a class the train split lacks gets 0."""
    full = np.zeros((len(prob), k))
    full[:, model.classes_.astype(int)] = prob
    return full


@dataclass(frozen=True)
class Baseline:
    """A fitted baseline: its name, stage, what it chose (`params`) and its scores, in the
    network's Evaluation form."""

    name: str
    stage: Stage
    params: dict[str, Any]
    evaluation: Evaluation

    @property
    def title(self) -> str:
        return TITLES[self.name]


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
    return Baseline(info["baseline"], out, info.get("params", {}), evaluation)
