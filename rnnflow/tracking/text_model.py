"""The raw-text model: the pyfunc that bundles tokenizer settings, vocabulary and network, and
finding the run `rnnflow predict` means by `latest` or `best`."""

from __future__ import annotations

import contextlib
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.tracking import MlflowClient

from rnnflow.tracking.store import TrackingError, tracking_uri

TEXT_MODEL_TAG = "rnnflow_text_model"
# The pyfunc is this model from code: MLflow copies the file into the model and runs it to load.
TEXT_PYFUNC_CODE = Path(__file__).with_name("text_pyfunc.py")


def __getattr__(name: str):
    # A text_model logged before it became a model from code is a pickled
    # `rnnflow.tracking.text_model.TextPyfunc`: this keeps those runs loadable.
    if name == "TextPyfunc":
        from rnnflow.tracking.text_pyfunc import TextPyfunc

        return TextPyfunc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def log_text_model(model, vocab: list[str], tokenize: dict, pad: dict,
                   name: str = "text_model") -> str:
    """Log the pyfunc that bundles the tokenizer settings, the vocabulary and the network: a
    model from code (`text_pyfunc.py`), its three files as artifacts, nothing pickled."""
    import json

    import keras
    import tensorflow as tf
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    import rnnflow

    with tempfile.TemporaryDirectory() as tmp:
        paths = {"keras_model": Path(tmp) / "model.keras", "vocab": Path(tmp) / "vocab.json",
                 "config": Path(tmp) / "config.json"}
        model.save(paths["keras_model"])
        paths["vocab"].write_text(json.dumps(vocab))
        paths["config"].write_text(json.dumps({"tokenize": tokenize, "pad": pad}))
        signature = ModelSignature(
            inputs=Schema([ColSpec("string", "text")]),
            outputs=Schema([ColSpec("double", "probability"), ColSpec("long", "label"),
                            ColSpec("long", "known_tokens")]),
        )
        mlflow.set_tag(TEXT_MODEL_TAG, name)
        info = mlflow.pyfunc.log_model(
            name=name, python_model=str(TEXT_PYFUNC_CODE),
            artifacts={k: str(v) for k, v in paths.items()}, signature=signature,
            input_example=pd.DataFrame({"text": ["A wonderful, moving film."]}),
            code_paths=[str(Path(rnnflow.__file__).parent)],
            pip_requirements=[f"keras=={keras.__version__}", f"tensorflow-cpu=={tf.__version__}",
                              "nltk", "pyarrow", "pandas", "pydantic>=2", "pyyaml"],
        )
    return info.model_uri


def resolve_run(which: str, experiment: str | None = None) -> str:
    """A run id from `which`: a run id, `latest` (newest run with a text model) or `best`
    (highest val_accuracy), within one experiment or all of them."""
    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    if which not in ("latest", "best"):
        try:
            return client.get_run(which).info.run_id
        except Exception as exc:
            raise TrackingError(f"--run {which}: no such MLflow run in {tracking_uri()}") from exc
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise TrackingError(f"--experiment {experiment}: no such experiment")
        ids = [found.experiment_id]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    order = "attributes.start_time DESC" if which == "latest" else "metrics.val_accuracy DESC"
    runs = client.search_runs(ids, filter_string=f"tags.{TEXT_MODEL_TAG} = 'text_model' and "
                              "attributes.status = 'FINISHED'", order_by=[order], max_results=1)
    if not runs:
        raise TrackingError(f"no finished rnnflow run with a model in {tracking_uri()}"
                            + (f" (experiment {experiment})" if experiment else "")
                            + "; train one first: rnnflow run params/quick.yaml")
    return runs[0].info.run_id


def load_text_model(run_id: str, *, quiet: bool = False):
    """The run's raw-text pyfunc. Where the store keeps artifacts on this machine's disk (a
    SQLite or file store), it is loaded from its folder in place; otherwise (an `mlflow server`
    serving artifacts) it is downloaded first. `quiet`: without MLflow's dependency check (it
    reads the metadata of every installed package) and without its download progress bars."""
    mlflow.set_tracking_uri(tracking_uri())
    where = local_model_dir(run_id) or f"runs:/{run_id}/text_model"
    progress = contextlib.nullcontext() if not quiet else _environ(
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    with progress:
        return mlflow.pyfunc.load_model(where, suppress_warnings=quiet)


def local_model_dir(run_id: str, name: str = "text_model") -> str | None:
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
