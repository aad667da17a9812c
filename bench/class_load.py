"""A class's load on one course server: 30 simulated students on loopback, each logging what an
rnnflow run logs, against an authenticated `mlflow server` on SQLite and then on PostgreSQL.

    python -m bench.class_load [--students 30] [--spread 60] [--workers 4] [--json FILE]

For each backend store (SQLite: a file; PostgreSQL: scripts/postgres-local's cluster, started
if it does not run) a fresh `mlflow server --app-name basic-auth --serve-artifacts` on
127.0.0.1, the students as its users, then two rounds: all students at once (a barrier), then
the same students arriving at random over `--spread` seconds. A student is one thread with its
own HTTP session and credentials, calling MLflow's REST API as the client does for a run:
create its experiment (`<user>/class-load-<round>`) and run, one batch of 60 params, 2 to 30
epochs of four metrics (one log-batch call each, as `mlflow.log_metrics`) and the epochs-done
tag, four artifacts (config, plot, test predictions, a 200 kB model folder) uploaded through
the server, the run ended FINISHED, a registered model `<user>.class-load-<round>` and a version
of it. Threads, not processes: 30 Python processes importing MLflow would measure the client
machine, and the load is the server's.

Reported per backend and round: runs lost or failed (a call that failed after the client's
retries, or a run that is not FINISHED with every epoch once), p50/p95/max latency of the
logging calls (every call above but the uploads, and the uploads apart), the MLflow server
process tree's peak RSS (PostgreSQL's own processes are not in it), the round's wall time.
Retries: the same urllib3 policy as MLflow's client (5xx and connection errors, backoff).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import psutil
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bench import REPO

API = "/api/2.0/mlflow"
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
ADMIN = ("teacher", "class-load-admin-pw")


def _session(user: str, password: str) -> requests.Session:
    """An HTTP session that retries as MLflow's client does (7 times, backoff factor 2)."""
    session = requests.Session()
    retry = Retry(total=7, connect=7, read=7, status=7, backoff_factor=2, backoff_jitter=1,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                  raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.auth = (user, password)
    return session


class Student(threading.Thread):
    def __init__(self, url: str, user: str, password: str, tag: str, seed: int,
                 delay: float, barrier: threading.Barrier | None) -> None:
        super().__init__(daemon=True)
        self.url, self.user, self.tag = url, user, tag
        self.session = _session(user, password)
        self.rng = random.Random(seed)
        self.epochs = self.rng.randint(2, 30)
        self.delay, self.barrier = delay, barrier
        self.latency: list[float] = []
        self.uploads: list[float] = []
        self.error: str | None = None
        self.run_id = self.experiment_id = self.model = None
        self.recreated = False  # a registered model's create answered "already exists"

    def _call(self, path: str, body: dict, method: str = "POST") -> dict:
        start = time.perf_counter()
        response = self.session.request(method, f"{self.url}{API}/{path}", json=body,
                                        timeout=120)
        self.latency.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code} {response.text[:200]}")
        return response.json()

    def _upload(self, path: str, data: bytes) -> None:
        start = time.perf_counter()
        response = self.session.put(
            f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{self.experiment_id}/{self.run_id}"
            f"/artifacts/{path}", data=data, timeout=300)
        self.uploads.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"upload {path}: HTTP {response.status_code}")

    def run(self) -> None:
        try:
            if self.barrier is not None:
                self.barrier.wait(timeout=300)
            time.sleep(self.delay)
            self._student()
        except Exception as exc:  # noqa: BLE001 - counted and reported, never raised
            self.error = f"{self.user}: {exc.__class__.__name__}: {exc}"

    def _student(self) -> None:
        name = f"{self.user}/class-load-{self.tag}"
        self.experiment_id = self._call("experiments/create", {"name": name})["experiment_id"]
        now = int(time.time() * 1000)
        self.run_id = self._call("runs/create", {
            "experiment_id": self.experiment_id, "run_name": "point", "start_time": now,
            "tags": [{"key": "params_file", "value": "params/quick.yaml"}]})["run"]["info"][
            "run_id"]
        params = [{"key": f"section{k // 10}.key{k}", "value": str(self.rng.random())}
                  for k in range(60)]
        self._call("runs/log-batch", {"run_id": self.run_id, "params": params})
        for epoch in range(1, self.epochs + 1):
            stamp = int(time.time() * 1000)
            self._call("runs/log-batch", {"run_id": self.run_id, "metrics": [
                {"key": key, "value": self.rng.random(), "timestamp": stamp, "step": epoch}
                for key in METRICS]})
            self._call("runs/set-tag", {"run_id": self.run_id, "key": "epochs_done",
                                        "value": str(epoch)})
        self._upload("config.yaml", b"model:\n  num_neurons: 32\n" * 20)
        self._upload("plots/learning_curves.png", os.urandom(60_000))
        self._upload("test_predictions.parquet", os.urandom(120_000))
        self._upload("text_model/model.keras", os.urandom(200_000))
        for key in ("val_accuracy", "test_accuracy", "test_auc", "train_seconds"):
            self._call("runs/log-metric", {"run_id": self.run_id, "key": key,
                                           "value": self.rng.random(),
                                           "timestamp": int(time.time() * 1000), "step": 0})
        self._call("runs/update", {"run_id": self.run_id, "status": "FINISHED",
                                   "end_time": int(time.time() * 1000)})
        model = self.model = f"{self.user}.class-load-{self.tag}"
        try:
            self._call("registered-models/create", {"name": model})
        except RuntimeError as exc:
            # A retried create the server had done already: rnnflow's registration takes it as
            # "created meanwhile" and goes on (rnnflow/tracking/registry.py), and so does this.
            if "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
            self.recreated = True
        self._call("model-versions/create", {
            "name": model, "run_id": self.run_id,
            "source": f"mlflow-artifacts:/{self.experiment_id}/{self.run_id}/artifacts/"
                      "text_model"})

    def check(self) -> str | None:
        """Why this student's run is lost or failed, or None: FINISHED, every epoch once."""
        if self.error:
            return self.error
        run = self._call(f"runs/get?run_id={self.run_id}", {}, "GET")["run"]
        if run["info"]["status"] != "FINISHED":
            return f"{self.user}: run {run['info']['status']}"
        history = self._call(f"metrics/get-history?run_id={self.run_id}&metric_key=val_loss",
                             {}, "GET").get("metrics", [])
        steps = sorted(m["step"] for m in history)
        if steps != list(range(1, self.epochs + 1)):
            return f"{self.user}: val_loss steps {steps}, expected 1..{self.epochs}"
        query = quote(f"name='{self.model}'")
        versions = self._call(f"model-versions/search?filter={query}", {}, "GET").get(
            "model_versions", [])
        if len(versions) != 1:  # a retried create could make a second one
            return f"{self.user}: {len(versions)} versions of {self.model}, expected 1"
        return None


