"""What a user sees when input is bad or two runs meet, through the real `rnnflow` command
(docs/reliability.md). What it proves end to end: a bad dataset exits 2 and leaves a FAILED run
with the error; without a network, the download ends the run at once in one line that says how
to go on; two runs at once on one data folder build each stage once. (Runs SIGKILLed while
downloading and while building a stage, and the runs after them: test_processes.py.) (An
unreachable tracking server and a missing download are checks of the flow and of the download
step, whose exit 2 is the bad dataset's: tests/flows/test_flow_checks.py,
tests/tasks/test_stages.py.)"""

import threading

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import run_tiny_grid, write_tar

pytestmark = pytest.mark.slow


def test_bad_dataset_exits_2_and_marks_the_run_failed(project, tmp_path, prefect_api_url):
    archive = write_tar(tmp_path / "other.tar.gz", {"reviews/1.txt": "hello"})
    result = run_tiny_grid(project, archive, api_url=prefect_api_url)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error:" in result.stderr and "aclImdb/{train,test}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((project / "data").rglob("*.parquet"))
    assert not list((project / "data").rglob(".tmp-*"))
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny-grid").experiment_id])
    assert run.info.status == "FAILED" and "aclImdb" in run.data.tags["error"]
    assert "error.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_no_network_ends_in_one_line_that_says_how_to_go_on(project, prefect_api_url):
    """The first screen of `make run` on a machine without a network: the archive's host does
    not resolve (`.invalid` resolves nowhere), and the run ends at once, with exit 2 and one
    line that names the failure and the command that runs on a local copy instead."""
    url = "https://nowhere.invalid/aclImdb_v1.tar.gz"
    result = run_tiny_grid(project, url, api_url=prefect_api_url)
    assert result.returncode == 2, result.stderr[-2000:]
    said = [line for line in result.stderr.splitlines() if "does not resolve" in line]
    assert len(said) == 1, result.stderr[-3000:]  # Prefect's copies of it are dropped
    assert said[0].startswith(f"error: could not download {url}: the host name")
    assert said[0].endswith("--set 'grid={}' --set baselines=none "
                               "--data /path/to/aclImdb_v1.tar.gz")
    assert "Traceback" not in result.stderr


def test_two_runs_at_once_on_one_data_folder(project, tiny_archive):
    results = {}

    def go(name):
        # A new Prefect home: both servers find its database unmigrated, as on a new machine.
        results[name] = run_tiny_grid(project, tiny_archive, fresh_prefect=True)

    threads = [threading.Thread(target=go, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results.values():
        assert r.returncode == 0, r.stderr[-3000:]
    for stage in ("reviews", "tokens", "embeddings", "vectors", "padded"):
        done = [p for p in (project / "data" / stage).iterdir() if not p.name.startswith(".")]
        assert len(done) == 1 and (done[0] / "_SUCCESS").is_file()
    assert not list((project / "data").rglob(".tmp-*"))
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-grid").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
