"""The raw-text pyfunc, as an MLflow model from code.

`log_text_model` logs this file itself as the model (`python_model=<path of this file>`):
MLflow copies it into the model folder and, to load the model, runs it and takes the object
passed to `mlflow.models.set_model` below. Nothing is pickled, so loading unpickles nothing.
The tokenizer settings, the vocabulary and the Keras file travel as the model's artifacts;
the network loads with Keras safe mode.

Not imported by rnnflow: running it sets the model MLflow would log or load.
"""

from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class TextPyfunc(PythonModel):
    """A DataFrame with a `text` column in, probability/label/known_tokens out."""

    def load_context(self, context) -> None:
        # What a model logged today needs from the rnnflow it is loaded with (its own copy, in
        # the model's code/ folder, unless rnnflow is already imported): the names below.
        import json
        from pathlib import Path

        from rnnflow.config import PadConfig, TokenizeConfig
        from rnnflow.model import load_model
        from rnnflow.predict import TextModel

        cfg = json.loads(Path(context.artifacts["config"]).read_text())
        vocab = json.loads(Path(context.artifacts["vocab"]).read_text())
        model = load_model(context.artifacts["keras_model"])  # safe mode, fused layers known
        self.text_model = TextModel(model, vocab, TokenizeConfig(**cfg["tokenize"]),
                                    PadConfig(**cfg["pad"]))

    # The type hints are what MLflow asks for; a DataFrame input is passed through as it is
    # (the logged signature, one string column `text`, validates it).
    def predict(self, context, model_input: pd.DataFrame,  # noqa: ARG002 - pyfunc's signature
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        texts = (model_input["text"].tolist() if isinstance(model_input, pd.DataFrame)
                 else list(model_input))
        return self.text_model.predict(texts)


set_model(TextPyfunc())
