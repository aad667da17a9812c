"""Everything rnnflow tells MLflow. The only module of the library that imports mlflow."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import tempfile
import traceback
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# A local Parquet path matches two of MLflow's dataset-source kinds, which resolve the same.
warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
# The datasets' integer columns (label, rating) never hold missing values.
warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be reached."""


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the SQLite file a bare `mlflow ui` opens in this folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def use_tracking_uri(uri: str) -> None:
    """Point this process at the store the flow chose: a Dask worker has no experiment set up,
    and its working folder may not be the flow's."""
    mlflow.set_tracking_uri(uri)


def use_experiment(name: str) -> str:
    """Point MLflow at the tracking store, check it answers, and return the experiment's id."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    mlflow.set_tracking_uri(uri)
    with _sqlite_init_lock(uri):
        try:
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name(name)
        except Exception as exc:
            raise TrackingError(
                f"MLflow tracking store {uri} is not reachable ({exc.__class__.__name__}: "
                f"{exc}). Start the server or fix MLFLOW_TRACKING_URI."
            ) from exc
        if experiment is not None:
            return experiment.experiment_id
        # With the SQLite store MLflow puts artifacts in ./mlruns/<experiment id>, beside
        # mlflow.db. Without this tag `mlflow ui` opens the experiment on its GenAI traces
        # page, not on its runs.
        return client.create_experiment(
            name, tags={"mlflow.experimentKind": "custom_model_development"})


@contextlib.contextmanager
def _sqlite_init_lock(uri: str) -> Iterator[None]:
    """Serialise the first touch of a SQLite store across processes: two runs starting at once
    would both migrate a new mlflow.db ("duplicate column name") or create the same
    experiment."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock = Path(uri.removeprefix("sqlite:///") + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_server(uri: str) -> None:
    # MLflow's own client retries for minutes before giving up; ask once, briefly.
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as response:
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except (OSError, ValueError) as exc:
        reason = str(getattr(exc, "reason", exc))
    raise TrackingError(
        f"MLflow tracking server {uri} is not reachable ({reason}). Start it (mlflow server) "
        "or unset MLFLOW_TRACKING_URI to track into ./mlflow.db."
    )


def git_commit() -> str | None:
    """The commit of the rnnflow checkout that runs (not of the working folder)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@contextlib.contextmanager
def start_run(experiment_id: str, run_name: str, tags: dict[str, str],
              nested: bool = False, parent_run_id: str | None = None) -> Iterator[str]:
    """An MLflow run that ends FINISHED, or FAILED with the error as a tag and error.txt.

    `nested` makes it a child of the run that is active (a grid's parent run); in another
    process, a Dask worker, no run is active and `parent_run_id` names the parent instead.
    """
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=nested,
                           parent_run_id=parent_run_id,
                           tags={k: v for k, v in tags.items() if v})
    try:
        yield run.info.run_id
    except BaseException as exc:
        mlflow.set_tag("error", f"{exc.__class__.__name__}: {exc}"[:5000])
        mlflow.log_text("".join(traceback.format_exception(exc)), "error.txt")
        mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def log_params(flat: dict[str, Any], config_yaml: str) -> None:
    mlflow.log_params({k: "None" if v is None else v for k, v in flat.items()})
    mlflow.log_text(config_yaml, "config.yaml")


def log_epoch(epoch: int, logs: dict[str, float]) -> None:
    mlflow.log_metrics(logs, step=epoch)


def set_tags(tags: dict[str, str]) -> None:
    """Set the non-empty tags on the active run."""
    mlflow.set_tags({k: v for k, v in tags.items() if v})


def log_stage_keys(keys: dict[str, str]) -> None:
    mlflow.set_tags({f"stage.{name}": key for name, key in keys.items()})


def log_datasets(reviews_parquet: Path, name: str) -> None:
    """Record the reviews each split used (ids, labels, ratings) with their Parquet source."""
    frame = pq.read_table(reviews_parquet, columns=["id", "split", "label", "rating"]).to_pandas()
    for split, context in (("train", "training"), ("val", "validation"), ("test", "test")):
        part = frame[frame.split == split].reset_index(drop=True)
        dataset = mlflow.data.from_pandas(part, source=str(reviews_parquet),
                                          name=f"{name}-{split}", targets="label")
        mlflow.log_input(dataset, context=context)


def log_results(metrics: dict[str, float], extra: dict[str, float], figures: dict,
                history_keys: set[str] = frozenset()) -> None:
    """Final metrics, figures. A final metric that is also a per-epoch series (val_loss,
    val_accuracy) is left out: the series' last epoch already holds it, and a step-0 value would
    break the learning curve in `mlflow ui`."""
    final = {k: v for k, v in metrics.items() if k not in history_keys}
    mlflow.log_metrics({**final, **extra})
    for filename, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{filename}")
        _close(fig)


def _close(fig) -> None:
    """pyplot keeps every figure it made until closed: a grid would pile them up."""
    import matplotlib.pyplot as plt

    plt.close(fig)


def log_keras_model(model, name: str = "model") -> str:
    """Log the Keras model; pip requirements are pinned from this environment instead of
    inferred, which would load the model again in a subprocess."""
    import keras
    import numpy as np
    import tensorflow as tf
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    reqs = [f"keras=={keras.__version__}", f"tensorflow-cpu=={tf.__version__}"]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("int32"), (-1, model.input_shape[1]), "token_ids")]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 1), "probability")]),
    )
    info = mlflow.keras.log_model(model, name=name, pip_requirements=reqs, signature=signature)
    return info.model_uri


def log_frame(frame: pd.DataFrame, artifact: str) -> None:
    """Log a table as a CSV or Parquet artifact (by the name's suffix)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact).name
        if artifact.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact).parent) if "/" in artifact else None)


