"""GPU against the same machine's CPU: fit and predict samples/s per cell, and test accuracy.

The reviews of the shared sample (or --data) are read, split, tokenized and turned into
word2vec ids once, the way the peers do it (bench/peers.py). Then each device trains the same
networks in a process of its own: the CPU one with `CUDA_VISIBLE_DEVICES=-1`, so it makes the
choices rnnflow makes on a machine without a GPU (the fused kernels), the GPU one as the
machine is (cuDNN GRU and LSTM, the fused SimpleRNN; and, with --mixed, each cell again under
`train.mixed_precision`). Every network is rnnflow's `build_model` with `train.seed`, compiled
as `train_model` compiles it; `model.fit` over the train split (the first epoch's tracing
included, as a run pays it), then predict over the test split.

    python -m bench.gpu [--data aclImdb.tar.gz] [--limit 1000] [--epochs 2]
                        [--cells simple_rnn,gru,lstm] [--mixed] [--json bench/results/gpu.json]

On a machine without a GPU it measures the CPU and says so. Accuracy parity: the GPU and CPU
rows of a cell should differ by about the spread of seeds (bench/NOTES.md), not more: the
kernels compute the same function in another order.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from bench import REPO, SAMPLE  # noqa: E402

CELLS = {"simple_rnn": 50, "gru": 64, "lstm": 50}


def prepare(args, out: Path) -> dict:
    """Padded ids, labels and the frozen vector table of train / val / test, saved to `out`:
    the hand-written peer's steps (bench/handwritten.py)."""
    from bench.handwritten import ids_matrix, labels, lookup_table, tokenize_splits
    from bench.peers import read_archive, split, word2vec

    splits = dict(zip(("train", "val", "test"),
                      split(read_archive(args.data), args.seed, args.limit), strict=True))
    tokens = tokenize_splits(splits)
    index, vectors = lookup_table(word2vec(tokens["train"], args.dim, args.seed))
    arrays = {"vectors": vectors}
    for name, y in labels(splits).items():
        arrays[f"x_{name}"] = ids_matrix(tokens[name], index, args.maxlen)
        arrays[f"y_{name}"] = y
    np.savez(out, **arrays)
    return {name: len(rows) for name, rows in splits.items()}


def child(args) -> int:
    """One device's rows, as JSON lines on stdout."""
    import keras

    from rnnflow.config import ModelConfig, TrainConfig
    from rnnflow.network import device
    from rnnflow.network.model import build_model, kernel_used
    from rnnflow.network.train import loss_for, optimizer_for

    on = device.setup()
    if args.want == "gpu" and on.kind != "gpu":
        print(json.dumps({"device": on.kind}))  # nothing to measure
        return 0
    data = np.load(args.arrays)
    precisions = [False, True] if args.mixed and on.kind == "gpu" else [False]
    for cell in args.cells.split(","):
        for mixed in precisions:
            cfg = ModelConfig(cell=cell, num_neurons=CELLS[cell],
                              return_sequences=cell == "simple_rnn")
            train = TrainConfig(seed=args.seed, epochs=args.epochs, mixed_precision=mixed)
            keras.utils.set_random_seed(train.seed)
            with device.precision(mixed):
                model = build_model(cfg, data["vectors"], args.maxlen, seed=train.seed)
                model.compile(optimizer=optimizer_for(train), loss=loss_for(2),
                              metrics=["accuracy"])
                kernel, why = kernel_used(model, cfg)
            started = time.perf_counter()
            model.fit(data["x_train"], data["y_train"], batch_size=train.batch_size,
                      epochs=train.epochs, validation_data=(data["x_val"], data["y_val"]),
                      verbose=0)
            fit_s = time.perf_counter() - started
            model.predict(data["x_test"][:256], batch_size=256, verbose=0)  # trace it first
            started = time.perf_counter()
            p = model.predict(data["x_test"], batch_size=256, verbose=0)[:, 0]
            predict_s = time.perf_counter() - started
            accuracy = float(np.mean((p > 0.5) == (data["y_test"] > 0.5)))
            print(json.dumps({
                "cell": cell, "device": on.kind, "device_name": on.name,
                "precision": "mixed_float16" if mixed else "float32", "kernel": kernel,
                "kernel_reason": why,
                "fit_samples_per_s": train.epochs * len(data["y_train"]) / fit_s,
                "predict_samples_per_s": len(data["y_test"]) / predict_s,
                "test_accuracy": accuracy}), flush=True)
    return 0


def run_device(which: str, arrays: Path, args) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if which == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"  # the machine as one without a GPU
    cmd = [sys.executable, "-m", "bench.gpu", "--child", which, "--arrays", str(arrays),
           "--cells", args.cells, "--epochs", str(args.epochs), "--maxlen", str(args.maxlen),
           "--seed", str(args.seed), *(["--mixed"] if args.mixed else [])]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"the {which} measurement failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def table(rows: list[dict]) -> str:
    lines = ["| cell | device | precision | kernel | fit samples/s | predict samples/s "
             "| test accuracy |", "|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['device']}: {r['device_name']} | {r['precision']} "
                     f"| {r['kernel']} | {r['fit_samples_per_s']:.0f} "
                     f"| {r['predict_samples_per_s']:.0f} | {r['test_accuracy']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(SAMPLE), help="aclImdb .tar.gz (default: the sample)")
    p.add_argument("--limit", type=int, default=None, help="reviews per split, balanced")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--maxlen", type=int, default=400)
    p.add_argument("--dim", type=int, default=300)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--cells", default="simple_rnn,gru,lstm")
    p.add_argument("--mixed", action="store_true", help="also mixed precision on the GPU")
    p.add_argument("--json", default=str(REPO / "bench" / "results" / "gpu.json"))
    p.add_argument("--child", dest="want", choices=["cpu", "gpu"], help=argparse.SUPPRESS)
    p.add_argument("--arrays", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if unknown := set(args.cells.split(",")) - set(CELLS):
        p.error(f"--cells: unknown {sorted(unknown)}; choose from {sorted(CELLS)}")
    if args.want:
        return child(args)
    if not Path(args.data).is_file():
        p.error(f"--data {args.data}: not found")
    with tempfile.TemporaryDirectory(prefix="rnnflow-bench-gpu-") as tmp:
        arrays = Path(tmp) / "arrays.npz"
        sizes = prepare(args, arrays)
        rows = run_device("gpu", arrays, args)
        if rows and rows[0]["device"] == "cpu":
            print("no GPU visible to TensorFlow here: the CPU rows only", flush=True)
            rows = []
        rows += run_device("cpu", arrays, args)
    print(f"{sizes['train']} train, {sizes['val']} val, {sizes['test']} test reviews; "
          f"{args.epochs} epochs, maxlen {args.maxlen}, {args.dim}-d word2vec, batch 32")
    print(table(rows))
    gpu = {(r["cell"], r["precision"]): r for r in rows if r["device"] == "gpu"}
    for r in rows:
        if r["device"] == "cpu" and (r["cell"], "float32") in gpu:
            g = gpu[(r["cell"], "float32")]
            fit = g["fit_samples_per_s"] / r["fit_samples_per_s"]
            predict = g["predict_samples_per_s"] / r["predict_samples_per_s"]
            print(f"{r['cell']}: GPU / CPU fit {fit:.1f}x, predict {predict:.1f}x, "
                  f"test accuracy {g['test_accuracy'] - r['test_accuracy']:+.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": " ".join(["python", "-m", "bench.gpu",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "reviews": sizes, "epochs": args.epochs, "maxlen": args.maxlen, "dim": args.dim,
            "cpus": os.cpu_count(), "machine": platform.machine(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
