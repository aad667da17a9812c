import json
import re
from pathlib import Path

import pytest

from rnnflow.comparisons.plan import data_overrides, load_plan, parse_override
from rnnflow.config import ConfigError, Point
from tests.helpers import REPO

PARAMS = REPO / "params"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_lesson16_is_the_lessons_protocol():
    plan = load_plan(PARAMS / "lesson16.yaml")
    p = plan.base
    assert plan.name == p.name == "lesson16" and plan.points == [p]
    assert p.dataset.url.endswith("aclImdb_v1.tar.gz") and p.dataset.validation_split == 0.2
    assert (p.tokenize.tokenizer, p.tokenize.lowercase, p.tokenize.strip_html) == (
        "treebank", False, False)
    assert (p.embedding.source, p.embedding.name) == ("gensim", "word2vec-google-news-300")
    assert (p.pad.maxlen, p.pad.padding, p.pad.truncating) == (400, "post", "post")
    assert (p.model.cell, p.model.num_neurons, p.model.return_sequences, p.model.dropout) == (
        "simple_rnn", 50, True, 0.2)
    assert (p.train.batch_size, p.train.epochs, p.train.optimizer) == (32, 2, "rmsprop")


@pytest.mark.parametrize("path", sorted(PARAMS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_params_file_validates(path):
    assert load_plan(path).name


def test_overrides_apply_and_parse_yaml_values(tmp_path):
    path = _write(tmp_path, "name: t\n")
    p = load_plan(path, ["train.epochs=3", "model.cell=lstm", "dataset.limit=100"]).base
    assert (p.train.epochs, p.model.cell, p.dataset.limit) == (3, "lstm", 100)
    assert parse_override("grid.x=[1, 2]") == ("grid.x", [1, 2])


def test_flat_uses_dotted_keys(tmp_path):
    flat = load_plan(_write(tmp_path, "pad: {maxlen: 7}\n")).base.flat()
    assert flat["pad.maxlen"] == 7 and "model.num_neurons" in flat and "grid" not in flat


@pytest.mark.parametrize(
    ("text", "overrides", "needle"),
    [
        ("model: {num_neuron: 5}\n", None, "model.num_neurons"),  # unknown key, suggestion
        ("pad: {maxlen: 0}\n", None, "pad.maxlen"),
        ("model: {dropout: 1.5}\n", None, "model.dropout"),
        ("train: {epochs: 0}\n", None, "train.epochs"),
        ("train: {batch_size: 0}\n", None, "train.batch_size"),
        ("dataset: {validation_split: 1}\n", None, "dataset.validation_split"),
        ("train: {epochs: many}\n", None, "train.epochs"),
        ("name: t\n", ["train.epoch=3"], "train.epochs"),
        ("grid: {model.num_neuron: [1, 2]}\n", None, "model.num_neurons"),
        ("grid: {model.num_neurons: []}\n", None, "empty"),
        ("grid: {pad.maxlen: [10, -1]}\n", None, "pad.maxlen"),
        ("model: [1\n", None, "YAML"),
    ],
)
def test_bad_input_names_file_and_key(tmp_path, text, overrides, needle):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_plan(path, overrides)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_plan(tmp_path / "nope.yaml")


def test_grid_is_a_cartesian_product(tmp_path):
    path = _write(tmp_path, "grid: {model.num_neurons: [50, 100], pad.maxlen: [200, 400]}\n")
    points = load_plan(path).points
    assert sorted((p.model.num_neurons, p.pad.maxlen) for p in points) == [
        (50, 200), (50, 400), (100, 200), (100, 400)]
    assert all(type(p) is Point for p in points)


def test_yaml_is_read_safely(tmp_path):
    path = _write(tmp_path, 'name: !!python/object/apply:os.system ["touch pwned"]\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_plan(path)
    assert not (tmp_path / "pwned").exists()


def test_runner_defaults_to_local_and_takes_a_scheduler_address(tmp_path):
    assert load_plan(_write(tmp_path, "name: t\n")).runner == "local"
    p = load_plan(_write(tmp_path, "runner: dask\ndask_address: tcp://10.1.2.3:8786\n"))
    assert (p.runner, p.dask_address) == ("dask", "tcp://10.1.2.3:8786")
    p = load_plan(_write(tmp_path, "name: t\n"), ["runner=dask", "dask_address=tcp://h:1"])
    assert (p.runner, p.dask_address) == ("dask", "tcp://h:1")


def test_where_points_run_is_no_point_setting(tmp_path):
    """Not an MLflow param and not part of the training key: a run on Dask compares with, and
    can continue, one trained locally."""
    local = load_plan(_write(tmp_path, "grid: {model.num_neurons: [1, 2]}\n"))
    dask = load_plan(_write(tmp_path, "grid: {model.num_neurons: [1, 2]}\nrunner: dask\n"))
    assert local.base.flat() == dask.base.flat()
    assert [p.flat() for p in local.points] == [p.flat() for p in dask.points]
    assert not {"runner", "dask_address"} & set(local.base.flat())
    assert not {"runner", "dask_address"} & set(local.points[0].model_dump())
    assert (local.runner, dask.runner) == ("local", "dask")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("runner: spark\n", "runner"),
        ("runner: dask\ndask_address: localhost:8786\n", "tcp://host:8786"),
        ("runner: dask\ndask_address: tcp://host\n", "tcp://host:8786"),
        ("runner: dask\ndask_address: tcp://host:70000\n", "tcp://host:8786"),
        ("runner: dask\ndask_address: http://host:8786\n", "tcp://host:8786"),
        ("dask_address: tcp://host:8786\n", "runner: dask"),  # an address needs the runner
        ("runner: local\ndask_address: tcp://host:8786\n", "runner: dask"),
        ("grid: {runner: [local, dask]}\n", "unknown key 'runner'"),  # not a grid key
    ],
)
def test_bad_runner_settings_name_file_and_key(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    assert str(path) in str(err.value) and needle in str(err.value)


_SLURM = ("runner: dask\ndask_cluster:\n  class: dask_jobqueue.SLURMCluster\n"
          "  options: {cores: 1, memory: 2GB, walltime: '00:10:00', interface: lo}\n")


def test_a_cluster_section_with_its_options_and_size(tmp_path):
    """Read as written, without importing the class (flows/dask_cluster.py checks that)."""
    plan = load_plan(_write(tmp_path, _SLURM + "  jobs: 2\n"))
    cluster = plan.dask_cluster
    assert (cluster.cluster_class, cluster.jobs, cluster.adapt) == (
        "dask_jobqueue.SLURMCluster", 2, None)
    assert cluster.options["memory"] == "2GB"
    # From the CLI's --set, key by key, and written back in the file's own spelling.
    plan = load_plan(_write(tmp_path, "name: t\n"), [
        "runner=dask", "dask_cluster.class=dask_jobqueue.PBSCluster",
        "dask_cluster.options.cores=4", "dask_cluster.options.memory=8GB",
        "dask_cluster.adapt={minimum_jobs: 0, maximum_jobs: 3}"])
    assert plan.dask_cluster.options == {"cores": 4, "memory": "8GB"}
    assert plan.dask_cluster.adapt.maximum_jobs == 3
    assert "class: dask_jobqueue.PBSCluster" in plan.as_yaml()
    # A class nobody could import is still a well-formed section: the runner refuses it.
    plan = load_plan(_write(tmp_path, "runner: dask\ndask_cluster: {class: no_such.Cluster, "
                                      "options: {anything: 1}, adapt: {maximum: 2}}\n"))
    assert plan.dask_cluster.adapt.maximum == 2
    # Not a point setting: the same points as a local plan.
    assert "dask_cluster" not in plan.base.flat()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_SLURM.replace("dask_jobqueue.SLURMCluster", "SLURMCluster"), "qualified class name"),
        (_SLURM.replace("dask_jobqueue.SLURMCluster", "dask_jobqueue..SLURMCluster"),
         "qualified class name"),
        (_SLURM.replace("dask_jobqueue.SLURMCluster", "''"), "dask_cluster.class"),
        (_SLURM.replace("interface: lo", "asynchronous: true"), "managed by Prefect"),
        (_SLURM + "  jobs: 2\n  adapt: {maximum: 4}\n", "not both"),
        (_SLURM + "  adapt: {minimum: 4, maximum: 2}\n", "minimum (4) is above maximum (2)"),
        (_SLURM + "  adapt: {minimum_jobs: 3, maximum_jobs: 1}\n",
         "minimum_jobs (3) is above maximum_jobs (1)"),
        (_SLURM + "  adapt: {}\n", "set maximum"),
        (_SLURM + "  jobs: 0\n", "jobs"),
        (_SLURM + "dask_address: tcp://host:8786\n", "dask_cluster and dask_address"),
        (_SLURM.replace("runner: dask", "runner: local"), "set runner: dask"),
        (_SLURM + "  workers: 2\n", "unknown key 'dask_cluster.workers'"),
    ],
)
def test_bad_cluster_sections_name_file_and_key(tmp_path, text, needle):
    """What a `dask_cluster` section says on its own; what its class accepts:
    tests/flows/test_dask_cluster.py."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    assert str(path) in str(err.value) and needle in str(err.value), err.value


def _documented_keys() -> list[str]:
    """The dotted keys of the table in docs/parameters.md (the first table there whose header is
    `| key | default | meaning |`); `a.b`, `c` rows name a.b and a.c."""
    page = (PARAMS.parent / "docs" / "parameters.md").read_text(encoding="utf-8")
    table = page.split("| key | default | meaning |\n", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    keys = []
    for row in rows:
        names = re.findall(r"`([a-z0-9_.]+)`", row.split("|")[1])
        section = names[0].rsplit(".", 1)[0] + "." if "." in names[0] else ""
        keys += [names[0]] + [section + n for n in names[1:]]
    return keys


def test_the_parameters_page_lists_every_key():
    keys = _documented_keys()
    assert {"name", "dataset.read_options", "train.epochs", "grid", "runner"} <= set(keys)
    assert set(Point().flat()) <= set(keys)


@pytest.mark.parametrize("key", _documented_keys())
def test_every_documented_key_is_settable(tmp_path, key):
    """With `--set` (text) and with a deployment's `overrides` (a mapping), to its default."""
    plan_keys = {"grid": {}, "variants": [], "repeats": 1, "runner": "local",
                 "dask_address": None, "dask_cluster": None, "search": None,
                 "registry.enabled": True,
                 "registry.model_name": None, "registry.min_delta": 0.0,
                 "registry.metric": "accuracy",
                 "baselines": ["majority", "bag_of_words"]}
    value = plan_keys[key] if key in plan_keys else Point().flat()[key]
    path = _write(tmp_path, "name: t\n")
    assert load_plan(path, {key: value}).name
    assert load_plan(path, [f"{key}={json.dumps(value)}"]).name


