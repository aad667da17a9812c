"""build_model: the lesson's network, fed int32 token ids through a frozen word2vec Embedding
(or, with one-hot inputs, a trainable row lookup of the input weights: onehot.py beside it)."""

from __future__ import annotations

import logging
import warnings

import numpy as np

from rnnflow.config import ModelConfig

log = logging.getLogger(__name__)

# A masked Flatten network (`train.loss_steps: all`, whose last recurrent layer outputs zeros at
# padded steps) hands its mask to Flatten on purpose: the zeros are what the head must read
# there. Keras warns of the lost mask each time such a model is built or loaded, `rnnflow
# explain` and `predict` included; said here once instead.
warnings.filterwarnings("ignore", category=UserWarning,
                        message=r"Layer '.*' \(of type Flatten\) was passed an input with a mask")


def build_model(cfg: ModelConfig, weights: np.ndarray | None, maxlen: int | None,
                trainable_embedding: bool = False, *, onehot_tokens: int | None = None,
                mask: bool = False, stock: bool = False, n_classes: int = 2,
                seed: int | None = None, steps: bool = False):
    """The lesson's network over int32 token ids of length `maxlen` (None: any length).

    `weights` is the (V+1) x dim vector table, row 0 the padding vector; with `weights` None the
    input is one-hot over `onehot_tokens` (V) tokens (onehot.py). `mask`: padding (id 0) is
    masked, so the recurrent layers carry their state through it: what bucketed batches and
    `pad.maxlen: null` need. `stock`: stock Keras layers only (the one-hot lookup becomes an
    Embedding with a zero row 0, its selection an ordinary kernel): see `stock_twin`.
    Two classes end in one sigmoid unit (the probability of class 1), `n_classes` > 2 in a
    softmax over `n_classes` units.
    `seed`: every random layer (initial weights, dropout masks) gets its own seed drawn from it,
    so the same seed builds the same model in any process and beside any thread (see
    `layer_seeds`). None leaves Keras's defaults, drawn from Python's global `random`.
    `steps`: the output after every time step, batch x steps x classes (`train.loss_steps:
    all`, rnnflow/network/steps.py): the last recurrent layer returns every step and the head
    reads each one (a Flatten network's head becomes a `PrefixDense`, the same weights).
    """
    import keras
    from keras import layers

    from rnnflow.network.fused import TokenVectors, recurrent_layer
    from rnnflow.network.onehot import GATES, OneHotProjection, pinned
    from rnnflow.network.pooling import MaxOverTime
    from rnnflow.network.steps import PrefixDense

    seeds = layer_seeds(seed)
    inputs = keras.Input(shape=(maxlen,), dtype="int32", name="token_ids")
    onehot = weights is None
    directions = 2 if cfg.bidirectional else 1
    if onehot:
        width = directions * GATES[cfg.cell] * cfg.num_neurons
        embed = (layers.Embedding(onehot_tokens + 1, width, mask_zero=mask, name="onehot")
                 if stock else
                 OneHotProjection(onehot_tokens, width, blocks=directions, mask_zero=mask,
                                  name="onehot", seed=next(seeds)))
    else:
        # Looking ids up in a frozen copy of the word2vec table is the same function as the
        # book's docs x maxlen x 300 float input, without materialising it. Unmasked (the
        # book): padding reaches the RNN as zero vectors.
        # With fused layers the lookup is a TokenVectors (an Embedding that tells the first
        # recurrent layer its ids, so it projects each distinct token of a batch once).
        lookup = layers.Embedding if stock or cfg.kernel == "keras" else TokenVectors
        embed = lookup(weights.shape[0], weights.shape[1], trainable=trainable_embedding,
                       mask_zero=mask, name="word2vec")
    x = embed(inputs)
    kernel = "keras" if stock else cfg.kernel
    for i in range(cfg.num_layers):
        # Stacked layers hand every time step on; only the last one may return its last state.
        sequences = cfg.return_sequences or steps or i < cfg.num_layers - 1
        name = cfg.cell if i == 0 else f"{cfg.cell}_{i + 1}"

        # Only the first layer reads the one-hot input: its kernel selects its direction's block.
        select = onehot and i == 0 and not stock

        # A masked Flatten network must read zeros at padded steps, not the carried state:
        # only then its head, read after step t, sees the steps so far (steps.py).
        zeros = {"zero_output_for_mask": True} if (
            mask and cfg.return_sequences and i == cfg.num_layers - 1) else {}

        def make(backwards: bool, name=name, sequences=sequences, select=select, zeros=zeros):
            rnn, fallback = recurrent_layer(
                cfg.cell, cfg.num_neurons, return_sequences=sequences, kernel=kernel,
                name=f"backward_{name}" if backwards else name,
                **({"go_backwards": True} if backwards else {}), **zeros,
                **recurrent_seeds(seeds))
            if fallback:  # never fails: a configuration the fused layer cannot do trains stock
                log.info("%s", fallback)
            return pinned(rnn, int(backwards)) if select else rnn

        if not cfg.bidirectional:
            x = make(False)(x)
        else:  # each direction of a one-hot input has its own block of input weights
            # With seeds the backward layer is built here too: Keras's copy of the forward
            # layer would copy its seeds, and both directions would start from the same weights.
            explicit = select or seed is not None
            x = layers.Bidirectional(make(False), backward_layer=make(True) if explicit else None,
                                     name=f"bi_{name}")(x)
    if cfg.pooling == "max":
        # Keras's own layer where nothing is masked, so the exported model stays stock Keras;
        # with masked padding (bucketed batches, maxlen null) rnnflow's, which leaves it out.
        x = (MaxOverTime if mask else layers.GlobalMaxPooling1D)(name="max_over_time")(x)
    elif cfg.pooling == "mean":
        x = layers.GlobalAveragePooling1D(name="mean_over_time")(x)  # reads the mask
    x = layers.Dropout(cfg.dropout, seed=next(seeds))(x)
    head = {"kernel_initializer": keras.initializers.GlorotUniform(seed=next(seeds))}
    if keras.config.dtype_policy().compute_dtype != "float32":
        head["dtype"] = "float32"  # mixed precision: probabilities and the loss in float32
    width, activation, head["name"] = ((n_classes, "softmax", "classes") if n_classes > 2
                                       else (1, "sigmoid", "sentiment"))
    if cfg.return_sequences and steps:  # the Flatten head after each step (config: unpooled)
        outputs = PrefixDense(width, activation=activation, **head)(x)
    else:
        if cfg.return_sequences and cfg.pooling == "none":
            x = layers.Flatten()(x)  # masked (loss_steps: all): padded steps hold zeros
        outputs = layers.Dense(width, activation=activation, **head)(x)
    model = keras.Model(inputs, outputs, name=f"rnnflow_{cfg.cell}")
    if not onehot:
        # Set after building, not via an initializer: a Constant initializer would copy the
        # whole table into the model's JSON config.
        embed.set_weights([weights])
    return model


