"""`rnnflow run`'s --runner and --dask-address, with the flow itself replaced."""


import pytest
from typer.testing import CliRunner

import flows.train_rnn
from rnnflow.cli import app
from rnnflow.config import ConfigError
from tests.helpers import REPO

QUICK = str(REPO / "params" / "quick.yaml")


@pytest.fixture
def flow_calls(monkeypatch):
    calls = []

    def fake_flow(params_file, overrides, fresh=False):
        calls.append(overrides)
        return []

    monkeypatch.setattr(flows.train_rnn, "train_rnn", fake_flow)
    # It sets environment variables and logging for the whole process: not for the test run.
    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    # The fake flow calls no API: the command's own Prefect server would start for nothing,
    # and leave its URL in this process's environment for the tests after it.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    return calls


@pytest.mark.parametrize(
    ("args", "overrides"),
    [
        ([], {}),
        (["--runner", "dask"], {"runner": "dask"}),
        (["--runner", "local"], {"runner": "local"}),
        (["--dask-address", "tcp://10.0.0.5:8786"],
         {"runner": "dask", "dask_address": "tcp://10.0.0.5:8786"}),
        (["--set", "runner=dask"], {"runner": "dask"}),
        (["--dask-cluster", "distributed.LocalCluster"],
         {"runner": "dask", "dask_cluster.class": "distributed.LocalCluster"}),
    ],
)
def test_runner_options_become_overrides(flow_calls, args, overrides):
    result = CliRunner().invoke(app, ["run", QUICK, *args])
    assert result.exit_code == 0, result.output
    assert flow_calls == [overrides]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--runner", "spark"], "runner"),
        (["--dask-address", "localhost:8786"], "tcp://host:8786"),
        (["--runner", "local", "--dask-address", "tcp://h:8786"], "runner: dask"),
        (["--dask-cluster", "no_such_package.Cluster"], "cannot import no_such_package"),
        (["--dask-cluster", "distributed.LocalCluster", "--dask-address", "tcp://h:8786"],
         "dask_cluster and dask_address"),
        (["--dask-cluster", "distributed.LocalCluster", "--set",
          "dask_cluster.options.n_workerz=2"], "no option 'n_workerz'"),
    ],
)
def test_bad_runner_options_exit_2_before_the_flow(flow_calls, args, needle):
    result = CliRunner().invoke(app, ["run", QUICK, *args])
    assert result.exit_code == 2
    assert "error:" in result.output and needle in result.output
    assert "Traceback" not in result.output
    assert flow_calls == []


def test_a_check_that_fails_inside_the_flow_exits_2(monkeypatch):
    """Errors a user can fix that the flow itself raises (the device check, a bad dataset)
    end the command as load_plan's do: one line, exit 2, no traceback."""
    def refusing_flow(params_file, overrides, fresh=False):
        raise ConfigError("train.mixed_precision needs an NVIDIA GPU; this machine has a CPU")

    monkeypatch.setattr(flows.train_rnn, "train_rnn", refusing_flow)
    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # no server for nothing
    result = CliRunner().invoke(app, ["run", QUICK])
    assert result.exit_code == 2
    assert "error:" in result.output and "needs an NVIDIA GPU" in result.output
    assert "Traceback" not in result.output


def test_explain_of_an_unknown_run_exits_2(project, monkeypatch):
    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    result = CliRunner().invoke(app, ["explain", "--run", "nope", "x"])
    assert result.exit_code == 2
    assert "error:" in result.output and "no such MLflow run" in result.output
    assert "Traceback" not in result.output
