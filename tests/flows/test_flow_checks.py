"""What the train-rnn flow checks before any work: a plan this machine cannot train (mixed
precision without a GPU) stops it before the tracking store or data/ are touched, and a
tracking server that does not answer stops it before the first step. (The checks themselves:
tests/rnnflow/network/test_device.py and tests/rnnflow/tracking/test_store.py; the exit code of
an error the flow raises: tests/rnnflow/test_cli.py.)"""

import pytest

from flows.train_rnn import train_rnn
from rnnflow.config import ConfigError
from rnnflow.network.device import setup
from rnnflow.tracking import TrackingError
from tests.helpers import TINY_GRID


def test_mixed_precision_on_a_cpu_stops_the_flow_before_any_work(project):
    if setup().kind != "cpu":
        pytest.skip("a GPU is visible: mixed precision is allowed here")
    with pytest.raises(ConfigError, match="train.mixed_precision needs an NVIDIA GPU"):
        train_rnn.fn(str(TINY_GRID), {"train.mixed_precision": True})
    assert not (project / "data").exists() and not (project / "mlflow.db").exists()


def test_an_unreachable_tracking_server_stops_the_flow_before_any_step(project, tiny_archive,
                                                                       monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(TrackingError, match="not reachable"):
        train_rnn.fn(str(TINY_GRID), {"dataset.url": str(tiny_archive), "grid": {}})
    assert not (project / "data").exists()
