"""Old module names of rnnflow that logged models still import.

A text model logged before rnnflow's library was grouped into sub-packages runs its own
text_pyfunc.py, which imports `rnnflow.model` and `rnnflow.predict` (and one pickled before
text models were logged from code names `rnnflow.tracking.text_model`). Where this rnnflow is
already imported (`rnnflow predict`, a notebook), those names are answered here: each is a
module that hands every attribute on to the module that took its place.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

MOVED = {
    "rnnflow.model": "rnnflow.network.model",
    "rnnflow.predict": "rnnflow.network.predict",
    "rnnflow.tracking.text_model": "rnnflow.tracking.models",
}


class _Forward(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name in MOVED:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        return None  # the default: an empty module

    def exec_module(self, module: types.ModuleType) -> None:
        target = importlib.import_module(MOVED[module.__name__])
        module.__doc__ = f"Moved to {target.__name__}."
        module.__getattr__ = lambda name: getattr(target, name)  # PEP 562


def install() -> None:
    if not any(isinstance(finder, _Forward) for finder in sys.meta_path):
        sys.meta_path.append(_Forward())
