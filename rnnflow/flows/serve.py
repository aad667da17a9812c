"""Serve one deployment of `train-rnn` per params file, named after the file's stem.

    rnnflow serve                     # or: python -m rnnflow.flows.serve [params folder]
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    prefect deployment run train-rnn/quick --watch -p overrides='{"train.epochs": 3}'

Serving needs one API that the server process, its flow runs and the shell that triggers them
all share: Prefect's per-process temporary server cannot stream a run's events to another
process, so `--watch` would wait forever. So unless PREFECT_API_URL names a server already,
serving starts a local `prefect server start` (with the UI) and stops it on exit.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from rnnflow.flows.local_server import prefect_api

log = logging.getLogger("rnnflow.serve")


def serve_params(params_dir: Path = Path("params"), port: int = 4200) -> None:
    files = sorted(params_dir.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no params files (*.yaml) in {params_dir}")
    with prefect_api(port, ui=True):
        url = os.environ["PREFECT_API_URL"]
        # Prefect reads its settings when imported: only now, with the API chosen.
        from prefect import serve

        from rnnflow.flows.train_rnn import train_rnn

        deployments = [
            train_rnn.to_deployment(name=path.stem, tags=["rnnflow"],
                                    parameters={"params_file": str(path.resolve())},
                                    description=f"train-rnn on {path.name}")
            for path in files
        ]
        log.info("serving %s on %s; in another shell: export PREFECT_API_URL=%s",
                 ", ".join(f"train-rnn/{p.stem}" for p in files), url, url)
        serve(*deployments)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    serve_params(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("params"))
