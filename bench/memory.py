"""Where a cold lesson run's memory goes, process by process and step by step, beside the
hand-written script in the same sitting.

    python -m bench.memory --data ../shared/data/aclImdb_labeled.tar.gz [--src DIR] [--repeat 2]

Both do bench.run's (b) and (c): the lesson on the whole archive, word2vec trained on the train
split. Every 50 ms the RSS of each process of the run's tree is sampled (the flow process, a
Prefect server process where the run starts one, the tokenizer workers); the run's own log
lines say which step it is in. Prints and writes (bench/results/memory.json): the peak of the
tree and of each process, and per step the tree's peak with each process's share at that
moment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import REPO

HERE = Path(__file__).resolve().parent
# A step starts at the first log line that matches its pattern (rnnflow's own INFO lines).
STEPS = (("read", r": dataset (folder )?/"), ("tokenize", r": tokenizing \d+ reviews"),
         ("word2vec", r": training word2vec|: embeddings: one-hot"),
         ("ids+pad", r": vectorized \d+ tokens"), ("train", r": training \S+ on \d+ reviews"),
         ("evaluate", r": evaluating val and test"), ("log", r": logging its report"),
         ("end", r"rnnflow\.flow: run \w+: val_accuracy"))
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _kind(proc: psutil.Process, root: int) -> str:
    if proc.pid == root:
        return "main"
    cmd = " ".join(proc.cmdline())
    if "prefect" in cmd and "server" in cmd:
        return "prefect server"
    return "workers"


def sample(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> dict:
    """Run `cmd`, its output to `log`; (time, {kind: rss bytes}) every 50 ms."""
    started = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    samples = []
    while proc.poll() is None:
        per: dict[str, int] = {}
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    per[_kind(p, proc.pid)] = per.get(_kind(p, proc.pid), 0) + p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        samples.append((time.time(), per))
        time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}); see {log}")
    return {"started": started, "wall_s": time.time() - started, "samples": samples}


def _marks(log: Path) -> list[tuple[str, float]]:
    """(step, epoch seconds it began) from the run's log, in order."""
    lines = log.read_text(errors="replace").splitlines()
    found = []
    for step, pattern in STEPS:
        for line in lines:
            stamp = _STAMP.match(line)
            if stamp and re.search(pattern, line):
                when = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
                found.append((step, when.timestamp()))
                break
    return sorted(found, key=lambda m: m[1])


def summarize(run: dict, log: Path | None) -> dict:
    mb = 2**20
    kinds = sorted({k for _, per in run["samples"] for k in per})
    total = [(t, sum(per.values()), per) for t, per in run["samples"]]
    t_peak, peak, at_peak = max(total, key=lambda s: s[1])
    out = {"wall_s": round(run["wall_s"], 1), "peak_mb": round(peak / mb),
           "at_peak_mb": {k: round(at_peak.get(k, 0) / mb) for k in kinds},
           "process_peak_mb": {k: round(max(per.get(k, 0) for _, per in run["samples"]) / mb)
                               for k in kinds}}
    if log is not None:
        marks = [("start", run["started"]), *_marks(log)]
        bounds = [*marks[1:], ("", float("inf"))]
        steps = {}
        for (step, begin), (_, end) in zip(marks, bounds, strict=True):
            inside = [s for s in total if begin <= s[0] < end]
            if inside:
                _, top, per = max(inside, key=lambda s: s[1])
                steps[step] = {"peak_mb": round(top / mb),
                               **{k: round(per.get(k, 0) / mb) for k in kinds}}
        out["steps"] = steps
        out["peak_step"] = next((s for (s, b), (_, e) in zip(marks, bounds, strict=True)
                                 if b <= t_peak < e), "")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--src", help="run rnnflow from this checkout (before/after)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "memory.json"))
    args = parser.parse_args()
    data = str(Path(args.data).resolve())
    results = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="rnnflow-memory-") as tmp:
            work = Path(tmp)
            env = {**os.environ, "RNNFLOW_DATA_DIR": str(work / "data"),
                   "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
                   "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED":
                   "false", "PREFECT_LOGGING_LEVEL": "INFO"}
            if args.src:
                env["PYTHONPATH"] = str(Path(args.src).resolve())
            script = sample([sys.executable, "-m", "bench.handwritten", "--data", data,
                             "--json", str(work / "script.json")], {**os.environ}, REPO,
                            work / "script.log")
            run = sample([str(Path(sys.executable).parent / "rnnflow"), "run",
                          str(REPO / "params" / "lesson16.yaml"), "--set",
                          f"dataset.url={data}", "--set", "embedding.source=train", "--set",
                          "registry.enabled=false", "--fresh"], env, work, work / "run.log")
            row = {"script": summarize(script, None), "rnnflow": summarize(run, work / "run.log")}
        print(json.dumps(row, indent=1), flush=True)
        results.append(row)
    Path(args.out).write_text(json.dumps({"data": args.data, "src": args.src or "this checkout",
                                          "runs": results}, indent=2))


if __name__ == "__main__":
    main()
