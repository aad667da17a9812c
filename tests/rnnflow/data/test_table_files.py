"""A csv/parquet corpus as the user has it: separate train/val/test files (dataset.url as a
mapping), and the published forms pandas misreads by default (no header row, `;` between the
fields, `'` around a field), whose errors name the read_options that read them."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from rnnflow.config import DatasetConfig
from rnnflow.data.download import download_dataset
from rnnflow.data.reviews import DatasetError, read_reviews
from tests.helpers import REPO

GNAD = REPO.parent / "shared" / "data" / "gnad10k_test.csv"
# 10kGNAD as published: label;text, no header, a text holding `;` or starting with a quote
# wrapped in `'`.
GNAD_LINES = [
    "Sport;Die Mannschaft gewann am Sonntag das Spiel in Wien mit zwei zu eins.",
    "Web;'Ein neues Telefon kommt; es hat eine bessere Kamera und mehr Speicher als bisher.'",
    "Sport;Der Trainer lobte nach dem Sieg die Abwehr und den Torhüter der Gäste.",
    "Wirtschaft;'Die Firma meldet Verluste; die Aktie fällt um fünf Prozent an der Börse.'",
    "Web;Die App wird künftig auch ohne Netz funktionieren, schreibt der Hersteller.",
    "Wirtschaft;Der Konzern streicht Stellen und schließt zwei Werke in Österreich.",
] * 4


def _gnad_like(tmp_path: Path) -> Path:
    path = tmp_path / "gnad_like.csv"
    path.write_text("\n".join(GNAD_LINES) + "\n", encoding="utf-8")
    return path


def _options_in(message: str) -> dict:
    """The read_options the hint gives, parsed as the params file would parse them."""
    return yaml.safe_load(message.split("dataset.read_options: ", 1)[1])


def _read(source, **cfg):
    out = read_reviews(source, "digest", DatasetConfig(source="csv", **cfg))
    return pd.read_parquet(out.file("reviews.parquet"))


@pytest.mark.parametrize("given", [{}, {"sep": ";"}, {"sep": ";", "quotechar": "'"}])
def test_a_headerless_semicolon_table_gets_the_options_that_read_it(project, tmp_path, given):
    """Read as a default csv, with the separator only, or without header/names: each error
    says what is wrong, and the options it names read the file."""
    path = _gnad_like(tmp_path)
    with pytest.raises(DatasetError) as err:
        _read(path, read_options=given)
    message = str(err.value)
    assert "looks like data, not a header" in message
    if "quotechar" not in given:
        assert "quote char is \"'\"" in message
    if not given:
        assert 'separator is ";"' in message
    options = _options_in(message)
    assert options == {"sep": ";", "quotechar": "'", "header": None, "names": ["label", "text"]}
    frame = _read(path, read_options=options)
    assert len(frame) == len(GNAD_LINES)
    assert frame.text.str.contains("; es hat eine bessere Kamera").any()  # one field, quoted


def test_the_hint_names_the_columns_the_params_file_uses(project, tmp_path):
    path = _gnad_like(tmp_path)
    with pytest.raises(DatasetError) as err:
        _read(path, text_column="body", label_column="topic")
    assert _options_in(str(err.value))["names"] == ["topic", "body"]


def test_a_tab_separated_file_read_as_csv_is_told_its_separator(project, tmp_path):
    path = tmp_path / "t.tsv"
    rows = [f"{'pos' if i % 2 else 'neg'}\tthe text, number {i}, with commas" for i in range(20)]
    path.write_text("label\ttext\n" + "\n".join(rows) + "\n")
    with pytest.raises(DatasetError) as err:
        _read(path)
    assert 'separator is "\\t"' in str(err.value)
    options = _options_in(str(err.value))
    assert options == {"sep": "\t"}  # the header row is a header: only the separator changes
    assert len(_read(path, read_options=options)) == 20


def test_a_real_header_without_the_columns_points_at_the_column_keys(project, tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"review": ["good film"] * 6 + ["bad film"] * 6,
                  "stars": [1] * 6 + [0] * 6}).to_csv(path, index=False)
    with pytest.raises(DatasetError) as err:
        _read(path)
    assert "no column 'text'" in str(err.value) and "review, stars" in str(err.value)
    assert "read_options" not in str(err.value)  # dataset.text_column is the fix here


def test_the_published_gnad_file_gets_the_options_that_read_it(project):
    if not GNAD.is_file():
        pytest.skip(f"{GNAD} is not present (the shared 10kGNAD test file)")
    with pytest.raises(DatasetError) as err:
        _read(GNAD)
    assert "Expected" in str(err.value)  # pandas' own reason is kept
    options = _options_in(str(err.value))
    frame = _read(GNAD, read_options=options)
    assert frame.label.nunique() == 9 and len(frame) == 1028


def _split_files(tmp_path: Path, roles=("train", "val", "test")) -> dict[str, str]:
    files = {}
    for role in roles:
        n = {"train": 30, "val": 8, "test": 10}[role]
        path = tmp_path / f"{role}.tsv"
        pd.DataFrame({"text": [f"{role} text {i} {'great' if i % 2 else 'awful'}"
                               for i in range(n)],
                      "label": ["pos" if i % 2 else "neg" for i in range(n)]}).to_csv(
            path, sep="\t", index=False)
        files[role] = str(path)
    return files


def test_separate_files_keep_their_roles(project, tmp_path):
    files = _split_files(tmp_path)
    paths, digest = download_dataset(files)
    frame = _read(paths, read_options={"sep": "\t"})
    for role in ("train", "val", "test"):
        rows = frame[frame.split == role]
        assert len(rows) == {"train": 30, "val": 8, "test": 10}[role]
        assert rows.text.str.startswith(role).all()
    assert frame.id.is_unique


def test_without_a_val_file_val_is_cut_from_train(project, tmp_path):
    files = _split_files(tmp_path, ("train", "test"))
    frame = _read(download_dataset(files)[0], read_options={"sep": "\t"})
    assert (frame.split == "test").sum() == 10
    assert set(frame[frame.split == "val"].text.str.split().str[0]) == {"train"}
    assert (frame.split != "test").sum() == 30


def test_every_file_is_part_of_the_digest(project, tmp_path):
    files = _split_files(tmp_path)
    before = download_dataset(files)[1]
    Path(files["val"]).write_text("text\tlabel\nother text\tpos\n")
    assert download_dataset(files)[1] != before


def test_errors_name_the_role_of_the_file(project, tmp_path):
    files = _split_files(tmp_path)
    pd.DataFrame({"review": ["x"], "label": ["pos"]}).to_csv(files["test"], sep="\t",
                                                             index=False)
    with pytest.raises(DatasetError, match=r"test\.tsv \(dataset\.url\.test\): no column 'text'"):
        _read(download_dataset(files)[0], read_options={"sep": "\t"})
    with pytest.raises(FileNotFoundError, match=r"dataset\.url\.val"):
        download_dataset({**files, "val": str(tmp_path / "absent.tsv")})
