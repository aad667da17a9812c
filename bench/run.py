"""`make bench`: the lesson's work done four ways on one machine, in one sitting, side by side.

    (a) book      the book's script (docs x maxlen x dim float arrays) on a sample of --book-docs
    (b) script    a careful hand-written Keras script: ids, a frozen Embedding, no tracking
    (c) cold      `rnnflow run` with an empty data cache and a new MLflow store
    (d) warm      `rnnflow run` again with only model.num_neurons changed
    (e) stock     (d) with the stock Keras recurrent layers (`model.kernel: keras`)
    (f) last      (d) keeping the last state (`model.return_sequences: false`), no Flatten
    (g) bucketed  (f) with batches drawn from length buckets, each trimmed to its longest
                  review and masked (`pad.bucket: true`): (g) against (f) is what bucketing
                  saves, the model otherwise the same

and, apart, `python -m bench.kernels`: fit and predict samples/s of the fused against the stock
layers for simple_rnn, gru and lstm on the lesson's shapes.

The work: train on the train split (80%, the rest validates), the lesson's SimpleRNN for 2 epochs,
word2vec trained on the train split, then score the whole test split. Each contender runs as its
own process tree under bench/peak_rss.py's meter (wall time, peak RSS summed over the tree).
Results go to bench/results/<date>.json and .md, and the markdown table is printed.

    python -m bench.run --data ../shared/data/aclImdb_labeled.tar.gz
    python -m bench.run --tiny            # seconds, not minutes: what the test suite runs
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

from bench import REPO, SAMPLE
from bench.peak_rss import measure
from bench.peers import add_lesson_args

HERE = Path(__file__).resolve().parent
# Stages every contender is reported in; "other" is wall time no stage accounts for
# (interpreter start, imports, Prefect's temporary server, MLflow's store).
STAGES = ("read", "tokenize", "word2vec", "ids", "model", "fit", "test", "tracking", "other")
TARGETS_DOC = {
    "cold_vs_script_wall": "(c)/(b) wall time <= 0.7",
    "fused_fit_ratio": "(d)/(e) fit samples/s, fused over stock >= 2.0",
    "fused_eval_ratio": "(e)/(d) evaluation (val + test) time, stock over fused >= 2.0",
    "cold_peak_rss_mb": "(c) peak RSS <= 1536 MB",
    "warm_preprocess_s": "(d) preprocessing before training <= 3 s",
    "tokenize_speedup": "(c) tokenize docs/s >= 1.7x single-process NLTK (b)",
    "fit_samples_ratio": "(c) training samples/s >= 0.95x plain model.fit (b)",
    "kernel_fit_simple_rnn": "fused SimpleRNN(50) fit samples/s >= 2.0x stock",
    "kernel_fit_gru": "fused GRU(64) fit samples/s >= 1.5x stock",
    "kernel_fit_lstm": "fused LSTM(50) fit samples/s >= 1.5x stock",
}
LIMITS = {"cold_vs_script_wall": (None, 0.7), "cold_peak_rss_mb": (None, 1536),
          "fused_fit_ratio": (2.0, None), "fused_eval_ratio": (2.0, None),
          "warm_preprocess_s": (None, 3.0), "tokenize_speedup": (1.7, None),
          "fit_samples_ratio": (0.95, None), "kernel_fit_simple_rnn": (2.0, None),
          "kernel_fit_gru": (1.5, None), "kernel_fit_lstm": (1.5, None)}


def _protocol(args: argparse.Namespace) -> list[str]:
    out = ["--maxlen", str(args.maxlen), "--dim", str(args.dim), "--epochs", str(args.epochs),
           "--neurons", str(args.neurons)]
    return out + (["--limit", str(args.limit)] if args.limit else [])


def _rnnflow_sets(args: argparse.Namespace, neurons: int, kernel: str,
                  extra: dict | None = None) -> list[str]:
    sets = {"dataset.url": Path(args.data).resolve().as_uri(), "embedding.source": "train",
            "pad.maxlen": args.maxlen, "embedding.vector_size": args.dim,
            "train.epochs": args.epochs, "model.num_neurons": neurons, "model.kernel": kernel,
            # The contenders are the lesson's pipeline alone: the baselines, which a run fits
            # first and which would tokenize for the point, have their own bench
            # (bench/baselines.py) and their cost within a run its own figure (bench/NOTES.md).
            "baselines": "none", **(extra or {})}
    if args.limit:
        sets["dataset.limit"] = args.limit
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def run_peer(name: str, script: str, extra: list[str], work: Path) -> dict:
    out = work / f"{name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", f"bench.{script}", *extra, "--json", str(out)]
    print(f"\n== {name}: {' '.join(cmd)}", flush=True)
    meter = measure(cmd)
    if meter["returncode"] != 0:
        raise SystemExit(f"{name} failed with exit code {meter['returncode']}")
    own = json.loads(out.read_text())
    stages = dict(own["stages"])
    if "vectorize" in stages:  # the book tokenizes and vectorizes in one pass
        stages["ids"] = stages.pop("vectorize")
    stages["fit"] = stages.pop("train")
    return {"wall_s": meter["wall_s"], "peak_rss_mb": meter["peak_rss_mb"], "stages": stages,
            **own["figures"]}


def run_rnnflow(name: str, args: argparse.Namespace, neurons: int, work: Path,
                kernel: str = "fused", extra: dict | None = None) -> dict:
    env = {**os.environ, "RNNFLOW_DATA_DIR": str(work / "data"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
           "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if args.src:  # another checkout's rnnflow, flows and tasks, for before/after comparisons
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    cmd = [str(Path(sys.executable).parent / "rnnflow"), "run", str(REPO / "params" /
           "lesson16.yaml"), *_rnnflow_sets(args, neurons, kernel, extra), "--fresh"]
    print(f"\n== {name}: {' '.join(cmd)}", flush=True)
    meter = measure(cmd, env=env, cwd=work)
    if meter["returncode"] != 0:
        raise SystemExit(f"{name} failed with exit code {meter['returncode']}")
    # A --src checkout older than the per-step metrics reports wall time and memory only.
    m = collections.defaultdict(lambda: float("nan"), _latest_metrics(work / "mlflow.db"))
    stages = {"read": m["seconds_download"] + m["seconds_read"],
              "tokenize": m["seconds_tokenize"], "word2vec": m["seconds_embed"],
              "ids": m["seconds_vectorize"] + m["seconds_pad"],
              "model": m["seconds_train"] - m["fit_seconds"], "fit": m["fit_seconds"],
              "test": m["seconds_evaluate"], "tracking": m["seconds_log"]}
    return {"wall_s": meter["wall_s"], "peak_rss_mb": meter["peak_rss_mb"], "stages": stages,
            "preprocess_s": m["preprocess_seconds"],
            "train_samples_per_s": m["train_samples_per_s"],
            "val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"]}


def _latest_metrics(db: Path) -> dict[str, float]:
    """The newest run's metrics, read from the store the way `mlflow ui` would."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    run = client.search_runs(experiments, order_by=["attributes.start_time DESC"],
                             max_results=1)[0]
    return run.data.metrics


