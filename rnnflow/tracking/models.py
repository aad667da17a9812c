"""The models a run logs and how they load again: the Keras model (int32 ids in) and the
raw-text model, an MLflow pyfunc *from code* (text_pyfunc.py) whose files are its artifacts.

Nothing here knows what a text model is made of: the caller hands over its files and names the
function that loads them again (`loader`, "module:function"), which text_pyfunc.py imports when
MLflow loads the model.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.tracking import MlflowClient

from rnnflow.tracking.store import TrackingError, tracking_uri

TEXT_MODEL = "text_model"
TEXT_MODEL_TAG = "rnnflow_text_model"  # on every run that logged one; `--run latest` finds them
# The pyfunc is this model from code: MLflow copies the file into the model and runs it to load.
TEXT_PYFUNC_CODE = Path(__file__).with_name("text_pyfunc.py")


# The distributions that install the `tensorflow` module: the CPU build rnnflow installs by
# default, the full one (a GPU install: tensorflow[and-cuda]) and older or platform builds.
TENSORFLOW_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tensorflow-gpu", "tensorflow-macos",
                            "tensorflow-intel")


def tensorflow_requirement(version_of: Callable[[str], str] | None = None) -> str:
    """`name==version` of the TensorFlow distribution installed here (the first of
    TENSORFLOW_DISTRIBUTIONS that is), so a logged model asks for what it was trained with."""
    import importlib.metadata

    version_of = version_of or importlib.metadata.version
    for name in TENSORFLOW_DISTRIBUTIONS:
        try:
            return f"{name}=={version_of(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    import tensorflow as tf  # installed some other way (a source build): the module's version

    return f"tensorflow=={tf.__version__}"


def _pinned_requirements() -> list[str]:
    """Pinned from this environment instead of inferred, which would load the model again in a
    subprocess."""
    import keras

    return [f"keras=={keras.__version__}", tensorflow_requirement()]


def log_keras_model(model, name: str = "model") -> str:
    """Log the Keras model (int32 token ids in, one probability out; one per class for a
    softmax head)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("int32"), (-1, model.input_shape[1]), "token_ids")]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, int(model.output_shape[-1])),
                                   "probability")]),
    )
    info = mlflow.keras.log_model(model, name=name, pip_requirements=_pinned_requirements(),
                                  signature=signature)
    return info.model_uri


def log_text_model(artifacts: dict[str, Path], loader: str, outputs: dict[str, str],
                   code_paths: list[str], name: str = TEXT_MODEL, *, findable: bool = True,
                   requirements: tuple[str, ...] = ()) -> str:
    """Log a raw-text model to the active run: text_pyfunc.py as the model, `artifacts` as its
    files, `loader(artifacts)` ("module:function") as what builds the object whose
    `predict(texts)` answers; `outputs` maps its columns to MLflow types. Nothing is pickled.
    `findable`: the run is tagged as one `--run latest`/`best` may pick (a baseline's is not);
    `requirements`: what the model needs beyond the network's packages."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                               outputs=Schema([ColSpec(t, c) for c, t in outputs.items()]))
    if findable:
        mlflow.set_tag(TEXT_MODEL_TAG, name)
    info = mlflow.pyfunc.log_model(
        name=name, python_model=str(TEXT_PYFUNC_CODE), model_config={"loader": loader},
        artifacts={k: str(v) for k, v in artifacts.items()}, signature=signature,
        input_example=pd.DataFrame({"text": ["A wonderful, moving film."]}),
        code_paths=code_paths,
        pip_requirements=[*_pinned_requirements(), "nltk", "pyarrow", "pandas", "pydantic>=2",
                          "pyyaml", *requirements],
    )
    return info.model_uri


def load_text_model(run_id: str, *, quiet: bool = False):
    """The run's raw-text pyfunc. Where the store keeps artifacts on this machine's disk (a
    SQLite or file store), it is loaded from its folder in place; otherwise (an `mlflow server`
    serving artifacts) it is downloaded first. `quiet`: without MLflow's dependency check (it
    reads the metadata of every installed package) and without its download progress bars."""
    mlflow.set_tracking_uri(tracking_uri())
    where = local_model_dir(run_id) or f"runs:/{run_id}/{TEXT_MODEL}"
    progress = contextlib.nullcontext() if not quiet else _environ(
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    with progress:
        return mlflow.pyfunc.load_model(where, suppress_warnings=quiet)


def load_text_model_object(run_id: str):
    """The object inside the run's text model (what its loader built: for rnnflow's runs a
    `rnnflow.network.predict.TextModel`), for tools that need the network and the vocabulary
    themselves (`rnnflow explain`). The one place that knows how the pyfunc wraps it. A
    baseline run's text model has no network: a TrackingError that says so."""
    from rnnflow.tracking.baselines import BASELINE, BASELINE_TAG, KIND_TAG

    tags = MlflowClient(tracking_uri()).get_run(run_id).data.tags
    if tags.get(KIND_TAG) == BASELINE:
        raise TrackingError(f"run {run_id} is the {tags.get(BASELINE_TAG, 'a')} baseline, "
                            "which has no network to explain; rnnflow predict --run "
                            f"{run_id} scores texts with it")
    return load_text_model(run_id).unwrap_python_model().text_model


def local_model_dir(run_id: str, name: str = TEXT_MODEL) -> str | None:
    """The folder of the run's logged model `name` where it lies on this machine's disk, else
    None (no such model, or artifacts kept elsewhere: a server, object storage)."""
    from mlflow.utils.file_utils import local_file_uri_to_path

    client = MlflowClient(tracking_uri())
    experiment_id = client.get_run(run_id).info.experiment_id
    models = client.search_logged_models(
        [experiment_id], filter_string=f"name = '{name}' AND source_run_id = '{run_id}'",
        max_results=1)
    if not models:
        return None
    location = models[0].artifact_location
    if urllib.parse.urlparse(location).scheme not in ("", "file"):
        return None
    folder = Path(local_file_uri_to_path(location))
    return str(folder) if (folder / "MLmodel").is_file() else None


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
