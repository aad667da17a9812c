"""The MLflow Model Registry: the winner of a run as a version of one stable model name, with
the aliases `challenger` (the latest winner) and `champion` (the one to serve), and turning
`NAME@champion` into a model to load.

Which of the two is better is decided elsewhere (rnnflow/comparisons/champion.py, from the
runs' test predictions; the flow applies it: flows/champion.py); this module only reads and
writes the registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rnnflow.tracking.models import TEXT_MODEL
from rnnflow.tracking.store import TrackingError, check_server, tracking_uri

CHALLENGER, CHAMPION = "challenger", "champion"


@dataclass(frozen=True)
class Version:
    """One version of a registered model, and the run whose text model it is."""

    name: str
    version: str
    run_id: str


def _client() -> MlflowClient:
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


@contextlib.contextmanager
def _registry_errors() -> Iterator[None]:
    try:
        yield
    except TrackingError:
        raise
    except MlflowException as exc:
        raise TrackingError(f"model registry of {tracking_uri()}: {exc.message}") from exc


def register_version(run_id: str, name: str) -> tuple[Version, Version | None]:
    """`run_id`'s text model as a version of `name` (registered once per run; the model is
    created if new), and the version that is `champion` now, if any."""
    with _registry_errors():
        client = _client()
        try:
            client.get_registered_model(name)
        except MlflowException:
            try:
                client.create_registered_model(
                    name, description="rnnflow raw-text sentiment model (text in, probability "
                    "out); aliases: champion (serve this), challenger (the latest winner)")
            except MlflowException:  # created meanwhile by another flow
                pass
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        version = found[0] if found else mlflow.register_model(
            _text_model_uri(client, run_id), name, tags={"rnnflow_run_id": run_id})
        try:
            champion = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            champion = None
    return (Version(name, str(version.version), run_id),
            Version(name, str(champion.version), champion.run_id) if champion else None)


def record_decision(version: Version, tags: dict[str, str], promote: bool) -> None:
    """The decision's figures as tags of `version`, which becomes the `challenger`, and the
    `champion` too if `promote`."""
    with _registry_errors():
        client = _client()
        for key, value in tags.items():
            client.set_model_version_tag(version.name, version.version, key, value)
        client.set_registered_model_alias(version.name, CHALLENGER, version.version)
        if promote:
            client.set_registered_model_alias(version.name, CHAMPION, version.version)


def _text_model_uri(client: MlflowClient, run_id: str) -> str:
    """The run's text model as a logged model (models:/m-...), else by its run path."""
    run = client.get_run(run_id)
    found = client.search_logged_models(
        [run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{TEXT_MODEL}'", max_results=1)
    return found[0].model_uri if found else f"runs:/{run_id}/{TEXT_MODEL}"


def model_uri(ref: str) -> str:
    """`NAME@alias`, `NAME/version`, `NAME` (its champion) or a `models:/` URI, as a models:/
    URI that exists in the registry; a TrackingError says what is missing."""
    uri = ref if ref.startswith("models:/") else None
    body = ref.removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        version = None
    elif "/" in body:
        name, version = body.split("/", 1)
        alias = None
    else:
        name, alias, version = body, CHAMPION, None
    uri = uri or (f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}")
    try:
        client = _client()
        if alias:
            client.get_model_version_by_alias(name, alias)
        else:
            client.get_model_version(name, version)
    except TrackingError:
        raise
    except MlflowException as exc:
        raise TrackingError(f"--model {ref}: not in the model registry of {tracking_uri()} "
                            f"({exc.message}); a run registers its winner under "
                            "registry.model_name (default: the params name)") from None
    except Exception as exc:  # the store itself cannot be opened
        raise TrackingError(f"--model {ref}: the model registry of {tracking_uri()} is not "
                            f"reachable ({exc.__class__.__name__}: {exc})") from None
    return uri


def load_registered_model(ref: str):
    """The raw-text pyfunc that `ref` (see model_uri) names, and its models:/ URI."""
    uri = model_uri(ref)
    return mlflow.pyfunc.load_model(uri), uri
