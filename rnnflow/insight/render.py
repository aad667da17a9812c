"""Explanations for people: tokens highlighted by attribution in a terminal and in HTML, and the
run's `report.html`, one self-contained page (inline CSS, images as data URIs, no script and no
reference to anything outside the file)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from rnnflow.insight.explain import OOV, SEEN, TRUNCATED, Explanation
from rnnflow.insight.findings import Findings

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
 margin:0;background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 8px;
 border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{font-size:16px;margin:20px 0 6px}
.sub{color:#57606a;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.banner{border:2px solid #cf222e;background:#ffebe9;border-radius:6px;padding:8px 14px;
 margin:8px 0}.versus{font-size:16px;margin:8px 0}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:22px}.card span{color:#57606a;font-size:12px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:16px}
details{margin:6px 0}summary{cursor:pointer;color:#0969da}
figure{margin:12px 0}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:13px}figure.unrolled{overflow-x:auto}
.text{border:1px solid #d0d7de;border-radius:6px;padding:10px 12px;margin:10px 0}
.text h3{margin-top:0}.meta{font-size:13px;color:#57606a;margin-bottom:6px}
.meta b.pos{color:#1a7f37}.meta b.neg{color:#cf222e}
.tokens{line-height:2.1;word-wrap:break-word}
.tok{padding:2px 3px;border-radius:3px;margin:0 1px}
.tok.oov,.tok.truncated{text-decoration:line-through;color:#8c959f}
.tok.truncated{background:#eaeef2}
.pad{font-size:11px;color:#57606a;border:1px dashed #8c959f;border-radius:3px;padding:1px 4px;
 margin:0 3px}
.legend{font-size:13px;color:#57606a}.key{padding:2px 5px;border-radius:3px;margin-right:10px;
 color:#1f2328}.key.struck{text-decoration:line-through;color:#8c959f}
"""


# --- one explanation -----------------------------------------------------------------------------
def _scale(explanation: Explanation) -> float:
    return max((abs(a) for a in explanation.attributions), default=0.0) or 1.0


def _background(attr: float, scale: float) -> str:
    alpha = min(1.0, abs(attr) / scale) * 0.75
    rgb = "26,127,55" if attr > 0 else "207,34,46"
    return f"background:rgba({rgb},{alpha:.2f})"


def tokens_html(explanation: Explanation) -> str:
    """The text's tokens in order: seen ones coloured by attribution (green: towards the
    attributed class, red: away from it, stronger = more), OOV and truncated ones struck
    through, the padding a chip."""
    path, scale = explanation.path, _scale(explanation)
    parts = []
    for token, status, attr in zip(path.tokens, path.status, explanation.attributions,
                                   strict=True):
        word = html.escape(token)
        if status == SEEN:
            parts.append(f'<span class="tok seen" style="{_background(attr, scale)}" '
                         f'data-attr="{attr:.6f}" title="{attr:+.4f}">{word}</span>')
        else:
            why = "not in the vocabulary" if status == OOV else "cut by pad.maxlen"
            parts.append(f'<span class="tok {status}" title="{status}: {why}">{word}</span>')
    if path.pad_count:
        chip = (f'<span class="pad" title="{path.pad_count} padding positions ({path.padding})">'
                f'{path.pad_count} &times; pad</span>')
        parts = [chip, *parts] if path.padding == "pre" else [*parts, chip]
    return f'<div class="tokens">{" ".join(parts)}</div>'


def _label(explanation: Explanation) -> str:
    """The label an explanation shows beside its probability: the attributed class, whose
    probability it is, and the predicted one where they differ (`pos (predicted neg)`)."""
    if explanation.class_name is None:  # made by hand without names: sentiment
        return {1: "pos", 0: "neg"}.get(explanation.label, "no evidence")
    if explanation.predicted in (None, explanation.class_name):
        return explanation.class_name
    return f"{explanation.class_name} (predicted {explanation.predicted})"


