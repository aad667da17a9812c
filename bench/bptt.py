"""The lesson's two ways of backpropagating through time, measured (issue 31).

Three parts:

* `sitting`: `rnnflow run bench/bptt.yaml` on an archive (the full one for the figures in the
  docs), then `summary` of the experiment it filled;
* `summary`: from an experiment's finished runs: per network and way, test and val accuracy
  (mean ± std over the seeds), the epoch with the best val accuracy ("epochs needed", out of
  those trained), seconds per epoch and fit samples/s; per network the better way against the
  vanilla way on the shared test reviews: paired 95% bootstrap interval of the accuracy
  difference (score: share of seeds right per review) and McNemar's p per seed pair;
* `throughput`: the fit throughput of the better way against the vanilla way for the same
  network (and against the vanilla way on the masked network, since `all` masks padding), with
  the fused kernel, alternating them on the same synthetic batches (Zipf token ids as
  bench/kernels.py draws them, 300-d random vectors, maxlen 400, batch 32), best of --repeat:
  what the loss at every step costs, apart from the machine's load.

    python -m bench.bptt sitting --data ../shared/data/aclImdb_labeled.tar.gz
        [--project DIR] [--json bench/results/bptt.json]
    python -m bench.bptt summary --project DIR [--json ...]
    python -m bench.bptt throughput [--samples 1600] [--repeat 3]

Prints markdown tables; with --json also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import numpy as np  # noqa: E402

PLAN = Path(__file__).with_name("bptt.yaml")
NETWORKS = {  # (cell, return_sequences): the name in the tables
    ("simple_rnn", "False"): "SimpleRNN(50), last state, maxlen 400",
    ("simple_rnn", "True"): "the lesson: SimpleRNN(50), Flatten",
    ("gru", "False"): "GRU(50), last state, maxlen 400",
}


# --- the sitting's runs ---------------------------------------------------------------------------
def _training_runs(project: Path, experiment: str):
    from mlflow.tracking import MlflowClient

    from rnnflow.tracking import BASELINE, KIND_TAG

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} in {project / 'mlflow.db'}")
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'")
    return client, [r for r in runs if "train.loss_steps" in r.data.params
                    and r.data.tags.get(KIND_TAG) != BASELINE
                    and "test_accuracy" in r.data.metrics]


def _history(client, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key),
                                    key=lambda m: m.step)]


def _right(client, run, folder: Path) -> np.ndarray:
    """Per test review (sorted by id), whether the run got it right."""
    import pandas as pd

    from rnnflow.comparisons.stats import correct

    path = client.download_artifacts(run.info.run_id, "test_predictions.parquet", str(folder))
    return correct(pd.read_parquet(path).sort_values("id", kind="stable"))


def summary(project: Path, experiment: str = "bptt") -> dict:
    import tempfile

    from rnnflow.comparisons.stats import mcnemar_exact, paired_bootstrap

    client, runs = _training_runs(project, experiment)
    groups: dict[tuple[str, str], dict[str, list]] = {}
    for run in runs:
        p = run.data.params
        network = NETWORKS.get((p["model.cell"], p["model.return_sequences"]),
                               f"{p['model.cell']} return_sequences={p['model.return_sequences']}")
        groups.setdefault((network, p["train.loss_steps"]), {"runs": []})["runs"].append(run)
    rows, pairs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        right = {}
        order = list(NETWORKS.values())
        for (network, way), group in sorted(groups.items(), key=lambda item: (
                order.index(item[0][0]) if item[0][0] in order else len(order),
                item[0][0], item[0][1] != "last")):
            found = sorted(group["runs"], key=lambda r: int(r.data.params["train.seed"]))
            m = [r.data.metrics for r in found]
            val = [_history(client, r.info.run_id, "val_accuracy") for r in found]
            epochs = [len(v) for v in val]
            rows.append({
                "network": network, "way": way, "seeds": len(found),
                "test_accuracy": float(np.mean([x["test_accuracy"] for x in m])),
                "test_std": float(np.std([x["test_accuracy"] for x in m], ddof=1))
                if len(m) > 1 else 0.0,
                "val_accuracy": float(np.mean([x["val_accuracy"] for x in m])),
                "epochs_needed": [int(np.argmax(v)) + 1 for v in val],
                "epochs": epochs,
                "seconds_per_epoch": [x["fit_seconds"] / max(n, 1)
                                      for x, n in zip(m, epochs, strict=True)],
                "fit_samples_per_s": [x["train_samples_per_s"] for x in m],
            })
            right[(network, way)] = [_right(client, r, Path(tmp)) for r in found]
        for network in dict.fromkeys(r["network"] for r in rows):  # the rows' order
            if (network, "all") not in right or (network, "last") not in right:
                continue
            every, last = right[(network, "all")], right[(network, "last")]
            diff = paired_bootstrap(np.mean(every, axis=0), np.mean(last, axis=0))
            pairs.append({"network": network, "delta": diff.delta, "low": diff.low,
                          "high": diff.high, "distinguishable": diff.distinguishable,
                          "mcnemar_p": [mcnemar_exact(a, b) for a, b in zip(
                              every, last, strict=False)]})
    return {"rows": rows, "pairs": pairs}


def summary_tables(found: dict) -> str:
    lines = ["| network | loss | seeds | test accuracy | val accuracy | epochs needed (best val, "
             "of trained) | s per epoch | fit samples/s |", "|---|---|---|---|---|---|---|---|"]
    for r in found["rows"]:
        needed = ", ".join(f"{a}/{b}" for a, b in zip(r["epochs_needed"], r["epochs"],
                                                       strict=True))
        lines.append(
            f"| {r['network']} | `{r['way']}` | {r['seeds']} | {r['test_accuracy']:.4f} ± "
            f"{r['test_std']:.4f} | {r['val_accuracy']:.4f} | {needed} | "
            f"{', '.join(f'{s:.0f}' for s in r['seconds_per_epoch'])} | "
            f"{', '.join(f'{s:.0f}' for s in r['fit_samples_per_s'])} |")
    lines += ["", "| network | `all` minus `last`, test accuracy | 95% paired interval | "
              "McNemar p per seed |", "|---|---|---|---|"]
    for p in found["pairs"]:
        lines.append(f"| {p['network']} | {p['delta']:+.4f} | [{p['low']:+.4f}, "
                     f"{p['high']:+.4f}] | {', '.join(f'{v:.2g}' for v in p['mcnemar_p'])} |")
    return "\n".join(lines)


# --- throughput -----------------------------------------------------------------------------------
def throughput(samples: int, repeat: int, seed: int = 0) -> list[dict]:
    """Fit samples/s of `last`, of `last` on the masked network, and of `all` (which masks) for
    each network, fused kernel, alternating: `all` against `last` is what a user switching
    pays; against the masked `last`, what the loss at every step itself costs."""
    import keras

    from bench.kernels import review_ids
    from rnnflow.config import ModelConfig
    from rnnflow.network.model import build_model
    from rnnflow.network.steps import StepAccuracy, StepLoss
    from rnnflow.network.train import loss_for

    rng = np.random.default_rng(seed)
    vectors = rng.normal(scale=0.1, size=(20_001, 300)).astype(np.float32)
    vectors[0] = 0
    x = review_ids(rng, samples, 400)
    y = rng.integers(0, 2, size=samples)
    configs = {"the lesson: SimpleRNN(50), Flatten": ModelConfig(),
               "SimpleRNN(50), last state": ModelConfig(return_sequences=False),
               "GRU(50), last state": ModelConfig(cell="gru", return_sequences=False)}
    ways = {"last": (False, False), "last_masked": (True, False), "all": (True, True)}
    rows = []
    for name, cfg in configs.items():
        best = dict.fromkeys(ways, 0.0)
        models = {}
        for way, (mask, every) in ways.items():
            model = build_model(cfg, vectors, 400, mask=mask, steps=every, seed=1)
            model.compile(optimizer="rmsprop", loss=StepLoss() if every else loss_for(2),
                          metrics=[StepAccuracy()] if every else ["accuracy"])
            model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # traced once
            models[way] = model
        for _ in range(repeat):
            for way, model in models.items():
                started = time.perf_counter()
                model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
                best[way] = max(best[way], samples / (time.perf_counter() - started))
        rows.append({"network": name, **best, "ratio": best["all"] / best["last"],
                     "ratio_masked": best["all"] / best["last_masked"]})
        keras.backend.clear_session()
    return rows


def throughput_table(rows: list[dict]) -> str:
    lines = ["| network (fused kernel) | fit samples/s, `last` | `last`, masked | `all` | "
             "all / last | all / last masked |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['network']} | {r['last']:.0f} | {r['last_masked']:.0f} | {r['all']:.0f} | "
              f"{r['ratio']:.2f} | {r['ratio_masked']:.2f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    sitting = sub.add_parser("sitting")
    sitting.add_argument("--data", required=True)
    for p in (sitting, sub.add_parser("summary")):
        p.add_argument("--project", type=Path, default=Path("bptt-sitting"))
        p.add_argument("--json", type=Path)
    thr = sub.add_parser("throughput")
    thr.add_argument("--samples", type=int, default=1600)
    thr.add_argument("--repeat", type=int, default=3)
    thr.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.part == "throughput":
        found = throughput(args.samples, args.repeat)
        text = throughput_table(found)
    else:
        if args.part == "sitting":
            args.project.mkdir(parents=True, exist_ok=True)
            started = time.time()
            done = subprocess.run([sys.executable, "-m", "rnnflow.cli", "run", str(PLAN),
                                   "--data", str(Path(args.data).resolve())],
                                  cwd=args.project)
            print(f"# sitting: {time.time() - started:.0f} s, exit {done.returncode}")
        found = summary(args.project)
        text = summary_tables(found)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(found, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