def layer_seeds(seed: int | None):
    """An endless stream of layer seeds drawn from `seed` (all None for None).

    Keras gives a layer without a seed one drawn from Python's global `random` when the layer is
    made. A Dask worker's event loop draws from that same stream in another thread (jitter,
    peer choice), so a model built there did not match one built by a local run of the same
    `train.seed`. Seeds drawn from a generator of its own depend on `seed` alone; drawing them
    (not `seed + i`) keeps repeats with neighbouring seeds from sharing layers' initial weights.
    """
    if seed is None:
        while True:
            yield None
    rng = np.random.default_rng(seed)
    while True:
        yield int(rng.integers(2**31 - 1))


def recurrent_seeds(seeds) -> dict:
    """A recurrent layer's random arguments: its two initialisers (Keras's defaults, seeded)
    and the seed of its dropout masks; {} when `seeds` yields None."""
    import keras

    seed = next(seeds)
    if seed is None:
        return {}
    return {"kernel_initializer": keras.initializers.GlorotUniform(seed=seed),
            "recurrent_initializer": keras.initializers.Orthogonal(seed=next(seeds)),
            "seed": next(seeds)}


def kernel_used(model, cfg: ModelConfig, resumed: bool = False) -> tuple[str, str]:
    """Which recurrent kernel `model` runs, "fused" or "keras" (stock layers: cuDNN on a GPU for
    GRU and LSTM), and why; the run's `kernel` and `kernel_reason` tags."""
    import keras

    from rnnflow.network.fused import FusedGRU, FusedLSTM, FusedSimpleRNN, fallback_reason

    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            layers += [layer.forward_layer, layer.backward_layer]
        else:
            layers.append(layer)
    fused = any(isinstance(layer, (FusedSimpleRNN, FusedGRU, FusedLSTM)) for layer in layers)
    kernel = "fused" if fused else "keras"
    if resumed and kernel != cfg.kernel:
        return kernel, f"the checkpoint it continues has {kernel} layers"
    if cfg.kernel == "keras":
        return kernel, "model.kernel: keras"
    if fused:
        return kernel, "the fused kernel covers this configuration on this device"
    dtype = next((layer.dtype_policy for layer in layers
                  if isinstance(layer, keras.layers.RNN)), None)
    return kernel, fallback_reason(cfg.cell, dtype=dtype) or "stock layers"


