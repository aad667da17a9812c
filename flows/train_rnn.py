"""The `train-rnn` flow: the lesson's chain (flows/chain.py) for every point of a params file.

First the baselines of its datasets are fitted and logged beside the points
(flows/baselines.py). A params file with a grid, variants or repeats runs the chain for each
of its points (flows/grid.py), one with a search for each trial its study draws
(flows/search.py); either way the best point's model is then registered as the challenger
(flows/champion.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.baselines import run_baselines
from flows.champion import register_winner
from flows.dask_cluster import check_cluster
from flows.grid import run_grid
from flows.search import run_search
from rnnflow import tracking
from rnnflow.comparisons.plan import Plan, load_plan
from rnnflow.comparisons.space import DIRECTIONS
from rnnflow.network.device import check_device
from rnnflow.tracking import RunContext
from tasks.logs import run_logs


def _flow_run_name() -> str:
    """A flow run is named after its params file (`quick` for params/quick.yaml)."""
    return Path(flow_run.parameters["params_file"]).stem


@flow(name="train-rnn", flow_run_name=_flow_run_name)
def train_rnn(params_file: str, overrides: dict[str, Any] | None = None,
              fresh: bool = False) -> list[dict[str, Any]]:
    """Run every point of a params file, `repeats` times each; returns one row per run.

    `overrides` maps dotted keys to values (`{"train.epochs": 3}`); `fresh` trains from scratch
    even where an earlier run could be reused or continued.
    """
    with run_logs():  # rnnflow's log lines in the flow run's logs, however it was started
        return _train(params_file, overrides, fresh)


def _train(params_file: str, overrides: dict[str, Any] | None, fresh: bool
           ) -> list[dict[str, Any]]:
    plan = load_plan(params_file, overrides)  # every point valid before any work
    check_cluster(plan.dask_cluster, params_file)  # its class too (flows/dask_cluster.py)
    if plan.runner == "local":  # a Dask worker checks its own device before its point trains
        check_device(plan.points)
    ctx = _run_context(plan, params_file, fresh)  # fails fast if MLflow is unreachable
    _save_view(plan, ctx)  # before the points train: `mlflow ui` shows them as they finish
    run_baselines(plan, ctx)  # the references beside the points, fitted once per dataset
    # A search draws its points (a grid beside it only seeds its first trials); else the grid.
    if plan.search is not None:
        rows, best_run_id = run_search(plan, ctx)
    else:
        rows, best_run_id = run_grid(plan, ctx)
    if best_run_id and plan.registry.enabled:
        register_winner(plan, best_run_id)
    return rows


def _run_context(plan: Plan, params_file: str, fresh: bool) -> RunContext:
    """The experiment every run of this flow run logs to, and the tags they all carry."""
    return RunContext(
        experiment_id=tracking.use_experiment(plan.name), tracking_uri=tracking.tracking_uri(),
        fresh=fresh, baselines=tuple(plan.baselines),
        tags={"prefect.flow_run_id": str(flow_run.id or ""),
              "git_commit": tracking.git_commit() or "", "params_file": str(params_file)})


def _save_view(plan: Plan, ctx: RunContext) -> None:
    """The experiment's saved view in `mlflow ui`: its runs by the metric that picks the best
    (a search's own metric), against the keys this params file varies."""
    varied = plan.varied_keys()
    metric, higher = "val_accuracy", True
    if plan.search is not None:
        varied += [k for k in plan.search.space if k not in varied]
        metric = plan.search.metric
        higher = DIRECTIONS[metric] == "maximize"
    tracking.save_comparison_view(ctx.experiment_id, varied, metric, higher)
