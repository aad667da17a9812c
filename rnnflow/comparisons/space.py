"""The `search` section of a params file, without the study: `SearchConfig`, its space of
dotted keys, checked before the first trial, and the point each trial trains.

A space maps dotted keys (the `--set` keys) to one of:
- a list of choices: `model.cell: [simple_rnn, gru, lstm]`;
- `{int: [low, high]}`, optionally with `log: true` or `step: n`;
- `{float: [low, high]}`, optionally with `log: true` or `step: x`.

Every key is checked like a grid key (unknown keys get the closest valid one suggested), every
range and choice list for shape, and every choice and both ends of every range as a point on
the params file's own settings, so a value the space can produce that no Point accepts
stops the run before any work. The sampler and pruner are built here too (optuna, imported
only when a plan has a search), so their options are checked as early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from rnnflow.config import ConfigError, Point, Section, check_key, with_values

# The keys that change a preprocessing stage; the rest (model.*, train.*, evaluate.*) only
# change training, so trials that differ only there share every stage.
PREPROCESSING = ("dataset.", "tokenize.", "embedding.", "pad.")
# Where the metric is better: the study's direction.
DIRECTIONS = {"val_accuracy": "maximize", "val_loss": "minimize",
              "val_macro_f1": "maximize"}


class SearchConfig(Section):
    """A hyperparameter search (optuna): `trials` points drawn from `space`, each a run.

    `space` maps dotted keys to a list of choices, `{int: [low, high]}` or
    `{float: [low, high]}` (with `log: true` and `step:` optional); `parse_space` below reads it.
    """

    trials: int = Field(20, ge=1, le=10_000)  # the study's target: finished + pruned trials
    # maximised / minimised; val_macro_f1 is logged by runs of more than two classes only
    metric: Literal["val_accuracy", "val_loss", "val_macro_f1"] = "val_accuracy"
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


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]

    def probes(self) -> list[Any]:
        return list(self.values)

    def contains(self, value: Any) -> bool:
        return value in self.values

    def suggest(self, trial, key: str) -> Any:
        return trial.suggest_categorical(key, list(self.values))


@dataclass(frozen=True)
class Range:
    kind: str  # "int" | "float"
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def probes(self) -> list[Any]:
        return [self.low, self.high]

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return self.low <= value <= self.high and (self.kind == "float" or value == int(value))

    def suggest(self, trial, key: str) -> Any:
        if self.kind == "int":
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_float(key, self.low, self.high, log=self.log, step=self.step)


Dimension = Choice | Range


def parse_space(space: dict[str, Any], where: str) -> dict[str, Dimension]:
    """Each key of `space` as a Choice or a Range; a ConfigError names the key and the fault."""
    dims: dict[str, Dimension] = {}
    for key, spec in space.items():
        here = f"{where} search.space"
        check_key(key, here)
        dims[key] = _dimension(spec, f"{here}: '{key}'")
    return dims


def _dimension(spec: Any, where: str) -> Dimension:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where} has an empty list of choices")
        bad = [v for v in spec if not (v is None or isinstance(v, bool | int | float | str))]
        if bad:
            raise ConfigError(f"{where}: a choice must be a number, string, bool or null "
                              f"(got {bad[0]!r})")
        if len(set(map(repr, spec))) != len(spec):
            raise ConfigError(f"{where}: the choices repeat a value ({spec!r})")
        return Choice(tuple(spec))
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a list of choices, {{int: [low, high]}} or "
                          f"{{float: [low, high]}} (got {spec!r})")
    kinds = [k for k in ("int", "float") if k in spec]
    extra = sorted(set(spec) - {"int", "float", "log", "step"})
    if len(kinds) != 1 or extra:
        raise ConfigError(f"{where}: expected exactly one of int or float, with log or step "
                          f"(got keys {sorted(spec)})")
    kind = kinds[0]
    bounds = spec[kind]
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)):
        raise ConfigError(f"{where}: {kind} needs [low, high] (got {bounds!r})")
    low, high = bounds
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        raise ConfigError(f"{where}: int range ends must be whole numbers (got {bounds!r})")
    if not all(math.isfinite(b) for b in bounds) or low >= high:
        raise ConfigError(f"{where}: a range needs low < high (got [{low}, {high}])")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false (got {log!r})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0 (got {low})")
    if step is not None:
        if log:
            raise ConfigError(f"{where}: log and step cannot be combined")
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0 or (
                kind == "int" and not float(step).is_integer()):
            raise ConfigError(f"{where}: step must be a positive {kind} (got {step!r})")
    return Range(kind, int(low) if kind == "int" else float(low),
                 int(high) if kind == "int" else float(high), log, step)


def check_search(search: SearchConfig, base: Point, grid: dict[str, list[Any]],
                 where: str) -> None:
    """Everything about `search` on the params file's own settings (`base`) that can be checked
    before the first trial; a `grid` beside it must lie inside its space."""
    if not search.space:
        raise ConfigError(f"{where} search: space is empty; give at least one key, e.g. "
                          "space: {model.num_neurons: {int: [16, 128]}}")
    dims = parse_space(search.space, where)
    for key, values in grid.items():
        if key not in dims:
            raise ConfigError(f"{where} grid: '{key}' is not in search.space; beside a search "
                              "the grid's points are the first trials, inside the space")
        for value in values:
            if not dims[key].contains(value):
                raise ConfigError(f"{where} grid: '{key}' value {value!r} is outside "
                                  "its search.space")
    for key, dim in dims.items():
        for value in dim.probes():
            with_values(base, {key: value}, f"{where} search.space ({key}={value})")
    if search.storage is not None and "://" not in search.storage:
        raise ConfigError(f"{where} search.storage: expected a database URL such as "
                          f"sqlite:////abs/optuna.db or postgresql://... (got {search.storage!r})")
    make_sampler(search, 0, where)
    make_pruner(search, where)


def suggest(trial, dims: dict[str, Dimension]) -> dict[str, Any]:
    """A trial's values, one per key of the space, asked of an optuna trial."""
    return {key: dim.suggest(trial, key) for key, dim in dims.items()}


