"""The Dask runner (flows/on_dask.py): its LocalCluster, on loopback only; a failed point
that waits for the others; a scheduler's address joined, and one that nothing answers. A grid
on Dask end to end, every point logged to a tracking server, is the course server's
(tests/flows/test_course_server.py, on the runner's own LocalCluster): one such grid in the
suite, as each starts two worker processes that import TensorFlow."""

import time
from pathlib import Path

import pytest
from prefect import task

from rnnflow.config import ConfigError


def test_task_runner_without_address_is_one_single_threaded_worker_per_core(monkeypatch):
    from flows.on_dask import task_runner

    monkeypatch.setattr("flows.on_dask.cores", lambda: 3)
    runner = task_runner(None)
    assert runner.address is None
    assert runner.cluster_kwargs["n_workers"] == 3
    assert runner.cluster_kwargs["threads_per_worker"] == 1
    assert task_runner("tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"


def test_the_local_cluster_listens_on_loopback_only():
    """The runner's LocalCluster (scheduler, nannies, workers, dashboard) accepts connections
    on 127.0.0.1 only: a scheduler runs whatever it is sent."""
    import psutil
    from distributed import LocalCluster

    from flows.on_dask import task_runner

    kwargs = {**task_runner(None).cluster_kwargs, "n_workers": 1}
    with LocalCluster(**kwargs) as cluster:
        cluster.wait_for_workers(1, timeout=120)
        me = psutil.Process()
        listening = {c.laddr.ip for p in [me, *me.children(recursive=True)]
                     for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert listening == {"127.0.0.1"}


@task
def _point(i: int, done: str) -> int:
    """Point 0 fails at once; the others wait until it has, then leave a mark."""
    failed = Path(done) / "0-failed"
    if i == 0:
        failed.write_text("")
        raise ValueError("point 0 failed")
    deadline = time.monotonic() + 120
    while not failed.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("point 0 never failed")
        time.sleep(0.05)
    (Path(done) / str(i)).write_text("finished")
    return i


# The tasks run outside a flow here, so Prefect's API log handler has no flow run to log to.
@pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted to send logs")
def test_a_failed_point_waits_for_the_others_then_raises(tmp_path, monkeypatch):
    from prefect_dask import DaskTaskRunner

    from flows.on_dask import run_on_dask

    # Threads, not processes: what is tested is the waiting, and threads start in no time.
    # Over TCP on loopback: a threads cluster's own defaults listen on every interface.
    monkeypatch.setattr("flows.on_dask.task_runner", lambda address, cluster=None: DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": False,
                        "protocol": "tcp://", "host": "127.0.0.1",
                        "dashboard_address": "127.0.0.1:0"}))
    with pytest.raises(ValueError, match="point 0 failed"):
        run_on_dask(_point, [{"i": i, "done": str(tmp_path)} for i in range(3)], None)
    # Both finished after point 0 had failed, and before the error reached the caller.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0-failed", "1", "2"]


def test_no_scheduler_at_the_address_is_a_clear_error(monkeypatch):
    from flows.on_dask import run_on_dask

    monkeypatch.setattr("flows.on_dask._CONNECT_TIMEOUT", "2s")
    with pytest.raises(ConfigError, match="tcp://127.0.0.1:9: no Dask scheduler answers"):
        run_on_dask(_point, [{"i": 1, "done": "/nonexistent"}], "tcp://127.0.0.1:9")


@task
def _where(i: int) -> tuple[int, str]:
    from distributed import get_worker

    return i, get_worker().address


@pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted to send logs")
def test_a_scheduler_at_the_address_is_joined():
    """`dask_address`: the points go to that scheduler's workers (a threads cluster on
    loopback here; what is tested is the joining), their results in order."""
    from distributed import LocalCluster

    from flows.on_dask import run_on_dask

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        results = run_on_dask(_where, [{"i": i} for i in range(4)], cluster.scheduler_address)
        workers = set(cluster.scheduler_info["workers"])
    assert [i for i, _ in results] == [0, 1, 2, 3]
    assert {address for _, address in results} <= workers
