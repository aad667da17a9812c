import socket

import pytest

from rnnflow.tracking import TrackingError, check_access, use_experiment


def test_unreachable_tracking_server_fails_fast(project, monkeypatch):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    with pytest.raises(TrackingError, match="not reachable"):
        use_experiment("x")
    with pytest.raises(TrackingError, match="not reachable"):  # what `rnnflow run` asks first
        check_access("x")


def test_the_access_check_leaves_a_local_store_to_the_run(project):
    check_access("x")
    assert not (project / "mlflow.db").exists()


def test_default_store_is_sqlite_in_the_working_folder(project):
    import mlflow

    exp_id = use_experiment("x")
    assert (project / "mlflow.db").is_file()
    location = mlflow.get_experiment(exp_id).artifact_location.removeprefix("file://")
    assert location.startswith(str(project / "mlruns"))
    assert use_experiment("x") == exp_id


def test_processes_starting_at_once_share_a_new_store(project):
    import subprocess
    import sys

    code = "from rnnflow.tracking import use_experiment; print(use_experiment('x'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=project, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-1500:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1


def test_the_write_check_changes_nothing_and_stops_a_reader(project):
    """On a server with users a run first checks it may write into an existing experiment
    (rnnflow/tracking/store.py `_check_writable`; the server itself:
    tests/flows/test_course_server.py). Against MLflow's own store: an allowed check leaves
    the experiment's tags as they were, also where it lacks rnnflow's kind tag; the server's
    403 is the refusal that ends the run before any work."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED
    from mlflow.tracking import MlflowClient

    from rnnflow.tracking.store import _check_writable, tracking_uri

    uri = tracking_uri()
    client = MlflowClient(uri)
    experiment = client.get_experiment(client.create_experiment("made-elsewhere"))
    assert experiment.tags == {}
    _check_writable(client, experiment, uri)
    assert client.get_experiment(experiment.experiment_id).tags == {}

    class Reader:  # what the authentication app answers a user with READ only
        def __getattr__(self, name):
            def refuse(*args, **kwargs):
                raise MlflowException("Permission denied", error_code=PERMISSION_DENIED)
            return refuse

    with pytest.raises(TrackingError, match="made-elsewhere .* may only read it"):
        _check_writable(Reader(), experiment, uri)
