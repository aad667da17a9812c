"""Reuse of earlier training. Runs with the same training key (every setting but the number of
epochs) can stand in for one another:
- a FINISHED run trained for exactly the epochs asked for is reused as it is (`find_finished`);
- otherwise a run that asks for more epochs than such a run got goes on from the furthest one
  (`find_resume`): every epoch's checkpoint is logged for that."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

TRAIN_KEY_TAG = "rnnflow_train_key"
EPOCHS_DONE_TAG = "rnnflow_epochs_done"


@dataclass(frozen=True)
class Resume:
    """A run to continue: its id, the epochs it finished, and its checkpoint fetched here."""

    run_id: str
    epoch: int
    path: Path

    def prepend(self, history: dict[str, list[float]]) -> dict[str, list[float]]:
        """The continued run's per-epoch series from epoch 1: the earlier run's epochs first."""
        client = MlflowClient()
        out = {}
        for key, values in history.items():
            points = sorted((m.step, m.value) for m in client.get_metric_history(self.run_id, key))
            out[key] = [v for step, v in points if 1 <= step <= self.epoch] + values
        return out


def log_checkpoint(path: Path, epoch: int) -> None:
    """Replace the run's checkpoint with this epoch's, then record that the epoch is done."""
    mlflow.log_artifact(str(path), "checkpoint")
    mlflow.set_tag(EPOCHS_DONE_TAG, str(epoch))


def find_resume(experiment_id: str, train_key: str, epochs: int, dst: Path) -> Resume | None:
    """The run with the same training key that got furthest while short of `epochs`, with its
    checkpoint downloaded into `dst`; None if there is none.

    Any status counts: a FINISHED run that was asked for fewer epochs, or one that was killed
    (left RUNNING, and marked KILLED here) or failed after some epochs.
    """
    client = MlflowClient()
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.{TRAIN_KEY_TAG} = '{train_key}'", max_results=500)
    best = None
    for run in runs:
        done = int(run.data.tags.get(EPOCHS_DONE_TAG, "0"))
        if 0 < done < epochs and (best is None or done > int(best.data.tags[EPOCHS_DONE_TAG])):
            best = run
    if best is None:
        return None
    if best.info.status == "RUNNING":  # its process is gone: it was killed mid-training
        client.set_terminated(best.info.run_id, "KILLED")
    path = mlflow.artifacts.download_artifacts(
        run_id=best.info.run_id, artifact_path="checkpoint/last.keras", dst_path=str(dst))
    return Resume(best.info.run_id, int(best.data.tags[EPOCHS_DONE_TAG]), Path(path))


@dataclass(frozen=True)
class Finished:
    """A finished run whose results stand for a point that would train the same way."""

    run_id: str
    metrics: dict[str, float]


def find_finished(experiment_id: str, train_key: str, epochs: int) -> Finished | None:
    """The newest FINISHED run with this training key that was asked for `epochs` epochs."""
    runs = MlflowClient().search_runs(
        [experiment_id], filter_string=(
            f"tags.{TRAIN_KEY_TAG} = '{train_key}' and params.`train.epochs` = '{epochs}' "
            "and attributes.status = 'FINISHED'"),
        order_by=["attributes.start_time DESC"], max_results=1)
    return Finished(runs[0].info.run_id, dict(runs[0].data.metrics)) if runs else None
