"""Recurrent layers that compute Keras's exact function, faster on CPU.

`FusedSimpleRNN`, `FusedGRU` and `FusedLSTM` are drop-in replacements for
`keras.layers.SimpleRNN`, `GRU` (``reset_after=True``) and `LSTM`. They *are*
those layers (subclasses): the same cell, the same weights with the same
names, shapes and order, the same config, masking, ``go_backwards``,
``return_state``, ``Bidirectional`` and stacking behaviour. Only the time loop
is replaced, so ``fused.set_weights(stock.get_weights())`` (and the reverse)
gives the same outputs to float32 rounding.

Why the loop is replaced: on a CPU the stock loop spends its time on
per-step overhead, not on arithmetic. At the lesson's shapes (batch 32,
400 steps, 50-64 units) one step's matrix product is a few microseconds of
work, while the stock step also projects the input, reads and writes tensor
arrays, applies the mask and runs TensorFlow's generic backward pass through
every one of those ops. These layers do three things instead:

* the input projection ``x @ W + b`` for all steps is ONE 2-D matrix product
  of shape ``(batch * time, input_dim) @ (input_dim, k * units)`` before the
  loop; the loop only does ``h @ U`` and the gate arithmetic;
* the backward pass is written by hand (`tf.custom_gradient`): one reverse
  loop carrying ``dh`` (and ``dc``), with the gate derivatives precomputed in
  one vectorised pass from the saved states; after the loop ``dU`` is ONE
  matrix product over all steps (``h_{t-1}^T @ dz``) and ``dW`` / ``db`` are
  left to TensorFlow's gradient of the one input projection;
* behind a `TokenVectors` lookup (what `rnnflow.network.model.build_model` uses), the
  projection is computed once per distinct token id of the batch and gathered back to the
  positions;
* each while-loop iteration runs `steps` time steps (8 by default), unrolled
  in its body, so the loop's own bookkeeping is paid once per 8 steps; the
  remainder (``time % steps``) is unrolled after the loop.

How much faster, per cell, and what was tried and did not pay (XLA, `tf.scan`, more
``parallel_iterations``, stock ``unroll=True``, einsum for the projection): bench/NOTES.md,
measured with ``python -m bench.kernels``.

For inference a layer may take its inputs already projected (``projected_input=True``):
`rnnflow.network.model.inference_model` multiplies the frozen word-vector table by the input
kernel once, so evaluation looks each token's ``x @ W + b`` up instead of computing it per
step.

Configurations the hand-written kernel does not cover (``recurrent_dropout``,
activations other than tanh/sigmoid, ``reset_after=False``, non-float32
compute, backends other than TensorFlow, cuDNN-eligible GRU/LSTM on a GPU)
run the stock Keras loop of the same layer, so the layer is always correct;
`recurrent_layer` says which configurations those are before building.

Weights move between fused and stock models with ``get_weights``/``set_weights``
(same list, same order). Keras's ``.weights.h5`` files are keyed by layer class
name, so a stock model's weights file does not load into a fused model directly.
"""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf
from keras import activations, tree

__all__ = [
    "FusedGRU",
    "FusedLSTM",
    "FusedSimpleRNN",
    "TokenVectors",
    "fallback_reason",
    "recurrent_layer",
]

# Time steps per while-loop iteration. 8 amortises the loop bookkeeping
# (a handful of ops per iteration) over enough steps that the step's own ops
# dominate, while keeping the traced graph small (8 copies of the step).
DEFAULT_STEPS = 8

_CELLS = ("simple_rnn", "gru", "lstm")


# --------------------------------------------------------------------------
# The time loop: `steps` time steps per while-loop iteration.
# --------------------------------------------------------------------------


