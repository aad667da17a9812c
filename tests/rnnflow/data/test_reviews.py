import io
import tarfile

import pandas as pd
import pytest

from rnnflow.config import DatasetConfig
from rnnflow.data.download import download_dataset
from rnnflow.data.reviews import DatasetError, Labels, read_reviews
from tests.helpers import synthetic_reviews, write_folder, write_tar


def _read(path, **cfg):
    out = read_reviews(path, "digest", DatasetConfig(**cfg))
    return pd.read_parquet(out.file("reviews.parquet"))


def test_archive_becomes_split_reviews(project, tiny_archive):
    frame = _read(tiny_archive)
    assert list(frame.columns) == ["id", "split", "label", "rating", "text"]
    counts = frame.split.value_counts().to_dict()
    assert counts == {"test": 40, "train": 32, "val": 8}  # last 20% of shuffled train is val
    assert frame.id.is_unique and set(frame.label) == {0, 1}
    pos = frame[frame.id.str.contains("/pos/")]
    assert (pos.label == 1).all() and (pos.rating >= 7).all()
    assert frame.text.str.contains("<br />").any()  # kept verbatim


def test_split_depends_on_the_seed_only(project, tiny_archive):
    a = _read(tiny_archive, seed=1)
    b = _read(tiny_archive, seed=1)
    c = _read(tiny_archive, seed=2)
    val = lambda f: set(f[f.split == "val"].id)  # noqa: E731
    assert val(a) == val(b) and val(a) != val(c)


