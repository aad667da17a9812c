import numpy as np
import pandas as pd
import pytest

from rnnflow.comparisons.framing import (
    ONE_CLASS_SHARE,
    Reference,
    frame_result,
    learned_nothing,
    one_class_reason,
)

N = 400


def _labels(seed: int = 0, share: float = 0.5) -> np.ndarray:
    return (np.random.default_rng(seed).random(N) < share).astype(int)


def _binary(labels: np.ndarray, right: np.ndarray, ids=None) -> pd.DataFrame:
    """A two-class predictions table right where `right` says, wrong elsewhere."""
    predicted = np.where(right, labels, 1 - labels)
    return pd.DataFrame({"id": ids if ids is not None else [f"r{i}" for i in range(N)],
                         "label": labels, "probability": np.where(predicted == 1, 0.8, 0.2)})


def _reference(name: str, frame: pd.DataFrame, val_accuracy: float) -> Reference:
    accuracy = float(((frame.probability >= 0.5) == (frame.label == 1)).mean())
    return Reference(name, name.replace("_", "-"), val_accuracy, accuracy, frame)


def _majority(labels: np.ndarray) -> Reference:
    top = int(labels.mean() >= 0.5)
    return _reference("majority", _binary(labels, labels == top), float((labels == top).mean()))


def test_a_model_better_than_the_baselines_is_framed_with_its_paired_difference():
    labels = _labels()
    rng = np.random.default_rng(1)
    model = _binary(labels, rng.random(N) < 0.9)
    words = _reference("bag_of_words", _binary(labels, rng.random(N) < 0.7), 0.7)
    framing = frame_result({"val": model, "test": model}, 0.9, [_majority(labels), words])
    accuracy = float(((model.probability >= 0.5) == (model.label == 1)).mean())
    expected = accuracy - words.test_accuracy
    assert framing.best is words  # the better val accuracy, not the order given
    assert framing.difference.delta == pytest.approx(expected)
    assert framing.difference.low > 0
    assert not framing.learned_nothing
    line = framing.line()
    assert line.startswith("test accuracy 0.900; bag-of-words ")
    assert f"{100 * framing.difference.delta:+.1f} points [" in line
    assert line.endswith(f"majority {framing.references[0].test_accuracy:.3f}")
    metrics = framing.metrics()
    assert metrics["test_delta_vs_baseline"] == pytest.approx(expected)
    assert metrics["learned_nothing"] == 0.0


def test_reviews_are_paired_by_id_whatever_their_order():
    labels = _labels()
    model = _binary(labels, np.ones(N, bool))
    shuffled = _binary(labels, np.arange(N) % 2 == 0).sample(frac=1.0, random_state=3)
    framing = frame_result({"test": model}, 1.0, [_reference("bag_of_words", shuffled, 0.5)])
    assert framing.difference.delta == pytest.approx(0.5)


def test_a_model_that_predicts_one_class_learned_nothing():
    labels = _labels()
    collapsed = _binary(labels, labels == 1)  # class 1 for every review
    reasons = learned_nothing({"val": collapsed, "test": collapsed}, [_majority(labels)],
                              names=["neg", "pos"])
    assert any(r.startswith("predicts pos for 100% of the val reviews") for r in reasons)
    assert any(r.startswith("not better than the majority class") for r in reasons)
    framing = frame_result({"test": collapsed}, 0.5, [_majority(labels)])
    assert framing.learned_nothing and "LEARNED NOTHING" in framing.line()
    assert framing.metrics()["learned_nothing"] == 1.0


def test_the_one_class_rule_holds_at_its_threshold_and_not_below():
    labels = _labels()
    at = int(np.ceil(ONE_CLASS_SHARE * N))
    for ones, flagged in ((at, True), (at - 10, False)):
        frame = pd.DataFrame({"id": range(N), "label": labels,
                              "probability": np.r_[np.full(ones, 0.9), np.full(N - ones, 0.1)]})
        assert (one_class_reason(frame, "test") is not None) == flagged, ones


def test_labels_that_are_nearly_all_one_class_leave_the_one_class_rule_silent():
    labels = np.r_[np.ones(N - 4), np.zeros(4)].astype(int)
    frame = _binary(labels, np.ones(N, bool))
    assert one_class_reason(frame, "test") is None


def test_k_classes_are_read_from_the_predicted_column():
    labels = np.arange(N) % 3
    frame = pd.DataFrame({"id": range(N), "label": labels, "predicted": np.zeros(N, int),
                          "probability": 0.5})
    assert one_class_reason(frame, "val", ["a", "b", "c"]).startswith("predicts a for 100%")
    frame["predicted"] = labels
    assert one_class_reason(frame, "val", ["a", "b", "c"]) is None


def test_a_model_no_better_than_the_majority_class_learned_nothing():
    labels = np.random.default_rng(2).permutation(np.r_[np.ones(280), np.zeros(120)]).astype(int)
    # Right exactly as often as the majority class, on other reviews: a spread of
    # predictions, yet not distinguishable from predicting the majority class.
    right = np.random.default_rng(3).permutation(np.r_[np.ones(280), np.zeros(120)]).astype(bool)
    noisy = _binary(labels, right)
    assert one_class_reason(noisy, "test") is None
    reasons = learned_nothing({"test": noisy}, [_majority(labels)])
    assert len(reasons) == 1 and reasons[0].startswith("not better than the majority class")


def test_a_loss_that_never_fell_is_a_reason_and_one_that_fell_is_not():
    labels = _labels()
    good = _binary(labels, np.ones(N, bool))
    assert learned_nothing({"test": good}, [_majority(labels)], loss=[0.69, 0.5, 0.3]) == []
    reasons = learned_nothing({"test": good}, [], loss=[0.69, 0.70, 0.69])
    assert reasons == ["its training loss never fell below the first epoch's (0.6900)"]
    assert learned_nothing({"test": good}, [], loss=[0.69]) == []  # one epoch: nothing to say


def test_without_baselines_there_is_no_difference_and_no_versus():
    labels = _labels()
    model = _binary(labels, np.ones(N, bool))
    framing = frame_result({"test": model}, 1.0, [])
    assert framing.difference is None and framing.versus() == ""
    assert framing.line() == "test accuracy 1.000"
    assert "test_delta_vs_baseline" not in framing.metrics()


def test_the_results_table_carries_the_difference_and_the_word():
    from rnnflow.comparisons.results import PointResult, results_table

    labels = _labels()
    frame = _binary(labels, np.ones(N, bool))

    def point(name, runs):
        return PointResult({"point": name}, [{"run_id": f"{name}{i}", "val_accuracy": 0.8,
                                              "test_accuracy": 0.8, "duration_seconds": 1.0,
                                              **r} for i, r in enumerate(runs)],
                           [frame] * len(runs))

    table = results_table([
        point("a", [{"test_delta_vs_baseline": 0.1, "learned_nothing": 0.0},
                    {"test_delta_vs_baseline": 0.3, "learned_nothing": 1.0}]),
        point("b", [{"test_delta_vs_baseline": -0.2, "learned_nothing": 1.0}]),
        point("c", [{}]),  # logged without baselines, or before they existed
    ])
    assert table.test_delta_vs_baseline.iloc[:2].tolist() == pytest.approx([0.2, -0.2])
    assert np.isnan(table.test_delta_vs_baseline.iloc[2])
    assert table.warning.tolist() == ["learned nothing (1 of 2 repeats)", "learned nothing", ""]