def _loop(step, xs, carry, steps, n_out, reverse=False):
    """Runs ``step`` over time-major sequences, ``steps`` per iteration.

    ``step(inputs_t, carry) -> (carry, outputs_t)`` where ``inputs_t`` and
    ``outputs_t`` (``n_out`` float32 tensors) are tuples of per-step tensors,
    batch first. ``xs`` is a tuple of ``(time, batch, ...)`` tensors. Returns
    the final carry and the outputs stacked time-major in time order (also
    when ``reverse``, which walks from the last step to the first).
    """
    time = xs[0].shape[0]
    if time is None:
        # Length unknown when tracing: one step per iteration, no remainder.
        time = tf.shape(xs[0])[0]
        n_blocks, block, rem, main = time, 1, 0, time
    else:
        block = max(1, min(steps, time))
        n_blocks, rem = divmod(time, block)
        main = n_blocks * block

    def run_block(inputs, carry):
        length = inputs[0].shape[0]
        per_step = [tf.unstack(x, num=length) for x in inputs]
        outs = [None] * length
        for j in range(length - 1, -1, -1) if reverse else range(length):
            carry, outs[j] = step(tuple(p[j] for p in per_step), carry)
        return carry, tuple(tf.stack(o) for o in zip(*outs, strict=True))

    def run_main(carry):
        blocked = [
            tf.reshape(x[:main], tf.concat([[n_blocks, block], tf.shape(x)[1:]], 0)) for x in xs
        ]
        tas_in = [
            tf.TensorArray(x.dtype, size=n_blocks).unstack(b)
            for x, b in zip(xs, blocked, strict=True)
        ]

        def body(i, carry, tas_out):
            idx = n_blocks - 1 - i if reverse else i
            inputs = []
            for ta, x in zip(tas_in, xs, strict=True):
                t = ta.read(idx)
                t.set_shape([block, *x.shape[1:]])
                inputs.append(t)
            carry, outs = run_block(inputs, carry)
            return (
                i + 1,
                carry,
                tuple(ta.write(idx, o) for ta, o in zip(tas_out, outs, strict=True)),
            )

        tas_out = tuple(tf.TensorArray(tf.float32, size=n_blocks) for _ in range(n_out))
        _, carry, tas_out = tf.while_loop(
            lambda i, *_: i < n_blocks,
            body,
            (tf.constant(0), carry, tas_out),
            maximum_iterations=n_blocks,
        )
        outs = []
        for ta in tas_out:
            stacked = ta.stack()
            outs.append(tf.reshape(stacked, tf.concat([[main], tf.shape(stacked)[2:]], 0)))
        return carry, tuple(outs)

    def run_rem(carry):
        return run_block([x[main:] for x in xs], carry)

    if reverse:
        carry, tail = run_rem(carry) if rem else (carry, None)
        carry, head = run_main(carry)
    else:
        carry, head = run_main(carry)
        carry, tail = run_rem(carry) if rem else (carry, None)
    if tail is None:
        return carry, head
    return carry, tuple(tf.concat([a, b], 0) for a, b in zip(head, tail, strict=True))


def _prev(first, seq):
    """``[first, seq[0], ..., seq[T-2]]``: the state entering each step."""
    return tf.concat([first[None], seq[:-1]], 0)


def _flat(x):
    return tf.reshape(x, [-1, x.shape[-1]])


def _gemm_over_time(h_prev, dz):
    """``sum_t h_{t-1}^T @ dz_t`` as one matrix product."""
    return tf.matmul(_flat(h_prev), _flat(dz), transpose_a=True)


# --------------------------------------------------------------------------
# Kernels. Each takes the hoisted input projection `xw` (time, batch, k*u),
# the initial state(s), the recurrent kernel and a time-major boolean mask
# (time, batch, 1) or None, and returns (all states h, final state(s)).
# --------------------------------------------------------------------------


