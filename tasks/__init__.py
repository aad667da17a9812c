"""Thin Prefect tasks around the rnnflow steps: names, retries, nothing else.

Steps cache their own outputs by content key under data/, so Prefect's result caching stays off
(it would hash Keras models and Arrow tables passed between tasks).
"""

from prefect import task
from prefect.cache_policies import NONE

from rnnflow import download, embeddings, evaluate, pad, reviews, tokens, train, vectorize


def _network_error(task, task_run, state) -> bool:  # noqa: ARG001 - Prefect's signature
    try:
        state.result()
    except download.DownloadError:
        return True
    except Exception:
        return False
    return False


download_dataset = task(
    download.download_dataset, name="download_dataset", cache_policy=NONE,
    retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=_network_error,
)
read_reviews = task(reviews.read_reviews, name="read_reviews", cache_policy=NONE)
tokenize_reviews = task(tokens.tokenize_reviews, name="tokenize_reviews", cache_policy=NONE)
build_embeddings = task(embeddings.build_embeddings, name="build_embeddings", cache_policy=NONE)
vectorize_tokens = task(vectorize.vectorize_tokens, name="vectorize_tokens", cache_policy=NONE)
pad_sequences = task(pad.pad_sequences, name="pad_sequences", cache_policy=NONE)
train_model = task(train.train_model, name="train_model", cache_policy=NONE)
evaluate_model = task(evaluate.evaluate_model, name="evaluate_model", cache_policy=NONE)