# --- continued training -------------------------------------------------------------------------
TRAIN_KEY_TAG = "rnnflow_train_key"
EPOCHS_DONE_TAG = "rnnflow_epochs_done"


def log_checkpoint(path: Path, epoch: int) -> None:
    """Replace the run's checkpoint with this epoch's, then record that the epoch is done."""
    mlflow.log_artifact(str(path), "checkpoint")
    mlflow.set_tag(EPOCHS_DONE_TAG, str(epoch))


def find_checkpoint(experiment_id: str, train_key: str, epochs: int) -> tuple[str, int] | None:
    """The run with the same training key that got furthest while short of `epochs`.

    Any status counts: a FINISHED run that was asked for fewer epochs, or one that was killed
    (left RUNNING) or failed after some epochs.
    """
    runs = MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.{TRAIN_KEY_TAG} = '{train_key}'", max_results=500)
    best: tuple[str, int] | None = None
    for run in runs:
        done = int(run.data.tags.get(EPOCHS_DONE_TAG, "0"))
        if 0 < done < epochs and (best is None or done > best[1]):
            best = (run.info.run_id, done)
    return best


def fetch_checkpoint(run_id: str, dst: Path) -> Path:
    client = MlflowClient()
    run = client.get_run(run_id)
    if run.info.status == "RUNNING":  # its process is gone: it was killed mid-training
        client.set_terminated(run_id, "KILLED")
    return Path(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="checkpoint/last.keras", dst_path=str(dst)))


def metric_history(run_id: str, keys: list[str], upto: int) -> dict[str, list[float]]:
    """Per-epoch values of `keys` for epochs 1..upto, for plotting a continued run's curve."""
    client = MlflowClient()
    out = {}
    for key in keys:
        points = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        out[key] = [v for step, v in points if 1 <= step <= upto]
    return out


# --- grids --------------------------------------------------------------------------------------
def log_grid(table: pd.DataFrame, best_run_id: str, spec_yaml: str) -> None:
    """On the parent run: the plan, the results table (CSV and Parquet) and the best point."""
    mlflow.log_text(spec_yaml, "config.yaml")
    log_frame(table, "results.csv")
    log_frame(table, "results.parquet")
    mlflow.set_tag("best_run_id", best_run_id)
    MlflowClient().set_tag(best_run_id, "best", "true")


# --- the raw-text model -------------------------------------------------------------------------
class TextPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: a DataFrame with a `text` column in, probability/label/known_tokens out."""

    def load_context(self, context) -> None:
        import json

        import keras

        from rnnflow.config import PadConfig, TokenizeConfig
        from rnnflow.predict import TextModel

        cfg = json.loads(Path(context.artifacts["config"]).read_text())
        vocab = json.loads(Path(context.artifacts["vocab"]).read_text())
        model = keras.models.load_model(context.artifacts["keras_model"], safe_mode=True)
        self.text_model = TextModel(model, vocab, TokenizeConfig(**cfg["tokenize"]),
                                    PadConfig(**cfg["pad"]))

    def predict(self, context, model_input, params=None):  # noqa: ARG002 - pyfunc's signature
        texts = (model_input["text"].tolist() if isinstance(model_input, pd.DataFrame)
                 else list(model_input))
        return self.text_model.predict(texts)


def log_text_model(model, vocab: list[str], tokenize: dict, pad: dict,
                   name: str = "text_model") -> str:
    """Log the pyfunc that bundles the tokenizer settings, the vocabulary and the network."""
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
            name=name, python_model=TextPyfunc(),
            artifacts={k: str(v) for k, v in paths.items()}, signature=signature,
            input_example=pd.DataFrame({"text": ["A wonderful, moving film."]}),
            code_paths=[str(Path(rnnflow.__file__).parent)],
            pip_requirements=[f"keras=={keras.__version__}", f"tensorflow-cpu=={tf.__version__}",
                              "nltk", "pyarrow", "pandas", "pydantic>=2", "pyyaml"],
        )
    return info.model_uri


TEXT_MODEL_TAG = "rnnflow_text_model"


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


def load_text_model(run_id: str):
    mlflow.set_tracking_uri(tracking_uri())
    return mlflow.pyfunc.load_model(f"runs:/{run_id}/text_model")
