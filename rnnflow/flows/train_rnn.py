"""The `train-rnn` flow: download -> read -> tokenize -> embed -> vectorize -> pad -> train ->
evaluate -> report. A params file with a grid becomes one MLflow parent run with a child run
per point."""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from rnnflow import faults, tasks, tracking
from rnnflow import tokens as tokens_step
from rnnflow.config import Experiment, Plan, load_plan
from rnnflow.embeddings import load_vocab
from rnnflow.evaluate import Evaluation
from rnnflow.model import stock_twin
from rnnflow.predict import TextModel
from rnnflow.report import summarize
from rnnflow.storage import Stage, content_key
from rnnflow.tracking import Resume, RunContext
from rnnflow.train import Fit, limit_threads

log = logging.getLogger("rnnflow.flow")


@flow(name="train-rnn")
def train_rnn(params_file: str, overrides: dict[str, Any] | None = None,
              fresh: bool = False) -> list[dict[str, Any]]:
    """Run every point of a params file; returns one result row per point.

    `overrides` maps dotted keys to values (`{"train.epochs": 3}`); `fresh` starts training
    from scratch even where an earlier run could be continued.
    """
    plan = load_plan(params_file, overrides)  # every point valid before any work
    ctx = RunContext(
        experiment_id=tracking.use_experiment(plan.name),  # fails fast if MLflow is unreachable
        tracking_uri=tracking.tracking_uri(), fresh=fresh,
        tags={"prefect.flow_run_id": str(flow_run.id or ""),
              "git_commit": tracking.git_commit() or "", "params_file": str(params_file)})
    if plan.is_grid:
        with tracking.start_run(ctx, f"{plan.name}-grid") as parent_id:
            rows = _run_points(plan, ctx.under(parent_id))
            table = _results_table(plan, rows)
            tracking.log_grid(table, table.run_id[table.val_accuracy.idxmax()], plan.as_yaml())
    else:
        parent_id = None
        rows = _run_points(plan, ctx)
        table = _results_table(plan, rows)
    _publish(plan.name, table, parent_id)
    return rows


def run_point(point: Experiment, ctx: RunContext, run_name: str,
              prepared: Prepared | None = None) -> dict[str, Any]:
    """Train, evaluate and log one point as an MLflow run; preprocess first unless `prepared`
    (a grid on Dask prepares every point in the flow before the fan-out)."""
    started, clock = time.perf_counter(), _Clock()
    # The MLflow run starts first, so a step that fails leaves a FAILED run with its error.
    with tracking.start_run(ctx, run_name) as run_id, \
            tempfile.TemporaryDirectory(prefix="rnnflow-ckpt-") as scratch:
        tracking.log_params(point.flat(), yaml.safe_dump(point.model_dump(), sort_keys=False))
        prep = prepared or preprocess(point)
        clock.seconds.update(prep.step_seconds)
        tracking.log_inputs(prep.stage_keys(), prep.reviews.file("reviews.parquet"), point.name)
        resume = _resume(point, ctx, prep, Path(scratch) / "from")
        with clock("train"):
            model, fit = tasks.train_model(
                padded=prep.padded, embeddings=prep.embeddings, model_cfg=point.model,
                train_cfg=point.train, checkpoint_dir=Path(scratch) / "ckpt",
                trainable_embedding=point.embedding.trainable, on_epoch_end=_log_epoch,
                resume_from=resume and resume.path, initial_epoch=resume.epoch if resume else 0)
        with clock("evaluate"):
            evaluation = tasks.evaluate_model(model, prep.padded)
        with clock("log"):
            _log_outcome(point, prep, model, fit, evaluation, resume, clock.seconds)
        duration = time.perf_counter() - started
        tracking.log_metrics({"seconds_log": clock.seconds["log"], "duration_seconds": duration})
    metrics = evaluation.metrics
    log.info("run %s: val_accuracy %.4f, test_accuracy %.4f",
             run_id, metrics["val_accuracy"], metrics["test_accuracy"])
    return {"run_id": run_id, **metrics, "train_seconds": clock.seconds["train"],
            "preprocess_seconds": prep.seconds, "duration_seconds": duration}


def _resume(point: Experiment, ctx: RunContext, prep: Prepared, scratch: Path) -> Resume | None:
    """The earlier run this one continues, if any (never with `fresh`); tags the training key,
    by which a later run finds this one."""
    train_key = _train_key(point, prep)
    resume = None if ctx.fresh else tracking.find_resume(
        ctx.experiment_id, train_key, point.train.epochs, scratch)
    tracking.set_tags({tracking.TRAIN_KEY_TAG: train_key,
                       "continued_from": resume.run_id if resume else ""})
    if resume:
        log.info("continuing run %s from its epoch %d", resume.run_id, resume.epoch)
    return resume


def _log_outcome(point: Experiment, prep: Prepared, model, fit: Fit, evaluation: Evaluation,
                 resume: Resume | None, seconds: dict[str, float]) -> None:
    """The report (metrics, plots, tables), the Keras model and the raw-text model."""
    text_model = TextModel(model, load_vocab(prep.embeddings), point.tokenize, point.pad)
    tracking.log_report(summarize(
        model=model, evaluation=evaluation, fit=fit, vector_stats=prep.vector_stats,
        history=resume.prepend(fit.history) if resume else fit.history,
        seconds=seconds, preprocess_seconds=prep.seconds,
        reviews_parquet=prep.reviews.file("reviews.parquet"), mistakes=point.evaluate.mistakes,
        text_model=text_model, sentences=point.evaluate.sentences, experiment=point))
    tracking.log_keras_model(stock_twin(model, point.model))  # loads without rnnflow
    tracking.log_text_model(model, text_model.vocab, point.tokenize.model_dump(),
                            point.pad.model_dump())


