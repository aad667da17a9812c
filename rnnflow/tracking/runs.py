"""A run's lifecycle and what it logs: params, per-epoch metrics, inputs, the report, the
tables of grids and searches."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow.parquet as pq
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from rnnflow.tracking import system
from rnnflow.tracking.store import lost_an_insert_race


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Where and how every run of one flow run is logged. Handed to a Dask worker whole: a
    worker has no active run and no tracking URI of its own."""

    experiment_id: str
    tracking_uri: str
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    fresh: bool = False  # train from scratch even where a run could be continued
    parent_id: str | None = None  # a grid's parent run; its points are its children
    # The params file's baselines (`baselines`), which every point's result is framed against
    # where they were fitted on its reviews (rnnflow/comparisons/framing.py).
    baselines: tuple[str, ...] = ()

    def under(self, parent_id: str) -> RunContext:
        return dataclasses.replace(self, parent_id=parent_id)


@contextlib.contextmanager
def start_run(ctx: RunContext, run_name: str) -> Iterator[str]:
    """A training run, this process's active MLflow run, that ends FINISHED, or FAILED with
    the error as a tag and error.txt. A child run names its parent by `ctx.parent_id`.

    An exception with a `run_status` attribute (a pruned search trial: "KILLED") ends the run
    with that status and its `run_tags` instead, and is not recorded as an error. Every run is
    tagged with its `node` (hostname), logs MLflow's system metrics while it is active
    (MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false turns them off) and `peak_rss_mb` when it ends.
    """
    system.system_metrics_interval()
    tags = {k: v for k, v in ctx.tags.items() if v}
    tags.setdefault(system.NODE_TAG, system.node())
    opt_out = os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").lower() in (
        "false", "0")
    run = mlflow.start_run(experiment_id=ctx.experiment_id, run_name=run_name,
                           parent_run_id=ctx.parent_id, tags=tags,
                           log_system_metrics=not opt_out)
    peak = system.PeakRss().__enter__()
    try:
        yield run.info.run_id
    except BaseException as exc:
        _log_peak(peak)
        status = getattr(exc, "run_status", None)
        if status:
            mlflow.set_tags(getattr(exc, "run_tags", {}))
        else:
            _record_error(MlflowClient(), run.info.run_id, exc)
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        mlflow.end_run(status=status)
        raise
    else:
        _log_peak(peak)
        mlflow.end_run(status="FINISHED")


def _log_peak(peak: system.PeakRss) -> None:
    """The run's last system-metrics sample and its peak RSS, before it ends."""
    peak.__exit__(None, None, None)
    mlflow.log_metric(system.PEAK_RSS_METRIC, peak.peak_mb)
    if run := mlflow.active_run():
        system.flush_system_metrics(run.info.run_id)


@contextlib.contextmanager
def group_run(ctx: RunContext, run_name: str, reopen: str | None = None) -> Iterator[str]:
    """A run that groups others (a grid's parent, a point's repeats), ended like `start_run`.

    It is never this process's active run: its children, trained here or on Dask workers, all
    name it by id, and several groups can be open at once. `reopen` names an earlier group run
    to go on with (a resumed search's parent) instead of creating one, if it still exists.
    """
    client = MlflowClient()
    tags = {k: v for k, v in ctx.tags.items() if v}
    if ctx.parent_id:
        tags[MLFLOW_PARENT_RUN_ID] = ctx.parent_id
    run_id = _reopen(client, reopen, ctx.experiment_id) if reopen else None
    if run_id:
        client.update_run(run_id, status="RUNNING")
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    else:
        run_id = client.create_run(ctx.experiment_id, run_name=run_name, tags=tags).info.run_id
    try:
        yield run_id
    except BaseException as exc:
        _record_error(client, run_id, exc)
        client.set_terminated(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt)
                              else "FAILED")
        raise
    else:
        client.set_terminated(run_id, "FINISHED")


def _reopen(client: MlflowClient, run_id: str, experiment_id: str) -> str | None:
    try:
        run = client.get_run(run_id)
    except Exception:  # deleted, or another store
        return None
    ok = run.info.experiment_id == experiment_id and run.info.lifecycle_stage == "active"
    return run_id if ok else None


def _record_error(client: MlflowClient, run_id: str, exc: BaseException) -> None:
    client.set_tag(run_id, "error", f"{exc.__class__.__name__}: {exc}"[:5000])
    client.log_text(run_id, "".join(traceback.format_exception(exc)), "error.txt")


def log_params(flat: dict[str, Any], config_yaml: str) -> None:
    """Every setting as a dotted param, and the resolved settings as config.yaml."""
    mlflow.log_params({k: "None" if v is None else v for k, v in flat.items()})
    mlflow.log_text(config_yaml, "config.yaml")


def log_labels(classes: list[str] | None, dropped_rows: int) -> None:
    """The class names (a `classes` param and tag, JSON: label i is classes[i]), where they
    are not the two sentiment classes; the rows the data lost to an empty label or text
    (`dropped_rows`), where there were any."""
    if classes is not None:
        names = json.dumps(classes, ensure_ascii=False)
        mlflow.log_param("classes", names)
        mlflow.set_tag("classes", names)
    if dropped_rows:
        mlflow.log_metric("dropped_rows", float(dropped_rows))


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
    with warnings.catch_warnings():
        # A local Parquet path matches two of MLflow's dataset-source kinds, which resolve the
        # same; and the integer columns (label, rating) never hold missing values.
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        for split, context in (("train", "training"), ("val", "validation"), ("test", "test")):
            part = frame[frame.split == split].reset_index(drop=True)
            dataset = mlflow.data.from_pandas(part, source=str(reviews_parquet),
                                              name=f"{name}-{split}", targets="label")
            _log_input(dataset, context)


