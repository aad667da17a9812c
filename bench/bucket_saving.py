"""How many recurrent time steps bucketing saves: the mean padded length of a training batch
against maxlen, measured on the train split with rnnflow's own steps and batch plan (no
training).

    python -m bench.bucket_saving --data ../shared/data/aclImdb_labeled.tar.gz

Reads and tokenizes the archive (lesson16's settings: treebank, case kept, HTML kept) into a
scratch data folder, then, for the train split (the 80% left after the validation split):
- `tokens`: every token counts (the upper bound: a vector table drops OOV tokens);
- `onehot ids`: the ids of `embedding.source: onehot` with the default 20,000-token vocabulary;
for `pad.maxlen: 400` + `pad.bucket: true` (reviews cut to 400) and for `pad.maxlen: null`
(against the longest review), each averaged over `--epochs` epochs of the seeded bucket plan.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench import SAMPLE


def mean_batch_length(lengths: np.ndarray, maxlen: int | None, batch_size: int, seed: int,
                      epochs: int) -> float:
    from rnnflow.data.pad import batch_length
    from rnnflow.network.buckets import bucket_plan

    capped = lengths if maxlen is None else np.minimum(lengths, maxlen)
    widths = [batch_length(int(capped[rows].max(initial=0)), maxlen)
              for epoch in range(epochs)
              for rows in bucket_plan(capped, batch_size, seed + epoch)]
    return float(np.mean(widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SAMPLE), help="aclImdb .tar.gz")
    parser.add_argument("--maxlen", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rnnflow-buckets-") as tmp:
        os.environ["RNNFLOW_DATA_DIR"] = tmp
        from rnnflow.config import DatasetConfig, EmbeddingConfig, TokenizeConfig, TrainConfig
        from rnnflow.data.download import download_dataset
        from rnnflow.data.embeddings import build_embeddings
        from rnnflow.data.reviews import read_reviews
        from rnnflow.data.tokens import tokenize_reviews
        from rnnflow.data.vectorize import vectorize_tokens

        path, digest = download_dataset(Path(args.data).resolve().as_uri())
        tokens = tokenize_reviews(read_reviews(path, digest, DatasetConfig()), TokenizeConfig())
        emb = build_embeddings(tokens, EmbeddingConfig(source="onehot"))
        vectors, _ = vectorize_tokens(tokens, emb)
        seed = TrainConfig().seed
        rows = {}
        for name, table, column in (
                ("tokens", pq.read_table(tokens.file("tokens.parquet")), "tokens"),
                ("onehot ids", pq.read_table(vectors.file("ids.parquet")), "token_ids")):
            train = table.filter(pc.equal(table["split"], "train"))
            lengths = pc.list_value_length(train[column]).to_numpy(zero_copy_only=False)
            fixed = mean_batch_length(lengths, args.maxlen, args.batch_size, seed, args.epochs)
            free = mean_batch_length(lengths, None, args.batch_size, seed, args.epochs)
            longest = int(lengths.max())
            rows[name] = {
                "reviews": len(lengths), "mean_length": float(lengths.mean()),
                "median_length": float(np.median(lengths)), "longest": longest,
                "share_longer_than_maxlen": float((lengths > args.maxlen).mean()),
                f"maxlen{args.maxlen}_bucketed_mean_batch_length": fixed,
                f"maxlen{args.maxlen}_padding_step_saving": 1 - fixed / args.maxlen,
                "maxlen_null_mean_batch_length": free,
                "maxlen_null_padding_step_saving": 1 - free / longest,
            }
    out = {"data": Path(args.data).name, "batch_size": args.batch_size, "maxlen": args.maxlen,
           "epochs": args.epochs, "rows": rows}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
