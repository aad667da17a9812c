"""train_model: fit the lesson's network on the padded train split, validating on val."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnflow.config import ConfigError, ModelConfig, TrainConfig
from rnnflow.data.embeddings import load_table
from rnnflow.data.pad import load_sequences, load_split, pad_layout
from rnnflow.data.storage import Stage
from rnnflow.memory import release_memory
from rnnflow.network import device
from rnnflow.network.buckets import TrainBatches, inference_dataset
from rnnflow.network.model import build_model, kernel_used, load_model, prediction_twin
from rnnflow.network.steps import StepAccuracy, StepLoss, outputs_every_step

log = logging.getLogger(__name__)

# on_epoch_end(epoch counted from 1, Keras logs, path of the checkpoint saved for that epoch)
EpochHook = Callable[[int, dict[str, float], Path], None]
CHECKPOINT = "last.keras"


def optimizer_for(cfg: TrainConfig):
    """The Keras optimizer `train.optimizer` and `train.learning_rate` name."""
    import keras

    cls = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
           "sgd": keras.optimizers.SGD, "adamw": keras.optimizers.AdamW}[cfg.optimizer]
    return cls(learning_rate=cfg.learning_rate) if cfg.learning_rate else cls()


@dataclass(frozen=True)
class Fit:
    """What training measured: the per-epoch series of this call, `model.fit`'s own time
    (without loading and building), and the time steps a training batch had: its mean padded
    length, and the saving against padding every batch to maxlen (for `pad.maxlen: null`,
    against the longest train review), 0 without bucketing. With early stopping, the epoch
    whose weights the model holds when that is not the last one trained (`restored_epoch`,
    counted from 1 like `epochs_done`)."""

    history: dict[str, list[float]]
    fit_seconds: float
    train_samples_per_s: float
    mean_batch_length: float = float("nan")
    padding_step_saving: float = 0.0
    epochs_done: int = 0
    restored_epoch: int | None = None
    # Where it trained and with which recurrent kernel, and why: the run's tags.
    tags: dict[str, str] = field(default_factory=dict)


def loss_for(n_classes: int) -> str:
    """The training loss of a model over `n_classes`: binary cross-entropy on one sigmoid
    unit for two, sparse categorical cross-entropy on the softmax for more."""
    return "sparse_categorical_crossentropy" if n_classes > 2 else "binary_crossentropy"


def train_model(
    *,
    padded: Stage,
    embeddings: Stage,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    checkpoint_dir: Path,
    trainable_embedding: bool = False,
    on_epoch_end: EpochHook | None = None,
    resume_from: Path | None = None,
    initial_epoch: int = 0,
    classes: list[str] | None = None,
):
    """Build (or load from `resume_from`), compile and fit the model up to `train_cfg.epochs`.

    After every epoch the model, with its optimizer state, is saved to
    `checkpoint_dir/last.keras` and `on_epoch_end` is called, so the flow can record progress
    and a killed run can go on from its last finished epoch. `classes`: the class names
    (label i is classes[i]); more than two train a softmax head with sparse categorical
    cross-entropy, two (the default) a sigmoid with binary cross-entropy. Returns (model, Fit).
    """
    import keras

    on = device.setup()  # memory growth on, before TensorFlow's first op on a GPU
    if train_cfg.mixed_precision:
        device.check_mixed_precision(on)
    release_memory()  # whatever preprocessing left behind, before TensorFlow allocates
    keras.utils.set_random_seed(train_cfg.seed + initial_epoch)
    layout = pad_layout(padded)
    k = len(classes) if classes else 2
    if layout.bucketed:
        seqs, y_train = load_sequences(padded.file("train.parquet"), layout)
        val_seqs, y_val = load_sequences(padded.file("val.parquet"), layout)
        batches = TrainBatches(seqs, y_train, train_cfg.batch_size, train_cfg.seed, initial_epoch)
        train_data = {"x": batches.dataset(), "shuffle": False}  # the plan shuffles
        val_data = inference_dataset(val_seqs, y_val, train_cfg.batch_size)[0]
        # The longest review is the length every batch would have without bucketing.
        full_length = layout.maxlen or int(seqs.lengths.max(initial=1))
    else:
        x_train, y_train = load_split(padded.file("train.parquet"))
        x_val, y_val = load_split(padded.file("val.parquet"))
        full_length = x_train.shape[1]
        train_data = {"x": x_train, "y": y_train, "batch_size": train_cfg.batch_size,
                      "shuffle": True}
        val_data = (x_val, y_val)
        del x_train, x_val  # held by train_data and val_data, dropped with them
    with device.precision(train_cfg.mixed_precision):
        if resume_from is not None:
            model = load_model(resume_from)  # its layers keep the precision they were built in
            log.info("continuing %s from epoch %d", model.name, initial_epoch)
        else:
            vocab, weights = load_table(embeddings)
            every_step = train_cfg.loss_steps == "all"
            model = build_model(model_cfg, weights, None if layout.bucketed else full_length,
                                trainable_embedding, onehot_tokens=len(vocab),
                                mask=layout.bucketed or every_step, n_classes=k,
                                seed=train_cfg.seed, steps=every_step)
            # Under mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer here.
            model.compile(optimizer=optimizer_for(train_cfg),
                          loss=StepLoss() if every_step else loss_for(k),
                          metrics=[StepAccuracy()] if every_step else ["accuracy"])
        kernel, why = kernel_used(model, model_cfg, resumed=resume_from is not None)
    log.info("training on %s %s with the %s recurrent kernel (%s)", on.kind, on.name, kernel, why)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = checkpoint_dir / CHECKPOINT
    callbacks = [keras.callbacks.ModelCheckpoint(checkpoint, save_best_only=False)]
    if layout.bucketed:
        callbacks.insert(0, batches.callback())  # each epoch draws its own batches
    stopper = None
    if train_cfg.early_stopping:
        # At the end of training Keras puts back the best epoch's weights, stopped early or
        # not: the model then is that epoch's, whatever the last epoch scored.
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=train_cfg.early_stopping, restore_best_weights=True)
        callbacks.append(stopper)
    if on_epoch_end is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch_end(
                epoch + 1, {k: float(v) for k, v in (logs or {}).items()}, checkpoint)
        ))
    log.info("training %s on %d reviews, validating on %d", model.name, len(y_train), len(y_val))
    weights = class_weights(train_cfg.class_weight, y_train, classes or ["0", "1"])
    if weights:
        train_data["class_weight"] = weights
        log.info("class weights: %s", {(classes or ["0", "1"])[i]: round(w, 4)
                                       for i, w in weights.items()})
    fit_started = time.perf_counter()
    history = model.fit(
        **train_data, validation_data=val_data, epochs=train_cfg.epochs,
        initial_epoch=initial_epoch, callbacks=callbacks, verbose=2,
    )
    fit_seconds = time.perf_counter() - fit_started
    samples = len(history.epoch) * len(y_train)
    epochs_done = initial_epoch + len(history.epoch)
    restored = None  # Keras counts the epochs it hands callbacks from 0, initial_epoch included
    if stopper is not None and stopper.best_weights is not None \
            and stopper.best_epoch + 1 < epochs_done:
        restored = stopper.best_epoch + 1
        log.info("early stopping: the model holds epoch %d's weights, the best val_loss of "
                 "%d epochs", restored, epochs_done)
    mean_length = (float(np.mean(batches.lengths_served))
                   if layout.bucketed and batches.lengths_served else float(full_length))
    if layout.bucketed:
        log.info("bucketed batches: %.1f time steps on average against %d (%.1f%% fewer)",
                 mean_length, full_length, 100 * (1 - mean_length / full_length))
    del train_data, val_data, y_train, y_val
    # The traced training and validation steps (graphs with their gradients) are not needed
    # again by this model; a later fit traces them anew.
    model.train_function = model.test_function = None
    if outputs_every_step(model):  # loss_steps: all; the checkpoint keeps every step's output
        model = prediction_twin(model, model_cfg)
    release_memory()  # training's batches and buffers, before inference allocates its own
    return model, Fit(
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        fit_seconds=fit_seconds,
        train_samples_per_s=samples / max(fit_seconds, 1e-9),
        mean_batch_length=mean_length,
        padding_step_saving=1.0 - mean_length / full_length,
        epochs_done=epochs_done,
        restored_epoch=restored,
        tags={**on.tags(), "kernel": kernel, "kernel_reason": why,
              "precision": "mixed_float16" if train_cfg.mixed_precision else "float32"},
    )


def class_weights(spec, y_train: np.ndarray, classes: list[str]) -> dict[int, float] | None:
    """`train.class_weight` as Keras's {class index: weight}: `balanced` gives each class
    n / (k x its count in train), a mapping names classes (one left out weighs 1)."""
    if spec is None:
        return None
    if spec == "balanced":
        counts = np.bincount(np.asarray(y_train).astype(int), minlength=len(classes))
        n, k = counts.sum(), len(classes)
        return {i: float(n / (k * c)) if c else 1.0 for i, c in enumerate(counts)}
    unknown = sorted(set(spec) - set(classes))
    if unknown:
        raise ConfigError(f"train.class_weight names {', '.join(map(repr, unknown))}, not a class "
                         f"of the data ({', '.join(classes)})")
    return {i: float(spec.get(name, 1.0)) for i, name in enumerate(classes)}


def limit_threads(threads: int) -> bool:
    """Give TensorFlow `threads` intra-op and inter-op threads in this process.

    Each worker of a one-process-per-core Dask cluster would otherwise start a thread pool as
    wide as the machine, and the workers would fight over the cores. TensorFlow fixes its pools
    at its first op, so this only works before that; returns whether it took effect.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran an op here (an earlier point on this worker)
        return (tf.config.threading.get_intra_op_parallelism_threads() == threads
                and tf.config.threading.get_inter_op_parallelism_threads() == threads)
    log.info("TensorFlow limited to %d intra-op and inter-op thread(s)", threads)
    return True
