"""The lesson's free parameters through the `rnnflow` command (in the test process: what the run
logs is the point): one `rnnflow run` of seven variants on an extracted aclImdb folder (the
folder above aclImdb/, not an archive). What it proves end to end: a run reads an extracted
folder; one-hot inputs (the lookup as the RNN's input weights, tokens past max_tokens out of
vocabulary); FastText vectors for every corpus token and vectors learned from scratch, each
pooled over time; `maxlen: null` keeps whole reviews and masks the padding; bucketed batches
with a fixed maxlen; with either, a text scores the same alone as in a batch; the loss at every
step (`train.loss_steps: all`) trains, predicts and is explained unrolled, as the vanilla way
is. A maxlen that truncates most reviews shows in what the run reports (report.html,
model_card.md, the behavioural checks, the traced mistakes) and in `rnnflow explain`. (The
refusal of a Flatten head without a fixed length is a check of the params:
tests/rnnflow/comparisons/test_plan.py, and its exit code tests/rnnflow/test_cli.py; the
folder's three spellings: tests/rnnflow/data/test_download.py; explain of an unknown run:
tests/rnnflow/test_cli.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import rnnflow_here, synthetic_reviews, tiny_grid_args, write_folder
from tests.rnnflow.insight.test_explain import check_page

pytestmark = pytest.mark.slow

# Texts of very different lengths: scored together, each is padded to the longest.
TEXTS = ["wonderful", "The plot was dull and the acting was a mess, boring from start to end. "
         "I hated it, a waste of a film.", "A superb, moving story; I loved it.", "it was"]

# One point each, one run of the command for the six; "truncated" is last, so it is the
# experiment's latest run.
VARIANTS = {
    "one_hot": "{embedding.source: onehot, embedding.max_tokens: 30}",
    "no_maxlen": "{pad.maxlen: null, model.return_sequences: false, model.cell: gru}",
    "bucketed": "{pad.bucket: true, pad.padding: pre, model.return_sequences: false, "
                "model.kernel: keras, embedding.source: onehot}",
    # The small-corpus settings: subword vectors, vectors learned from scratch, pooling over
    # time of a masked bidirectional layer.
    "fasttext": "{embedding.source: fasttext, embedding.min_count: 1, embedding.epochs: 1, "
                "pad.maxlen: null, model.pooling: max, model.bidirectional: true, "
                "model.cell: gru}",
    "learned": "{embedding.source: learned, embedding.max_tokens: 25, pad.bucket: true, "
               "model.pooling: mean}",
    # The lesson's Flatten network trained with the loss at every step (train.loss_steps).
    "every_step": "{train.loss_steps: all, pad.maxlen: 20}",
    # maxlen 12: most synthetic reviews are longer, so the mistakes have truncated tokens.
    "truncated": "{pad.maxlen: 12, evaluate.mistakes: 5}",
}


@dataclass(frozen=True)
class Scenario:
    project: Path
    url: str  # the folder the run read
    client: MlflowClient
    runs: dict[str, object]  # the child run of each variant, by VARIANTS' name

    def artifact(self, variant: str, path: str) -> Path:
        return Path(self.client.download_artifacts(self.runs[variant].info.run_id, path,
                                                   str(self.project)))

    def stage(self, variant: str, stage: str) -> Path:
        """The folder of the stage that `variant`'s run used."""
        key = self.runs[variant].data.tags[f"stage.{stage}"]
        return self.project / "data" / stage / key


