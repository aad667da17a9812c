"""End to end: a tiny `rnnflow run` logs report.html, model_card.md, the checks and the traced
mistakes; `rnnflow explain` explains texts with its model through the real CLI. (An unknown
run's exit 2: tests/rnnflow/test_cli.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import rnnflow_cli, run_tiny_grid, synthetic_reviews, write_tar
from tests.rnnflow.insight.test_explain import check_page


@dataclass(frozen=True)
class TinyRun:
    project: Path
    client: MlflowClient
    run: object

    def artifact(self, path: str) -> Path:
        return Path(self.client.download_artifacts(self.run.info.run_id, path,
                                                   str(self.project)))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Iterator[TinyRun]:
    project = tmp_path_factory.mktemp("explain")
    archive = write_tar(project / "aclImdb_tiny.tar.gz", synthetic_reviews(20))
    # maxlen 12: most synthetic reviews are longer, so the mistakes have truncated tokens.
    done = run_tiny_grid(project, archive, "pad.maxlen=12", "evaluate.mistakes=5")
    assert done.returncode == 0, done.stdout[-3000:]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny-grid").experiment_id])
    yield TinyRun(project, client, run)


@pytest.mark.slow
def test_run_logs_report_card_checks_and_traced_mistakes(tiny_run):
    run = tiny_run.run
    artifacts = {a.path for a in tiny_run.client.list_artifacts(run.info.run_id)}
    assert {"report.html", "model_card.md", "checks_failures.csv",
            "confident_mistakes.csv"} <= artifacts
    page = tiny_run.artifact("report.html").read_text()
    parsed = check_page(page)
    assert len([t for t, _ in parsed.tags if t == "img"]) == 3
    assert 'class="tok seen"' in page and 'class="tok truncated"' in page
    for key in ("checks_mft", "checks_inv", "checks_dir", "mistakes_lost_sentiment_share"):
        assert 0.0 <= run.data.metrics[key] <= 1.0, key
    mistakes = pd.read_csv(tiny_run.artifact("confident_mistakes.csv"))
    assert {"oov_tokens", "truncated_tokens", "strongest_words", "lost_words",
            "lost_sentiment"} <= set(mistakes.columns)
    assert (mistakes.truncated_tokens > 0).any()
    assert run.data.metrics["mistakes_lost_sentiment_share"] == pytest.approx(
        mistakes.lost_sentiment.mean())
    card = tiny_run.artifact("model_card.md").read_text()
    assert "# Model card: tiny-grid" in card and "maxlen 12" in card
    assert "## Known failure patterns" in card and "## Limitations" in card
    failures = pd.read_csv(tiny_run.artifact("checks_failures.csv"))
    assert set(failures.kind) <= {"mft", "inv", "dir"}


@pytest.mark.slow
def test_explain_command_prints_tokens_and_writes_html(tiny_run):
    out_html = tiny_run.project / "explained.html"
    texts = tiny_run.project / "texts.txt"
    texts.write_text("A dull , boring mess .\n")
    long = " ".join(["the film was wonderful"] * 5) + " and awful"
    done = rnnflow_cli(tiny_run.project, "explain", "--run", "latest", "--experiment",
                       "tiny-grid", "--file", str(texts), "--html", str(out_html),
                       "The movie was wonderful and superb .", long)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"# run {tiny_run.run.info.run_id}" in done.stderr
    out = done.stdout
    assert "\x1b[" not in out  # not a TTY: no colour
    assert re.search(r"^  wonderful\s+[+-]\d\.\d{4}", out, re.M)  # a seen token, attributed
    assert re.search(r"^  awful\s+truncated$", out, re.M)  # past maxlen 12 (post)
    assert re.search(r"^  <pad>\s+\d+ positions$", out, re.M)
    assert out.count("text ") >= 3 and "tokens seen" in out
    page = out_html.read_text()
    check_page_parts = page.count('class="text"')
    assert check_page_parts == 3 and 'class="tok truncated"' in page
