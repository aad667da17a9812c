"""A 4-point `model.num_neurons` grid on the shared sample, (a) one point after another
(`runner: local`) and (b) on Dask's LocalCluster (`runner: dask`, one single-threaded worker per
core): wall time and peak RSS of each whole process tree, and the ratio (a)/(b). With --slurm,
(c) as well: the points as jobs of a running SLURM (`dask_cluster: dask_jobqueue.SLURMCluster`,
one single-core job per core; `scripts/slurm-local start` brings one up on this machine).

    python -m bench.dask_grid [--archive PATH] [--epochs 2] [--maxlen 400] [--repeat 1]
                              [--slurm] [--json FILE]

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
    parser.add_argument("--slurm", action="store_true",
                        help="also on SLURM jobs (needs a running SLURM: sinfo answers)")
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

    cores = len(os.sched_getaffinity(0))  # the LocalCluster's worker count
    contenders = {"local": [grid, "runner=local"], "dask": [grid, "runner=dask"]}
    if args.slurm:  # as many single-core jobs as the LocalCluster has workers, on loopback
        options = {"cores": 1, "processes": 1, "memory": "3GB", "walltime": "00:30:00",
                   "interface": "lo", "python": sys.executable, "job_name": "rnnflow-bench",
                   "log_directory": str(work / "slurm")}
        contenders["slurm"] = [grid, "runner=dask", "dask_cluster=" + json.dumps(
            {"class": "dask_jobqueue.SLURMCluster", "options": options, "jobs": cores})]
    run("warm-up", "grid={}", "train.epochs=1", "model.num_neurons=2")
    samples: dict[str, list[dict]] = {name: [] for name in contenders}
    for _ in range(args.repeat):
        for name, sets in contenders.items():
            samples[name].append(run(name, *sets))
    best = {name: min(runs, key=lambda r: r["wall_s"]) for name, runs in samples.items()}
    local, dask = best["local"], best["dask"]
    ratio = local["wall_s"] / dask["wall_s"]
    print(f"sequential {local['wall_s']:.1f} s / Dask ({cores} workers) {dask['wall_s']:.1f} s"
          f" = {ratio:.2f}x; peak RSS {local['peak_rss_mb']:.0f} MB / "
          f"{dask['peak_rss_mb']:.0f} MB")
    if "slurm" in best:
        print(f"SLURM ({cores} jobs) {best['slurm']['wall_s']:.1f} s / LocalCluster "
              f"{dask['wall_s']:.1f} s = {best['slurm']['wall_s'] / dask['wall_s']:.2f}x")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "grid": {"model.num_neurons": NEURONS}, "settings": shared, "workers": cores,
            "local": local, "dask": dask, "ratio": ratio, "slurm": best.get("slurm"),
            "samples": samples}, indent=2) + "\n")


if __name__ == "__main__":
    main()
