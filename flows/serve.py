"""Serve one deployment of `train-rnn` per params file, named after the file's stem.

    rnnflow serve                     # or: python -m flows.serve [params folder]
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    prefect deployment run train-rnn/quick --watch -p overrides='{"train.epochs": 3}'

Serving needs one API that the server process, its flow runs and the shell that triggers them
all share: Prefect's per-process temporary server cannot stream a run's events to another
process, so `--watch` would wait forever. So unless PREFECT_API_URL names a server already,
serving starts a local `prefect server start` (with the UI) and stops it on exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("rnnflow.serve")


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def prefect_api(port: int = 4200, timeout: float = 120.0) -> Iterator[str]:
    """PREFECT_API_URL if set; else a local server on `port`, started here if none answers."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    url = f"http://127.0.0.1:{port}/api"
    server = None
    if not _healthy(url):
        prefect_bin = Path(sys.executable).with_name("prefect")
        log.info("starting a Prefect server on %s (UI: http://127.0.0.1:%d)", url, port)
        server = subprocess.Popen(
            [str(prefect_bin), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"the Prefect server on port {port} did not start; "
                                   "is the port taken? Try --port or set PREFECT_API_URL")
            time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = url
    try:
        yield url
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


def serve_params(params_dir: Path = Path("params"), port: int = 4200) -> None:
    files = sorted(params_dir.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no params files (*.yaml) in {params_dir}")
    with prefect_api(port) as url:
        # Prefect reads its settings when imported: only now, with the API chosen.
        from prefect import serve

        from flows.train_rnn import train_rnn

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
