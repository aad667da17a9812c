"""Thin Prefect tasks around the rnnflow steps: names, retries and caching.

A preprocessing task's cache key is the content key of the stage it writes, so Prefect shows a
step whose output already exists under data/ as Cached, across points of a grid and across runs.
Where a stage's files have been deleted, the call refreshes the cache instead: the step runs
again rather than handing on a path to nothing. Training and evaluation are never cached: their
inputs are models, and every run is a new MLflow run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NONE, CachePolicy

from rnnflow import download, embeddings, evaluate, pad, reviews, tokens, train, vectorize
from rnnflow.storage import Stage

# locate(*step arguments) -> (cache key, whether the output is on disk)
Locator = Callable[..., tuple[str, bool]]


class _StageTask:
    """Calls a step as a Prefect task cached under the key of the output it writes."""

    def __init__(self, fn: Callable[..., Any], locate: Locator, **options: Any) -> None:
        self.fn, self.locate, self.options = fn, locate, options
        self.task = task(fn, name=fn.__name__, persist_result=True,
                         cache_policy=CachePolicy.from_cache_key_fn(self._key), **options)

    def _key(self, _ctx: Any, inputs: dict[str, Any]) -> str:
        return self.locate(**inputs)[0]

    def with_options(self, **options: Any) -> _StageTask:
        return _StageTask(self.fn, self.locate, **{**self.options, **options})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _, present = self.locate(*args, **kwargs)
        return self.task.with_options(refresh_cache=not present)(*args, **kwargs)


def _stage(locate: Callable[..., Stage]) -> Locator:
    def where(*args: Any, **kwargs: Any) -> tuple[str, bool]:
        out = locate(*args, **kwargs)
        return f"rnnflow-{out.name}-{out.key}", out.done()

    return where


def _raw_file(url: str, sha256: str | None = None) -> tuple[str, bool]:
    """A download is keyed by URL and checksum; a local file also by its size and mtime, a
    local folder by its fingerprint, so editing either in place is noticed."""
    path = download.present_file(url)
    stat = ""
    if path is not None and download.is_local(url):
        stat = download.local_stamp(path)
    key = hashlib.sha256(f"{url}|{sha256}|{stat}".encode()).hexdigest()[:24]
    return f"rnnflow-raw-{key}", path is not None


def _network_error(_task: Any, _task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except download.DownloadError:
        return True
    except Exception:
        return False
    return False


download_dataset = _StageTask(
    download.download_dataset, _raw_file,
    retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=_network_error,
)
read_reviews = _StageTask(reviews.read_reviews, _stage(reviews.reviews_stage))
tokenize_reviews = _StageTask(tokens.tokenize_reviews, _stage(tokens.tokens_stage))
build_embeddings = _StageTask(embeddings.build_embeddings, _stage(embeddings.embeddings_stage))
vectorize_tokens = _StageTask(vectorize.vectorize_tokens, _stage(vectorize.vectors_stage))
pad_sequences = _StageTask(pad.pad_sequences, _stage(pad.padded_stage))
train_model = task(train.train_model, name="train_model", cache_policy=NONE)
evaluate_model = task(evaluate.evaluate_model, name="evaluate_model", cache_policy=NONE)
