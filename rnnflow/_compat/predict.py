"""`rnnflow.predict`, now `rnnflow.network.predict`: the text models logged from code before the
library was grouped into sub-packages import `TextModel` from it."""

import rnnflow.network.predict as _now


def __getattr__(name: str):
    return getattr(_now, name)
