"""The `train-rnn` flow: download -> read -> tokenize -> embed -> vectorize -> pad -> train ->
evaluate. A params file with a grid becomes one MLflow parent run with a child run per point."""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

import tasks
from rnnflow import faults, plots, tracking
from rnnflow import reviews as reviews_step
from rnnflow import tokens as tokens_step
from rnnflow.config import Params, expand_grid, load_params
from rnnflow.embeddings import load_vocab
from rnnflow.evaluate import confident_mistakes
from rnnflow.predict import TextModel
from rnnflow.storage import Stage, content_key, release_memory
from rnnflow.train import limit_threads

log = logging.getLogger("rnnflow.flow")


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


def _train_key(point: Params, upstream: str) -> str:
    """Everything that shapes training except the number of epochs: runs that share it can
    continue one another."""
    settings = {k: v for k, v in point.flat().items() if k != "train.epochs"}
    return content_key(settings, upstream, 1)


@dataclass(frozen=True)
class _Prepared:
    """The stages one point trains on, all under data/ (RNNFLOW_DATA_DIR)."""

    reviews: Stage
    tokens: Stage
    embeddings: Stage
    vectors: Stage
    padded: Stage
    vector_stats: dict[str, float]
    seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)


def _preprocess(point: Params) -> _Prepared:
    """Download -> read -> tokenize -> embed -> vectorize -> pad. A step whose output is already
    under data/ is Cached, so points that share a prefix of the pipeline share its files."""
    started = time.perf_counter()
    clock = _Clock()
    with clock("download"):
        raw_path, digest = tasks.download_dataset(point.dataset.url, point.dataset.sha256)
    with clock("read"):
        if not tokens_step.tokens_stage(reviews_step.reviews_stage(
                raw_path, digest, point.dataset), point.tokenize).done():
            # The tokenizer processes boot while this process reads the archive.
            limit = point.dataset.limit
            tokens_step.start_workers(None if limit is None else 2 * limit)
        reviews = tasks.read_reviews(raw_path, digest, point.dataset)
    with clock("tokenize"):
        tokens = tasks.tokenize_reviews(reviews, point.tokenize)
    with clock("embed"):
        emb = tasks.build_embeddings(tokens, point.embedding, seed=point.dataset.seed)
    with clock("vectorize"):
        vectors, vec_stats = tasks.vectorize_tokens(tokens, emb)
    with clock("pad"):
        padded = tasks.pad_sequences(vectors, point.pad)
    return _Prepared(reviews, tokens, emb, vectors, padded, vec_stats,
                     time.perf_counter() - started, clock.seconds)


def _run_point(point: Params, experiment_id: str, tags: dict[str, str], fresh: bool,
               run_name: str, nested: bool, prepared: _Prepared | None = None,
               parent_id: str | None = None) -> dict[str, Any]:
    """Train, evaluate and log one point as an MLflow run; preprocess first unless `prepared`
    (a grid on Dask prepares every point in the flow before the fan-out)."""
    started = time.perf_counter()
    # The MLflow run starts first, so a step that fails leaves a FAILED run with its error.
    with tracking.start_run(experiment_id, run_name, tags, nested=nested,
                            parent_run_id=parent_id) as run_id, \
            tempfile.TemporaryDirectory(prefix="rnnflow-ckpt-") as scratch:
        tracking.log_params(point.flat(), yaml.safe_dump(point.model_dump(exclude={
            "grid", "variants"}), sort_keys=False))
        prep = prepared or _preprocess(point)
        reviews, emb, padded = prep.reviews, prep.embeddings, prep.padded
        vec_stats, preprocess_seconds = prep.vector_stats, prep.seconds
        clock = _Clock()
        clock.seconds.update(prep.step_seconds)
        tracking.log_stage_keys({"reviews": reviews.key, "tokens": prep.tokens.key,
                                 "embeddings": emb.key, "vectors": prep.vectors.key,
                                 "padded": padded.key})
        tracking.log_datasets(reviews.file("reviews.parquet"), point.name)

        train_key = _train_key(point, f"{emb.key}+{padded.key}")
        resume = None if fresh else tracking.find_checkpoint(experiment_id, train_key,
                                                             point.train.epochs)
        tracking.set_tags({tracking.TRAIN_KEY_TAG: train_key,
                           "continued_from": resume[0] if resume else ""})

        resume_path, initial_epoch = None, 0
        if resume:
            resume_path = tracking.fetch_checkpoint(resume[0], Path(scratch) / "from")
            initial_epoch = resume[1]
            log.info("continuing run %s from its epoch %d", resume[0], initial_epoch)

        def on_epoch_end(epoch: int, logs: dict[str, float], checkpoint: Path) -> None:
            tracking.log_epoch(epoch, logs)
            tracking.log_checkpoint(checkpoint, epoch)
            faults.maybe_fail(f"after_epoch:{epoch}")

        fit: dict[str, float] = {}
        with clock("train"):
            model, history = tasks.train_model(padded, emb, point.model, point.train,
                                               Path(scratch) / "ckpt", point.embedding.trainable,
                                               on_epoch_end, resume_path, initial_epoch, fit)
        train_seconds = clock.seconds["train"]
        release_memory()  # training's batches and buffers, before inference allocates its own
        with clock("evaluate"):
            metrics, confusion, predictions = tasks.evaluate_model(model, padded)
        release_memory()  # inference buffers, before the models are serialised for logging
        logging_started = time.perf_counter()
        if resume:  # the curve of a continued run starts at epoch 1, from the run it continued
            before = tracking.metric_history(resume[0], list(history), initial_epoch)
            history = {k: before[k] + v for k, v in history.items()}
        extra = {"train_seconds": train_seconds, "preprocess_seconds": preprocess_seconds,
                 "oov_rate": vec_stats["oov_tokens"] / max(1.0, vec_stats["tokens"]),
                 "empty_docs": vec_stats["empty_docs"],
                 "trainable_params": float(sum(int(w.numpy().size)
                                               for w in model.trainable_weights)),
                 **{f"seconds_{stage}": v for stage, v in clock.seconds.items()},
                 **fit}
        tracking.log_results(metrics, extra, {
            "learning_curves.png": plots.plot_learning_curves(history),
            "confusion_matrix.png": plots.plot_confusion(confusion),
            "roc_pr_curves.png": plots.plot_roc_pr(predictions),
        }, history_keys=set(history))
        tracking.log_frame(predictions["test"], "test_predictions.parquet")
        tracking.log_frame(confident_mistakes(predictions["test"], reviews.file(
            "reviews.parquet"), point.evaluate.mistakes), "confident_mistakes.csv")
        tracking.log_keras_model(model)
        vocab = load_vocab(emb)
        text_model = TextModel(model, vocab, point.tokenize, point.pad)
        tracking.log_frame(pd.concat([pd.DataFrame({"text": point.evaluate.sentences}),
                                      text_model.predict(point.evaluate.sentences)], axis=1),
                           "examples.csv")
        tracking.log_text_model(model, vocab, point.tokenize.model_dump(), point.pad.model_dump())
        tracking.log_results({}, {"seconds_log": time.perf_counter() - logging_started,
                                  "duration_seconds": time.perf_counter() - started}, {})
    log.info("run %s: val_accuracy %.4f, test_accuracy %.4f",
             run_id, metrics["val_accuracy"], metrics["test_accuracy"])
    return {"run_id": run_id, **metrics, "train_seconds": train_seconds,
            "preprocess_seconds": preprocess_seconds,
            "duration_seconds": time.perf_counter() - started}


