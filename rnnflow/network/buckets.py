"""Batches of similar length: what `pad.maxlen: null` and `pad.bucket: true` train and score on.

Each review is kept as its own list of ids (`rnnflow.data.pad.Sequences`); a batch is padded only
to its longest review, rounded up to a multiple of 8 (capped at maxlen), on the `pad.padding`
side. The network masks the padding, so a review's score does not depend on the batch it is in.

Training batches are drawn from length buckets, a fresh plan per epoch seeded by
`train.seed + epoch`: shuffle the reviews, cut them into chunks of `CHUNK_BATCHES` batches, sort
each chunk by length, cut it into batches, shuffle the batches. Every review is in exactly one
batch per epoch; a batch holds reviews of similar length and the order still varies.
"""

from __future__ import annotations

import numpy as np

from rnnflow.data.pad import Sequences

CHUNK_BATCHES = 64  # batches per sorted chunk: long enough to find like lengths, short to mix


def bucket_plan(lengths: np.ndarray, batch_size: int, seed: int,
                chunk_batches: int = CHUNK_BATCHES) -> list[np.ndarray]:
    """One epoch's training batches (row indices): every row exactly once, similar lengths
    together, in a seeded random order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_plan(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Inference batches: rows sorted by length, so each batch is as short as it can be."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _dataset(make_batches, n_batches: int, with_labels: bool):
    """A tf.data pipeline over `n_batches` Python-made batches whose length dimension is left
    open: one trace serves every batch length (Keras would otherwise pin the shapes of the
    first few)."""
    import tensorflow as tf

    x_spec = tf.TensorSpec((None, None), tf.int32)
    spec = (x_spec, tf.TensorSpec((None,), tf.float32)) if with_labels else (x_spec,)
    data = tf.data.Dataset.from_generator(make_batches, output_signature=spec)
    return data.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


class TrainBatches:
    """Training batches for `model.fit`: a new bucket plan each epoch (seed + epoch), which
    `callback()` keeps in step with Keras's epoch, so a resumed run draws the same batches from
    its next epoch on as an uninterrupted one would."""

    def __init__(self, seqs: Sequences, y: np.ndarray, batch_size: int, seed: int,
                 initial_epoch: int = 0) -> None:
        self.seqs, self.y, self.batch_size, self.seed = seqs, y, batch_size, seed
        self.epoch = initial_epoch
        self.lengths_served: list[int] = []  # the padded length of every batch trained on

    def plan(self, epoch: int) -> list[np.ndarray]:
        return bucket_plan(self.seqs.lengths, self.batch_size, self.seed + epoch)

    def _batches(self):
        for rows in self.plan(self.epoch):
            x = self.seqs.batch(rows)
            self.lengths_served.append(x.shape[1])
            yield x, self.y[rows]

    def dataset(self):
        return _dataset(self._batches, len(self.plan(self.epoch)), with_labels=True)

    def callback(self):
        import keras

        batches = self

        class _Epoch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                batches.epoch = epoch

        return _Epoch()


def inference_dataset(seqs: Sequences, y: np.ndarray | None, batch_size: int):
    """(dataset, order): batches sorted by length; `order[i]` is the row of the i-th output."""
    plan = sorted_plan(seqs.lengths, batch_size)

    def batches():
        for rows in plan:
            yield (seqs.batch(rows), y[rows]) if y is not None else (seqs.batch(rows),)

    order = np.concatenate(plan) if plan else np.zeros(0, np.int64)
    return _dataset(batches, len(plan), with_labels=y is not None), order


def predict(model, seqs: Sequences, batch_size: int = 128) -> np.ndarray:
    """The model's output for every row, in row order, scored in length-sorted batches: one
    value per row (a sigmoid head), or a row of class probabilities (a softmax head)."""
    width = int(model.output_shape[-1])
    if len(seqs) == 0:
        return np.zeros(0 if width == 1 else (0, width), dtype=np.float32)
    data, order = inference_dataset(seqs, None, batch_size)
    out = np.asarray(model.predict(data, verbose=0))
    out = out.ravel() if width == 1 else out
    result = np.empty_like(out)
    result[order] = out
    return result
