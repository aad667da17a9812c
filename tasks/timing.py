"""Wall seconds per step of one point: where a run's time went, logged as `seconds_<step>`.

The chain (flows/chain.py) runs each point inside `step_clock()`. Every step it calls is timed
here: a stage task, train_model, evaluate_model and log_results each add their wall seconds
under their step's name, Prefect's own work for the call included (a Cached stage's lookup,
a retried download's waits). The clock travels in a context variable, so the steps stay plain
calls in the chain; outside a clock (a test, a notebook) a step times nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class StepClock:
    """The seconds of one point's steps by name, and when the point started."""

    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=dict)

    def elapsed(self) -> float:
        """Wall seconds since the point started."""
        return time.perf_counter() - self.started


_CLOCK: contextvars.ContextVar[StepClock | None] = contextvars.ContextVar(
    "rnnflow_step_clock", default=None)


@contextlib.contextmanager
def step_clock() -> Iterator[StepClock]:
    """The clock every step called inside the block records its seconds on."""
    clock = StepClock()
    token = _CLOCK.set(clock)
    try:
        yield clock
    finally:
        _CLOCK.reset(token)


@contextlib.contextmanager
def timing(step: str) -> Iterator[None]:
    """The block's wall seconds, recorded as `step` on the current point's clock, if any."""
    clock, started = _CLOCK.get(), time.perf_counter()
    try:
        yield
    finally:
        if clock is not None:
            clock.seconds[step] = time.perf_counter() - started


def timed(step: str, fn: F) -> F:
    """`fn` (a Prefect task or any callable), each call timed as `step`."""

    @functools.wraps(fn, updated=())  # a Task's attributes stay on the Task
    def call(*args: Any, **kwargs: Any) -> Any:
        with timing(step):
            return fn(*args, **kwargs)

    return call  # type: ignore[return-value]