def n_classes(model) -> int:
    """How many classes `model` tells apart: 2 for a sigmoid head, else its softmax width."""
    width = int(model.output_shape[-1])
    return 2 if width == 1 else width


def stock_twin(model, cfg: ModelConfig):
    """The same network and weights with the stock Keras layers: what is exported as the run's
    Keras model, which then loads in any Keras 3 without rnnflow installed."""
    names = [layer.name for layer in model.layers]
    onehot = "onehot" in names
    if cfg.kernel == "keras" and not onehot:
        return model
    embed = model.get_layer("onehot" if onehot else "word2vec")
    if onehot:
        twin = build_model(cfg, None, model.input_shape[1], onehot_tokens=embed.vocab_size,
                           mask=embed.mask_zero, stock=True, n_classes=n_classes(model))
        first, *rest = model.get_weights()
        # The lookup's rows 1..V, below the zero padding row an Embedding needs.
        twin.set_weights([np.vstack([np.zeros_like(first[:1]), first]), *rest])
        return twin
    twin = build_model(cfg.model_copy(update={"kernel": "keras"}),
                       np.zeros(embed.embeddings.shape, dtype="float32"),
                       model.input_shape[1], embed.trainable, mask=embed.mask_zero,
                       n_classes=n_classes(model))
    twin.set_weights(model.get_weights())  # the fused layers keep the stock weight layout
    return twin


def prediction_twin(model, cfg):
    """The network of `model` (a `loss_steps: all` training model, rnnflow/network/steps.py)
    that outputs its last real step only, with the same weights: what is evaluated, logged and
    served."""
    names = [layer.name for layer in model.layers]
    embed = model.get_layer("onehot" if "onehot" in names else "word2vec")
    common = {"mask": True, "n_classes": n_classes(model)}
    if "onehot" in names:
        twin = build_model(cfg, None, model.input_shape[1], onehot_tokens=embed.vocab_size,
                           **common)
    else:
        twin = build_model(cfg, np.zeros(embed.embeddings.shape, dtype="float32"),
                           model.input_shape[1], embed.trainable, **common)
    twin.set_weights(model.get_weights())
    return twin


