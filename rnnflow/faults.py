"""Fault injection for testing recovery: RNNFLOW_FAULT=<point> makes the process SIGKILL itself;
RNNFLOW_FAULT=hold:<point> makes it wait there until something else kills it (a batch
scheduler's `scancel`: the test knows the job is mid-training when it cancels it);
RNNFLOW_FAULT=gate:<point>[,<point>...] makes it stop at each point until it is let on: it
writes `<point>.reached` into the folder $RNNFLOW_FAULT_GATE and waits for `<point>.go` there
(a test restarts a server or the database at that moment, then lets the run go on).

Points: `after_epoch:<n>` (once epoch n is saved and logged), `after_trial:<n>` (once search
trial n is told to its study), and `<step>` (e.g. `vectorize`,
`download`) just before that step writes its output. A real kill, so the tests see exactly
what a crash or an OOM kill leaves behind. Unset, it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path


def maybe_fail(point: str) -> None:
    fault = os.environ.get("RNNFLOW_FAULT", "")
    if fault == point:
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == f"hold:{point}":
        threading.Event().wait()  # never set: the process ends when it is killed
    elif fault.startswith("gate:") and point in fault.removeprefix("gate:").split(","):
        gate = Path(os.environ["RNNFLOW_FAULT_GATE"])
        (gate / f"{point}.reached").write_text("")
        go = gate / f"{point}.go"
        deadline = time.monotonic() + 900  # a test that died never lets it go: give up then
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
