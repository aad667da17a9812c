"""What a flow run shows in Prefect's UI besides its states: a table artifact (a grid's results,
a search's trials), a markdown summary of the best point, and a link to every MLflow run it
logged or reused."""

from __future__ import annotations

import re

import pandas as pd
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from rnnflow.tracking import MLFLOW_UI, RunContext


def artifact_key(name: str) -> str:
    """A params name as a Prefect artifact key: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "rnnflow"


def publish(name: str, kind: str, table: pd.DataFrame, description: str,
            summary: list[str], summary_description: str) -> None:
    """`<name>-<kind>` (the table, one row per record) and `<name>-summary` (markdown lines)."""
    key = artifact_key(name)
    records = table.astype(object).where(table.notna(), None).to_dict(orient="records")
    create_table_artifact(key=f"{key}-{kind}", table=records, description=description)
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(summary),
                             description=summary_description)


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page: on the tracking server, or where `mlflow ui` serves a local store."""
    server = tracking_uri if tracking_uri.startswith(("http://", "https://")) else MLFLOW_UI
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def link_run(ctx: RunContext, run_id: str, run_name: str) -> None:
    """A link artifact from this flow or task run to the MLflow run."""
    served = ctx.tracking_uri.startswith(("http://", "https://"))
    how = ("" if served else
           f"; start `mlflow ui --backend-store-uri {ctx.tracking_uri}` to open it")
    create_link_artifact(
        link=mlflow_run_url(ctx.tracking_uri, ctx.experiment_id, run_id),
        link_text=f"MLflow run {run_name}",
        description=f"MLflow run `{run_id}` ({run_name}) in {ctx.tracking_uri}{how}")

