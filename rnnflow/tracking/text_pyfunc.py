"""The raw-text pyfunc, as an MLflow model from code.

`models.log_text_model` logs this file itself as the model (`python_model=<path of this
file>`): MLflow copies it into the model folder and, to load the model, runs it and takes the
object passed to `mlflow.models.set_model` below. Nothing is pickled, so loading unpickles
nothing. The model's files travel as its artifacts; its `model_config` names the function that
builds the object from them (`loader`, "module:function", importable where the model loads:
rnnflow's own copy travels in the model's code/ folder).

Not imported by rnnflow: running it sets the model MLflow would log or load.
"""

import importlib
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class TextPyfunc(PythonModel):
    """A DataFrame with a `text` column in, the loaded object's predictions out."""

    def load_context(self, context) -> None:
        module, _, function = context.model_config["loader"].partition(":")
        load = getattr(importlib.import_module(module), function)
        self.text_model = load(dict(context.artifacts))

    # The type hints are what MLflow asks for; a DataFrame input is passed through as it is
    # (the logged signature, one string column `text`, validates it).
    def predict(self, context, model_input: pd.DataFrame,  # noqa: ARG002 - pyfunc's signature
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        texts = (model_input["text"].tolist() if isinstance(model_input, pd.DataFrame)
                 else list(model_input))
        return self.text_model.predict(texts)


set_model(TextPyfunc())
