"""Run a command and report its wall time and the peak RSS of its whole process tree.

    python -m bench.peak_rss [--json out.json] -- rnnflow run params/quick.yaml ...

ru_maxrss only sees the largest single process; this samples the sum over the tree (the flow,
its tokenizer workers and Prefect's temporary server) every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import psutil


def measure(cmd: list[str], interval: float = 0.05, timeline: str | None = None,
            env: dict[str, str] | None = None, cwd: str | None = None,
            output=None) -> dict[str, float]:
    """Run `cmd` (in `cwd`, with `env`, its stdout and stderr to the file `output` if given)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=output,
                            stderr=None if output is None else subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    peak = 0
    rows = []
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            per = {}
            for p in tree:
                try:
                    per[p.pid] = (p.memory_info().rss, " ".join(p.cmdline()[1:4])[-60:])
                except psutil.Error:
                    pass
            total = sum(r for r, _ in per.values())
            peak = max(peak, total)
            if timeline is not None:
                rows.append((time.perf_counter() - started, total, per))
        except psutil.Error:
            pass
        time.sleep(interval)
    if timeline is not None:
        with open(timeline, "w") as fh:
            for t, total, per in rows[::4]:
                parts = "; ".join(f"{r / 2**20:.0f}MB {c}" for r, c in per.values())
                fh.write(f"{t:7.1f}s {total / 2**20:6.0f}MB  {parts}\n")
    return {"returncode": proc.returncode, "wall_s": time.perf_counter() - started,
            "peak_rss_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--timeline", help="write the tree's RSS over time, per process, here")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    result = measure(cmd, timeline=args.timeline)
    print(f"wall {result['wall_s']:.1f} s, peak RSS (process tree) {result['peak_rss_mb']:.0f} MB,"
          f" exit {result['returncode']}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"cmd": cmd, **result}, fh, indent=2)
    sys.exit(result["returncode"])


if __name__ == "__main__":
    main()
