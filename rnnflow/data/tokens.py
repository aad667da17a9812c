"""tokenize_reviews: NLTK tokens for every review, on every core, written as tokens.parquet."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq

from rnnflow.config import DatasetConfig, TokenizeConfig
from rnnflow.data.reviews import reviews_stage
from rnnflow.data.storage import Stage, stage, writing

log = logging.getLogger(__name__)

VERSION = 1
_TAG = re.compile(r"<[^>]+>")
_BATCH = 2_000
# Below this many documents a process pool costs more to start than it saves.
_PARALLEL_MIN_DOCS = 4_000

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("label", pa.int8()),
        ("tokens", pa.list_(pa.string())),
    ]
)


def make_tokenizer(cfg: TokenizeConfig) -> Callable[[str], list[str]]:
    """The configured NLTK tokenizer, with the lowercase and strip_html options applied first."""
    from nltk.tokenize import (
        RegexpTokenizer,
        TreebankWordTokenizer,
        TweetTokenizer,
        WordPunctTokenizer,
    )

    if cfg.tokenizer == "regexp":  # the tokens are the pattern's matches
        split = RegexpTokenizer(cfg.pattern).tokenize
    else:
        split = {
            "treebank": TreebankWordTokenizer().tokenize,
            "casual": TweetTokenizer().tokenize,
            "wordpunct": WordPunctTokenizer().tokenize,
        }[cfg.tokenizer]

    def tokenize(text: str) -> list[str]:
        if cfg.strip_html:
            text = _TAG.sub(" ", text)
        if cfg.lowercase:
            text = text.lower()
        return split(text)

    return tokenize


def _tokenize_batch(texts: list[str], cfg: TokenizeConfig) -> pa.Array:
    tokenize = make_tokenizer(cfg)
    return pa.array([tokenize(t) for t in texts], type=pa.list_(pa.string()))


def _workers(n_docs: int) -> int:
    return 1 if n_docs < _PARALLEL_MIN_DOCS else max(1, os.cpu_count() or 1)


def _warm() -> None:
    from nltk.tokenize import TreebankWordTokenizer  # noqa: F401 - the import is the point


_STARTED: tuple[int, ProcessPoolExecutor] | None = None


def start_workers(expected_docs: int | None = None) -> None:
    """Start the tokenizer processes ahead of time, if `expected_docs` (unknown: None) would
    get a pool. Each imports NLTK first (about 1.6 s of a core); the flow calls this before
    reading the archive, which leaves a core idle, so the start-up overlaps the read.
    tokenize_reviews adopts the pool, or starts its own."""
    global _STARTED
    workers = _workers(_PARALLEL_MIN_DOCS if expected_docs is None else expected_docs)
    if _STARTED is None and workers > 1:
        _STARTED = workers, _new_pool(workers)
        for _ in range(workers):
            _STARTED[1].submit(_warm)


def start_early(digest: str, dataset: DatasetConfig, cfg: TokenizeConfig) -> None:
    """Called before the reviews of the file with sha256 `digest` are read: the tokenizer
    processes boot while the archive is read, unless these tokens are on disk already."""
    if tokens_stage(reviews_stage(digest, dataset), cfg).done():
        return
    # `limit` reviews of each official split (train, test) will be read.
    start_workers(None if dataset.limit is None else 2 * dataset.limit)


def _new_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent may already hold TensorFlow's threads.
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _pool(workers: int) -> ProcessPoolExecutor:
    global _STARTED
    started, _STARTED = _STARTED, None
    if started is not None and started[0] == workers:
        return started[1]
    if started is not None:
        started[1].shutdown(wait=False, cancel_futures=True)
    return _new_pool(workers)


def _batches(reviews: pq.ParquetFile) -> Iterator[pa.RecordBatch]:
    yield from reviews.iter_batches(batch_size=_BATCH, columns=["id", "split", "label", "text"])


def tokens_stage(reviews: Stage, cfg: TokenizeConfig) -> Stage:
    return stage("tokens", cfg.model_dump(), reviews.key, VERSION)


def tokenize_reviews(reviews: Stage, cfg: TokenizeConfig) -> Stage:
    """Write data/tokens/<key>/tokens.parquet: id, split, label, tokens (list<string>)."""
    out = tokens_stage(reviews, cfg)
    if out.done():
        log.info("tokens: reusing %s", out.path)
        return out
    source = pq.ParquetFile(reviews.file("reviews.parquet"))
    n_docs = source.metadata.num_rows
    workers = _workers(n_docs)
    log.info("tokenizing %d reviews with %s on %d process(es)", n_docs, cfg.tokenizer, workers)

    with writing(out) as tmp, pq.ParquetWriter(tmp / "tokens.parquet", SCHEMA,
                                               compression="zstd") as writer:
        report_every = max(_BATCH, n_docs // 10)

        def write(batch: pa.RecordBatch, tokens: pa.Array, done: int) -> None:
            writer.write_table(pa.table({
                "id": batch["id"], "split": batch["split"],
                "label": batch["label"].cast(pa.int8()), "tokens": tokens,
            }, schema=SCHEMA))
            if done == n_docs or done // report_every != (done - batch.num_rows) // report_every:
                log.info("tokenized %d/%d reviews", done, n_docs)

        done = 0
        if workers == 1:
            for batch in _batches(source):
                done += batch.num_rows
                write(batch, _tokenize_batch(batch["text"].to_pylist(), cfg), done)
        else:
            with _pool(workers) as pool:
                # Batches are written back in order, with up to two per worker in flight. Until
                # the first worker answers (each imports NLTK first, about 1.6 s) this process
                # tokenizes batches itself rather than wait with a core idle.
                pending: deque[tuple[pa.RecordBatch, Future | pa.Array]] = deque()

                def ready(item: Future | pa.Array) -> bool:
                    return not isinstance(item, Future) or item.done()

                def flush(wait: bool) -> None:
                    nonlocal done
                    while pending and (wait or ready(pending[0][1])):
                        b, item = pending.popleft()
                        done += b.num_rows
                        write(b, item.result() if isinstance(item, Future) else item, done)

                workers_up = False
                for batch in _batches(source):
                    workers_up = workers_up or any(
                        isinstance(i, Future) and i.done() for _, i in pending)
                    flush(wait=len(pending) >= 2 * workers)
                    texts = batch["text"].to_pylist()
                    if workers_up or len(pending) < workers:
                        pending.append((batch, pool.submit(_tokenize_batch, texts, cfg)))
                    else:
                        pending.append((batch, _tokenize_batch(texts, cfg)))
                flush(wait=True)
    return out
