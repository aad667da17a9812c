"""One point of a params file, the lesson's chain read straight down:

    download -> read -> tokenize -> word vectors -> ids -> pad -> train -> evaluate -> log

Each step is a Prefect task (tasks/), timed on the point's clock (tasks/timing.py). The six
preprocessing steps are cached under their stage's content key, so points that share a prefix
of the chain share its files under data/. Around the steps, flows/point_run.py holds the
point's MLflow run: reuse of a finished run, continuation of an earlier one, a FAILED run with
the error when a step fails. The grid and the search (flows/grid.py, flows/search.py) call
`run_point` for each of their points.
"""

from __future__ import annotations

from typing import Any

from flows.point_run import failure_recorded, finished_run, point_run
from rnnflow.config import Point
from rnnflow.data.reviews import read_labels
from rnnflow.data.tokens import start_early as start_tokenizers
from rnnflow.network.train import EpochHook
from rnnflow.tracking import RunContext
from tasks.results import log_results
from tasks.stages import (
    Stages,
    build_embeddings,
    download_dataset,
    pad_sequences,
    read_reviews,
    tokenize_reviews,
    vectorize_tokens,
)
from tasks.timing import step_clock
from tasks.training import evaluate_model, train_model


def prepare(point: Point) -> Stages:
    """The six preprocessing steps; each returns at once where its stage is on disk."""
    raw, digest = download_dataset(point.dataset.url, point.dataset.sha256)
    start_tokenizers(digest, point.dataset, point.tokenize)  # they boot during the read
    reviews = read_reviews(raw, digest, point.dataset)
    tokens = tokenize_reviews(reviews, point.tokenize)
    table = build_embeddings(tokens, point.embedding, seed=point.dataset.seed)
    ids, vector_stats = vectorize_tokens(tokens, table)
    padded = pad_sequences(ids, point.pad)
    return Stages(reviews=reviews, tokens=tokens, embeddings=table, vectors=ids, padded=padded,
                  vector_stats=vector_stats, labels=read_labels(reviews))


def run_point(point: Point, ctx: RunContext, run_name: str,
              on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """The whole chain for one point, as one MLflow run; returns its row (run id, metrics,
    seconds). A finished run that trained the same way is reused instead, unless `ctx.fresh`.
    `on_epoch_end` replaces the logging of each epoch's metrics and checkpoint (a search trial
    reports to its study)."""
    with step_clock() as clock:
        with failure_recorded(point, ctx, run_name):
            stages = prepare(point)
        if (earlier := finished_run(point, ctx, stages, run_name)) is not None:
            return earlier
        with point_run(point, ctx, run_name, stages, clock) as run:
            model, fit = train_model(
                padded=stages.padded, embeddings=stages.embeddings, model_cfg=point.model,
                train_cfg=point.train, trainable_embedding=point.embedding.trainable,
                classes=stages.labels.classes, on_epoch_end=on_epoch_end or run.log_epoch,
                checkpoint_dir=run.checkpoint_dir, resume_from=run.resume_from,
                initial_epoch=run.initial_epoch)
            evaluation = evaluate_model(model, stages.padded, classes=stages.labels.classes)
            framed = log_results(point, stages, model, fit, evaluation,
                                 history=run.history(fit), seconds=clock.seconds,
                                 baselines=ctx.baselines)
    return run.row(evaluation, framed)
