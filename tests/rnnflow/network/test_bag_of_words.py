"""The Arrow/NumPy word vectorizer against scikit-learn's, configured alike and fed the same
tokens: the same vocabulary, the same counts and the same TF-IDF values."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from rnnflow.network.bag_of_words import CharVectorizer, WordVectorizer, fit_chars, fit_words

WORDS = "The cat sat on a Mat and the dog ran far away , ! Cat DOG".split()


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def _tokens(texts: list[str]) -> pa.Array:
    # the tokens scikit-learn's analyzer reads, before lowercasing and n-grams
    split = CountVectorizer(token_pattern=r"\S+", lowercase=False).build_tokenizer()
    return pa.array([split(t) for t in texts], type=pa.list_(pa.string()))


def _same(ours: WordVectorizer, theirs, ours_matrix, theirs_matrix) -> None:
    names = theirs.get_feature_names_out().tolist()
    assert sorted(ours.feature_names()) == names
    order = np.argsort(ours.feature_names())  # our columns in their (alphabetical) order
    np.testing.assert_allclose(ours_matrix[:, order].toarray(), theirs_matrix.toarray(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("ngram_range", "min_df", "max_features"),
                         [((1, 2), 1, None), ((1, 1), 1, None), ((1, 2), 2, None),
                          ((1, 2), 1, 10_000)])
def test_the_vocabulary_counts_and_tfidf_are_scikit_learns(ngram_range, min_df, max_features):
    train, other = _texts(200, 1), _texts(50, 2) + [""]
    options = {"ngram_range": ngram_range, "min_df": min_df, "max_features": max_features,
               "token_pattern": r"\S+", "lowercase": True}
    theirs = TfidfVectorizer(**options, sublinear_tf=True)
    their_train = theirs.fit_transform(train)
    ours, our_train = fit_words(_tokens(train), ngram_range, min_df, max_features)
    _same(ours, theirs, our_train, their_train)
    _same(ours, theirs, ours.transform(_tokens(other)), theirs.transform(other))
    counts = CountVectorizer(vocabulary=theirs.vocabulary_, **options).transform(other)
    _same(ours, theirs, ours.counts(_tokens(other)), counts)


def test_a_cut_vocabulary_keeps_the_most_frequent_features():
    train = _texts(200, 3)
    ours, _ = fit_words(_tokens(train), (1, 2), 1, 5)
    theirs = CountVectorizer(ngram_range=(1, 2), token_pattern=r"\S+").fit_transform(train)
    frequency = np.sort(np.asarray(theirs.sum(axis=0)).ravel())[::-1]
    kept = np.asarray(CountVectorizer(vocabulary=ours.feature_names(), ngram_range=(1, 2),
                                      token_pattern=r"\S+").transform(train).sum(axis=0))
    assert len(ours.feature_names()) == 5
    assert sorted(kept.ravel().tolist(), reverse=True) == frequency[:5].tolist()


def test_known_tokens_counts_each_lists_tokens_in_the_vocabulary():
    ours, _ = fit_words(_tokens(["the cat sat", "a dog"]), (1, 2))
    lists = pa.array([["The", "CAT", "flew", "cat"], [], None, ["zebra"]],
                     type=pa.list_(pa.string()))
    assert ours.known_tokens(lists).tolist() == [3, 0, 0, 0]  # lowercased, as fitted


def test_the_saved_state_transforms_alike():
    train = _texts(100, 4)
    ours, matrix = fit_words(_tokens(train), (1, 2))
    again = WordVectorizer.from_state(ours.state())
    np.testing.assert_array_equal(again.transform(_tokens(train)).toarray(), matrix.toarray())


def _char_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = WORDS + ["Ärger", "straße", "x", "ab", "l'amore", "naïve", "Über-Maß"]
    spaces = [" ", "  ", "\t", "\n", " \u00a0"]
    return [rng.choice(["", " "]) + "".join(rng.choice(words) + rng.choice(spaces)
                                           for _ in range(rng.randint(0, 10)))
            for _ in range(n)]


@pytest.mark.parametrize(("ngram_range", "min_df"), [((2, 5), 1), ((1, 3), 2), ((3, 3), 1)])
def test_the_character_ngrams_are_scikit_learns_char_wb(ngram_range, min_df):
    train, other = _char_texts(150, 5), _char_texts(40, 6) + ["", "   "]
    options = {"analyzer": "char_wb", "ngram_range": ngram_range, "min_df": min_df}
    theirs = TfidfVectorizer(**options, sublinear_tf=True)
    their_train = theirs.fit_transform(train)
    ours, our_train = fit_chars(train, ngram_range, min_df)
    names = theirs.get_feature_names_out().tolist()
    assert sorted(ours.vocabulary) == names
    order = np.argsort(ours.vocabulary)
    np.testing.assert_allclose(our_train[:, order].toarray(), their_train.toarray(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.transform(other)[:, order].toarray(),
                               theirs.transform(other).toarray(), rtol=1e-5, atol=1e-6)
    counts = CountVectorizer(vocabulary=theirs.vocabulary_, **options).transform(other)
    np.testing.assert_array_equal(ours.counts(other)[:, order].toarray(), counts.toarray())
    again = CharVectorizer.from_state(ours.state())
    np.testing.assert_array_equal(again.transform(other).toarray(),
                                  ours.transform(other).toarray())


@pytest.mark.parametrize("classes", [2, 4])
def test_the_baselines_solver_reaches_the_default_solvers_optimum(classes):
    """The bag-of-words baseline fits with SAG for speed (rnnflow/network/baselines.py); the
    regularised loss has one optimum, so its probabilities are L-BFGS's, on TF-IDF rows as the
    baseline builds them."""
    from sklearn.linear_model import LogisticRegression

    from rnnflow.network.baselines import SETTINGS

    settings = SETTINGS["bag_of_words"]
    texts = _texts(300, 5)
    # labels that depend on the words, so the fit has something to find
    y = np.array([sum(map(ord, t)) % classes for t in texts])
    _, x = fit_words(_tokens(texts), (1, 2), 1, None)
    fast = LogisticRegression(C=settings["C"], max_iter=10_000, solver=settings["solver"],
                              tol=1e-8, random_state=0).fit(x, y)
    default = LogisticRegression(C=settings["C"], max_iter=10_000, tol=1e-8).fit(x, y)
    assert settings["solver"] != default.solver
    np.testing.assert_allclose(fast.predict_proba(x), default.predict_proba(x), atol=1e-3)