def test_folder_reads_like_the_archive(project, tiny_archive, tmp_path):
    with tarfile.open(tiny_archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    a, b = _read(tiny_archive), _read(tmp_path / "x")
    pd.testing.assert_frame_equal(a, b)


def test_limit_keeps_both_classes(project, tiny_archive):
    frame = _read(tiny_archive, limit=10)
    assert (frame.split != "test").sum() == 10 and (frame.split == "test").sum() == 10
    assert frame[frame.split == "test"].label.value_counts().to_dict() == {0: 5, 1: 5}


def _tar_with(tmp_path, member: tarfile.TarInfo, data: bytes = b"x"):
    path = write_tar(tmp_path / "evil.tar.gz", synthetic_reviews(3))
    raw = io.BytesIO()
    with tarfile.open(path) as src, tarfile.open(fileobj=raw, mode="w:gz") as dst:
        dst.addfile(member, io.BytesIO(data) if member.isfile() else None)
        for m in src:
            dst.addfile(m, src.extractfile(m))
    path.write_bytes(raw.getvalue())
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_unsafe_members_are_refused(project, tmp_path, kind):
    if kind == "symlink":
        member = tarfile.TarInfo("aclImdb/train/pos/99_9.txt")
        member.type, member.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
    else:
        name = "../../evil.txt" if kind == "dotdot" else "/tmp/evil.txt"
        member = tarfile.TarInfo(name)
        member.size = 1
    with pytest.raises(DatasetError, match="unsafe"):
        _read(_tar_with(tmp_path, member))
    assert not list((project / "data").rglob("*.parquet"))


def test_wrong_layout_says_what_was_expected(project, tmp_path):
    path = write_tar(tmp_path / "other.tar.gz", {"reviews/1.txt": "hello"})
    with pytest.raises(DatasetError, match=r"aclImdb/\{train,test\}"):
        _read(path)


def test_corrupt_archive(project, tmp_path):
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08 definitely not gzip")
    with pytest.raises(DatasetError, match="not a readable"):
        _read(path)


@pytest.mark.parametrize("form", ["archive", "folder"])
def test_invalid_utf8_is_decoded_as_cp1252(project, tmp_path, caplog, form):
    files: dict[str, str | bytes] = dict(synthetic_reviews(10))
    files["aclImdb/train/pos/77_8.txt"] = "Café crème, “superb”".encode("cp1252")
    files["aclImdb/train/pos/78_9.txt"] = b"na\xefve \x81 bytes"  # 0x81: not in cp1252
    source = (write_tar(tmp_path / "latin.tar.gz", files) if form == "archive"
              else write_folder(tmp_path / "latin", files))
    frame = _read(source)
    assert frame[frame.id == "train/pos/77_8"].text.item() == "Café crème, “superb”"
    assert frame[frame.id == "train/pos/78_9"].text.item() == "naïve \ufffd bytes"
    assert "2 reviews were not valid UTF-8 and were decoded as cp1252" in caplog.text


def test_folder_without_reviews_says_what_was_expected(project, tmp_path):
    folder = write_folder(tmp_path / "other", {"reviews/1.txt": "hello", "README": "x"})
    path, digest = download_dataset(str(folder))
    with pytest.raises(DatasetError, match=r"no reviews found\. Expected the aclImdb layout: "
                                           r"aclImdb/\{train,test\}"):
        read_reviews(path, digest, DatasetConfig())


def test_reuses_a_finished_stage(project, tiny_archive):
    cfg = DatasetConfig()
    first = read_reviews(tiny_archive, "d", cfg)
    mtime = first.file("reviews.parquet").stat().st_mtime_ns
    again = read_reviews(tiny_archive, "d", cfg)
    assert again == first and again.file("reviews.parquet").stat().st_mtime_ns == mtime
    assert read_reviews(tiny_archive, "d", DatasetConfig(seed=7)).key != first.key


def test_truncated_archive(project, tiny_archive, tmp_path):
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(tiny_archive.read_bytes()[: tiny_archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match="not a readable"):
        _read(path)


def test_single_class_dataset_is_refused(project, tmp_path):
    files = {k: v for k, v in synthetic_reviews(10).items() if "/pos/" in k}
    with pytest.raises(DatasetError, match="no 'neg' reviews"):
        _read(write_tar(tmp_path / "pos.tar.gz", files))


def test_missing_test_split_is_refused(project, tmp_path):
    files = {k: v for k, v in synthetic_reviews(10).items() if "/train/" in k}
    with pytest.raises(DatasetError, match="'test' split"):
        _read(write_tar(tmp_path / "train.tar.gz", files))


def test_empty_review_is_kept_and_logged(project, tmp_path, caplog):
    files = dict(synthetic_reviews(10))
    files["aclImdb/test/neg/55_1.txt"] = "   "
    frame = _read(write_tar(tmp_path / "e.tar.gz", files))
    assert frame[frame.id == "test/neg/55_1"].text.item().strip() == ""
    assert "1 reviews are empty" in caplog.text


def _table(tmp_path, kind, labels, **columns):
    n = len(labels)
    frame = pd.DataFrame({"review": [f"text number {i} good" if i % 2 else f"bad {i}"
                                     for i in range(n)], "sentiment": labels, **columns})
    path = tmp_path / f"t.{kind}"
    frame.to_csv(path, index=False) if kind == "csv" else frame.to_parquet(path)
    return path


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("labels", [["pos", "neg"], ["positive", "negative"], [1, 0],
                                    ["Positive", "NEG"]])
def test_tables_with_string_or_int_labels(project, tmp_path, kind, labels):
    path = _table(tmp_path, kind, labels * 20)
    frame = _read(path, source=kind, text_column="review", label_column="sentiment")
    assert set(frame.split) == {"train", "val", "test"} and len(frame) == 40
    first = frame[frame.id == "row-0"]
    assert first.label.item() == (1 if str(labels[0]).lower() in ("pos", "positive", "1") else 0)


def test_table_split_column_is_used(project, tmp_path):
    path = _table(tmp_path, "csv", [1, 0] * 20, split=["train"] * 30 + ["test"] * 10)
    frame = _read(path, source="csv", text_column="review", label_column="sentiment")
    assert (frame.split == "test").sum() == 10


def test_table_missing_column_names_what_exists(project, tmp_path):
    path = _table(tmp_path, "csv", [1, 0] * 5)
    with pytest.raises(DatasetError, match="no column 'text'.*review, sentiment"):
        _read(path, source="csv", label_column="sentiment")


def test_table_labels_beyond_the_binary_forms_are_classes(project, tmp_path):
    # Labels that are not all binary forms are classes of their own, each distinct value one.
    path = _table(tmp_path, "csv", [1, 0, 3, "meh"] * 5)
    frame = _read(path, source="csv", text_column="review", label_column="sentiment")
    assert sorted(frame.label.unique()) == [0, 1, 2, 3]


@pytest.mark.parametrize("batch_size", [1024, 7])  # one batch, and many
def test_texts_by_id_reads_what_a_whole_read_has(project, tiny_archive, batch_size):
    from rnnflow.data.reviews import texts_by_id

    path = read_reviews(tiny_archive, "digest", DatasetConfig()).file("reviews.parquet")
    frame = pd.read_parquet(path)
    ids = [*frame.id.iloc[[3, 41, 70, 3]], "train/pos/not-there"]  # a repeat, a missing id
    got = texts_by_id(path, ids, batch_size=batch_size)
    full = dict(zip(frame.id, frame.text, strict=True))
    assert got == {i: full[i] for i in ids[:3]}
    short = texts_by_id(path, ids, excerpt=12, batch_size=batch_size)
    assert short == {i: full[i][:12] for i in ids[:3]}
    assert texts_by_id(path, []) == {}


@pytest.mark.parametrize("classes, names", [
    (["neg", "pos"], None),  # the sentiment pair: answered in words
    (["no", "yes"], ["no", "yes"]),
    (["a", "b", "c"], None),  # more than two: the model's `classes`
])
def test_a_two_class_model_answers_with_its_own_names_unless_sentiment(classes, names):
    assert Labels(classes).binary_names == names
