"""A fitted baseline as a raw-text model: what `rnnflow predict --run <baseline run>` and
`mlflow models serve` load, and what computed the baseline's own val and test predictions, so
that both answer alike for the same review.

It reads raw text the way the baseline was fitted: the word candidate through the tokenizer
that wrote its tokens stage (rnnflow/data/tokens.py, with the baseline's tokenize settings),
lowercased, then its uni- and bigram vocabulary (rnnflow/network/bag_of_words.py); the
character candidate as scikit-learn's char_wb analyzer reads the lowercased text. The
logistic regression's weights are applied here, not by scikit-learn, and everything is saved
as JSON: nothing is pickled.

Unlike the network's text model, a baseline has no "no evidence" answer: a text without one
known word gets the regression's intercept, the train split's prior, which is also what its
stored predictions gave such a review. `known_tokens` still says how many tokens it knew (the
character candidate: how many distinct n-grams).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse, special

from rnnflow.config import TokenizeConfig
from rnnflow.network.bag_of_words import CharVectorizer, WordVectorizer, tfidf


@dataclass
class Linear:
    """A logistic regression's weights: `coef` (1 x features for two classes present in train,
    else one row per class), `intercept`, and the label of each of its classes."""

    coef: np.ndarray
    intercept: np.ndarray
    labels: np.ndarray

    def probabilities(self, x: sparse.csr_matrix, k: int) -> np.ndarray:
        """Texts x k: a class the train split lacked gets 0."""
        scores = np.asarray(x @ self.coef.T, dtype=np.float64) + self.intercept
        out = np.zeros((x.shape[0], k))
        if self.coef.shape[0] == 1:  # two classes: the sigmoid of the one score
            p = special.expit(scores[:, 0])
            out[:, self.labels[0]], out[:, self.labels[1]] = 1.0 - p, p
        else:
            out[:, self.labels] = special.softmax(scores, axis=1)
        return out

    def state(self) -> dict[str, Any]:
        return {"coef": self.coef.tolist(), "intercept": self.intercept.tolist(),
                "labels": self.labels.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Linear:
        return cls(np.asarray(state["coef"], dtype=np.float64),
                   np.asarray(state["intercept"], dtype=np.float64),
                   np.asarray(state["labels"], dtype=np.int64))


@dataclass
class BaselineModel:
    """Raw text in, the baseline's answer out (`predict`, the columns of the network's text
    model). `baseline`: majority or bag_of_words; `shares`: the majority's probabilities;
    `words` or `chars` with `linear`: the bag-of-words candidate it kept."""

    baseline: str
    k: int
    tokenize: TokenizeConfig
    classes: list[str] | None = None  # more than two classes: their names
    binary_names: list[str] | None = None  # two classes other than neg/pos
    shares: np.ndarray | None = None
    words: WordVectorizer | None = None
    chars: CharVectorizer | None = None
    linear: Linear | None = None
    _tokenizer: Any = field(default=None, repr=False, compare=False)

    def token_lists(self, texts: list[str]) -> pa.Array:
        """The texts tokenized as the tokens stage the word candidate was fitted on."""
        from rnnflow.data.tokens import make_tokenizer

        if self._tokenizer is None:
            self._tokenizer = make_tokenizer(self.tokenize)
        return pa.array([self._tokenizer(t) for t in texts], type=pa.list_(pa.string()))

    def scored(self, x: sparse.csr_matrix) -> np.ndarray:
        """Texts x k probabilities of TF-IDF vectors."""
        assert self.linear is not None
        return self.linear.probabilities(x, self.k)

    def class_probabilities(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(texts x k probabilities, known tokens per text)."""
        texts = ["" if t is None else str(t) for t in texts]
        if self.shares is not None:
            return (np.tile(self.shares, (len(texts), 1)),
                    np.zeros(len(texts), dtype=np.int64))
        if self.words is not None:
            lists = self.token_lists(texts)
            x = self.words.transform(lists)
            known = self.words.known_tokens(lists)
        else:  # characters: "known tokens" are the distinct n-grams it knew
            assert self.chars is not None
            counts = self.chars.counts(texts)
            x = tfidf(counts, self.chars.idf)
            known = np.diff(counts.tocsr().indptr).astype(np.int64)
        return self.scored(x), known

    def predict(self, texts: list[str]) -> pd.DataFrame:
        """The columns of the network's text model (rnnflow/network/predict.py `TextModel`):
        probability, label, known_tokens, class, and prob_<class> with more than two."""
        from rnnflow.network.predict import answer_table

        prob, known = self.class_probabilities(texts)
        return answer_table(prob, known, self.classes, self.binary_names,
                            no_evidence=np.zeros(len(known), dtype=bool))


def model_files(folder: Path) -> dict[str, Path]:
    """The files a baseline model in `folder` is saved as, by the keys its loader reads: its
    settings and its fitted state, JSON."""
    return {"baseline_config": folder / "baseline_config.json",
            "baseline_state": folder / "baseline_state.json"}


def save_baseline_model(model: BaselineModel, folder: Path) -> dict[str, Path]:
    """Write `model` as `model_files(folder)`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = model_files(folder)
    config = {"baseline": model.baseline, "k": model.k,
              "tokenize": model.tokenize.model_dump(), "classes": model.classes,
              "binary_names": model.binary_names}
    state: dict[str, Any] = {}
    if model.shares is not None:
        state["shares"] = model.shares.tolist()
    if model.words is not None:
        state["words"] = model.words.state()
    if model.chars is not None:
        state["chars"] = model.chars.state()
    if model.linear is not None:
        state["linear"] = model.linear.state()
    files["baseline_config"].write_text(json.dumps(config, ensure_ascii=False),
                                        encoding="utf-8")
    files["baseline_state"].write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    return files


def load_baseline_model(files: Mapping[str, str | Path]) -> BaselineModel:
    """The BaselineModel of `save_baseline_model`'s files."""
    config = json.loads(Path(files["baseline_config"]).read_text(encoding="utf-8"))
    state = json.loads(Path(files["baseline_state"]).read_text(encoding="utf-8"))
    return BaselineModel(
        config["baseline"], int(config["k"]), TokenizeConfig(**config["tokenize"]),
        classes=config.get("classes"), binary_names=config.get("binary_names"),
        shares=np.asarray(state["shares"]) if "shares" in state else None,
        words=WordVectorizer.from_state(state["words"]) if "words" in state else None,
        chars=CharVectorizer.from_state(state["chars"]) if "chars" in state else None,
        linear=Linear.from_state(state["linear"]) if "linear" in state else None)
