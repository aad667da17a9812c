import pandas as pd
import pytest

from rnnflow.config import DatasetConfig, TokenizeConfig
from rnnflow.data import tokens as tokens_mod
from rnnflow.data.reviews import read_reviews
from rnnflow.data.tokens import make_tokenizer, tokenize_reviews


def test_treebank_keeps_case_and_html_like_the_book():
    tok = make_tokenizer(TokenizeConfig())
    assert tok("It wasn't Good.<br />Really") == [
        "It", "was", "n't", "Good.", "<", "br", "/", ">", "Really"]


def test_options_lowercase_and_strip_html():
    tok = make_tokenizer(TokenizeConfig(lowercase=True, strip_html=True))
    assert tok("Great<br /><br />FUN") == ["great", "fun"]


@pytest.mark.parametrize("name", ["casual", "wordpunct"])
def test_other_tokenizers(name):
    out = make_tokenizer(TokenizeConfig(tokenizer=name))("Loved it :) don't")
    expected = {"casual": ["Loved", "it", ":)", "don't"],
                "wordpunct": ["Loved", "it", ":)", "don", "'", "t"]}[name]
    assert out == expected


def _tokens(archive, **cfg):
    reviews = read_reviews(archive, "d", DatasetConfig())
    out = tokenize_reviews(reviews, TokenizeConfig(**cfg))
    return pd.read_parquet(out.file("tokens.parquet")), reviews


def test_tokens_parquet_matches_reviews(project, tiny_archive):
    frame, reviews = _tokens(tiny_archive)
    source = pd.read_parquet(reviews.file("reviews.parquet"))
    assert list(frame.columns) == ["id", "split", "label", "tokens"]
    assert list(frame.id) == list(source.id)
    tok = make_tokenizer(TokenizeConfig())
    assert list(frame.tokens.iloc[0]) == tok(source.text.iloc[0])


def test_worker_processes_give_the_same_tokens(project, tiny_archive, monkeypatch):
    serial, _ = _tokens(tiny_archive)
    monkeypatch.setattr(tokens_mod, "_PARALLEL_MIN_DOCS", 1)
    monkeypatch.setattr(tokens_mod, "_BATCH", 7)
    monkeypatch.setattr(tokens_mod, "VERSION", tokens_mod.VERSION + 100)  # a fresh content key
    monkeypatch.setattr(tokens_mod.os, "cpu_count", lambda: 2)
    parallel, _ = _tokens(tiny_archive)
    pd.testing.assert_frame_equal(serial, parallel)


def test_workers_started_ahead_are_adopted(project, tiny_archive, monkeypatch):
    serial, _ = _tokens(tiny_archive)
    monkeypatch.setattr(tokens_mod, "_PARALLEL_MIN_DOCS", 1)
    monkeypatch.setattr(tokens_mod, "_BATCH", 5)
    monkeypatch.setattr(tokens_mod, "VERSION", tokens_mod.VERSION + 200)
    monkeypatch.setattr(tokens_mod.os, "cpu_count", lambda: 2)
    tokens_mod.start_workers()
    started = tokens_mod._STARTED
    assert started is not None and started[0] == 2
    parallel, _ = _tokens(tiny_archive)
    assert tokens_mod._STARTED is None  # taken over by tokenize_reviews, and shut down there
    with pytest.raises(RuntimeError):  # a pool that was shut down takes no more work
        started[1].submit(int)
    pd.testing.assert_frame_equal(serial, parallel)
