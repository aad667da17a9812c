"""`model_card.md`: what a run's model is, what it was trained on, how well it does, where it
fails and what it is not for (after Mitchell et al., "Model Cards for Model Reporting", 2019)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rnnflow.insight.findings import Findings


def _f(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def model_card(findings: Findings) -> str:
    p = findings.params
    finals = findings.finals
    m = {k: _f(v) for k, v in finals.items()}
    vectors = {"gensim": f"gensim-data `{p['embedding.name']}`",
               "file": f"word2vec file `{p['embedding.url']}`",
               "train": (f"gensim Word2Vec trained on the train split ({p['embedding.vector_size']}"
                         f"-d, window {p['embedding.window']}, min_count "
                         f"{p['embedding.min_count']}, {p['embedding.epochs']} epochs)"),
               "onehot": (f"one-hot over the {p['embedding.max_tokens']:,} most frequent train "
                          "tokens, a trainable row lookup of the input weights"),
               "learned": (f"{p['embedding.vector_size']}-d vectors learned from scratch with "
                           f"the network, over the {p['embedding.max_tokens']:,} most frequent "
                           "train tokens"),
               "fasttext": (f"gensim FastText trained on the train split "
                            f"({p['embedding.vector_size']}-d, character n-grams of "
                            f"{p.get('embedding.min_n')}-{p.get('embedding.max_n')}, window "
                            f"{p['embedding.window']}, min_count {p['embedding.min_count']}, "
                            f"{p['embedding.epochs']} epochs), a vector for every corpus token"),
               }[p["embedding.source"]]
    cell = {"simple_rnn": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}[p["model.cell"]]
    layers = (f"{p['model.num_layers']} x " if p["model.num_layers"] > 1 else "") + (
        f"Bidirectional({cell}({p['model.num_neurons']}))" if p["model.bidirectional"]
        else f"{cell}({p['model.num_neurons']})")
    pooled = p.get("model.pooling", "none")  # runs logged before pooling have no such key
    out = ("its last state" if not p["model.return_sequences"] else
           "every time step, flattened" if pooled == "none" else
           f"the {pooled} of every time step's state")
    sizes = ", ".join(f"{split} {n:,}" for split, n in findings.split_sizes.items())
    neg, pos = findings.names[:2]
    imdb = p["dataset.source"] == "aclimdb"
    lines = [
        f"# Model card: {p['name']}",
        "",
        (f"Binary sentiment ({neg} / {pos}) of English movie reviews"
         if imdb and findings.sentiment else f"Two classes ({neg} / {pos})")
        + ": a recurrent network over word2vec vectors, after *Natural Language Processing "
        "in Action* (ch. 8).",
        "",
        "## Data",
        f"- Source: `{p['dataset.source']}` from `{p['dataset.url']}`"
        + (f" (at most {p['dataset.limit']:,} reviews per official split)"
           if p.get("dataset.limit") else ""),
        f"- Sizes: {sizes} reviews",
        f"- Split: the official train/test split; the last {p['dataset.validation_split']:.0%} "
        f"of the seed-shuffled train split (seed {p['dataset.seed']}) is `val`, used for "
        "model selection; `test` is read once per run",
        (f"- Labels: 1 {pos}, 0 {neg} (aclImdb: rating >= 7 {pos}, <= 4 {neg})" if imdb else
         f"- Labels: 0 {neg}, 1 {pos} (column `{p.get('dataset.label_column', 'label')}`); "
         f"the model outputs the probability of {pos}"),
        "",
        "## Preprocessing",
        f"- Tokenizer: NLTK `{p['tokenize.tokenizer']}`, lowercase {p['tokenize.lowercase']}, "
        f"HTML tags stripped {p['tokenize.strip_html']}",
        f"- Vectors: {vectors}"
        + ("" if p["embedding.source"] == "onehot" else
           f"; frozen: {not p['embedding.trainable']}"),
        f"- Out-of-vocabulary tokens are dropped: OOV rate {m.get('oov_rate', '?')}, "
        f"{_f(finals.get('empty_docs', 0), 0)} reviews with no known token",
        (f"- Sequence length: maxlen {p['pad.maxlen']}, padding `{p['pad.padding']}`, "
         f"truncating `{p['pad.truncating']}` "
         f"({'the first' if p['pad.truncating'] == 'pre' else 'the last'} tokens of a longer "
         "review are cut)" + (", batches bucketed by length, padding masked"
                              if p.get("pad.bucket") else "")
         if p["pad.maxlen"] is not None else
         "- Sequence length: not fixed (maxlen null): each batch is padded to its longest "
         "review, padding masked, nothing cut"),
        "",
        "## Model and training",
        f"- Network: Embedding (word2vec) -> {layers}, returning {out} -> Dropout "
        f"{p['model.dropout']} -> Dense(1, sigmoid); kernel `{p['model.kernel']}`; "
        f"{_f(finals.get('trainable_params', 0), 0)} trainable parameters",
        f"- Training: {p['train.optimizer']} (learning rate "
        f"{p['train.learning_rate'] or 'Keras default'}), batch {p['train.batch_size']}, "
        f"{p['train.epochs']} epochs, seed {p['train.seed']}"
        + (f", early stopping after {p['train.early_stopping']} epochs without improvement"
           if p.get("train.early_stopping") else "")
        + (f"; the model is epoch {_f(finals['restored_epoch'], 0)}'s (the best val_loss) "
           f"of {_f(finals['stopped_epoch'], 0)} trained" if "restored_epoch" in finals else ""),
        _loss_line(p),
        "",
        "## Metrics",
        *([f"Beside the baselines fitted on the same splits: {findings.versus} (the difference "
           "in test accuracy, with its paired 95% interval over the test reviews).", ""]
          if findings.versus else []),
        "| split | accuracy | precision | recall | F1 | ROC AUC | loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for split in ("val", "test"):
        lines.append(f"| {split} | " + " | ".join(
            m.get(f"{split}_{k}", "") for k in ("accuracy", "precision", "recall", "f1", "auc",
                                                "loss")) + " |")
    if findings.classes is not None:
        lines[-4:] = [  # the metric table's header, rule and two splits
            "| split | accuracy | macro F1 | weighted F1 | macro ROC AUC (one-vs-rest) | loss |",
            "|---|---|---|---|---|---|",
            *(f"| {split} | " + " | ".join(
                m.get(f"{split}_{k}", "") for k in ("accuracy", "macro_f1", "weighted_f1",
                                                    "auc", "loss")) + " |"
              for split in ("val", "test"))]
        lines += ["", "Per class (test):", "", "| class | precision | recall | F1 | support |",
                  "|---|---|---|---|---|"]
        for row in findings.per_class.get("test", pd.DataFrame()).itertuples(index=False):
            lines.append(f"| {row[0]} | {row.precision:.4f} | {row.recall:.4f} | "
                         f"{row.f1:.4f} | {int(row.support)} |")
        if findings.confused is not None and len(findings.confused):
            lines += ["", "Most confused pairs (test): " + ", ".join(
                f"{r.true} as {r.predicted} ({int(r.n)})"
                for r in findings.confused.itertuples(index=False))]
    checks = [(k, m[k]) for k in ("checks_mft", "checks_inv", "checks_dir") if k in m]
    if checks:
        lines += ["", "Behavioural checks (pass rate): "
                  + ", ".join(f"{k.removeprefix('checks_')} {v}" for k, v in checks)
                  + " (mft: plain texts get their label; inv: names and titles changed; dir: "
                  "a variant moves the score the stated way)"]
    lines += ["", "## Known failure patterns"]
    lines += _failure_patterns(finals, findings.mistakes, findings.failures, findings.names)
    lines += [
        "",
        "## Limitations",
        ("- English movie reviews only: other domains (products, tweets), other languages and "
         "other registers are out of scope." if imdb else
         f"- Texts like those of `{p['dataset.url']}` only: other domains, languages and "
         "registers are out of scope."),
        ("- Two labels: no neutral class, no strength of opinion; mixed reviews are forced to "
         "one side." if findings.sentiment else
         f"- Two labels: every text is given {neg} or {pos}, none is left out.")
        + " A text with no known word is reported as `label -1` (no evidence).",
        "- Words missing from the vector table are invisible to the model, and everything past "
        f"maxlen {p['pad.maxlen']} tokens is cut without warning.",
        "- The model learns what separates the training reviews, including names, titles and "
        "topics: the invariance checks measure some of that, not all.",
        "- Not for decisions about people.",
        "",
    ]
    if findings.classes is not None:
        k = len(findings.classes)
        names = ", ".join(findings.classes)
        swap = {lines[2]: f"{k} classes ({names}): a recurrent network over word vectors, "
                "after *Natural Language Processing in Action* (ch. 8).",
                next(line for line in lines if line.startswith("- Labels:")):
                f"- Labels: {k} classes, sorted: {names}"}
        lines = [swap.get(line, line).replace("Dense(1, sigmoid)", f"Dense({k}, softmax)")
                 for line in lines]
        lines = [line for line in lines if not line.startswith("- Two labels:")]
    if findings.warnings:  # under the title, before anything else is read
        lines[2:2] = ["> **This model learned nothing:** " + "; ".join(findings.warnings) + ".",
                      ""]
    return "\n".join(lines)


def _loss_line(p: dict[str, Any]) -> str:
    """Where the loss was computed (`train.loss_steps`; a run from before it: the last step)."""
    if p.get("train.loss_steps", "last") == "all":
        return ("- Loss: at every step (`train.loss_steps: all`, the lesson's better way): the "
                "output after each real token scored against the label, averaged over the real "
                "steps, padding masked; the prediction is the output after the last token")
    return ("- Loss: at the last step only (`train.loss_steps: last`, the vanilla way of "
            "backpropagating through time): only the prediction is scored")


def _failure_patterns(finals: dict[str, float], mistakes: pd.DataFrame,
                      failures: pd.DataFrame, names: list[str]) -> list[str]:
    lines = []
    if mistakes.empty:
        lines.append("- No wrong test predictions were listed.")
    else:
        wrong_pos = int((mistakes.label == 0).sum())
        if "predicted" in mistakes:
            lines.append(f"- {len(mistakes)} confident test mistakes are listed "
                         "(confident_mistakes.csv).")
        else:
            neg, pos = names[:2]
            lines.append(f"- Of the {len(mistakes)} most confident test mistakes, {wrong_pos} "
                         f"are {neg} texts called {pos} and {len(mistakes) - wrong_pos} "
                         f"{pos} texts called {neg}.")
        if "truncated_tokens" in mistakes:
            cut = int((mistakes.truncated_tokens > 0).sum())
            share = finals.get("mistakes_lost_sentiment_share", float("nan"))
            lines.append(f"- {cut} of them were truncated; in {share:.0%} the review's strongest "
                         "sentiment words were cut before the network saw them "
                         "(`mistakes_lost_sentiment_share`).")
            lines.append(f"- They average {mistakes.oov_tokens.mean():.1f} OOV tokens of "
                         f"{mistakes.tokens.mean():.0f}.")
    if not any(k.startswith("checks_") for k in finals):
        lines.append("- No behavioural checks were run (`evaluate.checks: none`, or the "
                     "built-in sentiment checks do not fit these labels).")
    elif failures.empty:
        lines.append("- Every behavioural check passed.")
    for kind, group in failures.groupby("kind", sort=False) if not failures.empty else []:
        example = group.iloc[0]
        what = {"mft": "plain sentences given the wrong label",
                "inv": "label flips when only a name or a title changes",
                "dir": "adding a negation does not lower the score"}[kind]
        shown = example.text + (f"\" -> \"{example.variant}" if example.variant else "")
        lines.append(f"- {what}: {len(group)} case(s), e.g. \"{shown}\"")
    return lines
