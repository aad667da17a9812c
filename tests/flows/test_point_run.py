"""flows/point_run.py on a temporary SQLite store: which runs share a training key, and what
`--fresh` turns off (reuse of a finished run, continuation of a shorter one). The end-to-end
runs prove reuse (tests/flows/test_repeats.py), continuation (tests/flows/test_processes.py)
and a fresh run (tests/flows/test_train_rnn.py) once each; these are the details between."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from flows import point_run
from rnnflow import tracking
from rnnflow.config import Point


def _stages(embeddings: str = "e", padded: str = "p") -> SimpleNamespace:
    """What train_key reads of a point's stages: the keys of its word vectors and padding."""
    return SimpleNamespace(embeddings=SimpleNamespace(key=embeddings),
                           padded=SimpleNamespace(key=padded))


def _point(epochs: int = 1, **train) -> Point:
    return Point(name="unit", train={"epochs": epochs, **train})


@pytest.fixture
def ctx(project, monkeypatch) -> tracking.RunContext:
    """Runs of `project`'s mlflow.db, system metrics off (a thread per run, not looked at)."""
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    return tracking.RunContext(tracking.use_experiment("unit"), tracking.tracking_uri())


@pytest.fixture
def links(monkeypatch) -> list[tuple[str, str]]:
    """(run id, name) of each link the flow run would show, recorded instead of created."""
    made: list[tuple[str, str]] = []
    monkeypatch.setattr(point_run, "link_run",
                        lambda ctx, run_id, name: made.append((run_id, name)))
    return made


def _trained(ctx: tracking.RunContext, point: Point, epochs_done: int, tmp_path,
             stages: SimpleNamespace | None = None) -> str:
    """A FINISHED run as the chain leaves one for `point`: its training key, its settings, and
    a checkpoint for each of `epochs_done` epochs."""
    key = point_run.train_key(point, stages or _stages())
    ckpt = tmp_path / "last.keras"
    with tracking.start_run(ctx, "earlier") as run_id:
        tracking.set_tags({tracking.TRAIN_KEY_TAG: key})
        tracking.log_params(point.flat(), "")
        for epoch in range(1, epochs_done + 1):
            tracking.log_epoch(epoch, {"loss": 1.0 / epoch})
            ckpt.write_text(f"epoch {epoch}")
            tracking.log_checkpoint(ckpt, epoch)
        tracking.log_metrics({"val_accuracy": 0.75, "test_accuracy": 0.5})
    return run_id


def test_the_training_key_is_every_setting_but_the_epochs():
    key = point_run.train_key(_point(1), _stages())
    # More epochs of the same training: the same key, so a longer run continues a shorter one.
    assert point_run.train_key(_point(3), _stages()) == key
    assert point_run.train_key(Point(name="unit", train={"epochs": 1}, model={"num_neurons": 7}),
                               _stages()) != key
    assert point_run.train_key(_point(1, seed=7), _stages()) != key
    # Other inputs (another word-vector table or padding) are another training.
    assert point_run.train_key(_point(1), _stages(embeddings="e2")) != key
    assert point_run.train_key(_point(1), _stages(padded="p2")) != key
    # A setting added later leaves the key of runs logged before it, at its old value only.
    assert point_run.train_key(_point(1, mixed_precision=False), _stages()) == key
    assert point_run.train_key(_point(1, mixed_precision=True), _stages()) != key


def test_a_finished_run_stands_for_the_point_unless_fresh(ctx, links, tmp_path):
    point = _point(2)
    earlier = _trained(ctx, point, 2, tmp_path)
    row = point_run.finished_run(point, ctx, _stages(), "p")
    assert row is not None and row["run_id"] == earlier and row["reused"] is True
    assert row["val_accuracy"] == 0.75
    assert links == [(earlier, "p (reused)")]  # linked from the flow run
    fresh = dataclasses.replace(ctx, fresh=True)
    assert point_run.finished_run(point, fresh, _stages(), "p") is None
    # Asked for more epochs, it is no stand-in: it is continued instead (below).
    assert point_run.finished_run(_point(3), ctx, _stages(), "p") is None


@pytest.mark.parametrize("fresh", [False, True])
def test_more_epochs_continue_a_finished_run_unless_fresh(ctx, tmp_path, fresh):
    earlier = _trained(ctx, _point(1), 1, tmp_path)
    point = _point(2)
    key = point_run.train_key(point, _stages())
    run_ctx = dataclasses.replace(ctx, fresh=fresh)
    with tracking.start_run(run_ctx, "again") as run_id:
        resume = point_run._continued(point, run_ctx, key, tmp_path / "from")
    tags = MlflowClient().get_run(run_id).data.tags
    # Either way the run carries the key by which a later run finds it.
    assert tags[tracking.TRAIN_KEY_TAG] == key
    if fresh:  # from scratch: the shorter run is not continued
        assert resume is None and "continued_from" not in tags
    else:
        assert (resume.run_id, resume.epoch) == (earlier, 1)
        assert resume.path.read_text() == "epoch 1"
        assert tags["continued_from"] == earlier
