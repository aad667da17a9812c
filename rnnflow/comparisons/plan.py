"""Parameter sets: a params/*.yaml file parsed into a `Plan`, with CLI overrides and grids.

A `Plan` is what one `rnnflow run` does: a `Point` (the seven step sections that shape a
result, rnnflow/config.py), the `points` it expands to (`grid` x `variants`), their `repeats`,
a `search` instead of (or seeded by) the grid, the `registry` of the winner, and where the
points train (`runner`). Only a `Point` becomes MLflow params, config.yaml and cache
keys: where a point trains changes no result.
"""

from __future__ import annotations

import itertools
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from rnnflow.comparisons.space import SearchConfig, check_search
from rnnflow.config import (
    BASELINES,
    ConfigError,
    Point,
    Section,
    baseline_names,
    check_key,
    did_you_mean,
    set_dotted,
    valid_keys,
    validate,
    with_values,
)
from rnnflow.data.locations import is_local, local_path
from rnnflow.insight.cases import load_cases


class RegistryConfig(Section):
    """After a run, the best point's text model becomes a version of `model_name`, alias
    `challenger`, and `champion` if it beats the champion (rnnflow/comparisons/champion.py)."""

    enabled: bool = True
    model_name: str | None = Field(None, min_length=1)  # none: the params file's `name`
    min_delta: float = Field(0.0, ge=0.0, le=1.0)  # test accuracy a challenger must gain
    # What the gate compares on the shared test reviews: accuracy, or macro F1 (the mean of the
    # classes' F1, for imbalanced classes); min_delta is then in macro F1.
    metric: Literal["accuracy", "macro_f1"] = "accuracy"


class AdaptConfig(Section):
    """Workers the cluster grows and shrinks between (Dask's `Cluster.adapt`); the `_jobs`
    bounds count batch jobs of a dask-jobqueue cluster instead of workers."""

    minimum: int | None = Field(None, ge=0)
    maximum: int | None = Field(None, ge=1)
    minimum_jobs: int | None = Field(None, ge=0)
    maximum_jobs: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> AdaptConfig:
        for low, high in (("minimum", "maximum"), ("minimum_jobs", "maximum_jobs")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"adapt: {low} ({lo}) is above {high} ({hi})")
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("adapt: set maximum (workers) or maximum_jobs (batch jobs)")
        return self


