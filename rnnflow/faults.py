"""Fault injection for testing recovery: RNNFLOW_FAULT=<point> makes the process SIGKILL itself.

Points: `after_epoch:<n>` (once epoch n is saved and logged), `after_trial:<n>` (once search
trial n is told to its study), and `<step>` (e.g. `vectorize`,
`download`) just before that step writes its output. A real kill, so the tests see exactly
what a crash or an OOM kill leaves behind. Unset, it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal


def maybe_fail(point: str) -> None:
    if os.environ.get("RNNFLOW_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