def _log_epoch(epoch: int, logs: dict[str, float], checkpoint: Path) -> None:
    """After every epoch: its metrics, then its checkpoint (which marks the epoch done)."""
    tracking.log_epoch(epoch, logs)
    tracking.log_checkpoint(checkpoint, epoch)
    faults.maybe_fail(f"after_epoch:{epoch}")


@dataclass(frozen=True)
class Prepared:
    """The stages one point trains on, all under data/ (RNNFLOW_DATA_DIR)."""

    reviews: Stage
    tokens: Stage
    embeddings: Stage
    vectors: Stage
    padded: Stage
    vector_stats: dict[str, float]
    seconds: float
    step_seconds: dict[str, float]

    def stage_keys(self) -> dict[str, str]:
        return {s.name: s.key for s in (self.reviews, self.tokens, self.embeddings,
                                        self.vectors, self.padded)}


def preprocess(point: Experiment) -> Prepared:
    """Download -> read -> tokenize -> embed -> vectorize -> pad. A step whose output is already
    under data/ is Cached, so points that share a prefix of the pipeline share its files."""
    started, clock = time.perf_counter(), _Clock()
    with clock("download"):
        raw_path, digest = tasks.download_dataset(point.dataset.url, point.dataset.sha256)
    with clock("read"):
        tokens_step.start_early(digest, point.dataset, point.tokenize)
        reviews = tasks.read_reviews(raw_path, digest, point.dataset)
    with clock("tokenize"):
        tokens = tasks.tokenize_reviews(reviews, point.tokenize)
    with clock("embed"):
        emb = tasks.build_embeddings(tokens, point.embedding, seed=point.dataset.seed)
    with clock("vectorize"):
        vectors, vector_stats = tasks.vectorize_tokens(tokens, emb)
    with clock("pad"):
        padded = tasks.pad_sequences(vectors, point.pad)
    return Prepared(reviews, tokens, emb, vectors, padded, vector_stats,
                    time.perf_counter() - started, clock.seconds)


def _train_key(point: Experiment, prep: Prepared) -> str:
    """Everything that shapes training except the number of epochs: runs that share it can
    continue one another."""
    settings = {k: v for k, v in point.flat().items() if k != "train.epochs"}
    return content_key(settings, f"{prep.embeddings.key}+{prep.padded.key}", 1)


class _Clock:
    """Wall seconds per step, logged as `seconds_<step>` metrics: where a run's time went."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = time.perf_counter() - started


# --- the points of a plan: here, or on Dask ------------------------------------------------------
@task(name="train_point", cache_policy=NONE)
def train_point(point: Experiment, prepared: Prepared, ctx: RunContext,
                run_name: str) -> dict[str, Any]:
    """One point in a Dask worker: train, evaluate and log a child run of `ctx.parent_id`."""
    from rnnflow.flows.on_dask import worker_threads

    limit_threads(worker_threads())  # before TensorFlow's first op in this worker
    tracking.use_tracking_uri(ctx.tracking_uri)
    return run_point(point, ctx, run_name, prepared)


def _run_points(plan: Plan, ctx: RunContext) -> list[dict]:
    """Every point, in order: one after another here (`runner: local`), or, once every stage
    is built here, as `train_point` tasks on Dask (`runner: dask`)."""
    names = [_point_name(p, plan.varied_keys()) if plan.is_grid else plan.name
             for p in plan.points]
    if plan.runner == "local":
        return [run_point(p, ctx, name) for p, name in zip(plan.points, names, strict=True)]
    from rnnflow.flows.on_dask import run_on_dask

    prepared = [preprocess(p) for p in plan.points]  # once per stage key: the rest are Cached
    return run_on_dask(train_point, [
        {"point": p, "prepared": prep, "ctx": ctx, "run_name": name}
        for p, prep, name in zip(plan.points, prepared, names, strict=True)
    ], plan.dask_address)


def _point_name(point: Experiment, varied: list[str]) -> str:
    """A child run's name: what sets it apart, e.g. `num_neurons=100 maxlen=200`."""
    flat = point.flat()
    return " ".join(f"{k.rsplit('.', 1)[-1]}={flat[k]}" for k in varied) or point.name


# --- what the flow run reports ------------------------------------------------------------------
def _results_table(plan: Plan, rows: list[dict]) -> pd.DataFrame:
    varied = plan.varied_keys()
    records = []
    for point, row in zip(plan.points, rows, strict=True):
        flat = point.flat()
        records.append({**{k: flat[k] for k in varied},
                        "val_accuracy": row["val_accuracy"], "test_accuracy": row["test_accuracy"],
                        "duration_seconds": round(row["duration_seconds"], 1),
                        "run_id": row["run_id"]})
    return pd.DataFrame.from_records(records)


def _publish(name: str, table: pd.DataFrame, parent_id: str | None) -> None:
    """Prefect artifacts: the results table and a summary of the best point."""
    key = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "rnnflow"
    best = table.loc[table.val_accuracy.idxmax()]
    create_table_artifact(key=f"{key}-results", table=table.to_dict(orient="records"),
                          description=f"train-rnn results for {name}, one row per point")
    lines = [f"# {name}: best of {len(table)} point(s) by val_accuracy", ""]
    lines += [f"- **{k}**: {best[k]}" for k in table.columns if k != "run_id"]
    lines += [f"- **MLflow run**: `{best.run_id}`"]
    if parent_id:
        lines += [f"- **MLflow parent run**: `{parent_id}`"]
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines),
                             description=f"best train-rnn point for {name}")