def _simple_rnn(xw, h0, u_mat, mask, steps):
    fmask = None if mask is None else tf.cast(mask, xw.dtype)

    @tf.custom_gradient
    def core(xw, h0, u_mat):
        def step(inp, carry):
            (h,) = carry
            hn = tf.tanh(inp[0] + tf.matmul(h, u_mat))
            if mask is not None:
                hn = tf.where(inp[1], hn, h)
            return (hn,), (hn,)

        xs = (xw,) if mask is None else (xw, mask)
        (h_last,), (hs,) = _loop(step, xs, (h0,), steps, 1)

        def grad(d_hs, d_last):
            # dz_t = g_t * (1 - h_t^2) (zero where masked); the carried
            # gradient is dz_t @ U^T, plus g_t itself through masked steps.
            deriv = 1.0 - hs * hs
            if fmask is not None:
                deriv = deriv * fmask
            d_hs = tf.zeros_like(hs) if d_hs is None else d_hs
            d_last = tf.zeros_like(h0) if d_last is None else d_last

            def bstep(inp, carry):
                g = carry[0] + inp[1]
                dz = g * inp[0]
                dh = tf.matmul(dz, u_mat, transpose_b=True)
                if fmask is not None:
                    dh = dh + g * inp[2]
                return (dh,), (dz,)

            bxs = (deriv, d_hs) + (() if fmask is None else (1.0 - fmask,))
            (dh0,), (dz,) = _loop(bstep, bxs, (d_last,), steps, 1, True)
            return dz, dh0, _gemm_over_time(_prev(h0, hs), dz)

        return (hs, h_last), grad

    return core(xw, h0, u_mat)


def _gru(xw, h0, u_mat, b_rec, mask, steps):
    units = h0.shape[-1]
    fmask = None if mask is None else tf.cast(mask, xw.dtype)

    @tf.custom_gradient
    def core(xw, h0, u_mat, b_rec):
        # Same op order as keras GRUCell (implementation 2, reset_after).
        x_zr, x_h = xw[..., : 2 * units], xw[..., 2 * units :]

        def step(inp, carry):
            (h,) = carry
            inner = tf.matmul(h, u_mat) + b_rec
            r_zr, r_h = tf.split(inner, [2 * units, units], axis=-1)
            z, r = tf.split(tf.sigmoid(inp[0] + r_zr), 2, axis=-1)
            hh = tf.tanh(inp[1] + r * r_h)
            hn = z * h + (1 - z) * hh
            if mask is not None:
                hn = tf.where(inp[2], hn, h)
            return (hn,), (hn,)

        xs = (x_zr, x_h) if mask is None else (x_zr, x_h, mask)
        (h_last,), (hs,) = _loop(step, xs, (h0,), steps, 1)

        def grad(d_hs, d_last):
            # Gate values for every step, recomputed in one vectorised pass
            # from the saved states (one GEMM), then the derivative of the
            # step is linear in the incoming gradient g:
            #   dz_input = [g,g,g] * C, dz_recurrent = [g,g,g] * C_rec,
            #   dh_prev  = dz_recurrent @ U^T + g * z.
            h_prev = _prev(h0, hs)
            inner = tf.reshape(tf.matmul(_flat(h_prev), u_mat) + b_rec, tf.shape(xw))
            r_zr, r_h = inner[..., : 2 * units], inner[..., 2 * units :]
            z, r = tf.split(tf.sigmoid(x_zr + r_zr), 2, axis=-1)
            hh = tf.tanh(x_h + r * r_h)
            c_z = (h_prev - hh) * z * (1 - z)
            c_hh = (1 - z) * (1 - hh * hh)
            c_r = c_hh * r_h * r * (1 - r)
            coef_in = tf.concat([c_z, c_r, c_hh], -1)
            coef_rec = tf.concat([c_z, c_r, c_hh * r], -1)
            through = z
            if fmask is not None:
                coef_in = coef_in * fmask
                coef_rec = coef_rec * fmask
                through = z * fmask + (1.0 - fmask)
            d_hs = tf.zeros_like(hs) if d_hs is None else d_hs
            d_last = tf.zeros_like(h0) if d_last is None else d_last

            def bstep(inp, carry):
                g = carry[0] + inp[2]
                dz = tf.concat([g, g, g], -1) * inp[0]
                dh = tf.matmul(dz, u_mat, transpose_b=True) + g * inp[1]
                return (dh,), (g,)

            (dh0,), (gs,) = _loop(bstep, (coef_rec, through, d_hs), (d_last,), steps, 1, True)
            g3 = tf.concat([gs, gs, gs], -1)
            dz_rec = g3 * coef_rec
            return (
                g3 * coef_in,
                dh0,
                _gemm_over_time(h_prev, dz_rec),
                tf.reduce_sum(_flat(dz_rec), 0),
            )

        return (hs, h_last), grad

    return core(xw, h0, u_mat, b_rec)


