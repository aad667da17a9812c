"""`rnnflow run`'s --runner and --dask-address, with the flow itself replaced."""


import logging
import os

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


def test_a_tracking_server_that_does_not_answer_stops_the_run_before_the_flow(flow_calls,
                                                                               monkeypatch):
    """The tracking server's refusals (it does not answer, wrong credentials, another user's
    experiment: tests/rnnflow/tracking/test_store.py) end `rnnflow run` before the flow, its
    Prefect server and TensorFlow start: exit 2, one line."""
    started = []
    monkeypatch.setattr("flows.local_server.prefect_api",
                        lambda **kwargs: started.append(kwargs))  # never entered
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["run", QUICK])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "http://127.0.0.1:9 is not reachable" in result.output
    assert "Traceback" not in result.output
    assert started == [] and flow_calls == []


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


LESSON = str(REPO / "params" / "lesson16.yaml")


def test_data_sets_the_dataset_and_trains_the_vectors(flow_calls, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="rnnflow")
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(b"x")
    result = CliRunner().invoke(app, ["run", LESSON, "--data", "aclImdb_v1.tar.gz"])
    assert result.exit_code == 0, result.output
    assert flow_calls == [{"dataset.url": (tmp_path / "aclImdb_v1.tar.gz").as_uri(),
                           "embedding.source": "train"}]
    assert "training word2vec on the corpus" in caplog.text


def test_a_missing_data_file_exits_2_before_the_flow(flow_calls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", LESSON, "--data", "nope.tar.gz"])
    assert result.exit_code == 2 and flow_calls == []
    assert result.output == "error: --data nope.tar.gz: no such file or folder\n"


def _offline_flow(error):
    def flow(params_file, overrides, fresh=False):
        raise error
    return flow


@pytest.mark.parametrize(("make", "args", "command"), [
    (False, [], "rnnflow run {LESSON} --data /path/to/aclImdb_v1.tar.gz"),
    (False, ["--set", "train.epochs=1", "--set", "dataset.url=https://h.invalid/a.tgz",
             "--fresh"],
     "rnnflow run {LESSON} --set train.epochs=1 --fresh --data /path/to/aclImdb_v1.tar.gz"),
    (True, [], "make run PARAMS={LESSON} DATA=/path/to/aclImdb_v1.tar.gz"),
    (True, ["--set", "train.epochs=1"],
     "make run PARAMS={LESSON} 'ARGS=--set train.epochs=1' DATA=/path/to/aclImdb_v1.tar.gz"),
])
def test_a_download_without_network_ends_in_one_line_with_the_way_on(monkeypatch, make, args,
                                                                      command):
    from rnnflow.data.download import DownloadError

    url = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    error = DownloadError(f"could not download {url}: the host name ai.stanford.edu does not "
                          "resolve (no network, or a mistyped host)", url, transient=False,
                          unreachable=True)
    monkeypatch.setattr(flows.train_rnn, "train_rnn", _offline_flow(error))
    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    if make:
        monkeypatch.setenv("RNNFLOW_MAKE_RUN", "1")
    else:
        monkeypatch.delenv("RNNFLOW_MAKE_RUN", raising=False)
    result = CliRunner().invoke(app, ["run", LESSON, *args])
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: could not download {url}: the host name")
    assert line.endswith(command.format(LESSON=LESSON))


def test_the_makefile_default_params_need_no_params_in_the_way_on(monkeypatch):
    from rnnflow.cli import MAKE_DEFAULT_PARAMS, _rerun

    monkeypatch.setenv("RNNFLOW_MAKE_RUN", "1")
    assert _rerun([str(MAKE_DEFAULT_PARAMS)], "/p/a.tgz") == "make run DATA=/p/a.tgz"
    makefile = (REPO / "Makefile").read_text()
    assert f"PARAMS ?= {MAKE_DEFAULT_PARAMS}" in makefile
    run = "RNNFLOW_MAKE_RUN=1 $(BIN)/rnnflow run $(PARAMS) $(if $(DATA),--data $(DATA))"
    assert run in makefile


def test_vectors_without_network_point_at_the_dataset_already_here(monkeypatch, tmp_path):
    from rnnflow.data.embeddings import EmbeddingError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.csv").write_text("text,label\n")
    error = EmbeddingError("embedding.name 'word2vec-google-news-300': could not download the "
                           "vectors through gensim-data (no network)", unreachable=True)
    monkeypatch.setattr(flows.train_rnn, "train_rnn", _offline_flow(error))
    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.delenv("RNNFLOW_MAKE_RUN", raising=False)
    result = CliRunner().invoke(app, ["run", LESSON, "--set", "dataset.url=corpus.csv"])
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.endswith(f"To train the vectors on the corpus instead: rnnflow run {LESSON} "
                         "--data corpus.csv")


def test_prefects_copies_of_a_user_error_are_dropped_and_others_kept():
    from rnnflow.cli import _NoTraceback
    from rnnflow.data.download import DownloadError

    def record(message, exc=None):
        return logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, message,
                                 None, (type(exc), exc, None) if exc else None)

    quiet = _NoTraceback()
    assert not quiet.filter(record("Finished in state Failed('Task run encountered an "
                                   "exception DownloadError: could not download x')"))
    assert not quiet.filter(record("Encountered exception during execution: x",
                                   DownloadError("could not download x")))
    other = record("Task run failed with exception: KeyError('x')", KeyError("x"))
    assert quiet.filter(other) and other.exc_info is None  # kept, without its traceback


