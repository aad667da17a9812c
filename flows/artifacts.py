"""What a flow run shows in Prefect's UI besides its states: a table artifact (a grid's results,
a search's trials) and a markdown summary of the best point."""

from __future__ import annotations

import re

import pandas as pd
from prefect.artifacts import create_markdown_artifact, create_table_artifact


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
