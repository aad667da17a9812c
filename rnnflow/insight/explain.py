"""What the network saw and why it decided.

- `trace`: the path a text takes to the network: its tokens in order, each marked `seen`,
  `oov` (not in the vector table, dropped) or `truncated` (cut by `pad.maxlen` and
  `pad.truncating`), the input column each seen token lands in, and where the padding went.
- `integrated_gradients`: attributions per input position, with respect to the embedding
  output (the word2vec vectors), summed over the vector dimensions; the baseline is the zero
  embedding (all padding, i.e. the empty review), the path integral is the trapezoid rule over
  `steps` intervals. Completeness: the attributions of a text sum to f(x) - f(baseline), where f
  is the sigmoid output, to within the integration error (tests: 1e-2 at 32 steps).
- `explain`: both, for raw texts through a `TextModel`; with `unrolled`, also the network
  unrolled (`unroll`): its probability after each token it read.
- With k > 2 classes (a softmax head) f is the probability of one class: the predicted one,
  or one named; a word's polarity is its largest effect on any class's probability.
- `word_polarity` and `lost_sentiment`: for the confident mistakes, which of a review's
  strongest sentiment words the network never saw.

**Which words are a review's strongest sentiment words.** A word the network never saw has no
attribution in that review (it never reached the network: its attribution is 0 by
construction). So the strength of a word is measured on its own: its *polarity* is
f(the word alone) - f(empty review), which by completeness is the word's integrated-gradients
attribution in a one-word review. A review's strongest sentiment words are its
`top` in-vocabulary words by |polarity| (each word once); the review "lost sentiment" when at
least one of them was truncated at every occurrence. An out-of-vocabulary word has no vector,
so the model cannot rank it: OOV tokens are counted (`oov_tokens`), never ranked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

SEEN, OOV, TRUNCATED = "seen", "oov", "truncated"
IG_STEPS = 32


@dataclass(frozen=True)
class TokenPath:
    """One text on its way to the network."""

    tokens: list[str]
    status: list[str]  # per token: seen | oov | truncated
    column: list[int]  # per token: its column of the padded input, -1 if never seen
    ids: list[int]  # per token: its vocabulary row, 0 if OOV
    maxlen: int
    padding: str  # pre | post: where the padding went
    pad_count: int  # how many padding columns
    truncating: str  # pre | post: which end was cut

    @property
    def seen(self) -> int:
        return self.status.count(SEEN)

    @property
    def oov(self) -> int:
        return self.status.count(OOV)

    @property
    def truncated(self) -> int:
        return self.status.count(TRUNCATED)

    def row(self) -> np.ndarray:
        """The padded int32 input this path makes (what `TextModel.ids` gives)."""
        x = np.zeros(self.maxlen, dtype=np.int32)
        for col, i in zip(self.column, self.ids, strict=True):
            if col >= 0:
                x[col] = i
        return x


def trace(tokens: list[str], rows: dict[str, int], maxlen: int, padding: str,
          truncating: str) -> TokenPath:
    """Mark each token: OOV tokens are dropped first, then `truncating` cuts the known ids past
    `maxlen` (`pre`: the first ones, `post`: the last ones), then `padding` fills the rest of
    the `maxlen` columns with zeros before (`pre`) or after (`post`) the ids."""
    ids = [rows.get(t, 0) for t in tokens]
    known = [i for i, row in enumerate(ids) if row]
    cut = max(0, len(known) - maxlen)
    kept = known[cut:] if truncating == "pre" else known[:len(known) - cut]
    pad_count = maxlen - len(kept)
    offset = pad_count if padding == "pre" else 0
    status = [OOV if not row else TRUNCATED for row in ids]
    column = [-1] * len(tokens)
    for col, i in enumerate(kept):
        status[i], column[i] = SEEN, col + offset
    return TokenPath(list(tokens), status, column, ids, maxlen, padding, pad_count, truncating)


# --- integrated gradients ------------------------------------------------------------------------
def embedding_head(model) -> tuple[object, Callable]:
    """(the input layer: the Embedding "word2vec", or the one-hot lookup; a function from its
    output and the padding mask to the sigmoid output): the layers after it, called in order
    at inference (dropout off), the mask handed to those that take one."""
    import inspect

    import keras

    from rnnflow.network.onehot import OneHotProjection

    layers = model.layers
    start = next(i for i, layer in enumerate(layers)
                 if isinstance(layer, keras.layers.Embedding | OneHotProjection))
    embed, rest = layers[start], layers[start + 1:]
    takes_mask = [("mask" in inspect.signature(layer.call).parameters) for layer in rest]

    def head(x, mask=None):
        for layer, masked in zip(rest, takes_mask, strict=True):
            x = layer(x, training=False, **({"mask": mask} if masked and mask is not None
                                            else {}))
        return x

    return embed, head


@dataclass(frozen=True)
class Attribution:
    values: np.ndarray  # texts x maxlen: per input position, summed over vector dimensions
    output: np.ndarray  # f(x) per text
    baseline: np.ndarray  # f(baseline) per text


# Memory one chunk of integrated gradients may take: its path points, their gradients and
# products, each maxlen x dim floats (about four copies per point).
IG_CHUNK_BYTES = 128 * 2**20


def integrated_gradients(model, x: np.ndarray, steps: int = IG_STEPS,
                         batch: int | None = None,
                         targets: np.ndarray | None = None) -> Attribution:
    """Integrated gradients of the sigmoid output w.r.t. the embedding output, zero baseline.
    A softmax model's output is the probability of each text's class in `targets` (class
    indices, one per text; required for such a model).

    For each text the path alpha * e (alpha = 0, 1/steps, ..., 1) is one batch of
    `steps + 1` interpolated inputs; the gradients at its points are averaged with the
    trapezoid rule and multiplied by e. Padding columns embed to the zero vector, so their
    attribution is exactly 0. `batch` path points go through the network at once (whole
    texts: at least one); by default as many as fit IG_CHUNK_BYTES: two texts at 400 x 300
    (about 2 MB per point; a fixed number of points was a run's memory peak), and every text
    at once for small inputs."""
    import tensorflow as tf

    embed, head = embedding_head(model)
    x = np.asarray(x, dtype=np.int32)
    if batch is None:
        point = 4 * 4 * max(x.shape[1], 1) * embed.output_dim  # bytes, about four copies
        batch = max(steps + 1, IG_CHUNK_BYTES // point)
    alphas = tf.reshape(tf.linspace(0.0, 1.0, steps + 1), [-1, 1, 1])
    weights = np.full(steps + 1, 1.0 / steps, dtype=np.float32)
    weights[[0, -1]] /= 2  # the trapezoid rule
    weights = tf.constant(weights.reshape(-1, 1, 1))
    per_chunk = max(1, batch // (steps + 1))
    values, outputs, baselines = [], [], []
    for start in range(0, len(x), per_chunk):
        ids = x[start:start + per_chunk]
        chosen = None if targets is None else np.repeat(
            np.asarray(targets[start:start + per_chunk], dtype=np.int32), steps + 1)
        e = tf.convert_to_tensor(embed(ids))  # n x T x D
        n = int(e.shape[0])
        path = tf.reshape(alphas[None] * e[:, None], [n * (steps + 1), *e.shape[1:]])
        mask = embed.compute_mask(ids)  # masked models skip padding on every path point
        if mask is not None:
            mask = tf.repeat(tf.convert_to_tensor(mask), steps + 1, axis=0)
        with tf.GradientTape() as tape:
            tape.watch(path)
            out = head(path, mask)
            if out.shape[-1] > 1:  # a softmax: the probability of the chosen class
                out = tf.gather(out, chosen, axis=1, batch_dims=1)
            out = tf.reshape(out, [n, steps + 1])
        grads = tf.reshape(tape.gradient(out, path), [n, steps + 1, *e.shape[1:]])
        avg = tf.reduce_sum(grads * weights[None, :, :, :], axis=1)  # n x T x D
        values.append(tf.reduce_sum(avg * e, axis=-1).numpy())
        outputs.append(out[:, -1].numpy())
        baselines.append(out[:, 0].numpy())
    if not values:
        empty = np.zeros(0, dtype=np.float32)
        return Attribution(np.zeros((0, x.shape[1]), np.float32), empty, empty)
    return Attribution(np.concatenate(values), np.concatenate(outputs),
                       np.concatenate(baselines))


# --- raw text -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Explanation:
    """One text: its path to the network, the probability and per-token attributions."""

    text: str
    path: TokenPath
    probability: float  # what TextModel.predict reports (0.5 with no known token)
    label: int  # 1, 0 or -1 (no evidence); with k classes the attributed class's index
    output: float  # f(x), the network's output on the padded input
    baseline: float  # f(empty review)
    attributions: list[float] = field(default_factory=list)  # per token; 0 where not seen
    # The name of the class attributed (f is its probability: class 1's, `pos` for sentiment,
    # with two classes), and the one predicted ("no evidence" with two classes, "no opinion"
    # with k, where the text has no known token). None only where made by hand without them.
    class_name: str | None = None
    predicted: str | None = None
    # The network unrolled (`unroll`): the probability of `class_name` after each seen token,
    # in the order read; None where not asked for. `loss_steps`: where the model's loss was
    # computed (`train.loss_steps`), which says what those values are.
    unrolled: list[float] | None = None
    loss_steps: str | None = None

    @property
    def total(self) -> float:
        return float(sum(self.attributions))

    @property
    def read(self) -> list[str]:
        """The tokens the network read, in its order (the unrolled view's rows)."""
        return [self.path.tokens[i] for _, i in _read_order(self.path)]


def _read_order(path: TokenPath) -> list[tuple[int, int]]:
    """(input column, token index) of each seen token, in the order the network reads them."""
    return sorted((c, i) for i, c in enumerate(path.column) if c >= 0)


def unroll(text_model, path: TokenPath, column: int) -> list[float]:
    """The model's output `column` (0: a sigmoid's, class `column` of a softmax) after each
    token of `path` it reads: its prediction for the text cut after that token, padded as its
    prediction of the whole text is. So the last value is the prediction itself; for a network
    that masks padding (bucketed, `pad.maxlen: null`, `train.loss_steps: all`) or pads before
    the text, the value after token t is the head read on the state after t; the book's
    post-padded, unmasked network reads the padding after the cut too, as its prediction does.
    One batch of as many prefixes as tokens read."""
    ids = [path.ids[i] for _, i in _read_order(path)]
    if not ids:
        return []
    out = text_model.outputs([ids[:t] for t in range(1, len(ids) + 1)])
    return [float(v) for v in out[:, column]]


def explain(text_model, texts: list[str], steps: int = IG_STEPS,
            target: str | None = None, unrolled: bool = False,
            loss_steps: str | None = None) -> list[Explanation]:
    """Trace and attribute each text with the network of `text_model` (a TextModel). With
    k > 2 classes each text's predicted class is attributed, or the class named `target`.
    `unrolled`: each explanation also holds the network unrolled over the text (`unroll`), for
    the class attributed; `loss_steps` is the model's `train.loss_steps`, kept beside it."""
    found = _explain(text_model, texts, steps, target)
    if not unrolled:
        return found
    return [replace(e, loss_steps=loss_steps,
                    unrolled=unroll(text_model, e.path, max(e.label, 0)
                                    if getattr(text_model, "classes", None) else 0))
            for e in found]


def _explain(text_model, texts: list[str], steps: int, target: str | None
             ) -> list[Explanation]:
    texts = ["" if t is None else str(t) for t in texts]
    x, _known = text_model.ids(texts)
    rows = text_model._rows
    tokenize = text_model._tokenizer
    paths = [trace(tokenize(t), rows, x.shape[1], text_model.pad.padding,
                   text_model.pad.truncating) for t in texts]
    for path, row in zip(paths, x, strict=True):  # the trace is the input the model gets
        if not np.array_equal(path.row(), row):
            raise AssertionError(f"trace disagrees with TextModel.ids: {path.tokens[:10]}")
    classes = getattr(text_model, "classes", None)
    if classes is not None:
        return _explain_classes(text_model, texts, paths, x, steps, target)
    scored = text_model.predict(texts)
    ig = integrated_gradients(text_model.model, x, steps)
    # A two-class network outputs the probability of class 1; a text model made without
    # class names (by hand, or logged before they were kept) is sentiment, neg/pos.
    names = getattr(text_model, "class_names", None) or ["neg", "pos"]
    result = []
    for i, (text, path) in enumerate(zip(texts, paths, strict=True)):
        attr = [float(ig.values[i, c]) if c >= 0 else 0.0 for c in path.column]
        label = int(scored.label[i])
        result.append(Explanation(text, path, float(scored.probability[i]), label,
                                  float(ig.output[i]), float(ig.baseline[i]), attr,
                                  class_name=names[1],
                                  predicted=names[label] if label >= 0 else "no evidence"))
    return result


def _explain_classes(text_model, texts, paths, x, steps, target) -> list[Explanation]:
    classes = list(text_model.classes)
    if target is not None and target not in classes:
        raise ValueError(f"no class {target!r}; the classes are {', '.join(classes)}")
    prob, known = text_model.class_probabilities(texts)
    chosen = (np.full(len(texts), classes.index(target)) if target is not None
              else prob.argmax(axis=1) if len(texts) else np.zeros(0, int))
    ig = integrated_gradients(text_model.model, x, steps, targets=chosen)
    result = []
    for i, (text, path) in enumerate(zip(texts, paths, strict=True)):
        attr = [float(ig.values[i, c]) if c >= 0 else 0.0 for c in path.column]
        c = int(chosen[i])
        predicted = classes[int(prob[i].argmax())] if known[i] else "no opinion"
        result.append(Explanation(text, path, float(prob[i, c]), c if known[i] else -1,
                                  float(ig.output[i]), float(ig.baseline[i]), attr,
                                  class_name=classes[c], predicted=predicted))
    return result


# --- what the confident mistakes lost ------------------------------------------------------------
def word_polarity(text_model, words: list[str]) -> dict[str, float]:
    """f(the word alone) - f(empty review) for in-vocabulary words: by completeness, the word's
    attribution in a one-word review."""
    words = [w for w in dict.fromkeys(words) if w in text_model._rows]
    if not words:
        return {}
    import pyarrow as pa

    from rnnflow.data.pad import pad_ids
    from rnnflow.network.model import inference_batch, inference_model

    lists = [[text_model._rows[w]] for w in words] + [[]]
    x = pad_ids(pa.array(lists, type=pa.list_(pa.int32())), text_model.pad)
    # Thousands of one-word reviews: the projection looked up, as in evaluation, keeps each
    # batch at about 40 MB instead of hundreds of MB of 400 x 300-d vectors.
    fast = inference_model(text_model.model)
    out = fast.predict(x, verbose=0, batch_size=inference_batch(fast, x.shape[1]))
    if out.shape[-1] > 1:  # k classes: the largest change of any class's probability
        change = out[:-1] - out[-1]
        pick = np.abs(change).argmax(axis=1)
        return {w: float(change[i, pick[i]]) for i, w in enumerate(words)}
    out = out.ravel()
    return {w: float(v - out[-1]) for w, v in zip(words, out[:-1], strict=True)}


def lost_sentiment(paths: list[TokenPath], polarity: dict[str, float],
                   top: int = 3) -> list[dict]:
    """Per path: its `top` strongest sentiment words (by |polarity|, each word once), and those
    of them the network never saw (every occurrence truncated)."""
    rows = []
    for path in paths:
        seen = {t for t, s in zip(path.tokens, path.status, strict=True) if s == SEEN}
        words = [t for t in dict.fromkeys(path.tokens) if t in polarity]
        strongest = sorted(words, key=lambda w: -abs(polarity[w]))[:top]
        lost = [w for w in strongest if w not in seen]
        rows.append({"tokens": len(path.tokens), "oov_tokens": path.oov,
                     "truncated_tokens": path.truncated,
                     "strongest_words": " ".join(strongest), "lost_words": " ".join(lost),
                     "lost_sentiment": bool(lost)})
    return rows
