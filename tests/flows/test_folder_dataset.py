"""`rnnflow run` on an extracted aclImdb folder: the folder, the one above it, a file:// URL."""

import json

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import run_tiny_grid

pytestmark = pytest.mark.slow


def test_run_reads_an_extracted_folder(project, tiny_folder):
    urls = [str(tiny_folder), str(tiny_folder.parent), f"file://{tiny_folder}"]
    grid = ", ".join(map(json.dumps, urls))
    result = run_tiny_grid(project, urls[0], f"grid={{dataset.url: [{grid}]}}")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-grid").experiment_id],
                              "tags.mlflow.parentRunId != ''")
    assert sorted(r.data.params["dataset.url"] for r in runs) == sorted(urls)
    assert {r.info.status for r in runs} == {"FINISHED"}
