"""rnnflow's public names: the ones users and logged models may rely on (docs/compatibility.md).

Every other module of rnnflow is internal and may move or change between versions. A name here
stays, with the same meaning, for as long as the policy says; the loader that every text model
logged from now on names is `load_text_model` below (`LOADER`).

- `load_text_model(files)`: a `TextModel` from the files of a logged `text_model` (what MLflow
  calls when it loads one, and what loads the files by hand, without MLflow);
- `TextModel`: raw text in, a table of predictions out (`predict`), with the network, the
  vocabulary and the tokenizer and padding settings it was trained with;
- `load_keras_model(path)`: a Keras file rnnflow saved (a run's checkpoint/last.keras, a text
  model's model.keras), whose fast recurrent and one-hot layers only rnnflow knows;
- `LOADER`: the "module:function" a logged text model stores to be loaded again.

Importing this module is cheap: TensorFlow, Keras and pandas load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rnnflow.network.predict import TextModel

__all__ = ["LOADER", "TextModel", "load_keras_model", "load_text_model"]

# Written into every text model rnnflow logs (its MLmodel's model_config): a string, so it must
# name this module, whose names do not move, and never the internal one that does the work.
LOADER = "rnnflow.api:load_text_model"


def load_text_model(files: dict[str, str]) -> TextModel:
    """The `TextModel` of a logged text model's files, by their keys: `keras_model` (the Keras
    network, loaded in Keras safe mode), `vocab` (vocab.json) and `config` (config.json: the
    tokenizer and padding settings, and the class names of a model of more than two classes).
    In a `text_model` folder they are artifacts/model.keras, artifacts/vocab.json and
    artifacts/config.json.

    A baseline run's text model has the keys `baseline_config` and `baseline_state` instead:
    its answer, in the same columns, comes from the fitted majority or bag-of-words baseline
    (rnnflow.network.baseline_model), which reads raw text the way it was fitted."""
    if "baseline_config" in files:
        from rnnflow.network import baseline_model

        return baseline_model.load_baseline_model(files)  # type: ignore[return-value]
    from rnnflow.network import predict

    return predict.load_text_model(files)


def load_keras_model(path: str):
    """The Keras model in a .keras file that rnnflow saved, with its optimizer state where the
    file has one (a checkpoint), loaded in Keras safe mode (no code is deserialised)."""
    from rnnflow.network import model

    return model.load_model(path)


def __getattr__(name: str):
    # TextModel lives with the code that predicts, which imports pandas and pyarrow: it is
    # handed out on first use so that importing this module stays cheap (PEP 562).
    if name == "TextModel":
        from rnnflow.network.predict import TextModel

        return TextModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
