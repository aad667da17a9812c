"""Behavioural checks: minimum functionality, invariance and direction cases scored on a trained
model (after Ribeiro et al., "Beyond Accuracy: Behavioral Testing of NLP Models with
CheckList", 2020). Measurements, never gates: a failing case is reported, the run goes on.

`evaluate.checks` names the cases (rnnflow/insight/cases.py, `load_cases`, reads them; the
params file's loader validates them before any work): the shipped set beside this module
(checks.yaml), none, a YAML file or a list of cases, each `mft` (a text must get a label),
`inv` (a name or a title changed must not flip the label) or `dir` (a variant must score
strictly lower or higher than the text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def run_checks(text_model, cases: list[dict[str, Any]],
               classes: list[str] | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """Score every case with `text_model` (a TextModel): the pass rate per kind present, as
    metrics `checks_<kind>`, and one row per failing case. An mft label may name one of
    `classes` (the data's class names, label i is classes[i]); with a k-class text model
    labels are class names and a dir case compares the probability of the text's predicted
    class."""
    import pandas as pd

    columns = ["kind", "text", "variant", "expected", "probability", "variant_probability",
               "label", "variant_label"]
    if not cases:
        return {}, pd.DataFrame(columns=columns)
    texts = list(dict.fromkeys([c["text"] for c in cases]
                               + [c["variant"] for c in cases if "variant" in c]))
    scored = text_model.predict(texts)
    named = getattr(text_model, "classes", None) is not None
    prob = dict(zip(texts, scored.probability, strict=True))
    label = dict(zip(texts, scored.label, strict=True))
    of_class = ({t: scored.iloc[i] for i, t in enumerate(texts)} if named else {})
    passed: dict[str, list[bool]] = {}
    failures = []
    for case in cases:
        kind, text, variant = case["kind"], case["text"], case.get("variant")
        if kind == "mft":
            want = case["label"]
            if named:
                want = str(want)
            elif isinstance(want, str) and classes is not None and want in classes:
                want = classes.index(want)
            ok, expected = bool(label[text] == want), f"label {case['label']}"
        elif kind == "inv":
            ok, expected = bool(label[text] == label[variant]), "same label"
        elif named:
            column = f"prob_{label[text]}"
            base = float(of_class[text].get(column, prob[text]))
            moved = float(of_class[variant].get(column, prob[variant]))
            ok = bool(moved < base if case["direction"] == "lower" else moved > base)
            expected = f"variant {case['direction']} for {label[text]}"
        else:
            lower = prob[variant] < prob[text]
            higher = prob[variant] > prob[text]
            ok = bool(lower if case["direction"] == "lower" else higher)
            expected = f"variant {case['direction']}"
        passed.setdefault(kind, []).append(ok)
        if not ok:
            failures.append({
                "kind": kind, "text": text, "variant": variant or "", "expected": expected,
                "probability": float(prob[text]),
                "variant_probability": float(prob[variant]) if variant else float("nan"),
                "label": label[text] if named else int(label[text]),
                "variant_label": (label[variant] if named else int(label[variant]))
                if variant else None})
    metrics = {f"checks_{k}": sum(v) / len(v) for k, v in passed.items()}
    frame = pd.DataFrame(failures, columns=columns)
    if named:
        return metrics, frame
    return metrics, frame.astype({"label": "Int64", "variant_label": "Int64"})
