"""`rnnflow compare`: what differs between runs, and whether their results differ beyond noise.

Works on `tracking.RunRecord`s and never touches MLflow itself: the first run is the baseline,
every other run is compared with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnnflow.comparisons.framing import Framing, Reference, frame_result
from rnnflow.comparisons.stats import correct, mcnemar_exact, paired_bootstrap
from rnnflow.config import BASELINE_TITLES

STAGES = ("reviews", "tokens", "embeddings", "vectors", "padded")  # pipeline order
METRICS = ("val_accuracy", "test_accuracy", "val_loss", "test_loss", "fit_seconds")


def differing_params(records) -> pd.DataFrame:
    """The params whose values are not the same in every run: one row per param, one column
    per run. Params a run lacks show as '-'."""
    keys = sorted(set().union(*(r.params for r in records)))
    rows = {k: [r.params.get(k, "-") for r in records] for k in keys}
    rows = {k: v for k, v in rows.items() if len(set(v)) > 1}
    return pd.DataFrame.from_dict(rows, orient="index", columns=_labels(records))


def first_differing_stage(a, b) -> str | None:
    """The earliest pipeline stage whose content key differs between two runs: everything
    before it was shared; None if every stage is the same."""
    for stage in STAGES:
        if a.tags.get(f"stage.{stage}") != b.tags.get(f"stage.{stage}"):
            return stage
    return None


def metric_deltas(records) -> pd.DataFrame:
    """Per run: its metrics, their difference to the baseline (the first run), the paired 95%
    interval of the test-accuracy difference and McNemar's p on the shared test reviews, and
    the first stage that differs from the baseline's."""
    base = records[0]
    base_right = _right(base)
    rows = []
    for record in records:
        row = {"run": record.name, "run_id": record.run_id}
        for m in METRICS:
            value = record.metrics.get(m, np.nan)
            row[m] = value
            row[f"{m}_delta"] = value - base.metrics.get(m, np.nan)
        right = _right(record)
        if record is base or right is None or base_right is None or len(right) != len(
                base_right):
            row.update(test_delta_low=np.nan, test_delta_high=np.nan, mcnemar_p=np.nan)
        else:
            diff = paired_bootstrap(right, base_right)
            row.update(test_delta_low=diff.low, test_delta_high=diff.high,
                       mcnemar_p=mcnemar_exact(right, base_right))
        row["first_different_stage"] = "" if record is base else (
            first_differing_stage(base, record) or "none")
        rows.append(row)
    return pd.DataFrame(rows)


def _right(record) -> np.ndarray | None:
    frame = record.test_predictions
    if frame is None:
        return None
    frame = frame.sort_values("id", kind="stable")
    return correct(frame)


def _labels(records) -> list[str]:
    return [f"{r.name} ({r.run_id[:8]})" for r in records]


# Each run its own marker (colours repeat after ten runs, and some readers do not tell them
# apart); train solid, val dashed.
MARKERS = "osD^vP<>Xp"
CURVES = ("loss", "accuracy")


def identical_to(records) -> dict[int, int]:
    """For each run whose learning curves equal an earlier run's (a reused run, the same
    settings and seed), the index of the first such run: drawn over it, it would hide it."""
    same: dict[int, int] = {}
    for i, record in enumerate(records):
        curves = {k: v for k, v in record.history.items()
                  if k.removeprefix("val_") in CURVES and v}
        for j in range(i):
            if j not in same and curves and curves == {
                    k: v for k, v in records[j].history.items()
                    if k.removeprefix("val_") in CURVES and v}:
                same[i] = j
                break
    return same


