"""End to end: a 5-class table in Italian (words as labels, a given dev split, rows without a
label) through the CLI (in the test process: what the run logs is the point), one run: k-class
metrics, the per-class table and the k x k plot, predict and explain by class name, and the
champion served over REST by its alias (the one end-to-end proof of `mlflow models serve`).
(Bad label sets are errors of the read step: tests/rnnflow/data/test_labels.py; a dataset
error's exit 2 end to end: test_failures.py.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import (
    CLASS_WORDS,
    rnnflow_here,
    serve_and_post,
    synthetic_table,
    tiny_grid_args,
)

pytestmark = pytest.mark.slow

CLASSES = ["tristezza", "gioia", "sorpresa", "rabbia", "paura"]
SETS = ["dataset.source=csv", "dataset.limit=null", "tokenize.tokenizer=regexp",
        r"tokenize.pattern=\w+'|\w+", "tokenize.lowercase=true", "embedding.min_count=1",
        "pad.maxlen=12", "train.class_weight=balanced", "evaluate.mistakes=3"]


@dataclass(frozen=True)
class ClassRun:
    """A finished k-class run, with the table it read."""

    project: Path
    client: MlflowClient
    run: object
    table: Path

    def artifact(self, path: str) -> Path:
        return Path(self.client.download_artifacts(self.run.info.run_id, path,
                                                   str(self.project)))


@pytest.fixture(scope="module")
def class_run(tmp_path_factory, prefect_api_url) -> Iterator[ClassRun]:
    project = tmp_path_factory.mktemp("classes")
    table = synthetic_table(project / "emozioni.csv", CLASSES, 8, empty_labels=2)
    done = rnnflow_here(project, *tiny_grid_args(table, *SETS), api_url=prefect_api_url)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dropped 3 rows whose label or text is empty" in done.stderr
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny-grid").experiment_id])
    yield ClassRun(project, client, run, table)


def test_run_logs_classes_k_class_metrics_and_tables(class_run):
    run = class_run.run
    assert run.info.status == "FINISHED"
    assert json.loads(run.data.params["classes"]) == sorted(CLASSES)
    assert json.loads(run.data.tags["classes"]) == sorted(CLASSES)
    metrics = run.data.metrics
    assert metrics["dropped_rows"] == 3
    for split in ("val", "test"):
        for name in ("accuracy", "macro_f1", "weighted_f1", "auc", "loss"):
            assert f"{split}_{name}" in metrics, f"{split}_{name}"
        assert 0.0 <= metrics[f"{split}_macro_f1"] <= 1.0
        assert f"{split}_precision" not in metrics  # the binary metrics are not logged
    artifacts = {a.path for a in class_run.client.list_artifacts(run.info.run_id)}
    assert {"per_class.csv", "report.html", "model_card.md"} <= artifacts
    plots = {a.path for a in class_run.client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/confusion_matrix.png" in plots and "plots/roc_pr_curves.png" not in plots
    table = pd.read_csv(class_run.artifact("per_class.csv"))
    source = pd.read_csv(class_run.table, keep_default_na=False)
    for split, given in (("val", "dev"), ("test", "test")):
        part = table[table.split == split]
        assert list(part["class"]) == sorted(CLASSES)
        rows = source[(source.split == given) & (source.label != "")]
        assert part.support.sum() == len(rows)  # the given dev split, as it is
    accuracy = metrics["test_accuracy"]
    recall = table[table.split == "test"].set_index("class").recall
    support = table[table.split == "test"].set_index("class").support
    assert accuracy == pytest.approx((recall * support).sum() / support.sum())
    page = class_run.artifact("report.html").read_text(encoding="utf-8")
    assert "Per class" in page and all(c in page for c in CLASSES)
    card = class_run.artifact("model_card.md").read_text(encoding="utf-8")
    assert "Dense(5, softmax)" in card and "macro F1" in card


def _predict(class_run, *args):
    return rnnflow_here(class_run.project, "predict", "--experiment", "tiny-grid", *args)


def test_predict_prints_a_class_name_and_all_probabilities(class_run):
    texts = [" ".join(CLASS_WORDS["gioia"]), "xyzzy qwerty"]
    out = _predict(class_run, "--all", *texts)
    assert out.returncode == 0, out.stderr[-2000:]
    header, first, second = out.stdout.strip().splitlines()
    assert header.split("\t") == ["probability", "label", *sorted(CLASSES), "text"]
    prob, label, *values, _text = first.split("\t")
    assert label in CLASSES and 0.0 < float(prob) <= 1.0
    values = [float(v) for v in values]
    assert sum(values) == pytest.approx(1.0, abs=3e-3)
    assert max(values) == pytest.approx(float(prob), abs=1e-3)
    assert sorted(CLASSES)[values.index(max(values))] == label
    assert second.split("\t")[1] == "no opinion"  # no known token


def test_the_champion_serves_every_class_over_rest(class_run):
    """`mlflow models serve -m models:/NAME@champion` (docs/search.md's command), with unpickling
    disallowed (the text model is a model from code): the run's model, registered as the first
    champion, answers a POST of raw text with the class name, its probability and one column
    per class; "no opinion" and 1/k where no token is known."""
    champion = class_run.client.get_model_version_by_alias("tiny-grid", "champion")
    assert champion.run_id == class_run.run.info.run_id
    rows = serve_and_post(class_run.project, "models:/tiny-grid@champion",
                          [" ".join(CLASS_WORDS["gioia"]), "xyzzy qwerty"],
                          MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false")
    known, unknown = rows
    probs = {c: known[f"prob_{c}"] for c in CLASSES}
    assert known["label"] == max(probs, key=probs.get)
    assert known["probability"] == pytest.approx(max(probs.values()))
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5) and known["known_tokens"] > 0
    assert unknown["label"] == "no opinion" and unknown["known_tokens"] == 0
    assert [row["class"] for row in rows] == [row["label"] for row in rows]
    assert all(unknown[f"prob_{c}"] == pytest.approx(1 / len(CLASSES)) for c in CLASSES)


def test_explain_attributes_the_class_asked_for(class_run):
    text = " ".join(CLASS_WORDS["paura"] + CLASS_WORDS["gioia"][:1])
    out = rnnflow_here(class_run.project, "explain", "--experiment", "tiny-grid",
                      "--class", "rabbia", text)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = out.stdout.splitlines()[0]
    assert "rabbia" in summary and "felicità" in out.stdout  # non-ASCII tokens round-trip
    total, fx, f0 = (float(v) for v in re.search(
        r"attributions sum ([-+.\d]+) = f\(x\) ([-.\d]+) - f\(empty\) ([-.\d]+)",
        summary).groups())
    assert total == pytest.approx(fx - f0, abs=2e-2)  # completeness for that class
    assert float(summary.split()[2]) == pytest.approx(fx, abs=1e-3)
