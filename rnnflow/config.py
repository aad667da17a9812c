"""Parameter sets: a params/*.yaml file parsed into a `Plan`, with CLI overrides and grids.

A `Plan` is what one `rnnflow run` does: an `Experiment` (the seven step sections that shape a
result), the `points` it expands to (`grid` x `variants`), and where they train (`runner`).
Only an `Experiment` becomes MLflow params, config.yaml and cache keys: where a point trains
changes no result.
"""

from __future__ import annotations

import difflib
import itertools
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rnnflow.checks import ChecksSpec


class ConfigError(ValueError):
    """A params file, key or value that cannot be used. The message says which and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(_Section):
    source: Literal["aclimdb", "csv", "parquet"] = "aclimdb"
    url: str = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    validation_split: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 42
    # At most this many reviews from each official split (train, test), drawn with `seed` and
    # balanced by label, before the validation split is cut. None keeps everything.
    limit: int | None = Field(None, ge=4)
    # csv/parquet tables: which columns hold the text and the label (0/1, bool, pos/neg,
    # positive/negative). A `split` column (train|test) is used if present; otherwise the
    # last `test_split` of the seed-shuffled rows is the test split.
    text_column: str = "text"
    label_column: str = "label"
    test_split: float = Field(0.2, gt=0.0, lt=1.0)
    read_options: dict[str, Any] = Field(default_factory=dict)  # pandas.read_csv/read_parquet


class TokenizeConfig(_Section):
    tokenizer: Literal["treebank", "casual", "wordpunct"] = "treebank"
    lowercase: bool = False
    strip_html: bool = False


class EmbeddingConfig(_Section):
    # `onehot`: no vectors; each token is a one-hot vector over the corpus vocabulary, which the
    # network sees as a trainable row lookup of its input weights (rnnflow/model.py).
    source: Literal["gensim", "file", "train", "onehot"] = "gensim"
    name: str = "word2vec-google-news-300"  # gensim-data model name (source: gensim)
    url: str | None = None  # word2vec file by URL or path (source: file)
    binary: bool = True
    limit: int | None = Field(None, ge=1)  # read only the first `limit` vectors of a file
    # source: train (gensim Word2Vec on the train split only)
    vector_size: int = Field(300, ge=1, le=4096)
    window: int = Field(5, ge=1)
    min_count: int = Field(5, ge=1)
    epochs: int = Field(5, ge=1)
    trainable: bool = False  # true fine-tunes the vectors with the network
    # source: onehot: the vocabulary is the `max_tokens` most frequent tokens of the train split
    # (the rest are dropped as OOV). Part of the stage key for onehot only.
    max_tokens: int = Field(20_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _file_needs_url(self) -> EmbeddingConfig:
        if self.source == "file" and not self.url:
            raise ValueError("embedding.source 'file' needs embedding.url (a path or URL)")
        return self


class PadConfig(_Section):
    # None: no fixed length; every batch is padded to its own longest review (bucketed, masked).
    maxlen: int | None = Field(400, ge=1, le=100_000)
    padding: Literal["pre", "post"] = "post"
    truncating: Literal["pre", "post"] = "post"
    # Batches drawn from length buckets, each trimmed to its longest review and masked
    # (implied by maxlen: null); needs a last-state model.
    bucket: bool = False


class ModelConfig(_Section):
    cell: Literal["simple_rnn", "lstm", "gru"] = "simple_rnn"
    num_neurons: int = Field(50, ge=1, le=4096)
    return_sequences: bool = True
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    bidirectional: bool = False
    num_layers: int = Field(1, ge=1, le=8)  # stacked recurrent layers
    # `fused`: rnnflow's recurrent layers (rnnflow/fused.py), Keras's exact function and weights
    # computed faster on CPU (bench/NOTES.md has the ratios per cell); `keras`: the stock
    # layers, to compare with or fall back to.
    kernel: Literal["fused", "keras"] = "fused"


class TrainConfig(_Section):
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(2, ge=1)
    optimizer: Literal["rmsprop", "adam", "sgd", "adamw"] = "rmsprop"
    learning_rate: float | None = Field(None, gt=0.0)
    seed: int = 1337
    # Stop when val_loss has not improved for this many epochs, keeping the best weights.
    early_stopping: int | None = Field(None, ge=1)


class EvaluateConfig(_Section):
    # Sentences scored into examples.csv for every run: a quick look at what the model learned.
    sentences: list[str] = Field(default_factory=lambda: [
        "This movie was a delight from start to finish, funny, warm and beautifully acted.",
        "One of the best films I have seen in years; I would gladly watch it again.",
        "A dull, lifeless mess. The plot makes no sense and the acting is wooden.",
        "I want those two hours of my life back. Terrible script, worse direction.",
    ])
    mistakes: int = Field(20, ge=0)  # how many of the most confident test errors to list
    # Behavioural checks: default (rnnflow/data/checks.yaml) | none | a YAML file | a list of
    # cases; see rnnflow/checks.py.
    checks: ChecksSpec = "default"


class Experiment(_Section):
    """One point: every setting that shapes a result, one section per step."""

    name: str = Field("rnnflow", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    dataset: DatasetConfig = DatasetConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    pad: PadConfig = PadConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @model_validator(mode="after")
    def _flatten_needs_a_fixed_length(self) -> Experiment:
        if self.model.return_sequences and (self.pad.maxlen is None or self.pad.bucket):
            why = "pad.maxlen: null" if self.pad.maxlen is None else "pad.bucket: true"
            raise ValueError(
                f"{why} gives batches of varying length, but model.return_sequences: true "
                "flattens every time step into the Dense layer, which needs a fixed length; "
                "set model.return_sequences: false (the last state) or a fixed pad.maxlen "
                "without pad.bucket")
        return self

    def flat(self) -> dict[str, Any]:
        """Every resolved setting as a dotted key, the form MLflow params and `--set` use.

        A mapping-valued setting (`dataset.read_options`) is one key, whatever it holds, so
        every run logs the same keys and `mlflow ui` can compare them."""
        tree = self.model_dump()
        return {"name": tree.pop("name"),
                **{f"{section}.{key}": value for section, fields in tree.items()
                   for key, value in fields.items()}}


class SearchConfig(_Section):
    """A hyperparameter search (optuna): `trials` points drawn from `space`, each a run.

    `space` maps dotted keys to a list of choices, `{int: [low, high]}` or
    `{float: [low, high]}` (with `log: true` and `step:` optional); rnnflow/search.py reads it.
    """

    trials: int = Field(20, ge=1, le=10_000)  # the study's target: finished + pruned trials
    metric: Literal["val_accuracy", "val_loss"] = "val_accuracy"  # maximised / minimised
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    # Keyword arguments of the pruner, e.g. {n_startup_trials: 5, n_warmup_steps: 1}.
    pruner_options: dict[str, Any] = Field(default_factory=dict)
    # Keyword arguments of the sampler besides its seed, e.g. {n_startup_trials: 4}: optuna's
    # TPE draws its first 10 trials at random, which is most of a small budget.
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0  # the sampler's seed
    space: dict[str, Any] = Field(default_factory=dict)
    # optuna storage URL; none: optuna.db beside a SQLite mlflow.db, else under
    # RNNFLOW_DATA_DIR. Workers on other machines need an RDB URL (postgresql://...).
    storage: str | None = None


class RegistryConfig(_Section):
    """After a run, the best point's text model becomes a version of `model_name`, alias
    `challenger`, and `champion` if it beats the champion (rnnflow/champion.py)."""

    enabled: bool = True
    model_name: str | None = Field(None, min_length=1)  # none: the params file's `name`
    min_delta: float = Field(0.0, ge=0.0, le=1.0)  # test accuracy a challenger must gain


class Plan(_Section):
    """A params file: its experiment, the points it expands to, and where they train."""

    experiment: Experiment
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    variants: list[dict[str, Any]] = Field(default_factory=list)
    # Train every point this many times, with seeds train.seed + i (i = 0 .. repeats - 1).
    repeats: int = Field(1, ge=1, le=100)
    # Where the points train: `local` one after another in the flow's process, `dask` as
    # Prefect tasks on a Dask cluster (a LocalCluster, or the scheduler at `dask_address`).
    runner: Literal["local", "dask"] = "local"
    dask_address: str | None = None
    search: SearchConfig | None = None
    registry: RegistryConfig = RegistryConfig()
    # grid x variants, each a validated Experiment; built once by load_plan.
    points: list[Experiment] = Field(default_factory=list, exclude=True)
    labels: list[str] = Field(default_factory=list, exclude=True)  # a short name per point

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        match = _DASK_ADDRESS.fullmatch(value)
        if not (match and 0 < int(match.group(2)) < 65536):
            raise ValueError("expected a Dask scheduler address such as tcp://host:8786")
        if info.data.get("runner") != "dask":
            raise ValueError("set runner: dask (or --runner dask) to join a scheduler")
        return value

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def is_grid(self) -> bool:
        """A grid (or variants) is one parent run with a child run per point."""
        return bool(self.grid or self.variants)

    def trials(self, point: Experiment) -> list[Experiment]:
        """The point's repeats: the same settings with seeds train.seed + i."""
        if self.repeats == 1:
            return [point]
        return [point.model_copy(update={"train": point.train.model_copy(
            update={"seed": point.train.seed + i})}) for i in range(self.repeats)]

    def varied_keys(self) -> list[str]:
        """The dotted keys that differ between the points of this grid."""
        keys = list(self.grid)
        for variant in self.variants:
            keys += [k for k in variant if k not in keys]
        return keys

    def as_yaml(self) -> str:
        """The plan in the params file's own shape: sections, then grid, variants, runner."""
        tree = {**self.experiment.model_dump(), **self.model_dump(exclude={"experiment"})}
        return yaml.safe_dump(tree, sort_keys=False)