def test_a_grid_s_closing_lines_name_their_point(monkeypatch):
    rows = [{"run_id": "r1", "point": "num_neurons=2 maxlen=20", "val_accuracy": 0.5,
             "test_accuracy": 0.6},
            {"run_id": "r2", "point": "num_neurons=4 maxlen=20", "reused": True,
             "val_accuracy": 0.7, "test_accuracy": 0.8},
            {"run_id": "r3", "val_accuracy": 0.1, "test_accuracy": 0.2},  # a single point
            # Framed against the baselines: trained now (the line), then reused (the metric).
            {"run_id": "r4", "val_accuracy": 0.5, "test_accuracy": 0.5, "learned_nothing": 1.0,
             "test_delta_vs_baseline": -0.25,
             "vs_baselines": "bag-of-words 0.750: -25.0 points [-30.1, -19.9]; majority 0.500"},
            {"run_id": "r5", "reused": True, "val_accuracy": 0.9, "test_accuracy": 0.9,
             "learned_nothing": 0.0, "test_delta_vs_baseline": 0.031}]
    monkeypatch.setattr(flows.train_rnn, "train_rnn", lambda *a, **k: rows)
    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    result = CliRunner().invoke(app, ["run", QUICK])
    assert result.exit_code == 0, result.output
    # The comparison link that may follow them is test_train_rnn's and test_view's.
    closing = [line for line in result.stdout.splitlines() if line.startswith("run ")]
    assert closing == [
        "run r1 [num_neurons=2 maxlen=20]: val_accuracy=0.5000 test_accuracy=0.6000",
        "run r2 [num_neurons=4 maxlen=20] (reused): val_accuracy=0.7000 test_accuracy=0.8000",
        "run r3: val_accuracy=0.1000 test_accuracy=0.2000",
        "run r4: val_accuracy=0.5000 test_accuracy=0.5000; bag-of-words 0.750: -25.0 points "
        "[-30.1, -19.9]; majority 0.500 - LEARNED NOTHING",
        "run r5 (reused): val_accuracy=0.9000 test_accuracy=0.9000; +3.1 points vs the best "
        "baseline"]


@pytest.mark.parametrize("args", [[], ["--run", "latest", "--version", "2"],
                                  ["--version", "2", "--experiment", "e"]])
def test_promote_needs_a_run_or_a_version(monkeypatch, args):
    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    result = CliRunner().invoke(app, ["promote", "--model", "m", *args])
    assert result.exit_code == 2 and "error:" in result.output


def test_promote_prints_what_it_replaced(project, monkeypatch):
    from rnnflow import tracking

    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    old = tracking.Version("m", "1", "run-one")
    monkeypatch.setattr(tracking, "resolve_run", lambda run, experiment: "run-two")
    monkeypatch.setattr(tracking, "promote", lambda name, version, run_id: (
        tracking.Version(name, "2", run_id), old))
    result = CliRunner().invoke(app, ["promote", "--model", "m", "--run", "best"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "model m: champion is now v2 (run run-two), replacing v1 (run run-one); to undo: "
        "rnnflow promote --model m --version 1")


def test_held_back_stderr_drops_tensorflow_s_loading_notes():
    from rnnflow.cli import _without_tf_notes

    held = (b"WARNING: All log messages before absl::InitializeLog() is called are written to "
            b"STDERR\nI0000 port.cc:153] oneDNN custom operations are on. You may see...\n"
            b"Traceback (most recent call last):\nValueError: bad\n")
    assert _without_tf_notes(held) == b"Traceback (most recent call last):\nValueError: bad\n"


def test_library_notes_are_silenced_unless_the_user_chose(monkeypatch):
    from rnnflow.cli import _environment_defaults

    # Set, then unset: the undo then removes what the call below sets.
    monkeypatch.setenv("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "warn")
    monkeypatch.delenv("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW")
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "DEBUG")
    for name in ("TF_CPP_MIN_LOG_LEVEL", "PREFECT_LOGGING_EXTRA_LOGGERS",
                 "PREFECT_SERVER_ANALYTICS_ENABLED", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    _environment_defaults()
    # rnnflow's loggers go to the Prefect API: outside a flow run (serve) that is no warning.
    assert os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] == "ignore"
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "DEBUG"  # the user's own choice stays


def test_an_unknown_baseline_exits_2_before_the_flow(flow_calls):
    result = CliRunner().invoke(app, ["run", QUICK, "--set", "baselines=[majorty]"])
    assert result.exit_code == 2 and flow_calls == []
    assert "unknown baseline 'majorty'. Did you mean 'majority'?" in result.output


@pytest.mark.parametrize(("sets", "needle"), [
    (["train.loss_steps=every"], "'last' or 'all'"),
    (["train.loss_steps=all", "model.bidirectional=true"], "model.bidirectional: false"),
    (["train.loss_steps=all", "model.pooling=max"], "model.pooling: none"),
])
def test_a_bad_loss_steps_exits_2_naming_what_is_allowed(flow_calls, sets, needle):
    sets = [arg for value in sets for arg in ("--set", value)]
    result = CliRunner().invoke(app, ["run", QUICK, *sets])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "train.loss_steps" in result.output
    assert needle in result.output and "Traceback" not in result.output
    assert flow_calls == []
