import pytest

from rnnflow.config import ModelConfig, TrainConfig
from rnnflow.network.train import train_model
from tests.helpers import build_stages


@pytest.fixture
def stages(project, tiny_archive):
    return build_stages(tiny_archive)


def test_early_stopping_ends_a_run_that_stopped_improving(stages, tmp_path):
    padded, emb = stages
    # A learning rate too small to move float32 weights: val_loss never improves.
    cfg = TrainConfig(epochs=20, early_stopping=2, learning_rate=1e-30, batch_size=8)
    _, fit = train_model(padded=padded, embeddings=emb, model_cfg=ModelConfig(num_neurons=2),
                         train_cfg=cfg, checkpoint_dir=tmp_path)
    assert len(fit.history["loss"]) == 3


def test_checkpoint_each_epoch(stages, tmp_path):
    padded, emb = stages
    seen = []
    train_model(padded=padded, embeddings=emb, model_cfg=ModelConfig(num_neurons=2),
                train_cfg=TrainConfig(epochs=2, batch_size=8), checkpoint_dir=tmp_path,
                on_epoch_end=lambda e, logs, ckpt: seen.append((e, ckpt.is_file())))
    assert seen == [(1, True), (2, True)]


def test_limit_threads_holds_tensorflow_before_its_first_op():
    """In a fresh process, as in a Dask worker: the limit holds for the ops that follow, the
    run's tags say it, and a later, different limit cannot take effect and says so."""
    import os
    import subprocess
    import sys

    code = (
        "import tensorflow as tf\n"
        "from rnnflow.network.train import limit_threads\n"
        "from rnnflow.network import device\n"
        "assert limit_threads(1)\n"
        "print(device.setup().tags()['tensorflow_threads'])\n"
        "tf.reduce_sum(tf.ones((64, 64)) @ tf.ones((64, 64))).numpy()\n"
        "t = tf.config.threading\n"
        "print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads())\n"
        "print(limit_threads(1), limit_threads(2))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "1", "1", "True", "False"]


@pytest.mark.parametrize("maxlen", [20, None])  # fixed length, and bucketed with a mask
def test_evaluation_through_the_projected_model_scores_as_the_model_does(
        project, tiny_archive, tmp_path, maxlen):
    """evaluate_model predicts with `inference_model` and larger batches; its probabilities
    equal the trained model's own `predict` on the same reviews."""
    import numpy as np

    from rnnflow.data.pad import load_sequences, load_split, pad_layout
    from rnnflow.network.evaluate import evaluate_model, inference_batch
    from rnnflow.network.model import inference_model

    padded, emb = build_stages(tiny_archive, maxlen)
    model, _ = train_model(padded=padded, embeddings=emb,
                           model_cfg=ModelConfig(cell="gru", num_neurons=3,
                                                 return_sequences=False),
                           train_cfg=TrainConfig(epochs=1, batch_size=8),
                           checkpoint_dir=tmp_path)
    assert inference_batch(inference_model(model), 400) > inference_batch(model, 400) == 128
    got = evaluate_model(model, padded)
    layout = pad_layout(padded)
    for split in ("val", "test"):
        if layout.bucketed:
            from rnnflow.network import buckets

            seqs, _ = load_sequences(padded.file(f"{split}.parquet"), layout)
            expected = buckets.predict(model, seqs, 4)
        else:
            x, _ = load_split(padded.file(f"{split}.parquet"))
            expected = model.predict(x, batch_size=4, verbose=0).ravel()
        np.testing.assert_allclose(got.predictions[split].probability, expected,
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("maxlen", "cfg"), [
    (20, ModelConfig(num_neurons=3)),  # the lesson's Flatten network
    (None, ModelConfig(cell="gru", num_neurons=3, return_sequences=False)),  # bucketed
])
def test_loss_at_every_step_trains_continues_and_hands_on_the_prediction_model(
        project, tiny_archive, tmp_path, maxlen, cfg):
    """`train.loss_steps: all` logs the history keys a `last` run does, leaves a checkpoint
    that goes on training, and returns the network of the prediction (one output per review),
    whose probabilities evaluation takes."""
    import numpy as np

    from rnnflow.network.evaluate import evaluate_model
    from rnnflow.network.model import load_model

    padded, emb = build_stages(tiny_archive, maxlen)
    last_model, last = train_model(padded=padded, embeddings=emb, model_cfg=cfg,
                                   train_cfg=TrainConfig(epochs=1, batch_size=8),
                                   checkpoint_dir=tmp_path / "last")
    every = TrainConfig(epochs=1, batch_size=8, loss_steps="all")
    model, fit = train_model(padded=padded, embeddings=emb, model_cfg=cfg, train_cfg=every,
                             checkpoint_dir=tmp_path / "all")
    assert set(fit.history) == set(last.history) == {"loss", "accuracy", "val_loss",
                                                     "val_accuracy"}
    assert model.output_shape == last_model.output_shape == (None, 1)
    assert [w.shape for w in model.weights] == [w.shape for w in last_model.weights]
    checkpoint = tmp_path / "all" / "last.keras"
    assert len(load_model(checkpoint).output_shape) == 3  # every step, to train on
    more, fit2 = train_model(padded=padded, embeddings=emb, model_cfg=cfg,
                             train_cfg=every.model_copy(update={"epochs": 2}),
                             checkpoint_dir=tmp_path / "all", resume_from=checkpoint,
                             initial_epoch=1)
    assert fit2.epochs_done == 2 and more.output_shape == (None, 1)
    probabilities = evaluate_model(more, padded).predictions["test"].probability
    assert np.all((probabilities >= 0) & (probabilities <= 1))
