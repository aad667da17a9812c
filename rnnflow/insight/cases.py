"""The behavioural check cases `evaluate.checks` names, read and validated (`load_cases`);
rnnflow/insight/checks.py scores them on a trained model.

A params file is checked before any work, its cases included (rnnflow/comparisons/plan.py,
`load_plan`), so this module imports only yaml and pathlib: reading a params file must not
load pandas or TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

KINDS = ("mft", "inv", "dir")
DEFAULT = Path(__file__).with_name("checks.yaml")  # the shipped set, `evaluate.checks: default`
_FIELDS = {"mft": {"text", "label"}, "inv": {"text", "variant"},
           "dir": {"text", "variant", "direction"}}


def load_cases(spec: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cases `spec` names, each with its `kind`; ValueError says what is wrong.

    `spec` is `default` (rnnflow/insight/checks.yaml), `none`, the path of a YAML file (in the
    shipped file's shape, `{mft: [...], inv: [...], dir: [...]}`, or a list of cases), or a
    list of cases, each a mapping with a `kind`:
    - `{kind: mft, text: ..., label: 0|1|NAME}`: the text must get this label (a class name
      for data whose labels are classes);
    - `{kind: inv, text: ..., variant: ...}`: both must get the same label;
    - `{kind: dir, text: ..., variant: ..., direction: lower|higher}`: the variant must score
      strictly lower (higher) than the text (with k classes: the probability of the text's
      predicted class).
    """
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
    if case["kind"] == "mft" and case["label"] not in (0, 1) and not (
            isinstance(case["label"], str) and case["label"].strip()):
        raise ValueError(f"case {i}: label must be 0, 1 or a class name, got "
                         f"{case['label']!r}")
    if case["kind"] == "dir" and case["direction"] not in ("lower", "higher"):
        raise ValueError(f"case {i}: direction must be lower or higher")
    return dict(case)
