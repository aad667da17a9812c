"""TF-IDF over word uni- and bigrams, counted with Arrow and NumPy from token lists the chain
already wrote (the tokens stage), and over character n-grams within word boundaries; the
vectors the bag-of-words baseline (rnnflow/network/baselines.py) is fitted on and predicts
from.

Why not scikit-learn's TfidfVectorizer for words: on the full IMDB archive it spends most of
the baseline's time re-tokenizing every review with its regular expression and building the
bigrams in Python loops. Here the tokens come from the tokens stage, and every count is an
array operation: each token gets an integer id, a bigram the id pair packed into one int64,
and the document-term matrix is one sparse sum of duplicates. For characters, the n-grams of
each distinct word are built once, and a document's counts are its word counts times that
word-by-n-gram matrix: scikit-learn's char_wb analyzer builds them again at every occurrence.

The weighting is TfidfVectorizer's with `sublinear_tf=True` and its defaults otherwise, so the
two agree where they read the same tokens, and on characters where they read the same text
(tests/rnnflow/network/test_bag_of_words.py):
term frequency 1 + ln(count), idf ln((1 + n) / (1 + df)) + 1 over the n train documents,
rows scaled to unit length. `min_df` and `max_features` choose the vocabulary as it does:
features in at least `min_df` train documents, then the `max_features` most frequent over the
train split (a tie at the cut keeps the feature seen first).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

# A unigram's code is its token's id, a bigram's n * (first token's id + 1) + second token's id
# for a vocabulary of n tokens (`_codes`): one int64 space for both while n * (n + 1) fits,
# which a vocabulary below 2**30 tokens keeps far from the int64 limit.
_MAX_TOKENS = 2**30


def _flat(lists: pa.Array | pa.ChunkedArray, lowercase: bool
          ) -> tuple[pa.Array, np.ndarray]:
    """The tokens of all documents in one array, and the document of each token."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks() if lists.num_chunks else pa.array([], lists.type)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(lists)
    if lowercase:
        values = pc.utf8_lower(values)
    return values, np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def _codes(ids: np.ndarray, docs: np.ndarray, n_tokens: int, bigrams: bool
           ) -> tuple[np.ndarray, np.ndarray]:
    """Feature codes and their documents: each token (id >= 0: known) and, with `bigrams`, each
    pair of neighbouring tokens of one document that are both known."""
    known = ids >= 0
    codes, where = [ids[known].astype(np.int64)], [docs[known]]
    if bigrams and len(ids) > 1:
        pair = (docs[:-1] == docs[1:]) & known[:-1] & known[1:]
        first, second = ids[:-1][pair].astype(np.int64), ids[1:][pair].astype(np.int64)
        codes.append(n_tokens * (first + 1) + second)
        where.append(docs[:-1][pair])
    return np.concatenate(codes), np.concatenate(where)


def tfidf(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """Sublinear term frequency times idf, each row scaled to unit length (an empty row stays
    empty): the weighting of every bag-of-words vector, words or characters."""
    out = counts.tocsr()
    out.sum_duplicates()
    data = (1.0 + np.log(out.data)) * idf[out.indices]
    rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=out.shape[0]))
    data /= norms[rows]  # a row with data has a norm above 0
    return sparse.csr_matrix((data.astype(np.float32), out.indices.copy(), out.indptr.copy()),
                             shape=out.shape)


def idf_of(counts: sparse.csr_matrix) -> np.ndarray:
    """Smoothed idf of each column over the rows of `counts` (the train documents)."""
    counts = counts.tocsr()
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return np.log((1.0 + counts.shape[0]) / (1.0 + df)) + 1.0


