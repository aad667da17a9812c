"""What the chain (flows/chain.py) does around its steps for one point: its MLflow run.

- `failure_recorded`: a preprocessing step that fails still leaves a FAILED run, with the error
  and the settings, although the point's run had not started yet;
- `finished_run`: a FINISHED run that trained the same way (same training key and epochs)
  stands for the point instead of training again, unless the flow run is `--fresh`;
- `point_run`: the point's run, started before training so that a failure leaves a FAILED run
  with its error; it logs the settings, labels and inputs, finds the earlier run this one
  continues (more epochs of the same training key), and hands training its checkpoint and
  epoch hook.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flows.artifacts import link_run
from rnnflow import faults, tracking
from rnnflow.config import Point
from rnnflow.data.storage import content_key
from rnnflow.network.evaluate import Evaluation
from rnnflow.network.train import Fit
from rnnflow.tracking import Resume, RunContext
from tasks.results import preprocess_seconds
from tasks.stages import Stages
from tasks.timing import StepClock

log = logging.getLogger("rnnflow.flow")

# Settings added after runs were logged, with the value those runs trained with: left out of
# the training key at that value, so an earlier run is still reused or continued.
_ADDED_LATER = {"train.mixed_precision": False, "train.loss_steps": "last"}


def train_key(point: Point, stages: Stages) -> str:
    """Everything that shapes training except the number of epochs: runs that share it can
    stand in for, or continue, one another."""
    settings = {k: v for k, v in point.flat().items() if k != "train.epochs"
                and not (k in _ADDED_LATER and v == _ADDED_LATER[k])}
    return content_key(settings, f"{stages.embeddings.key}+{stages.padded.key}", 1)


def _log_settings(point: Point) -> None:
    tracking.log_params(point.flat(), yaml.safe_dump(point.model_dump(), sort_keys=False))


@contextlib.contextmanager
def failure_recorded(point: Point, ctx: RunContext, run_name: str) -> Iterator[None]:
    """A step of the block that fails leaves a FAILED run with the error and the settings."""
    try:
        yield
    except BaseException:
        with tracking.start_run(ctx, run_name):
            _log_settings(point)
            raise


def finished_run(point: Point, ctx: RunContext, stages: Stages,
                 run_name: str) -> dict[str, Any] | None:
    """The row of a FINISHED run that trained the same way, linked from this flow run as
    reused; None when there is none, or the flow run is `--fresh`."""
    if ctx.fresh:
        return None
    done = tracking.find_finished(ctx.experiment_id, train_key(point, stages),
                                  point.train.epochs)
    if done is None:
        return None
    log.info("%s: reusing finished run %s (--fresh trains again)", run_name, done.run_id)
    link_run(ctx, done.run_id, f"{run_name} (reused)")
    return {"run_id": done.run_id, "reused": True, **done.metrics}


@dataclass
class PointRun:
    """The point's MLflow run while it trains, evaluates and logs."""

    run_id: str
    scratch: Path  # a temporary folder: the checkpoints, the continued run's checkpoint
    resume: Resume | None  # the earlier run this one continues
    clock: StepClock
    duration_seconds: float = float("nan")  # set when the run ends

    @property
    def checkpoint_dir(self) -> Path:
        return self.scratch / "ckpt"

    @property
    def resume_from(self) -> Path | None:
        return self.resume.path if self.resume else None

    @property
    def initial_epoch(self) -> int:
        return self.resume.epoch if self.resume else 0

    def log_epoch(self, epoch: int, logs: dict[str, float], checkpoint: Path) -> None:
        """After every epoch: its metrics, then its checkpoint (which marks the epoch done)."""
        tracking.log_epoch(epoch, logs)
        tracking.log_checkpoint(checkpoint, epoch)
        faults.maybe_fail(f"after_epoch:{epoch}")

    def history(self, fit: Fit) -> dict[str, list[float]]:
        """The whole learning curve from epoch 1: a continued run's earlier epochs first."""
        return self.resume.prepend(fit.history) if self.resume else fit.history

    def row(self, evaluation: Evaluation, framed: dict[str, Any]) -> dict[str, Any]:
        """What the grid and the search keep of the run: its metrics and its framing against
        the baselines (tasks/results.py)."""
        metrics = evaluation.metrics
        versus = f"; {framed['vs_baselines']}" if framed.get("vs_baselines") else ""
        log.info("run %s: val_accuracy %.4f, test_accuracy %.4f%s%s",
                 self.run_id, metrics["val_accuracy"], metrics["test_accuracy"], versus,
                 f" ({framed['warning']})" if framed.get("warning") else "")
        return {"run_id": self.run_id, "reused": False, **metrics, **framed,
                "train_seconds": self.clock.seconds["train"],
                "preprocess_seconds": preprocess_seconds(self.clock.seconds),
                "duration_seconds": self.duration_seconds}


@contextlib.contextmanager
def point_run(point: Point, ctx: RunContext, run_name: str, stages: Stages,
              clock: StepClock) -> Iterator[PointRun]:
    """The point's MLflow run: FINISHED when the block ends, FAILED with the error if it
    raises. Logs the settings, labels and inputs first, and last the log step's and the whole
    point's seconds."""
    with tracking.start_run(ctx, run_name) as run_id, \
            tempfile.TemporaryDirectory(prefix="rnnflow-ckpt-") as scratch:
        link_run(ctx, run_id, run_name)  # however it ends: a pruned trial, a failure
        _log_settings(point)
        tracking.log_labels(None if stages.labels.sentiment else stages.labels.classes,
                            stages.labels.dropped_rows)
        tracking.log_inputs(stages.keys(), stages.reviews.file("reviews.parquet"), point.name)
        run = PointRun(run_id, Path(scratch),
                       _continued(point, ctx, train_key(point, stages), Path(scratch) / "from"),
                       clock)
        yield run
        run.duration_seconds = clock.elapsed()
        tracking.log_metrics({"seconds_log": clock.seconds["log"],
                              "duration_seconds": run.duration_seconds})


def _continued(point: Point, ctx: RunContext, key: str, scratch: Path) -> Resume | None:
    """The earlier run this one continues, if any (never with `fresh`); tags the training key,
    by which a later run finds this one."""
    resume = None if ctx.fresh else tracking.find_resume(
        ctx.experiment_id, key, point.train.epochs, scratch)
    tracking.set_tags({tracking.TRAIN_KEY_TAG: key,
                       "continued_from": resume.run_id if resume else ""})
    if resume:
        log.info("continuing run %s from its epoch %d", resume.run_id, resume.epoch)
    return resume
