"""Early stopping: the model a run logs is its best epoch's, and so are the val_loss and
val_accuracy MLflow shows for it, with the per-epoch curve left as it was trained."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.train_rnn import train_rnn
from rnnflow import tracking
from rnnflow.config import DatasetConfig
from rnnflow.data.reviews import split_reviews
from tests.helpers import REPO, synthetic_reviews

pytestmark = pytest.mark.slow


def _val_against_train(path) -> None:
    """A table whose validation reviews carry the opposite of their words' label: the better
    the network learns the train split, the worse every later epoch's val_loss."""
    rows = [{"id": name, "split": name.split("/")[1], "label": int("/pos/" in name),
             "text": text} for name, text in synthetic_reviews(40).items()]
    table = pd.DataFrame(rows)
    val = set(split_reviews(table, DatasetConfig(source="csv")).query("split == 'val'").id)
    table.loc[table.id.isin(val), "label"] ^= 1
    table.to_csv(path, index=False)


def test_the_best_epoch_is_what_mlflow_shows(project):
    _val_against_train(project / "reviews.csv")
    rows = train_rnn(str(REPO / "params" / "tiny-grid.yaml"), {
        "dataset.source": "csv", "dataset.url": str(project / "reviews.csv"), "grid": {},
        "baselines": "none",
        "embedding.source": "onehot", "train.optimizer": "adam", "train.learning_rate": 0.01,
        "train.epochs": 5, "train.early_stopping": 5})
    (row,) = rows
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    run = client.get_run(row["run_id"])
    curve = {key: sorted((m.step, m.value) for m in client.get_metric_history(
        row["run_id"], key)) for key in ("val_loss", "val_accuracy", "loss")}
    epoch_losses = [v for step, v in curve["val_loss"] if step <= 5]
    best = epoch_losses.index(min(epoch_losses)) + 1
    assert best < 5 and epoch_losses[-1] > epoch_losses[best - 1]  # the last epoch is worse

    metrics = run.data.metrics
    assert (metrics["restored_epoch"], metrics["stopped_epoch"]) == (best, 5)
    # The five epochs as trained, then the logged model's own scores one step after them.
    assert [step for step, _ in curve["val_loss"]] == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in curve["loss"]] == [1, 2, 3, 4, 5]
    assert metrics["val_loss"] == pytest.approx(epoch_losses[best - 1], rel=1e-3)
    assert metrics["val_loss"] != pytest.approx(epoch_losses[-1], rel=1e-3)
    assert metrics["val_accuracy"] == pytest.approx(curve["val_accuracy"][best - 1][1])
    assert row["val_accuracy"] == metrics["val_accuracy"]  # what grids and searches rank by
    # rnnflow compare's curves are the epochs alone; --run best ranks by the final value.
    (record,) = tracking.load_runs([row["run_id"]])
    assert len(record.history["val_loss"]) == 5
    assert tracking.resolve_run("best", "tiny-grid") == row["run_id"]
