"""The lesson's free parameters through the real `rnnflow` command: one `rnnflow run` of three
variants on an extracted aclImdb folder (the folder above aclImdb/, not an archive). What it
proves end to end: a run reads an extracted folder; one-hot inputs (the lookup as the RNN's
input weights, tokens past max_tokens out of vocabulary); `maxlen: null` keeps whole reviews
and masks the padding; bucketed batches with a fixed maxlen. With either, a text scores the
same alone as in a batch. (The refusal of a Flatten head without a fixed length is a check of
the params: tests/rnnflow/comparisons/test_plan.py, and its exit code tests/rnnflow/test_cli.py;
the folder's three spellings: tests/rnnflow/data/test_download.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import rnnflow_cli, run_tiny_grid, synthetic_reviews, write_folder

pytestmark = pytest.mark.slow

# Texts of very different lengths: scored together, each is padded to the longest.
TEXTS = ["wonderful", "The plot was dull and the acting was a mess, boring from start to end. "
         "I hated it, a waste of a film.", "A superb, moving story; I loved it.", "it was"]

# One point each, one run of the command for the three.
VARIANTS = {
    "one_hot": "{embedding.source: onehot, embedding.max_tokens: 30}",
    "no_maxlen": "{pad.maxlen: null, model.return_sequences: false, model.cell: gru}",
    "bucketed": "{pad.bucket: true, pad.padding: pre, model.return_sequences: false, "
                "model.kernel: keras, embedding.source: onehot}",
}


@dataclass(frozen=True)
class Scenario:
    project: Path
    url: str  # the folder the run read
    client: MlflowClient
    runs: dict[str, object]  # the child run of each variant, by VARIANTS' name

    def stage(self, variant: str, stage: str) -> Path:
        """The folder of the stage that `variant`'s run used."""
        key = self.runs[variant].data.tags[f"stage.{stage}"]
        return self.project / "data" / stage / key


def _variant(run) -> str:
    params = run.data.params
    if params["pad.bucket"] == "True":
        return "bucketed"
    return "no_maxlen" if params["pad.maxlen"] == "None" else "one_hot"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Iterator[Scenario]:
    project = tmp_path_factory.mktemp("inputs")
    # The folder that holds aclImdb/, as a user who extracted the archive there names it.
    folder = write_folder(tmp_path_factory.mktemp("extracted"), synthetic_reviews(20))
    done = run_tiny_grid(project, folder, f"variants=[{', '.join(VARIANTS.values())}]")
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-grid").experiment_id],
                              "tags.mlflow.parentRunId != ''")
    yield Scenario(project, str(folder), client, {_variant(r): r for r in runs})


def _text_model(project: Path, run_id: str):
    import mlflow.pyfunc

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.pyfunc.load_model(f"runs:/{run_id}/text_model")


def _scores_do_not_depend_on_the_batch(text_model) -> None:
    together = text_model.predict(pd.DataFrame({"text": TEXTS}))
    for i, text in enumerate(TEXTS):
        alone = text_model.predict(pd.DataFrame({"text": [text]}))
        assert together.probability[i] == pytest.approx(alone.probability[0], rel=1e-5,
                                                        abs=1e-6), text


def test_run_reads_an_extracted_folder(scenario):
    assert sorted(scenario.runs) == sorted(VARIANTS)
    for run in scenario.runs.values():
        assert run.info.status == "FINISHED"
        assert run.data.params["dataset.url"] == scenario.url
    # Read in place: nothing was copied under data/raw.
    assert not (scenario.project / "data" / "raw").exists()


def test_one_hot_inputs(scenario):
    run = scenario.runs["one_hot"]
    table = scenario.stage("one_hot", "embeddings") / "table.parquet"
    vocab = pq.read_table(table).num_rows
    assert vocab == 30 and pq.read_schema(table).names == ["row", "token", "count"]
    # SimpleRNN(4) over one-hot vectors of 30 tokens, then Dense over 40 x 4 flattened outputs:
    # the input weights W are the lookup; the fixed selection is not a trainable parameter.
    assert run.data.metrics["trainable_params"] == 30 * 4 + 4 * 4 + 4 + 40 * 4 + 1
    assert run.data.metrics["oov_rate"] > 0  # the tokens past max_tokens
    assert run.data.params["embedding.source"] == "onehot"
    predicted = rnnflow_cli(scenario.project, "predict", "--run", run.info.run_id,
                            "A wonderful film.")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "A wonderful film." in predicted.stdout


def test_no_maxlen_masks_the_padding(scenario):
    run = scenario.runs["no_maxlen"]
    assert 0 <= run.data.metrics["test_accuracy"] <= 1
    x_type = pq.read_schema(scenario.stage("no_maxlen", "padded") / "train.parquet").field(
        "x").type
    assert pa.types.is_list(x_type) and x_type.value_type == pa.int32()  # whole reviews
    _scores_do_not_depend_on_the_batch(_text_model(scenario.project, run.info.run_id))


def test_bucketing_with_a_fixed_maxlen(scenario):
    run = scenario.runs["bucketed"]
    assert run.data.params["pad.bucket"] == "True"
    _scores_do_not_depend_on_the_batch(_text_model(scenario.project, run.info.run_id))
