"""The `train-rnn` flow: download -> read -> tokenize -> embed -> vectorize -> pad -> train ->
evaluate, every grid point one MLflow run."""

from __future__ import annotations

import logging
import time
from typing import Any

import yaml
from prefect import flow
from prefect.runtime import flow_run

import tasks
from rnnflow import plots, tracking
from rnnflow.config import Params, expand_grid, load_params

log = logging.getLogger("rnnflow.flow")


def _run_point(point: Params, experiment_id: str, tags: dict) -> dict[str, Any]:
    # Every point runs every step; a step whose content key already has files returns at once,
    # so points that share a prefix of the pipeline share its outputs.
    raw_path, digest = tasks.download_dataset(point.dataset.url, point.dataset.sha256)
    reviews = tasks.read_reviews(raw_path, digest, point.dataset)
    tokens = tasks.tokenize_reviews(reviews, point.tokenize)
    emb = tasks.build_embeddings(tokens, point.embedding, seed=point.dataset.seed)
    vectors, vec_stats = tasks.vectorize_tokens(tokens, emb)
    padded = tasks.pad_sequences(vectors, point.pad)
    keys = {"reviews": reviews.key, "tokens": tokens.key, "embeddings": emb.key,
            "vectors": vectors.key, "padded": padded.key}

    run_name = f"{point.name}-{point.model.cell}{point.model.num_neurons}-len{point.pad.maxlen}"
    with tracking.start_run(experiment_id, run_name, tags) as run_id:
        tracking.log_params(point.flat(), yaml.safe_dump(point.model_dump(exclude={"grid"}),
                                                         sort_keys=False))
        tracking.log_stage_keys(keys)
        tracking.log_datasets(reviews.file("reviews.parquet"), point.name)
        started = time.perf_counter()
        model, history = tasks.train_model(padded, emb, point.model, point.train,
                                           on_epoch_end=tracking.log_epoch)
        train_seconds = time.perf_counter() - started
        metrics, confusion = tasks.evaluate_model(model, padded)
        extra = {"train_seconds": train_seconds, "oov_rate": vec_stats["oov_tokens"]
                 / max(1.0, vec_stats["tokens"]), "empty_docs": vec_stats["empty_docs"],
                 "trainable_params": float(sum(int(w.numpy().size)
                                               for w in model.trainable_weights))}
        tracking.log_results(metrics, extra, {
            "learning_curves.png": plots.plot_learning_curves(history),
            "confusion_matrix.png": plots.plot_confusion(confusion),
        }, history_keys=set(history))
        tracking.log_keras_model(model)
    log.info("run %s: val_accuracy %.4f, test_accuracy %.4f",
             run_id, metrics["val_accuracy"], metrics["test_accuracy"])
    return {"run_id": run_id, **metrics, "train_seconds": train_seconds}


@flow(name="train-rnn")
def train_rnn(params_file: str, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run every point of a params file; returns one result row per point."""
    params = load_params(params_file, overrides)
    experiment_id = tracking.use_experiment(params.name)  # fails fast if MLflow is unreachable
    tags = {"prefect.flow_run_id": str(flow_run.id or ""), "git_commit": tracking.git_commit()
            or "", "params_file": str(params_file)}
    return [_run_point(point, experiment_id, tags)
            for point in expand_grid(params, where=params_file)]
