"""`rnnflow compare`'s learning curves: a legend that covers no curve, runs that stay apart
when identical, and where the image goes by default."""

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from rnnflow.comparisons.compare import curves_path, identical_to, plot_curves


def _record(run_id: str, loss: list[float]) -> SimpleNamespace:
    return SimpleNamespace(run_id=run_id, name="tiny", history={
        "loss": loss, "val_loss": [v + 0.1 for v in loss],
        "accuracy": [1 - v for v in loss], "val_accuracy": [0.9 - v for v in loss]})


def test_legend_sits_below_the_curves_and_identical_runs_stay_visible():
    records = [_record("a" * 32, [0.7, 0.5]), _record("b" * 32, [0.6, 0.4]),
               _record("c" * 32, [0.7, 0.5])]  # the same curves as the first run
    assert identical_to(records) == {2: 0}
    fig = plot_curves(records)
    fig.canvas.draw()
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    legend = fig.legends[0]
    box = legend.get_window_extent()
    assert all(box.y1 <= ax.get_window_extent().y0 for ax in fig.axes)  # below both plots
    texts = [t.get_text() for t in legend.get_texts()]
    assert any("identical to tiny (aaaaaaaa)" in t for t in texts if "cccccccc" in t)
    lines = fig.axes[0].get_lines()
    markers = {line.get_label().split()[1]: line.get_marker() for line in lines}
    assert len(set(markers.values())) == 3  # each run its own marker
    hollow = [line for line in lines if "cccccccc" in line.get_label()]
    assert all(line.get_markerfacecolor() == "none" for line in hollow)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_curves_go_under_the_data_folder_named_after_the_runs():
    records = [_record(f"{i}" * 32, [0.5]) for i in range(6)]
    assert curves_path(records[:2], Path("/p/data")) == Path(
        "/p/data/compare/00000000_11111111.png")
    assert curves_path(records, Path("d")).name == (
        "00000000_11111111_22222222_33333333_and_2_more.png")


def _predictions(right: list[bool]) -> pd.DataFrame:
    labels = [i % 2 for i in range(len(right))]
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(right))], "label": labels,
                         "probability": [float(y if ok else 1 - y)
                                         for y, ok in zip(labels, right, strict=True)]})


def test_compare_frames_each_run_against_the_baselines_of_its_reviews():
    """The same line as a run's own end-of-run line (rnnflow/comparisons/framing.py), for each
    run with baselines; a run without any (logged before they carried their reviews' key) is
    left out."""
    from rnnflow.comparisons.compare import render
    from rnnflow.comparisons.framing import Reference, frame_result

    n = 200
    model = [i % 4 != 0 for i in range(n)]  # 75% right
    bag = [i % 10 != 0 for i in range(n)]  # 90% right
    majority = [i % 2 == 0 for i in range(n)]  # 50% right
    records = []
    for run_id, right in (("a" * 32, model), ("b" * 32, bag)):
        record = _record(run_id, [0.7, 0.5])
        record.params, record.tags = {}, {}
        record.metrics = {"val_accuracy": 0.7, "test_accuracy": sum(right) / n}
        record.test_predictions = _predictions(right)
        records.append(record)
    baselines = []
    for name, right, val in (("majority", majority, 0.5), ("bag_of_words", bag, 0.9)):
        b = SimpleNamespace(run_id=name, name=name, tags={"rnnflow.baseline": name},
                            metrics={"val_accuracy": val, "test_accuracy": sum(right) / n},
                            test_predictions=_predictions(right), history={})
        baselines.append(b)
    text = render(records, {"a" * 32: baselines, "b" * 32: []})
    expected = frame_result(
        {"test": records[0].test_predictions}, 0.75,
        [Reference(b, t, v, sum(r) / n, _predictions(r)) for b, t, v, r in (
            ("bag_of_words", "bag-of-words", 0.9, bag), ("majority", "majority", 0.5,
                                                         majority))],
        [0.7, 0.5]).line()
    assert expected.startswith("test accuracy 0.750; bag-of-words 0.900: -15.0 points [")
    assert expected.endswith("; majority 0.500")
    assert f"tiny (aaaaaaaa): {expected}" in text.splitlines()
    assert not any(line.startswith("tiny (bbbbbbbb): test accuracy") for line in
                   text.splitlines())
    assert "beside the baselines" not in render(records, {})
