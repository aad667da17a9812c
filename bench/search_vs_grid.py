"""The same budget two ways: a 12-trial pruned search and a 12-point grid over the lesson's free
parameters, each from scratch, then which found the better configuration and at what cost.

    python -m bench.search_vs_grid --data ../shared/data/aclImdb_labeled.tar.gz [--json FILE]

Both start from `params/lesson16.yaml` with word2vec trained on the corpus
(`embedding.source=train`) and 2 epochs per point, the lesson's settings. The grid is
`embedding.vector_size` [100, 300] x `model.num_neurons` [25, 50, 100] x `pad.maxlen` [200, 400]
(batch 32, the lesson's). The search draws the same three keys from wider ranges, plus
`train.batch_size`, with TPE and the median pruner judging `val_accuracy` after every epoch
once 4 trials have finished. Each run gets its own empty data folder and MLflow store, so each
pays for its own preprocessing (one word2vec table per vector size it meets) and neither
reuses the other's runs. Printed per run: wall time, peak RSS of the process tree, points
trained, points pruned, the fit seconds of the points that finished, and the best point by
val_accuracy with its test accuracy; then the two winners compared review by review on the
test split (paired bootstrap interval of the difference in accuracy, McNemar's exact p).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

from bench import REPO, SAMPLE
from bench.peak_rss import measure

TRIALS = 12
GRID = {"embedding.vector_size": [100, 300], "model.num_neurons": [25, 50, 100],
        "pad.maxlen": [200, 400]}
SEARCH = {
    "trials": TRIALS, "metric": "val_accuracy", "sampler": "tpe", "pruner": "median",
    "pruner_options": {"n_startup_trials": 4, "n_warmup_steps": 0}, "seed": 0,
    "space": {"embedding.vector_size": [50, 100, 300],
              "model.num_neurons": {"int": [16, 128], "log": True},
              "pad.maxlen": [100, 200, 400],
              "train.batch_size": [32, 64, 128]},
}


def _flow(mapping: dict) -> str:
    return yaml.safe_dump(mapping, default_flow_style=True, width=10**6).strip()


def _command(archive: Path, *sets: str) -> list[str]:
    args = [str(Path(sys.executable).with_name("rnnflow")), "run",
            str(REPO / "params" / "lesson16.yaml"), "--set", f"dataset.url={archive}",
            "--set", "embedding.source=train", "--set", "registry.enabled=false"]
    for item in sets:
        args += ["--set", item]
    return args


def _test_right(store: Path, run_id: str):
    """Per test review (sorted by id): whether the run's prediction was right."""
    import mlflow
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}").download_artifacts(
            run_id, "test_predictions.parquet", tmp)
        frame = pd.read_parquet(path).sort_values("id")
    return frame.id.to_numpy(), ((frame.probability >= 0.5) == (frame.label == 1)).to_numpy()


def _compare(results: dict, work: Path) -> dict:
    from rnnflow.comparisons.stats import mcnemar_exact, paired_bootstrap

    (ids_s, right_s), (ids_g, right_g) = (
        _test_right(work / label / "mlflow.db", results[label]["best"]["run_id"])
        for label in ("search", "grid"))
    assert (ids_s == ids_g).all(), "the two winners scored different test reviews"
    diff = paired_bootstrap(right_s.astype(float), right_g.astype(float))
    return {"search_minus_grid_test_accuracy": diff.delta, "low": diff.low, "high": diff.high,
            "mcnemar_p": mcnemar_exact(right_s, right_g)}


def _summary(store: Path) -> dict:
    """Points, pruned points, fit seconds and the best point of the run recorded in `store`."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    runs = [run for exp in client.search_experiments()
            for run in client.search_runs([exp.experiment_id], max_results=1000)]
    points = [r for r in runs if "fit_seconds" in r.data.metrics
              or r.data.tags.get("pruned") == "true"]
    pruned = [r for r in points if r.data.tags.get("pruned") == "true"]
    done = [r for r in points if "test_accuracy" in r.data.metrics]
    best = max(done, key=lambda r: r.data.metrics["val_accuracy"], default=None)
    keys = [*GRID, "train.batch_size"]
    return {
        "points": len(points), "pruned": len(pruned),
        "fit_seconds": round(sum(r.data.metrics.get("fit_seconds", 0.0) for r in points), 1),
        "best": None if best is None else {
            "run_id": best.info.run_id,
            "val_accuracy": best.data.metrics["val_accuracy"],
            "test_accuracy": best.data.metrics["test_accuracy"],
            "params": {k: best.data.params.get(k) for k in keys}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SAMPLE)
    parser.add_argument("--only", choices=["search", "grid"], help="run one of the two")
    parser.add_argument("--tpe-startup", type=int,
                        help="search.sampler_options.n_startup_trials (optuna's default: 10)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    archive = args.data.resolve()

    work = Path(tempfile.mkdtemp(prefix="rnnflow-bench-explore-"))
    base_env = {**os.environ, "PREFECT_HOME": str(work / "prefect"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"}
    base_env.pop("MLFLOW_TRACKING_URI", None)
    search = dict(SEARCH)
    if args.tpe_startup is not None:
        search["sampler_options"] = {"n_startup_trials": args.tpe_startup}
    runs = {"grid": [f"grid={_flow(GRID)}"],
            "search": ["grid={}", f"search={_flow(search)}"]}
    results: dict[str, dict] = {}
    for label, sets in runs.items():
        if args.only and label != args.only:
            continue
        folder = work / label  # its own data/ and mlflow.db
        folder.mkdir()
        env = {**base_env, "RNNFLOW_DATA_DIR": str(folder / "data")}
        with open(folder / "run.log", "w") as output:
            measured = measure(_command(archive, *sets), env=env, cwd=str(folder), output=output)
        if measured["returncode"] != 0:
            sys.exit(f"{label} failed; see {folder / 'run.log'}")
        results[label] = {"wall_s": round(measured["wall_s"], 1),
                          "peak_rss_mb": round(measured["peak_rss_mb"]),
                          **_summary(folder / "mlflow.db")}
        r = results[label]
        best = r["best"] or {}
        print(f"{label:>6}: wall {r['wall_s']:7.1f} s, peak {r['peak_rss_mb']:5d} MB, "
              f"{r['points']} points ({r['pruned']} pruned), fit {r['fit_seconds']:.0f} s; best "
              f"val {best.get('val_accuracy', float('nan')):.4f} test "
              f"{best.get('test_accuracy', float('nan')):.4f} at {best.get('params')}",
              flush=True)
    if len(results) == 2 and all(r["best"] for r in results.values()):
        results["search_vs_grid"] = c = _compare(results, work)
        print(f"search - grid, test accuracy: {100 * c['search_minus_grid_test_accuracy']:+.2f} "
              f"points, 95% [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}], McNemar p "
              f"{c['mcnemar_p']:.3g}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"grid": GRID, "search": search, "archive": str(archive),
                                         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
