"""Whole points as Prefect tasks for Dask workers: a grid point (`train_point`) or a search trial
(`search_trial`), each one run that trains, evaluates and logs.

The task runs the function it is given (`run`: the chain of one point, flows/chain.py, or a
search's trial), so tasks stay below flows; what each worker needs first is the same for both
(`on_worker`): TensorFlow held to the worker's threads, the flow's tracking store, and the
worker's name on the run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from rnnflow.memory import freeze_long_lived
from rnnflow.network.train import limit_threads
from rnnflow.tracking import RunContext, use_tracking_uri
from tasks.logs import run_logs


def cores() -> int:
    """The cores this process may use (its CPU affinity, which containers narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_threads() -> int:
    """Threads of the Dask worker running this (1 on rnnflow's LocalCluster); all cores
    outside a worker."""
    from distributed import get_worker

    try:
        return get_worker().state.nthreads
    except ValueError:  # not in a worker
        return cores()


# The variable each batch scheduler sets in its jobs to the job's id (dask-jobqueue's workers
# run as such jobs): SLURM, PBS/Torque, LSF, SGE.
_BATCH_JOB_IDS = (("SLURM_JOB_ID", "slurm"), ("PBS_JOBID", "pbs"), ("LSB_JOBID", "lsf"),
                  ("JOB_ID", "sge"))


def batch_job_tags() -> dict[str, str]:
    """`batch_job` (scheduler:id) where this process runs as a batch job, else nothing."""
    for variable, scheduler in _BATCH_JOB_IDS:
        value = os.environ.get(variable)
        if value:
            return {"batch_job": f"{scheduler}:{value}"}
    return {}


def worker_tags() -> dict[str, str]:
    """Tags naming the Dask worker that trains a run, and its batch job where it is one (its
    node is tagged by every run)."""
    from distributed import get_worker

    try:
        return {"dask_worker": get_worker().address, **batch_job_tags()}
    except ValueError:  # not in a worker
        return {}


def on_worker(ctx: RunContext) -> RunContext:
    """Set this worker up for a run of `ctx` (before TensorFlow's first op here), and the
    context its run is logged with. The worker's imports are frozen out of the collector's way
    at its first point, as the `rnnflow` command's are (rnnflow/memory.py)."""
    freeze_long_lived()
    limit_threads(worker_threads())
    use_tracking_uri(ctx.tracking_uri)  # a worker has no experiment set up of its own
    return dataclasses.replace(ctx, tags={**ctx.tags, **worker_tags()})


def _run_on_worker(run: Callable[..., dict[str, Any]], ctx: RunContext,
                   arguments: dict[str, Any]) -> dict[str, Any]:
    """`run(ctx=..., **arguments)` on this worker, its run logged with `ctx`; its `rnnflow`
    log lines go to the task run's logs in Prefect."""
    with run_logs():
        return run(ctx=on_worker(ctx), **arguments)


train_point = task(_run_on_worker, name="train_point", cache_policy=NONE)
search_trial = task(_run_on_worker, name="search_trial", cache_policy=NONE)