def _log_input(dataset, context: str, attempts: int = 3) -> None:
    """`mlflow.log_input`, safe when other runs log the same dataset at the same moment.

    MLflow's store looks for an experiment's dataset record (its name and digest) and inserts
    it if it is missing, in two statements. Runs that log the same reviews at once (a grid's
    points on Dask workers, against one tracking server) can all find it missing; every insert
    but the first then fails on the table's unique key, an IntegrityError the server answers
    as BAD_REQUEST and the client does not retry. By then the record exists, so logging again
    links the run to it.
    """
    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as exc:
            if attempt == attempts - 1 or not lost_an_insert_race(exc):
                raise


def log_report(metrics: dict[str, float], figures: dict[str, Any],
               frames: dict[str, pd.DataFrame], texts: dict[str, str]) -> None:
    """A finished run's report: final metrics, figures (plots/<name>, closed once logged),
    tables (CSV or Parquet by the name's suffix) and texts (report.html, model_card.md)."""
    mlflow.log_metrics(metrics)
    for filename, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{filename}")
        _close(fig)
    for artifact, frame in frames.items():
        log_frame(frame, artifact)
    for artifact, text in texts.items():
        mlflow.log_text(text, artifact)


def _close(fig) -> None:
    """pyplot keeps every figure it made until closed: a grid would pile them up."""
    import matplotlib.pyplot as plt

    plt.close(fig)


def log_frame(frame: pd.DataFrame, artifact: str, run_id: str | None = None) -> None:
    """Log a table as a CSV or Parquet artifact (by the name's suffix), to the active run or
    to `run_id`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact).name
        if artifact.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        folder = str(Path(artifact).parent) if "/" in artifact else None
        if run_id is None:
            mlflow.log_artifact(str(path), folder)
        else:
            MlflowClient().log_artifact(run_id, str(path), folder)


def log_grid(run_id: str, table: pd.DataFrame, best_run_id: str, plan_yaml: str,
             figures: dict) -> None:
    """On a grid's parent run: the plan, the results table (CSV and Parquet), plots and the
    best point."""
    client = MlflowClient()
    client.log_text(run_id, plan_yaml, "config.yaml")
    log_frame(table, "results.csv", run_id)
    log_frame(table, "results.parquet", run_id)
    for filename, fig in figures.items():
        client.log_figure(run_id, fig, f"plots/{filename}")
        _close(fig)
    client.set_tag(run_id, "best_run_id", best_run_id)
    client.set_tag(best_run_id, "best", "true")


def log_group(run_id: str, params: dict[str, Any], metrics: dict[str, float],
              tags: dict[str, str]) -> None:
    """On a point's group run: its settings, the mean and spread of its repeats."""
    client = MlflowClient()
    client.log_batch(run_id, params=[Param(k, "None" if v is None else str(v))
                                     for k, v in params.items()],
                     metrics=[Metric(k, float(v), int(time.time() * 1000), 0)
                              for k, v in metrics.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])


def load_test_predictions(run_id: str) -> pd.DataFrame:
    """A run's test_predictions.parquet (id, label, probability)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="test_predictions.parquet", dst_path=tmp)
        return pd.read_parquet(path)


def active_run_id() -> str | None:
    """The id of this process's active run (the training run inside `start_run`), if any."""
    run = mlflow.active_run()
    return run.info.run_id if run else None


def log_search(run_id: str, table: pd.DataFrame, best_run_id: str | None, plan_yaml: str,
               best: dict[str, Any], figures: dict) -> None:
    """On a search's parent run: the plan, the trials table (CSV and Parquet), the best
    trial's values (best_params.json, `best.<key>` tags, `best_<metric>` metrics) and plots.
    A resumed search logs into the same parent again: tags and files are replaced."""
    import json

    client = MlflowClient()
    client.log_text(run_id, plan_yaml, "config.yaml")
    log_frame(table, "trials.csv", run_id)
    log_frame(table, "trials.parquet", run_id)
    client.log_text(run_id, json.dumps(best, indent=2, default=str), "best_params.json")
    for filename, fig in figures.items():
        client.log_figure(run_id, fig, f"plots/{filename}")
        _close(fig)
    tags = [RunTag(f"best.{k}", str(v)) for k, v in best.get("params", {}).items()]
    before = client.get_run(run_id).data.tags.get("best_run_id")
    if before and before != best_run_id:  # a resumed search found a better trial
        with contextlib.suppress(Exception):
            client.delete_tag(before, "best")
    if best_run_id:
        tags.append(RunTag("best_run_id", best_run_id))
        client.set_tag(best_run_id, "best", "true")
    metrics = [Metric(f"best_{k}", float(v), int(time.time() * 1000), 0)
               for k, v in best.get("metrics", {}).items()]
    metrics += [Metric(f"trials_{k}", float(v), int(time.time() * 1000), 0)
                for k, v in table.state.value_counts().items()] if len(table) else []
    client.log_batch(run_id, metrics=metrics, tags=tags)


def kill_stale_runs(experiment_id: str, tag: str, value: str) -> list[str]:
    """Mark KILLED the runs tagged `tag=value` still RUNNING: their process is gone (a killed
    search's trials). Returns their ids."""
    client = MlflowClient()
    runs = client.search_runs([experiment_id], filter_string=(
        f"tags.{tag} = '{value}' and attributes.status = 'RUNNING'"), max_results=1000)
    for run in runs:
        client.set_terminated(run.info.run_id, "KILLED")
    return [r.info.run_id for r in runs]
