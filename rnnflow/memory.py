"""Memory handed back to the operating system between the steps of a run.

Arrow's allocator and glibc keep freed pages for reuse. After a stage over 50k reviews that is
several hundred MB, and the training step, in the same process, would sit on top of it; after
training, the batches and buffers inference does not need. Every layer calls it at the end of
its own big step, so it lives beside `faults`, below them all.
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
