"""Serve one deployment of `train-rnn` per params file, named after the file's stem, dots
included (`params/a.v2.yaml` is `train-rnn/a.v2`).

    rnnflow serve                     # or: python -m flows.serve [params folder]
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    prefect deployment run train-rnn/quick --watch -p overrides='{"train.epochs": 3}'

Serving needs one API that the server process, its flow runs and the shell that triggers them
all share: Prefect's per-process temporary server cannot stream a run's events to another
process, so `--watch` would wait forever. So unless PREFECT_API_URL names a server already,
serving starts a local `prefect server start` (with the UI) and stops it on exit.

The "serving ..." lines, with the `prefect deployment run` command of every deployment, are
logged only once every deployment can be read back from the API by
name: a shell (or test) that triggers one as soon as it sees the line finds it. `prefect.serve`
registers the deployments only after it is called, with no hook in between, so the runner is
built here as `serve` builds it: register, confirm, log, then start polling.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from flows.local_server import prefect_api
from rnnflow.config import ConfigError

log = logging.getLogger("rnnflow.serve")


def serve_params(params_dir: Path = Path("params"), port: int = 4200) -> None:
    files = sorted(params_dir.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no params files (*.yaml) in {params_dir}")
    with prefect_api(port, ui=True):
        url = os.environ["PREFECT_API_URL"]
        # Prefect reads its settings when imported: only now, with the API chosen.
        from prefect.exceptions import TerminationSignal
        from prefect.runner import Runner

        from flows.train_rnn import train_rnn

        deployments = [
            train_rnn.to_deployment(name=path.stem, tags=["rnnflow"],
                                    parameters={"params_file": str(path.resolve())},
                                    description=f"train-rnn on {path.name}")
            for path in files
        ]
        for path, deployment in zip(files, deployments, strict=True):
            if deployment.name != path.stem:  # Prefect takes a name ending .py for a file's
                raise ConfigError(f"{path}: Prefect would serve it as {deployment.name!r}, not "
                                  f"{path.stem!r}; rename the file")
        runner = Runner(pause_on_shutdown=True)
        for deployment in deployments:
            runner.add_deployment(deployment)  # creates or updates it on the API
        names = [f"{d.flow_name}/{d.name}" for d in deployments]
        _wait_until_registered(names)
        log.info("serving %d deployment(s) on %s; in another shell:\n  export "
                 "PREFECT_API_URL=%s\n%s", len(names), url, url,
                 "\n".join(f"  prefect deployment run {shlex.quote(n)}" for n in names))
        try:
            asyncio.run(runner.start())
        except (KeyboardInterrupt, TerminationSignal) as exc:
            log.info("%s: stopped serving", type(exc).__name__)


def _wait_until_registered(names: list[str], timeout: float = 60.0) -> None:
    """Return once the API answers for every deployment in `names` (flow/deployment)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        for name in names:
            while True:
                try:
                    client.read_deployment_by_name(name)
                    break
                except ObjectNotFound:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"deployment {name} was registered but the Prefect "
                                           f"API does not find it after {timeout:.0f} s") from None
                    time.sleep(0.2)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    serve_params(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("params"))