def plot_curves(records):
    """Loss and accuracy per epoch, every run overlaid (train solid, val dashed, each run its
    own colour and marker). The legend sits below the plots, where it covers no curve; a run
    identical to an earlier one is drawn with hollow, larger markers and named so."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    labels = _labels(records)
    same = identical_to(records)
    columns = min(3, len(records) + 1)
    rows = -(-(len(records) + 2) // columns)  # the runs and the two line styles
    legend_height = 0.3 * rows + 0.2
    fig, axes = plt.subplots(1, 2, figsize=(10, 4 + legend_height))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for i, (record, label) in enumerate(zip(records, labels, strict=True)):
        color, marker = colors[i % len(colors)], MARKERS[i % len(MARKERS)]
        hollow = dict(markerfacecolor="none", markersize=8) if i in same else {"markersize": 4}
        for ax, metric in zip(axes, CURVES, strict=True):
            for key, line in ((metric, "-"), (f"val_{metric}", "--")):
                values = record.history.get(key)
                if values:
                    ax.plot(range(1, len(values) + 1), values, linestyle=line, marker=marker,
                            color=color, label=f"{label} {key}", **hollow)
        note = f" (identical to {labels[same[i]]})" if i in same else ""
        handles.append(Line2D([], [], color=color, marker=marker, label=label + note, **hollow))
    handles += [Line2D([], [], color="grey", linestyle="-", label="train"),
                Line2D([], [], color="grey", linestyle="--", label="val")]
    for ax, metric in zip(axes, CURVES, strict=True):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    height = fig.get_figheight()
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_height / height, 1, 1))
    return fig


def curves_path(records, root: Path) -> Path:
    """Where `rnnflow compare` writes the curves unless told: compare/ under `root` (the
    project's data folder, which git ignores), named after the runs, so comparing the same
    runs again overwrites the same file."""
    ids = [r.run_id[:8] for r in records]
    name = "_".join(ids[:4]) + (f"_and_{len(ids) - 4}_more" if len(ids) > 4 else "")
    return root / "compare" / f"{name}.png"


def framing_of(record, baselines) -> Framing | None:
    """A run's result beside the baseline runs fitted on its reviews (`baselines`, RunRecords
    of baseline runs), by the end-of-run line's rule (rnnflow/comparisons/framing.py); None
    where there are none, or the run has no test predictions."""
    if not baselines or record.test_predictions is None:
        return None
    references = [Reference(name, BASELINE_TITLES.get(name, name), b.metrics["val_accuracy"],
                            b.metrics["test_accuracy"], b.test_predictions)
                  for b in baselines
                  if (name := b.tags.get("rnnflow.baseline", "")) and b.test_predictions
                  is not None and {"val_accuracy", "test_accuracy"} <= set(b.metrics)]
    if not references:
        return None
    order = {name: i for i, name in enumerate(BASELINE_TITLES)}  # as a run's own line lists them
    references.sort(key=lambda r: order.get(r.name, len(order)))
    return frame_result({"test": record.test_predictions}, record.metrics["test_accuracy"],
                        references, record.history.get("loss"))


def render(records, baselines: dict[str, list] | None = None) -> str:
    """The terminal report: differing params, metric deltas with intervals, stages, and each
    run beside the baselines of its reviews (`baselines`: baseline RunRecords by run id)."""
    lines = [f"baseline: {records[0].name} ({records[0].run_id})", ""]
    params = differing_params(records)
    lines += ["params that differ:" if len(params) else "params: all the same", ""]
    if len(params):
        lines += [params.to_string(), ""]
    deltas = metric_deltas(records)
    for _, row in deltas.iterrows():
        head = f"{row.run} ({row.run_id[:8]})"
        if row.run_id == records[0].run_id:
            lines.append(f"{head}: val_accuracy {row.val_accuracy:.4f}, "
                         f"test_accuracy {row.test_accuracy:.4f} (baseline)")
            continue
        ci = ("" if np.isnan(row.test_delta_low) else
              f" [95% {row.test_delta_low:+.4f}, {row.test_delta_high:+.4f}; "
              f"McNemar p={row.mcnemar_p:.3g}]")
        lines.append(f"{head}: val_accuracy {row.val_accuracy:.4f} "
                     f"({row.val_accuracy_delta:+.4f}), test_accuracy {row.test_accuracy:.4f} "
                     f"({row.test_accuracy_delta:+.4f}){ci}; first stage that differs: "
                     f"{row.first_different_stage}")
    framed = [(r, f) for r in records if (f := framing_of(r, (baselines or {}).get(r.run_id)))]
    if framed:
        lines += ["", "beside the baselines fitted on each run's reviews:"]
        lines += [f"{r.name} ({r.run_id[:8]}): {f.line()}" for r, f in framed]
    return "\n".join(lines)
