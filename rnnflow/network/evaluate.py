"""evaluate_model: loss, accuracy, precision, recall, F1, ROC AUC and confusion matrix per split,
the test predictions, and the model's most confident mistakes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn import metrics as skm

from rnnflow.data.pad import load_sequences, load_split, pad_layout
from rnnflow.data.reviews import texts_by_id
from rnnflow.data.storage import Stage
from rnnflow.memory import release_memory
from rnnflow.network import buckets
from rnnflow.network.model import inference_batch, inference_model


def score(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    pred = (prob >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    return {
        "loss": float(skm.log_loss(y_true, prob, labels=[0, 1])),
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "precision": float(skm.precision_score(y_true, pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, pred, zero_division=0)),
        "auc": float(skm.roc_auc_score(y_true, prob)) if both else float("nan"),
    }


def score_classes(y_true: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """k-class scores of class probabilities (reviews x k): accuracy, macro and weighted F1,
    log loss (`loss`) and the macro one-vs-rest ROC AUC over the classes this split holds
    (NaN with fewer than two)."""
    k = prob.shape[1]
    y_true = np.asarray(y_true).astype(int)
    pred = prob.argmax(axis=1)
    present = [c for c in range(k) if 0 < (y_true == c).sum() < len(y_true)]
    # Clipped away from 0 for the log loss, then rows summing to one again (sklearn warns
    # about rows that do not, as a baseline's exact zeros would be after the clip).
    clipped = np.clip(prob, 1e-7, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    aucs = [skm.roc_auc_score(y_true == c, prob[:, c]) for c in present]
    return {
        "loss": float(skm.log_loss(y_true, clipped, labels=list(range(k)))),
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "macro_f1": float(skm.f1_score(y_true, pred, labels=list(range(k)), average="macro",
                                       zero_division=0)),
        "weighted_f1": float(skm.f1_score(y_true, pred, labels=list(range(k)),
                                          average="weighted", zero_division=0)),
        "auc": float(np.mean(aucs)) if len(present) >= 2 else float("nan"),
    }


def per_class(y_true: np.ndarray, pred: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class: one row per class."""
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        np.asarray(y_true).astype(int), pred, labels=list(range(len(classes))),
        zero_division=0)
    return pd.DataFrame({"class": classes, "precision": precision, "recall": recall,
                         "f1": f1, "support": support.astype(int)})


def prob_column(name: str) -> str:
    """The column of a k-class prediction table holding the probability of class `name`."""
    return f"prob_{name}"


@dataclass(frozen=True)
class Evaluation:
    """Scores of the val and test splits."""

    metrics: dict[str, float]  # {'val_accuracy': ..., 'test_auc': ...}
    # per split; rows true class, columns predicted class (neg/pos for two classes)
    confusion: dict[str, np.ndarray]
    # per split: id, label, probability (of class 1); with k > 2 classes: id, label,
    # predicted, probability (of the predicted class) and prob_<class> for each class
    predictions: dict[str, pd.DataFrame]
    classes: list[str] | None = None  # with k > 2 classes: their names (label i is classes[i])
    per_class: dict[str, pd.DataFrame] | None = None  # with k > 2: `per_class` of each split

    @property
    def multiclass(self) -> bool:
        return self.classes is not None and len(self.classes) > 2

    def per_class_frame(self) -> pd.DataFrame:
        """Every split's `per_class` table in one, a `split` column first: the per_class.csv
        a run logs (k > 2 classes)."""
        return pd.concat([table.assign(split=split)[["split", *table.columns]]
                          for split, table in (self.per_class or {}).items()],
                         ignore_index=True)


