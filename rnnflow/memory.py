"""Memory handed back to the operating system between the steps of a run, and the collector
kept off the objects that live as long as the process.

Arrow's allocator and glibc keep freed pages for reuse. After a stage over 50k reviews that is
several hundred MB, and the training step, in the same process, would sit on top of it; after
training, the batches and buffers inference does not need. Every layer calls it at the end of
its own big step, so it lives beside `faults`, below them all.

Each of those steps ends in a full garbage collection (Keras models hold reference cycles),
about ten a run. A process that has imported TensorFlow, Prefect and MLflow holds about a
million objects that live as long as it does; a collection that walks them all took 0.3 s or
more here, one that skips them (`freeze_long_lived`) 0.05-0.10 s.
"""

from __future__ import annotations

import ctypes
import gc

import pyarrow as pa


def release_memory() -> None:
    """Collect garbage (Keras models hold reference cycles), then hand what Arrow's pool and
    glibc keep free back to the OS."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only; musl and macOS have no malloc_trim
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


_frozen = False


def freeze_long_lived() -> None:
    """Collect, then move every object alive now out of the collector's reach (`gc.freeze`),
    once per process: for the entry points of a run (the `rnnflow` command, a Dask worker's
    first point), after the imports and before any model exists. What is frozen is never
    collected, so a cycle frozen now and dropped later stays in memory: freezing before a run
    makes its first model leaves nothing of the kind."""
    global _frozen
    if _frozen:
        return
    gc.collect()
    gc.freeze()
    _frozen = True
