"""What a run adds to its report about *why*: the confident mistakes traced and attributed, the
behavioural checks, `report.html` and `model_card.md`. Called by `report.summarize`."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from rnnflow import explain as ex
from rnnflow.checks import load_cases, run_checks
from rnnflow.model_card import model_card
from rnnflow.render import report_page

# Strongest sentiment words per review checked for being lost (see rnnflow.explain).
TOP_WORDS = 3


@dataclass(frozen=True)
class Insight:
    metrics: dict[str, float]
    frames: dict[str, pd.DataFrame]
    texts: dict[str, str]


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def trace_mistakes(text_model, mistakes: pd.DataFrame, reviews_parquet: Path
                   ) -> tuple[pd.DataFrame, list[ex.Explanation]]:
    """`mistakes` (confident_mistakes) with tokens, oov_tokens, truncated_tokens,
    strongest_words, lost_words and lost_sentiment; and each review's explanation (its whole
    text, not the excerpt)."""
    if mistakes.empty:
        cols = ["tokens", "oov_tokens", "truncated_tokens", "strongest_words", "lost_words",
                "lost_sentiment"]
        return mistakes.assign(**{c: pd.Series(dtype=object) for c in cols}), []
    table = pq.read_table(reviews_parquet, columns=["id", "text"],
                          filters=[("id", "in", mistakes.id.tolist())])
    full = dict(zip(table["id"].to_pylist(), table["text"].to_pylist(), strict=True))
    explanations = ex.explain(text_model, [full[i] for i in mistakes.id])
    polarity = ex.word_polarity(text_model, [t for e in explanations for t in e.path.tokens])
    lost = pd.DataFrame(ex.lost_sentiment([e.path for e in explanations], polarity, TOP_WORDS))
    text_at = mistakes.columns.get_loc("text")
    columns = [*mistakes.columns[:text_at], *lost.columns, *mistakes.columns[text_at:]]
    return pd.concat([mistakes.reset_index(drop=True), lost], axis=1)[columns], explanations


def analyse(*, text_model, mistakes: pd.DataFrame, reviews_parquet: Path,
            sentences: list[str], checks: str | list[dict[str, Any]], params: dict[str, Any],
            metrics: dict[str, float], history: dict[str, list[float]],
            figures: dict[str, Any]) -> Insight:
    """Everything the report adds about why; the figures are rendered to PNG here, before
    they are logged and closed."""
    mistakes, mistake_expl = trace_mistakes(text_model, mistakes, reviews_parquet)
    new_metrics: dict[str, float] = {}
    if len(mistakes):
        new_metrics["mistakes_lost_sentiment_share"] = float(mistakes.lost_sentiment.mean())
    check_metrics, failures = run_checks(text_model, load_cases(checks))
    new_metrics.update(check_metrics)
    all_metrics = {**metrics, **new_metrics}
    split = pq.read_table(reviews_parquet, columns=["split"])["split"].to_pandas()
    sizes = {s: int((split == s).sum()) for s in ("train", "val", "test")}
    html = report_page(
        title=f"{params.get('name', 'rnnflow')}", params=params, metrics=all_metrics,
        history=history, images={name: figure_png(fig) for name, fig in figures.items()},
        sentences=ex.explain(text_model, sentences) if sentences else [],
        mistakes=mistakes, mistake_explanations=mistake_expl, failures=failures)
    card = model_card(params=params, metrics=all_metrics, history=history, split_sizes=sizes,
                      mistakes=mistakes, failures=failures)
    return Insight(new_metrics, {"confident_mistakes.csv": mistakes,
                                 "checks_failures.csv": failures},
                   {"report.html": html, "model_card.md": card})
