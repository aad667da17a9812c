"""rnnflow's own log lines (the `rnnflow` loggers: review counts, epochs, val/test accuracy) in
the Prefect API as the logs of the flow or task run that wrote them, so the Logs tab of a flow
run shows them beside Prefect's state lines.

`rnnflow run` names the `rnnflow` logger in PREFECT_LOGGING_EXTRA_LOGGERS before Prefect is
imported, and Prefect gives it its API handler then. Where a flow runs any other way (a
deployment's process started by `rnnflow serve`, a Dask worker, a test or a script calling the
flow), nothing did: the logger had no API handler, and its INFO lines were dropped below the
root logger's WARNING. `run_logs` gives it both for as long as a flow or task runs, and takes
them away after, so that rnnflow's lines outside any run (a library call) never meet an API
handler that would warn about the missing run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

LOGGER = "rnnflow"


@contextlib.contextmanager
def run_logs() -> Iterator[None]:
    """While the block runs: the `rnnflow` logger sends to the Prefect API (with the handlers
    Prefect's logging configuration gives its extra loggers) and passes INFO lines, unless
    it has either already."""
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger(LOGGER)
    added = []
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):
        # Prefect's own configuration of its extra loggers: none where the user's logging
        # configuration sends nothing to the API.
        added = [h for h in logging.getLogger("prefect.extra").handlers
                 if isinstance(h, APILogHandler)]
    level = logger.level
    if level == logging.NOTSET:  # a level set on purpose (by `rnnflow run`, or a user) stays
        logger.setLevel(logging.INFO)
    for handler in added:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in added:
            logger.removeHandler(handler)
        logger.setLevel(level)
