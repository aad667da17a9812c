"""Peer (b): a careful hand-written Keras script for the lesson, with no orchestration or tracking.

Everything stays in memory: one process tokenizes with NLTK, gensim trains word2vec on the train
split, tokens become int32 ids padded to maxlen, a frozen Embedding holds the vectors, and plain
`model.fit` trains on the in-memory arrays. Then the 25k test reviews are scored.

    python -m bench.handwritten --data aclImdb_labeled.tar.gz [--limit N] [--json out.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from bench.peers import (  # noqa: E402
    Meter,
    fit_and_test,
    protocol_args,
    read_archive,
    split,
    word2vec,
)


def tokenize_splits(splits: dict[str, list]) -> dict[str, list[list[str]]]:
    """Treebank tokens of each split's reviews ((id, label, text) rows), case and markup kept."""
    from nltk.tokenize import TreebankWordTokenizer

    tokenize = TreebankWordTokenizer().tokenize
    return {name: [tokenize(text) for _, _, text in rows] for name, rows in splits.items()}


def lookup_table(wv) -> tuple[dict[str, int], np.ndarray]:
    """Each word's row (from 1) and the frozen table: row 0 the zero padding vector."""
    index = {word: i + 1 for i, word in enumerate(wv.index_to_key)}
    weights = np.zeros((len(index) + 1, wv.vector_size), dtype=np.float32)
    weights[1:] = wv.vectors
    return index, weights


def labels(splits: dict[str, list]) -> dict[str, np.ndarray]:
    return {name: np.array([label for _, label, _ in rows], dtype=np.float32)
            for name, rows in splits.items()}


def ids_matrix(token_lists: list[list[str]], index: dict[str, int], maxlen: int) -> np.ndarray:
    """First `maxlen` known tokens of each review as table rows (1-based), zero-padded at the end;
    unknown tokens are dropped, as in the lesson."""
    out = np.zeros((len(token_lists), maxlen), dtype=np.int32)
    for i, tokens in enumerate(token_lists):
        ids = [index[t] for t in tokens if t in index][:maxlen]
        out[i, : len(ids)] = ids
    return out


def main() -> None:
    args = protocol_args(__doc__.splitlines()[0]).parse_args()
    meter = Meter()
    with meter.stage("read"):
        splits = dict(zip(("train", "val", "test"),
                          split(read_archive(args.data), args.seed, args.limit), strict=True))
    with meter.stage("tokenize"):
        tokens = tokenize_splits(splits)
    n_docs = sum(len(t) for t in tokens.values())
    with meter.stage("word2vec"):
        wv = word2vec(tokens["train"], args.dim, args.seed)
    with meter.stage("ids"):
        index, weights = lookup_table(wv)
        x = {name: ids_matrix(t, index, args.maxlen) for name, t in tokens.items()}
        y = labels(splits)
        del tokens
    with meter.stage("model"):
        import keras
        from keras import layers

        keras.utils.set_random_seed(args.seed)
        inputs = keras.Input(shape=(args.maxlen,), dtype="int32")
        embed = layers.Embedding(weights.shape[0], args.dim, trainable=False)
        h = layers.SimpleRNN(args.neurons, return_sequences=True)(embed(inputs))
        h = layers.Flatten()(layers.Dropout(0.2)(h))
        model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(h))
        embed.set_weights([weights])
        model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    meter.figures = {
        "docs": n_docs, "tokenize_docs_per_s": n_docs / meter.stages["tokenize"],
        **fit_and_test(meter, model, x, y, args.epochs, test_batch=128),
    }
    print(meter.figures, flush=True)
    meter.write(args.json)


if __name__ == "__main__":
    main()
