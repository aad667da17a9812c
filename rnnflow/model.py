"""build_model: the lesson's network, fed int32 token ids through a frozen word2vec Embedding."""

from __future__ import annotations

import numpy as np

from rnnflow.config import ModelConfig


def build_model(cfg: ModelConfig, weights: np.ndarray, maxlen: int):
    import keras
    from keras import layers

    cells = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
    inputs = keras.Input(shape=(maxlen,), dtype="int32", name="token_ids")
    # Looking ids up in a frozen copy of the word2vec table is the same function as the book's
    # docs x maxlen x 300 float input, without materialising it. No mask: like the book, padding
    # reaches the RNN as zero vectors.
    embed = layers.Embedding(weights.shape[0], weights.shape[1], trainable=False, name="word2vec")
    x = embed(inputs)
    rnn = cells[cfg.cell](cfg.num_neurons, return_sequences=cfg.return_sequences, name=cfg.cell)
    x = (layers.Bidirectional(rnn) if cfg.bidirectional else rnn)(x)
    x = layers.Dropout(cfg.dropout)(x)
    if cfg.return_sequences:
        x = layers.Flatten()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="sentiment")(x)
    model = keras.Model(inputs, outputs, name=f"rnnflow_{cfg.cell}")
    # Set after building, not via an initializer: a Constant initializer would copy the whole
    # table into the model's JSON config.
    embed.set_weights([weights])
    return model
