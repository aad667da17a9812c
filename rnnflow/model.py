"""build_model: the lesson's network, fed int32 token ids through a frozen word2vec Embedding."""

from __future__ import annotations

import logging

import numpy as np

from rnnflow.config import ModelConfig

log = logging.getLogger(__name__)


def build_model(cfg: ModelConfig, weights: np.ndarray, maxlen: int,
                trainable_embedding: bool = False):
    import keras
    from keras import layers

    from rnnflow.fused import recurrent_layer

    inputs = keras.Input(shape=(maxlen,), dtype="int32", name="token_ids")
    # Looking ids up in a frozen copy of the word2vec table is the same function as the book's
    # docs x maxlen x 300 float input, without materialising it. No mask: like the book, padding
    # reaches the RNN as zero vectors.
    embed = layers.Embedding(weights.shape[0], weights.shape[1], trainable=trainable_embedding,
                             name="word2vec")
    x = embed(inputs)
    for i in range(cfg.num_layers):
        # Stacked layers hand every time step on; only the last one may return its last state.
        sequences = cfg.return_sequences or i < cfg.num_layers - 1
        name = cfg.cell if i == 0 else f"{cfg.cell}_{i + 1}"
        rnn, fallback = recurrent_layer(cfg.cell, cfg.num_neurons, return_sequences=sequences,
                                        kernel=cfg.kernel, name=name)
        if fallback:  # never fails: a configuration the fused layer cannot do trains stock
            log.info("%s", fallback)
        x = (layers.Bidirectional(rnn, name=f"bi_{name}") if cfg.bidirectional else rnn)(x)
    x = layers.Dropout(cfg.dropout)(x)
    if cfg.return_sequences:
        x = layers.Flatten()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="sentiment")(x)
    model = keras.Model(inputs, outputs, name=f"rnnflow_{cfg.cell}")
    # Set after building, not via an initializer: a Constant initializer would copy the whole
    # table into the model's JSON config.
    embed.set_weights([weights])
    return model


def stock_twin(model, cfg: ModelConfig):
    """The same network and weights with the stock Keras layers: what is exported as the run's
    Keras model, which then loads in any Keras 3 without rnnflow installed."""
    if cfg.kernel == "keras":
        return model
    embed = model.get_layer("word2vec")
    twin = build_model(cfg.model_copy(update={"kernel": "keras"}),
                       np.zeros(embed.embeddings.shape, dtype="float32"),
                       model.input_shape[1], embed.trainable)
    twin.set_weights(model.get_weights())  # the fused layers keep the stock weight layout
    return twin


def load_model(path):
    """A saved rnnflow model, loaded with Keras safe mode (no code is deserialised); the fused
    layers are registered with Keras on import."""
    import keras

    import rnnflow.fused  # noqa: F401 - registers the fused layers' names

    return keras.models.load_model(path, safe_mode=True)