_PLAN_KEYS = ("grid", "variants", "repeats", "runner", "dask_address", "search", "registry")
# Plan sections whose keys `--set search.trials=30` sets one by one (their own models).
_PLAN_SECTIONS = {"search": SearchConfig, "registry": RegistryConfig}
_DASK_ADDRESS = re.compile(r"(tcp|tls)://[A-Za-z0-9._\-\[\]:]+:(\d{1,5})")


def _valid_keys() -> list[str]:
    return list(Experiment().flat())


def _plan_section_keys() -> list[str]:
    return [f"{name}.{key}" for name, model in _PLAN_SECTIONS.items() for key in model.model_fields]


def _mapping_keys() -> list[str]:
    """Keys whose value is a mapping of free keys; `dataset.read_options.sep` sets one entry."""
    return [f"{section}.{name}" for section, info in Experiment.model_fields.items()
            if isinstance(info.annotation, type) and issubclass(info.annotation, _Section)
            for name, field in info.annotation.model_fields.items()
            if typing.get_origin(field.annotation) is dict]


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def _check_key(dotted: str, where: str) -> None:
    keys = _valid_keys()
    if dotted not in keys and not any(dotted.startswith(f"{m}.") for m in _mapping_keys()):
        close = difflib.get_close_matches(dotted, keys, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{where}: unknown key '{dotted}'.{hint}")


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from the CLI; the value is read as YAML, so 3, 0.5, true and [1, 2] work."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc})") from exc
    return key.strip(), value