def _lstm(xw, h0, c0, u_mat, mask, steps):
    fmask = None if mask is None else tf.cast(mask, xw.dtype)

    @tf.custom_gradient
    def core(xw, h0, c0, u_mat):
        def step(inp, carry):
            h, c = carry
            zi, zf, zc, zo = tf.split(inp[0] + tf.matmul(h, u_mat), 4, -1)
            i, f, o = tf.sigmoid(zi), tf.sigmoid(zf), tf.sigmoid(zo)
            cn = f * c + i * tf.tanh(zc)
            hn = o * tf.tanh(cn)
            if mask is not None:
                hn = tf.where(inp[1], hn, h)
                cn = tf.where(inp[1], cn, c)
            return (hn, cn), (hn, cn)

        xs = (xw,) if mask is None else (xw, mask)
        (h_last, c_last), (hs, cs) = _loop(step, xs, (h0, c0), steps, 2)

        def grad(d_hs, d_hlast, d_clast):
            # Gates for every step in one vectorised pass (one GEMM), then
            # per step, with gh / gc the incoming gradients of h / c:
            #   dc = gc + gh * o (1 - tanh(c)^2)
            #   dz = [dc, dc, dc, gh] * C        (C: gate derivatives)
            #   dh_prev = dz @ U^T,  dc_prev = dc * f.
            h_prev, c_prev = _prev(h0, hs), _prev(c0, cs)
            zz = xw + tf.reshape(tf.matmul(_flat(h_prev), u_mat), tf.shape(xw))
            zi, zf, zc, zo = tf.split(zz, 4, -1)
            i, f, o, gc_ = tf.sigmoid(zi), tf.sigmoid(zf), tf.sigmoid(zo), tf.tanh(zc)
            tc = tf.tanh(cs)
            q = o * (1 - tc * tc)
            coef = tf.concat(
                [
                    gc_ * i * (1 - i),
                    c_prev * f * (1 - f),
                    i * (1 - gc_ * gc_),
                    tc * o * (1 - o),
                ],
                -1,
            )
            keep = f
            if fmask is not None:
                coef = coef * fmask
                keep = f * fmask
            d_hs = tf.zeros_like(hs) if d_hs is None else d_hs
            d_hlast = tf.zeros_like(h0) if d_hlast is None else d_hlast
            d_clast = tf.zeros_like(c0) if d_clast is None else d_clast

            def bstep(inp, carry):
                gh = carry[0] + inp[3]
                gc = carry[1]
                dc = gc + gh * inp[0]
                dz = tf.concat([dc, dc, dc, gh], -1) * inp[1]
                dh = tf.matmul(dz, u_mat, transpose_b=True)
                dcp = dc * inp[2]
                if fmask is not None:
                    dh = dh + gh * inp[4]
                    dcp = dcp + gc * inp[4]
                return (dh, dcp), (dz,)

            bxs = (q, coef, keep, d_hs)
            if fmask is not None:
                bxs = bxs + (1.0 - fmask,)
            (dh0, dc0), (dz,) = _loop(bstep, bxs, (d_hlast, d_clast), steps, 1, True)
            return dz, dh0, dc0, _gemm_over_time(h_prev, dz)

        return (hs, h_last, c_last), grad

    return core(xw, h0, c0, u_mat)


# --------------------------------------------------------------------------
# The layers.
# --------------------------------------------------------------------------


def _value(v):
    return tf.convert_to_tensor(v.value if hasattr(v, "value") else v)


# --------------------------------------------------------------------------
# Distinct tokens: the input projection of a word-vector lookup.
# --------------------------------------------------------------------------

# The latest TokenVectors call: weak references to its output, its ids and the layer (weak, so
# the record never keeps a batch or a traced graph alive). A fused layer called on exactly that
# output tensor projects the batch's distinct tokens instead of every position; on any other
# input (a later call replaced the record, an interpolated input as in integrated gradients,
# another thread's batch) it projects x as is.
_LATEST_LOOKUP = None


