"""The baselines of a params file (its `baselines` section), before its points: each one
fitted once per dataset its points read (the reviews stage's key), then logged as a run of the
same experiment, or the run logged earlier from the same fitted stage reused
(rnnflow/tracking/baselines.py). `--fresh` logs new baseline runs; the fitted stage on disk is
still reused, as the preprocessing stages are.

A search's space that varies dataset settings gets the baselines of its grid's or its base
point's datasets only: its trials are drawn later.

The bag-of-words reads the reviews' tokens of its own tokenize settings (the defaults, the
lesson's): written here by the chain's own tokenize step, so a point with those settings finds
them done, and the tokenization is timed as tokenizing, not as the baseline.
"""

from __future__ import annotations

import logging
from typing import Any

from flows.artifacts import link_run
from flows.point_run import failure_recorded
from rnnflow import tracking
from rnnflow.comparisons.plan import Plan
from rnnflow.data.tokens import start_early as start_tokenizers
from rnnflow.network.baselines import (
    TITLES,
    TOKENIZE,
    baseline_stage,
    load_baseline,
    needs_tokens,
)
from rnnflow.tracking import RunContext
from tasks.results import log_baseline
from tasks.stages import download_dataset, fit_baseline, read_reviews, tokenize_reviews

log = logging.getLogger("rnnflow.flow")


def run_baselines(plan: Plan, ctx: RunContext) -> dict[str, list[dict[str, Any]]]:
    """The row (baseline, run id, reused, metrics) of each baseline, by the key of the reviews
    stage it was fitted on."""
    if not plan.baselines:
        return {}
    datasets = {}  # reviews key -> (the first point reading it, its label)
    for point, label in zip(plan.points, plan.labels, strict=True):
        # The point's first steps, here first: one that fails leaves the FAILED run with the
        # error that the point's chain would have left.
        with failure_recorded(point, ctx, label):
            raw, digest = download_dataset(point.dataset.url, point.dataset.sha256)
            if any(needs_tokens(name) for name in plan.baselines):
                start_tokenizers(digest, point.dataset, TOKENIZE)  # they boot during the read
            reviews = read_reviews(raw, digest, point.dataset)
        datasets.setdefault(reviews.key, (point, label, reviews))
    rows: dict[str, list[dict[str, Any]]] = {}
    for key, (point, label, reviews) in datasets.items():
        rows[key] = []
        for name in plan.baselines:
            run_name = f"{TITLES[name]} baseline" + (f" ({label})" if len(datasets) > 1 else "")
            # Tokens only for a fit still to come: a fitted baseline costs nothing again.
            tokens = (tokenize_reviews(reviews, TOKENIZE) if needs_tokens(name)
                      and not baseline_stage(reviews, name).done() else None)
            fitted = fit_baseline(reviews, name, tokens)
            earlier = None if ctx.fresh else tracking.find_baseline(ctx.experiment_id,
                                                                    fitted.key)
            if earlier is not None:
                link_run(ctx, earlier.run_id, f"{run_name} (reused)")
                row = {"run_id": earlier.run_id, "reused": True, **earlier.metrics}
            else:
                row = log_baseline(load_baseline(fitted, reviews), point, reviews, ctx, run_name)
                link_run(ctx, row["run_id"], run_name)
            log.info("%s: val_accuracy %.4f, test_accuracy %.4f (run %s%s)", run_name,
                     row["val_accuracy"], row["test_accuracy"], row["run_id"],
                     ", reused" if row["reused"] else "")
            rows[key].append({"baseline": name, **row})
    return rows
