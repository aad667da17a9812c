"""The model registry on a SQLite store: versions once per run, the challenger and champion
aliases, and registered models by reference."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.protos.databricks_pb2 import BAD_REQUEST, RESOURCE_DOES_NOT_EXIST
from mlflow.tracking import MlflowClient

from rnnflow import tracking


class _Echo:
    """A stand-in text model: its predict returns each text's length."""

    def predict(self, texts: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"length": [len(t) for t in texts]})


def load_echo(files: dict[str, str]) -> _Echo:  # the loader the logged model names
    assert open(files["note"]).read() == "echo"
    return _Echo()


@pytest.fixture
def text_run(store, tmp_path):
    """make() -> the id of a FINISHED run that logged an `_Echo` text model."""
    note = tmp_path / "note.txt"
    note.write_text("echo")

    def make() -> str:
        with tracking.start_run(store, "with a model") as run_id:
            tracking.log_text_model({"note": note}, f"{__name__}:load_echo", {"length": "long"},
                                    code_paths=[])
        return run_id

    return make


def test_a_text_model_logged_from_code_loads_through_its_loader(text_run):
    run_id = text_run()
    model = tracking.load_text_model(run_id)
    assert model.predict(pd.DataFrame({"text": ["abc", ""]})).length.tolist() == [3, 0]
    assert isinstance(tracking.load_text_model_object(run_id), _Echo)
    assert tracking.local_model_dir(run_id) is not None  # SQLite store: artifacts on disk


def test_versions_aliases_and_decisions(text_run):
    first, second = text_run(), text_run()
    v1, champion = tracking.register_version(first, "m")
    assert (v1.version, v1.run_id, champion) == ("1", first, None)
    assert tracking.register_version(first, "m")[0] == v1  # a run is registered once
    tracking.record_decision(v1, {"promoted": "true"}, promote=True)

    v2, champion = tracking.register_version(second, "m")
    assert v2.version == "2" and champion == v1
    tracking.record_decision(v2, {"promoted": "false", "decision_reason": "no better"},
                             promote=False)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("m", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("m", "challenger").version) == "2"
    assert client.get_model_version("m", "2").tags["decision_reason"] == "no better"
    assert client.get_model_version("m", "2").tags["rnnflow_run_id"] == second

    assert tracking.model_uri("m") == "models:/m@champion"
    assert tracking.model_uri("m@challenger") == "models:/m@challenger"
    assert tracking.model_uri("m/2") == "models:/m/2"
    model, uri = tracking.load_registered_model("m@challenger")
    assert uri == "models:/m@challenger"
    assert model.predict(pd.DataFrame({"text": ["ab"]})).length.tolist() == [2]
    for missing in ("nope", "m@nope", "m/9"):
        with pytest.raises(tracking.TrackingError, match="not in the model registry"):
            tracking.model_uri(missing)


def test_registering_prints_nothing(text_run, capfd):
    """Every run registers its winner: no "Registered model 'm' already exists" line."""
    first, second = text_run(), text_run()
    capfd.readouterr()
    tracking.register_version(first, "m")
    tracking.register_version(second, "m")
    out, err = capfd.readouterr()
    assert "already exists" not in out + err and "Registered model" not in out + err


def test_promote_by_version_or_run(text_run):
    first, second, third = text_run(), text_run(), text_run()
    v1, _ = tracking.register_version(first, "m")
    tracking.record_decision(v1, {"promoted": "true"}, promote=True)
    v2, _ = tracking.register_version(second, "m")
    tracking.record_decision(v2, {"promoted": "false", "decision_reason": "kept"}, False)

    champion, before = tracking.promote("m", version="2")
    assert (champion, before) == (v2, v1)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("m", "champion").version) == "2"
    tags = client.get_model_version("m", "2").tags
    assert tags["promoted"] == "true" and "by hand" in tags["decision_reason"]
    assert tracking.promote("m", version="2") == (v2, v2)  # already the champion

    champion, before = tracking.promote("m", run_id=third)  # registered on the way
    assert champion.version == "3" and champion.run_id == third and before == v2
    assert tracking.champion_of("m") == champion
    with pytest.raises(tracking.TrackingError, match="its versions: 1, 2, 3"):
        tracking.promote("m", version="9")
    with pytest.raises(tracking.TrackingError, match="no such registered model"):
        tracking.promote("nope", version="1")


class _Racing:
    """A client whose first alias writes lose the insert race, as against another flow."""

    def __init__(self, losses: int, message: str = "(sqlite3.IntegrityError) UNIQUE constraint "
                 "failed: registered_model_aliases.name", code: int = BAD_REQUEST):
        self.losses, self.message, self.code, self.calls = losses, message, code, []

    def set_registered_model_alias(self, name, alias, version):
        from mlflow.exceptions import MlflowException

        self.calls.append((name, alias, version))
        if len(self.calls) <= self.losses:
            raise MlflowException(self.message, error_code=self.code)


def test_an_alias_set_by_two_flows_at_once_is_set_again_not_failed():
    from rnnflow.tracking.registry import _set_alias

    client = _Racing(losses=1)
    _set_alias(client, "m", "challenger", "2")
    assert client.calls == [("m", "challenger", "2")] * 2


def test_other_alias_errors_are_not_retried():
    from mlflow.exceptions import MlflowException

    from rnnflow.tracking.registry import _set_alias

    client = _Racing(losses=1, message="Registered model 'm' not found",
                     code=RESOURCE_DOES_NOT_EXIST)
    with pytest.raises(MlflowException):
        _set_alias(client, "m", "challenger", "2")
    assert len(client.calls) == 1
    always = _Racing(losses=5)
    with pytest.raises(MlflowException):
        _set_alias(always, "m", "champion", "1")
    assert len(always.calls) == 3