def inference_model(model):
    """`model`'s function for prediction, with the first recurrent layer's input projection
    looked up instead of computed: the same network when it can be, else `model` itself.

    With a word2vec table E feeding a fused recurrent layer, every step of every review
    computes E[id] @ W + b, 300 x (gates x units) multiply-adds per token: at the lesson's
    shapes most of the arithmetic of inference. Here the table is projected once, E @ W + b
    (V rows, about 1 GFLOP at 35k x 300 x 50), and the layer reads its rows; the rest of the
    model is `model`'s own layers. Outputs equal `model.predict`'s to float32 rounding
    (tests/rnnflow/network/test_model.py, test_train.py). Not for training: W is not learnt through
    the table. Anything else (one-hot inputs, which are already a projected lookup; stock
    layers; a Bidirectional first layer) is returned unchanged.
    """
    import keras

    from rnnflow.network.fused import _FusedLoop

    names = [layer.name for layer in model.layers]
    if "word2vec" not in names:
        return model
    at = names.index("word2vec")
    embed, rnn = model.layers[at], model.layers[at + 1]
    if not isinstance(rnn, _FusedLoop) or rnn.fused_unsupported() is not None:
        return model
    kernel, recurrent, *bias = (np.asarray(w) for w in rnn.cell.get_weights())
    vectors = embed.get_weights()[0]
    table = np.empty((vectors.shape[0], kernel.shape[1]), dtype=np.float32)
    kernel64 = kernel.astype(np.float64)
    offset = (bias[0][0] if rnn._kind == "gru" else bias[0]) if bias else 0.0
    # In float64, 4,096 rows at a time: the whole table in float64 would be 84 MB more at the
    # lesson's 35k x 300, at the run's memory peak (this runs after training).
    for start in range(0, len(vectors), 4096):
        rows = vectors[start:start + 4096].astype(np.float64) @ kernel64 + offset
        table[start:start + len(rows)] = rows
    del vectors
    inputs = keras.Input(shape=model.input_shape[1:], dtype="int32", name="token_ids")
    lookup = keras.layers.Embedding(table.shape[0], table.shape[1], trainable=False,
                                    mask_zero=embed.mask_zero, name="word2vec_projected")
    projected = type(rnn).from_config({**rnn.get_config(), "projected_input": True})
    x = projected(lookup(inputs))
    lookup.set_weights([table])
    weights = projected.cell.get_weights()  # its kernel is (gates x units) square, unused
    projected.cell.set_weights([weights[0], recurrent, *bias])
    for layer in model.layers[at + 2:]:  # the rest of the network, the very same layers
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_inference")


# Bytes of one batch's looked-up input projection (batch x steps x width float32) that a
# projected model's inference batch is sized to; see `inference_batch`.
PROJECTED_BATCH_BYTES = 40 * 2**20


def inference_batch(model, steps: int, default: int = 128) -> int:
    """Reviews per inference batch. A model from `inference_model` reads (gates x units) floats
    per step, not the word vectors, so it takes as many reviews as keep one batch's projected
    inputs near 40 MB, between 128 and 1024 (512 at the lesson's SimpleRNN(50) x 400 steps):
    the loop's per-step cost is paid per batch, so fewer, larger batches run faster. Any other
    model gets `default`: it holds batch x steps x dim floats (the embedded batch and its
    time-major copy), about 1 MB per review at 400 x 300, and a larger batch costs memory
    without running faster. The measurements behind both: bench/NOTES.md.
    """
    try:
        width = model.get_layer("word2vec_projected").output_dim
    except ValueError:
        return default
    fits = PROJECTED_BATCH_BYTES // (4 * max(steps, 1) * width) // 64 * 64
    return int(min(1024, max(128, fits)))


def load_model(path):
    """A saved rnnflow model, loaded with Keras safe mode (no code is deserialised); the fused
    layers are registered with Keras on import."""
    import keras

    import rnnflow.network.fused  # noqa: F401 - registers the fused layers' names
    import rnnflow.network.onehot  # noqa: F401 - and the one-hot ones
    import rnnflow.network.pooling  # noqa: F401 - and the max over time
    import rnnflow.network.steps  # noqa: F401 - and a `loss_steps: all` checkpoint's

    return keras.models.load_model(path, safe_mode=True)
