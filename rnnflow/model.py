"""build_model: the lesson's network, fed int32 token ids through a frozen word2vec Embedding."""

from __future__ import annotations

import numpy as np

from rnnflow.config import ModelConfig


def build_model(cfg: ModelConfig, weights: np.ndarray, maxlen: int,
                trainable_embedding: bool = False):
    import keras
    from keras import layers

    cells = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
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
        rnn = cells[cfg.cell](cfg.num_neurons, return_sequences=sequences, name=name)
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