def summary_line(explanation: Explanation) -> str:
    """Probability, label and what the network saw, in one line of plain text."""
    p = explanation.path
    line = (f"{explanation.probability:.3f} {_label(explanation)}; "
            f"{p.seen} of {len(p.tokens)} tokens seen, {p.oov} OOV, {p.truncated} truncated "
            f"({p.truncating}), {p.pad_count} padding ({p.padding}), maxlen {p.maxlen}; "
            f"attributions sum {explanation.total:+.4f} = "
            f"f(x) {explanation.output:.4f} - f(empty) {explanation.baseline:.4f}")
    return line


def explanation_html(explanation: Explanation, heading: str = "") -> str:
    # Green where the attributed class is the prediction, red where it is not; no colour
    # where there was no evidence.
    css = ("" if explanation.label < 0 else "pos" if _label(explanation) in (
        explanation.class_name, "pos") else "neg")
    p = explanation.path
    meta = (f'<b class="{css}">{explanation.probability:.3f} '
            f'{html.escape(_label(explanation))}</b> &middot; {p.seen} of {len(p.tokens)} '
            f'tokens seen, '
            f'{p.oov} OOV, {p.truncated} truncated ({p.truncating}), {p.pad_count} padding '
            f'({p.padding}) &middot; attributions sum {explanation.total:+.4f} '
            f'(f(x) {explanation.output:.4f} &minus; f(empty) {explanation.baseline:.4f})')
    head = f"<h3>{html.escape(heading)}</h3>" if heading else ""
    return (f'<div class="text">{head}<div class="meta">{meta}</div>{tokens_html(explanation)}'
            f'{unrolled_html(explanation)}</div>')


# --- the network unrolled -------------------------------------------------------------------------
def unrolled_note(loss_steps: str | None) -> str:
    """What the values after each token are, by where the model's loss was computed."""
    if loss_steps == "all":
        return ("trained at every step (train.loss_steps: all): each value is an output the "
                "loss scored against the label")
    return ("trained at the last step only (train.loss_steps: last): the head was never "
            "trained on the steps before; they are the same head read there, the network's "
            "opinion so far")


def _unrolled_what(explanation: Explanation) -> str:
    return f"p({explanation.class_name or 'pos'}) after each token read"


def unrolled_rows(explanation: Explanation) -> list[str]:
    """The unrolled view as plain-text lines: a heading, then step, token and probability."""
    if explanation.unrolled is None:
        return []
    lines = [f"  unrolled: {_unrolled_what(explanation)}; "
             f"{unrolled_note(explanation.loss_steps)}"]
    if not explanation.unrolled:
        return [*lines, "  (no token read)"]
    lines.append(f"  {'step':>5}  {'token':<20} probability")
    lines += [f"  {t:>5}  {token:<20} {value:.4f}" for t, (token, value) in
              enumerate(zip(explanation.read, explanation.unrolled, strict=True), start=1)]
    return lines


def unrolled_html(explanation: Explanation) -> str:
    """The unrolled view as a line over the tokens (inline SVG, no script): the probability
    after each token, 0.5 dashed; hover a point for its value."""
    values = explanation.unrolled
    if not values:
        return ""
    dx, height, top, left, below = 36, 120, 8, 34, 70
    width = left + dx * len(values) + 10
    def y(v: float) -> float:
        return top + (1 - v) * height
    points = " ".join(f"{left + dx * t + dx / 2:.1f},{y(v):.1f}" for t, v in enumerate(values))
    parts = [f'<line x1="{left}" x2="{width - 10}" y1="{y(0.5):.1f}" y2="{y(0.5):.1f}" '
             'stroke="#8c959f" stroke-dasharray="4 3"/>',
             f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + height}" stroke="#d0d7de"/>',
             *(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">'
               f'{v:g}</text>' for v in (0, 0.5, 1)),
             f'<polyline points="{points}" fill="none" stroke="#0969da" stroke-width="2"/>']
    for t, (token, v) in enumerate(zip(explanation.read, values, strict=True)):
        x = left + dx * t + dx / 2
        word = html.escape(token)
        parts.append(f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="3" fill="#0969da" '
                     f'data-p="{v:.6f}"><title>{t + 1}: {word} {v:.4f}</title></circle>')
        parts.append(f'<text x="{x:.1f}" y="{top + height + 12}" font-size="11" '
                     f'text-anchor="end" transform="rotate(-45 {x:.1f} {top + height + 12})">'
                     f'{word}</text>')
    caption = (f"Unrolled: {html.escape(_unrolled_what(explanation))}; "
               f"{html.escape(unrolled_note(explanation.loss_steps))}.")
    return (f'<figure class="unrolled"><svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{top + height + below}" role="img">{"".join(parts)}</svg>'
            f"<figcaption>{caption}</figcaption></figure>")


