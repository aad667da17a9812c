"""The `TextModel` inside a run's `text_model` pyfunc: for tools that need the network and the
vocabulary themselves (`rnnflow explain`), not just `predict`. The one place that knows how the
pyfunc wraps it."""

from __future__ import annotations

from rnnflow.tracking.text_model import load_text_model


def load_text_model_object(run_id: str):
    """The run's rnnflow.predict.TextModel (network, vocabulary, tokenizer and pad settings)."""
    return load_text_model(run_id).unwrap_python_model().text_model
