"""Where stage outputs go: ./data, or RNNFLOW_DATA_DIR (a path every Dask worker shares)."""

from rnnflow.config import DatasetConfig
from rnnflow.data.reviews import read_reviews
from rnnflow.data.storage import data_dir


def test_stages_go_under_data_by_default(project, tiny_archive):
    out = read_reviews(tiny_archive, "d", DatasetConfig())
    assert data_dir() == project / "data"
    assert out.file("reviews.parquet").is_file()
    assert out.path.is_relative_to(project / "data" / "reviews")


def test_rnnflow_data_dir_moves_every_stage(project, tiny_archive, tmp_path_factory,
                                             monkeypatch):
    shared = tmp_path_factory.mktemp("shared") / "rnnflow-data"
    monkeypatch.setenv("RNNFLOW_DATA_DIR", str(shared))
    out = read_reviews(tiny_archive, "d", DatasetConfig())
    assert data_dir() == shared
    assert out.path.is_relative_to(shared / "reviews") and out.done()
    assert not (project / "data").exists()