def _variant(run) -> str:
    params = run.data.params
    if params["embedding.source"] in ("fasttext", "learned"):
        return params["embedding.source"]
    if params["train.loss_steps"] == "all":
        return "every_step"
    if params["pad.bucket"] == "True":
        return "bucketed"
    return {"None": "no_maxlen", "12": "truncated"}.get(params["pad.maxlen"], "one_hot")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, prefect_api_url) -> Iterator[Scenario]:
    project = tmp_path_factory.mktemp("inputs")
    # The folder that holds aclImdb/, as a user who extracted the archive there names it.
    folder = write_folder(tmp_path_factory.mktemp("extracted"), synthetic_reviews(20))
    done = rnnflow_here(project, *tiny_grid_args(
        folder, f"variants=[{', '.join(VARIANTS.values())}]"), api_url=prefect_api_url)
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
    predicted = rnnflow_here(scenario.project, "predict", "--run", run.info.run_id,
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


def test_subword_vectors_give_unseen_words_a_vector_and_predict_reads_them(scenario):
    run = scenario.runs["fasttext"]
    table = pq.read_table(scenario.stage("fasttext", "embeddings") / "table.parquet")
    tokens = pq.read_table(scenario.stage("fasttext", "tokens") / "tokens.parquet")
    train = tokens.filter(pa.compute.equal(tokens["split"], "train"))
    seen = set(pa.compute.list_flatten(train["tokens"]).to_pylist())
    corpus = set(pa.compute.list_flatten(tokens["tokens"]).to_pylist())
    # Every token of the corpus has a vector, the val and test splits' own ones among them.
    assert set(table["token"].to_pylist()) == corpus and corpus - seen
    assert run.data.metrics["oov_rate"] == 0
    text_model = _text_model(scenario.project, run.info.run_id)
    _scores_do_not_depend_on_the_batch(text_model)  # the max leaves the padding out
    unseen = sorted(corpus - seen)[0]
    predicted = rnnflow_here(scenario.project, "predict", "--run", run.info.run_id,
                            f"wonderful {unseen}")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert f"wonderful {unseen}" in predicted.stdout


def test_learned_vectors_are_trained_over_the_capped_vocabulary(scenario):
    run = scenario.runs["learned"]
    table = pq.read_table(scenario.stage("learned", "embeddings") / "table.parquet")
    assert table.num_rows == 25 and run.data.params["embedding.trainable"] == "True"
    dim = int(run.data.params["embedding.vector_size"])
    n = int(run.data.params["model.num_neurons"])
    # The 26 x dim table (padding row included) is trained with the SimpleRNN and the head
    # over the mean of its steps: n values, not maxlen x n.
    assert run.data.metrics["trainable_params"] == 26 * dim + dim * n + n * n + n + n + 1
    _scores_do_not_depend_on_the_batch(_text_model(scenario.project, run.info.run_id))


def test_run_logs_report_card_checks_and_traced_mistakes(scenario):
    run = scenario.runs["truncated"]
    artifacts = {a.path for a in scenario.client.list_artifacts(run.info.run_id)}
    assert {"report.html", "model_card.md", "checks_failures.csv",
            "confident_mistakes.csv"} <= artifacts
    page = scenario.artifact("truncated", "report.html").read_text()
    parsed = check_page(page)
    assert len([t for t, _ in parsed.tags if t == "img"]) == 3
    assert 'class="tok seen"' in page and 'class="tok truncated"' in page
    for key in ("checks_mft", "checks_inv", "checks_dir", "mistakes_lost_sentiment_share"):
        assert 0.0 <= run.data.metrics[key] <= 1.0, key
    mistakes = pd.read_csv(scenario.artifact("truncated", "confident_mistakes.csv"))
    assert {"oov_tokens", "truncated_tokens", "strongest_words", "lost_words",
            "lost_sentiment"} <= set(mistakes.columns)
    assert (mistakes.truncated_tokens > 0).any()
    assert run.data.metrics["mistakes_lost_sentiment_share"] == pytest.approx(
        mistakes.lost_sentiment.mean())
    card = scenario.artifact("truncated", "model_card.md").read_text()
    assert "# Model card: tiny-grid" in card and "maxlen 12" in card
    assert "## Known failure patterns" in card and "## Limitations" in card
    failures = pd.read_csv(scenario.artifact("truncated", "checks_failures.csv"))
    assert set(failures.kind) <= {"mft", "inv", "dir"}


def test_explain_command_prints_tokens_and_writes_html(scenario):
    out_html = scenario.project / "explained.html"
    texts = scenario.project / "texts.txt"
    texts.write_text("A dull , boring mess .\n")
    long = " ".join(["the film was wonderful"] * 5) + " and awful"
    done = rnnflow_here(scenario.project, "explain", "--run", "latest", "--experiment",
                       "tiny-grid", "--file", str(texts), "--html", str(out_html),
                       "The movie was wonderful and superb .", long)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"# run {scenario.runs['truncated'].info.run_id}" in done.stderr
    out = done.stdout
    assert "\x1b[" not in out  # not a TTY: no colour
    assert re.search(r"^  wonderful\s+[+-]\d\.\d{4}", out, re.M)  # a seen token, attributed
    assert re.search(r"^  awful\s+truncated$", out, re.M)  # past maxlen 12 (post)
    assert re.search(r"^  <pad>\s+\d+ positions$", out, re.M)
    assert out.count("text ") >= 3 and "tokens seen" in out
    page = out_html.read_text()
    assert page.count('class="text"') == 3 and 'class="tok truncated"' in page


def test_the_loss_at_every_step_trains_predicts_and_unrolls(scenario):
    run = scenario.runs["every_step"]
    assert 0 <= run.data.metrics["test_accuracy"] <= 1
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(run.data.metrics)
    _scores_do_not_depend_on_the_batch(_text_model(scenario.project, run.info.run_id))
    card = scenario.artifact("every_step", "model_card.md").read_text()
    assert "Loss: at every step" in card
    for variant, note in (("every_step", "the loss scored"), ("truncated", "never trained")):
        done = rnnflow_here(scenario.project, "explain", "--unrolled", "--run",
                           scenario.runs[variant].info.run_id, "wonderful film , awful")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "unrolled:" in done.stdout and note in done.stdout, variant
        rows = re.findall(r"^\s+(\d+)  (\S+)\s+(\d\.\d{4})$", done.stdout, re.M)
        assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)) and rows
        probability = float(re.search(r"^text 1: (\d\.\d{3})", done.stdout, re.M)[1])
        assert float(rows[-1][2]) == pytest.approx(probability, abs=6e-4)  # the prediction