def test_mapping_keys_take_a_mapping_or_one_entry(tmp_path):
    path = _write(tmp_path, "name: t\ndataset: {source: csv}\n")
    whole = load_plan(path, ['dataset.read_options={"sep": "\\t", "header": null, '
                             '"names": ["text", "label"]}']).base
    assert whole.dataset.read_options == {"sep": "\t", "header": None, "names": ["text", "label"]}
    one = load_plan(path, {"dataset.read_options.sep": ";"}).base
    assert one.dataset.read_options == {"sep": ";"}
    assert one.flat()["dataset.read_options"] == {"sep": ";"}
    assert "dataset.read_options" in Point().flat()  # logged even when empty
    with pytest.raises(ConfigError, match="Did you mean 'dataset.read_options'"):
        load_plan(path, ["dataset.read_option.sep=;"])
    with pytest.raises(ConfigError, match="unknown key 'model.cells.x'"):
        load_plan(path, ["model.cells.x=1"])


@pytest.mark.parametrize("sets", [
    ["pad.maxlen=null"],
    ["pad.bucket=true"],
    ["pad.maxlen=null", "model.return_sequences=true", "model.cell=gru"],
])
def test_flatten_head_needs_a_fixed_length(tmp_path, sets):
    """The lesson's return_sequences + Flatten cannot take batches of varying length: refused
    before any work, saying what to set."""
    path = _write(tmp_path, "name: t\n")
    with pytest.raises(ConfigError) as err:
        load_plan(path, sets)
    assert str(path) in str(err.value) and "model.return_sequences: false" in str(err.value)
    assert sets[0].replace("=", ": ") in str(err.value)
    assert load_plan(path, [*sets, "model.return_sequences=false"]).base


