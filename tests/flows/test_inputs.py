"""The lesson's free parameters through the real `rnnflow` command: one-hot inputs, no maxlen,
bucketed batches, and the refusal of a Flatten head without a fixed length."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY_GRID, rnnflow_cli, run_tiny_grid

pytestmark = pytest.mark.slow

# Texts of very different lengths: scored together, each is padded to the longest.
TEXTS = ["wonderful", "The plot was dull and the acting was a mess, boring from start to end. "
         "I hated it, a waste of a film.", "A superb, moving story; I loved it.", "it was"]


def _only_run(project: Path):
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return run


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


def test_one_hot_inputs(project, tiny_archive):
    result = run_tiny_grid(project, tiny_archive, "embedding.source=onehot",
                           "embedding.max_tokens=30")
    assert result.returncode == 0, result.stdout[-3000:]
    run = _only_run(project)
    (table,) = (project / "data" / "embeddings").glob("*/table.parquet")
    vocab = pq.read_table(table).num_rows
    assert vocab == 30 and pq.read_schema(table).names == ["row", "token", "count"]
    # SimpleRNN(4) over one-hot vectors of 30 tokens, then Dense over 40 x 4 flattened outputs:
    # the input weights W are the lookup; the fixed selection is not a trainable parameter.
    assert run.data.metrics["trainable_params"] == 30 * 4 + 4 * 4 + 4 + 40 * 4 + 1
    assert run.data.metrics["oov_rate"] > 0  # the tokens past max_tokens
    assert run.data.params["embedding.source"] == "onehot"
    predicted = rnnflow_cli(project, "predict", "--run", "latest", "A wonderful film.")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "A wonderful film." in predicted.stdout


def test_no_maxlen_masks_the_padding(project, tiny_archive):
    result = run_tiny_grid(project, tiny_archive, "pad.maxlen=null",
                           "model.return_sequences=false", "model.cell=gru")
    assert result.returncode == 0, result.stdout[-3000:]
    run = _only_run(project)
    assert 0 <= run.data.metrics["test_accuracy"] <= 1
    (split,) = {p.parent for p in (project / "data" / "padded").glob("*/train.parquet")}
    x_type = pq.read_schema(split / "train.parquet").field("x").type
    assert pa.types.is_list(x_type) and x_type.value_type == pa.int32()  # whole reviews
    _scores_do_not_depend_on_the_batch(_text_model(project, run.info.run_id))


def test_flatten_without_maxlen_is_refused_before_any_work(project, tiny_archive):
    result = rnnflow_cli(project, "run", str(TINY_GRID), "--set", f"dataset.url={tiny_archive}",
                         "--set", "pad.maxlen=null")
    assert result.returncode == 2
    assert "pad.maxlen: null" in result.stderr
    assert "model.return_sequences: false" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "data").exists() and not (project / "mlflow.db").exists()


def test_bucketing_with_a_fixed_maxlen(project, tiny_archive):
    result = run_tiny_grid(project, tiny_archive, "pad.bucket=true", "pad.padding=pre",
                           "model.return_sequences=false", "model.kernel=keras",
                           "embedding.source=onehot")
    assert result.returncode == 0, result.stdout[-3000:]
    run = _only_run(project)
    assert run.data.params["pad.bucket"] == "True"
    _scores_do_not_depend_on_the_batch(_text_model(project, run.info.run_id))
