"""pad_sequences: each review's ids cut or zero-padded to maxlen, one Parquet file per split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rnnflow.config import PadConfig
from rnnflow.storage import Stage, stage, write_parquet, writing

log = logging.getLogger(__name__)

VERSION = 1
SPLITS = ("train", "val", "test")


def pad_ids(ids: pa.ListArray, cfg: PadConfig) -> np.ndarray:
    """docs x maxlen int32, 0 marking padding, with pre/post padding and truncation."""
    lengths = pc.list_value_length(ids).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(ids).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    kept = np.minimum(lengths, cfg.maxlen)
    # Which source offset each kept id comes from, and which column it goes to.
    skip = lengths - kept if cfg.truncating == "pre" else np.zeros_like(lengths)
    doc = np.repeat(np.arange(len(lengths)), kept)
    within = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    src = np.repeat(starts + skip, kept) + within
    col = within + (np.repeat(cfg.maxlen - kept, kept) if cfg.padding == "pre" else 0)
    out = np.zeros((len(lengths), cfg.maxlen), dtype=np.int32)
    out[doc, col] = flat[src]
    return out


def padded_stage(vectors: Stage, cfg: PadConfig) -> Stage:
    return stage("padded", cfg.model_dump(), vectors.key, VERSION)


def pad_sequences(vectors: Stage, cfg: PadConfig) -> Stage:
    """Write data/padded/<key>/{train,val,test}.parquet: id, label, x (int32[maxlen])."""
    out = padded_stage(vectors, cfg)
    if out.done():
        log.info("padded: reusing %s", out.path)
        return out
    table = pq.read_table(vectors.file("ids.parquet"))
    with writing(out) as tmp:
        for split in SPLITS:
            part = table.filter(pc.equal(table["split"], split))
            x = pad_ids(part["token_ids"].combine_chunks(), cfg)
            write_parquet(pa.table({
                "id": part["id"], "label": part["label"],
                "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), cfg.maxlen),
            }), tmp / f"{split}.parquet")
    log.info("padded %d reviews to maxlen %d -> %s", table.num_rows, cfg.maxlen, out.path)
    return out


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """x (docs x maxlen int32) and y (docs float32) of one padded split, without copies of x."""
    table = pq.read_table(path, columns=["label", "x"])
    x = table["x"].combine_chunks()
    maxlen = x.type.list_size
    xs = x.values.to_numpy(zero_copy_only=False).reshape(-1, maxlen)
    return xs, table["label"].to_numpy().astype(np.float32)