def test_a_grid_point_with_flatten_and_no_maxlen_is_refused(tmp_path):
    path = _write(tmp_path, "model: {return_sequences: false}\n"
                            "grid: {pad.maxlen: [100, null], "
                            "model.return_sequences: [false, true]}\n")
    with pytest.raises(ConfigError, match=r"grid point \(pad.maxlen=None, "
                                          r"model.return_sequences=True\).*return_sequences"):
        load_plan(path)


def test_max_tokens_keys_the_one_hot_vocabulary_only():
    from rnnflow.config import EmbeddingConfig
    from rnnflow.data.embeddings import embeddings_stage
    from rnnflow.data.storage import Stage

    tokens = Stage("tokens", "abc", Path("data"))
    for source in ("train", "gensim"):
        a, b = (embeddings_stage(tokens, EmbeddingConfig(source=source, max_tokens=n))
                for n in (10, 20))
        assert a.key == b.key
    # The key of a word2vec table is what it was before max_tokens (and the learned and
    # fasttext sources' settings) existed: these ten settings.
    old = EmbeddingConfig(source="train").model_dump(include={
        "source", "name", "url", "binary", "limit", "vector_size", "window", "min_count",
        "epochs", "trainable"})
    assert len(old) == 10
    from rnnflow.data.embeddings import VERSION
    from rnnflow.data.storage import stage
    assert embeddings_stage(tokens, EmbeddingConfig(source="train")).key == stage(
        "embeddings", {**old, "seed": 0}, "abc", VERSION).key
    a, b = (embeddings_stage(tokens, EmbeddingConfig(source="onehot", max_tokens=n))
            for n in (10, 20))
    assert a.key != b.key
    assert a.key == embeddings_stage(tokens, EmbeddingConfig(source="onehot", max_tokens=10,
                                                             vector_size=7)).key


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("evaluate: {checks: nowhere.yaml}\n", ": evaluate.checks"),
        ("grid: {evaluate.checks: [default, nowhere.yaml]}\n",
         " grid point (checks=nowhere.yaml): evaluate.checks"),
        ("search: {space: {evaluate.checks: [none, nowhere.yaml]}}\n",
         " search.space (evaluate.checks=nowhere.yaml): evaluate.checks"),
    ],
)
def test_every_checks_setting_a_plan_can_train_with_is_read_first(tmp_path, text, where):
    """The cases are read when the file is (rnnflow/insight/cases.py), not after training."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    assert str(err.value).startswith(f"{path}{where}: ") and "is not a file" in str(err.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("dataset: {source: csv, url: {train: a.csv}}\n", "dataset.url: no test file"),
        ("dataset: {url: {train: a.csv, test: b.csv}}\n", "for dataset.source csv or parquet"),
        ("dataset: {source: csv, url: {train: a, test: b, eval: c}}\n", "unknown role 'eval'"),
        ("dataset: {source: csv, url: {train: a, dev: b, val: c, test: d}}\n",
         "dev and val are one role"),
        ("dataset: {source: csv, url: {train: a, test: b}, sha256: " + "a" * 64 + "}\n",
         "give a mapping of role to sha256"),
        ("dataset: {source: csv, url: {train: a, test: b}, sha256: {val: " + "a" * 64 + "}}\n",
         "role 'val' is not in dataset.url"),
        ("dataset: {sha256: abc}\n", "dataset.sha256: expected 64 hexadecimal digits"),
    ],
)
def test_files_by_role_are_checked_with_the_params(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    assert needle in str(err.value) and str(path) in str(err.value)
    assert "Value error" not in str(err.value)


def test_files_by_role_take_dev_for_val_in_role_order(tmp_path):
    path = _write(tmp_path, "dataset: {source: csv, url: {test: c, dev: b, train: a}, "
                            "sha256: {dev: " + "a" * 64 + "}}\n")
    dataset = load_plan(path).base.dataset
    assert list(dataset.url.items()) == [("train", "a"), ("val", "b"), ("test", "c")]
    assert dataset.sha256 == {"val": "a" * 64}


def test_data_makes_a_path_a_file_url_and_trains_downloaded_vectors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "copy.tar.gz").write_bytes(b"x")
    plan = load_plan(PARAMS / "lesson16.yaml")
    added, note = data_overrides(plan, "copy.tar.gz", {})
    assert added == {"dataset.url": (tmp_path / "copy.tar.gz").as_uri(),
                     "embedding.source": "train"}
    assert "word2vec-google-news-300" in note and "embedding.source: train" in note
    url = "https://example.org/aclImdb_v1.tar.gz"  # a URL stays; nothing is fetched
    assert data_overrides(plan, url, {})[0]["dataset.url"] == url
    # An explicit --set of the vectors is kept; vectors that are no download need no note.
    assert data_overrides(plan, "copy.tar.gz", {"embedding.source": "gensim"})[1] is None
    trained = load_plan(PARAMS / "tiny-grid.yaml")
    assert data_overrides(trained, "copy.tar.gz", {}) == (
        {"dataset.url": (tmp_path / "copy.tar.gz").as_uri()}, None)


@pytest.mark.parametrize(("data", "overrides", "needle"), [
    ("absent.tar.gz", {}, "--data absent.tar.gz: no such file or folder"),
    ("file:///no/such/dir/x.tar.gz", {}, "no such file or folder"),
    ("copy.tar.gz", {"dataset.url": "x"}, "--data and --set dataset.url"),
])
def test_bad_data_is_refused(tmp_path, monkeypatch, data, overrides, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "copy.tar.gz").write_bytes(b"x")
    with pytest.raises(ConfigError, match=re.escape(needle)):
        data_overrides(load_plan(PARAMS / "lesson16.yaml"), data, overrides)


def test_baselines_are_on_unless_the_params_file_says_none(tmp_path):
    path = _write(tmp_path, "name: t\n")
    assert load_plan(path).baselines == ["majority", "bag_of_words"]
    assert load_plan(path, ["baselines=none"]).baselines == []
    assert load_plan(path, ["baselines=majority"]).baselines == ["majority"]
    assert load_plan(_write(tmp_path, "name: t\nbaselines: none\n")).baselines == []
    assert load_plan(_write(tmp_path, "name: t\nbaselines: [bag_of_words]\n")
                     ).baselines == ["bag_of_words"]


@pytest.mark.parametrize(("text", "hint"), [
    ("baselines: [majority, bag_of_word]\n", "Did you mean 'bag_of_words'?"),
    ("baselines: nnone\n", "Did you mean 'none'?"),
    ("baseline: none\n", "did you mean 'baselines'?"),
])
def test_an_unknown_baseline_names_the_closest(tmp_path, text, hint):
    with pytest.raises(ConfigError) as err:
        load_plan(_write(tmp_path, "name: t\n" + text))
    assert hint in str(err.value)


def test_learned_and_fasttext_tables_are_keyed_by_what_shapes_them():
    from rnnflow.config import EmbeddingConfig
    from rnnflow.data.embeddings import embeddings_stage
    from rnnflow.data.storage import Stage

    tokens = Stage("tokens", "abc", Path("data"))

    def key(seed=0, **settings):
        return embeddings_stage(tokens, EmbeddingConfig(**settings), seed).key

    learned = {"source": "learned", "vector_size": 8}
    assert key(**learned) == key(**learned, window=9, min_count=1, epochs=2, min_n=1)
    for change in ({"vector_size": 9}, {"max_tokens": 5}):
        assert key(**learned) != key(**{**learned, **change})
    assert key(**learned) != key(seed=1, **learned)  # the starting draw
    fasttext = {"source": "fasttext", "vector_size": 8}
    assert key(**fasttext) == key(**fasttext, max_tokens=5, name="other", trainable=True)
    for change in ({"min_n": 2}, {"max_n": 5}, {"window": 2}, {"min_count": 1}, {"epochs": 9}):
        assert key(**fasttext) != key(**{**fasttext, **change})
    assert len({key(**learned), key(**fasttext), key(source="train", vector_size=8)}) == 3
    # n-gram lengths do not shape a word2vec table
    assert key(source="train") == key(source="train", min_n=1, max_n=2)


def test_learned_vectors_are_always_trainable_and_logged_so(tmp_path):
    path = _write(tmp_path, "name: t\nembedding: {source: learned, trainable: false}\n")
    assert load_plan(path).base.flat()["embedding.trainable"] is True
    grid = _write(tmp_path, "name: t\nembedding: {source: train}\n"
                            "grid: {embedding.source: [train, learned]}\n")
    assert [p.embedding.trainable for p in load_plan(grid).points] == [False, True]


def test_pooling_reads_every_step_and_needs_no_fixed_length(tmp_path):
    path = _write(tmp_path, "name: t\n")
    with pytest.raises(ConfigError, match="model.pooling: max pools every time step, but "
                                          "model.return_sequences: false"):
        load_plan(path, ["model.pooling=max", "model.return_sequences=false"])
    with pytest.raises(ConfigError, match="Input should be 'none', 'max' or 'mean'"):
        load_plan(path, ["model.pooling=sum"])
    # Pooled steps are one vector whatever the length: bucketing and maxlen null are fine.
    for sets in (["pad.maxlen=null"], ["pad.bucket=true"]):
        assert load_plan(path, [*sets, "model.pooling=mean"]).base.model.pooling == "mean"
