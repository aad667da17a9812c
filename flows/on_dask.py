"""The Dask runner: grid points and search trials as Prefect tasks on Dask (prefect-dask), for
`runner: dask` (the tasks themselves: tasks/workers.py).

Imported only for that runner, so a local run never loads distributed. Without an address a
`distributed.LocalCluster` is started for the flow run: one worker process per core, one thread
each. With `dask_address` the flow joins that scheduler instead; with `dask_cluster` prefect-dask
starts a cluster of that class (an HPC job queue's: dask_jobqueue.SLURMCluster, PBSCluster, ...)
with its options, scaled to `jobs` or adapting between `adapt`'s bounds, and closes it (its
batch jobs cancelled) when the points are done. Workers anywhere but here must have rnnflow
installed and see RNNFLOW_DATA_DIR and the MLflow artifact root at the flow's paths.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from prefect import Task
from prefect.client.orchestration import get_client
from prefect.futures import wait
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_dask import DaskTaskRunner

from rnnflow.comparisons.plan import DaskClusterConfig
from rnnflow.config import ConfigError
from tasks.workers import cores

log = logging.getLogger("rnnflow.dask")
_CONNECT_TIMEOUT = "15s"  # a wrong dask_address should fail soon, not after distributed's 30 s


def task_runner(address: str | None, cluster: DaskClusterConfig | None = None
                ) -> DaskTaskRunner:
    """A runner that joins `address`, starts a cluster of `cluster`'s class, or starts a
    LocalCluster of single-threaded workers."""
    if address:
        return DaskTaskRunner(address=address, client_kwargs={"timeout": _CONNECT_TIMEOUT})
    if cluster is not None:
        adapt = cluster.adapt.model_dump(exclude_none=True) if cluster.adapt else None
        return DaskTaskRunner(cluster_class=cluster.cluster_class,
                              cluster_kwargs=dict(cluster.options), adapt_kwargs=adapt)
    # One thread per worker: TensorFlow in each worker is held to it too (tasks/workers.py),
    # so the cores are shared out rather than oversubscribed. The scheduler, the workers and
    # the dashboard listen on 127.0.0.1 only. distributed serves the dashboard even when told
    # `dashboard_address: None` (on 8787, seen with `ss -ltnp`); a free port keeps two flows'
    # clusters from clashing over it.
    return DaskTaskRunner(cluster_kwargs={"n_workers": cores(), "threads_per_worker": 1,
                                          "processes": True, "host": "127.0.0.1",
                                          "dashboard_address": "127.0.0.1:0"})


@contextlib.contextmanager
def _shared_prefect_api() -> Iterator[None]:
    """Send the workers' task runs to the flow's Prefect API.

    Prefect hands a task its settings along with the flow's context. Without an explicit
    PREFECT_API_URL each worker would start a temporary server of its own, so the URL of the
    flow's (temporary or not) server is made explicit while the points are submitted.
    """
    url = str(get_client(sync_client=True).api_url).rstrip("/")
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def run_on_dask(task: Task, calls: list[dict[str, Any]], address: str | None,
                cluster: DaskClusterConfig | None = None) -> list[Any]:
    """Submit `task` once per parameter mapping; the results in the same order.

    Every call is waited for before any error is raised, so a failed point does not tear the
    cluster down under points that are still training.
    """
    runner = task_runner(address, cluster)
    with _shared_prefect_api(), runner:
        _connect(runner, address)
        if cluster is not None:
            _scale(runner, cluster)
        log.info("training %d point(s) on Dask (%s)", len(calls), _describe(address, cluster))
        futures = [runner.submit(task, parameters) for parameters in calls]
        wait(futures)
        return [future.result() for future in futures]


def _connect(runner: DaskTaskRunner, address: str | None) -> None:
    """Start the LocalCluster or reach the scheduler now, so a wrong address says so."""
    try:
        runner.client  # noqa: B018 - created on first use
    except OSError as exc:  # distributed's connect timeout is an OSError too
        if not address:
            raise
        raise ConfigError(f"dask_address {address}: no Dask scheduler answers there ({exc}). "
                          "Start one (dask scheduler) or drop dask_address to train on a "
                          "LocalCluster.") from exc


def _scale(runner: DaskTaskRunner, cluster: DaskClusterConfig) -> None:
    """Ask the started cluster for its fixed size: `jobs` batch jobs of a job queue, `jobs`
    workers of any other class (adapt is applied by prefect-dask).

    A job queue's jobs are held at that number by adapting between it and itself, not by
    `scale`: a scaled cluster does not replace a job that ends early (cancelled, preempted, out
    of walltime), and its points would wait for a worker forever; an adapting one submits
    another job, and the point is retried there (from its checkpoint)."""
    if cluster.jobs is None:
        return
    started = runner.client.cluster
    if hasattr(started, "job_cls"):
        started.adapt(minimum_jobs=cluster.jobs, maximum_jobs=cluster.jobs)
    else:
        started.scale(cluster.jobs)


def _describe(address: str | None, cluster: DaskClusterConfig | None) -> str:
    if address:
        return address
    if cluster is None:
        return f"LocalCluster, {cores()} single-threaded workers"
    size = (f"{cluster.jobs} job(s)" if cluster.jobs is not None else
            "adapting " + ", ".join(f"{k}={v}" for k, v in cluster.adapt.model_dump(
                exclude_none=True).items()) if cluster.adapt else "as the class starts it")
    return f"{cluster.cluster_class}, {size}"
