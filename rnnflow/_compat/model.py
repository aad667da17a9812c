"""`rnnflow.model`, now `rnnflow.network.model`: the text models logged from code before the
library was grouped into sub-packages import `load_model` from it."""

import rnnflow.network.model as _now


def __getattr__(name: str):
    return getattr(_now, name)