def attributed(explanations: list[Explanation]) -> str:
    """Whose probability the explanations attribute, in words: one class by name, or each
    text's own class where they differ (a k-class model explains each text's prediction)."""
    names = list(dict.fromkeys(e.class_name or "pos" for e in explanations))
    if len(names) == 1:
        return f"the probability of &lsquo;{html.escape(names[0])}&rsquo;"
    return "the probability of each text&rsquo;s class, named beside its score"


def legend(explanations: list[Explanation]) -> str:
    """The colour key of a page of explanations, naming the class attributed."""
    names = list(dict.fromkeys(e.class_name or "pos" for e in explanations))
    towards = (f"towards &lsquo;{html.escape(names[0])}&rsquo;" if len(names) == 1
               else "towards the text&rsquo;s class")
    return ('<p class="legend"><span class="key" style="background:rgba(26,127,55,.6)">'
            f'{towards}</span><span class="key" style="background:rgba(207,34,46,.6)">'
            'away from it</span><span class="key struck">out of vocabulary</span>'
            '<span class="key struck" style="background:#eaeef2">truncated</span>'
            '<span class="pad">n &times; pad</span> '
            f'Colour: integrated-gradients attribution to {attributed(explanations)}, '
            'relative to the text\'s largest; hover a token for its value.</p>')


def page(title: str, body: str, subtitle: str = "") -> str:
    sub = f'<p class="sub">{html.escape(subtitle)}</p>' if subtitle else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main><h1>{html.escape(title)}</h1>{sub}{body}</main></body></html>\n")


def explain_page(explanations: list[Explanation], title: str, subtitle: str = "") -> str:
    """The page `rnnflow explain --html` writes."""
    body = legend(explanations) + "".join(explanation_html(e, f"text {i + 1}")
                                          for i, e in enumerate(explanations))
    return page(title, body, subtitle)


# --- the terminal ---------------------------------------------------------------------------------
def terminal(explanation: Explanation, color: bool) -> str:
    """One token per line: token, status, attribution and a bar; ANSI colour when `color`."""
    lines = [summary_line(explanation)]
    scale = _scale(explanation)
    p = explanation.path
    if p.pad_count and p.padding == "pre":
        lines.append(f"  {'<pad>':<20} {p.pad_count} positions")
    for token, status, attr in zip(p.tokens, p.status, explanation.attributions, strict=True):
        if status == SEEN:
            bar = ("+" if attr > 0 else "-") * round(10 * abs(attr) / scale)
            row = f"  {token:<20} {attr:+.4f} {bar}".rstrip()
            if color:
                code = "32" if attr > 0 else "31"
                row = f"  \x1b[{code}m{token:<20}\x1b[0m {attr:+.4f} \x1b[{code}m{bar}\x1b[0m"
        else:
            row = f"  {token:<20} {status}"
            if color:
                row = f"  \x1b[9;2m{token:<20}\x1b[0m {status}"
        lines.append(row)
    if p.pad_count and p.padding == "post":
        lines.append(f"  {'<pad>':<20} {p.pad_count} positions")
    return "\n".join(lines + unrolled_rows(explanation))


