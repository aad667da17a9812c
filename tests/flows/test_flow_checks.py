"""What the train-rnn flow checks before any work: a plan this machine cannot train (mixed
precision without a GPU) stops it before the tracking store or data/ are touched. (The check
itself: tests/rnnflow/network/test_device.py; its exit code: tests/rnnflow/test_cli.py.)"""

import pytest

from flows.train_rnn import train_rnn
from rnnflow.config import ConfigError
from rnnflow.network.device import setup
from tests.helpers import TINY_GRID


def test_mixed_precision_on_a_cpu_stops_the_flow_before_any_work(project):
    if setup().kind != "cpu":
        pytest.skip("a GPU is visible: mixed precision is allowed here")
    with pytest.raises(ConfigError, match="train.mixed_precision needs an NVIDIA GPU"):
        train_rnn.fn(str(TINY_GRID), {"train.mixed_precision": True})
    assert not (project / "data").exists() and not (project / "mlflow.db").exists()
