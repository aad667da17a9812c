"""Would training in a lean child process lower a run's peak memory? Both ways, measured.

    python -m bench.lean_child --data ../shared/data/aclImdb_labeled.tar.gz [--json FILE]

Two runs of the lesson (`params/lesson16.yaml` with word2vec trained on the corpus), each from
an empty data folder, in a fresh process that first imports what the flow process imports
(Prefect, MLflow and the flow module), then preprocesses (read, tokenize in worker processes,
word2vec, ids, padding) with rnnflow's step functions:

- inline: the same process then trains and evaluates, as `rnnflow run` does;
- child: it hands training and evaluation to a child process that imports only TensorFlow and
  the step code (`rnnflow.network.train`, `rnnflow.network.evaluate`), and waits for it.

Neither starts Prefect's server or logs to MLflow: both would add the same to either way.
Printed for each: wall time and the peak RSS of the whole process tree (bench/peak_rss.py), and
for the child way, the parent's RSS while the child trained.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import REPO, SAMPLE
from bench.peak_rss import measure


def _experiment(archive: Path):
    from rnnflow.comparisons.plan import load_plan

    plan = load_plan(REPO / "params" / "lesson16.yaml",
                     {"dataset.url": str(archive), "embedding.source": "train"})
    return plan.base


def _train_and_evaluate(experiment, padded, embeddings) -> dict:
    from rnnflow.network.evaluate import evaluate_model
    from rnnflow.network.train import train_model

    with tempfile.TemporaryDirectory() as scratch:
        model, fit = train_model(padded=padded, embeddings=embeddings,
                                 model_cfg=experiment.model, train_cfg=experiment.train,
                                 checkpoint_dir=Path(scratch))
    started = time.perf_counter()
    metrics = evaluate_model(model, padded).metrics
    return {"fit_seconds": fit.fit_seconds, "eval_seconds": time.perf_counter() - started,
            "val_accuracy": metrics["val_accuracy"], "test_accuracy": metrics["test_accuracy"]}


def _run(archive: Path, mode: str, out: Path) -> None:
    """The measured process: flow-process imports, preprocessing, then training here or in a
    lean child."""
    import mlflow  # noqa: F401 - what the flow process holds
    import prefect  # noqa: F401
    import psutil

    import flows.train_rnn  # noqa: F401
    from rnnflow.data import tokens
    from rnnflow.data.download import download_dataset
    from rnnflow.data.embeddings import build_embeddings
    from rnnflow.data.pad import pad_sequences
    from rnnflow.data.reviews import read_reviews
    from rnnflow.data.vectorize import vectorize_tokens

    exp = _experiment(archive)
    path, digest = download_dataset(exp.dataset.url)
    tokens.start_early(digest, exp.dataset, exp.tokenize)
    toks = tokens.tokenize_reviews(read_reviews(path, digest, exp.dataset), exp.tokenize)
    emb = build_embeddings(toks, exp.embedding, seed=exp.dataset.seed)
    padded = pad_sequences(vectorize_tokens(toks, emb)[0], exp.pad)
    result: dict = {}
    if mode == "inline":
        result = _train_and_evaluate(exp, padded, emb)
    else:
        from rnnflow.memory import release_memory

        release_memory()
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.lean_child", "--role", "train", "--data", str(archive),
             "--out", str(out), "--stages", str(padded.path), str(emb.path)], cwd=REPO)
        me, parent_peak = psutil.Process(), 0
        while child.poll() is None:
            parent_peak = max(parent_peak, me.memory_info().rss)
            time.sleep(0.05)
        if child.returncode:
            sys.exit(f"the training child failed ({child.returncode})")
        result = json.loads(out.read_text())
        result["parent_rss_while_training_mb"] = round(parent_peak / 2**20)
    out.write_text(json.dumps(result))


def _train_child(archive: Path, out: Path, padded_path: Path, emb_path: Path) -> None:
    """The lean child: no Prefect, MLflow, gensim or NLTK."""
    from rnnflow.data.storage import Stage

    def stage(path: Path) -> Stage:
        return Stage(path.parent.name, path.name, path.parent.parent)

    result = _train_and_evaluate(_experiment(archive), stage(padded_path), stage(emb_path))
    heavy = [m for m in ("prefect", "mlflow", "gensim", "nltk") if m in sys.modules]
    out.write_text(json.dumps({**result, "child_imported": heavy}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SAMPLE)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--role", choices=["bench", "run", "train"], default="bench",
                        help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["inline", "child"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stages", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    archive = args.data.resolve()
    if args.role == "run":
        return _run(archive, args.mode, args.out)
    if args.role == "train":
        return _train_child(archive, args.out, *args.stages)

    work = Path(tempfile.mkdtemp(prefix="rnnflow-bench-lean-"))
    results = {}
    for mode in ("inline", "child"):
        folder = work / mode
        folder.mkdir()
        env = {**os.environ, "RNNFLOW_DATA_DIR": str(folder / "data"),
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = folder / "result.json"
        with open(folder / "run.log", "w") as log:
            measured = measure([sys.executable, "-m", "bench.lean_child", "--role", "run",
                                "--mode", mode, "--data", str(archive), "--out", str(out)],
                               env=env, cwd=str(REPO), output=log,
                               timeline=str(folder / "timeline.txt"))
        if measured["returncode"]:
            sys.exit(f"{mode} failed; see {folder / 'run.log'}")
        results[mode] = {"wall_s": round(measured["wall_s"], 1),
                         "peak_rss_mb": round(measured["peak_rss_mb"]),
                         **json.loads(out.read_text())}
        print(f"{mode:>6}: {json.dumps(results[mode])}", flush=True)
    print(f"child / inline peak RSS: "
          f"{results['child']['peak_rss_mb'] / results['inline']['peak_rss_mb']:.2f}; "
          f"timelines under {work}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"archive": str(archive), "results": results},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
