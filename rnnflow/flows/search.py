"""A params file's `search`: an optuna study whose trials are child runs of `<name>-search`,
pruned epoch by epoch; and, after any run, registering the winner (`register_winner`).

- The study lives in `search.storage`, by default `optuna.db` beside a SQLite `mlflow.db`
  (else under RNNFLOW_DATA_DIR), named after the experiment. Every trial is recorded there as
  it starts, reports and ends, so a killed search goes on where it stopped: trials left
  RUNNING by the dead process are marked FAIL (their MLflow runs KILLED) and drawn again, and
  `trials` is the target of finished + pruned trials in the study, so `trials: 30` after a
  20-trial search runs 10 more. The parent run is the same one across those invocations.
- A trial trains like any point (`run_point`) but never reuses or continues an earlier run:
  the study itself is what is resumed, a value drawn from a float range almost never matches
  an earlier run, and a trial must report its own epochs for pruning to mean anything. Its
  run is tagged with the training key, so later grids can reuse a finished trial.
- Each epoch the metric is reported to the study; a trial the pruner stops ends at once, its
  run KILLED and tagged `pruned=true` and `pruned_at_epoch`. (Prefect shows that trial's
  `train_model` task as Failed with "pruned at epoch N": the exception is how it stops.)
- `runner: dask`: every trial is a Prefect task on the cluster that asks the study for its
  next trial when a worker picks it up; the study storage must be reachable from the workers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from rnnflow import faults, tracking
from rnnflow.config import ConfigError, Experiment, Plan, SearchConfig
from rnnflow.search import DIRECTIONS, make_pruner, make_sampler, parse_space, point, suggest
from rnnflow.storage import data_dir
from rnnflow.tracking import RunContext

log = logging.getLogger("rnnflow.search")
STUDY_TAG, TRIAL_TAG = "optuna_study", "optuna_trial"
PARENT_ATTR = "mlflow_parent_run_id"


def storage_url(search: SearchConfig) -> str:
    """`search.storage`, else optuna.db beside a SQLite mlflow.db, else under data/."""
    if search.storage:
        return search.storage
    uri = tracking.tracking_uri()
    folder = (Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///")
              else data_dir())
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def open_study(name: str, search: SearchConfig, storage: str, seed_offset: int = 0):
    """The study `name` in `storage`, created if new; its direction must match the metric."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
    try:
        rdb = optuna.storages.RDBStorage(storage, engine_kwargs=engine)
        study = optuna.create_study(
            storage=rdb, study_name=name, direction=DIRECTIONS[search.metric],
            sampler=make_sampler(search, seed_offset), pruner=make_pruner(search),
            load_if_exists=True)
    except ConfigError:
        raise
    except Exception as exc:
        raise tracking.TrackingError(f"search.storage {storage}: the optuna study cannot be "
                                     f"opened ({exc.__class__.__name__}: {exc})") from exc
    wanted = DIRECTIONS[search.metric]
    if study.direction.name.lower() != wanted:
        raise ConfigError(f"study {name} in {storage} was made to {study.direction.name.lower()}"
                          f" its metric, not {wanted} {search.metric}: keep its metric, or "
                          "rename the params (name) to start another study")
    return study


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
        self.trial.report(value, epoch)
        faults.maybe_fail(f"after_epoch:{epoch}")
        if self.trial.should_prune():
            raise Pruned(self.trial.number, epoch, self.metric, value)


