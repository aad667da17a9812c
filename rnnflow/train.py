"""train_model: fit the lesson's network on the padded train split, validating on val."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rnnflow.config import ModelConfig, TrainConfig
from rnnflow.embeddings import load_table
from rnnflow.model import build_model
from rnnflow.pad import load_split
from rnnflow.storage import Stage, release_memory

log = logging.getLogger(__name__)

EpochHook = Callable[[int, dict[str, float]], None]


def _optimizer(cfg: TrainConfig):
    import keras

    cls = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
           "sgd": keras.optimizers.SGD, "adamw": keras.optimizers.AdamW}[cfg.optimizer]
    return cls(learning_rate=cfg.learning_rate) if cfg.learning_rate else cls()


def train_model(
    padded: Stage,
    embeddings: Stage,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    on_epoch_end: EpochHook | None = None,
):
    """Build, compile and fit the model. Returns (model, history as {metric: [per epoch]}).

    `on_epoch_end(epoch, logs)` is called after every epoch (epochs count from 1), so the flow
    can record progress while training runs.
    """
    import keras

    release_memory()  # whatever preprocessing left behind, before TensorFlow allocates
    keras.utils.set_random_seed(train_cfg.seed)
    _, weights = load_table(embeddings)
    x_train, y_train = load_split(padded.file("train.parquet"))
    x_val, y_val = load_split(padded.file("val.parquet"))
    model = build_model(model_cfg, weights, x_train.shape[1])
    model.compile(optimizer=_optimizer(train_cfg), loss="binary_crossentropy",
                  metrics=["accuracy"])
    callbacks = []
    if on_epoch_end is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch_end(
                epoch + 1, {k: float(v) for k, v in (logs or {}).items()})
        ))
    log.info("training %s on %d reviews, validating on %d", model.name, len(y_train), len(y_val))
    history = model.fit(
        x_train, y_train, validation_data=(x_val, y_val), batch_size=train_cfg.batch_size,
        epochs=train_cfg.epochs, shuffle=True, callbacks=callbacks, verbose=2,
    )
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}
