"""After every run, grid or search: the winner's text model registered as the `challenger`,
and made `champion` if it beats the champion on the same test reviews.

The decision is rnnflow/comparisons/champion.py's, from both runs' test predictions; the
registry's reads and writes are rnnflow/tracking/registry.py's. A promotion is also a Prefect
event, `rnnflow.model.promoted`, on the resource `mlflow.registered-model.<name>`, with the
decision's figures as its payload: an automation can react to it ("when NAME gets a new
champion, deploy it").
"""

from __future__ import annotations

import logging

from prefect.events import emit_event

from rnnflow import tracking
from rnnflow.comparisons.champion import Decision, Registered, accuracy, decide
from rnnflow.comparisons.plan import Plan

log = logging.getLogger("rnnflow.registry")
PROMOTED = "rnnflow.model.promoted"  # the Prefect event of a new champion


def register_winner(plan: Plan, run_id: str) -> Registered:
    """`run_id`'s text model as a version of `registry.model_name` (default: the params name),
    alias challenger, champion if it beats the champion; the decision's figures are tags of
    the version, and the decision is logged."""
    name = tracking.model_name(plan.registry.model_name or plan.name)  # per user
    min_delta = plan.registry.min_delta
    challenger, champion = tracking.register_version(run_id, name)
    predictions = tracking.load_test_predictions(run_id)
    if champion is not None and champion.run_id == run_id:
        decision = Decision(False, "already the champion", accuracy(predictions))
    else:
        decision = decide(predictions, tracking.load_test_predictions(champion.run_id)
                          if champion is not None else None, min_delta, plan.registry.metric)
    tags = {**decision.tags(), "min_delta": str(min_delta),
            **({"decision_metric": "macro_f1"} if plan.registry.metric == "macro_f1" else {}),
            "champion_version_before": champion.version if champion else ""}
    tracking.record_decision(challenger, tags, decision.promote)
    registered = Registered(name, challenger.version, run_id, decision,
                            champion.version if champion else None)
    log.info("registry: %s", registered.describe())
    if decision.promote:
        emit_event(event=PROMOTED, resource={
            "prefect.resource.id": f"mlflow.registered-model.{name}",
            "prefect.resource.name": name, "rnnflow.model.version": challenger.version},
            payload={"model": name, "version": challenger.version, "run_id": run_id,
                     "tracking_uri": tracking.tracking_uri(), **tags})
    return registered
