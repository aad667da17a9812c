"""A 4-point `model.num_neurons` grid on the shared sample, (a) one point after another
(`runner: local`) and (b) on Dask's LocalCluster (`runner: dask`, one single-threaded worker per
core): wall time and peak RSS of each whole process tree, and the ratio (a)/(b).

    python -m bench.dask_grid [--archive PATH] [--epochs 2] [--maxlen 400] [--repeat 1]
                              [--json FILE]

Both runs start warm. A warm-up run first builds every preprocessing stage (download, read,
tokenize, word2vec, ids, padding) into a data folder the two runs then share, so both measure
what the runner changes: training, evaluation and logging of the four points, plus, for (b),
starting the cluster. Each measured run gets its own MLflow store and `--fresh`, so neither
continues a checkpoint of the other. With `--repeat N` the two alternate N times and the
fastest of each counts, which keeps another load on the machine from deciding the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bench import REPO, SAMPLE
from bench.peak_rss import measure

NEURONS = [32, 64, 96, 128]


def _rnnflow(*sets: str) -> list[str]:
    args = [str(Path(sys.executable).with_name("rnnflow")), "run",
            str(REPO / "params" / "quick.yaml"), "--fresh"]
    for item in sets:
        args += ["--set", item]
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=SAMPLE)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--maxlen", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two runs N times")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    out = args.json.resolve() if args.json else None

    work = Path(tempfile.mkdtemp(prefix="rnnflow-bench-dask-"))
    env = {**os.environ, "RNNFLOW_DATA_DIR": str(work / "data"),
           "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    # Every review of the sample (2,000 train, 500 val, 2,500 test), so training dominates.
    shared = [f"dataset.url={args.archive.resolve()}", "dataset.limit=null",
              f"pad.maxlen={args.maxlen}", f"train.epochs={args.epochs}"]
    grid = f"grid={{model.num_neurons: {NEURONS}}}"

    def run(label: str, *sets: str) -> dict:
        folder = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work))  # its own mlflow.db
        log = folder / "run.log"
        with open(log, "w") as output:
            result = measure(_rnnflow(*shared, *sets), env=env, cwd=str(folder), output=output)
        if result["returncode"] != 0:
            sys.exit(f"{label} failed; see {log}")
        print(f"{label:>10}: wall {result['wall_s']:6.1f} s, "
              f"peak RSS {result['peak_rss_mb']:6.0f} MB, load {os.getloadavg()[0]:.1f}",
              flush=True)
        return result

    run("warm-up", "grid={}", "train.epochs=1", "model.num_neurons=2")
    samples: dict[str, list[dict]] = {"local": [], "dask": []}
    for _ in range(args.repeat):
        samples["local"].append(run("local", grid, "runner=local"))
        samples["dask"].append(run("dask", grid, "runner=dask"))
    local, dask = (min(samples[k], key=lambda r: r["wall_s"]) for k in ("local", "dask"))
    ratio = local["wall_s"] / dask["wall_s"]
    cores = len(os.sched_getaffinity(0))  # the LocalCluster's worker count
    print(f"sequential {local['wall_s']:.1f} s / Dask ({cores} workers) {dask['wall_s']:.1f} s"
          f" = {ratio:.2f}x; peak RSS {local['peak_rss_mb']:.0f} MB / "
          f"{dask['peak_rss_mb']:.0f} MB")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "grid": {"model.num_neurons": NEURONS}, "settings": shared, "workers": cores,
            "local": local, "dask": dask, "ratio": ratio, "samples": samples}, indent=2) + "\n")


if __name__ == "__main__":
    main()
