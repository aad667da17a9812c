"""evaluate_model: loss, accuracy, precision, recall, F1, ROC AUC and confusion matrix per split,
the test predictions, and the model's most confident mistakes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sklearn import metrics as skm

from rnnflow import buckets
from rnnflow.model import inference_model
from rnnflow.pad import load_sequences, load_split, pad_layout
from rnnflow.storage import Stage, release_memory


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


# Bytes of one batch's looked-up input projection (batch x steps x width float32) that a
# projected model's inference batch is sized to; see `inference_batch`.
PROJECTED_BATCH_BYTES = 40 * 2**20


def inference_batch(model, steps: int, default: int = 128) -> int:
    """Reviews per inference batch. A model from `inference_model` reads (gates x units) floats
    per step, not the word vectors, so it takes as many reviews as keep one batch's projected
    inputs near 40 MB, between 128 and 1024: at the lesson's SimpleRNN(50) x 400 steps that is
    512, which on 2 cores ran 1.6x as fast as 128 (the loop's per-step cost is paid per batch).
    Any other model gets `default`: it holds batch x steps x dim floats (the embedded batch and
    its time-major copy), about 1 MB per review at 400 x 300; on 25k test reviews batch 256
    added 340 MB of peak memory, 128 about 250 MB and ran as fast, 64 half as fast.
    """
    try:
        width = model.get_layer("word2vec_projected").output_dim
    except ValueError:
        return default
    fits = PROJECTED_BATCH_BYTES // (4 * max(steps, 1) * width) // 64 * 64
    return int(min(1024, max(128, fits)))


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
