"""The champion decision, from two runs' test predictions."""

import numpy as np
import pandas as pd
import pytest

from rnnflow.comparisons.champion import decide


def _preds(right: list[bool], ids=None) -> pd.DataFrame:
    labels = np.array([i % 2 for i in range(len(right))])
    prob = np.where(np.array(right), labels, 1 - labels).astype(float) * 0.8 + 0.1
    return pd.DataFrame({"id": ids if ids is not None else [f"r{i:03d}" for i in
                                                            range(len(right))],
                         "label": labels, "probability": prob})


def test_no_champion_promotes():
    d = decide(_preds([True, False]), None)
    assert d.promote and d.reason == "no champion yet" and d.challenger_accuracy == 0.5


def test_equal_is_not_better():
    same = _preds([True] * 150 + [False] * 50)
    d = decide(same, same.sample(frac=1, random_state=0))  # order does not matter
    assert not d.promote and d.delta == 0 and "not better beyond the noise" in d.reason
    assert d.test == "paired_bootstrap" and d.mcnemar_p == 1.0


def test_clearly_better_is_promoted():
    champion = _preds([True] * 100 + [False] * 100)
    challenger = _preds([True] * 180 + [False] * 20)
    d = decide(challenger, champion)
    assert d.promote and d.delta == pytest.approx(0.4) and d.low > 0
    assert d.tags()["promoted"] == "true" and float(d.tags()["test_delta"]) == pytest.approx(0.4)


def test_worse_is_not_promoted_and_min_delta_holds_back_a_small_gain():
    good, bad = _preds([True] * 180 + [False] * 20), _preds([True] * 100 + [False] * 100)
    assert not decide(bad, good).promote
    d = decide(good, bad, min_delta=0.5)
    assert not d.promote and "below min_delta 0.5" in d.reason


def test_different_test_reviews_are_not_compared():
    a = _preds([True] * 10)
    b = _preds([True] * 10, ids=[f"x{i}" for i in range(10)])
    d = decide(a, b)
    assert not d.promote and "same test reviews" in d.reason and d.test == "none"


def _class_preds(labels: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i:03d}" for i in range(len(labels))], "label": labels,
                         "predicted": predicted, "probability": 0.9})


def test_macro_f1_gate_on_k_classes():
    from sklearn.metrics import f1_score

    from rnnflow.comparisons.champion import macro_f1

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    # The champion never predicts class 3 (a rare-class failure accuracy hides); the
    # challenger gets most of every class.
    champion = np.where(labels == 3, 0, labels)
    challenger = np.where(rng.random(300) < 0.9, labels, (labels + 1) % 4)
    assert macro_f1(labels, challenger) == pytest.approx(
        f1_score(labels, challenger, average="macro"))
    d = decide(_class_preds(labels, challenger), _class_preds(labels, champion),
               metric="macro_f1")
    assert d.promote and "macro F1" in d.reason and d.low > 0
    assert d.delta == pytest.approx(macro_f1(labels, challenger) - macro_f1(labels, champion))
    same = _class_preds(labels, challenger)
    assert not decide(same, same, metric="macro_f1").promote
    held = decide(_class_preds(labels, challenger), _class_preds(labels, champion),
                  min_delta=0.9, metric="macro_f1")
    assert not held.promote and "below min_delta" in held.reason


def test_a_kept_champion_names_the_command_that_promotes_anyway():
    from rnnflow.comparisons.champion import Registered

    a = _preds([True] * 10)
    b = _preds([True] * 6, ids=[f"x{i}" for i in range(4)] + ["r000", "r001"])
    d = decide(a, b)
    assert "10 reviews" in d.reason and "6" in d.reason and "2 review ids shared" in d.reason
    kept = Registered("my model", "3", "abc", d, champion_version="1").describe()
    assert kept.endswith("to make it the champion: rnnflow promote --model 'my model' "
                         "--version 3")
    first = Registered("m", "1", "abc", decide(a, None), champion_version=None).describe()
    assert "rnnflow promote" not in first