class PeakRSS(threading.Thread):
    """The peak resident memory of a process and its children, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            total = 0
            for proc in [self.process, *self.process.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)


def _start_server(backend_uri: str, auth_uri: str, work: Path, workers: int, auth_cache: int):
    port = _free_port()
    ini = work / "auth.ini"
    ini.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {auth_uri}\n"
                   f"admin_username = {ADMIN[0]}\nadmin_password = {ADMIN[1]}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth"
                   f"\nauth_cache_ttl_seconds = {auth_cache}\n")
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (work / "server.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--app-name", "basic-auth",
         "--backend-store-uri", backend_uri, "--serve-artifacts", "--artifacts-destination",
         str(work / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers",
         str(workers)], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {work / 'server.log'}") from None
            time.sleep(0.5)
    return proc, url


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _round(url: str, users: dict[str, str], tag: str, spread: float, seed: int) -> dict:
    rng = random.Random(seed)
    barrier = threading.Barrier(len(users)) if spread == 0 else None
    students = [Student(url, user, password, tag, seed * 1000 + i,
                        rng.uniform(0, spread) if spread else 0.0, barrier)
                for i, (user, password) in enumerate(users.items())]
    start = time.perf_counter()
    for student in students:
        student.start()
    for student in students:
        student.join(timeout=1800)
    wall = time.perf_counter() - start
    calls = [x for s in students for x in s.latency]  # the checks' calls left out
    uploads = [x for s in students for x in s.uploads]
    problems = [p for s in students if (p := s.check())]
    recreated = sum(s.recreated for s in students)
    return {"students": len(students), "lost_or_failed": len(problems), "problems": problems,
            "calls": len(calls), "call_p50_ms": 1000 * statistics.median(calls),
            "call_p95_ms": 1000 * _percentile(calls, 0.95), "call_max_ms": 1000 * max(calls),
            "uploads": len(uploads), "upload_p50_ms": 1000 * statistics.median(uploads),
            "upload_p95_ms": 1000 * _percentile(uploads, 0.95), "wall_s": wall,
            "epochs": sum(s.epochs for s in students), "model_create_retried": recreated}


POSTGRES = REPO / "scripts" / "postgres-local"


def _postgres_urls(tag: str) -> tuple[str, str, bool]:
    """Two new databases on scripts/postgres-local's cluster, and whether it was started here
    (then `measure` stops it again)."""
    script = POSTGRES
    started = subprocess.run([str(script), "status"], capture_output=True).returncode != 0
    if started:
        subprocess.run([str(script), "start"], check=True)
    env = dict(line.split("=", 1) for line in subprocess.run(
        ["bash", "-c", f'eval "$({script} env)" && env -0'], capture_output=True, text=True,
        check=True).stdout.split("\0") if "=" in line)
    for db in (f"bench_{tag}", f"bench_{tag}_auth"):
        subprocess.run(["psql", "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS {db}"],
                       env=env, check=True)
        subprocess.run(["psql", "-d", "postgres", "-qc", f"CREATE DATABASE {db}"], env=env,
                       check=True)
    base = env["RNNFLOW_PG_URL"].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/bench_{tag}", f"{base}/bench_{tag}_auth", started


def measure(backend: str, students: int, spread: float, workers: int, auth_cache: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"class-load-{backend}-"))
    started = False
    if backend == "sqlite":
        store, auth = f"sqlite:///{work / 'mlflow.db'}", f"sqlite:///{work / 'auth.db'}"
    else:
        store, auth, started = _postgres_urls(time.strftime("%H%M%S"))
    proc, url = _start_server(store, auth, work, workers, auth_cache)
    peak = PeakRSS(proc.pid)
    peak.start()
    try:
        admin = _session(*ADMIN)
        users = {f"student{i:02d}": secrets.token_urlsafe(12) for i in range(students)}
        for user, password in users.items():
            answer = admin.post(f"{url}{API}/users/create",
                                json={"username": user, "password": password}, timeout=60)
            answer.raise_for_status()
        rounds = {"at_once": _round(url, users, "a", 0, 1),
                  f"over_{spread:.0f}s": _round(url, users, "b", spread, 2)}
    finally:
        peak.done.set()
        peak.join()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        if started:
            subprocess.run([str(POSTGRES), "stop"], check=False)
    server_log = (work / "server.log").read_text(errors="replace")
    return {"backend": backend, "server_peak_rss_mb": peak.peak / 2**20, "rounds": rounds,
            "server_5xx_lines": sum(" 500 " in line or " 503 " in line
                                    for line in server_log.splitlines()),
            "database_locked_lines": server_log.count("database is locked"), "work": str(work)}


def main() -> None:
    # A SIGTERM (a `timeout`) unwinds through the `finally` that stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--spread", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4, help="the server's uvicorn workers")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--auth-cache", type=int, default=60,
                        help="auth_cache_ttl_seconds of the server (0: every request checks "
                             "the password hash again)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "class_load.json")
    args = parser.parse_args()
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_average": os.getloadavg(),
               "students": args.students, "workers": args.workers,
               "auth_cache_ttl_seconds": args.auth_cache, "backends": []}
    for backend in args.backends.split(","):
        result = measure(backend, args.students, args.spread, args.workers, args.auth_cache)
        results["backends"].append(result)
        for name, r in result["rounds"].items():
            print(f"{backend:10s} {name:10s} lost/failed {r['lost_or_failed']}/{r['students']}"
                  f"  calls {r['calls']} p50 {r['call_p50_ms']:.0f} ms p95 "
                  f"{r['call_p95_ms']:.0f} ms max {r['call_max_ms']:.0f} ms  uploads p50 "
                  f"{r['upload_p50_ms']:.0f} ms p95 {r['upload_p95_ms']:.0f} ms  wall "
                  f"{r['wall_s']:.1f} s", flush=True)
            for problem in r["problems"][:5]:
                print(f"    {problem}")
        print(f"{backend:10s} server peak RSS {result['server_peak_rss_mb']:.0f} MB, 5xx lines "
              f"{result['server_5xx_lines']}, 'database is locked' "
              f"{result['database_locked_lines']}", flush=True)
    results["load_average_after"] = os.getloadavg()
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
