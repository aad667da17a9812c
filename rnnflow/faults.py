"""Fault injection for testing recovery: RNNFLOW_FAULT=<point> makes the process SIGKILL itself;
RNNFLOW_FAULT=hold:<point> makes it wait there until something else kills it (a batch
scheduler's `scancel`: the test knows the job is mid-training when it cancels it).

Points: `after_epoch:<n>` (once epoch n is saved and logged), `after_trial:<n>` (once search
trial n is told to its study), and `<step>` (e.g. `vectorize`,
`download`) just before that step writes its output. A real kill, so the tests see exactly
what a crash or an OOM kill leaves behind. Unset, it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
import threading


def maybe_fail(point: str) -> None:
    fault = os.environ.get("RNNFLOW_FAULT")
    if fault == point:
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == f"hold:{point}":
        threading.Event().wait()  # never set: the process ends when it is killed