@task(name="train_point", cache_policy=NONE)
def train_point(point: Params, prepared: _Prepared, experiment_id: str, tags: dict[str, str],
                fresh: bool, run_name: str, parent_id: str | None,
                tracking_uri: str) -> dict[str, Any]:
    """One point in a Dask worker: train, evaluate and log a child run of `parent_id`."""
    from flows.on_dask import worker_threads

    limit_threads(worker_threads())  # before TensorFlow's first op in this worker
    tracking.use_tracking_uri(tracking_uri)
    return _run_point(point, experiment_id, tags, fresh, run_name, nested=False,
                      prepared=prepared, parent_id=parent_id)


def _run_points(params: Params, points: list[Params], experiment_id: str,
                tags: dict[str, str], fresh: bool, parent_id: str | None) -> list[dict]:
    """Every point, in order: one after another here (`runner: local`), or, once every stage
    is built here, as `train_point` tasks on Dask (`runner: dask`)."""
    varied = params.varied_keys()
    names = [_point_name(p, varied) if parent_id else params.name for p in points]
    if params.runner == "local":
        return [_run_point(p, experiment_id, tags, fresh, name, nested=parent_id is not None)
                for p, name in zip(points, names, strict=True)]
    from flows.on_dask import run_on_dask

    prepared = [_preprocess(p) for p in points]  # once per stage key: the rest are Cached
    uri = tracking.tracking_uri()
    return run_on_dask(train_point, [
        {"point": p, "prepared": prep, "experiment_id": experiment_id, "tags": tags,
         "fresh": fresh, "run_name": name, "parent_id": parent_id, "tracking_uri": uri}
        for p, prep, name in zip(points, prepared, names, strict=True)
    ], params.dask_address)


def _point_name(point: Params, varied: list[str]) -> str:
    """A child run's name: what sets it apart, e.g. `num_neurons=100 maxlen=200`."""
    flat = point.flat()
    return " ".join(f"{k.rsplit('.', 1)[-1]}={flat[k]}" for k in varied) or point.name


def _results_table(params: Params, points: list[Params], rows: list[dict]) -> pd.DataFrame:
    varied = params.varied_keys()
    records = []
    for point, row in zip(points, rows, strict=True):
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


@flow(name="train-rnn")
def train_rnn(params_file: str, overrides: dict[str, Any] | None = None,
              fresh: bool = False) -> list[dict[str, Any]]:
    """Run every point of a params file; returns one result row per point.

    `overrides` maps dotted keys to values (`{"train.epochs": 3}`); `fresh` starts training
    from scratch even where an earlier run could be continued.
    """
    params = load_params(params_file, overrides)
    points = expand_grid(params, where=params_file)  # every point valid before any work
    experiment_id = tracking.use_experiment(params.name)  # fails fast if MLflow is unreachable
    tags = {"prefect.flow_run_id": str(flow_run.id or ""), "git_commit": tracking.git_commit()
            or "", "params_file": str(params_file)}

    parent_id = None
    if params.grid or params.variants:
        with tracking.start_run(experiment_id, f"{params.name}-grid", tags) as parent_id:
            rows = _run_points(params, points, experiment_id, tags, fresh, parent_id)
            table = _results_table(params, points, rows)
            tracking.log_grid(table, table.run_id[table.val_accuracy.idxmax()],
                              yaml.safe_dump(params.model_dump(), sort_keys=False))
    else:
        rows = _run_points(params, points, experiment_id, tags, fresh, None)
        table = _results_table(params, points, rows)
    _publish(params.name, table, parent_id)
    return rows
