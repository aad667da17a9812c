"""After every run, grid or search: the winner's text model registered as the `challenger`,
and made `champion` if it beats the champion on the same test reviews.

The decision is rnnflow/experiments/champion.py's, from both runs' test predictions; the
registry's reads and writes are rnnflow/tracking/registry.py's.
"""

from __future__ import annotations

import logging

from rnnflow import tracking
from rnnflow.experiments.champion import Decision, Registered, accuracy, decide
from rnnflow.experiments.plan import Plan

log = logging.getLogger("rnnflow.registry")


def register_winner(plan: Plan, run_id: str) -> Registered:
    """`run_id`'s text model as a version of `registry.model_name` (default: the params name),
    alias challenger, champion if it beats the champion; the decision's figures are tags of
    the version, and the decision is logged."""
    name = plan.registry.model_name or plan.name
    min_delta = plan.registry.min_delta
    challenger, champion = tracking.register_version(run_id, name)
    predictions = tracking.load_test_predictions(run_id)
    if champion is not None and champion.run_id == run_id:
        decision = Decision(False, "already the champion", accuracy(predictions))
    else:
        decision = decide(predictions, tracking.load_test_predictions(champion.run_id)
                          if champion is not None else None, min_delta)
    tracking.record_decision(challenger, {
        **decision.tags(), "min_delta": str(min_delta),
        "champion_version_before": champion.version if champion else ""}, decision.promote)
    registered = Registered(name, challenger.version, run_id, decision,
                            champion.version if champion else None)
    log.info("registry: %s", registered.describe())
    return registered
