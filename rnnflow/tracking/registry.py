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

from rnnflow.tracking.baselines import BASELINE, BASELINE_TAG, KIND_TAG
from rnnflow.tracking.models import TEXT_MODEL
from rnnflow.tracking.store import (
    TrackingError,
    check_server,
    lost_an_insert_race,
    tracking_uri,
)

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
        _not_a_baseline(client, run_id)
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
        version = found[0] if found else _create_version(client, run_id, name)
        try:
            champion = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            champion = None
    return (Version(name, str(version.version), run_id),
            Version(name, str(champion.version), champion.run_id) if champion else None)


def _not_a_baseline(client: MlflowClient, run_id: str) -> None:
    """A baseline run never becomes a version, so never the champion: it is the reference a
    model is judged against, fitted on one dataset's splits, and the champion is what gets
    served as the product of training. Its text model still predicts (`rnnflow predict
    --run`, `mlflow models serve`) for whoever wants to look at or serve the reference."""
    tags = client.get_run(run_id).data.tags
    if tags.get(KIND_TAG) == BASELINE:
        raise TrackingError(
            f"run {run_id} is the {tags.get(BASELINE_TAG, 'a')} baseline: baselines are the "
            "reference a model is judged against and never become a registered version or "
            "the champion; predict with it directly: rnnflow predict --run " + run_id)


def record_decision(version: Version, tags: dict[str, str], promote: bool) -> None:
    """The decision's figures as tags of `version`, which becomes the `challenger`, and the
    `champion` too if `promote`."""
    with _registry_errors():
        client = _client()
        for key, value in tags.items():
            client.set_model_version_tag(version.name, version.version, key, value)
        _set_alias(client, version.name, CHALLENGER, version.version)
        if promote:
            _set_alias(client, version.name, CHAMPION, version.version)


def _set_alias(client: MlflowClient, name: str, alias: str, version: str,
               attempts: int = 3) -> None:
    """Point `alias` at `version`. MLflow's SQL store looks the alias up and inserts it when
    missing: two flows that set a new alias at once (runs of one params file side by side)
    both find it missing, and the second insert fails on the unique key. Setting it again
    then updates the row the other flow made; the last setter wins, as when they run one
    after the other."""
    for attempt in range(attempts):
        try:
            client.set_registered_model_alias(name, alias, version)
            return
        except MlflowException as exc:
            if attempt == attempts - 1 or not lost_an_insert_race(exc):
                raise


def champion_of(name: str) -> Version | None:
    """The version of `name` that is `champion` now, if any."""
    with _registry_errors():
        try:
            found = _client().get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            return None
    return Version(name, str(found.version), found.run_id)


def promote(name: str, *, version: str | None = None,
            run_id: str | None = None) -> tuple[Version, Version | None]:
    """Make a version of `name` the `champion` by hand, whatever the gate decided: `version`,
    or `run_id`'s text model (registered as a new version first if it is not one). Returns
    the new champion and the version it replaced (None: there was none; the same version:
    nothing changed). The version's decision tags say it was promoted by hand."""
    with _registry_errors():
        client = _client()
        if run_id is not None:
            target, before = register_version(run_id, name)
        else:
            try:
                found = client.get_model_version(name, version)
            except MlflowException:
                raise TrackingError(f"--version {version}: not a version of model {name!r} in "
                                    f"{tracking_uri()} ({_versions_of(client, name)})") from None
            target, before = Version(name, str(found.version), found.run_id), champion_of(name)
        if before is not None and before.version == target.version:
            return target, before
        tags = {"promoted": "true", "decision_reason": "promoted by hand (rnnflow promote)",
                "champion_version_before": before.version if before else ""}
        for key, value in tags.items():
            client.set_model_version_tag(name, target.version, key, value)
        _set_alias(client, name, CHAMPION, target.version)
    return target, before


def _versions_of(client: MlflowClient, name: str) -> str:
    """What a user may choose from instead: the model's versions, or that it has none."""
    found = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    if not found:
        return "no such registered model; a run registers its winner under registry.model_name"
    return "its versions: " + ", ".join(str(v) for v in found)


def _create_version(client: MlflowClient, run_id: str, name: str):
    """A new version of `name` (which exists) from the run's text model.

    Not `mlflow.register_model`: it tries to create the registered model again and prints
    "Registered model 'NAME' already exists" to stderr on every run, a line that reads like a
    problem. The logged model (models:/m-...) is linked by its id, as register_model links
    it; a run logged before MLflow 3's logged models has its model at its run path."""
    run = client.get_run(run_id)
    found = client.search_logged_models(
        [run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{TEXT_MODEL}'", max_results=1)
    tags = {"rnnflow_run_id": run_id}
    if found:
        return client.create_model_version(name, found[0].model_uri, run_id, tags=tags,
                                           model_id=found[0].model_id)
    if not client.list_artifacts(run_id, TEXT_MODEL):
        raise TrackingError(f"run {run_id} has no text model to register (a grid's parent run or "
                            "a repeats group? name one of its training runs)")
    source = f"{run.info.artifact_uri.rstrip('/')}/{TEXT_MODEL}"
    return client.create_model_version(name, source, run_id, tags=tags)


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