def _validate(model: type[_Section], tree: dict[str, Any], where: str, prefix: str = ""):
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        reasons = []
        for err in exc.errors():
            loc = prefix + ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(loc, _valid_keys() + _plan_section_keys(), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                reasons.append(f"unknown key '{loc}'{hint}")
            elif not loc and err["type"] == "value_error":  # a check across sections
                reasons.append(err["msg"].removeprefix("Value error, "))  # it names the keys
            else:
                reasons.append(f"{loc or 'params'}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(f"{where}: " + "; ".join(reasons)) from None


def load_plan(path: str | Path, overrides: dict[str, Any] | list[str] | None = None) -> Plan:
    """Read and validate a params file, apply `dotted.key: value` overrides and expand its
    points.

    Everything is checked before any work starts, every grid point included; a ConfigError
    names the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(tree).__name__}")
    tree.setdefault("name", path.stem)

    if isinstance(overrides, list):
        overrides = dict(parse_override(item) for item in overrides)
    for dotted, value in (overrides or {}).items():
        if dotted in ("name", *_PLAN_KEYS):  # top-level values: `--set grid={}`
            tree[dotted] = value
            continue
        if dotted.split(".", 1)[0] in _PLAN_SECTIONS:  # `--set search.trials=30`
            _set_plan_key(tree, dotted, value, f"{path} (override)")
            continue
        _check_key(dotted, f"{path} (override)")
        _set_dotted(tree, dotted, value)

    where = str(path)
    plan_tree = {k: tree.pop(k) for k in _PLAN_KEYS if k in tree}
    experiment = _validate(Experiment, tree, where)
    plan = _validate(Plan, {"experiment": experiment, **plan_tree}, where)
    for dotted, values in plan.grid.items():
        _check_key(dotted, f"{path} grid")
        if not values:
            raise ConfigError(f"{path} grid: '{dotted}' has an empty list of values")
    for i, variant in enumerate(plan.variants):
        for dotted in variant:
            _check_key(dotted, f"{path} variants[{i}]")
    plan.points, plan.labels = _expand(plan, where)
    if plan.search is not None:
        from rnnflow.search import check_search  # it builds on this module

        check_search(plan, where)
    return plan


def _set_plan_key(tree: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    """One key of a plan section (`search.trials`), or one entry of its mapping keys
    (`search.space.model.cell`: the entry's own key is dotted)."""
    section, _, key = dotted.partition(".")
    model = _PLAN_SECTIONS[section]
    node = tree.get(section)
    if node is None:
        node = tree[section] = {}
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: {section} is not a mapping")
    field, _, entry = key.partition(".")
    keys = [f"{section}.{k}" for k in model.model_fields]
    info = model.model_fields.get(field)
    if info is None or (entry and typing.get_origin(info.annotation) is not dict):
        close = difflib.get_close_matches(dotted, keys, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{where}: unknown key '{dotted}'.{hint}")
    if entry:
        mapping = node.get(field)
        node[field] = {**(mapping if isinstance(mapping, dict) else {}), entry: value}
    else:
        node[field] = value


def _expand(plan: Plan, where: str) -> tuple[list[Experiment], list[str]]:
    """The cartesian product of `grid`, each combined with every entry of `variants` (override
    mappings for points that are not a product); no grid and no variants is one point. Each
    point is labelled by its own overrides, e.g. `num_neurons=100 maxlen=200`."""
    if not plan.is_grid:
        return [plan.experiment], [plan.name]
    keys = list(plan.grid)
    base = plan.experiment.model_dump()
    points, labels = [], []
    for combo in itertools.product(*(plan.grid[k] for k in keys)):
        for variant in plan.variants or [{}]:
            overrides = {**dict(zip(keys, combo, strict=True)), **variant}
            tree = yaml.safe_load(yaml.safe_dump(base))  # deep copy of plain data
            for dotted, value in overrides.items():
                _set_dotted(tree, dotted, value)
            label = ", ".join(f"{k}={v}" for k, v in overrides.items())
            points.append(_validate(Experiment, tree, f"{where} grid point ({label})"))
            labels.append(" ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in overrides.items())
                          or "base")
    return points, labels