class DaskClusterConfig(Section):
    """A cluster class that prefect-dask starts for the flow run instead of a LocalCluster:
    `class` (a qualified name, e.g. dask_jobqueue.SLURMCluster), the `options` it is
    constructed with, and either a fixed number of `jobs` (workers, for a class that is not a
    job queue's) or `adapt` bounds.

    Checked here: what the section says on its own. The class itself, and the option names and
    `_jobs` bounds it accepts, are the Dask runner's to check (flows/dask_cluster.py), which
    `rnnflow run` and the flow do before any work."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    cluster_class: str = Field(alias="class", min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    jobs: int | None = Field(None, ge=1, le=10_000)
    adapt: AdaptConfig | None = None

    @field_validator("cluster_class")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if not _QUALIFIED.fullmatch(value):
            raise ValueError(f"{value!r}: expected a qualified class name such as "
                             "dask_jobqueue.SLURMCluster")
        return value

    @model_validator(mode="after")
    def _sized_once(self) -> DaskClusterConfig:
        if self.jobs is not None and self.adapt is not None:
            raise ValueError("dask_cluster: set jobs (a fixed number) or adapt (bounds), "
                             "not both")
        if "asynchronous" in self.options:
            raise ValueError("dask_cluster.options: asynchronous is managed by Prefect")
        return self


# package.module.Name: dotted Python identifiers, at least one dot.
_QUALIFIED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


class Plan(Section):
    """A params file: its base point, the points it expands to, and where they train."""

    base: Point  # the params file's own settings; grid and variants edit it into points
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    variants: list[dict[str, Any]] = Field(default_factory=list)
    # Train every point this many times, with seeds train.seed + i (i = 0 .. repeats - 1).
    repeats: int = Field(1, ge=1, le=100)
    # Where the points train: `local` one after another in the flow's process, `dask` as
    # Prefect tasks on a Dask cluster (a LocalCluster, or the scheduler at `dask_address`).
    runner: Literal["local", "dask"] = "local"
    dask_address: str | None = None
    dask_cluster: DaskClusterConfig | None = None  # a cluster class instead (HPC: dask-jobqueue)
    search: SearchConfig | None = None
    registry: RegistryConfig = RegistryConfig()
    # The reference models fitted on the same splits and logged beside the points
    # (rnnflow/network/baselines.py): a list of names, or `none`. Not a Point's: they depend on
    # the reviews alone, and a point's training key stays what it was.
    baselines: Any = Field(default_factory=lambda: list(BASELINES))
    # grid x variants, each a validated Point; built once by load_plan.
    points: list[Point] = Field(default_factory=list, exclude=True)
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

    @model_validator(mode="after")
    def _known_baselines(self) -> Plan:
        # A check of the whole plan, so its message (with "did you mean") is reported as is.
        object.__setattr__(self, "baselines", baseline_names(self.baselines))
        return self

    @model_validator(mode="after")
    def _one_cluster(self) -> Plan:
        if self.dask_cluster is not None:
            if self.dask_address is not None:
                raise ValueError("dask_cluster and dask_address: set one (start a cluster of "
                                 "that class, or join a running scheduler), not both")
            if self.runner != "dask":
                raise ValueError("dask_cluster: set runner: dask (or --runner dask) to start "
                                 "a cluster")
        return self

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def is_grid(self) -> bool:
        """A grid (or variants) is one parent run with a child run per point."""
        return bool(self.grid or self.variants)

    def repeats_of(self, point: Point) -> list[Point]:
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
        tree = {**self.base.model_dump(),
                **self.model_dump(exclude={"base"}, by_alias=True)}
        return yaml.safe_dump(tree, sort_keys=False)


_PLAN_KEYS = ("grid", "variants", "repeats", "runner", "dask_address", "dask_cluster", "search",
              "registry", "baselines")
# Plan sections whose keys `--set search.trials=30` sets one by one (their own models).
_PLAN_SECTIONS = {"search": SearchConfig, "registry": RegistryConfig,
                  "dask_cluster": DaskClusterConfig}
_DASK_ADDRESS = re.compile(r"(tcp|tls)://[A-Za-z0-9._\-\[\]:]+:(\d{1,5})")


def _known_keys() -> list[str]:
    """Every key a params file may set: the Point's, the plan's own and its sections'."""
    return valid_keys() + list(_PLAN_KEYS) + [
        f"{name}.{key}" for name, model in _PLAN_SECTIONS.items() for key in _field_names(model)]


def _field_names(model: type[Section]) -> dict[str, Any]:
    """A section's keys as a params file spells them (an alias such as `class` included)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


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


def load_plan(path: str | Path, overrides: dict[str, Any] | list[str] | None = None) -> Plan:
    """Read and validate a params file, apply `dotted.key: value` overrides and expand its
    points.

    Everything is checked before any work starts, every grid point and the search space
    included; a ConfigError names the file and the key.
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
        check_key(dotted, f"{path} (override)")
        set_dotted(tree, dotted, value)

    where = str(path)
    plan_tree = {k: tree.pop(k) for k in _PLAN_KEYS if k in tree}
    base = validate(Point, tree, where, _known_keys())
    plan = validate(Plan, {"base": base, **plan_tree}, where, _known_keys())
    for dotted, values in plan.grid.items():
        check_key(dotted, f"{path} grid")
        if not values:
            raise ConfigError(f"{path} grid: '{dotted}' has an empty list of values")
    for i, variant in enumerate(plan.variants):
        for dotted in variant:
            check_key(dotted, f"{path} variants[{i}]")
    plan.points, plan.labels = _expand(plan, where)
    if plan.search is not None:
        _check_search(plan, where)
    _check_cases(plan, where)
    return plan


