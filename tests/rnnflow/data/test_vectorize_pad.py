import numpy as np
import pyarrow as pa
import pytest

from rnnflow.config import PadConfig
from rnnflow.data.pad import pad_ids
from rnnflow.data.vectorize import ids_for


def test_ids_drop_oov_tokens_and_count_them():
    tokens = pa.array([["a", "x", "b"], ["x"], [], ["b", "b"]], type=pa.list_(pa.string()))
    ids, seen, dropped = ids_for(tokens, pa.array(["a", "b"]))
    assert ids.to_pylist() == [[1, 2], [], [], [2, 2]]
    assert (seen, dropped) == (6, 2)
    assert ids.type.value_type == pa.int32()


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_pad_matches_keras(padding, truncating):
    from keras.utils import pad_sequences as keras_pad

    rng = np.random.default_rng(0)
    lists = [list(rng.integers(1, 99, size=n)) for n in (0, 1, 5, 7, 8, 20)]
    ours = pad_ids(pa.array(lists, type=pa.list_(pa.int32())),
                   PadConfig(maxlen=7, padding=padding, truncating=truncating))
    expected = keras_pad(lists, maxlen=7, padding=padding, truncating=truncating, dtype="int32")
    np.testing.assert_array_equal(ours, expected)
    assert ours.dtype == np.int32


def test_low_coverage_and_all_padding_reviews_are_reported(project, tiny_archive, tmp_path,
                                                           caplog):
    from gensim.models import KeyedVectors

    from rnnflow.config import DatasetConfig, EmbeddingConfig, TokenizeConfig
    from rnnflow.data.embeddings import build_embeddings
    from rnnflow.data.reviews import read_reviews
    from rnnflow.data.tokens import tokenize_reviews
    from rnnflow.data.vectorize import vectorize_tokens

    toks = tokenize_reviews(read_reviews(tiny_archive, "d", DatasetConfig()), TokenizeConfig())
    kv = KeyedVectors(vector_size=2)
    kv.add_vectors(["wonderful"], np.ones((1, 2), dtype=np.float32))
    path = tmp_path / "v.txt"
    kv.save_word2vec_format(str(path), binary=False)
    emb = build_embeddings(toks, EmbeddingConfig(source="file", url=str(path), binary=False))
    _, stats = vectorize_tokens(toks, emb)
    assert stats["empty_docs"] > 0 and stats["oov_tokens"] / stats["tokens"] > 0.5
    assert "have no token in the embedding vocabulary" in caplog.text
    assert "covers only" in caplog.text


def test_pad_keys_and_layouts(project):
    """`bucket: false` keeps the keys stages had before it existed; a bucketed or maxlen-null
    stage records how it is batched; maxlen null keeps whole reviews."""
    from rnnflow.data.pad import PadLayout, load_sequences, pad_layout, pad_sequences, padded_stage
    from rnnflow.data.storage import Stage, stage, writing

    vectors = Stage("vectors", "v", project / "data")
    old = {"maxlen": 7, "padding": "post", "truncating": "post"}
    from rnnflow.data.pad import VERSION
    assert padded_stage(vectors, PadConfig(maxlen=7)).key == stage("padded", old, "v",
                                                                   VERSION).key
    assert padded_stage(vectors, PadConfig(maxlen=7, bucket=True)).key != stage(
        "padded", old, "v", VERSION).key
    assert padded_stage(vectors, PadConfig(maxlen=None, truncating="pre")).key == (
        padded_stage(vectors, PadConfig(maxlen=None, bucket=True)).key)

    lists = [[1, 2, 3], [], [4] * 12, [5, 6]]
    table = pa.table({"id": ["a", "b", "c", "d"], "split": ["train", "val", "train", "test"],
                      "label": pa.array([1, 0, 1, 0], pa.int8()),
                      "token_ids": pa.array(lists, pa.list_(pa.int32()))})
    with writing(vectors) as tmp:
        import pyarrow.parquet as pq
        pq.write_table(table, tmp / "ids.parquet")
    whole = pad_sequences(vectors, PadConfig(maxlen=None, padding="pre"))
    assert pad_layout(whole) == PadLayout(None, "pre", True)
    seqs, y = load_sequences(whole.file("train.parquet"), pad_layout(whole))
    assert list(seqs.lengths) == [3, 12] and list(y) == [1.0, 1.0] and seqs.cap is None
    np.testing.assert_array_equal(seqs.batch(np.array([0])), [[0] * 5 + [1, 2, 3]])
    fixed = pad_sequences(vectors, PadConfig(maxlen=10, bucket=True, truncating="pre"))
    assert pad_layout(fixed) == PadLayout(10, "post", True)
    seqs, _ = load_sequences(fixed.file("train.parquet"), pad_layout(fixed))
    assert list(seqs.lengths) == [3, 10] and seqs.cap == 10
    assert pad_layout(pad_sequences(vectors, PadConfig(maxlen=10))).bucketed is False
