"""`make bench` runs end to end on a tiny cut of the sample archive. Only that it runs and
reports every contender is checked here: its figures are benchmarks, never timed tests.
Smoke tests: `make smoke` runs them, `make test` does not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import REPO, SAMPLE

pytestmark = [pytest.mark.slow, pytest.mark.smoke]


def test_make_bench_reports_every_contender_and_the_kernels(tmp_path):
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} is not present")
    done = subprocess.run(
        ["make", "--no-print-directory", "bench", f"DATA={SAMPLE}",
         # (e)-(g) are (d) with one or two settings changed, each run end to end by the flow
         # tests (kernel: keras, pad.bucket): left out here for time.
         "BENCH_ARGS=--tiny --only book,script,cold,warm,kernels "
         f"--work {tmp_path / 'work'} --out {tmp_path / 'out'}"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    (report,) = (tmp_path / "out").glob("*-tiny.json")
    result = json.loads(report.read_text())
    assert list(result["results"]) == ["book", "script", "cold", "warm"]
    for name, row in result["results"].items():
        assert row["wall_s"] > 0 and row["peak_rss_mb"] > 50, name
        assert row["stages"]["fit"] > 0 and row["train_samples_per_s"] > 0, name
        assert 0 <= row["test_accuracy"] <= 1, name
    assert result["results"]["book"]["mb_per_doc"] > 0
    # The warm run found every preprocessing step cached: it cannot have tokenized again.
    warm, cold = result["results"]["warm"], result["results"]["cold"]
    assert warm["stages"]["tokenize"] < cold["stages"]["tokenize"]
    assert set(result["targets"]) == {"cold_vs_script_wall", "cold_peak_rss_mb",
                                      "warm_preprocess_s", "tokenize_speedup",
                                      "fit_samples_ratio",
                                      "kernel_fit_simple_rnn"}  # --tiny compares one cell
    assert set(result["kernels"]) == {"simple_rnn"}
    for cell, row in result["kernels"].items():
        assert row["fused_fit_samples_per_s"] > 0 and row["keras_predict_samples_per_s"] > 0, cell
    table = (tmp_path / "out" / report.name.replace(".json", ".md")).read_text()
    assert "(c) rnnflow cold" in table and "| target |" in table
    assert "| simple_rnn(50) |" in table
    assert "(c) rnnflow cold" in done.stdout  # the table is printed, not only written


def test_the_gpu_bench_measures_each_cell_on_this_machine(tmp_path):
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} is not present")
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--limit", "40", "--epochs", "1", "--maxlen", "50",
         "--dim", "16", "--cells", "simple_rnn,gru", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    # The CPU rows always; a GPU's too where one is visible.
    cpu = [r for r in rows if r["device"] == "cpu"]
    assert [r["cell"] for r in cpu] == ["simple_rnn", "gru"]
    for r in rows:
        assert r["fit_samples_per_s"] > 0 and r["predict_samples_per_s"] > 0
        assert 0 <= r["test_accuracy"] <= 1 and r["kernel"] in ("fused", "keras")
    assert all(r["kernel"] == "fused" for r in cpu)  # a CPU machine's choice
    assert "| simple_rnn | cpu" in done.stdout
