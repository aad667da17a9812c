"""The collector kept off what a process's imports left (rnnflow/memory.py)."""

import subprocess
import sys


def test_the_long_lived_objects_are_frozen_once_per_process():
    """In a fresh process, as the `rnnflow` command and a Dask worker's first point call it:
    garbage is collected first, not frozen with the rest, and a second call, at a later
    point on the same worker, freezes nothing more."""
    code = (
        "import gc, weakref\n"
        "from rnnflow.memory import freeze_long_lived\n"
        "gc.disable()\n"  # the cycle below is garbage that only a collection finds
        "class Node: pass\n"
        "node = Node(); node.self = node; gone = weakref.ref(node); del node\n"
        "assert gc.get_freeze_count() == 0 and gone() is not None\n"
        "freeze_long_lived()\n"
        "frozen = gc.get_freeze_count()\n"
        "later = [{} for _ in range(1000)]\n"
        "freeze_long_lived()\n"
        "print(gone() is None, frozen > 0, gc.get_freeze_count() == frozen)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True", "True"]
