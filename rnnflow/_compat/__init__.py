"""The old names of rnnflow that logged models still use, all of them in this folder.

A logged text model imports rnnflow by name when it loads: the text_pyfunc.py in its folder
imports modules of the rnnflow of its day, its MLmodel names the function that loads it
(`loader`), or its pickle names the class it was. Where rnnflow is already imported (`rnnflow
predict`, `rnnflow explain`, a notebook) those names are looked up in this rnnflow, so a
module that moves leaves its old name behind, here. docs/compatibility.md is the policy: which
models keep loading, for how long, and how to add a name when moving a module.

How an old name is found: a file at the old dotted path below this folder is that module
(`rnnflow/_compat/model.py` is `rnnflow.model`, `rnnflow/_compat/tracking/text_model.py` is
`rnnflow.tracking.text_model`). `install()` puts a finder last on `sys.meta_path`, which
Python asks only after every other finder failed to find a module, and which then asks the
normal path finder to look in this folder. A finder rather than a folder added to
`rnnflow.__path__`: that would serve only names directly under `rnnflow`, and an old name can
lie inside a package that still exists (`rnnflow.tracking.text_model`). `import rnnflow`
costs this one small module (about half a millisecond) and imports nothing else; no old-name
module is imported until a model asks for it (tests/test_layout.py holds `import rnnflow` to
that).
"""

import os
import sys

_FOLDER = os.path.dirname(os.path.abspath(__file__))

# Every name a logged model may look up in this rnnflow, "module:attribute", with the models
# that use it. A name here must keep resolving; tests/test_models_logged_before.py resolves
# each one and loads a model of each kind.
KEPT = {
    # Text models from code logged from 34ac54a until b183ead (their text_pyfunc.py imports
    # these; 57c7f77 is the fixture's commit).
    "rnnflow.config:PadConfig": "text models logged from code, 34ac54a to 57c7f77",
    "rnnflow.config:TokenizeConfig": "text models logged from code, 34ac54a to 57c7f77",
    "rnnflow.model:load_model": "text models logged from code, 34ac54a to 57c7f77",
    "rnnflow.predict:TextModel": "text models logged from code, 34ac54a to 57c7f77",
    # Text models pickled with cloudpickle before they were logged from code (ee2d5f9 until
    # the merge 34ac54a; the fixture's commit is 1a849ab): the pickle names the class.
    "rnnflow.tracking.text_model:TextPyfunc": "pickled text models, ee2d5f9 to 2691644",
    # The loader in the model_config of text models logged from b183ead until rnnflow.api
    # existed. It stays a real function in rnnflow/network/predict.py (the code rnnflow.api
    # hands over to) rather than a copy here: a name inside a module that still exists cannot
    # be answered from another file.
    "rnnflow.network.predict:load_text_model": "text models logged from b183ead until api",
    # The loader of every text model logged since: the public entry point itself.
    "rnnflow.api:load_text_model": "text models logged since rnnflow.api",
}


class _OldNames:
    """Finds `rnnflow.<old name>` in this folder; every other name is left to the rest."""

    @staticmethod
    def find_spec(name: str, path=None, target=None):  # the finder protocol's arguments
        if not name.startswith("rnnflow."):
            return None
        from importlib.machinery import PathFinder

        # `rnnflow.a.b` lies at <this folder>/a/b.py (or a/b/ for an old package).
        folder = os.path.join(_FOLDER, *name.split(".")[1:-1])
        return PathFinder.find_spec(name, [folder])


def install() -> None:
    if _OldNames not in sys.meta_path:
        sys.meta_path.append(_OldNames)