# --- report.html ----------------------------------------------------------------------------------
def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: Iterable[tuple[str, Any]], head: tuple[str, str], numbers: bool = True) -> str:
    cell = '<td class="num">' if numbers else "<td>"
    body = "".join(f"<tr><td>{html.escape(str(k))}</td>{cell}"
                   f"{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"


def frame_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><tr>{head}</tr>{rows}</table>"


HEADLINE = ("val_accuracy", "test_accuracy", "test_macro_f1", "test_auc", "test_f1", "oov_rate",
            "mistakes_lost_sentiment_share", "checks_mft", "checks_inv", "checks_dir")


def learned_nothing_banner(warnings: list[str]) -> str:
    """The banner at the top of a report whose model learned nothing; '' otherwise."""
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return (f'<div class="banner"><b>This model learned nothing.</b> Its scores say nothing '
            f"about these settings beyond that:<ul>{items}</ul></div>")


def report_page(findings: Findings, images: dict[str, bytes]) -> str:
    """The run's report: headline metrics, figures (PNG bytes by name), parameters and metrics,
    the example sentences and the confident mistakes highlighted, the behavioural checks'
    failures."""
    finals = findings.finals
    cards = "".join(f'<div class="card"><b>{_fmt(finals[k])}</b><span>{k}</span></div>'
                    for k in HEADLINE if k in finals)
    figures = "".join(f'<figure><img alt="{html.escape(name)}" src="{png_data_uri(png)}">'
                      f"<figcaption>{html.escape(name)}</figcaption></figure>"
                      for name, png in images.items())
    body = [learned_nothing_banner(findings.warnings)]
    if findings.versus:
        body.append(f'<p class="versus">{html.escape(findings.versus)}</p>')
    body += [f'<div class="cards">{cards}</div>', "<h2>Figures</h2>", figures]
    if findings.classes is not None:
        body += ["<h2>Per class</h2>"]
        for split, table in findings.per_class.items():
            body += [f"<h3>{split}</h3>", frame_html(table)]
        if findings.confused is not None and len(findings.confused):
            body += ["<h3>Most confused pairs (test)</h3>", frame_html(findings.confused)]
    notes = {part: f"<p><i>{html.escape(note)}</i></p>" for part, note in findings.notes.items()}
    body += ["<h2>Example sentences</h2>",
             legend(findings.sentences) if findings.sentences else notes.get("sentences", "")]
    body += [explanation_html(e, f"sentence {i + 1}") for i, e in enumerate(findings.sentences)]
    body += ["<h2>Confident mistakes</h2>"]
    mistakes = findings.mistakes
    if mistakes.empty:
        body.append("<p>The model made no mistakes on the test split.</p>")
    else:
        body.append(
            "<p>The test reviews the model was surest of and wrong about. <i>Strongest "
            "words</i>: the review's in-vocabulary words with the largest effect on their own "
            "(f(word) &minus; f(empty)); <i>lost</i>: those the network never saw.</p>")
    for i, (row, e) in enumerate(zip(mistakes.itertuples(index=False),
                                     findings.mistake_explanations,
                                     strict=True)):
        names = findings.classes or findings.names
        wrong = int(row.predicted) if "predicted" in mistakes else 1 - int(row.label)
        truth = f"{names[int(row.label)]}, predicted {names[wrong]}"
        lost = f"; lost: <b>{html.escape(row.lost_words)}</b>" if row.lost_words else ""
        body.append(f'<h3>{i + 1}. {html.escape(str(row.id))} (truly {truth})</h3>'
                    f'<div class="meta">strongest words: {html.escape(row.strongest_words)}'
                    f"{lost}</div>{explanation_html(e)}")
    body += ["<h2>Behavioural checks</h2>",
             "<p>mft: a plain text must get its label; inv: a name or title changed must not "
             "flip the label; dir: a variant (the built-in ones add &ldquo;not&rdquo;) must move "
             "the score the stated way. Measurements, not gates.</p>" + notes.get("checks", ""),
             _table(((k, finals[k]) for k in ("checks_mft", "checks_inv", "checks_dir")
                     if k in finals), ("kind", "pass rate")),
             "<h3>Failures</h3>", frame_html(findings.failures)]
    body += ['<h2>Parameters and metrics</h2><div class="cols">',
             _table(sorted(findings.params.items()), ("parameter", "value"), numbers=False),
             _table(sorted(finals.items()), ("metric", "value")), "</div>"]
    return page(str(findings.params.get("name", "rnnflow")), "".join(body), "rnnflow run report")


__all__ = ["OOV", "SEEN", "TRUNCATED", "explain_page", "explanation_html", "frame_html",
           "png_data_uri", "report_page", "summary_line", "terminal", "tokens_html"]
