"""`rnnflow serve` says it is serving only once every deployment exists on the Prefect API:
a shell that triggers one as soon as it reads the line must find it; and it says how."""

import contextlib
import logging
import os
import shutil
import uuid

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.exceptions import ObjectNotFound
from prefect.runner import Runner
from prefect.settings import PREFECT_API_URL, temporary_settings

import flows.serve
from tests.helpers import REPO

URL = "http://127.0.0.1:9/api"  # nothing answers: every API call below is replaced


def test_serving_is_logged_only_once_every_deployment_is_registered(monkeypatch, caplog,
                                                                     tmp_path):
    caplog.set_level(logging.INFO, logger="rnnflow.serve")
    registered: set[str] = set()  # stands in for the API's deployments
    seen_when_logged: list[set[str]] = []
    messages: list[str] = []

    async def add_deployment(self, deployment):  # Runner.aadd_deployment, minus the API
        registered.add(f"{deployment.flow_name}/{deployment.name}")
        return uuid.uuid4()

    async def start(self, *args, **kwargs):  # Runner.start would poll for runs forever
        return None

    def read_deployment_by_name(self, name):
        if name not in registered:
            raise ObjectNotFound(httpx.HTTPStatusError("404", request=None, response=None))
        return name

    @contextlib.contextmanager
    def api(*args, **kwargs):
        os.environ["PREFECT_API_URL"] = URL
        yield None

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("serving "):
                seen_when_logged.append(set(registered))
                messages.append(record.getMessage())

    monkeypatch.setattr(Runner, "aadd_deployment", add_deployment)
    monkeypatch.setattr(Runner, "start", start)
    monkeypatch.setattr(SyncPrefectClient, "read_deployment_by_name", read_deployment_by_name)
    monkeypatch.setattr(flows.serve, "prefect_api", api)
    monkeypatch.setenv("PREFECT_API_URL", URL)
    watch = Watch()
    logging.getLogger("rnnflow.serve").addHandler(watch)
    # The shipped params files, and one whose name has dots (Prefect once cut names there).
    params = tmp_path / "params"
    shutil.copytree(REPO / "params", params)
    shutil.copy(params / "quick.yaml", params / "a.v2.yaml")
    try:
        with temporary_settings({PREFECT_API_URL: URL}):
            flows.serve.serve_params(params, port=9)
    finally:
        logging.getLogger("rnnflow.serve").removeHandler(watch)

    expected = {f"train-rnn/{p.stem}" for p in params.glob("*.yaml")}
    assert "train-rnn/a.v2" in expected
    assert seen_when_logged == [expected]
    # The exact command that triggers each one: Prefect needs <flow>/<deployment>.
    (message,) = messages
    commands = {line.strip() for line in message.splitlines()[1:]}
    assert f"export PREFECT_API_URL={URL}" in commands
    assert {f"prefect deployment run {name}" for name in expected} <= commands
