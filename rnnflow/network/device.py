"""The device a run trains on: found, set up to be shared, and named in the run's tags.

- **Memory growth** on every GPU TensorFlow sees, so several processes (two Dask workers, a
  search's trials) can share one GPU instead of the first taking all its memory. A process that
  should have a GPU of its own gets it from `CUDA_VISIBLE_DEVICES` (SLURM sets it per job).
- **Tags**: `device` (gpu or cpu), `device_name` (the GPU's, or the CPU's model name),
  `device_memory_mb` (the GPU's memory, where nvidia-ml-py can read it; the machine's RAM on a
  CPU) and `tensorflow_threads` (the threads TensorFlow's ops run on: `1` on a Dask worker,
  which holds it to its one thread; `auto` where TensorFlow picks, as many as the cores), without
  which two runs' `train_seconds` cannot be compared.
- **Mixed precision** (`train.mixed_precision`): float16 compute needs a GPU; on a CPU it is
  refused (a ConfigError, exit 2) before any work of a local run, and on a Dask worker before
  its point trains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass, replace

from rnnflow.config import ConfigError

log = logging.getLogger(__name__)

# Float16 compute needs Tensor Cores to be faster than float32: compute capability 7.0 (Volta)
# on. Older GPUs train it, slower; rnnflow allows it there with a warning.
FAST_FLOAT16 = (7, 0)


@dataclass(frozen=True)
class Device:
    """Where this process trains: the first GPU TensorFlow sees, else the CPU."""

    kind: str  # "gpu" or "cpu"
    name: str
    memory_mb: int | None = None
    compute_capability: tuple[int, int] | None = None
    count: int = 1  # GPUs visible (Keras trains on the first unless told otherwise)
    threads: int = 0  # TensorFlow's intra-op threads; 0: TensorFlow picks

    def tags(self) -> dict[str, str]:
        tags = {"device": self.kind, "device_name": self.name,
                "tensorflow_threads": str(self.threads) if self.threads else "auto"}
        if self.memory_mb:
            tags["device_memory_mb"] = str(self.memory_mb)
        if self.kind == "gpu" and self.count > 1:
            tags["device_count"] = str(self.count)
        return tags


def setup() -> Device:
    """Turn on memory growth for every visible GPU (before TensorFlow's first op on it; later it
    is left as it is) and return the device this process trains on."""
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads()  # limit_threads' limit
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised here: an earlier point in this process
            pass
    if not gpus:
        return replace(cpu(), threads=threads)
    details = tf.config.experimental.get_device_details(gpus[0])
    return Device("gpu", details.get("device_name") or gpus[0].name, _gpu_memory_mb(),
                  details.get("compute_capability"), len(gpus), threads)


def cpu() -> Device:
    """The CPU, named as /proc/cpuinfo names it (else `platform.processor()`), with the RAM."""
    import psutil

    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    return Device("cpu", name, psutil.virtual_memory().total // 2**20)


def _gpu_memory_mb() -> int | None:
    """Total memory of the first visible GPU through NVML (nvidia-ml-py, the `gpu` extra);
    None where it is not installed or finds no GPU. NVML counts every GPU of the machine, so the
    first of CUDA_VISIBLE_DEVICES (an index or a UUID) names the one TensorFlow uses."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            first = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip()
            handle = (pynvml.nvmlDeviceGetHandleByIndex(int(first)) if first.isdigit()
                      else pynvml.nvmlDeviceGetHandleByUUID(first))
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20)
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError as exc:
        log.debug("NVML could not read the GPU's memory: %s", exc)
        return None


def check_mixed_precision(device: Device) -> None:
    """ConfigError unless `device` can compute in float16: a GPU. Warns where it has no Tensor
    Cores (slower than float32 there)."""
    if device.kind != "gpu":
        raise ConfigError(
            "train.mixed_precision needs an NVIDIA GPU, and TensorFlow sees none here "
            f"(training on {device.name}). On a CPU float16 is slower than float32; set "
            "train.mixed_precision: false, or install the GPU build (make install GPU=1).")
    if device.compute_capability and tuple(device.compute_capability) < FAST_FLOAT16:
        log.warning("%s (compute capability %s) has no Tensor Cores: mixed precision will "
                    "train, slower than float32", device.name, device.compute_capability)


def check_device(points) -> None:
    """Before any work of a run that trains here: this machine's device can do what every
    point asks (mixed precision needs a GPU). Imports TensorFlow only when one asks."""
    if any(point.train.mixed_precision for point in points):
        check_mixed_precision(setup())


@contextlib.contextmanager
def precision(mixed: bool) -> Iterator[None]:
    """Keras's dtype policy for the block: `mixed_float16` when `mixed` (variables stay float32;
    the model's head is float32 too, see build_model), else unchanged. Restored afterwards, so a
    later point in the same process starts from float32."""
    if not mixed:
        yield
        return
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
