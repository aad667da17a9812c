"""What the network saw and why: token paths, integrated gradients, behavioural checks,
report.html and model_card.md, without a tracking store (the CLI end to end is in
tests/flows/test_inputs.py)."""

from __future__ import annotations

import html.parser
import shutil

import numpy as np
import pandas as pd
import pytest

from rnnflow.comparisons.plan import load_plan
from rnnflow.config import (
    ConfigError,
    ModelConfig,
    PadConfig,
    Point,
    TokenizeConfig,
)
from rnnflow.insight.cases import load_cases
from rnnflow.insight.checks import run_checks
from rnnflow.insight.explain import (
    OOV,
    SEEN,
    TRUNCATED,
    explain,
    integrated_gradients,
    lost_sentiment,
    trace,
    word_polarity,
)
from rnnflow.insight.render import explain_page, terminal
from rnnflow.network.model import build_model
from rnnflow.network.predict import TextModel
from tests.helpers import chromium

# Integrated gradients with 32 trapezoid steps: |sum of attributions - (f(x) - f(0))| below
# this on the tiny models here (measured: at most 1e-4 for GRU/LSTM, 2e-3 for SimpleRNN).
COMPLETENESS_TOL = 1e-2


# --- integrated gradients ------------------------------------------------------------------------
SHAPES = [  # (bidirectional, return_sequences, num_layers)
    (False, True, 1), (False, False, 1), (True, True, 1), (True, False, 2), (False, True, 2)]


