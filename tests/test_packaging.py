"""A plain install: the wheel holds the library, the flows and the tasks (and the default
checks), and `rnnflow run` works from a folder that is not the checkout. A smoke test: `make
smoke` runs it, `make test` does not."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml

from tests.helpers import REPO, TINY_GRID, project_env


@pytest.mark.slow
@pytest.mark.smoke
def test_the_wheel_runs_outside_the_checkout(tmp_path, tiny_archive):
    # Built from a copy: setuptools builds in the source folder (build/, *.egg-info).
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "mlruns", "build", "*.egg-info", "__pycache__", "mlflow.db*"))
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--wheel-dir", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("rnnflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"flows/train_rnn.py", "flows/serve.py", "tasks/stages.py", "tasks/workers.py",
            "rnnflow/cli.py", "rnnflow/tracking/text_pyfunc.py",
            "rnnflow/insight/checks.yaml"} <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "params/"))]

    site = tmp_path / "site"  # the wheel alone; its dependencies are this environment's
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                              "--target", str(site), str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    params = yaml.safe_load(TINY_GRID.read_text())
    params.update(name="outside", grid={}, dataset={"url": str(tiny_archive)})
    (elsewhere / "p.yaml").write_text(yaml.safe_dump(params))
    env = project_env(elsewhere, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "import flows, rnnflow, tasks; print("
                            "flows.__file__, rnnflow.__file__, tasks.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0 and all(p.startswith(str(site)) for p in where.stdout.split())
    run = subprocess.run([str(site / "bin" / "rnnflow"), "run", "p.yaml"], cwd=elsewhere,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("run ")]
    assert "test_accuracy=" in line
    assert (elsewhere / "mlflow.db").is_file() and (elsewhere / "data" / "padded").is_dir()