@keras.saving.register_keras_serializable(package="rnnflow")
class TokenVectors(keras.layers.Embedding):
    """`keras.layers.Embedding` (same weights, config and outputs) whose output tells a fused
    recurrent layer which token ids it holds.

    The projection ``x @ W + b`` of a batch of word vectors repeats the same rows: a batch of
    32 IMDB reviews x 400 steps holds about 2,000 distinct ids among its 12,800 positions
    (padding included). Given the ids, the fused layer computes ``table[unique] @ W + b`` and
    gathers it back to the positions: the same function (equal to float32 rounding; tests
    compare outputs and gradients with the stock layers), with about a sixth of the
    multiply-adds in the forward pass and in the gradient of ``W`` (what that gains in fit
    samples/s: bench/NOTES.md).
    """

    def call(self, inputs):
        global _LATEST_LOOKUP
        outputs = super().call(inputs)
        try:
            _LATEST_LOOKUP = (weakref.ref(outputs), weakref.ref(inputs), weakref.ref(self))
        except TypeError:  # ids that cannot be referenced weakly (a list): no record
            _LATEST_LOOKUP = None
        return outputs


def _token_source(sequences):
    """(ids, table) when `sequences` is the latest TokenVectors output, else None."""
    latest = _LATEST_LOOKUP
    if latest is None or latest[0]() is not sequences:
        return None
    ids, layer = latest[1](), latest[2]()
    return None if ids is None or layer is None else (ids, _value(layer.embeddings))


def _project_distinct(ids, table, kernel, bias):
    """``table[ids] @ kernel + bias`` with each distinct id projected once."""
    distinct, where = tf.unique(tf.reshape(ids, [-1]))
    rows = tf.matmul(tf.gather(table, distinct), kernel)
    if bias is not None:
        rows = rows + bias
    shape = tf.shape(ids)
    xw = tf.reshape(tf.gather(rows, where), [shape[0], shape[1], kernel.shape[-1]])
    xw.set_shape([ids.shape[0], ids.shape[1], kernel.shape[-1]])
    return xw


