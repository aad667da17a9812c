"""Behavioural checks: minimum functionality, invariance and direction cases scored on a trained
model (after Ribeiro et al., "Beyond Accuracy: Behavioral Testing of NLP Models with
CheckList", 2020). Measurements, never gates: a failing case is reported, the run goes on.

`evaluate.checks` is one of:
- `default`: the shipped set, rnnflow/data/checks.yaml (a few dozen cases);
- `none`: no checks;
- a path to a YAML file, in the shipped file's shape (`{mft: [...], inv: [...], dir: [...]}`)
  or a list of cases with a `kind` each;
- a list of cases, each a mapping with a `kind`:
  - `{kind: mft, text: ..., label: 0|1}`: the text must get this label;
  - `{kind: inv, text: ..., variant: ...}`: both must get the same label (a name or a title
    changed must not flip it);
  - `{kind: dir, text: ..., variant: ..., direction: lower|higher}`: the variant must score
    strictly lower (higher) than the text (e.g. "not" before a positive adjective).

This module imports nothing of rnnflow's at load time: config.py uses `ChecksSpec`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import AfterValidator

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("mft", "inv", "dir")
DEFAULT = Path(__file__).parent / "data" / "checks.yaml"
_FIELDS = {"mft": {"text", "label"}, "inv": {"text", "variant"},
           "dir": {"text", "variant", "direction"}}


def load_cases(spec: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cases `spec` names, each with its `kind`; ValueError says what is wrong."""
    if isinstance(spec, str):
        if spec == "none":
            return []
        path = DEFAULT if spec == "default" else Path(spec)
        if not path.is_file():
            raise ValueError(f"expected default, none, a list of cases or a YAML file; "
                             f"{spec!r} is not a file")
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from None
        if isinstance(spec, dict):
            unknown = set(spec) - set(KINDS)
            if unknown:
                raise ValueError(f"{path}: unknown kind(s) {sorted(unknown)}; expected {KINDS}")
            spec = [{"kind": kind, **case} for kind in KINDS for case in spec.get(kind) or []]
    if not isinstance(spec, list):
        raise ValueError(f"expected a list of cases, got {type(spec).__name__}")
    return [_case(c, i) for i, c in enumerate(spec)]


def _case(case: Any, i: int) -> dict[str, Any]:
    if not isinstance(case, dict) or case.get("kind") not in KINDS:
        raise ValueError(f"case {i}: expected a mapping with kind one of {KINDS}, got {case!r}")
    need = _FIELDS[case["kind"]]
    have = set(case) - {"kind"}
    if have != need:
        raise ValueError(f"case {i} ({case['kind']}): expected keys {sorted(need)}, "
                         f"got {sorted(have)}")
    if not all(isinstance(case[k], str) for k in need & {"text", "variant"}):
        raise ValueError(f"case {i}: text and variant must be strings")
    if case["kind"] == "mft" and case["label"] not in (0, 1):
        raise ValueError(f"case {i}: label must be 0 or 1, got {case['label']!r}")
    if case["kind"] == "dir" and case["direction"] not in ("lower", "higher"):
        raise ValueError(f"case {i}: direction must be lower or higher")
    return dict(case)


def _validate(spec):
    load_cases(spec)
    return spec


# The type of `evaluate.checks`: validated when the params file is read, kept as written.
ChecksSpec = Annotated[str | list[dict[str, Any]], AfterValidator(_validate)]


def run_checks(text_model, cases: list[dict[str, Any]]) -> tuple[dict[str, float], pd.DataFrame]:
    """Score every case with `text_model` (a TextModel): the pass rate per kind present, as
    metrics `checks_<kind>`, and one row per failing case."""
    import pandas as pd

    columns = ["kind", "text", "variant", "expected", "probability", "variant_probability",
               "label", "variant_label"]
    if not cases:
        return {}, pd.DataFrame(columns=columns)
    texts = list(dict.fromkeys([c["text"] for c in cases]
                               + [c["variant"] for c in cases if "variant" in c]))
    scored = text_model.predict(texts)
    prob = dict(zip(texts, scored.probability, strict=True))
    label = dict(zip(texts, scored.label, strict=True))
    passed: dict[str, list[bool]] = {}
    failures = []
    for case in cases:
        kind, text, variant = case["kind"], case["text"], case.get("variant")
        if kind == "mft":
            ok, expected = bool(label[text] == case["label"]), f"label {case['label']}"
        elif kind == "inv":
            ok, expected = bool(label[text] == label[variant]), "same label"
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
                "label": int(label[text]),
                "variant_label": int(label[variant]) if variant else None})
    metrics = {f"checks_{k}": sum(v) / len(v) for k, v in passed.items()}
    frame = pd.DataFrame(failures, columns=columns)
    return metrics, frame.astype({"label": "Int64", "variant_label": "Int64"})
