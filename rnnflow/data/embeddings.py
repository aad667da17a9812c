"""build_embeddings: a word-vector table restricted to the corpus, as table.parquet.

Row 0 is reserved for padding (the zero vector), so table rows are numbered 1..V.

`source: onehot` has no vectors: the table is the vocabulary alone (row, token, count), the
`max_tokens` most frequent tokens of the train split, and the network learns one row of input
weights per token (rnnflow/network/model.py).

`source: learned` has the same vocabulary, with small random starting vectors that the network
trains (an ordinary trainable Embedding). They are drawn here, not in the model, so that every
later step (the fused kernels' lookup, the logged vocabulary, `rnnflow predict`) treats them as
any other table. `source: fasttext` trains gensim's FastText on the train split and writes a
vector for every token of the corpus: a token never seen in train (a rare inflection in the test
split) is summed from its character n-grams instead of being dropped.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rnnflow.config import EmbeddingConfig
from rnnflow.data.download import DownloadError, download_dataset, name_unresolved
from rnnflow.data.storage import Stage, read_fixed_rows, stage, write_parquet, writing

log = logging.getLogger(__name__)

VERSION = 1


class EmbeddingError(ValueError):
    """The word vectors cannot be loaded or do not fit the corpus. `unreachable`: they are a
    download that failed for want of a network, where vectors trained on the corpus are the
    way on."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def _write_train_corpus(tokens_path: Path, out: Path) -> None:
    """The train split's tokens as gensim's corpus file: one review per line, tokens separated
    by spaces (NLTK tokens never contain whitespace)."""
    source = pq.ParquetFile(tokens_path)
    with open(out, "w", encoding="utf-8") as fh:
        for batch in source.iter_batches(batch_size=2_000, columns=["split", "tokens"]):
            tokens = batch["tokens"].filter(pc.equal(batch["split"], "train"))
            lines = pc.binary_join(tokens, " ")
            fh.write("\n".join(lines.to_pylist()))
            fh.write("\n" if len(lines) else "")


def _corpus_vocab(tokens_path: Path) -> pa.Array:
    """Every distinct token of the corpus, most frequent first."""
    column = pq.read_table(tokens_path, columns=["tokens"])["tokens"]
    counts = pc.value_counts(pc.list_flatten(column).combine_chunks())
    order = pc.sort_indices(counts, sort_keys=[("counts", "descending"), ("values", "ascending")])
    return counts.field("values").take(order)


def _train_vocab(tokens_path: Path, max_tokens: int) -> tuple[pa.Array, pa.Array]:
    """The `max_tokens` most frequent tokens of the train split and their counts, most frequent
    first (ties by token), so the vocabulary never depends on the val or test reviews."""
    table = pq.read_table(tokens_path, columns=["split", "tokens"])
    train = table["tokens"].filter(pc.equal(table["split"], "train"))
    counts = pc.value_counts(pc.list_flatten(train.combine_chunks()))
    order = pc.sort_indices(counts, sort_keys=[("counts", "descending"), ("values", "ascending")])
    order = order[:max_tokens]
    return counts.field("values").take(order), counts.field("counts").take(order)


# Hash buckets of FastText's character n-grams. gensim's default, 2 million, is 800 MB of
# float32 at 100-d before training doubles it; a corpus of the size FastText is meant for here
# (thousands of texts) has some hundred thousand distinct n-grams, so 2^18 buckets keep
# collisions rare at an eighth of the memory.
FASTTEXT_BUCKETS = 2**18


def _train_vectors(tokens_path: Path, cfg: EmbeddingConfig, seed: int):
    """gensim Word2Vec (`source: train`) or FastText (`fasttext`) on the train split, read
    from a corpus file: gensim's workers then read and train in C without the GIL, instead of
    waiting on a Python iterator (faster on the 20k train reviews: bench/NOTES.md). FastText's
    vectors give any token one, from the n-grams it shares with the train split."""
    from gensim.models import FastText, Word2Vec

    if cfg.source == "fasttext":
        kind, what = FastText, "FastText"
        extra = {"min_n": cfg.min_n, "max_n": cfg.max_n, "bucket": FASTTEXT_BUCKETS}
        detail = f", n-grams of {cfg.min_n}-{cfg.max_n} characters"
    else:
        kind, what, extra, detail = Word2Vec, "word2vec", {}, ""
    model = kind(vector_size=cfg.vector_size, window=cfg.window, min_count=cfg.min_count,
                 workers=max(1, os.cpu_count() or 1), seed=seed, **extra)
    with tempfile.TemporaryDirectory(prefix="rnnflow-vectors-") as tmp:
        corpus = str(Path(tmp) / "train.txt")
        _write_train_corpus(tokens_path, Path(corpus))
        model.build_vocab(corpus_file=corpus)
        if not model.wv.index_to_key:
            raise EmbeddingError(
                f"{what} found no token with at least embedding.min_count={cfg.min_count} "
                "occurrences in the train split; lower min_count or use more data"
            )
        log.info("training %s on the train split: %d words%s, %d epochs", what,
                 len(model.wv.index_to_key), detail, cfg.epochs)
        model.train(corpus_file=corpus, total_examples=model.corpus_count,
                    total_words=model.corpus_total_words, epochs=cfg.epochs)
    return model.wv


