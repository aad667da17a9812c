import pytest

from rnnflow.config import (
    DatasetConfig,
    EmbeddingConfig,
    ModelConfig,
    PadConfig,
    TokenizeConfig,
    TrainConfig,
)
from rnnflow.embeddings import build_embeddings
from rnnflow.pad import pad_sequences
from rnnflow.reviews import read_reviews
from rnnflow.tokens import tokenize_reviews
from rnnflow.train import train_model
from rnnflow.vectorize import vectorize_tokens


@pytest.fixture
def stages(project, tiny_archive):
    toks = tokenize_reviews(read_reviews(tiny_archive, "d", DatasetConfig()), TokenizeConfig())
    emb = build_embeddings(toks, EmbeddingConfig(source="train", vector_size=8, min_count=1,
                                                 epochs=1))
    vectors, _ = vectorize_tokens(toks, emb)
    return pad_sequences(vectors, PadConfig(maxlen=20)), emb


def test_early_stopping_ends_a_run_that_stopped_improving(stages, tmp_path):
    padded, emb = stages
    # A learning rate too small to move float32 weights: val_loss never improves.
    cfg = TrainConfig(epochs=20, early_stopping=2, learning_rate=1e-30, batch_size=8)
    _, history = train_model(padded, emb, ModelConfig(num_neurons=2), cfg, tmp_path)
    assert len(history["loss"]) == 3


def test_checkpoint_each_epoch(stages, tmp_path):
    padded, emb = stages
    seen = []
    train_model(padded, emb, ModelConfig(num_neurons=2), TrainConfig(epochs=2, batch_size=8),
                tmp_path, on_epoch_end=lambda e, logs, ckpt: seen.append((e, ckpt.is_file())))
    assert seen == [(1, True), (2, True)]