@pytest.mark.parametrize("cell", ["simple_rnn", "gru", "lstm"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"bi{int(s[0])}-seq{int(s[1])}-x{s[2]}")
def test_attributions_are_complete_and_agree_across_kernels(cell, shape):
    import keras

    bidirectional, sequences, layers = shape
    rng = np.random.default_rng(0)
    table = (rng.normal(size=(30, 8)) * 0.5).astype("float32")
    table[0] = 0
    x = rng.integers(1, 30, size=(3, 12)).astype("int32")
    x[0, 8:] = 0  # padding: its attribution is exactly 0
    attributions = {}
    for kernel in ("fused", "keras"):
        keras.utils.set_random_seed(1)
        cfg = ModelConfig(cell=cell, num_neurons=4, bidirectional=bidirectional,
                          return_sequences=sequences, num_layers=layers, kernel=kernel)
        model = build_model(cfg, table, 12)
        if kernel == "fused":
            weights = model.get_weights()
        else:
            model.set_weights(weights)  # the same network, stock layers
        ig = integrated_gradients(model, x, steps=32)
        np.testing.assert_allclose(ig.output, model.predict(x, verbose=0).ravel(), atol=1e-6)
        np.testing.assert_allclose(ig.baseline, model.predict(np.zeros_like(x), verbose=0)
                                   .ravel(), atol=1e-6)
        gap = np.abs(ig.values.sum(axis=1) - (ig.output - ig.baseline))
        assert gap.max() < COMPLETENESS_TOL, (kernel, gap)
        assert (ig.output - ig.baseline != 0).all()  # a test that could fail
        assert (ig.values[0, 8:] == 0).all()
        attributions[kernel] = ig.values
    np.testing.assert_allclose(attributions["fused"], attributions["keras"], atol=1e-5)


@pytest.mark.parametrize("cell", ["simple_rnn", "gru"])
@pytest.mark.parametrize("inputs", ["onehot", "masked"])
def test_attributions_are_complete_for_one_hot_and_masked_inputs(cell, inputs):
    """One-hot inputs attribute through the lookup's output; a masked model (pad.bucket,
    maxlen null) is explained with its mask, so padding is skipped as in prediction."""
    import keras

    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(4)
    cfg = ModelConfig(cell=cell, num_neurons=4, return_sequences=False)
    if inputs == "onehot":
        model = build_model(cfg, None, 12, onehot_tokens=29)
    else:
        table = (rng.normal(size=(30, 8)) * 0.5).astype("float32")
        table[0] = 0
        model = build_model(cfg, table, None, mask=True)
    x = rng.integers(1, 30, size=(3, 12)).astype("int32")
    x[0, 7:] = 0  # post padding
    ig = integrated_gradients(model, x, steps=32)
    np.testing.assert_allclose(ig.output, model.predict(x, verbose=0).ravel(), atol=1e-6)
    gap = np.abs(ig.values.sum(axis=1) - (ig.output - ig.baseline))
    assert gap.max() < COMPLETENESS_TOL, gap
    assert (ig.values[0, 7:] == 0).all() and (ig.values[0, :7] != 0).any()


def test_too_few_steps_break_completeness():
    """The completeness check has teeth: one step (a plain gradient x input) misses."""
    import keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(1)
    table = rng.normal(size=(30, 8)).astype("float32") * 2
    model = build_model(ModelConfig(cell="simple_rnn", num_neurons=8), table, 12)
    x = rng.integers(1, 30, size=(4, 12)).astype("int32")
    coarse = integrated_gradients(model, x, steps=1)
    fine = integrated_gradients(model, x, steps=64)
    gap = lambda ig: np.abs(ig.values.sum(1) - (ig.output - ig.baseline)).max()  # noqa: E731
    assert gap(fine) < COMPLETENESS_TOL < gap(coarse) * 10
    assert gap(fine) < gap(coarse)


# --- the path a text takes -----------------------------------------------------------------------
ROWS = {"a": 1, "b": 2, "c": 3, "d": 4}
TOKENS = ["a", "x", "b", ",", "c", "d"]  # x and "," are OOV; 4 known ids: 1 2 3 4


@pytest.mark.parametrize(("truncating", "status", "row"), [
    ("pre", [TRUNCATED, OOV, TRUNCATED, OOV, SEEN, SEEN], [3, 4]),  # the first ones are cut
    ("post", [SEEN, OOV, SEEN, OOV, TRUNCATED, TRUNCATED], [1, 2]),  # the last ones are cut
])
def test_truncation_marks(truncating, status, row):
    path = trace(TOKENS, ROWS, maxlen=2, padding="post", truncating=truncating)
    assert path.status == status
    assert (path.oov, path.truncated, path.seen, path.pad_count) == (2, 2, 2, 0)
    assert path.row().tolist() == row


@pytest.mark.parametrize(("padding", "row", "columns"), [
    ("pre", [0, 0, 1, 2, 3, 4], [2, -1, 3, -1, 4, 5]),
    ("post", [1, 2, 3, 4, 0, 0], [0, -1, 1, -1, 2, 3]),
])
def test_padding_marks(padding, row, columns):
    path = trace(TOKENS, ROWS, maxlen=6, padding=padding, truncating="pre")
    assert path.status == [SEEN, OOV, SEEN, OOV, SEEN, SEEN]
    assert (path.pad_count, path.padding, path.truncated) == (2, padding, 0)
    assert path.row().tolist() == row and path.column == columns


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_trace_is_the_input_the_model_gets(padding, truncating):
    """The trace agrees with TextModel.ids (pad_ids) on every pad setting."""
    model = _sum_model({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}, 3)
    text_model = TextModel(model.model, model.vocab, TokenizeConfig(),
                           PadConfig(maxlen=3, padding=padding, truncating=truncating))
    texts = ["a x b , c d", "d", "", "zzz"]
    x, _ = text_model.ids(texts)
    for text, expected in zip(texts, x, strict=True):
        path = trace(text.split(), text_model._rows, 3, padding, truncating)
        assert path.row().tolist() == expected.tolist()


# --- a hand-built model whose answers are known ----------------------------------------------
class _Hand:
    def __init__(self, model, vocab):
        self.model, self.vocab = model, vocab


def _sum_model(scores: dict[str, float], maxlen: int) -> _Hand:
    """sigmoid(sum of the words' scores): Embedding(1-d scores) -> Flatten -> Dense(ones)."""
    import keras

    vocab = list(scores)
    table = np.array([[0.0]] + [[scores[w]] for w in vocab], dtype="float32")
    inputs = keras.Input(shape=(maxlen,), dtype="int32")
    embed = keras.layers.Embedding(len(table), 1, name="word2vec")
    x = keras.layers.Flatten()(embed(inputs))
    dense = keras.layers.Dense(1, activation="sigmoid", name="sentiment")
    model = keras.Model(inputs, dense(x))
    embed.set_weights([table])
    dense.set_weights([np.ones((maxlen, 1), "float32"), np.zeros(1, "float32")])
    return _Hand(model, vocab)


SCORES = {"great": 2.0, "wonderful": 2.0, "awful": -2.0, "boring": -2.0, "not": -3.0,
          "film": 0.0, "the": 0.0, "was": 0.0, "John": 0.0, "Maria": 0.0, ".": 0.0}


@pytest.fixture
def hand_model() -> TextModel:
    hand = _sum_model(SCORES, 8)
    return TextModel(hand.model, hand.vocab, TokenizeConfig(), PadConfig(maxlen=8))


def test_explain_through_a_text_model(hand_model):
    (e,) = explain(hand_model, ["The film was not great , just boring ."])
    assert e.path.tokens == ["The", "film", "was", "not", "great", ",", "just", "boring", "."]
    assert [t for t, s in zip(e.path.tokens, e.path.status, strict=True) if s == OOV] == [
        "The", ",", "just"]
    attr = dict(zip(e.path.tokens, e.attributions, strict=True))
    # A linear logit: each word's share follows its score; unseen tokens get exactly 0.
    assert attr["great"] > 0 > attr["boring"] > attr["not"]
    assert attr["film"] == 0 and attr["The"] == 0
    assert abs(e.total - (e.output - e.baseline)) < COMPLETENESS_TOL
    assert e.baseline == pytest.approx(0.5) and e.probability == pytest.approx(e.output)


def test_terminal_and_html_explanations(hand_model):
    expl = explain(hand_model, ["great film", "zzz"])
    plain = terminal(expl[0], color=False)
    assert "great" in plain and "\x1b[" not in plain and "positions" in plain
    assert "\x1b[32m" in terminal(expl[0], color=True)  # green: a positive attribution
    assert "no evidence" in terminal(expl[1], color=False)
    page = explain_page(expl, "t")
    assert page.count('class="tok seen"') == 2 and 'class="tok oov"' in page


def test_lost_sentiment_names_the_strongest_words_never_seen():
    path = trace(["great", "film", "awful", "zz", "the"], {"great": 1, "film": 2, "awful": 3,
                                                          "the": 4}, 2, "post", "post")
    polarity = {"great": 0.3, "film": 0.01, "awful": -0.4, "the": 0.0}
    (row,) = lost_sentiment([path], polarity, top=2)
    assert row["strongest_words"] == "awful great" and row["lost_words"] == "awful"
    assert (row["tokens"], row["oov_tokens"], row["truncated_tokens"]) == (5, 1, 2)
    assert row["lost_sentiment"] is True
    (kept,) = lost_sentiment([trace(["great", "awful"], {"great": 1, "awful": 3}, 4, "post",
                                    "post")], polarity, top=2)
    assert kept["lost_sentiment"] is False


def test_word_polarity_is_the_word_alone_against_the_empty_review(hand_model):
    polarity = word_polarity(hand_model, ["great", "not", "zzz"])
    assert set(polarity) == {"great", "not"}
    assert polarity["great"] == pytest.approx(1 / (1 + np.exp(-2)) - 0.5, abs=1e-6)


# --- behavioural checks ----------------------------------------------------------------------
def test_check_pass_rates_on_a_model_whose_answers_are_known(hand_model):
    cases = load_cases([
        {"kind": "mft", "text": "great film", "label": 1},
        {"kind": "mft", "text": "awful film", "label": 0},
        {"kind": "mft", "text": "boring film", "label": 1},  # fails
        {"kind": "inv", "text": "John was great", "variant": "Maria was great"},
        {"kind": "inv", "text": "great film", "variant": "awful film"},  # fails
        {"kind": "dir", "text": "the film was great", "variant": "the film was not great",
         "direction": "lower"},
        {"kind": "dir", "text": "the film was great", "variant": "the film was not great",
         "direction": "higher"},  # fails
        {"kind": "dir", "text": "great", "variant": "great", "direction": "lower"},  # equal
    ])
    metrics, failures = run_checks(hand_model, cases)
    assert metrics == {"checks_mft": pytest.approx(2 / 3), "checks_inv": 0.5,
                       "checks_dir": pytest.approx(1 / 3)}
    assert failures.kind.tolist() == ["mft", "inv", "dir", "dir"]
    assert failures.text.tolist()[:2] == ["boring film", "great film"]


def test_default_checks_are_shipped_and_cover_every_kind():
    cases = load_cases("default")
    kinds = pd.Series([c["kind"] for c in cases]).value_counts()
    assert set(kinds.index) == {"mft", "inv", "dir"} and len(cases) >= 24
    assert all(" not " in c["variant"] for c in cases if c["kind"] == "dir")
    assert load_cases("none") == []


def test_checks_setting_shapes(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("name: t\n")
    own = tmp_path / "checks.yaml"
    own.write_text("mft:\n  - {text: fine, label: 1}\n")
    assert load_plan(params, {"evaluate.checks": str(own)}).base.evaluate.checks == str(own)
    assert load_cases(str(own)) == [{"kind": "mft", "text": "fine", "label": 1}]
    listed = load_plan(params, ['evaluate.checks=[{kind: inv, text: a, variant: b}]'])
    assert load_cases(listed.base.evaluate.checks)[0]["variant"] == "b"
    assert Point().evaluate.checks == "default"
    for bad, needle in [("nowhere.yaml", "not a file"), ("[{kind: x}]", "kind one of"),
                        ("[{kind: mft, text: a}]", "expected keys"),
                        ("[{kind: dir, text: a, variant: b, direction: up}]", "lower or higher")]:
        with pytest.raises(ConfigError, match=needle) as err:
            load_plan(params, [f"evaluate.checks={bad}"])
        assert "evaluate.checks" in str(err.value)


# --- report.html and model_card.md ----------------------------------------------------------------
class _Page(html.parser.HTMLParser):
    """Well-formedness of the page: every opened element closed, in order; every reference."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.refs: list[tuple[str, str]] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.refs += [(tag, v or "") for k, v in attrs if k in ("src", "href")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def check_page(text: str) -> _Page:
    """Assert report.html is one well-formed, self-contained page; return what it holds."""
    parser = _Page()
    parser.feed(text)
    parser.close()
    assert text.startswith("<!DOCTYPE html>")
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    assert parser.refs and all(ref.startswith("data:image/png;base64,") for _, ref in
                               parser.refs), parser.refs
    assert not [t for t, _ in parser.tags if t in ("script", "link", "iframe")]
    assert "url(" not in text.split("</style>")[0]
    return parser


@pytest.fixture
def summarized(tmp_path, hand_model):
    from rnnflow.insight.report import FinishedRun, summarize
    from rnnflow.network.evaluate import Evaluation
    from rnnflow.network.train import Fit

    reviews = tmp_path / "reviews.parquet"
    texts = {"a": "great film", "b": "Sadly , the film was , the film was . . awful",
             "c": "awful", "d": "wonderful film . The film was great"}
    pd.DataFrame({"id": list(texts), "split": ["test"] * 4, "text": list(texts.values())}
                 ).to_parquet(reviews)
    test = pd.DataFrame({"id": list(texts), "label": [1, 1, 0, 0],
                         "probability": [0.9, 0.1, 0.2, 0.95]})
    evaluation = Evaluation(
        metrics={"val_loss": 0.6, "val_accuracy": 0.5, "test_loss": 0.7, "test_accuracy": 0.5,
                 "test_auc": 0.5},
        confusion={s: np.array([[1, 1], [1, 1]]) for s in ("val", "test")},
        predictions={"val": test, "test": test})
    history = {"loss": [0.7, 0.6], "val_loss": [0.69, 0.6], "val_accuracy": [0.4, 0.5]}
    point = Point(name="hand", pad={"maxlen": 8}, evaluate={
        "sentences": ["great film", "not great"], "mistakes": 2,
        "checks": [{"kind": "mft", "text": "great film", "label": 1},
                   {"kind": "mft", "text": "boring film", "label": 1}]})
    return summarize(FinishedRun(
        point=point, model=hand_model.model, text_model=hand_model,
        fit=Fit(history=history, fit_seconds=2.0, train_samples_per_s=50.0),
        evaluation=evaluation, history=history,
        vector_stats={"oov_tokens": 5, "tokens": 20, "empty_docs": 0},
        seconds={"train": 3.0}, preprocess_seconds=4.0, reviews_parquet=reviews))


def test_report_traces_the_confident_mistakes(summarized):
    mistakes = summarized.frames["confident_mistakes.csv"]
    # d: 0.95 for a negative review, b: 0.1 for a positive one.
    assert mistakes.id.tolist() == ["d", "b"]
    b = mistakes.iloc[1]
    # b: 12 tokens, Sadly and "," (twice) OOV, 9 known at maxlen 8 (post): awful is cut.
    assert (b.tokens, b.oov_tokens, b.truncated_tokens) == (12, 3, 1)
    assert b.strongest_words.split()[0] == "awful" and b.lost_words == "awful"
    assert mistakes.lost_sentiment.tolist() == [False, True]
    assert {"tokens", "oov_tokens", "truncated_tokens", "strongest_words", "lost_words",
            "lost_sentiment"} <= set(mistakes.columns)
    lost = mistakes.lost_sentiment.mean()
    assert summarized.metrics["mistakes_lost_sentiment_share"] == lost
    assert summarized.metrics["checks_mft"] == 0.5
    assert summarized.frames["checks_failures.csv"].text.tolist() == ["boring film"]


def test_report_html_is_one_self_contained_page(summarized, tmp_path):
    text = summarized.texts["report.html"]
    page = check_page(text)
    assert len([t for t, _ in page.tags if t == "img"]) == 3  # the three figures
    seen = [a for t, a in page.tags if t == "span" and a.get("class") == "tok seen"]
    assert seen and all("data-attr" in a for a in seen)
    struck = [a for t, a in page.tags if t == "span" and a.get("class") in ("tok oov",
                                                                              "tok truncated")]
    assert struck  # "Sadly", "," ... never seen
    for needle in ("Confident mistakes", "Behavioural checks", "boring film", "model.cell",
                   "test_accuracy", "Example sentences", "never trained"):
        assert needle in text, needle
    # The example sentences unrolled: "great film" and "not great", a point per token read.
    assert text.count('<figure class="unrolled">') == 2
    assert len([a for t, a in page.tags if t == "circle"]) == 4
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (.ci/run installs it): the page is not opened "
                    "in a real browser")
    path = tmp_path / "report.html"
    path.write_text(text)
    dom = chromium(tmp_path, "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="tok seen"') == text.count('class="tok seen"')
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", path.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 10_000


def test_model_card_fields(summarized):
    card = summarized.texts["model_card.md"]
    for heading in ("# Model card: hand", "## Data", "## Preprocessing", "## Model and training",
                    "## Metrics", "## Known failure patterns", "## Limitations"):
        assert heading in card, heading
    for fact in ("maxlen 8", "OOV rate 0.2500", "Sizes: train 0, val 0, test 4",
                 "| test | 0.5000 |", "English movie reviews", "mft 0.5000",
                 "plain sentences given the wrong label", '"boring film"',
                 "NLTK `treebank`", "SimpleRNN(50)", "Loss: at the last step only"):
        assert fact in card, fact


def test_a_run_without_mistakes_or_checks_still_reports(tmp_path, hand_model):
    from rnnflow.insight.report import FinishedRun, summarize
    from rnnflow.network.evaluate import Evaluation
    from rnnflow.network.train import Fit

    reviews = tmp_path / "reviews.parquet"
    pd.DataFrame({"id": ["a"], "split": ["test"], "text": ["great"]}).to_parquet(reviews)
    right = pd.DataFrame({"id": ["a"], "label": [1], "probability": [0.9]})
    report = summarize(FinishedRun(
        point=Point(name="e", evaluate={"sentences": [], "checks": "none"}),
        model=hand_model.model, text_model=hand_model,
        fit=Fit(history={}, fit_seconds=1.0, train_samples_per_s=1.0),
        evaluation=Evaluation({"test_accuracy": 1.0}, {s: np.array([[0, 0], [0, 1]])
                                                       for s in ("val", "test")},
                              {"val": right, "test": right}),
        history={}, vector_stats={"oov_tokens": 0, "tokens": 1, "empty_docs": 0},
        seconds={"train": 1.0}, preprocess_seconds=1.0, reviews_parquet=reviews))
    assert not any(k.startswith(("checks_", "mistakes_")) for k in report.metrics)
    assert report.frames["confident_mistakes.csv"].empty
    assert "made no mistakes" in report.texts["report.html"]
    assert "No wrong test predictions were listed" in report.texts["model_card.md"]
    assert "No behavioural checks were run" in report.texts["model_card.md"]


@pytest.mark.parametrize(("settings", "fact"), [
    ({"embedding": {"source": "gensim"}}, "gensim-data `word2vec-google-news-300`"),
    ({"embedding": {"source": "train"}}, "gensim Word2Vec trained on the train split"),
    ({"embedding": {"source": "onehot", "max_tokens": 500}}, "one-hot over the 500 most"),
    ({"embedding": {"source": "file", "url": "v.bin"}}, "word2vec file `v.bin`"),
    ({"pad": {"maxlen": None}, "model": {"return_sequences": False}}, "not fixed (maxlen null)"),
    ({"pad": {"bucket": True}, "model": {"return_sequences": False}}, "bucketed by length"),
])
def test_model_card_describes_every_input_setting(settings, fact):
    from rnnflow.config import Point
    from rnnflow.insight.findings import Findings
    from rnnflow.insight.model_card import model_card

    params = Point.model_validate(settings).flat()
    card = model_card(Findings(params=params, metrics={}, history={}, split_sizes={"test": 1},
                               mistakes=pd.DataFrame(), failures=pd.DataFrame()))
    assert fact in card


def test_two_named_classes_are_attributed_by_name(hand_model, tmp_path):
    """A binary model of other labels explains the probability of its class 1 by name, in the
    terminal and in the page's legend, and keeps its names through save and load."""
    from rnnflow.network.predict import load_text_model, save_text_model

    named = TextModel(hand_model.model, hand_model.vocab, hand_model.tokenize, hand_model.pad,
                      binary_names=["ham", "spam"])
    files = save_text_model(named, tmp_path)
    loaded = load_text_model({k: str(v) for k, v in files.items()})
    assert loaded.class_names == ["ham", "spam"] and hand_model.class_names == ["neg", "pos"]
    great, awful, unknown = explain(loaded, ["great film", "awful film", "zzz"])
    assert (great.class_name, great.predicted) == ("spam", "spam")
    assert (awful.class_name, awful.predicted) == ("spam", "ham")
    assert unknown.predicted == "no evidence"
    assert terminal(awful, color=False).startswith(f"{awful.probability:.3f} spam (predicted ham)")
    page = explain_page([great, awful], "t")
    assert "attribution to the probability of &lsquo;spam&rsquo;" in page
    assert "positive" not in page


# --- the network unrolled ------------------------------------------------------------------------
def test_unrolled_the_hand_model_reads_its_running_sum(hand_model):
    """The hand model's output is sigmoid(the sum of the words' scores): after each token,
    sigmoid(the sum so far); "not" pulls it down, and the last value is the prediction."""
    (e,) = explain(hand_model, ["great , not great"], unrolled=True, loss_steps="last")
    assert e.read == ["great", "not", "great"]  # the comma is not in the vocabulary
    expected = 1 / (1 + np.exp(-np.cumsum([2.0, -3.0, 2.0])))
    np.testing.assert_allclose(e.unrolled, expected, rtol=1e-5)
    assert e.unrolled[-1] == pytest.approx(e.probability, abs=1e-6)
    plain = terminal(e, color=False)
    assert "never trained" in plain and "step" in plain
    assert [line.split()[1] for line in plain.splitlines()[-3:]] == e.read
    page = explain_page([e], "t")
    assert page.count("<circle") == 3 and "<script" not in page
    (plain_one,) = explain(hand_model, ["great film"])  # not asked: no view
    assert plain_one.unrolled is None and "unrolled" not in terminal(plain_one, False)


@pytest.mark.parametrize(("maxlen", "mask", "n_classes"), [
    (12, False, 2),  # the book's Flatten network, post-padded and unmasked
    (None, True, 2),  # bucketed: any length, masked
    (12, True, 3),  # a loss_steps: all network of three classes
])
def test_a_three_token_text_unrolls_to_three_rows_ending_at_the_prediction(
        maxlen, mask, n_classes):
    rng = np.random.default_rng(5)
    vocab = ["good", "bad", "not", "film"]
    table = rng.normal(size=(5, 4)).astype("float32")
    table[0] = 0
    cfg = ModelConfig(num_neurons=3, return_sequences=maxlen is not None and not mask)
    model = build_model(cfg, table, maxlen, mask=mask, n_classes=n_classes, seed=1)
    classes = ["a", "b", "c"] if n_classes == 3 else None
    text_model = TextModel(model, vocab, TokenizeConfig(), PadConfig(maxlen=maxlen),
                           classes=classes)
    (e,) = explain(text_model, ["not good film"], unrolled=True, loss_steps="all")
    assert e.read == ["not", "good", "film"] and len(e.unrolled) == 3
    predicted = text_model.predict(["not good film"]).probability.iloc[0]
    assert e.unrolled[-1] == pytest.approx(predicted, abs=1e-6)
    assert "the loss scored" in terminal(e, color=False)