def evaluate_model(model, padded: Stage, batch_size: int | None = None,
                   classes: list[str] | None = None) -> Evaluation:
    """Score the val and test splits of `padded` with `model` (through `inference_model`, the
    same function with the first layer's input projection looked up); `batch_size` overrides
    `inference_batch`. A softmax model (k > 2 `classes`) gets k-class scores."""
    width = int(model.output_shape[-1])
    if width > 1:
        classes = list(classes) if classes else [str(i) for i in range(width)]
        if len(classes) != width:
            raise ValueError(f"{len(classes)} class names for a model of {width} classes")
    else:
        classes = None
    predictions: dict[str, pd.DataFrame] = {}
    layout = pad_layout(padded)
    model = inference_model(model)
    for split in ("val", "test"):
        path = padded.file(f"{split}.parquet")
        if layout.bucketed:  # length-sorted batches, each padded to its longest review
            x, y = load_sequences(path, layout)
            steps = x.batch_length(np.arange(len(x)))  # the longest batch's length
            prob = buckets.predict(model, x, batch_size or inference_batch(model, steps))
        else:
            x, y = load_split(path)
            batch = batch_size or inference_batch(model, x.shape[1])
            prob = model.predict(x, batch_size=batch, verbose=0)
            prob = prob.ravel() if classes is None else prob
        ids = pq.read_table(path, columns=["id"])["id"].to_pylist()
        predictions[split] = prediction_table(ids, y, prob, classes)
        del x
    release_memory()  # inference buffers, before the models are serialised for logging
    return scored(predictions, classes)


def prediction_table(ids, y: np.ndarray, prob: np.ndarray,
                     classes: list[str] | None) -> pd.DataFrame:
    """One split's predictions: id, label, probability (of class 1) for two classes; with
    k > 2 `classes` (prob: reviews x k), id, label, predicted, probability (of the predicted
    class) and prob_<class> for each class."""
    if classes is None:
        return pd.DataFrame({"id": ids, "label": np.asarray(y).astype(int),
                             "probability": np.asarray(prob).astype(float)})
    pred = prob.argmax(axis=1)
    return pd.DataFrame({
        "id": ids, "label": np.asarray(y).astype(int), "predicted": pred.astype(int),
        "probability": prob.max(axis=1).astype(float),
        **{prob_column(c): prob[:, i].astype(float) for i, c in enumerate(classes)}})


def scored(predictions: dict[str, pd.DataFrame], classes: list[str] | None) -> Evaluation:
    """The Evaluation of prediction tables by split (`prediction_table`'s form), whatever
    made them: the network (evaluate_model) or a baseline (rnnflow/network/baselines.py), so
    that both log the same metric keys."""
    results: dict[str, float] = {}
    confusion: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    for split, frame in predictions.items():
        y = frame.label.to_numpy()
        if classes is not None:
            prob = frame[[prob_column(c) for c in classes]].to_numpy()
            pred = prob.argmax(axis=1)
            results.update({f"{split}_{k}": v for k, v in score_classes(y, prob).items()})
            confusion[split] = skm.confusion_matrix(y, pred, labels=list(range(len(classes))))
            tables[split] = per_class(y, pred, classes)
        else:
            prob = frame.probability.to_numpy()
            results.update({f"{split}_{k}": v for k, v in score(y, prob).items()})
            confusion[split] = skm.confusion_matrix(y, prob >= 0.5, labels=[0, 1])
    if classes is None:
        return Evaluation(results, confusion, predictions)
    return Evaluation(results, confusion, predictions, classes, tables)


def confident_mistakes(predictions: pd.DataFrame, reviews_parquet, n: int,
                       excerpt: int = 300) -> pd.DataFrame:
    """The n wrong predictions the model was surest of, with the start of each review (with
    k classes: confidence is the predicted class's probability)."""
    if "predicted" in predictions.columns:
        wrong = predictions[predictions.predicted != predictions.label].copy()
        wrong["confidence"] = wrong.probability
        columns = ["id", "label", "predicted", "probability", "confidence", "text"]
    else:
        wrong = predictions[(predictions.probability >= 0.5) != (predictions.label == 1)].copy()
        wrong["confidence"] = (wrong.probability - 0.5).abs() * 2
        columns = ["id", "label", "probability", "confidence", "text"]
    return _with_texts(wrong.nlargest(n, "confidence"), reviews_parquet, excerpt, columns)


def _with_texts(wrong: pd.DataFrame, reviews_parquet, excerpt: int,
                columns: list[str]) -> pd.DataFrame:
    if wrong.empty:
        return wrong.assign(text=pd.Series(dtype=str))
    wrong["text"] = wrong.id.map(texts_by_id(reviews_parquet, wrong.id.tolist(), excerpt))
    return wrong[columns].reset_index(drop=True)
