"""One-hot inputs without one-hot arrays: `embedding.source: onehot`.

A recurrent layer fed one-hot vectors x_t over V tokens computes act(x_t W + h U + b). A one-hot
x_t times W is a row of W, so the same function is a row lookup: act(W[id_t] + h U + b), and the
padding id 0, the zero vector, gives x_t W = 0. Built from two parts:

* `OneHotProjection`: the trainable W, V x (directions * gates * units), one block of columns
  per direction of a bidirectional layer (each direction has its own W, as with a real one-hot
  input). Id i (1..V) reads row i - 1; id 0 reads nothing: the output there is exactly zero and
  no gradient reaches any row, so padding is the zero vector for good. There is no row for
  padding at all, so the layer holds exactly the V x gates * units input weights of a one-hot
  input, and `trainable_params` counts just those.
* the recurrent layer, whose own input kernel is a fixed 0/1 selection of its direction's block
  (the identity for one direction), set when the layer is built and marked non-trainable
  (`OneHot<Layer>` below, for every fused and stock layer): W[id] times the selection is
  W[id] exactly, the optimizer never sees the selection, and it is rebuilt identical on load.

Why a non-trainable variable set at build, not a trainable kernel pinned by a constraint: a
constraint still lets the optimizer compute and apply an update (then undoes it), keeps
optimizer state for it, and the selection would count as trainable parameters. Marking the
variable itself non-trainable in `build` keeps it out of the optimizer from the start, and
because `build` runs again when Keras loads a saved model (before the optimizer is rebuilt from
the checkpoint), a loaded or continued model has the same trainable variables as the one saved.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from rnnflow.network import fused

GATES = {"simple_rnn": 1, "gru": 3, "lstm": 4}


@keras.saving.register_keras_serializable(package="rnnflow")
class OneHotProjection(keras.layers.Layer):
    """int ids (0 = padding, 1..vocab_size) -> W[id - 1], zero for padding; `mask_zero` masks
    the padding for the recurrent layer. `blocks` equal blocks of columns, one per direction,
    each initialised like a stock recurrent kernel of shape vocab_size x output_dim / blocks.
    `seed` (None: Keras's default) seeds those initial weights, each block its own."""

    def __init__(self, vocab_size: int, output_dim: int, blocks: int = 1,
                 mask_zero: bool = False, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.output_dim = int(vocab_size), int(output_dim)
        self.blocks, self.mask_zero = int(blocks), bool(mask_zero)
        self.seed = seed
        self.supports_masking = self.mask_zero

    def build(self, input_shape):
        width = self.output_dim // self.blocks
        # An initialiser with an int seed draws the same values at every call: one per block.
        seeds = ([None] * self.blocks if self.seed is None else
                 np.random.default_rng(self.seed).integers(2**31 - 1, size=self.blocks).tolist())
        glorots = [keras.initializers.GlorotUniform(seed=s) for s in seeds]

        def init(shape, dtype=None):
            return ops.concatenate([glorot((shape[0], width), dtype=dtype)
                                    for glorot in glorots], axis=1)

        self.kernel = self.add_weight(shape=(self.vocab_size, self.output_dim), name="kernel",
                                      initializer=init)
        self.built = True

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        rows = ops.take(self.kernel, ops.maximum(ids - 1, 0), axis=0)
        return rows * ops.expand_dims(ops.cast(ops.not_equal(ids, 0), rows.dtype), -1)

    def compute_mask(self, ids, mask=None):
        return ops.not_equal(ids, 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "output_dim": self.output_dim, "blocks": self.blocks, "mask_zero": self.mask_zero,
                "seed": self.seed}


def selection(rows: int, columns: int, block: int) -> np.ndarray:
    """rows x columns 0/1 matrix taking columns [block * columns, (block + 1) * columns) of its
    input: the identity when rows == columns."""
    out = np.zeros((rows, columns), dtype="float32")
    out[np.arange(block * columns, (block + 1) * columns), np.arange(columns)] = 1.0
    return out


class _SelectsBlock:
    """Mixin for a recurrent layer after `OneHotProjection`: its input kernel is the fixed,
    non-trainable selection of block `block` of its input."""

    def __init__(self, *args, block: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.block = int(block)

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(sequences_shape, initial_state_shape)
        kernel = self.cell.kernel
        kernel.assign(selection(*kernel.shape, self.block))
        kernel.trainable = False

    def get_config(self):
        return {**super().get_config(), "block": self.block}


def _register(base):
    cls = type(f"OneHot{base.__name__}", (_SelectsBlock, base),
               {"__doc__": f"`{base.__name__}` whose input kernel selects one block of a "
                           "`OneHotProjection` (fixed, not trained)."})
    cls.__module__ = __name__
    return keras.saving.register_keras_serializable(package="rnnflow")(cls)


_PINNED = {base: _register(base) for base in (
    fused.FusedSimpleRNN, fused.FusedGRU, fused.FusedLSTM,
    keras.layers.SimpleRNN, keras.layers.GRU, keras.layers.LSTM)}


def pinned(layer, block: int):
    """The same recurrent layer (fused or stock, as `fused.recurrent_layer` chose), taking its
    input from block `block` of a one-hot projection."""
    return _PINNED[type(layer)].from_config({**layer.get_config(), "block": block})
