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


# MLflow's clients send these as HTTP basic auth to a server run with its authentication app
# (`mlflow server --app-name basic-auth`); rnnflow reads the same two.
USERNAME_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
# Set on every experiment rnnflow makes: without it `mlflow ui` opens the experiment on its
# GenAI traces page, not on its runs.
_KIND_TAG, _KIND = "mlflow.experimentKind", "custom_model_development"
# The tag `_check_writable` asks to delete: rnnflow never sets it, so no experiment has it.
_PROBE_TAG = "rnnflow.write_check"


def tracking_user() -> str | None:
    """The user this process logs as on a tracking server with users, if any."""
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    return os.environ.get(USERNAME_ENV) or None


def experiment_name(name: str) -> str:
    """The experiment a params file's `name` stands for. On a server with users, `<user>/<name>`:
    every student of a class runs params/quick.yaml, and each gets an experiment of their own
    instead of writing into the first one's. A name that holds a `/` (`rnnflow compare
    alice/quick`, `--experiment alice/quick`; a params file's name cannot) is used as written:
    it names one user's experiment, the user's own or another's to read."""
    user = tracking_user()
    return name if user is None or "/" in name else f"{user}/{name}"


def model_name(name: str) -> str:
    """A registered model's name, per user on a server with users, like `experiment_name`:
    `<user>.<name>` (MLflow refuses a `/` in a model's name); a name already so prefixed is
    kept."""
    user = tracking_user()
    return name if user is None or name.startswith(f"{user}.") else f"{user}.{name}"


def refusal(exc: Exception) -> int | None:
    """401 (unknown user or wrong password) or 403 (no permission), if the server said so."""
    code = getattr(exc, "error_code", "")
    text = str(exc)
    if code == "UNAUTHENTICATED" or "error code 401" in text:
        return 401
    if code == "PERMISSION_DENIED" or "error code 403" in text:
        return 403
    return None


def credentials_refused(uri: str) -> TrackingError:
    """The error for credentials the server refused (401), naming the user they are of."""
    user = os.environ.get(USERNAME_ENV)
    who = f"user {user!r}" if user else f"no user ({USERNAME_ENV} is not set)"
    return TrackingError(
        f"MLflow tracking server {uri} refused the credentials of {who}: a wrong "
        f"{PASSWORD_ENV}, or no such user; ask the teacher who runs the server")


def use_experiment(name: str) -> str:
    """Point MLflow at the tracking store, check it answers, and return the experiment's id.

    On a server with users this is also where a run stops before any work when it may not
    write (TrackingError, exit 2): credentials the server refuses, or an experiment of another
    user. Nothing is created in either case."""
    uri = tracking_uri()
    name = experiment_name(name)
    mlflow.set_tracking_uri(uri)
    with _sqlite_init_lock(uri):
        client, experiment = _writable_experiment(uri, name)
        if experiment is not None:
            return experiment.experiment_id
        # With the SQLite store MLflow puts artifacts in ./mlruns/<experiment id>, beside
        # mlflow.db.
        try:
            return client.create_experiment(name, tags={_KIND_TAG: _KIND})
        except MlflowException as exc:
            if refusal(exc) == 403:
                raise TrackingError(f"experiment {name}: user {tracking_user()!r} may not "
                                    f"create experiments on {uri}") from exc
            if lost_an_insert_race(exc) or exc.error_code == "RESOURCE_ALREADY_EXISTS":
                return client.get_experiment_by_name(name).experiment_id  # made meanwhile
            raise


def check_access(name: str) -> None:
    """On a tracking server, the refusals of `use_experiment` asked on their own: whether the
    server answers, takes this user's credentials, and lets this user write into the params
    file's experiment where it exists (TrackingError otherwise). `rnnflow run` asks before it
    imports the flow and TensorFlow, so a refused student hears it in a second or two, not
    ten. Creates nothing; a local store has nothing to refuse, and is left to the run."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        _writable_experiment(uri, experiment_name(name))


def _writable_experiment(uri: str, name: str):
    """(client, the experiment named `name` or None) of a store that answers, once this user
    may write into the experiment."""
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    try:
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(name)
    except Exception as exc:
        if refusal(exc) == 401:
            raise credentials_refused(uri) from exc
        raise TrackingError(
            f"MLflow tracking store {uri} is not reachable ({exc.__class__.__name__}: "
            f"{exc}). Start the server or fix MLFLOW_TRACKING_URI."
        ) from exc
    if experiment is not None and tracking_user() is not None:  # a server with users: whose?
        _check_writable(client, experiment, uri)
    return client, experiment


def _check_writable(client: MlflowClient, experiment, uri: str) -> None:
    """Whether this user may write into `experiment`, asked before any work and changing
    nothing: delete a tag no experiment has (`_PROBE_TAG`). The authentication app asks for the
    EDIT permission a run's writes need before the store looks for the tag, so an allowed user
    is told there is no such tag, a refused one 403. A refusal is a TrackingError naming the
    owner's experiment, so the run ends before it made a run it could not finish.

    Not a tag set to the value it has: where the experiment lacks the tag, that write would add
    it, a change made by a check, and on servers with users only."""
    try:
        client.delete_experiment_tag(experiment.experiment_id, _PROBE_TAG)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return  # allowed; nothing was there to delete
        if refusal(exc) != 403:
            raise
        user = tracking_user()
        raise TrackingError(
            f"experiment {experiment.name} on {uri} was made by another user, and user "
            f"{user!r} may only read it: run under another name (--set name=...), or ask the "
            "teacher to give you EDIT on it") from exc


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