class _FusedLoop:
    """Mixin: replaces `RNN.inner_loop` with the fused kernel when it can."""

    _kind = None  # "simple_rnn" | "gru" | "lstm"

    def _init_fused(self, steps, projected_input):
        steps = int(steps)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps = steps
        # Inputs are already x @ W + b (the input bias, for GRU); the layer's own kernel and
        # input bias are then unused. Inference only: see `rnnflow.network.model.inference_model`.
        self.projected_input = bool(projected_input)

    def fused_unsupported(self, training=False):
        """Why this layer's call runs the stock Keras loop, or None."""
        cell = self.cell
        reason = _unsupported(
            self._kind,
            compute_dtype=cell.compute_dtype,
            activation=cell.activation,
            recurrent_activation=getattr(cell, "recurrent_activation", None),
            recurrent_dropout=cell.recurrent_dropout,
            dropout=cell.dropout if training else 0.0,
            implementation=getattr(cell, "implementation", 2),
            reset_after=getattr(cell, "reset_after", True),
            use_cudnn=getattr(self, "use_cudnn", False),
        )
        return reason

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        if self.projected_input and (training or self.fused_unsupported() is not None):
            raise ValueError(f"{self.name}: projected inputs are for inference with the fused "
                             "loop only")
        if self.fused_unsupported(training) is not None:
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        cell = self.cell
        x = sequences
        if training and 0.0 < cell.dropout < 1.0:
            # Same cached mask the stock cell applies at every step.
            x = x * tf.expand_dims(cell.get_dropout_mask(x[:, 0, :]), 1)
        units = cell.units
        u_mat = _value(cell.recurrent_kernel)
        bias = None if cell.bias is None else _value(cell.bias)
        b_rec = bias[1] if bias is not None and self._kind == "gru" else None

        in_bias = None if bias is None else (bias[0] if self._kind == "gru" else bias)
        # Not after input dropout: its mask differs per review, so x is no longer a lookup.
        source = None if self.projected_input or x is not sequences else (
            _token_source(sequences))
        if self.projected_input:
            xw = x
        elif source is not None:
            # x is a TokenVectors lookup: project each distinct token of the batch once.
            xw = _project_distinct(*source, _value(cell.kernel), in_bias)
        else:
            # The hoisted input projection: one 2-D GEMM for all time steps.
            kernel = _value(cell.kernel)
            shape = tf.shape(x)
            batch, time = shape[0], shape[1]
            xw = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel)
            if in_bias is not None:
                xw = xw + in_bias
            xw = tf.reshape(xw, [batch, time, kernel.shape[-1]])
            xw.set_shape([x.shape[0], x.shape[1], kernel.shape[-1]])
        xw = tf.transpose(xw, [1, 0, 2])  # time-major

        m = None
        if mask is not None:
            m = tf.cast(mask, tf.bool)
            if len(m.shape) == 3:
                m = m[..., 0]
            m = tf.expand_dims(tf.transpose(m, [1, 0]), -1)
        if self.go_backwards:
            xw = tf.reverse(xw, [0])
            if m is not None:
                m = tf.reverse(m, [0])

        states = [tf.convert_to_tensor(s) for s in initial_state]
        if self._kind == "simple_rnn":
            hs, h_last = _simple_rnn(xw, states[0], u_mat, m, self.steps)
            new_states = [h_last]
        elif self._kind == "gru":
            if b_rec is None:
                b_rec = tf.zeros([3 * units], xw.dtype)
            hs, h_last = _gru(xw, states[0], u_mat, b_rec, m, self.steps)
            new_states = [h_last]
        else:
            hs, h_last, c_last = _lstm(xw, states[0], states[1], u_mat, m, self.steps)
            new_states = [h_last, c_last]

        # Keras's masked output: the carried state, or zeros when
        # zero_output_for_mask (Bidirectional sets it with return_sequences).
        last_output = h_last
        if m is not None and self.zero_output_for_mask:
            hs = tf.where(m, hs, tf.zeros_like(hs))
            last_output = hs[-1]
        if self.return_sequences:
            outputs = tf.transpose(hs, [1, 0, 2])
        else:
            outputs = tf.expand_dims(last_output, 1)
        return last_output, outputs, new_states

    def get_config(self):
        config = super().get_config()
        config["steps"] = self.steps
        if self.projected_input:
            config["projected_input"] = True
        return config


@keras.saving.register_keras_serializable(package="rnnflow")
class FusedSimpleRNN(_FusedLoop, keras.layers.SimpleRNN):
    """`keras.layers.SimpleRNN` with a fused CPU loop (same weights, same math).

    ``steps``: time steps per loop iteration (default 8); ``projected_input``: the inputs are
    already ``x @ kernel + bias`` (inference only).
    """

    _kind = "simple_rnn"

    def __init__(self, units, steps=DEFAULT_STEPS, projected_input=False, **kwargs):
        super().__init__(units, **kwargs)
        self._init_fused(steps, projected_input)


@keras.saving.register_keras_serializable(package="rnnflow")
class FusedGRU(_FusedLoop, keras.layers.GRU):
    """`keras.layers.GRU` (reset_after=True) with a fused CPU loop.

    ``steps``: time steps per loop iteration (default 8); ``projected_input``: the inputs are
    already ``x @ kernel + bias`` (inference only).
    """

    _kind = "gru"

    def __init__(self, units, steps=DEFAULT_STEPS, projected_input=False, **kwargs):
        super().__init__(units, **kwargs)
        self._init_fused(steps, projected_input)


@keras.saving.register_keras_serializable(package="rnnflow")
class FusedLSTM(_FusedLoop, keras.layers.LSTM):
    """`keras.layers.LSTM` with a fused CPU loop (same weights, same math).

    ``steps``: time steps per loop iteration (default 8); ``projected_input``: the inputs are
    already ``x @ kernel + bias`` (inference only).
    """

    _kind = "lstm"

    def __init__(self, units, steps=DEFAULT_STEPS, projected_input=False, **kwargs):
        super().__init__(units, **kwargs)
        self._init_fused(steps, projected_input)


