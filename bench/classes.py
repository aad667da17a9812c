"""What a k-class head costs: fit samples/s of a binary model against the same model with a
softmax over k classes, same data size, same sitting.

Two networks, each built by rnnflow's `build_model` and compiled as `train_model` compiles it
(binary cross-entropy on one sigmoid unit; sparse categorical cross-entropy on k softmax
units, with `class_weight: balanced` weights as params/ratings.yaml uses):

* lesson: SimpleRNN(50), every time step -> Dropout -> Flatten -> head, 300-d vectors, batch 32
  (params/lesson16.yaml's network);
* ratings: GRU(64) last state -> Dropout -> head, 100-d vectors, batch 64 (params/ratings.yaml).

Token ids are drawn like review text (bench.kernels.review_ids), labels uniformly. Binary and
k-class fits alternate and the best of --repeat is kept. The figure that matters is the cost
ratio: binary samples/s over k-class samples/s (1.0: free; the target is <= 1.2).

    python -m bench.classes [--samples 2000] [--classes 8] [--repeat 3] [--maxlen 400]
                            [--only lesson,ratings] [--json bench/results/classes.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.kernels import VOCAB, review_ids  # noqa: E402
from rnnflow.config import ModelConfig  # noqa: E402
from rnnflow.network.model import build_model  # noqa: E402
from rnnflow.network.train import class_weights, loss_for  # noqa: E402

NETWORKS = {
    "lesson": (ModelConfig(cell="simple_rnn", num_neurons=50, return_sequences=True), 300, 32),
    "ratings": (ModelConfig(cell="gru", num_neurons=64, return_sequences=False), 100, 64),
}


def compiled(cfg: ModelConfig, vectors: np.ndarray, maxlen: int, k: int) -> keras.Model:
    model = build_model(cfg, vectors, maxlen, n_classes=k)
    model.compile(optimizer="adam", loss=loss_for(k), metrics=["accuracy"])
    return model


def measure(name: str, args, rng: np.random.Generator) -> dict:
    cfg, dim, batch = NETWORKS[name]
    vectors = rng.normal(scale=0.3, size=(VOCAB + 1, dim)).astype("float32")
    vectors[0] = 0.0
    x = review_ids(rng, args.samples, args.maxlen)
    labels = {2: rng.integers(0, 2, size=args.samples),
              args.classes: rng.integers(0, args.classes, size=args.samples)}
    fits = {}
    for k, y in labels.items():
        weights = (class_weights("balanced", y, [str(i) for i in range(k)]) if k > 2 else None)
        model = compiled(cfg, vectors, args.maxlen, k)
        fits[k] = (model, y.astype("float32" if k == 2 else "int32"), weights)
        model.fit(x[:2 * batch], fits[k][1][:2 * batch], batch_size=batch, epochs=1,
                  verbose=0, class_weight=weights)  # trace outside the timings
    best = dict.fromkeys(fits, float("inf"))
    for _ in range(args.repeat):
        for k, (model, y, weights) in fits.items():  # alternating: 2, k, 2, k
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0, class_weight=weights)
            best[k] = min(best[k], time.perf_counter() - start)
    binary, multi = args.samples / best[2], args.samples / best[args.classes]
    return {"network": name, "cell": cfg.cell, "units": cfg.num_neurons, "dim": dim,
            "batch": batch, "binary_fit_samples_per_s": binary,
            "k_fit_samples_per_s": multi, "cost_ratio": binary / multi}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=2000, help="reviews per timed fit epoch")
    p.add_argument("--classes", type=int, default=8, help="k of the softmax head (> 2)")
    p.add_argument("--repeat", type=int, default=3, help="alternating runs; the best is kept")
    p.add_argument("--maxlen", type=int, default=400, help="time steps per review")
    p.add_argument("--only", default="lesson,ratings")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "classes.json"))
    args = p.parse_args(argv)
    if args.classes <= 2:
        p.error("--classes must be more than 2")
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    rows = [measure(name.strip(), args, rng) for name in args.only.split(",")]
    print(f"| network | binary fit samples/s | {args.classes}-class fit samples/s "
          "| cost (binary / k-class) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['network']}: {r['cell']}({r['units']}), {r['dim']}-d, batch {r['batch']} "
              f"| {r['binary_fit_samples_per_s']:.0f} | {r['k_fit_samples_per_s']:.0f} "
              f"| {r['cost_ratio']:.2f}x |")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"command": " ".join(["python", "-m", "bench.classes",
                                            *(argv if argv is not None else sys.argv[1:])]),
                       "samples": args.samples, "classes": args.classes,
                       "repeat": args.repeat, "maxlen": args.maxlen, "cpus": os.cpu_count(),
                       "machine": platform.machine(), "keras": keras.__version__,
                       "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
