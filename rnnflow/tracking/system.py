"""What a training run costs the machine: MLflow's system metrics (CPU, memory, disk, network,
and GPU where pynvml finds one) over time, and the peak RSS of the run's process tree.

- MLflow samples `system/*` metrics in a thread of its own while the run is active
  (`mlflow.start_run(log_system_metrics=True)`), every `MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`
  seconds: 2 s here unless that variable says otherwise (MLflow's 10 s would leave a 15-s run
  with one point or none: MLflow drops the sample in flight when a run ends).
- `PeakRss` samples the resident memory of this process and all its children (tokenizer
  pools, a Dask worker's process) every 0.2 s and logs the largest sum as `peak_rss_mb`, a
  plain metric, so `mlflow ui` can sort runs by it.
"""

from __future__ import annotations

import os
import socket
import threading

import psutil

SAMPLING_INTERVAL_S = 2.0
PEAK_RSS_METRIC = "peak_rss_mb"
NODE_TAG = "node"


def system_metrics_interval() -> None:
    """MLflow's sampling interval: $MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL, else 2 s."""
    import logging

    # "Started monitoring ...", "Skip logging GPU metrics" for every run: warnings only.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    if not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        import mlflow

        mlflow.set_system_metrics_sampling_interval(SAMPLING_INTERVAL_S)


def node() -> str:
    """The machine this process runs on, the `node` tag of each training run."""
    return socket.gethostname()


def tree_rss_bytes(process: psutil.Process) -> int:
    """Resident memory of `process` and every descendant still alive."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class PeakRss:
    """The largest RSS of this process tree while the block runs, sampled in a thread."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._loop, name="rnnflow-peak-rss", daemon=True)

    def _sample(self) -> None:
        try:
            self.peak = max(self.peak, tree_rss_bytes(self._process))
        except psutil.Error:
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakRss:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


def flush_system_metrics(run_id: str) -> None:
    """Stop MLflow's system-metrics monitor of `run_id` and publish the sample it holds.

    MLflow's monitor drops the sample in flight when its run ends, so a run shorter than one
    interval (a trial pruned after a second) would log no system metrics at all. Called just
    before the run ends; `mlflow.end_run` then finds no monitor left to stop. Relies on
    MLflow's registry of monitors (mlflow.tracking.fluent); without it, does nothing.
    """
    try:
        from mlflow.tracking import fluent

        monitor = fluent.run_id_to_system_metrics_monitor.pop(run_id, None)
    except Exception:  # another MLflow layout: MLflow stops its monitor itself
        return
    if monitor is None:
        return
    monitor.finish()
    try:
        metrics = monitor.aggregate_metrics()
        if metrics:
            monitor.publish_metrics(metrics)
            monitor.mlflow_logger.flush()
    except Exception:  # never fail a run over its system metrics
        pass
