"""MaxOverTime: the max of each feature over the time steps, padding left out (`model.pooling:
max`). Keras's GlobalMaxPooling1D ignores a mask; a bidirectional layer outputs zeros at masked
steps, which would beat every negative real output, so the masked steps are set below every
real value first."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="rnnflow")
class MaxOverTime(keras.layers.Layer):
    """(batch, steps, features) -> (batch, features): the max over the unmasked steps (a row
    with no unmasked step gives zeros, not the lowest float)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.max(inputs, axis=1)
        keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
        # Below every value of the batch, in its own dtype (float16 under mixed precision).
        floor = ops.min(inputs) - 1
        pooled = ops.max(ops.where(keep, inputs, floor), axis=1)
        any_step = ops.any(keep, axis=1)
        return ops.where(any_step, pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None  # one vector per text: nothing left to mask

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])