def run_kernels(args: argparse.Namespace, work: Path) -> dict:
    out = work / "kernels.json"
    out.unlink(missing_ok=True)
    # --tiny: one cell, to see the comparison run; every cell's equivalence is tested apart.
    # Best of 4 alternating runs: on 2 shared cores one cell's ratio moved by 0.7 between two
    # best-of-2 sittings ten minutes apart (SimpleRNN 2.12x, then 1.35x).
    size = (["--samples", "64", "--predict-samples", "64", "--repeat", "1",
             "--cells", "simple_rnn"] if args.tiny
            else ["--samples", "2000", "--predict-samples", "5000", "--repeat", "4"])
    cmd = [sys.executable, "-m", "bench.kernels", "--maxlen", str(args.maxlen), *size,
           "--json", str(out)]
    print(f"\n== kernels: {' '.join(cmd)}", flush=True)
    meter = measure(cmd)
    if meter["returncode"] != 0:
        raise SystemExit(f"kernels failed with exit code {meter['returncode']}")
    return {row["cell"]: row for row in json.loads(out.read_text())["rows"]}


def summarise(results: dict, n_docs: int) -> dict[str, float]:
    b, c, d = results.get("script"), results.get("cold"), results.get("warm")
    e = results.get("stock")
    out: dict[str, float] = {}
    if d and e:
        out["fused_fit_ratio"] = d["train_samples_per_s"] / e["train_samples_per_s"]
        out["fused_eval_ratio"] = e["stages"]["test"] / d["stages"]["test"]
    if b and c:
        out["cold_vs_script_wall"] = c["wall_s"] / b["wall_s"]
        out["tokenize_speedup"] = (n_docs / c["stages"]["tokenize"]) / b["tokenize_docs_per_s"]
        out["fit_samples_ratio"] = c["train_samples_per_s"] / b["train_samples_per_s"]
    if c:
        out["cold_peak_rss_mb"] = c["peak_rss_mb"]
    if d:
        out["warm_preprocess_s"] = d["preprocess_s"]
    return out


