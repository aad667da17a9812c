"""Figures logged with each run: learning curves and confusion matrices."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # batch runs have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_learning_curves(history: dict[str, list[float]]):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "o-"), (f"val_{metric}", "s--")):
            if key in history:
                epochs = np.arange(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.lines:  # a run with no epoch logged has no curve to name
            ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion(matrices: dict[str, np.ndarray], classes: list[str] | None = None):
    """Each split's confusion matrix: counts for two classes, and with k > 2 `classes` each
    row normalised (the share of a true class given each prediction)."""
    if classes is not None:
        return _plot_confusion_classes(matrices, classes)
    fig, axes = plt.subplots(1, len(matrices), figsize=(4 * len(matrices), 3.6))
    for ax, (split, cm) in zip(np.atleast_1d(axes), matrices.items(), strict=True):
        ax.imshow(cm, cmap="Blues")
        for (i, j), n in np.ndenumerate(cm):
            ax.text(j, i, str(n), ha="center", va="center",
                    color="white" if n > cm.max() / 2 else "black")
        ax.set_xticks([0, 1], ["neg", "pos"])
        ax.set_yticks([0, 1], ["neg", "pos"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{split} (n={int(cm.sum())})")
    fig.tight_layout()
    return fig


def _plot_confusion_classes(matrices: dict[str, np.ndarray], classes: list[str]):
    k = len(classes)
    side = max(4.0, 0.45 * k + 2.0)
    fig, axes = plt.subplots(1, len(matrices), figsize=(side * len(matrices), side * 0.9))
    for ax, (split, cm) in zip(np.atleast_1d(axes), matrices.items(), strict=True):
        rows = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        for (i, j), v in np.ndenumerate(share):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if v > 0.5 else "black")
        ax.set_xticks(range(k), classes, rotation=45, ha="right")
        ax.set_yticks(range(k), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{split} (n={int(cm.sum())}, rows normalised)")
    fig.tight_layout()
    return fig


def plot_roc_pr(predictions: dict):
    """ROC and precision-recall curves of each split's predictions (id, label, probability)."""
    from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

    fig, (roc, pr) = plt.subplots(1, 2, figsize=(9, 3.8))
    for split, frame in predictions.items():
        if frame.label.nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(frame.label, frame.probability)
        auc = roc_auc_score(frame.label, frame.probability)
        roc.plot(fpr, tpr, label=f"{split} (AUC {auc:.3f})")
        precision, recall, _ = precision_recall_curve(frame.label, frame.probability)
        pr.plot(recall, precision, label=split)
    roc.plot([0, 1], [0, 1], ":", color="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    for ax in (roc, pr):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # no curve where a split holds one class
            ax.legend(loc="lower right" if ax is roc else "lower left")
    fig.tight_layout()
    return fig
