"""Raw text in, sentiment out: the trained network with the tokenizer and vocabulary it was
trained with (`TextModel`), and its files: what a run logs as its `text_model`
(`save_text_model`) and what loads it again (`load_text_model`).

Internal: users and logged models reach `TextModel` and `load_text_model` through `rnnflow.api`.
`load_text_model` keeps its name and arguments here all the same, since the text models logged
before `rnnflow.api` existed name this function itself (rnnflow/_compat/__init__.py lists them).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from rnnflow.config import PadConfig, TokenizeConfig
from rnnflow.data.pad import Sequences, pad_ids
from rnnflow.data.reviews import SENTIMENT
from rnnflow.data.tokens import make_tokenizer
from rnnflow.network import buckets

# A text with no token in the vocabulary (an empty or whitespace-only text among them) gives
# the network nothing to read. It gets this probability and label, with known_tokens = 0,
# rather than the score of an all-padding input, which would look like an opinion.
NO_EVIDENCE_PROBABILITY = 0.5
NO_EVIDENCE_LABEL = -1
# With k > 2 classes: the label of a text with no known token; its probability and each
# class's are 1 / k.
NO_OPINION = "no opinion"
# Two classes: the `class` of a text with no known token (label -1). It stays the word that
# `rnnflow predict` printed there before there was a `class` column.
NO_EVIDENCE_CLASS = "unknown"
# A sentiment model (neg/pos) answers in the words `rnnflow predict` always printed for it;
# a two-class model of other labels answers with its own class names (ham, spam).
SENTIMENT_WORDS = {"neg": "negative", "pos": "positive"}

# Optional packages that NLTK and Keras import when installed, for features prediction never
# uses (scikit-learn wrappers, plots, statistics): over a second of a prediction's start.
_NOT_FOR_PREDICTION = ("sklearn", "matplotlib", "scipy.stats")


@dataclass
class TextModel:
    model: object  # keras.Model taking int32 ids
    vocab: list[str]  # row i + 1 of the embedding table is vocab[i]
    tokenize: TokenizeConfig
    pad: PadConfig
    threshold: float = 0.5
    # More than two classes: their names (label i is classes[i]) and a softmax network; None
    # for the sigmoid network of two classes.
    classes: list[str] | None = None
    # Two classes: the names of label 0 and label 1 where they are not the sentiment pair
    # neg/pos (a model logged without them is sentiment); None otherwise.
    binary_names: list[str] | None = None

    def __post_init__(self) -> None:
        self._rows = {token: i + 1 for i, token in enumerate(self.vocab)}
        self._tokenizer = make_tokenizer(self.tokenize)

    @property
    def class_names(self) -> list[str]:
        """The name of every label, label i is class_names[i]: the k classes, or the two of a
        sigmoid network (class 1 is the one whose probability it outputs)."""
        return class_names(self.classes, self.binary_names)

    @property
    def answer_names(self) -> list[str]:
        """What the `class` column of `predict` says for label i: the class names, with the
        sentiment pair in words (negative, positive)."""
        return answer_names(self.classes, self.binary_names)

    def _lists(self, texts: list[str]) -> list[list[int]]:
        return [[self._rows[t] for t in self._tokenizer(text) if t in self._rows]
                for text in texts]

    def ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids (texts x maxlen; with `pad.maxlen: null`, x the longest text) and the
        number of known tokens of each text."""
        lists = self._lists(texts)
        known = np.array([len(ids) for ids in lists], dtype=np.int64)
        return pad_ids(pa.array(lists, type=pa.list_(pa.int32())), self.pad), known

    def outputs(self, lists: list[list[int]]) -> np.ndarray:
        """The network's outputs for vocabulary-row lists (each with at least one id), one row
        of width 1 (a sigmoid) or k (a softmax) per list: padded to maxlen as in training, or,
        with `pad.maxlen: null`, whole, in length-sorted batches as in evaluation."""
        if self.pad.maxlen is None:
            out = buckets.predict(self.model, Sequences.from_lists(lists, self.pad.padding), 64)
        else:
            x = pad_ids(pa.array(lists, type=pa.list_(pa.int32())), self.pad)
            out = self.model.predict(x, verbose=0, batch_size=64)
        return np.asarray(out).reshape(len(lists), -1)

    def class_probabilities(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(texts x k class probabilities, known tokens per text) of a k-class model; a text
        with no known token gets 1 / k for every class."""
        texts = ["" if t is None else str(t) for t in texts]
        k = len(self.classes or ())
        prob = np.full((len(texts), k), 1.0 / max(k, 1), dtype=np.float64)
        lists = self._lists(texts)
        known = np.array([len(ids) for ids in lists], dtype=np.int64)
        if (known > 0).any():
            prob[known > 0] = self.outputs([ids for ids in lists if ids])
        return prob, known

    def predict(self, texts: list[str]) -> pd.DataFrame:
        """One row per text: probability (of class 1: `class_names[1]`, `pos` for sentiment),
        label (1, 0, or -1 with no evidence), known_tokens (tokens found in the vocabulary),
        class (the predicted class's name: `answer_names[label]`, "unknown" with no evidence).
        With k > 2 classes: label (the class name, "no opinion" with no evidence), probability
        (of that class), known_tokens, class (the same as label) and prob_<class> for every
        class.

        `class` is the column every model has in the same form, a string naming the answer,
        so that a client of models of any kind reads one column; `label` keeps its type per
        kind (an integer for two classes), which served clients already rely on."""
        if self.classes is not None:
            return self._predict_classes(texts)
        texts = ["" if t is None else str(t) for t in texts]
        prob = np.full(len(texts), NO_EVIDENCE_PROBABILITY, dtype=np.float64)
        lists = self._lists(texts)
        known = np.array([len(ids) for ids in lists], dtype=np.int64)
        if (known > 0).any():
            prob[known > 0] = self.outputs([ids for ids in lists if ids])[:, 0]
        return answer_table(prob, known, None, self.binary_names, threshold=self.threshold)

    def _predict_classes(self, texts: list[str]) -> pd.DataFrame:
        prob, known = self.class_probabilities(texts)
        return answer_table(prob, known, self.classes, None)


def class_names(classes: list[str] | None, binary_names: list[str] | None) -> list[str]:
    """The name of every label of a model of `classes` (more than two) or of two classes
    (`binary_names`; None: the sentiment pair)."""
    return list(classes or binary_names or SENTIMENT)


def answer_names(classes: list[str] | None, binary_names: list[str] | None) -> list[str]:
    """What the `class` column says for label i: the class names, with the sentiment pair in
    words (negative, positive)."""
    names = class_names(classes, binary_names)
    if classes is None and tuple(names) == SENTIMENT:
        return [SENTIMENT_WORDS[n] for n in names]
    return names


def answer_table(prob: np.ndarray, known: np.ndarray, classes: list[str] | None,
                 binary_names: list[str] | None, *, threshold: float = 0.5,
                 no_evidence: np.ndarray | None = None) -> pd.DataFrame:
    """What every raw-text model of rnnflow answers (see `TextModel.predict`), from the
    probabilities of its texts (two classes: of class 1, or texts x 2; more: texts x k) and
    their known tokens. The texts of `no_evidence` (by default those with no known token) are
    answered "unknown" (label -1) or "no opinion"; their probabilities are the caller's."""
    no_evidence = known == 0 if no_evidence is None else no_evidence
    if classes is None:
        prob = prob[:, 1] if prob.ndim == 2 else prob
        label = np.where(prob >= threshold, 1, 0)
        label[no_evidence] = NO_EVIDENCE_LABEL
        names = np.array([*answer_names(None, binary_names), NO_EVIDENCE_CLASS], dtype=object)
        return pd.DataFrame({"probability": prob, "label": label.astype(np.int64),
                             "known_tokens": known,
                             "class": names[label].astype(str)})  # label -1: the last name
    names = np.array(classes, dtype=object)
    label = np.where(~no_evidence, names[prob.argmax(axis=1)] if len(prob) else [], NO_OPINION)
    return pd.DataFrame({"probability": prob.max(axis=1) if len(prob) else [],
                         "label": label.astype(str), "known_tokens": known,
                         "class": label.astype(str),
                         **{f"prob_{c}": prob[:, i] for i, c in enumerate(classes)}})


# What `predict` returns, column by column, as MLflow types: the logged model's signature.
OUTPUTS = {"probability": "double", "label": "long", "known_tokens": "long",
           "class": "string"}


def outputs(text_model: TextModel) -> dict[str, str]:
    """The logged signature of `text_model`'s answers: OUTPUTS for two classes; with k, a
    string label and a probability column per class."""
    if text_model.classes is None:
        return OUTPUTS
    return {"probability": "double", "label": "string", "known_tokens": "long",
            "class": "string", **{f"prob_{c}": "double" for c in text_model.classes}}


def save_text_model(text_model: TextModel, folder: Path) -> dict[str, Path]:
    """The files a text model is logged as: the Keras network, the vocabulary, the tokenizer
    and pad settings."""
    files = {"keras_model": folder / "model.keras", "vocab": folder / "vocab.json",
             "config": folder / "config.json"}
    text_model.model.save(files["keras_model"])
    files["vocab"].write_text(json.dumps(text_model.vocab))
    config = {"tokenize": text_model.tokenize.model_dump(), "pad": text_model.pad.model_dump()}
    if text_model.classes is not None:
        config["classes"] = text_model.classes
    if text_model.binary_names is not None:
        config["binary_names"] = text_model.binary_names
    files["config"].write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return files


def load_text_model(files: dict[str, str]) -> TextModel:
    """The TextModel of `save_text_model`'s files; the network loads with Keras safe mode."""
    from rnnflow.network.model import load_model

    cfg = json.loads(Path(files["config"]).read_text(encoding="utf-8"))
    vocab = json.loads(Path(files["vocab"]).read_text(encoding="utf-8"))
    return TextModel(load_model(files["keras_model"]), vocab,
                     TokenizeConfig(**cfg["tokenize"]), PadConfig(**cfg["pad"]),
                     classes=cfg.get("classes"), binary_names=cfg.get("binary_names"))


def import_for_prediction() -> None:
    """Import NLTK's tokenizers and Keras (TensorFlow) without the optional packages above, in
    a process that only predicts (`rnnflow predict`). Both import them under `try: ... except
    ImportError`, so they simply go without; the packages stay importable afterwards, but
    Keras' scikit-learn wrappers and plotting helpers do not work in this process."""
    blocked = [name for name in _NOT_FOR_PREDICTION if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment] - makes `import name` fail
    try:
        import keras  # noqa: F401
        import nltk.tokenize  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]
