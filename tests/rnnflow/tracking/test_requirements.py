"""The logged models' pip requirements name the TensorFlow distribution that is installed."""

import importlib.metadata

import pytest

from rnnflow.tracking.models import _pinned_requirements, tensorflow_requirement


def test_the_installed_distribution_is_pinned_at_its_version():
    pins = dict(p.split("==") for p in _pinned_requirements())
    (name,) = [n for n in pins if n.startswith("tensorflow")]
    # What pip would install again: this environment's distribution, at its version.
    assert importlib.metadata.version(name) == pins[name]
    import tensorflow as tf

    assert pins[name] == tf.__version__
    assert pins["keras"] == importlib.metadata.version("keras")


@pytest.mark.parametrize(("installed", "expected"), [
    ({"tensorflow-cpu": "2.20.0"}, "tensorflow-cpu==2.20.0"),
    ({"tensorflow": "2.21.0"}, "tensorflow==2.21.0"),  # a GPU install (tensorflow[and-cuda])
    ({"tensorflow-gpu": "2.11.0"}, "tensorflow-gpu==2.11.0"),
])
def test_each_distribution_is_named_as_installed(installed, expected):
    def version_of(name: str) -> str:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    assert tensorflow_requirement(version_of) == expected
