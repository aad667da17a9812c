"""vectorize_tokens: tokens become int32 rows of the embedding table; OOV tokens are dropped."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rnnflow.data.storage import Stage, stage, writing

log = logging.getLogger(__name__)

VERSION = 1
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("label", pa.int8()),
        ("token_ids", pa.list_(pa.int32())),
    ]
)


def ids_for(tokens: pa.ListArray, vocab: pa.Array) -> tuple[pa.ListArray, int, int]:
    """Map each list of tokens to table rows (1-based), dropping tokens not in `vocab`.

    Returns the id lists, the number of tokens seen and the number dropped.
    """
    flat = pc.list_flatten(tokens)
    index = pc.index_in(flat, value_set=vocab)
    known = index.is_valid()
    ids = pc.add(index.filter(known), 1).cast(pa.int32())
    parents = pc.list_parent_indices(tokens).filter(known).to_numpy()
    lengths = np.bincount(parents, minlength=len(tokens))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    out = pa.ListArray.from_arrays(pa.array(offsets), ids)
    return out, len(flat), len(flat) - len(ids)


def vectors_stage(tokens: Stage, embeddings: Stage) -> Stage:
    return stage("vectors", None, f"{tokens.key}+{embeddings.key}", VERSION)


def vectorize_tokens(tokens: Stage, embeddings: Stage) -> tuple[Stage, dict[str, float]]:
    """Write data/vectors/<key>/ids.parquet: id, split, label, token_ids (list<int32>)."""
    out = vectors_stage(tokens, embeddings)
    stats_names = ("tokens", "oov_tokens", "empty_docs")
    if out.done():
        log.info("vectors: reusing %s", out.path)
        meta = pq.read_schema(out.file("ids.parquet")).metadata or {}
        return out, {k: float(meta.get(k.encode(), b"0")) for k in stats_names}

    vocab = pq.read_table(embeddings.file("table.parquet"), columns=["token"])["token"]
    vocab = vocab.combine_chunks()
    n_tokens = n_oov = n_empty = 0
    batches = []
    source = pq.ParquetFile(tokens.file("tokens.parquet"))
    for batch in source.iter_batches(batch_size=5_000):
        token_lists = batch["tokens"]
        ids, seen, dropped = ids_for(token_lists, vocab)
        n_tokens += seen
        n_oov += dropped
        n_empty += int(pc.sum(pc.equal(pc.list_value_length(ids), 0)).as_py() or 0)
        batches.append(pa.table({"id": batch["id"], "split": batch["split"],
                                 "label": batch["label"], "token_ids": ids}, schema=SCHEMA))
    stats = {"tokens": n_tokens, "oov_tokens": n_oov, "empty_docs": n_empty}
    table = pa.concat_tables(batches).replace_schema_metadata(
        {k: str(v) for k, v in stats.items()}
    )
    with writing(out) as tmp:
        pq.write_table(table, tmp / "ids.parquet", compression="zstd")
    log.info("vectorized %d tokens: %d (%.1f%%) not in the embedding vocabulary were dropped",
             n_tokens, n_oov, 100 * n_oov / max(1, n_tokens))
    if n_empty:
        log.warning("%d reviews have no token in the embedding vocabulary; they are kept as "
                    "all padding", n_empty)
    if n_tokens and n_oov / n_tokens > 0.5:
        log.warning("the embedding vocabulary covers only %.1f%% of the corpus tokens; check "
                    "the tokenizer's lowercase setting against the vectors, or embedding.limit",
                    100 * (1 - n_oov / n_tokens))
    return out, {k: float(v) for k, v in stats.items()}
