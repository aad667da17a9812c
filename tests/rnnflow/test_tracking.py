import socket
import time

import pytest

from rnnflow.tracking import TrackingError, use_experiment


def test_unreachable_tracking_server_fails_fast(project, monkeypatch):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(TrackingError, match="not reachable"):
        use_experiment("x")
    assert time.monotonic() - started < 10


def test_default_store_is_sqlite_in_the_working_folder(project):
    import mlflow

    exp_id = use_experiment("x")
    assert (project / "mlflow.db").is_file()
    location = mlflow.get_experiment(exp_id).artifact_location.removeprefix("file://")
    assert location.startswith(str(project / "mlruns"))
    assert use_experiment("x") == exp_id
