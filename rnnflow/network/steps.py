"""The lesson's "better way" of backpropagating through time (`train.loss_steps: all`): the
head read after every time step, each real step's output scored against the review's label.

How it is built (rnnflow/network/model.py, `build_model(..., steps=True)`):
- the network masks padding, so a padded step carries the last real step's state and the
  loss and the prediction see real tokens only;
- a last-state network's last recurrent layer returns every step and the head (a Dense)
  reads each step: the output after step t is the head on the state after t;
- the lesson's Flatten network (`model.return_sequences: true`) cannot read a step alone: its
  Dense reads maxlen x units numbers at once. Its output after step t is that same Dense on the
  states so far with the later (and padded) steps' states zero, `PrefixDense`: the Flatten
  head reading what the network has produced up to t. Its weights are the Dense's, unchanged.

The loss (`StepLoss`) is the cross-entropy at every step, averaged by Keras over the real
(unmasked) steps of a batch: a review counts once per real token. The prediction is the output
at the last real step; training's `accuracy` is measured there (`StepAccuracy`), so its
history means what a `last` model's does.

`prediction_twin` (model.py) gives the model the run evaluates, logs and serves: the same
weights in the network that outputs only that last real step, an ordinary rnnflow network of
stock layer kinds (a masked last-state network; or masked Flatten, the recurrent layer
outputting zeros at padded steps). So prediction, `mlflow models serve` and the stock twin need
nothing new.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "rnnflow"


@keras.saving.register_keras_serializable(PACKAGE)
class PrefixDense(keras.layers.Layer):
    """Dense(Flatten(h_1..h_t, 0, ..., 0)) for every t: the Flatten head after each step.

    Its kernel is the Dense's (steps x units rows, row s * units + u for state u of step s),
    so the per-step contributions h_s W_s summed up to t give step t's logits: one pass, not
    one Dense per step."""

    def __init__(self, units: int, activation: str = "sigmoid",
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True  # the loss reads the real steps from the mask

    def build(self, input_shape):
        _, steps, width = input_shape
        if steps is None:
            raise ValueError("PrefixDense needs a fixed number of time steps (pad.maxlen)")
        self.kernel = self.add_weight(name="kernel", shape=(steps * width, self.units),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        _, steps, width = inputs.shape
        kernel = ops.reshape(self.kernel, (steps, width, self.units))
        parts = ops.einsum("btu,tuk->btk", ops.cast(inputs, self.compute_dtype), kernel)
        return self.activation(ops.cumsum(parts, axis=1) + self.bias)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


def _per_step_labels(y_true, y_pred):
    """The review's label repeated at every step of `y_pred` (batch x steps x width)."""
    y = ops.reshape(ops.cast(y_true, "int32"), (-1, 1))
    return ops.broadcast_to(y, ops.shape(y_pred)[:2])


@keras.saving.register_keras_serializable(PACKAGE)
class StepLoss(keras.losses.Loss):
    """Cross-entropy between the review's label and the output at every step (binary on one
    sigmoid unit, sparse categorical on a softmax). It returns batch x steps values; Keras
    weighs them by y_pred's mask, so a batch's loss is their mean over its real steps (and a
    class weight multiplies each of its review's steps)."""

    def __init__(self, name: str = "step_loss", reduction: str = "sum_over_batch_size",
                 **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        labels = _per_step_labels(y_true, y_pred)
        if y_pred.shape[-1] == 1:
            return keras.losses.binary_crossentropy(
                ops.expand_dims(ops.cast(labels, y_pred.dtype), -1), y_pred)
        return keras.losses.sparse_categorical_crossentropy(labels, y_pred)


@keras.saving.register_keras_serializable(PACKAGE)
class StepAccuracy(keras.metrics.Mean):
    """The accuracy of the prediction, the output at the last step. A padded step carries the
    last real step's output (the network masks padding), so the last step is the last real
    one's."""

    def __init__(self, name: str = "accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        last = y_pred[:, -1, :]
        y = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        if last.shape[-1] == 1:
            said = ops.cast(last[:, 0] > 0.5, "int32")
        else:
            said = ops.cast(ops.argmax(last, axis=-1), "int32")
        return super().update_state(ops.cast(ops.equal(said, y), self.dtype), sample_weight)


def outputs_every_step(model) -> bool:
    """Whether `model` outputs a value per time step (a `loss_steps: all` training model)."""
    return len(model.output_shape) == 3
