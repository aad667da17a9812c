"""A `dask_cluster` section against the class it names (flows/dask_cluster.py): imported,
its option names matched, a job queue's job script written, before any work. Through the
command: tests/rnnflow/test_cli.py::test_bad_runner_options_exit_2_before_the_flow."""

from pathlib import Path

import pytest

from flows.dask_cluster import check_cluster, cluster_options
from rnnflow.comparisons.plan import load_plan
from rnnflow.config import ConfigError

_SLURM = ("runner: dask\ndask_cluster:\n  class: dask_jobqueue.SLURMCluster\n"
          "  options: {cores: 1, memory: 2GB, walltime: '00:10:00', interface: lo}\n")


def _checked(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    check_cluster(load_plan(path).dask_cluster, str(path))


def test_a_cluster_class_with_its_options_and_size(tmp_path):
    pytest.importorskip("dask_jobqueue")
    _checked(tmp_path, _SLURM + "  jobs: 2\n")
    _checked(tmp_path, _SLURM + "  adapt: {minimum_jobs: 0, maximum_jobs: 3}\n")
    # Any importable cluster class, its options checked against its (and its workers') own.
    _checked(tmp_path, "runner: dask\ndask_cluster: {class: distributed.LocalCluster, "
                       "options: {threads_per_worker: 1, memory_limit: 1GB}, "
                       "adapt: {maximum: 2}}\n")
    # No dask_cluster (a LocalCluster of the runner's own, or a scheduler's address): nothing.
    check_cluster(None, "p.yaml")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_SLURM.replace("SLURMCluster", "SlurmCluster"),
         "dask_cluster.class: dask_jobqueue.SlurmCluster: dask_jobqueue has no class "
         "SlurmCluster"),
        (_SLURM.replace("dask_jobqueue.", "no_such_package."),
         "dask_cluster.class: no_such_package.SLURMCluster: cannot import no_such_package"),
        (_SLURM.replace("dask_jobqueue.SLURMCluster", "distributed.Client"),
         "not a Dask cluster class"),
        (_SLURM.replace("cores: 1", "corez: 1"),
         "dask_cluster.options: dask_jobqueue.SLURMCluster takes no option 'corez' "
         "(did you mean cores?)"),
        (_SLURM.replace("cores: 1, ", ""), "must specify how much cores and memory"),
        (_SLURM.replace("2GB", "2XB"), "'XB'"),  # what the job class itself refuses
        ("runner: dask\ndask_cluster: {class: distributed.LocalCluster, adapt: "
         "{maximum_jobs: 2}}\n", "dask_cluster.adapt: minimum_jobs/maximum_jobs need a job "
                                 "queue's cluster class"),
        ("runner: dask\ndask_cluster: {class: distributed.LocalCluster, options: "
         "{n_workerz: 2}}\n", "no option 'n_workerz' (did you mean n_workers?)"),
    ],
)
def test_bad_cluster_settings_name_file_and_key(tmp_path, text, needle):
    pytest.importorskip("dask_jobqueue")
    with pytest.raises(ConfigError) as err:
        _checked(tmp_path, text)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'p.yaml'}: ") and needle in message, message
    assert "\n" not in message


def test_options_are_followed_to_the_classes_they_are_passed_on_to():
    from distributed import LocalCluster

    # LocalCluster's own, its Nanny's and Worker's; never `asynchronous`, which Prefect sets.
    names = cluster_options(LocalCluster)
    assert {"n_workers", "threads_per_worker", "memory_limit"} <= names
    assert "asynchronous" not in names



def test_the_flow_checks_the_class_before_any_work(tmp_path, monkeypatch):
    """A deployment starts the flow without the command: the flow checks the class itself,
    before it opens a tracking run."""
    import flows.train_rnn

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the cluster class was checked")

    monkeypatch.setattr(flows.train_rnn, "_run_context", no_work)
    path = tmp_path / "p.yaml"
    path.write_text(_SLURM.replace("dask_jobqueue.", "no_such_package."))
    with pytest.raises(ConfigError, match="dask_cluster.class: .*cannot import no_such_package"):
        flows.train_rnn.train_rnn.fn(str(path))
