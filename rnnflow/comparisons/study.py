"""The optuna study behind a params file's `search`, without Prefect or MLflow: where it is
stored, opening it with the params' sampler and pruner, and reading it back (the trials table,
the best trial, optuna's figures).

A study is named after the experiment and keeps every trial as it starts, reports and ends, so
a search killed midway goes on where it stopped: `fail_stale` marks the trials a dead process
left RUNNING, and only finished and pruned trials count toward `search.trials` (`counted`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from rnnflow.comparisons.space import DIRECTIONS, SearchConfig, make_pruner, make_sampler
from rnnflow.config import ConfigError

log = logging.getLogger("rnnflow.search")


class StudyError(RuntimeError):
    """The study's storage cannot be opened."""


def default_storage(tracking_uri: str, data_dir: Path) -> str:
    """optuna.db beside a SQLite tracking store (it moves with mlflow.db), else in `data_dir`."""
    folder = (Path(tracking_uri.removeprefix("sqlite:///")).parent
              if tracking_uri.startswith("sqlite:///") else data_dir)
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
        raise StudyError(f"search.storage {storage}: the optuna study cannot be opened "
                         f"({exc.__class__.__name__}: {exc})") from exc
    wanted = DIRECTIONS[search.metric]
    if study.direction.name.lower() != wanted:
        raise ConfigError(f"study {name} in {storage} was made to {study.direction.name.lower()}"
                          f" its metric, not {wanted} {search.metric}: keep its metric, or "
                          "rename the params (name) to start another study")
    return study


def fail_stale(study) -> int:
    """Mark FAIL the trials left RUNNING by a process that is gone; how many there were."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
    return len(stale)


def counted(study) -> int:
    """Trials that count toward `search.trials`: finished or pruned."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False,
                                states=(TrialState.COMPLETE, TrialState.PRUNED)))


def trials_table(study) -> pd.DataFrame:
    """One row per trial: number, state, the metric's value, the values drawn, val/test
    accuracy, the epoch a pruned trial reached, its run id and duration; and a finished
    trial beside the baselines (rnnflow/comparisons/framing.py): `vs_baselines`, the line
    "test accuracy 0.747; bag-of-words 0.903: -15.6 points [...]; majority 0.500",
    `test_delta_vs_baseline` and `warning` ("learned nothing: <why>", or empty)."""
    records = []
    for t in study.get_trials(deepcopy=False):
        steps = sorted(t.intermediate_values)
        records.append({
            "trial": t.number, "state": t.state.name, "value": t.value, **t.params,
            "val_accuracy": t.user_attrs.get("val_accuracy"),
            "test_accuracy": t.user_attrs.get("test_accuracy"),
            "epochs": steps[-1] if steps else 0,
            "duration_seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
            "vs_baselines": t.user_attrs.get("vs_baselines"),
            "test_delta_vs_baseline": t.user_attrs.get("test_delta_vs_baseline"),
            "warning": t.user_attrs.get("warning"),
            "run_id": t.user_attrs.get("run_id")})
    return pd.DataFrame.from_records(records)


def best_trial(study) -> dict[str, Any] | None:
    """The best finished trial: number, run id, value, the values drawn and its accuracies;
    None while no trial has finished."""
    try:
        trial = study.best_trial
    except ValueError:  # no COMPLETE trial
        return None
    metrics = {k: trial.user_attrs[k] for k in ("val_accuracy", "val_loss", "test_accuracy")
               if k in trial.user_attrs}
    return {"trial": trial.number, "run_id": trial.user_attrs.get("run_id"),
            "value": trial.value, "params": dict(trial.params), "metrics": metrics,
            "vs_baselines": trial.user_attrs.get("vs_baselines")}


def figures(study) -> dict[str, Any]:
    """optuna's optimisation history and parameter importances (two finished trials or more,
    fANOVA on scikit-learn); a plot that cannot be drawn is left out with a warning."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    drawn: dict[str, Any] = {}
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
                drawn[filename] = fig
            except Exception as exc:  # e.g. one value of every parameter
                log.warning("%s not plotted: %s: %s", filename, exc.__class__.__name__, exc)
    return drawn
