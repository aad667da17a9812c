import gzip

import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors

from rnnflow.config import DatasetConfig, EmbeddingConfig, TokenizeConfig
from rnnflow.data.embeddings import EmbeddingError, build_embeddings, load_table
from rnnflow.data.reviews import read_reviews
from rnnflow.data.tokens import tokenize_reviews
from tests.helpers import write_tar


@pytest.fixture
def tokens(project, tiny_archive):
    return tokenize_reviews(read_reviews(tiny_archive, "d", DatasetConfig()), TokenizeConfig())


def _kv(words, dim=4):
    kv = KeyedVectors(vector_size=dim)
    kv.add_vectors(words, np.arange(len(words) * dim, dtype=np.float32).reshape(-1, dim))
    return kv


@pytest.mark.parametrize(("binary", "gz"), [(True, False), (False, False), (False, True)])
def test_word2vec_file_restricted_to_the_corpus(tokens, tmp_path, binary, gz):
    kv = _kv(["wonderful", "awful", "zebra-not-in-corpus", "the"])
    path = tmp_path / ("v.bin" if binary else "v.txt")
    kv.save_word2vec_format(str(path), binary=binary)
    if gz:
        path = path.with_suffix(".txt.gz")
        path.write_bytes(gzip.compress((tmp_path / "v.txt").read_bytes()))
    out = build_embeddings(tokens, EmbeddingConfig(source="file", url=str(path), binary=binary))
    table = pd.read_parquet(out.file("table.parquet"))
    assert set(table.token) == {"wonderful", "awful", "the"}
    assert list(table.row) == [1, 2, 3]
    for token, vec in zip(table.token, table.vector, strict=True):
        np.testing.assert_array_equal(vec, kv[token])
    words, weights = load_table(out)
    assert words == list(table.token) and weights.shape == (4, 4) and not weights[0].any()


def test_file_limit_reads_only_the_first_vectors(tokens, tmp_path):
    path = tmp_path / "v.txt"
    _kv(["wonderful", "awful", "the"]).save_word2vec_format(str(path), binary=False)
    out = build_embeddings(tokens, EmbeddingConfig(source="file", url=str(path), binary=False,
                                                   limit=2))
    assert set(pd.read_parquet(out.file("table.parquet")).token) == {"wonderful", "awful"}


def test_corrupt_file_is_a_clear_error(tokens, tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(b"not a word2vec file")
    with pytest.raises(EmbeddingError, match="not a readable word2vec"):
        build_embeddings(tokens, EmbeddingConfig(source="file", url=str(path)))


def test_trained_vectors_see_only_the_train_split(project, tmp_path):
    files = {f"aclImdb/{s}/{c}/{i}_{r}.txt": f"common words here {c} {s}only{i % 2}"
             for s in ("train", "test") for c, r in (("pos", 9), ("neg", 2)) for i in range(10)}
    reviews = read_reviews(write_tar(tmp_path / "a.tar.gz", files), "d", DatasetConfig())
    toks = tokenize_reviews(reviews, TokenizeConfig())
    cfg = EmbeddingConfig(source="train", vector_size=8, min_count=1, epochs=1)
    table = pd.read_parquet(build_embeddings(toks, cfg).file("table.parquet"))
    assert {"common", "trainonly0", "pos"} <= set(table.token)
    assert not any(t.startswith("testonly") for t in table.token)
    assert len(table.vector.iloc[0]) == 8


def test_missing_and_empty_files(tokens, tmp_path):
    with pytest.raises(EmbeddingError, match="file not found"):
        build_embeddings(tokens, EmbeddingConfig(source="file", url=str(tmp_path / "no.bin")))
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(EmbeddingError, match="empty"):
        build_embeddings(tokens, EmbeddingConfig(source="file", url=str(tmp_path / "empty.bin")))


def test_limit_larger_than_the_file_warns(tokens, tmp_path, caplog):
    path = tmp_path / "v.txt"
    _kv(["wonderful", "awful", "the"]).save_word2vec_format(str(path), binary=False)
    build_embeddings(tokens, EmbeddingConfig(source="file", url=str(path), binary=False,
                                             limit=1000))
    assert "holds only 3 vectors" in caplog.text