def _met(key: str, value: float) -> str:
    low, high = LIMITS[key]
    ok = (low is None or value >= low) and (high is None or value <= high)
    return "met" if ok else "NOT met"


def markdown(results: dict, targets: dict, meta: dict, kernels: dict) -> str:
    labels = {"book": "(a) book script", "script": "(b) hand-written",
              "cold": "(c) rnnflow cold", "warm": "(d) rnnflow warm",
              "stock": "(e) warm, stock Keras layers", "last": "(f) warm, last state",
              "bucketed": "(g) warm, last state, bucketed"}
    base = results.get("script")
    lines = [f"# bench {meta['date']}: {meta['data']}", "",
             f"{meta['machine']}; book script on {meta['book_docs']} sampled docs", "",
             "| | wall s | x (b) | peak RSS MB | x (b) | " + " | ".join(STAGES)
             + " | fit samples/s | val acc | test acc |",
             "|---" * (len(STAGES) + 8) + "|"]
    for key, row in results.items():
        stages = dict(row["stages"])
        stages["other"] = max(0.0, row["wall_s"] - sum(stages.values()))
        ratio_w = f"{row['wall_s'] / base['wall_s']:.2f}" if base else ""
        ratio_m = f"{row['peak_rss_mb'] / base['peak_rss_mb']:.2f}" if base else ""
        cells = [f"{stages[s]:.1f}" if s in stages else "" for s in STAGES]
        lines.append(f"| {labels[key]} | {row['wall_s']:.1f} | {ratio_w} | "
                     f"{row['peak_rss_mb']:.0f} | {ratio_m} | " + " | ".join(cells)
                     + f" | {row.get('train_samples_per_s', 0):.0f} | "
                     f"{row.get('val_accuracy', float('nan')):.4f} | "
                     f"{row.get('test_accuracy', float('nan')):.4f} |")
    if "book" in results:
        lines += ["", f"(a) holds {results['book']['mb_per_doc']:.2f} MB per review "
                      f"({results['book']['array_dtype']} arrays)."]
    if kernels:
        lines += ["", "Fused against stock Keras layers (`python -m bench.kernels`, maxlen "
                  f"{meta['args']['maxlen']}, batch 32, 300-d inputs):", "",
                  "| cell | fit samples/s fused | stock | ratio | predict samples/s fused | "
                  "stock | ratio |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {cell}({r['units']}) | {r['fused_fit_samples_per_s']:.0f} | "
                  f"{r['keras_fit_samples_per_s']:.0f} | {r['fit_speedup']:.2f} | "
                  f"{r['fused_predict_samples_per_s']:.0f} | "
                  f"{r['keras_predict_samples_per_s']:.0f} | {r['predict_speedup']:.2f} |"
                  for cell, r in kernels.items()]
    lines += ["", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {TARGETS_DOC[k]} | {v:.2f} | {_met(k, v)} |" for k, v in targets.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SAMPLE), help="aclImdb .tar.gz")
    parser.add_argument("--book-docs", type=int, default=2000,
                        help="reviews the book script samples from each of train and test")
    parser.add_argument("--limit", type=int, help="reviews per split for (b)-(d); default all")
    add_lesson_args(parser)
    parser.add_argument("--only", default="book,script,cold,warm,stock,last,bucketed,kernels",
                        help="comma-separated subset of "
                        "book,script,cold,warm,stock,last,bucketed,kernels")
    parser.add_argument("--tiny", action="store_true",
                        help="a smoke run: 200 reviews per split, maxlen 50, 16-d, 1 epoch")
    parser.add_argument("--src", help="run (c) and (d) from this checkout of rnnflow instead of "
                        "the installed one: `git worktree add /tmp/before <commit>`")
    parser.add_argument("--work", default=str(HERE / ".work"), help="scratch folder")
    parser.add_argument("--out", default=str(HERE / "results"), help="where results are written")
    args = parser.parse_args()
    if args.tiny:
        args.limit, args.maxlen, args.dim, args.epochs, args.book_docs = 200, 50, 16, 1, 100
    if not Path(args.data).is_file():
        raise SystemExit(f"--data {args.data}: no such file (DATA= picks the archive)")
    only = args.only.split(",")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict] = {}
    if "book" in only:
        results["book"] = run_peer("book", "book_style", ["--data", args.data, "--docs",
                                   str(args.book_docs), *_protocol(args)], work)
    if "script" in only:
        results["script"] = run_peer("script", "handwritten",
                                     ["--data", args.data, *_protocol(args)], work)
    if "cold" in only:
        shutil.rmtree(work / "data", ignore_errors=True)  # cold: nothing cached, a new store
        shutil.rmtree(work / "mlruns", ignore_errors=True)
        (work / "mlflow.db").unlink(missing_ok=True)
        results["cold"] = run_rnnflow("cold", args, args.neurons, work)
    if "warm" in only:
        results["warm"] = run_rnnflow("warm", args, args.neurons + 10, work)
    if "stock" in only:
        results["stock"] = run_rnnflow("stock", args, args.neurons + 10, work, kernel="keras")
    last_state = {"model.return_sequences": "false"}
    if "last" in only:
        results["last"] = run_rnnflow("last", args, args.neurons + 10, work, extra=last_state)
    if "bucketed" in only:
        results["bucketed"] = run_rnnflow("bucketed", args, args.neurons + 10, work,
                                          extra={**last_state, "pad.bucket": "true"})
    kernels = run_kernels(args, work) if "kernels" in only else {}

    n_docs = results.get("script", {}).get("docs", 0)
    targets = summarise(results, n_docs)
    for cell, row in kernels.items():  # the per-cell targets: simple_rnn >= 2x, the others 1.5x
        targets[f"kernel_fit_{cell}"] = row["fit_speedup"]
    today = dt.date.today().isoformat()
    meta = {"date": today, "data": Path(args.data).name, "book_docs": args.book_docs,
            "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
            "args": vars(args)}
    table = markdown(results, targets, meta, kernels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (today + ("-tiny" if args.tiny else ""))
    stem.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "results": results, "kernels": kernels, "targets": targets}, indent=2,
        default=str))
    stem.with_suffix(".md").write_text(table)
    print("\n" + table)
    print(f"written: {stem}.json, {stem}.md")


if __name__ == "__main__":
    main()