def _random_vectors(rows: int, dim: int, seed: int) -> np.ndarray:
    """Starting vectors for `source: learned`: uniform in +-0.05, Keras's Embedding default."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.05, 0.05, size=(rows, dim)).astype(np.float32)


def _vector_table(tokens: list[str], vectors: np.ndarray) -> pa.Table:
    return pa.table({
        "row": pa.array(np.arange(1, len(tokens) + 1, dtype=np.int32)),
        "token": pa.array(tokens, type=pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()),
                                                    vectors.shape[1]),
    })


def _load_vectors(cfg: EmbeddingConfig):
    from gensim.models import KeyedVectors

    if cfg.source == "gensim":
        import gensim.downloader

        try:
            return gensim.downloader.load(cfg.name)
        except Exception as exc:
            # gensim-data reads its catalogue from the network first; offline it says only
            # that its local cache is missing, so the name lookup that failed is found in the
            # exception's chain.
            if name_unresolved(exc):
                raise EmbeddingError(
                    f"embedding.name '{cfg.name}': could not download the vectors through "
                    "gensim-data (no network: a host name does not resolve)",
                    unreachable=True) from exc
            raise EmbeddingError(
                f"embedding.name '{cfg.name}': gensim-data could not provide it ({exc}). "
                "Without network access, use embedding.source: train or a local file."
            ) from exc
    try:
        path, _ = download_dataset(cfg.url or "")
    except FileNotFoundError as exc:
        raise EmbeddingError(f"embedding.url {cfg.url}: file not found") from exc
    except DownloadError as exc:
        raise EmbeddingError(f"embedding.url: {exc}", unreachable=exc.unreachable) from exc
    if path.stat().st_size == 0:
        raise EmbeddingError(f"embedding.url {cfg.url}: the file is empty")
    if _is_fasttext_bin(path):
        return _load_fasttext(path, cfg)
    try:
        wv = KeyedVectors.load_word2vec_format(str(path), binary=cfg.binary, limit=cfg.limit)
    except Exception as exc:
        raise EmbeddingError(
            f"embedding.url {cfg.url}: not a readable word2vec "
            f"{'binary' if cfg.binary else 'text'} file ({exc}); check embedding.binary"
        ) from exc
    if cfg.limit and len(wv) < cfg.limit:
        log.warning("embedding.limit is %d but %s holds only %d vectors; all were read",
                    cfg.limit, cfg.url, len(wv))
    return wv


# The first four bytes of a fastText model file (.bin), little-endian.
_FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")


def _is_fasttext_bin(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == _FASTTEXT_MAGIC


def _load_fasttext(path: Path, cfg: EmbeddingConfig):
    """The word vectors of a fastText .bin model (e.g. cc.it.300.bin): its vocabulary's
    vectors, the first `limit` of them if set (subword vectors for unknown words are not
    used: a token outside the vocabulary is OOV, as with any vector file)."""
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import load_facebook_vectors

    try:
        ft = load_facebook_vectors(str(path))
    except Exception as exc:
        raise EmbeddingError(f"embedding.url {cfg.url}: not a readable fastText .bin file "
                             f"({exc})") from exc
    words = ft.index_to_key[: cfg.limit] if cfg.limit else ft.index_to_key
    wv = KeyedVectors(ft.vector_size, count=len(words), dtype=np.float32)
    wv.add_vectors(words, np.asarray([ft.get_vector(w) for w in words], dtype=np.float32))
    log.info("embeddings: %d word vectors of a fastText model (%s)", len(wv), path.name)
    return wv


def embeddings_stage(tokens: Stage, cfg: EmbeddingConfig, seed: int = 0) -> Stage:
    if cfg.source == "onehot":  # only these two settings shape a one-hot vocabulary
        return stage("embeddings", {"source": "onehot", "max_tokens": cfg.max_tokens},
                     tokens.key, VERSION)
    if cfg.source == "learned":  # the vocabulary, the width and the starting draw
        return stage("embeddings", {"source": "learned", "max_tokens": cfg.max_tokens,
                                    "vector_size": cfg.vector_size, "seed": seed},
                     tokens.key, VERSION)
    if cfg.source == "fasttext":
        return stage("embeddings", {"source": "fasttext", "seed": seed, **cfg.model_dump(
            include={"vector_size", "window", "min_count", "epochs", "min_n", "max_n"})},
            tokens.key, VERSION)
    # The keys of the tables built before the learned and fasttext sources, so that their
    # cached stages keep their keys.
    section = cfg.model_dump(exclude={"max_tokens", "min_n", "max_n"})
    if cfg.source == "train":
        section["seed"] = seed
    return stage("embeddings", section, tokens.key, VERSION)


def build_embeddings(tokens: Stage, cfg: EmbeddingConfig, seed: int = 0) -> Stage:
    """Write data/embeddings/<key>/table.parquet: row (1..V), token, vector (float32[dim])."""
    out = embeddings_stage(tokens, cfg, seed)
    if out.done():
        log.info("embeddings: reusing %s", out.path)
        return out

    tokens_path = tokens.file("tokens.parquet")
    if cfg.source == "onehot":
        keep, counts = _train_vocab(tokens_path, cfg.max_tokens)
        if not len(keep):
            raise EmbeddingError("the train split has no tokens: no one-hot vocabulary")
        log.info("embeddings: one-hot over the %d most frequent train tokens", len(keep))
        with writing(out) as tmp:
            write_parquet(pa.table({
                "row": pa.array(np.arange(1, len(keep) + 1, dtype=np.int32)),
                "token": keep.cast(pa.string()), "count": counts,
            }), tmp / "table.parquet")
        return out
    if cfg.source == "learned":
        keep, _ = _train_vocab(tokens_path, cfg.max_tokens)
        if not len(keep):
            raise EmbeddingError("the train split has no tokens: no vocabulary to learn")
        log.info("embeddings: %d-d vectors to learn for the %d most frequent train tokens",
                 cfg.vector_size, len(keep))
        with writing(out) as tmp:
            write_parquet(_vector_table(keep.to_pylist(), _random_vectors(
                len(keep), cfg.vector_size, seed)), tmp / "table.parquet")
        return out
    corpus = _corpus_vocab(tokens_path)
    if cfg.source == "fasttext":
        wv = _train_vectors(tokens_path, cfg, seed)
        # Every corpus token: those outside FastText's own vocabulary get their n-grams' sum.
        keep = corpus.to_pylist()
        unseen = sum(t not in wv.key_to_index for t in keep)
        log.info("embeddings: FastText vectors for all %d distinct corpus tokens, %d of them "
                 "(%.1f%%) built from n-grams alone", len(keep), unseen,
                 100 * unseen / max(1, len(keep)))
    else:
        wv = _train_vectors(tokens_path, cfg, seed) if cfg.source == "train" \
            else _load_vectors(cfg)
        keep = [t for t in corpus.to_pylist() if t in wv.key_to_index]
        log.info("embeddings: %d of %d distinct corpus tokens have a vector (%.1f%%)",
                 len(keep), len(corpus), 100 * len(keep) / max(1, len(corpus)))
    if not keep:
        raise EmbeddingError("no corpus token is in the embedding vocabulary")
    vectors = np.asarray(wv[keep], dtype=np.float32)
    with writing(out) as tmp:
        write_parquet(_vector_table(keep, vectors), tmp / "table.parquet")
    return out


def load_table(embeddings: Stage) -> tuple[list[str], np.ndarray | None]:
    """Tokens and the (V+1) x dim weight matrix whose row 0 is the zero padding vector; None
    instead of the matrix for a one-hot vocabulary."""
    path = embeddings.file("table.parquet")
    if "vector" not in pq.read_schema(path).names:
        return load_vocab(embeddings), None
    weights, rest = read_fixed_rows(path, "vector", np.float32, others=("token",), first_row=1)
    return rest["token"].tolist(), weights


def load_vocab(embeddings: Stage) -> list[str]:
    """The table's tokens in row order (row i + 1 is token i)."""
    return pq.read_table(embeddings.file("table.parquet"), columns=["token"])["token"].to_pylist()
