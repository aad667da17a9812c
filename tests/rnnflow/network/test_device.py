"""The device a run trains on, the kernel chosen for it, and mixed precision's checks."""

import numpy as np
import pytest

from rnnflow.config import ConfigError, ModelConfig, Point
from rnnflow.network import device, fused
from rnnflow.network.model import build_model, kernel_used


def test_the_device_is_found_and_named_in_tags():
    import psutil
    import tensorflow as tf

    here = device.setup()
    assert here.kind == ("gpu" if tf.config.list_physical_devices("GPU") else "cpu")
    tags = here.tags()
    assert tags["device"] == here.kind and tags["device_name"] == here.name != ""
    if here.kind == "cpu":
        assert here.memory_mb == psutil.virtual_memory().total // 2**20
        assert tags["device_memory_mb"] == str(here.memory_mb)
    assert tags["tensorflow_threads"] == "auto"  # nothing held this process's TensorFlow


def test_mixed_precision_is_refused_on_a_cpu_and_allowed_on_a_gpu():
    cpu = device.Device("cpu", "some CPU", 1024)
    with pytest.raises(ConfigError, match="needs an NVIDIA GPU.*some CPU"):
        device.check_mixed_precision(cpu)
    device.check_mixed_precision(device.Device("gpu", "some GPU", 80_000, (9, 0)))


def test_a_plan_is_checked_against_this_machines_device():
    plain, mixed = Point(), Point(train={"mixed_precision": True})
    device.check_device([plain, plain])  # nothing asks for a GPU
    if device.setup().kind == "cpu":
        with pytest.raises(ConfigError, match="train.mixed_precision"):
            device.check_device([plain, mixed])


@pytest.mark.parametrize(("cell", "on_gpu", "kernel", "why"), [
    ("simple_rnn", False, "fused", "covers"),
    ("gru", False, "fused", "covers"),
    ("lstm", False, "fused", "covers"),
    # On a GPU the stock GRU and LSTM run cuDNN; the fused SimpleRNN is kept.
    ("simple_rnn", True, "fused", "covers"),
    ("gru", True, "keras", "cuDNN"),
    ("lstm", True, "keras", "cuDNN"),
])
def test_the_kernel_follows_the_device_and_says_why(monkeypatch, cell, on_gpu, kernel, why):
    # The device is the one fact replaced (no GPU here); the choice is the real code's.
    monkeypatch.setattr(fused, "_gpu_visible", lambda: on_gpu)
    cfg = ModelConfig(cell=cell, num_neurons=3, return_sequences=False)
    model = build_model(cfg, np.zeros((9, 5), dtype=np.float32), maxlen=11, seed=1)
    used, reason = kernel_used(model, cfg)
    assert used == kernel and why in reason, reason


def test_model_kernel_keras_forces_the_stock_layer():
    cfg = ModelConfig(kernel="keras", num_neurons=3)
    model = build_model(cfg, np.zeros((9, 5), dtype=np.float32), maxlen=11, seed=1)
    assert kernel_used(model, cfg) == ("keras", "model.kernel: keras")


def test_mixed_precision_builds_float16_layers_a_float32_head_and_a_loss_scale():
    import keras

    cfg = ModelConfig(cell="gru", num_neurons=3, return_sequences=False)
    with device.precision(True):
        model = build_model(cfg, np.zeros((9, 5), dtype=np.float32), maxlen=11, seed=1)
        model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    assert keras.config.dtype_policy().name == "float32"  # restored after the block
    gru = model.get_layer("gru")
    assert gru.compute_dtype == "float16" and gru.variable_dtype == "float32"
    assert model.output.dtype == "float32"
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    kernel, why = kernel_used(model, cfg)
    assert kernel == "keras" and "float16" in why  # the fused kernel is float32 only
    out = model.predict(np.ones((2, 11), dtype=np.int32), verbose=0)
    assert out.dtype == np.float32 and np.all((out > 0) & (out < 1))
