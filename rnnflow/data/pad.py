"""pad_sequences: each review's ids cut or zero-padded to maxlen, one Parquet file per split.

`maxlen: null` keeps every review whole (x: list<int32>); batches are padded when they are made
(rnnflow/network/buckets.py). Every split file records its pad settings in its Parquet metadata
(`rnnflow.pad`), which tells training and evaluation how to batch it (`pad_layout`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rnnflow.config import PadConfig
from rnnflow.data.storage import (
    Stage,
    read_fixed_rows,
    stage,
    stream_parquet,
    write_parquet,
    writing,
)

log = logging.getLogger(__name__)

VERSION = 1
SPLITS = ("train", "val", "test")
ROUND = 8  # batch lengths are multiples of this: fewer distinct shapes, a harmless extra mask


def pad_ids(ids: pa.ListArray, cfg: PadConfig) -> np.ndarray:
    """docs x maxlen int32, 0 marking padding, with pre/post padding and truncation; with
    `maxlen: null`, docs x the longest review's length."""
    lengths = pc.list_value_length(ids).to_numpy(zero_copy_only=False)
    if cfg.maxlen is None:
        cfg = cfg.model_copy(update={"maxlen": max(1, int(lengths.max(initial=0)))})
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


@dataclass(frozen=True)
class Sequences:
    """Variable-length id lists (ragged: flat `values`, `offsets` of length n + 1), padded per
    batch on `padding`'s side and never beyond `cap` (maxlen; None: no cap)."""

    values: np.ndarray
    offsets: np.ndarray
    padding: str = "post"
    cap: int | None = None

    @classmethod
    def from_lists(cls, lists: list[list[int]], padding: str = "post",
                   cap: int | None = None) -> Sequences:
        lengths = np.array([len(ids) for ids in lists], dtype=np.int64)
        values = (np.concatenate([np.asarray(ids, dtype=np.int32) for ids in lists])
                  if lists and lengths.sum() else np.zeros(0, np.int32))
        return cls(values, np.concatenate([[0], np.cumsum(lengths)]), padding, cap)

    @classmethod
    def from_padded(cls, x: np.ndarray, padding: str) -> Sequences:
        """The ids of fixed-length rows without their padding (ids are never 0 elsewhere), so
        re-padding a batch on the same side is the rows with their common padding trimmed."""
        keep = x != 0
        lengths = keep.sum(axis=1)
        return cls(x[keep].astype(np.int32), np.concatenate([[0], np.cumsum(lengths)]),
                   padding, x.shape[1])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch_length(self, rows: np.ndarray) -> int:
        return batch_length(int(self.lengths[rows].max(initial=0)), self.cap)

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """rows x batch_length int32, zero-padded on the padding side."""
        lengths = self.lengths[rows]
        width = batch_length(int(lengths.max(initial=0)), self.cap)
        out = np.zeros((len(rows), width), dtype=np.int32)
        for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
            ids = self.values[self.offsets[row]:self.offsets[row] + n]
            if self.padding == "pre":
                out[i, width - n:] = ids
            else:
                out[i, :n] = ids
        return out


def batch_length(longest: int, cap: int | None = None) -> int:
    """`longest` rounded up to a multiple of ROUND (at least ROUND), at most `cap`."""
    width = max(ROUND, -(-longest // ROUND) * ROUND)
    return width if cap is None else min(width, cap)



@dataclass(frozen=True)
class PadLayout:
    """How a padded stage is batched: fixed rows of `maxlen` (None: whole reviews), trimmed per
    batch and masked when `bucketed`."""

    maxlen: int | None
    padding: str
    bucketed: bool


def _section(cfg: PadConfig) -> dict:
    """What shapes the stage's files. `bucket: false` is left out, so the stages built before
    the key existed keep their keys; a bucketed stage holds the same rows under its own key,
    marked bucketed. `maxlen: null` stores whole reviews: truncating and bucket do not apply."""
    if cfg.maxlen is None:
        return {"maxlen": None, "padding": cfg.padding}
    return cfg.model_dump(exclude=set() if cfg.bucket else {"bucket"})


def padded_stage(vectors: Stage, cfg: PadConfig) -> Stage:
    return stage("padded", _section(cfg), vectors.key, VERSION)


def pad_sequences(vectors: Stage, cfg: PadConfig) -> Stage:
    """Write data/padded/<key>/{train,val,test}.parquet: id, label, x (int32[maxlen]; with
    `maxlen: null`, list<int32>)."""
    out = padded_stage(vectors, cfg)
    if out.done():
        log.info("padded: reusing %s", out.path)
        return out
    table = pq.read_table(vectors.file("ids.parquet"))
    layout = PadLayout(cfg.maxlen, cfg.padding, cfg.bucket or cfg.maxlen is None)
    meta = {"rnnflow.pad": json.dumps(layout.__dict__)}
    with writing(out) as tmp:
        for split in SPLITS:
            part = table.filter(pc.equal(table["split"], split))
            if cfg.maxlen is None:
                x = part["token_ids"].combine_chunks()
            else:
                flat = pad_ids(part["token_ids"].combine_chunks(), cfg)
                x = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), cfg.maxlen)
            write_parquet(pa.table({"id": part["id"], "label": part["label"], "x": x})
                          .replace_schema_metadata(meta), tmp / f"{split}.parquet")
    log.info("padded %d reviews to maxlen %s -> %s", table.num_rows, cfg.maxlen, out.path)
    return out


def pad_layout(padded: Stage) -> PadLayout:
    """The stage's layout; a stage written before it was recorded is fixed and unbucketed."""
    schema = pq.read_schema(padded.file("train.parquet"))
    raw = (schema.metadata or {}).get(b"rnnflow.pad")
    if raw is None:
        return PadLayout(schema.field("x").type.list_size, "post", False)
    return PadLayout(**json.loads(raw))


def load_sequences(path: Path, layout: PadLayout) -> tuple[Sequences, np.ndarray]:
    """(Sequences, y float32) of one split: whole reviews, or the fixed rows without
    their padding, to be batched by length."""
    if layout.maxlen is not None:
        x, y = load_split(path)
        return Sequences.from_padded(x, layout.padding), y
    values, lengths, labels = [np.zeros(0, np.int32)], [np.zeros(0, np.int64)], [np.zeros(0)]
    for batch in stream_parquet(path, ["label", "x"]):
        x = batch.column("x")
        values.append(x.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False))
        lengths.append(pc.list_value_length(x).to_numpy(zero_copy_only=False))
        labels.append(batch.column("label").to_numpy(zero_copy_only=False))
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths), dtype=np.int64)])
    seqs = Sequences(np.concatenate(values), offsets, layout.padding, None)
    return seqs, np.concatenate(labels).astype(np.float32)


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """x (docs x maxlen int32) and y (docs float32) of one padded split, read a batch at a time
    into x (`read_fixed_rows`)."""
    x, rest = read_fixed_rows(path, "x", np.int32, others=("label",))
    return x, rest["label"].astype(np.float32)
