"""Reuse and continued training, on a SQLite store: which earlier run stands in for a point."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from rnnflow import tracking


def _trained(store, key: str, epochs_asked: int, epochs_done: int, tmp_path,
             status: str | None = "FINISHED") -> str:
    """A run as rnnflow leaves one: training key `key`, asked for `epochs_asked` epochs, with
    the metrics and checkpoint of `epochs_done` of them; ended with `status` (None: left
    RUNNING, as a SIGKILL leaves it)."""
    client = MlflowClient()
    run_id = client.create_run(store.experiment_id,
                               tags={tracking.TRAIN_KEY_TAG: key}).info.run_id
    client.log_param(run_id, "train.epochs", epochs_asked)
    ckpt = tmp_path / "last.keras"
    for epoch in range(1, epochs_done + 1):
        client.log_metric(run_id, "loss", 1.0 / epoch, step=epoch)
        client.log_metric(run_id, "val_accuracy", 0.5 + epoch / 100, step=epoch)
        ckpt.write_text(f"epoch {epoch} of {run_id}")
        client.log_artifact(run_id, str(ckpt), "checkpoint")
        client.set_tag(run_id, tracking.EPOCHS_DONE_TAG, str(epoch))
    if status:
        client.set_terminated(run_id, status)
    return run_id


def test_a_finished_run_asked_for_the_same_epochs_is_reused(store, tmp_path):
    older = _trained(store, "k", 2, 2, tmp_path)
    newer = _trained(store, "k", 2, 2, tmp_path)
    _trained(store, "k", 3, 3, tmp_path)
    _trained(store, "other", 2, 2, tmp_path)
    found = tracking.find_finished(store.experiment_id, "k", 2)
    assert found is not None and found.run_id == newer != older
    assert found.metrics["val_accuracy"] == pytest.approx(0.52)
    assert tracking.find_finished(store.experiment_id, "k", 4) is None
    assert tracking.find_finished(store.experiment_id, "nope", 2) is None


def test_a_failed_run_is_not_reused(store, tmp_path):
    _trained(store, "k", 2, 2, tmp_path, status="FAILED")
    assert tracking.find_finished(store.experiment_id, "k", 2) is None


def test_more_epochs_continue_the_run_that_got_furthest(store, tmp_path):
    one = _trained(store, "k", 1, 1, tmp_path)
    killed = _trained(store, "k", 4, 2, tmp_path, status=None)
    _trained(store, "k", 4, 0, tmp_path, status="FAILED")  # failed before its first epoch

    resume = tracking.find_resume(store.experiment_id, "k", 4, tmp_path / "from")
    assert (resume.run_id, resume.epoch) == (killed, 2)
    assert resume.path.read_text() == f"epoch 2 of {killed}"
    assert MlflowClient().get_run(killed).info.status == "KILLED"  # its process is gone
    # Its curve goes first in the continued run's: epochs 1 and 2, then the new ones.
    assert resume.prepend({"loss": [0.25, 0.2]})["loss"] == pytest.approx([1.0, 0.5, 0.25, 0.2])

    # Asked for two epochs, the killed run (two done) is no start; the one-epoch run is.
    assert tracking.find_resume(store.experiment_id, "k", 2, tmp_path / "b").run_id == one
    assert tracking.find_resume(store.experiment_id, "k", 1, tmp_path / "c") is None


def test_a_checkpoint_marks_its_epoch_done(store, tmp_path):
    ckpt = tmp_path / "last.keras"
    with tracking.start_run(store, "r") as run_id:
        for epoch in (1, 2):
            ckpt.write_text(str(epoch))
            tracking.log_checkpoint(ckpt, epoch)
    run = MlflowClient().get_run(run_id)
    assert run.data.tags[tracking.EPOCHS_DONE_TAG] == "2"
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoint/last.keras",
                                               dst_path=str(tmp_path / "got"))
    assert open(path).read() == "2"  # replaced each epoch
