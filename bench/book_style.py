"""Peer (a): the lesson's script as the book writes it, on a sample of --docs reviews.

The book turns every review into a Python list of word vectors, pads short ones with a list of
zeros, and reshapes the whole list into one docs x maxlen x dim float array that feeds a
SimpleRNN directly. That array is what makes it hold about 2 MB per review at 400 x 300, so it
cannot run on the full 25k train split in 24 GB; it runs here on `--docs` train reviews (and as
many test reviews), with word2vec trained on its own train part.

    python -m bench.book_style --data aclImdb_labeled.tar.gz --docs 2000 [--json out.json]
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


def tokenize_and_vectorize(texts: list[str], wv, tokenize) -> list[list]:
    """Each review as the list of its tokens' vectors; tokens without a vector are skipped."""
    out = []
    for text in texts:
        vectors = []
        for token in tokenize(text):
            try:
                vectors.append(wv[token])
            except KeyError:
                pass
        out.append(vectors)
    return out


def pad_trunc(data: list[list], maxlen: int, dim: int) -> list[list]:
    """Cut each review to maxlen vectors or fill it up with zero vectors, as Python lists."""
    zero = [0.0] * dim
    return [sample[:maxlen] if len(sample) >= maxlen
            else sample + [zero] * (maxlen - len(sample)) for sample in data]


def main() -> None:
    parser = protocol_args(__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000,
                        help="reviews sampled from train (then split 80/20) and from test")
    args = parser.parse_args()
    meter = Meter()
    with meter.stage("read"):
        train, val, test = split(read_archive(args.data), args.seed, args.docs)
    from nltk.tokenize import TreebankWordTokenizer

    tokenize = TreebankWordTokenizer().tokenize
    with meter.stage("word2vec"):
        wv = word2vec([tokenize(text) for _, _, text in train], args.dim, args.seed)
    before = meter.rss_mb()
    meter.reset_peak()
    with meter.stage("vectorize"):
        x, y = {}, {}
        for name, rows in (("train", train), ("val", val), ("test", test)):
            vectors = pad_trunc(tokenize_and_vectorize([t for _, _, t in rows], wv, tokenize),
                                args.maxlen, args.dim)
            x[name] = np.reshape(vectors, (len(rows), args.maxlen, args.dim))
            y[name] = np.array([label for _, label, _ in rows])
            del vectors
    n_docs = len(train) + len(val) + len(test)
    # What the book's representation costs: the vectorize stage's peak over what came before.
    mb_per_doc = (meter.peak_mb() - before) / n_docs
    with meter.stage("model"):
        import keras
        from keras import layers

        keras.utils.set_random_seed(args.seed)
        model = keras.Sequential([
            keras.Input(shape=(args.maxlen, args.dim)),
            layers.SimpleRNN(args.neurons, return_sequences=True),
            layers.Dropout(0.2), layers.Flatten(), layers.Dense(1, activation="sigmoid"),
        ])
        model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    meter.figures = {
        "docs": n_docs, "array_dtype": str(x["train"].dtype), "mb_per_doc": mb_per_doc,
        **fit_and_test(meter, model, x, y, args.epochs, test_batch=32),
    }
    print(meter.figures, flush=True)
    meter.write(args.json)


if __name__ == "__main__":
    main()
