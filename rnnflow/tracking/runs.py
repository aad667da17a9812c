"""A run's lifecycle and what it logs: params, per-epoch metrics, inputs, the report, models."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient

if TYPE_CHECKING:
    from rnnflow.report import RunReport


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Where and how every run of one flow run is logged. Handed to a Dask worker whole: a
    worker has no active run and no tracking URI of its own."""

    experiment_id: str
    tracking_uri: str
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    fresh: bool = False  # train from scratch even where a run could be continued
    parent_id: str | None = None  # a grid's parent run; its points are its children

    def under(self, parent_id: str) -> RunContext:
        return dataclasses.replace(self, parent_id=parent_id)


@contextlib.contextmanager
def start_run(ctx: RunContext, run_name: str) -> Iterator[str]:
    """An MLflow run that ends FINISHED, or FAILED with the error as a tag and error.txt.

    A child run always names its parent by `ctx.parent_id`; where the parent is this process's
    active run (a local grid), MLflow also wants `nested`.
    """
    run = mlflow.start_run(experiment_id=ctx.experiment_id, run_name=run_name,
                           nested=mlflow.active_run() is not None, parent_run_id=ctx.parent_id,
                           tags={k: v for k, v in ctx.tags.items() if v})
    try:
        yield run.info.run_id
    except BaseException as exc:
        mlflow.set_tag("error", f"{exc.__class__.__name__}: {exc}"[:5000])
        mlflow.log_text("".join(traceback.format_exception(exc)), "error.txt")
        mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def log_params(flat: dict[str, Any], config_yaml: str) -> None:
    """Every setting as a dotted param, and the resolved settings as config.yaml."""
    mlflow.log_params({k: "None" if v is None else v for k, v in flat.items()})
    mlflow.log_text(config_yaml, "config.yaml")


def log_epoch(epoch: int, logs: dict[str, float]) -> None:
    mlflow.log_metrics(logs, step=epoch)


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics(metrics)


def set_tags(tags: dict[str, str]) -> None:
    """Set the non-empty tags on the active run."""
    mlflow.set_tags({k: v for k, v in tags.items() if v})


def log_inputs(stage_keys: dict[str, str], reviews_parquet: Path, name: str) -> None:
    """The content key of every stage the run used, and the reviews of each split (ids, labels,
    ratings) as MLflow datasets with their Parquet source."""
    mlflow.set_tags({f"stage.{stage}": key for stage, key in stage_keys.items()})
    frame = pq.read_table(reviews_parquet, columns=["id", "split", "label", "rating"]).to_pandas()
    for split, context in (("train", "training"), ("val", "validation"), ("test", "test")):
        part = frame[frame.split == split].reset_index(drop=True)
        dataset = mlflow.data.from_pandas(part, source=str(reviews_parquet),
                                          name=f"{name}-{split}", targets="label")
        mlflow.log_input(dataset, context=context)


def log_report(report: RunReport) -> None:
    """The run's final metrics, plots (closed once logged), tables and texts."""
    mlflow.log_metrics(report.metrics)
    for filename, fig in report.figures.items():
        mlflow.log_figure(fig, f"plots/{filename}")
        _close(fig)
    for artifact, frame in report.frames.items():
        log_frame(frame, artifact)
    for artifact, text in report.texts.items():  # report.html, model_card.md
        mlflow.log_text(text, artifact)


def _close(fig) -> None:
    """pyplot keeps every figure it made until closed: a grid would pile them up."""
    import matplotlib.pyplot as plt

    plt.close(fig)


def log_frame(frame: pd.DataFrame, artifact: str) -> None:
    """Log a table as a CSV or Parquet artifact (by the name's suffix)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact).name
        if artifact.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact).parent) if "/" in artifact else None)


def log_keras_model(model, name: str = "model") -> str:
    """Log the Keras model; pip requirements are pinned from this environment instead of
    inferred, which would load the model again in a subprocess."""
    import keras
    import numpy as np
    import tensorflow as tf
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    reqs = [f"keras=={keras.__version__}", f"tensorflow-cpu=={tf.__version__}"]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("int32"), (-1, model.input_shape[1]), "token_ids")]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 1), "probability")]),
    )
    info = mlflow.keras.log_model(model, name=name, pip_requirements=reqs, signature=signature)
    return info.model_uri


def log_grid(table: pd.DataFrame, best_run_id: str, plan_yaml: str) -> None:
    """On the parent run: the plan, the results table (CSV and Parquet) and the best point."""
    mlflow.log_text(plan_yaml, "config.yaml")
    log_frame(table, "results.csv")
    log_frame(table, "results.parquet")
    mlflow.set_tag("best_run_id", best_run_id)
    MlflowClient().set_tag(best_run_id, "best", "true")
