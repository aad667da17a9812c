"""A plan's points, each `repeats` times, for the `train-rnn` flow: the chain (flows/chain.py)
for one point after another in the flow's process (`runner: local`), or, once every stage is
built here, as `train_point` tasks on Dask (`runner: dask`). A grid (or variants) is one MLflow
parent run `<name>-grid` with a child run per point, and a point with repeats a run grouping
them, which logs their mean and spread. Then the results table
(rnnflow/comparisons/results.py) on the parent and in Prefect."""

from __future__ import annotations

import contextlib
from typing import Any

import pandas as pd

from flows.artifacts import link_run, publish
from flows.chain import prepare, run_point
from rnnflow import tracking
from rnnflow.comparisons.framing import result_line, versus_of
from rnnflow.comparisons.plan import Plan
from rnnflow.comparisons.results import PointResult, best_index, plot_test_accuracy, results_table
from rnnflow.tracking import RunContext
from tasks.workers import train_point


def run_grid(plan: Plan, ctx: RunContext) -> tuple[list[dict[str, Any]], str]:
    """Every point of `plan` through the chain; the rows of every run, and the run id of the
    best point's best run (highest val_accuracy), the one to register."""
    if plan.is_grid:
        with tracking.group_run(ctx, f"{plan.name}-grid") as parent_id:
            link_run(ctx, parent_id, f"{plan.name}-grid")
            points = _run_points(plan, ctx.under(parent_id))
            table = results_table(points)
            best_id = table.run_id[best_index(points)]
            tracking.log_grid(parent_id, table, best_id, plan.as_yaml(), {
                "test_accuracy.png": plot_test_accuracy(table, plan.labels)})
            # The parent's row and charts in `mlflow ui` are the best point's.
            tracking.log_best_on_parent(parent_id, best_id)
    else:
        parent_id = None
        points = _run_points(plan, ctx)
        table = results_table(points)
    best = points[best_index(points)]
    winner_row = max(best.runs, key=lambda r: r["val_accuracy"])
    winner = winner_row["run_id"]
    _publish(plan.name, table, parent_id, winner_row)
    if not plan.is_grid and plan.repeats == 1:
        return points[0].runs, winner
    # Each row names its point (`num_neurons=2 maxlen=20`, `#2` for a repeat), so the closing
    # lines say which run is which.
    return [{**run, "point": point.settings["point"] + (f" #{i + 1}" if plan.repeats > 1 else "")}
            for point in points for i, run in enumerate(point.runs)], winner


def _run_points(plan: Plan, ctx: RunContext) -> list[PointResult]:
    varied = plan.varied_keys()
    names = plan.labels
    with contextlib.ExitStack() as groups:
        group_ids = [groups.enter_context(tracking.group_run(ctx, name))
                     if plan.repeats > 1 else None for name in names]
        calls = [{"point": repeat, "ctx": ctx.under(group) if group else ctx,
                  "run_name": f"{name} #{i + 1}" if group else name}
                 for point, name, group in zip(plan.points, names, group_ids, strict=True)
                 for i, repeat in enumerate(plan.repeats_of(point))]
        if plan.runner == "local":
            rows = [run_point(**call) for call in calls]
        else:
            from flows.on_dask import run_on_dask

            for call in calls:  # built here once per stage key (the rest are Cached), so
                prepare(call["point"])  # the workers find every stage Cached
            rows = run_on_dask(train_point, [
                {"run": run_point, "ctx": call.pop("ctx"), "arguments": call} for call in calls],
                plan.dask_address, plan.dask_cluster)
        points = []
        for j, (point, group) in enumerate(zip(plan.points, group_ids, strict=True)):
            runs = rows[j * plan.repeats:(j + 1) * plan.repeats]
            flat = point.flat()
            result = PointResult({"point": names[j], **{k: flat[k] for k in varied}}, runs, [
                tracking.load_test_predictions(r["run_id"]) for r in runs], group)
            if group:
                tracking.log_group(group, {**flat, "train.seed": f"{point.train.seed}+i",
                                           "repeats": plan.repeats},
                                   result.summary_metrics(),
                                   {"repeats": str(plan.repeats),  # reused runs are linked here
                                    "runs": ",".join(r["run_id"] for r in runs)})
            points.append(result)
    return points


def _publish(name: str, table: pd.DataFrame, parent_id: str | None,
             winner: dict[str, Any]) -> None:
    """The results table, and a summary of the best point, with its winning run beside the
    baselines (the end-of-run line's form)."""
    best = table.loc[table.vs_best == "best"].iloc[0]
    lines = [f"# {name}: best of {len(table)} point(s) by val_accuracy", ""]
    lines += [f"- **{k}**: {best[k]}" for k in table.columns if k != "run_id" and best[k] != ""]
    if versus := versus_of(winner):
        lines += [f"- **beside the baselines**: "
                  f"{result_line(winner['test_accuracy'], versus)}"]
    lines += [f"- **MLflow run**: `{best.run_id}`"]
    if parent_id:
        lines += [f"- **MLflow parent run**: `{parent_id}`"]
    publish(name, "results", table, f"train-rnn results for {name}, one row per point",
            lines, f"best train-rnn point for {name}")
