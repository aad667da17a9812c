"""What a params file may say about one point: the seven step sections of a `Point`.

Every layer reads its own section from here (the reviews step `DatasetConfig`, the network
`ModelConfig`, ...), so this module imports nothing of rnnflow's. A whole params file (grids,
repeats, search, registry, runner) is a `Plan`: rnnflow/comparisons/plan.py.

Also here, for the layers above that edit points by dotted key (`--set`, grids, a search's
space): `check_key`, `set_dotted`, `validate` and `with_values`.
"""

from __future__ import annotations

import difflib
import re
import typing
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)


class ConfigError(ValueError):
    """A params file, key or value that cannot be used. The message says which and why."""


class Section(BaseModel):
    """A params section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# The roles of a corpus published as separate files (`dataset.url` as a mapping); `dev` is
# another name for `val`.
FILE_ROLES = ("train", "val", "test")
_ROLE_NAMES = {"train": "train", "val": "val", "dev": "val", "test": "test"}
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class DatasetConfig(Section):
    source: Literal["aclimdb", "csv", "parquet"] = "aclimdb"
    # One archive, table or folder by URL or path; or, for csv/parquet, a mapping of role to
    # file ({train: a.tsv, val: b.tsv, test: c.tsv}; val optional: then cut from train as for
    # one file), each file's rows taking its role (a `split` column in them is not read).
    url: str | dict[str, str] = \
        "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    # The file's sha256; with a mapping of files, a mapping of role to sha256 (any subset).
    sha256: str | dict[str, str] | None = None
    validation_split: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 42
    # At most this many reviews from each official split (train, test), drawn with `seed` and
    # balanced by label, before the validation split is cut. None keeps everything.
    limit: int | None = Field(None, ge=4)
    # aclimdb: what a review's label is: `sentiment` (neg/pos, from the folder) or `rating`
    # (the star rating in its file name, 1-4 and 7-10: eight classes).
    label: Literal["sentiment", "rating"] = "sentiment"
    # csv/parquet tables: which columns hold the text and the label. Labels are 0/1, bool,
    # pos/neg or positive/negative (two classes, as sentiment), or any integers or strings (each
    # distinct value a class, sorted). Rows whose label or text is empty are dropped and
    # counted. A `split` column (train|val|test, dev for val) is used if present: a given val
    # split is used as is; otherwise the last `test_split` of the seed-shuffled rows is the
    # test split.
    text_column: str = "text"
    label_column: str = "label"
    test_split: float = Field(0.2, gt=0.0, lt=1.0)
    read_options: dict[str, Any] = Field(default_factory=dict)  # pandas.read_csv/read_parquet

    @model_validator(mode="after")
    def _files_by_role(self) -> DatasetConfig:
        """A mapping of files names known roles, train and test among them (as `dev`, `val`);
        sha256 is one per file, by the same roles."""
        if isinstance(self.url, dict):
            if self.source == "aclimdb":
                raise ValueError("dataset.url: a mapping of files by role is for dataset.source "
                                 "csv or parquet; an aclImdb archive holds its own splits")
            unknown = sorted(set(self.url) - set(_ROLE_NAMES))
            if unknown:
                raise ValueError(f"dataset.url: unknown role {unknown[0]!r}; the roles are "
                                 "train, val (or dev) and test")
            roles = [_ROLE_NAMES[r] for r in self.url]
            if len(set(roles)) < len(roles):
                raise ValueError("dataset.url: dev and val are one role; give one of them")
            missing = [r for r in ("train", "test") if r not in roles]
            if missing:
                raise ValueError(f"dataset.url: no {missing[0]} file; a mapping of files needs "
                                 "train and test (val is optional: then cut from train)")
            # Stored under the canonical roles, in the order train, val, test.
            by_role = {_ROLE_NAMES[r]: u for r, u in self.url.items()}
            object.__setattr__(self, "url", {r: by_role[r] for r in FILE_ROLES if r in by_role})
        digests = self.sha256 if isinstance(self.sha256, dict) else {"": self.sha256}
        if isinstance(self.sha256, dict):
            if not isinstance(self.url, dict):
                raise ValueError("dataset.sha256: a mapping of roles needs dataset.url to be "
                                 "one too")
            digests = {_ROLE_NAMES.get(r, r): d for r, d in self.sha256.items()}
            extra = sorted(set(digests) - set(self.url))
            if extra:
                raise ValueError(f"dataset.sha256: role {extra[0]!r} is not in dataset.url")
            object.__setattr__(self, "sha256", digests)
        elif isinstance(self.url, dict) and self.sha256 is not None:
            raise ValueError("dataset.sha256: dataset.url names several files; give a mapping "
                             "of role to sha256 ({train: ..., test: ...})")
        for role, digest in digests.items():
            if digest is not None and not _SHA256.fullmatch(digest):
                where = f"dataset.sha256.{role}" if role else "dataset.sha256"
                raise ValueError(f"{where}: expected 64 hexadecimal digits, got {digest!r}")
        return self


class TokenizeConfig(Section):
    # `regexp`: NLTK's RegexpTokenizer with `pattern` (the tokens are its matches), e.g.
    # `\w+'|\w+|[^\w\s]` keeps Italian elisions ("l'amore" -> "l'", "amore").
    tokenizer: Literal["treebank", "casual", "wordpunct", "regexp"] = "treebank"
    lowercase: bool = False
    strip_html: bool = False
    pattern: str | None = None  # tokenizer: regexp only

    @model_validator(mode="after")
    def _regexp_needs_a_pattern(self) -> TokenizeConfig:
        if self.tokenizer == "regexp":
            if not self.pattern:
                raise ValueError("tokenize.tokenizer 'regexp' needs tokenize.pattern")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"tokenize.pattern is not a regular expression ({exc})") \
                    from None
        return self


class EmbeddingConfig(Section):
    # `onehot`: no vectors; each token is a one-hot vector over the corpus vocabulary, which the
    # network sees as a trainable row lookup of its input weights (rnnflow/network/model.py).
    # `learned`: vectors of `vector_size` learned from scratch with the network (always
    # trained), over the `max_tokens` most frequent train tokens. `fasttext`: gensim FastText
    # trained on the train split (the word2vec settings below, plus `min_n`/`max_n`): every
    # token of the corpus, seen in train or not, gets a vector built from its character n-grams.
    source: Literal["gensim", "file", "train", "onehot", "learned", "fasttext"] = "gensim"
    name: str = "word2vec-google-news-300"  # gensim-data model name (source: gensim)
    # source: file: a word2vec file by URL or path (`binary` says which format), a fastText
    # .vec text file (binary: false) or a fastText .bin model (recognised by its header)
    url: str | None = None
    binary: bool = True
    limit: int | None = Field(None, ge=1)  # read only the first `limit` vectors of a file
    # source: train (gensim Word2Vec on the train split only), fasttext (the same four settings);
    # learned: vector_size only
    vector_size: int = Field(300, ge=1, le=4096)
    window: int = Field(5, ge=1)
    min_count: int = Field(5, ge=1)
    epochs: int = Field(5, ge=1)
    # source: fasttext: the lengths of the character n-grams a word's vector is summed from
    # (gensim's defaults); a word shorter than min_n gets only its own vector
    min_n: int = Field(3, ge=1, le=20)
    max_n: int = Field(6, ge=1, le=20)
    # true fine-tunes the vectors with the network; source: learned is always trained (its
    # vectors start random), so there it is set to true whatever the file says
    trainable: bool = False
    # source: onehot and learned: the vocabulary is the `max_tokens` most frequent tokens of the
    # train split (the rest are dropped as OOV). Part of the stage key for those two only.
    max_tokens: int = Field(20_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _file_needs_url(self) -> EmbeddingConfig:
        if self.source == "file" and not self.url:
            raise ValueError("embedding.source 'file' needs embedding.url (a path or URL)")
        if self.source == "fasttext" and self.min_n > self.max_n:
            raise ValueError(f"embedding.min_n ({self.min_n}) is above embedding.max_n "
                             f"({self.max_n}): no character n-gram would fit; give "
                             "min_n <= max_n")
        if self.source == "learned":
            # Random vectors left frozen would be noise: logged as what the network does.
            object.__setattr__(self, "trainable", True)
        return self


class PadConfig(Section):
    # None: no fixed length; every batch is padded to its own longest review (bucketed, masked).
    maxlen: int | None = Field(400, ge=1, le=100_000)
    padding: Literal["pre", "post"] = "post"
    truncating: Literal["pre", "post"] = "post"
    # Batches drawn from length buckets, each trimmed to its longest review and masked
    # (implied by maxlen: null); needs a last-state model.
    bucket: bool = False


class ModelConfig(Section):
    cell: Literal["simple_rnn", "lstm", "gru"] = "simple_rnn"
    num_neurons: int = Field(50, ge=1, le=4096)
    return_sequences: bool = True
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    bidirectional: bool = False
    num_layers: int = Field(1, ge=1, le=8)  # stacked recurrent layers
    # `fused`: rnnflow's recurrent layers (rnnflow/network/fused.py), Keras's exact function and
    # weights computed faster on CPU (bench/NOTES.md has the ratios per cell); `keras`: the
    # stock layers, to compare with or fall back to.
    kernel: Literal["fused", "keras"] = "fused"
    # With return_sequences: true, what the head reads of the last recurrent layer's steps:
    # `none` flattens them all (the lesson's network, a fixed pad.maxlen), `max` / `mean` pools
    # them over time (any length; the mean leaves out masked padding): one vector of width
    # num_neurons (x 2 bidirectional), whatever the length, which on a small corpus is far fewer
    # head weights to overfit than maxlen x num_neurons.
    pooling: Literal["none", "max", "mean"] = "none"

    @model_validator(mode="after")
    def _pooling_reads_every_step(self) -> ModelConfig:
        if self.pooling != "none" and not self.return_sequences:
            raise ValueError(f"model.pooling: {self.pooling} pools every time step, but "
                             "model.return_sequences: false hands on only the last state; set "
                             "model.return_sequences: true, or model.pooling: none")
        return self


class TrainConfig(Section):
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(2, ge=1)
    optimizer: Literal["rmsprop", "adam", "sgd", "adamw"] = "rmsprop"
    learning_rate: float | None = Field(None, gt=0.0)
    seed: int = 1337
    # Stop when val_loss has not improved for this many epochs, keeping the best weights.
    early_stopping: int | None = Field(None, ge=1)
    # Weights of the classes in the loss: `balanced` (n / (classes x count of the class), on the
    # train split) or a mapping of class name to weight (a class left out weighs 1).
    class_weight: Literal["balanced"] | dict[str, float] | None = None
    # float16 compute with float32 variables and head (Keras's mixed_float16), on a GPU only:
    # refused on a CPU (rnnflow/network/device.py).
    mixed_precision: bool = False
    # Where the loss is computed (the lesson's two ways of backpropagating through time):
    # `last`, the vanilla way, on the prediction only; `all`, the better way, on the head's
    # output after every real (unpadded) step, each scored against the review's label and
    # averaged. `all` masks padding; the prediction stays the output at the last real step
    # (rnnflow/network/steps.py, which also says what `all` means for a Flatten network).
    loss_steps: Literal["last", "all"] = "last"


# The built-in example sentences: English movie reviews, two each way. They are scored only
# where they fit the model (rnnflow/insight/report.py, `built_in_sentences_fit`).
MOVIE_SENTENCES = (
    "This movie was a delight from start to finish, funny, warm and beautifully acted.",
    "One of the best films I have seen in years; I would gladly watch it again.",
    "A dull, lifeless mess. The plot makes no sense and the acting is wooden.",
    "I want those two hours of my life back. Terrible script, worse direction.",
)


class EvaluateConfig(Section):
    # Sentences scored into examples.csv and report.html for every run: a quick look at what
    # the model learned. Given ones are always scored; the built-in ones (MOVIE_SENTENCES)
    # only for sentiment labels or the aclImdb reviews.
    sentences: list[str] = Field(default_factory=lambda: list(MOVIE_SENTENCES))
    mistakes: int = Field(20, ge=0)  # how many of the most confident test errors to list
    # Behavioural checks: default (rnnflow/insight/checks.yaml) | none | a YAML file | a list
    # of cases. Their schema and loader are rnnflow/insight/cases.py (`load_plan` validates
    # them when the params file is read); rnnflow/insight/checks.py scores them.
    checks: str | list[dict[str, Any]] = "default"


# The reference models fitted beside a params file's RNNs, on the same splits
# (rnnflow/network/baselines.py): the train split's majority class, and TF-IDF with logistic
# regression on word or character n-grams (the better on val).
BASELINES = ("majority", "bag_of_words")
# How the runs, lines and tables name each baseline to a user, in the order a line lists them.
BASELINE_TITLES = {"majority": "majority", "bag_of_words": "bag-of-words"}


def baseline_names(value: Any) -> list[str]:
    """A params file's `baselines`: a list of names, one name, or `none` (also null or []) for
    no baselines. A ValueError names an unknown one and the closest known name."""
    if value is None or value == "none":
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"baselines: expected a list of names or none, got {value!r}")
    for name in names:
        if name not in BASELINES:
            hint = did_you_mean(name, [*BASELINES, "none"], " Did you mean '{}'?")
            raise ValueError(f"baselines: unknown baseline '{name}'.{hint} The baselines are "
                             f"{', '.join(BASELINES)}, or none for no baselines.")
    return list(dict.fromkeys(names))  # each once, in the order given


class Point(Section):
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
    def _flatten_needs_a_fixed_length(self) -> Point:
        if self.model.return_sequences and self.model.pooling == "none" and (
                self.pad.maxlen is None or self.pad.bucket):
            why = "pad.maxlen: null" if self.pad.maxlen is None else "pad.bucket: true"
            raise ValueError(
                f"{why} gives batches of varying length, but model.return_sequences: true "
                "flattens every time step into the Dense layer, which needs a fixed length; "
                "set model.return_sequences: false (the last state), model.pooling: max or "
                "mean, or a fixed pad.maxlen without pad.bucket")
        return self

    @model_validator(mode="after")
    def _every_step_reads_forward(self) -> Point:
        if self.train.loss_steps == "all" and self.model.bidirectional:
            raise ValueError(
                "train.loss_steps: all scores the output after each token, but with "
                "model.bidirectional: true the backward direction has already read the whole "
                "review at every step; set model.bidirectional: false or train.loss_steps: last")
        # A pooled head read after step t would be a running max or mean over the steps so far:
        # a network the lesson does not have and rnnflow does not build. Refused, not guessed.
        if self.train.loss_steps == "all" and self.model.pooling != "none":
            raise ValueError(
                f"train.loss_steps: all reads the head after each token, but model.pooling: "
                f"{self.model.pooling} pools every step into one vector first; set "
                "model.pooling: none or train.loss_steps: last")
        return self

    def flat(self) -> dict[str, Any]:
        """Every resolved setting as a dotted key, the form MLflow params and `--set` use.

        A mapping-valued setting (`dataset.read_options`) is one key, whatever it holds, so
        every run logs the same keys and `mlflow ui` can compare them."""
        tree = self.model_dump()
        return {"name": tree.pop("name"),
                **{f"{section}.{key}": value for section, fields in tree.items()
                   for key, value in fields.items()}}


# --- points by dotted key -----------------------------------------------------------------------
def valid_keys() -> list[str]:
    """Every dotted key of a Point: what `--set`, grids and a search's space may name."""
    return list(Point().flat())


