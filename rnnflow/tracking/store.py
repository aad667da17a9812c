"""The tracking store: which one, whether it answers, and the experiment a params file logs to."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be reached, or holds no such run or experiment."""


def lost_an_insert_race(exc: MlflowException) -> bool:
    """Whether `exc` is a SQL store's unique key refusing a row another process inserted
    between this one's lookup and its insert (MLflow looks a record up, then inserts it in a
    second statement, and answers the IntegrityError as BAD_REQUEST, which its client does not
    retry). The row exists by then: the same call again finds it."""
    text = str(exc)
    return exc.error_code == "BAD_REQUEST" and any(
        needle in text for needle in ("IntegrityError", "UNIQUE constraint failed",
                                      "duplicate key value"))


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the SQLite file a bare `mlflow ui` opens in this folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def use_tracking_uri(uri: str) -> None:
    """Point this process at the store the flow chose: a Dask worker has no experiment set up,
    and its working folder may not be the flow's."""
    mlflow.set_tracking_uri(uri)


def use_experiment(name: str) -> str:
    """Point MLflow at the tracking store, check it answers, and return the experiment's id."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    with _sqlite_init_lock(uri):
        try:
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name(name)
        except Exception as exc:
            raise TrackingError(
                f"MLflow tracking store {uri} is not reachable ({exc.__class__.__name__}: "
                f"{exc}). Start the server or fix MLFLOW_TRACKING_URI."
            ) from exc
        if experiment is not None:
            return experiment.experiment_id
        # With the SQLite store MLflow puts artifacts in ./mlruns/<experiment id>, beside
        # mlflow.db. Without this tag `mlflow ui` opens the experiment on its GenAI traces
        # page, not on its runs.
        return client.create_experiment(
            name, tags={"mlflow.experimentKind": "custom_model_development"})


@contextlib.contextmanager
def _sqlite_init_lock(uri: str) -> Iterator[None]:
    """Serialise the first touch of a SQLite store across processes: two runs starting at once
    would both migrate a new mlflow.db ("duplicate column name") or create the same
    experiment."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock = Path(uri.removeprefix("sqlite:///") + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_server(uri: str) -> None:
    # MLflow's own client retries for minutes before giving up; ask once, briefly.
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as response:
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except (OSError, ValueError) as exc:
        reason = str(getattr(exc, "reason", exc))
    raise TrackingError(
        f"MLflow tracking server {uri} is not reachable ({reason}). Start it (mlflow server) "
        "or unset MLFLOW_TRACKING_URI to track into ./mlflow.db."
    )


def git_commit() -> str | None:
    """The commit of the rnnflow checkout that runs (not of the working folder)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