def run_trial(base: Experiment, search: SearchConfig, name: str, storage: str,
              ctx: RunContext, seed_offset: int = 0) -> dict[str, Any]:
    """Ask the study for a trial, train it as a child run of `ctx.parent_id`, tell the study
    how it ended. Returns the trial's row (run_id, state, metrics)."""
    from optuna.trial import TrialState

    from rnnflow.flows.train_rnn import run_point

    study = open_study(name, search, storage, seed_offset)
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
        result = run_point(point(base, values, f"trial {trial.number}"), trial_ctx,
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
        study.tell(trial, result[search.metric])
        row.update(result, state="COMPLETE")
    faults.maybe_fail(f"after_trial:{trial.number}")
    return row


@task(name="search_trial", cache_policy=NONE)
def search_trial(base: Experiment, search: SearchConfig, name: str, storage: str,
                 ctx: RunContext, seed_offset: int) -> dict[str, Any]:
    """One trial in a Dask worker: it asks the study for its next trial when it starts."""
    from rnnflow.flows.on_dask import worker_tags, worker_threads
    from rnnflow.train import limit_threads

    limit_threads(worker_threads())
    tracking.use_tracking_uri(ctx.tracking_uri)
    ctx = dataclasses.replace(ctx, tags={**ctx.tags, **worker_tags()})
    return run_trial(base, search, name, storage, ctx, seed_offset)


def _recover(study, ctx: RunContext, name: str) -> None:
    """Trials left RUNNING by a process that is gone: FAIL in the study, KILLED in MLflow."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
    killed = tracking.kill_stale_runs(ctx.experiment_id, f"{STUDY_TAG}", name)
    if stale or killed:
        log.info("resuming study %s: %d interrupted trial(s) marked failed, %d run(s) KILLED",
                 name, len(stale), len(killed))


def _counted(study) -> int:
    """Trials that count toward `search.trials`: finished or pruned."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False,
                                states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_search(plan: Plan, ctx: RunContext) -> list[dict[str, Any]]:
    """Run the study up to `search.trials`, log the parent, register the winner. Returns the
    rows of the trials this invocation ran."""
    search = plan.search
    assert search is not None
    storage = storage_url(search)
    study = open_study(plan.name, search, storage, 0)
    _recover(study, ctx, plan.name)
    if plan.grid and not study.trials:  # the grid's points are the first trials
        for grid_point in plan.points:
            flat = grid_point.flat()
            study.enqueue_trial({k: flat[k] for k in plan.grid})
    offset = len(study.trials)  # a resumed search draws new values, not the first ones again
    remaining = max(0, search.trials - _counted(study))
    log.info("search %s: %d of %d trial(s) done, %d to run; study in %s", plan.name,
             search.trials - remaining, search.trials, remaining, storage)
    with tracking.group_run(ctx, f"{plan.name}-search",
                            reopen=study.user_attrs.get(PARENT_ATTR)) as parent_id:
        study.set_user_attr(PARENT_ATTR, parent_id)
        child = ctx.under(parent_id)
        calls = [{"base": plan.experiment, "search": search, "name": plan.name,
                  "storage": storage, "ctx": child, "seed_offset": offset + i}
                 for i in range(remaining)]
        if plan.runner == "local":
            rows = [run_trial(**call) for call in calls]
        else:
            rows = _on_dask(plan, calls)
        study = open_study(plan.name, search, storage, 0)  # every worker's trials
        table = trials_table(study)
        best = _best(study)
        tracking.log_search(parent_id, table, best and best["run_id"], plan.as_yaml(),
                            best or {}, _figures(study))
    _publish(plan.name, table, best, parent_id)
    if best and plan.registry.enabled:
        register_winner(plan, best["run_id"])
    elif not best:
        log.warning("search %s: no trial has finished yet, nothing to register", plan.name)
    return rows


def _on_dask(plan: Plan, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from rnnflow.flows.on_dask import run_on_dask
    from rnnflow.flows.train_rnn import preprocess
    from rnnflow.search import preprocessing_combinations

    if not calls:
        return []
    for combo in preprocessing_combinations(plan) or [plan.experiment]:
        preprocess(combo)  # built once here; a trial's worker finds them Cached
    return run_on_dask(search_trial, calls, plan.dask_address)


def trials_table(study) -> pd.DataFrame:
    """One row per trial: number, state, the metric's value, the values drawn, val/test
    accuracy, the epoch a pruned trial reached, its run id and duration."""
    records = []
    for t in study.get_trials(deepcopy=False):
        steps = sorted(t.intermediate_values)
        records.append({
            "trial": t.number, "state": t.state.name, "value": t.value, **t.params,
            "val_accuracy": t.user_attrs.get("val_accuracy"),
            "test_accuracy": t.user_attrs.get("test_accuracy"),
            "epochs": steps[-1] if steps else 0,
            "duration_seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
            "run_id": t.user_attrs.get("run_id")})
    return pd.DataFrame.from_records(records)


def _best(study) -> dict[str, Any] | None:
    try:
        trial = study.best_trial
    except ValueError:  # no COMPLETE trial
        return None
    metrics = {k: trial.user_attrs[k] for k in ("val_accuracy", "val_loss", "test_accuracy")
               if k in trial.user_attrs}
    return {"trial": trial.number, "run_id": trial.user_attrs.get("run_id"),
            "value": trial.value, "params": dict(trial.params), "metrics": metrics}


def _figures(study) -> dict[str, Any]:
    """optuna's optimisation history and parameter importances (two finished trials or more,
    fANOVA on scikit-learn); a plot that cannot be drawn is left out with a warning."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    figures: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for filename, plot in (("optimization_history.png", ovm.plot_optimization_history),
                               ("param_importances.png", ovm.plot_param_importances)):
            try:
                if filename == "param_importances.png" and sum(
                        t.state.name == "COMPLETE" for t in study.trials) < 2:
                    log.info("parameter importances need two finished trials: not plotted")
                    continue
                ax = plot(study)
                fig = ax.figure
                fig.set_size_inches(7, 4)
                fig.tight_layout()
                figures[filename] = fig
            except Exception as exc:  # e.g. one value of every parameter
                log.warning("%s not plotted: %s: %s", filename, exc.__class__.__name__, exc)
    return figures


def _publish(name: str, table: pd.DataFrame, best: dict[str, Any] | None,
             parent_id: str) -> None:
    key = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "rnnflow"
    records = table.astype(object).where(table.notna(), None).to_dict(orient="records")
    create_table_artifact(key=f"{key}-trials", table=records,
                          description=f"search trials of {name}, one row per trial")
    lines = [f"# {name}: search of {len(table)} trial(s)", "",
             f"- **states**: {dict(table.state.value_counts()) if len(table) else {}}",
             f"- **MLflow parent run**: `{parent_id}`"]
    if best:
        lines += [f"- **best trial**: {best['trial']} (run `{best['run_id']}`), "
                  f"value {best['value']:.4f}"]
        lines += [f"- **{k}**: {v}" for k, v in best["params"].items()]
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines),
                             description=f"best trial of the {name} search")


def register_winner(plan: Plan, run_id: str) -> tracking.Registered:
    """The winning run's text model as a version of `registry.model_name` (default: the
    params name), alias challenger, champion if it beats the champion; printed."""
    name = plan.registry.model_name or plan.name
    registered = tracking.register_winner(run_id, name, plan.registry.min_delta)
    log.info("registry: %s", registered.describe())
    return registered
