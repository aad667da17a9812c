"""Labels beyond two classes: class names, dropped rows, given val splits, bad label sets."""

import json

import pandas as pd
import pytest

from rnnflow.config import DatasetConfig
from rnnflow.data.reviews import DatasetError, read_labels, read_reviews
from tests.helpers import synthetic_reviews, synthetic_table, write_tar

CSV = dict(source="csv", text_column="text", label_column="label")


def _read(path, **cfg):
    out = read_reviews(path, "digest", DatasetConfig(**cfg))
    return pd.read_parquet(out.file("reviews.parquet")), read_labels(out)


def test_word_labels_become_sorted_classes_and_empty_rows_are_dropped(project, tmp_path,
                                                                      caplog):
    classes = ["rabbia", "gioia", "paura"]
    path = synthetic_table(tmp_path / "t.csv", classes, 6, empty_labels=3)
    frame, labels = _read(path, **CSV)
    assert labels.classes == sorted(classes) and not labels.binary
    assert labels.dropped_rows == 4  # three empty labels, one empty text
    assert "dropped 4 rows" in caplog.text
    source = pd.read_csv(path, keep_default_na=False)
    kept = source[(source.label != "") & (source.text.str.strip() != "")]
    assert len(frame) == len(kept)
    # Each row's label indexes its class name; the texts are unchanged, accents included.
    by_text = dict(zip(frame.text, frame.label, strict=False))
    for row in kept.itertuples():
        assert labels.classes[by_text[row.text]] == row.label
    assert frame.text.str.contains("felicità").any()


def test_a_given_val_split_is_used_as_is_and_dev_means_val(project, tmp_path):
    path = synthetic_table(tmp_path / "t.csv", ["gioia", "paura", "rabbia"], 5)
    frame, _ = _read(path, **CSV, validation_split=0.5)
    source = pd.read_csv(path, keep_default_na=False)
    assert (frame.split == "val").sum() == (source.split == "dev").sum()
    assert (frame.split == "train").sum() == ((source.split == "train")
                                              & (source.label != "")
                                              & (source.text.str.strip() != "")).sum()


def test_integer_labels_sort_as_numbers(project, tmp_path):
    labels = [10, 2, 1] * 10
    table = pd.DataFrame({"text": [f"word{i % 3} text" for i in range(30)], "label": labels})
    table.to_csv(tmp_path / "t.csv", index=False)
    frame, info = _read(tmp_path / "t.csv", **CSV, test_split=0.3)
    assert info.classes == ["1", "2", "10"]
    assert set(frame.label) == {0, 1, 2}


def test_binary_forms_keep_sentiment(project, tmp_path):
    table = pd.DataFrame({"text": [f"t {i}" for i in range(20)], "label": ["pos", "neg"] * 10})
    table.to_csv(tmp_path / "t.csv", index=False)
    frame, info = _read(tmp_path / "t.csv", **CSV)
    assert info.sentiment and info.dropped_rows == 0
    assert frame.label.dtype.kind == "i" and set(frame.label) == {0, 1}


def _rows(tmp_path, rows):
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(tmp_path / "t.csv",
                                                                 index=False)
    return tmp_path / "t.csv"


@pytest.mark.parametrize("case, match", [
    ("one_class", "one class only"),
    ("unseen_in_test", "class 'c' is in the test split but not in train"),
    ("one_train_row", "class 'c' has 1 train review"),
    ("all_empty", "empty in every row"),
])
def test_bad_label_sets_are_clear_errors(project, tmp_path, case, match):
    base = [(f"a {i}", "a", "train") for i in range(4)] + [(f"b {i}", "b", "train")
                                                         for i in range(4)]
    base += [("a v", "a", "val"), ("b v", "b", "val"), ("a t", "a", "test"), ("b t", "b", "test")]
    rows = {
        "one_class": [(t, "a", s) for t, _, s in base],
        "unseen_in_test": [*base, ("c t", "c", "test")],
        "one_train_row": [*base, ("c 1", "c", "train"), ("c t", "c", "test")],
        "all_empty": [(t, "", s) for t, _, s in base],
    }[case]
    with pytest.raises(DatasetError, match=match):
        _read(_rows(tmp_path, rows), **CSV)


def test_imdb_ratings_are_eight_classes_from_the_file_names(project, tmp_path):
    archive = write_tar(tmp_path / "r.tar.gz", synthetic_reviews(40))
    frame, info = _read(archive, label="rating")
    assert info.classes == [str(r) for r in sorted(frame.rating.unique())]
    assert len(info.classes) == 8
    for row in frame.itertuples():
        assert info.classes[row.label] == str(row.rating) == row.id.rsplit("_", 1)[1]
    # The class names travel with the stage.
    out = read_reviews(archive, "digest", DatasetConfig(label="rating"))
    assert json.loads(out.file("labels.json").read_text())["classes"] == info.classes
