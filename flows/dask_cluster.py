"""A params file's `dask_cluster` checked against the class it names, before any work.

The params file's schema (rnnflow/comparisons/plan.py, `DaskClusterConfig`) checks what the
section says on its own; what only the class can answer is checked here, on the runner's side:
the class is imported, every option name is matched against what its constructors accept (and a
job queue's job class, and a LocalCluster's Nanny and Worker), a job queue's job script is
written with the options (nothing is submitted), and `adapt`'s `_jobs` bounds need a job queue's
class. `rnnflow run` calls `check_cluster` as soon as the file is read, and the `train-rnn` flow
(which deployments start without the command) as its first step.

No Prefect here, and `distributed` and the class's package only once a class is named, so the
command can check any params file before anything heavy is imported.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from rnnflow.comparisons.plan import DaskClusterConfig
from rnnflow.config import ConfigError, did_you_mean


def check_cluster(cluster: DaskClusterConfig | None, where: str) -> None:
    """A ConfigError naming `where` and the key unless the class `cluster` names can be started
    with its options and size; nothing without a `dask_cluster`."""
    if cluster is None:
        return
    name = cluster.cluster_class
    try:
        found = import_class(name)
    except ValueError as exc:
        raise ConfigError(f"{where}: dask_cluster.class: {exc}") from None
    accepted = cluster_options(found)
    unknown = sorted(set(cluster.options) - accepted)
    if unknown:
        raise ConfigError(
            f"{where}: dask_cluster.options: {name} takes no option "
            f"{', '.join(map(repr, unknown))}"
            f"{did_you_mean(unknown[0], sorted(accepted), ' (did you mean {}?)')}")
    try:
        _check_job(found, cluster.options)
    except ValueError as exc:
        raise ConfigError(f"{where}: dask_cluster.options: {exc}") from None
    adapt = cluster.adapt
    if adapt is not None and (adapt.minimum_jobs is not None or adapt.maximum_jobs is not None) \
            and getattr(found, "job_cls", None) is None:
        raise ConfigError(f"{where}: dask_cluster.adapt: minimum_jobs/maximum_jobs need a job "
                          f"queue's cluster class (dask_jobqueue), not {name}; use "
                          "minimum/maximum")


def import_class(qualified: str) -> type:
    """The Dask cluster class `package.module.Name` names; ValueError saying why it cannot be
    had."""
    module_name, _, attr = qualified.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = " (pip install 'rnnflow[hpc]')" if module_name.startswith("dask_jobqueue") else ""
        raise ValueError(f"{qualified}: cannot import {module_name} ({exc}){extra}") from None
    found = getattr(module, attr, None)
    if not isinstance(found, type):
        raise ValueError(f"{qualified}: {module_name} has no class {attr}")
    from distributed.deploy.cluster import Cluster

    if not issubclass(found, Cluster):
        raise ValueError(f"{qualified}: not a Dask cluster class (distributed.Cluster)")
    return found


def cluster_options(cluster: type) -> set[str]:
    """The keyword arguments `cluster(...)` accepts. Where its constructor passes **kwargs on,
    they are followed: up its classes, to a job queue's job class (`job_cls`), and for a
    LocalCluster to the Nanny and Worker it starts."""
    from distributed import LocalCluster, Nanny, Worker

    owners = [cluster]
    if getattr(cluster, "job_cls", None) is not None:
        owners.append(cluster.job_cls)
    if issubclass(cluster, LocalCluster):
        owners += [Nanny, Worker]
    names = set().union(*(_init_names(owner) for owner in owners))
    names.discard("asynchronous")  # Prefect's to set
    return names


def _check_job(cluster: type, options: dict[str, Any]) -> None:
    """A job queue's options, tried on its job class: the job script is written (nothing is
    submitted, no scheduler starts), so missing cores or memory, or a memory of no known unit,
    are refused now rather than by the first job."""
    job_cls = getattr(cluster, "job_cls", None)
    if job_cls is None:
        return
    accepted = _init_names(job_cls)
    try:
        job_cls(scheduler="tcp://127.0.0.1:1", name="check",
                **{k: v for k, v in options.items() if k in accepted}).job_script()
    except Exception as exc:  # noqa: BLE001 - whatever the class refuses, said as it says it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{cluster.__module__}.{cluster.__name__}: {first}") from None


def _init_names(owner: type) -> set[str]:
    """The keywords of `owner`'s constructors, followed up its classes while each passes
    **kwargs on."""
    names: set[str] = set()
    for klass in owner.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names