def _check_cases(plan: Plan, where: str) -> None:
    """Every `evaluate.checks` the plan can train with (its own, its points', a search's
    choices), each distinct one read once: a missing file or a malformed case stops the run
    here rather than after training."""
    named = [(plan.base.evaluate.checks, where)]
    named += [(point.evaluate.checks, f"{where} grid point ({label})")
              for point, label in zip(plan.points, plan.labels, strict=True)]
    if plan.search is not None:  # check_search has refused choices that are not strings
        named += [(choice, f"{where} search.space (evaluate.checks={choice})")
                  for choice in plan.search.space.get("evaluate.checks") or []]
    seen = set()
    for spec, here in named:
        if repr(spec) in seen:
            continue
        seen.add(repr(spec))
        try:
            load_cases(spec)
        except ValueError as exc:
            raise ConfigError(f"{here}: evaluate.checks: {exc}") from None


def _check_search(plan: Plan, where: str) -> None:
    """A search beside the rest of the plan: a grid seeds it, variants and repeats cannot."""
    if plan.variants:
        raise ConfigError(f"{where} search: variants cannot be combined with a search "
                          "(a grid can: its points become the first trials)")
    if plan.repeats != 1:
        raise ConfigError(f"{where} search: repeats must be 1 (each trial is one run)")
    assert plan.search is not None
    check_search(plan.search, plan.base, plan.grid, where)


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
    info = _field_names(model).get(field)
    if info is None or (entry and typing.get_origin(info.annotation) is not dict):
        keys = [f"{section}.{k}" for k in _field_names(model)]
        raise ConfigError(f"{where}: unknown key '{dotted}'.{did_you_mean(dotted, keys)}")
    if entry:
        mapping = node.get(field)
        node[field] = {**(mapping if isinstance(mapping, dict) else {}), entry: value}
    else:
        node[field] = value


def _expand(plan: Plan, where: str) -> tuple[list[Point], list[str]]:
    """The cartesian product of `grid`, each combined with every entry of `variants` (override
    mappings for points that are not a product); no grid and no variants is one point. Each
    point is labelled by its own overrides, e.g. `num_neurons=100 maxlen=200`."""
    if not plan.is_grid:
        return [plan.base], [plan.name]
    keys = list(plan.grid)
    points, labels = [], []
    for combo in itertools.product(*(plan.grid[k] for k in keys)):
        for variant in plan.variants or [{}]:
            overrides = {**dict(zip(keys, combo, strict=True)), **variant}
            label = ", ".join(f"{k}={v}" for k, v in overrides.items())
            points.append(with_values(plan.base, overrides,
                                      f"{where} grid point ({label})"))
            labels.append(" ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in overrides.items())
                          or "base")
    return points, labels


# --- `rnnflow run --data` ------------------------------------------------------------------------
def data_url(data: str) -> str:
    """`--data`'s value as a dataset.url: a URL stays as it is; a path, relative to the working
    folder or absolute, becomes the file URL of the file or folder it names. A ConfigError
    when a local one does not exist, before anything starts."""
    path = local_path(data)
    if path is None:
        return data
    if not path.exists():
        raise ConfigError(f"--data {data}: no such file or folder")
    return path.resolve().as_uri()


def _downloads_vectors(plan: Plan) -> str | None:
    """The pretrained vectors the plan's points download, if any, named for the log line."""
    for point in [plan.base, *plan.points]:
        emb = point.embedding
        if emb.source == "gensim":
            return f"the pretrained vectors {emb.name}"
        if emb.source == "file" and emb.url and not is_local(emb.url):
            return f"the pretrained vectors {emb.url}"
    return None


def data_overrides(plan: Plan, data: str, overrides: dict[str, Any]) -> tuple[dict[str, Any],
                                                                             str | None]:
    """The overrides `--data PATH_OR_URL` adds to `overrides` (the --set ones, which `plan` was
    loaded with), and the line to log about the vectors, if any.

    `--data` is the one short way to run on a local copy: it sets dataset.url, and where the
    points would download pretrained vectors (gensim-data, or a vectors file by URL) it trains
    word2vec on the corpus instead, since a machine without the dataset's download has no
    vectors' download either. A --set of embedding.source says otherwise and is kept."""
    if "dataset.url" in overrides:
        raise ConfigError("--data and --set dataset.url both name the dataset; give one")
    added: dict[str, Any] = {"dataset.url": data_url(data)}
    what = _downloads_vectors(plan)
    if what is None or "embedding.source" in overrides:
        return added, None
    added["embedding.source"] = "train"
    return added, (f"--data: training word2vec on the corpus (embedding.source: train) instead "
                   f"of downloading {what}")
