"""evaluate_model: loss, accuracy, precision, recall, F1, ROC AUC and confusion matrix per split,
the test predictions, and the model's most confident mistakes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sklearn import metrics as skm

from rnnflow.data.pad import load_sequences, load_split, pad_layout
from rnnflow.data.storage import Stage, release_memory
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


@dataclass(frozen=True)
class Evaluation:
    """Scores of the val and test splits."""

    metrics: dict[str, float]  # {'val_accuracy': ..., 'test_auc': ...}
    confusion: dict[str, np.ndarray]  # per split; rows true neg/pos, columns predicted neg/pos
    predictions: dict[str, pd.DataFrame]  # per split: id, label, probability


def evaluate_model(model, padded: Stage, batch_size: int | None = None) -> Evaluation:
    """Score the val and test splits of `padded` with `model` (through `inference_model`, the
    same function with the first layer's input projection looked up); `batch_size` overrides
    `inference_batch`."""
    results: dict[str, float] = {}
    confusion: dict[str, np.ndarray] = {}
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
            prob = model.predict(x, batch_size=batch, verbose=0).ravel()
        results.update({f"{split}_{k}": v for k, v in score(y, prob).items()})
        confusion[split] = skm.confusion_matrix(y, prob >= 0.5, labels=[0, 1])
        ids = pq.read_table(path, columns=["id"])["id"].to_pylist()
        predictions[split] = pd.DataFrame({"id": ids, "label": y.astype(int),
                                           "probability": prob.astype(float)})
        del x
    release_memory()  # inference buffers, before the models are serialised for logging
    return Evaluation(results, confusion, predictions)


def confident_mistakes(predictions: pd.DataFrame, reviews_parquet, n: int,
                       excerpt: int = 300) -> pd.DataFrame:
    """The n wrong predictions the model was surest of, with the start of each review."""
    wrong = predictions[(predictions.probability >= 0.5) != (predictions.label == 1)].copy()
    wrong["confidence"] = (wrong.probability - 0.5).abs() * 2
    wrong = wrong.nlargest(n, "confidence")
    if wrong.empty:
        return wrong.assign(text=pd.Series(dtype=str))
    table = pq.read_table(reviews_parquet, columns=["id", "text"],
                          filters=[("id", "in", wrong.id.tolist())])
    texts = dict(zip(table["id"].to_pylist(),
                     pc.utf8_slice_codeunits(table["text"], 0, excerpt).to_pylist(), strict=True))
    wrong["text"] = wrong.id.map(texts)
    return wrong[["id", "label", "probability", "confidence", "text"]].reset_index(drop=True)
