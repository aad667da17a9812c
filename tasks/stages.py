"""The preprocessing steps as Prefect tasks, each cached under the content key of the stage it
writes: download (with retries), read, tokenize, word vectors, ids, padding.

Who decides whether a stage is reused: the stage itself. A stage is done when its `_SUCCESS`
marker exists under data/<stage>/<key>/ (`Stage.done()`), and nothing else is trusted:
- each step returns at once when its stage is done (the step's own check);
- Prefect caches the task under the stage's content key, so a reused step shows as Cached;
- where the stage's files were deleted, the call refreshes Prefect's cache instead, and the step
  runs again rather than handing on a path to nothing.
Each step has a locator, `<step>_stage`, that computes where the step writes from a subset of
the step's own arguments, matched by name; this is checked when the task is made. Each call is
timed under the step's name on the point's clock (tasks/timing.py).

`Stages` is what the six steps wrote for one point: what training, evaluation and the log read.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import CachePolicy

from rnnflow.data import download, embeddings, locations, pad, reviews, tokens, vectorize
from rnnflow.data.reviews import Labels
from rnnflow.data.storage import Stage
from rnnflow.network import baselines
from tasks.timing import timing

# locate(**some of the step's arguments) -> (cache key, whether the output is on disk)
Locator = Callable[..., tuple[str, bool]]


class StageTask:
    """Calls a step as a Prefect task cached under the key of the output it writes, timed as
    `step`."""

    def __init__(self, step: str, fn: Callable[..., Any], locate: Locator,
                 **options: Any) -> None:
        self.step, self.fn, self.locate, self.options = step, fn, locate, options
        self._signature = inspect.signature(fn)
        self._wants = list(inspect.signature(locate).parameters)
        extra = set(self._wants) - set(self._signature.parameters)
        if extra:
            raise TypeError(f"the locator of {fn.__name__} takes {sorted(extra)}, which "
                            f"{fn.__name__} does not")
        self.task = task(fn, name=fn.__name__, persist_result=True,
                         cache_policy=CachePolicy.from_cache_key_fn(self._key), **options)

    def where(self, *args: Any, **kwargs: Any) -> tuple[str, bool]:
        """(cache key, on disk) for a call of the step with these arguments."""
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return self._located(bound.arguments)

    def _located(self, arguments: dict[str, Any]) -> tuple[str, bool]:
        return self.locate(**{name: arguments[name] for name in self._wants})

    def _key(self, _ctx: Any, inputs: dict[str, Any]) -> str:
        return self._located(inputs)[0]

    def with_options(self, **options: Any) -> StageTask:
        return StageTask(self.step, self.fn, self.locate, **{**self.options, **options})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with timing(self.step):
            _, present = self.where(*args, **kwargs)
            return self.task.with_options(refresh_cache=not present)(*args, **kwargs)


def _stage(locate: Callable[..., Stage]) -> Locator:
    def where(**arguments: Any) -> tuple[str, bool]:
        out = locate(**arguments)
        return f"rnnflow-{out.name}-{out.key}", out.done()

    where.__signature__ = inspect.signature(locate)  # the locator's names are the stage's
    return where


def _raw_file(url: str | dict[str, str],
              sha256: str | dict[str, str] | None = None) -> tuple[str, bool]:
    """A download is keyed by URL and checksum; a local file also by its size and mtime, a
    local folder by its fingerprint, so editing either in place is noticed. Several files by
    role: by every file's role, URL, checksum and stamp; present when all are."""
    files = url if isinstance(url, dict) else {"": url}
    sums = sha256 if isinstance(sha256, dict) else {"": sha256}
    parts, present = [], True
    for role, each in files.items():
        path = download.present_file(each)
        stat = ""
        if path is not None and locations.is_local(each):
            stat = download.local_stamp(path)
        # One file's key is the one it had before files could be given by role.
        parts.append(f"{role}|" * bool(role) + f"{each}|{sums.get(role)}|{stat}")
        present = present and path is not None
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    return f"rnnflow-raw-{key}", present


def _network_error(_task: Any, _task_run: Any, state: Any) -> bool:
    """Retry a transient failure only: a host that does not resolve or an HTTP 404 would fail
    the same way seconds later, and offline a user would wait through every delay for it."""
    try:
        state.result()
    except download.DownloadError as exc:
        return exc.transient
    except Exception:
        return False
    return False


def _retry_delays() -> list[float]:
    """Seconds before each retry of a failed download: RNNFLOW_DOWNLOAD_RETRY_DELAYS
    ("1,5,15" unless set; as many retries as delays, "" for none)."""
    text = os.environ.get("RNNFLOW_DOWNLOAD_RETRY_DELAYS", "1,5,15")
    try:
        delays = [float(d) for d in text.split(",") if d.strip()]
    except ValueError:
        raise ValueError(f"RNNFLOW_DOWNLOAD_RETRY_DELAYS={text!r}: expected seconds separated "
                         "by commas, e.g. 1,5,15") from None
    if any(d < 0 for d in delays):
        raise ValueError(f"RNNFLOW_DOWNLOAD_RETRY_DELAYS={text!r}: delays cannot be negative")
    return delays


_DELAYS = _retry_delays()
download_dataset = StageTask(
    "download", download.download_dataset, _raw_file,
    retries=len(_DELAYS), retry_delay_seconds=_DELAYS or 0, retry_condition_fn=_network_error,
)
read_reviews = StageTask("read", reviews.read_reviews, _stage(reviews.reviews_stage))
tokenize_reviews = StageTask("tokenize", tokens.tokenize_reviews, _stage(tokens.tokens_stage))
build_embeddings = StageTask("embed", embeddings.build_embeddings,
                             _stage(embeddings.embeddings_stage))
vectorize_tokens = StageTask("vectorize", vectorize.vectorize_tokens,
                             _stage(vectorize.vectors_stage))
pad_sequences = StageTask("pad", pad.pad_sequences, _stage(pad.padded_stage))
# Not a step of a point: the flow fits the baselines once per dataset, before the points
# (flows/baselines.py).
fit_baseline = StageTask("baseline", baselines.fit_baseline,
                         _stage(baselines.baseline_stage))
# The steps' names on the point's clock, in the chain's order: their seconds add up to the
# point's `preprocess_seconds`.
STEPS = tuple(s.step for s in (download_dataset, read_reviews, tokenize_reviews,
                               build_embeddings, vectorize_tokens, pad_sequences))


@dataclass(frozen=True)
class Stages:
    """What the six steps wrote for one point, all under data/ (RNNFLOW_DATA_DIR)."""

    reviews: Stage
    tokens: Stage
    embeddings: Stage
    vectors: Stage
    padded: Stage
    vector_stats: dict[str, float]  # tokens, oov_tokens, empty_docs (vectorize's count)
    labels: Labels  # the class names, and the rows dropped for an empty label or text

    def keys(self) -> dict[str, str]:
        """Each stage's content key by stage name: the run's `stage.<name>` tags."""
        return {s.name: s.key for s in (self.reviews, self.tokens, self.embeddings,
                                        self.vectors, self.padded)}