@dataclass(frozen=True)
class WordVectorizer:
    """A fitted word n-gram vocabulary: the token strings, the code of each column (over the
    token ids; see `_codes`), and each column's idf."""

    tokens: list[str]
    codes: np.ndarray  # int64, one per column
    idf: np.ndarray
    bigrams: bool
    lowercase: bool

    def _ids(self, lists: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """Each token's id in the vocabulary (-1: not in it), and its document."""
        values, docs = _flat(lists, self.lowercase)
        ids = pc.fill_null(pc.index_in(values, value_set=pa.array(self.tokens, pa.string())),
                           -1).to_numpy(zero_copy_only=False)
        return ids, docs

    def counts(self, lists: pa.Array | pa.ChunkedArray) -> sparse.csr_matrix:
        """Documents x columns: how often each feature occurs in each token list."""
        ids, docs = self._ids(lists)
        n_docs = len(lists)
        codes, where = _codes(ids, docs, len(self.tokens), self.bigrams)
        column = pd.Index(self.codes).get_indexer(codes)
        keep = column >= 0
        return sparse.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float64), (where[keep], column[keep])),
            shape=(n_docs, len(self.codes)))

    def transform(self, lists: pa.Array | pa.ChunkedArray) -> sparse.csr_matrix:
        return tfidf(self.counts(lists), self.idf)

    def known_tokens(self, lists: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """How many of each list's tokens the vocabulary has."""
        ids, docs = self._ids(lists)
        return np.bincount(docs[ids >= 0], minlength=len(lists)).astype(np.int64)

    def feature_names(self) -> list[str]:
        """Each column as scikit-learn names it: the token, or the two tokens and a space."""
        n = len(self.tokens)
        names = []
        for code in self.codes.tolist():
            first, second = divmod(code, n)
            names.append(self.tokens[code] if first == 0
                         else f"{self.tokens[first - 1]} {self.tokens[second]}")
        return names

    def state(self) -> dict[str, Any]:
        """What the vectorizer is saved as: plain lists, no pickle."""
        return {"tokens": self.tokens, "codes": self.codes.tolist(), "idf": self.idf.tolist(),
                "bigrams": self.bigrams, "lowercase": self.lowercase}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WordVectorizer:
        return cls(list(state["tokens"]), np.asarray(state["codes"], dtype=np.int64),
                   np.asarray(state["idf"], dtype=np.float64), bool(state["bigrams"]),
                   bool(state["lowercase"]))


def fit_words(lists: pa.Array | pa.ChunkedArray, ngram_range: tuple[int, int] | list[int],
              min_df: int = 1, max_features: int | None = None, lowercase: bool = True
              ) -> tuple[WordVectorizer, sparse.csr_matrix]:
    """The vocabulary and idf of the train documents' token lists, and their TF-IDF matrix.
    `ngram_range`: (1, 1) or (1, 2)."""
    if tuple(ngram_range) not in ((1, 1), (1, 2)):
        raise ValueError(f"word n-grams: ngram_range (1, 1) or (1, 2), not {ngram_range}")
    bigrams = tuple(ngram_range) == (1, 2)
    values, docs = _flat(lists, lowercase)
    encoded = pc.dictionary_encode(values)
    ids = encoded.indices.to_numpy(zero_copy_only=False)
    tokens = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    if len(tokens) >= _MAX_TOKENS:
        raise ValueError(f"{len(tokens)} distinct tokens: more than the bigram codes hold")
    codes, where = _codes(ids, docs, len(tokens), bigrams)
    column, uniques = pd.factorize(codes)
    n_docs = len(lists)
    counts = sparse.csr_matrix((np.ones(len(codes)), (where, column)),
                               shape=(n_docs, len(uniques)))
    counts.sum_duplicates()
    chosen = _chosen(counts, min_df, max_features)
    # Only the tokens the chosen features use are kept, renumbered: the saved vocabulary.
    kept_codes = uniques[chosen].astype(np.int64)
    first, second = np.divmod(kept_codes, len(tokens))
    used = np.unique(np.concatenate([kept_codes[first == 0], first[first > 0] - 1,
                                     second[first > 0]]))
    renumber = np.full(len(tokens), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    n_kept = len(used)
    new_codes = np.where(first == 0, renumber[np.where(first == 0, kept_codes, 0)],
                         n_kept * (renumber[np.maximum(first - 1, 0)] + 1) + renumber[second])
    selected = counts[:, chosen].tocsr()
    vectorizer = WordVectorizer([str(t) for t in tokens[used]], new_codes.astype(np.int64),
                                idf_of(selected), bigrams, lowercase)
    return vectorizer, tfidf(selected, vectorizer.idf)


def char_wb_grams(word: str, low: int, high: int) -> list[str]:
    """The character n-grams (`low` to `high`) of one word padded with a space each side, as
    scikit-learn's char_wb analyzer counts them: a padded word no longer than n is one n-gram
    (itself), and no longer n-grams follow."""
    padded = f" {word} "
    grams = []
    for n in range(low, high + 1):
        if len(padded) <= n:
            grams.append(padded)
            break
        grams += [padded[i:i + n] for i in range(len(padded) - n + 1)]
    return grams


def _word_counts(texts: list[str], lowercase: bool) -> tuple[sparse.csr_matrix, list[str]]:
    """Documents x distinct whitespace-separated words (after lowercasing): how often each
    occurs. Splitting is Python's str.split, as the char_wb analyzer's; a word type's n-grams
    are then built once however often it occurs."""
    lists = pa.array([(t.lower() if lowercase else t).split() for t in texts],
                     type=pa.list_(pa.string()))
    values, docs = _flat(lists, False)
    encoded = pc.dictionary_encode(values)
    ids = encoded.indices.to_numpy(zero_copy_only=False)
    words = encoded.dictionary.to_pylist()
    counts = sparse.csr_matrix((np.ones(len(ids)), (docs, ids)), shape=(len(texts), len(words)))
    counts.sum_duplicates()
    return counts, words


def _gram_matrix(words: list[str], ngram_range: tuple[int, int],
                 vocabulary: list[str] | None) -> tuple[sparse.csr_matrix, list[str]]:
    """Word types x n-gram columns: each type's char_wb n-grams, and the columns' n-grams.
    With a `vocabulary` the columns are its n-grams and others are dropped; without, every
    n-gram seen is a column (fitting)."""
    grams = [char_wb_grams(word, *ngram_range) for word in words]
    lengths = np.fromiter(map(len, grams), dtype=np.int64, count=len(grams))
    flat = pa.array(list(itertools.chain.from_iterable(grams)), pa.string())
    rows = np.repeat(np.arange(len(words), dtype=np.int64), lengths)
    if vocabulary is None:
        encoded = pc.dictionary_encode(flat)
        cols = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        vocabulary = encoded.dictionary.to_pylist()
    else:
        cols = pc.fill_null(pc.index_in(flat, value_set=pa.array(vocabulary, pa.string())),
                            -1).to_numpy(zero_copy_only=False).astype(np.int64)
        rows, cols = rows[cols >= 0], cols[cols >= 0]
    out = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                            shape=(len(words), len(vocabulary)))
    out.sum_duplicates()
    return out, vocabulary


@dataclass(frozen=True)
class CharVectorizer:
    """Character n-grams within word boundaries (scikit-learn's char_wb analyzer on the
    lowercased text) over a fixed vocabulary, with its idf."""

    vocabulary: list[str]
    idf: np.ndarray
    ngram_range: tuple[int, int]
    lowercase: bool = True

    def counts(self, texts: list[str]) -> sparse.csr_matrix:
        """Documents x columns: how often each vocabulary n-gram occurs in each text."""
        words, types = _word_counts(texts, self.lowercase)
        grams, _ = _gram_matrix(types, self.ngram_range, self.vocabulary)
        return (words @ grams).tocsr()

    def transform(self, texts: list[str]) -> sparse.csr_matrix:
        return tfidf(self.counts(texts), self.idf)

    def state(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "idf": self.idf.tolist(),
                "ngram_range": list(self.ngram_range), "lowercase": self.lowercase}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CharVectorizer:
        return cls(list(state["vocabulary"]), np.asarray(state["idf"], dtype=np.float64),
                   (int(state["ngram_range"][0]), int(state["ngram_range"][1])),
                   bool(state.get("lowercase", True)))


def fit_chars(texts: list[str], ngram_range: tuple[int, int] | list[int], min_df: int = 1,
              max_features: int | None = None, lowercase: bool = True
              ) -> tuple[CharVectorizer, sparse.csr_matrix]:
    """The char_wb vocabulary and idf of the train texts, and their TF-IDF matrix; the
    vocabulary is chosen as `fit_words` chooses it."""
    low, high = int(ngram_range[0]), int(ngram_range[1])
    words, types = _word_counts(texts, lowercase)
    grams, vocabulary = _gram_matrix(types, (low, high), None)
    counts = (words @ grams).tocsr()
    counts.sum_duplicates()
    chosen = _chosen(counts, min_df, max_features)
    names = np.array(vocabulary, dtype=object)[chosen]
    selected = counts[:, chosen].tocsr()
    vectorizer = CharVectorizer([str(g) for g in names], idf_of(selected), (low, high),
                                lowercase)
    return vectorizer, tfidf(selected, vectorizer.idf)


def _chosen(counts: sparse.csr_matrix, min_df: int, max_features: int | None) -> np.ndarray:
    """The columns kept, in column order: in at least `min_df` rows, then the
    `max_features` most frequent (a tie at the cut keeps the column seen first)."""
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    chosen = np.flatnonzero(df >= min_df)
    if max_features is not None and len(chosen) > max_features:
        frequency = np.asarray(counts.sum(axis=0)).ravel()[chosen]
        chosen = np.sort(chosen[np.argsort(-frequency, kind="stable")[:max_features]])
    return chosen
