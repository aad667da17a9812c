"""A params file's `search`: an optuna study (rnnflow/comparisons/study.py) whose trials are
child runs of `<name>-search`, pruned epoch by epoch.

- A trial trains like any point (the chain's `run_point`, flows/chain.py) but never reuses
  or continues an earlier run: the study itself is what is resumed, a value drawn from a float
  range almost never matches an earlier run, and a trial must report its own epochs for
  pruning to mean anything. Its run is tagged with the training key, so later grids can reuse
  a finished trial.
- Each epoch the metric is reported to the study; a trial the pruner stops ends at once, its
  run KILLED and tagged `pruned=true` and `pruned_at_epoch`. (Prefect shows that trial's
  `train_model` task as Failed with "pruned at epoch N": the exception is how it stops.)
- A killed search goes on where it stopped: trials left RUNNING by the dead process are marked
  FAIL in the study and KILLED in MLflow, and the parent run is the same one across
  invocations.
- `runner: dask`: every trial is a `search_trial` task on the cluster that asks the study for
  its next trial when a worker picks it up; the study storage must be reachable from the
  workers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from flows.artifacts import link_run, publish
from flows.chain import prepare, run_point
from rnnflow import faults, tracking
from rnnflow.comparisons import study as studies
from rnnflow.comparisons.framing import result_line, versus_of
from rnnflow.comparisons.plan import Plan
from rnnflow.comparisons.space import (
    SearchConfig,
    parse_space,
    preprocessing_combinations,
    suggest,
)
from rnnflow.config import Point, with_values
from rnnflow.data.storage import data_dir
from rnnflow.tracking import RunContext
from tasks.workers import search_trial

log = logging.getLogger("rnnflow.search")
STUDY_TAG, TRIAL_TAG = "optuna_study", "optuna_trial"
PARENT_ATTR = "mlflow_parent_run_id"


def run_search(plan: Plan, ctx: RunContext) -> tuple[list[dict[str, Any]], str | None]:
    """Run the study up to `search.trials`, each trial through the chain, and log the parent.
    Returns the rows of the trials this invocation ran and the best trial's run id (None while
    no trial has finished)."""
    search = plan.search
    assert search is not None
    storage = storage_url(search)
    # The study's name, per user on a server with users as the experiment's is: a class's
    # searches may share one PostgreSQL storage.
    study_name = tracking.experiment_name(plan.name)
    study = studies.open_study(study_name, search, storage, 0)
    _recover(study, ctx, plan.name)
    if plan.grid and not study.trials:  # the grid's points are the first trials
        for grid_point in plan.points:
            flat = grid_point.flat()
            study.enqueue_trial({k: flat[k] for k in plan.grid})
    offset = len(study.trials)  # a resumed search draws new values, not the first ones again
    remaining = max(0, search.trials - studies.counted(study))
    log.info("search %s: %d of %d trial(s) done, %d to run; study in %s", plan.name,
             search.trials - remaining, search.trials, remaining, storage)
    with tracking.group_run(ctx, f"{plan.name}-search",
                            reopen=study.user_attrs.get(PARENT_ATTR)) as parent_id:
        study.set_user_attr(PARENT_ATTR, parent_id)
        link_run(ctx, parent_id, f"{plan.name}-search")
        calls = [{"base": plan.base, "search": search, "name": study_name,
                  "storage": storage, "seed_offset": offset + i}
                 for i in range(remaining)]
        child = ctx.under(parent_id)
        if plan.runner == "local":
            rows = [run_trial(ctx=child, **call) for call in calls]
        else:
            rows = _on_dask(plan, child, calls)
        study = studies.open_study(study_name, search, storage, 0)  # every worker's trials
        table = studies.trials_table(study)
        best = studies.best_trial(study)
        tracking.log_search(parent_id, table, best and best["run_id"], plan.as_yaml(),
                            best or {}, studies.figures(study))
        if best and best["run_id"]:  # the parent's row and charts in `mlflow ui`
            tracking.log_best_on_parent(parent_id, best["run_id"])
    _publish(plan.name, table, best, parent_id)
    if not best:
        log.warning("search %s: no trial has finished yet, nothing to register", plan.name)
    return rows, best and best["run_id"]


def storage_url(search: SearchConfig) -> str:
    """`search.storage`, else optuna.db beside a SQLite mlflow.db, else under data/."""
    return search.storage or studies.default_storage(tracking.tracking_uri(), data_dir())


class Pruned(Exception):
    """Raised in the epoch hook when the pruner stops a trial. `start_run` ends its run with
    `run_status` and `run_tags` instead of recording an error."""

    run_status = "KILLED"

    def __init__(self, number: int, epoch: int, metric: str, value: float) -> None:
        super().__init__(f"trial {number} pruned at epoch {epoch} ({metric} {value:.4f})")
        self.epoch = epoch
        self.run_tags = {"pruned": "true", "pruned_at_epoch": str(epoch)}


class _Report:
    """The epoch hook of a trial: log the epoch, report the metric, prune if told to."""

    def __init__(self, trial, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.run_id: str | None = None
        self.epoch = 0

    def __call__(self, epoch: int, logs: dict[str, float], checkpoint: Path) -> None:
        tracking.log_epoch(epoch, logs)
        self.epoch = epoch
        if self.run_id is None:
            self.run_id = tracking.active_run_id()
            self.trial.set_user_attr("run_id", self.run_id)
        value = logs.get(self.metric, math.nan)
        if self.metric in logs:  # val_macro_f1 is scored after training only: never pruned
            self.trial.report(value, epoch)
        faults.maybe_fail(f"after_epoch:{epoch}")
        if self.metric in logs and self.trial.should_prune():
            raise Pruned(self.trial.number, epoch, self.metric, value)


def run_trial(base: Point, search: SearchConfig, name: str, storage: str,
              ctx: RunContext, seed_offset: int) -> dict[str, Any]:
    """Ask the study for a trial, train it through the chain as a child run of
    `ctx.parent_id`, tell the study how it ended. Returns the trial's row (run_id, state,
    metrics)."""
    from optuna.trial import TrialState

    study = studies.open_study(name, search, storage, seed_offset)
    trial = study.ask()
    values = suggest(trial, parse_space(search.space, "search"))
    label = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in values.items())
    log.info("trial %d: %s", trial.number, label)
    report = _Report(trial, search.metric)
    trial_ctx = dataclasses.replace(ctx, fresh=True, tags={
        **ctx.tags, STUDY_TAG: name, TRIAL_TAG: str(trial.number)})
    row: dict[str, Any] = {"trial": trial.number, "reused": False}
    try:
        result = run_point(with_values(base, values, f"trial {trial.number}"), trial_ctx,
                           f"trial-{trial.number}", on_epoch_end=report)
    except Pruned as exc:
        study.tell(trial, state=TrialState.PRUNED)
        log.info("%s", exc)
        row.update(run_id=report.run_id, state="PRUNED", pruned_at_epoch=exc.epoch)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    else:
        for key in ("run_id", "val_accuracy", "val_loss", "test_accuracy", "duration_seconds"):
            trial.set_user_attr(key, result[key])
        # The trial beside the baselines, for the trials table: its line, difference, warning.
        if versus := versus_of(result):
            trial.set_user_attr("vs_baselines", result_line(result["test_accuracy"], versus))
        for key in ("test_delta_vs_baseline", "warning"):
            if result.get(key) is not None:
                trial.set_user_attr(key, result[key])
        study.tell(trial, result[search.metric])
        row.update(result, state="COMPLETE")
    faults.maybe_fail(f"after_trial:{trial.number}")
    return row


def _recover(study, ctx: RunContext, name: str) -> None:
    """Trials left RUNNING by a process that is gone: FAIL in the study, KILLED in MLflow."""
    stale = studies.fail_stale(study)
    killed = tracking.kill_stale_runs(ctx.experiment_id, STUDY_TAG, name)
    if stale or killed:
        log.info("resuming study %s: %d interrupted trial(s) marked failed, %d run(s) KILLED",
                 name, stale, len(killed))


def _on_dask(plan: Plan, ctx: RunContext, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from flows.on_dask import run_on_dask

    if not calls:
        return []
    assert plan.search is not None
    for combo in preprocessing_combinations(plan.search, plan.base) or [plan.base]:
        prepare(combo)  # built once here; a trial's worker finds them Cached
    return run_on_dask(search_trial, [{"run": run_trial, "ctx": ctx, "arguments": call}
                                      for call in calls], plan.dask_address, plan.dask_cluster)


def _publish(name: str, table: pd.DataFrame, best: dict[str, Any] | None,
             parent_id: str) -> None:
    lines = [f"# {name}: search of {len(table)} trial(s)", "",
             f"- **states**: {dict(table.state.value_counts()) if len(table) else {}}",
             f"- **MLflow parent run**: `{parent_id}`"]
    if best:
        lines += [f"- **best trial**: {best['trial']} (run `{best['run_id']}`), "
                  f"value {best['value']:.4f}"]
        if best.get("vs_baselines"):
            lines += [f"- **beside the baselines**: {best['vs_baselines']}"]
        lines += [f"- **{k}**: {v}" for k, v in best["params"].items()]
    publish(name, "trials", table, f"search trials of {name}, one row per trial",
            lines, f"best trial of the {name} search")