def make_sampler(search: SearchConfig, offset: int, where: str = "search"):
    """The study's sampler, seeded with `seed + offset` (a resumed search gets new draws), with
    `sampler_options`; a wrong option is a ConfigError."""
    import optuna

    seed = search.seed + offset
    options = dict(search.sampler_options)
    if "seed" in options:
        raise ConfigError(f"{where} search.sampler_options: set the seed with search.seed")
    try:
        if search.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed, **options)
        # constant_liar: trials running at once on Dask are not all drawn at the same spot.
        return optuna.samplers.TPESampler(**{"constant_liar": True, **options}, seed=seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} search.sampler_options: {exc}") from None


def make_pruner(search: SearchConfig, where: str = "search"):
    """The study's pruner with `pruner_options`; a wrong option is a ConfigError."""
    import optuna

    classes = {"median": optuna.pruners.MedianPruner,
               "hyperband": optuna.pruners.HyperbandPruner}
    if search.pruner == "none":
        if search.pruner_options:
            raise ConfigError(f"{where} search.pruner_options: pruner none takes no options")
        return optuna.pruners.NopPruner()
    try:
        return classes[search.pruner](**search.pruner_options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} search.pruner_options: {exc}") from None


def preprocessing_combinations(search: SearchConfig, base: Point,
                               limit: int = 16) -> list[Point]:
    """The distinct preprocessing of the space's choices on `base` (ranges over preprocessing
    keys are not enumerable): what a Dask search builds before the fan-out. Empty above
    `limit`."""
    dims = parse_space(search.space, "search")
    keys = [k for k, d in dims.items() if k.startswith(PREPROCESSING) and isinstance(d, Choice)]
    combos: list[dict[str, Any]] = [{}]
    for key in keys:
        combos = [{**c, key: v} for c in combos for v in dims[key].probes()]  # type: ignore[union-attr]
        if len(combos) > limit:
            return []
    return [with_values(base, c, "search") for c in combos]