_FUSED = {"simple_rnn": FusedSimpleRNN, "gru": FusedGRU, "lstm": FusedLSTM}
_STOCK = {
    "simple_rnn": keras.layers.SimpleRNN,
    "gru": keras.layers.GRU,
    "lstm": keras.layers.LSTM,
}


def _gpu_visible():
    return bool(tf.config.list_logical_devices("GPU"))


def _unsupported(
    kind,
    *,
    compute_dtype,
    activation,
    recurrent_activation,
    recurrent_dropout,
    dropout,
    implementation,
    reset_after,
    use_cudnn,
):
    if keras.backend.backend() != "tensorflow":
        return f"the {keras.backend.backend()} backend (the fused kernel is TensorFlow only)"
    if compute_dtype != "float32":
        return f"compute dtype {compute_dtype} (the fused kernel is float32 only)"
    if recurrent_dropout:
        return "recurrent_dropout needs the per-step Keras loop"
    if activation is not activations.tanh:
        return "activation other than tanh"
    if kind == "simple_rnn":
        return None
    if recurrent_activation is not activations.sigmoid:
        return "recurrent_activation other than sigmoid"
    if dropout and implementation == 1:
        return "dropout with implementation=1 (one dropout mask per gate)"
    if kind == "gru" and not reset_after:
        return "reset_after=False"
    if use_cudnn in ("auto", True) and _gpu_visible():
        return "a GPU is visible and the stock layer uses cuDNN there"
    return None


def fallback_reason(cell: str, **kw) -> str | None:
    """Why ``recurrent_layer(cell, ..., kernel="fused", **kw)`` gives the stock
    Keras layer, or None when the fused kernel covers the configuration."""
    if cell not in _CELLS:
        raise ValueError(f"cell must be one of {_CELLS}, got {cell!r}")
    policy = keras.dtype_policies.get(kw.get("dtype") or keras.config.dtype_policy())
    return _unsupported(
        cell,
        compute_dtype=policy.compute_dtype,
        activation=activations.get(kw.get("activation", "tanh")),
        recurrent_activation=activations.get(kw.get("recurrent_activation", "sigmoid")),
        recurrent_dropout=kw.get("recurrent_dropout", 0.0),
        dropout=kw.get("dropout", 0.0),
        implementation=kw.get("implementation", 2),
        reset_after=kw.get("reset_after", True),
        use_cudnn=kw.get("use_cudnn", "auto"),
    )


def recurrent_layer(
    cell: str,
    units: int,
    *,
    return_sequences: bool,
    kernel: str = "fused",
    name: str | None = None,
    **kw,
) -> tuple[keras.layers.Layer, str | None]:
    """The recurrent layer for ``cell`` ("simple_rnn", "gru", "lstm").

    ``kernel="fused"`` gives the fused layer; when the configuration is one
    the fused kernel does not cover it gives the stock Keras layer instead
    and a one-line reason (else the reason is None). ``kernel="keras"``
    always gives the stock layer. ``**kw`` go to the layer's constructor
    (``go_backwards``, ``dropout``, initialisers, ...).
    """
    if cell not in _CELLS:
        raise ValueError(f"cell must be one of {_CELLS}, got {cell!r}")
    if kernel not in ("fused", "keras"):
        raise ValueError(f"kernel must be 'fused' or 'keras', got {kernel!r}")
    if kernel == "fused":
        steps = kw.pop("steps", DEFAULT_STEPS)
        reason = fallback_reason(cell, **kw)
        if reason is None:
            layer = _FUSED[cell](
                units,
                steps=steps,
                return_sequences=return_sequences,
                name=name,
                **kw,
            )
            return layer, None
        reason = f"{cell}: stock Keras layer ({reason})"
    else:
        kw.pop("steps", None)
        reason = None
    return _STOCK[cell](units, return_sequences=return_sequences, name=name, **kw), reason
