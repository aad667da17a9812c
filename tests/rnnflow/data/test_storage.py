"""Where stage outputs go: ./data, or RNNFLOW_DATA_DIR (a path every Dask worker shares)."""

import pytest

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


def _fixed_rows_file(path, rows: int, width: int, row_group_size: int | None = None):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = rng.integers(0, 1000, (rows, width), dtype=np.int32)
    label = rng.integers(0, 2, rows).astype(np.int8)
    table = pa.table({"id": [f"r{i}" for i in range(rows)], "label": label,
                      "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), width)})
    pq.write_table(table, path, row_group_size=row_group_size)
    return x, label



@pytest.mark.parametrize(("rows", "batch_rows", "row_group_size", "first_row"), [
    (2500, 1024, None, 0),  # the stage files' shape: one row group, several batches
    (2500, 7, 600, 0),      # batches that straddle row groups
    (5, 1024, None, 1),     # one batch, a zero row in front (the vector table's padding row)
    (0, 1024, None, 1),     # an empty split
])
def test_read_fixed_rows_equals_a_whole_read(tmp_path, rows, batch_rows, row_group_size,
                                             first_row):
    import numpy as np

    from rnnflow.data.storage import read_fixed_rows

    path = tmp_path / "split.parquet"
    x, label = _fixed_rows_file(path, rows, 9, row_group_size)
    got, rest = read_fixed_rows(path, "x", np.int32, others=("label", "id"),
                                first_row=first_row, batch_rows=batch_rows)
    assert got.dtype == np.int32 and got.shape == (first_row + rows, 9)
    np.testing.assert_array_equal(got[:first_row], 0)
    np.testing.assert_array_equal(got[first_row:], x)
    np.testing.assert_array_equal(rest["label"], label)
    assert list(rest["id"]) == [f"r{i}" for i in range(rows)]


def test_load_sequences_streams_whole_reviews_across_batches(tmp_path):
    """maxlen null: ragged rows read a batch at a time give the rows written, in order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rnnflow.data.pad import PadLayout, load_sequences

    rng = np.random.default_rng(1)
    lists = [list(rng.integers(1, 50, rng.integers(0, 30))) for _ in range(2600)]
    labels = rng.integers(0, 2, len(lists)).astype(np.int8)
    pq.write_table(pa.table({"label": labels, "x": pa.array(lists, pa.list_(pa.int32()))}),
                   tmp_path / "train.parquet")
    seqs, y = load_sequences(tmp_path / "train.parquet", PadLayout(None, "post", True))
    expected = type(seqs).from_lists(lists, "post", None)
    np.testing.assert_array_equal(seqs.offsets, expected.offsets)
    np.testing.assert_array_equal(seqs.values, expected.values)
    assert seqs.values.dtype == np.int32 and y.dtype == np.float32
    np.testing.assert_array_equal(y, labels)


def test_a_dead_writers_temporary_folder_is_swept_and_a_live_ones_kept(tmp_path):
    """What a stage killed mid-write leaves (`.tmp-<key>-<pid>-*`) is removed before the next
    writer starts; a writer that is still at work keeps its folder. (End to end, with real
    kills: tests/flows/test_processes.py, whose sweeping run is itself killed, so coverage
    never sees it there.)"""
    import os
    import subprocess
    import sys

    from rnnflow.data.storage import sweep_abandoned

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f".tmp-k1-{int(gone.stdout)}-abc"
    alive = tmp_path / f".tmp-k2-{os.getpid()}-def"
    unnamed = tmp_path / ".tmp-download-x"  # no pid where one would be: not this sweep's
    for folder in (dead, alive, unnamed):
        folder.mkdir()
        (folder / "part").write_text("half")
    sweep_abandoned(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, unnamed.name])
