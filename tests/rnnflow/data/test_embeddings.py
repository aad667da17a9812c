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


def _italian_tokens(project, tmp_path):
    from tests.helpers import synthetic_table

    table = synthetic_table(tmp_path / "it.csv", ["gioia", "paura", "rabbia"], 6)
    reviews = read_reviews(table, "it", DatasetConfig(source="csv"))
    return tokenize_reviews(reviews, TokenizeConfig(tokenizer="regexp",
                                                    pattern=r"\w+'|\w+"))


def test_fasttext_vec_file_with_non_ascii_words(project, tmp_path):
    # A fastText .vec file is word2vec's text format: a header line, then word and vector.
    words = ["felicità", "l'", "amore", "perché-no", "è"]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(words), 5)).astype(np.float32)
    lines = [f"{len(words)} 5"] + [f"{w} " + " ".join(f"{v:.6f}" for v in vec)
                                   for w, vec in zip(words, vectors, strict=True)]
    path = tmp_path / "cc.it.5.vec"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokens = _italian_tokens(project, tmp_path)
    out = build_embeddings(tokens, EmbeddingConfig(source="file", url=str(path), binary=False))
    table = pd.read_parquet(out.file("table.parquet"))
    assert {"felicità", "l'", "amore", "è"} <= set(table.token)
    assert "perché-no" not in set(table.token)  # not a corpus token
    for token, vec in zip(table.token, table.vector, strict=True):
        np.testing.assert_allclose(vec, vectors[words.index(token)], atol=1e-6)


def test_fasttext_bin_model_is_recognised_and_read(project, tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    corpus = [["felicità", "l'", "amore", "è", "gioia"], ["paura", "buio", "è", "ansia"]] * 5
    model = FastText(vector_size=6, window=2, min_count=1, epochs=1, min_n=2, max_n=3,
                     bucket=64, seed=1, workers=1)
    model.build_vocab(corpus)
    model.train(corpus, total_examples=len(corpus), epochs=1)
    path = tmp_path / "cc.it.6.bin"
    save_facebook_model(model, str(path))
    tokens = _italian_tokens(project, tmp_path)
    out = build_embeddings(tokens, EmbeddingConfig(source="file", url=str(path)))
    table = pd.read_parquet(out.file("table.parquet"))
    # Only the model's own words; fastText's subword guesses for other tokens are not used.
    assert set(table.token) <= set(model.wv.index_to_key)
    assert {"felicità", "amore", "buio"} <= set(table.token)
    for token, vec in zip(table.token, table.vector, strict=True):
        np.testing.assert_allclose(vec, model.wv[token], atol=1e-5)
    limited = build_embeddings(tokens, EmbeddingConfig(source="file", url=str(path), limit=2))
    kept = set(pd.read_parquet(limited.file("table.parquet")).token)
    assert kept <= set(model.wv.index_to_key[:2])


def _train_test_tokens(tmp_path, train_words, test_words):
    files = {f"aclImdb/{s}/{c}/{i}_{r}.txt": " ".join(words)
             for s, words in (("train", train_words), ("test", test_words))
             for c, r in (("pos", 9), ("neg", 2)) for i in range(10)}
    reviews = read_reviews(write_tar(tmp_path / "a.tar.gz", files), "d",
                           DatasetConfig(validation_split=0.1))
    return tokenize_reviews(reviews, TokenizeConfig())


def test_learned_vectors_start_small_and_random_over_the_capped_train_vocabulary(project,
                                                                                 tmp_path):
    toks = _train_test_tokens(tmp_path, ["a", "a", "a", "b", "b", "c"], ["a", "unseen"])
    cfg = EmbeddingConfig(source="learned", vector_size=6, max_tokens=2)
    assert cfg.trainable  # always trained: random vectors left frozen would be noise
    words, weights = load_table(build_embeddings(toks, cfg, seed=3))
    assert words == ["a", "b"]  # the two most frequent train tokens; test tokens never
    assert weights.shape == (3, 6) and not weights[0].any()
    assert np.abs(weights[1:]).max() <= 0.05 and np.unique(weights[1:]).size == 12
    again = load_table(build_embeddings(toks, cfg.model_copy(update={"max_tokens": 3}),
                                        seed=3))[1]
    np.testing.assert_array_equal(again[1:3], weights[1:])  # the same draw, one row more
    other = load_table(build_embeddings(toks, cfg, seed=4))[1]
    assert not np.allclose(other, weights)


def test_fasttext_gives_a_vector_to_test_words_never_seen_in_train(project, tmp_path):
    train = ["spielen", "spielte", "gespielt", "laufen", "laufe", "gelaufen"] * 3
    toks = _train_test_tokens(tmp_path, train, ["spielend", "laufend", "qqq"])
    cfg = EmbeddingConfig(source="fasttext", vector_size=8, min_count=1, epochs=2,
                          min_n=3, max_n=5)
    words, weights = load_table(build_embeddings(toks, cfg))
    assert {"spielend", "laufend", "qqq", "spielte"} <= set(words)  # every corpus token
    assert weights.shape == (len(words) + 1, 8)
    # A test-only word shares n-grams with its train relatives: its vector is not zero.
    assert np.abs(weights[words.index("spielend") + 1]).sum() > 0
    assert not cfg.trainable  # fine-tuning stays the user's choice


def test_fasttext_n_gram_lengths_are_checked():
    with pytest.raises(ValueError, match=r"embedding.min_n \(5\) is above embedding.max_n"):
        EmbeddingConfig(source="fasttext", min_n=5, max_n=3)
    EmbeddingConfig(source="train", min_n=5, max_n=3)  # read by fasttext only
