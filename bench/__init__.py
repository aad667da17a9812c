"""Benchmarks: run each as a module from the project root, e.g. `python -m bench.run`."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The shared 5,000-review sample of the real dataset, beside the checkout; the default archive
# of the benchmarks and the tests' source of real reviews.
SAMPLE = REPO.parent / "shared" / "data" / "aclImdb_sample.tar.gz"