def mapping_keys() -> list[str]:
    """Keys whose value is a mapping of free keys; `dataset.read_options.sep` sets one entry."""
    return [f"{section}.{name}" for section, info in Point.model_fields.items()
            if isinstance(info.annotation, type) and issubclass(info.annotation, Section)
            for name, field in info.annotation.model_fields.items()
            if typing.get_origin(field.annotation) is dict]


def did_you_mean(key: str, candidates: list[str], style: str = " Did you mean '{}'?") -> str:
    """The closest of `candidates` to a mistyped `key`, as a hint for an error message."""
    close = difflib.get_close_matches(key, candidates, n=1)
    return style.format(close[0]) if close else ""


def check_key(dotted: str, where: str) -> None:
    """A ConfigError unless `dotted` is a key of a Point (or an entry of a mapping key)."""
    keys = valid_keys()
    if dotted not in keys and not any(dotted.startswith(f"{m}.") for m in mapping_keys()):
        raise ConfigError(f"{where}: unknown key '{dotted}'.{did_you_mean(dotted, keys)}")


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested mapping, making the sections on the way."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def validate(model: type[Section], tree: dict[str, Any], where: str,
             known_keys: list[str] | None = None):
    """`model` from `tree`; a ConfigError names `where`, each bad key and why. An unknown key
    gets the closest of `known_keys` (default: the Point's keys) suggested."""
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        reasons = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                hint = did_you_mean(loc, known_keys or valid_keys(), " (did you mean '{}'?)")
                reasons.append(f"unknown key '{loc}'{hint}")
            elif err["type"] == "value_error" and (
                    not loc or err["msg"].removeprefix("Value error, ").startswith(f"{loc}.")):
                # a check across sections or keys, whose message names the keys itself
                reasons.append(err["msg"].removeprefix("Value error, "))
            else:
                reasons.append(f"{loc or 'params'}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(f"{where}: " + "; ".join(reasons)) from None


def with_values(base: Point, values: dict[str, Any], where: str) -> Point:
    """`base` with `values` (dotted keys) set, validated: a grid point, a search trial."""
    tree = yaml.safe_load(yaml.safe_dump(base.model_dump()))  # deep copy of plain data
    for dotted, value in values.items():
        set_dotted(tree, dotted, value)
    return validate(Point, tree, where)
