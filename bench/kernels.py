"""Fused recurrent layers vs stock Keras: fit and predict throughput on the lesson's shapes.

Three models, each built twice from the same weights (fused layer and stock Keras layer):

* simple_rnn: SimpleRNN(50, return_sequences=True) -> Dropout(0.2) -> Flatten -> Dense(1), the
  lesson's model;
* gru: GRU(64) last state -> Dense(1);
* lstm: LSTM(50) last state -> Dense(1);

all fed by a frozen 300-d embedding of 400 token ids per review (random vectors: the work per
step is what is measured, not the accuracy), batch 32, binary cross-entropy. The fused model's
lookup is rnnflow's TokenVectors, as `build_model` makes it, so its first layer projects each
distinct token of a batch once. Token ids are drawn like review text: Zipf-distributed word
ranks (exponent 1.05) over lengths with a median of 200 (log-normal, sigma 0.7, capped at
maxlen), post-padded; that gives about 2,000 distinct ids per batch of 32, as the full IMDB
train split does (2,044 on average at maxlen 400). Fused and stock runs alternate, the best of
--repeat is kept. Prints a markdown table and writes JSON.

    python -m bench.kernels [--samples 2000] [--predict-samples 5000] [--repeat 2]
                            [--cells simple_rnn,gru,lstm] [--steps 8] [--jit] [--maxlen 400]
                            [--json bench/results/kernels.json]

Only rnnflow.network.fused is imported from the product. `make bench` runs it as one of its parts.
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
import tensorflow as tf  # noqa: E402

from rnnflow.network.fused import TokenVectors, recurrent_layer  # noqa: E402

DIM, VOCAB, BATCH = 300, 20_000, 32
UNITS = {"simple_rnn": 50, "gru": 64, "lstm": 50}


def build(cell: str, kernel: str, vectors: np.ndarray, steps: int, jit: bool,
          maxlen: int) -> keras.Model:
    kw = {"steps": steps} if kernel == "fused" else {}
    rnn, _ = recurrent_layer(
        cell, UNITS[cell], return_sequences=cell == "simple_rnn", kernel=kernel, **kw
    )
    inputs = keras.Input((maxlen,), dtype="int32")
    lookup = TokenVectors if kernel == "fused" else keras.layers.Embedding
    x = rnn(lookup(VOCAB, DIM, trainable=False, weights=[vectors])(inputs))
    if cell == "simple_rnn":
        x = keras.layers.Dropout(0.2)(x)
        x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile("rmsprop", "binary_crossentropy", jit_compile=jit)
    return model


def review_ids(rng: np.random.Generator, n: int, maxlen: int) -> np.ndarray:
    """n x maxlen int32 ids shaped like tokenized reviews (see the module docstring)."""
    ranks = np.arange(1, VOCAB)
    p = ranks ** -1.05
    lengths = np.clip(rng.lognormal(np.log(200), 0.7, n).astype(int), 1, maxlen)
    words = rng.choice(ranks, size=int(lengths.sum()), p=p / p.sum()).astype("int32")
    x = np.zeros((n, maxlen), dtype="int32")
    x[np.arange(maxlen) < lengths[:, None]] = words
    return x


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(cell: str, args, rng: np.random.Generator) -> dict:
    vectors = rng.normal(scale=0.3, size=(VOCAB, DIM)).astype("float32")
    x = review_ids(rng, args.samples, args.maxlen)
    y = rng.integers(0, 2, size=(args.samples, 1)).astype("float32")
    xp = review_ids(rng, args.predict_samples, args.maxlen)
    models = {
        k: build(cell, k, vectors, args.steps, args.jit and k == "fused", args.maxlen)
        for k in ("fused", "keras")
    }
    models["fused"].set_weights(models["keras"].get_weights())
    for model in models.values():  # trace and warm up outside the timings
        model.fit(x[: 2 * BATCH], y[: 2 * BATCH], batch_size=BATCH, epochs=1, verbose=0)
        model.predict(xp[: 2 * BATCH], batch_size=BATCH, verbose=0)
    best = {(k, what): float("inf") for k in models for what in ("fit", "predict")}
    for _ in range(args.repeat):
        for k, model in models.items():  # alternating: fused, stock, fused, stock
            t = timed(lambda m=model: m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0))
            best[k, "fit"] = min(best[k, "fit"], t)
            t = timed(lambda m=model: m.predict(xp, batch_size=BATCH, verbose=0))
            best[k, "predict"] = min(best[k, "predict"], t)
    row = {"cell": cell, "units": UNITS[cell],
           "distinct_ids_per_batch": float(np.mean([len(np.unique(x[i:i + BATCH]))
                                                    for i in range(0, len(x), BATCH)]))}
    for k in models:
        row[f"{k}_fit_samples_per_s"] = args.samples / best[k, "fit"]
        row[f"{k}_predict_samples_per_s"] = args.predict_samples / best[k, "predict"]
    row["fit_speedup"] = best["keras", "fit"] / best["fused", "fit"]
    row["predict_speedup"] = best["keras", "predict"] / best["fused", "predict"]
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| model | fit fused (samples/s) | fit stock | fit ratio "
        "| predict fused (samples/s) | predict stock | predict ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"{r['cell']}({r['units']})" + (
            " seq+Flatten" if r["cell"] == "simple_rnn" else " last state"
        )
        lines.append(
            f"| {name} | {r['fused_fit_samples_per_s']:.0f} | {r['keras_fit_samples_per_s']:.0f} "
            f"| {r['fit_speedup']:.2f}x | {r['fused_predict_samples_per_s']:.0f} "
            f"| {r['keras_predict_samples_per_s']:.0f} | {r['predict_speedup']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=2000, help="reviews per timed fit epoch")
    p.add_argument("--predict-samples", type=int, default=5000, help="reviews per timed predict")
    p.add_argument("--repeat", type=int, default=2, help="alternating runs; the best is kept")
    p.add_argument("--cells", default="simple_rnn,gru,lstm")
    p.add_argument("--steps", type=int, default=8, help="time steps per fused loop iteration")
    p.add_argument("--jit", action="store_true", help="compile the fused model with XLA")
    p.add_argument("--maxlen", type=int, default=400, help="time steps per review")
    p.add_argument(
        "--json", default=os.path.join(os.path.dirname(__file__), "results", "kernels.json")
    )
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    rows = []
    for cell in args.cells.split(","):
        rows.append(measure(cell.strip(), args, rng))
        print(f"{cell}: fit {rows[-1]['fit_speedup']:.2f}x", file=sys.stderr, flush=True)
    print(table(rows))
    result = {
        "command": " ".join(["python", "-m", "bench.kernels", *(argv or sys.argv[1:])]),
        "samples": args.samples,
        "predict_samples": args.predict_samples,
        "repeat": args.repeat,
        "steps": args.steps,
        "jit": args.jit,
        "batch": BATCH,
        "maxlen": args.maxlen,
        "dim": DIM,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "rows": rows,
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
