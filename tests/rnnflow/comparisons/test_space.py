"""The `search` and `registry` sections: every key checked before the first trial, with the
grid's messages; through load_plan and through `rnnflow run` (exit 2)."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

import flows.train_rnn
from rnnflow.cli import app
from rnnflow.comparisons.plan import load_plan
from rnnflow.comparisons.space import Choice, Range, parse_space, suggest
from rnnflow.config import ConfigError, with_values
from tests.helpers import REPO

PARAMS = REPO / "params"
SPACE = ("  space:\n    model.num_neurons: {int: [16, 128], log: true}\n"
         "    model.cell: [simple_rnn, gru, lstm]\n")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_a_search_section_parses_with_defaults(tmp_path):
    plan = load_plan(_write(tmp_path, "name: t\nsearch:\n" + SPACE))
    s = plan.search
    assert (s.trials, s.metric, s.sampler, s.pruner, s.storage) == (
        20, "val_accuracy", "tpe", "median", None)
    assert plan.registry.enabled and plan.registry.model_name is None
    dims = parse_space(s.space, "t")
    assert dims["model.num_neurons"] == Range("int", 16, 128, log=True)
    assert dims["model.cell"] == Choice(("simple_rnn", "gru", "lstm"))
    assert "search" in plan.as_yaml()


def test_sampler_options_reach_the_sampler(tmp_path):
    from rnnflow.comparisons.space import make_sampler

    plan = load_plan(_write(tmp_path, "name: t\nsearch:\n  sampler_options: "
                                      "{n_startup_trials: 3}\n" + SPACE))
    sampler = make_sampler(plan.search, 0)
    assert sampler._n_startup_trials == 3 and sampler._constant_liar  # optuna's own fields
    default = make_sampler(load_plan(_write(tmp_path, "name: t\nsearch:\n" + SPACE)).search, 0)
    assert default._n_startup_trials == 10


def test_shipped_search_params_validate():
    plan = load_plan(PARAMS / "search.yaml")
    assert plan.search is not None and plan.base.embedding.source == "train"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("search:\n  space:\n    model.num_neuron: [1, 2]\n",
         "unknown key 'model.num_neuron'. Did you mean 'model.num_neurons'?"),
        ("search:\n  space:\n    model.cell: []\n", "empty list of choices"),
        ("search:\n  space:\n    model.dropout: {float: [0.5, 0.1]}\n", "low < high"),
        ("search:\n  space:\n    model.dropout: {float: [0.1]}\n", "[low, high]"),
        ("search:\n  space:\n    model.num_neurons: {int: [1.5, 4]}\n", "whole numbers"),
        ("search:\n  space:\n    train.learning_rate: {float: [0, 0.1], log: true}\n",
         "log range needs low > 0"),
        ("search:\n  space:\n    model.dropout: {float: [0.1, 0.5], log: true, step: 0.1}\n",
         "log and step"),
        ("search:\n  space:\n    model.dropout: {range: [0, 1]}\n", "exactly one of int"),
        ("search:\n  space:\n    model.dropout: 0.3\n", "expected a list of choices"),
        # every choice and both ends of a range must make a valid Point
        ("search:\n  space:\n    model.cell: [gru, transformer]\n", "model.cell"),
        ("search:\n  space:\n    model.dropout: {float: [0.0, 1.0]}\n", "model.dropout"),
        ("search:\n  space:\n    pad.maxlen: {int: [0, 100]}\n", "pad.maxlen"),
        ("search: {}\n", "space is empty"),
        ("search:\n  metric: accuracy\n" + SPACE, "search.metric"),
        ("search:\n  sampler: grid\n" + SPACE, "search.sampler"),
        ("search:\n  trial: 3\n" + SPACE, "did you mean 'search.trials'"),
        ("search:\n  trials: 0\n" + SPACE, "search.trials"),
        ("search:\n  pruner_options: {n_startup: 1}\n" + SPACE, "search.pruner_options"),
        ("search:\n  pruner: none\n  pruner_options: {n_startup_trials: 1}\n" + SPACE,
         "takes no options"),
        ("search:\n  sampler_options: {n_startup: 1}\n" + SPACE, "search.sampler_options"),
        ("search:\n  sampler_options: {seed: 1}\n" + SPACE, "search.seed"),
        ("search:\n  sampler: random\n  sampler_options: {n_startup_trials: 1}\n" + SPACE,
         "search.sampler_options"),
        ("search:\n  storage: optuna.db\n" + SPACE, "search.storage"),
        ("repeats: 2\nsearch:\n" + SPACE, "repeats"),
        ("variants: [{model.cell: gru}]\nsearch:\n" + SPACE, "variants"),
        ("grid: {pad.maxlen: [100]}\nsearch:\n" + SPACE, "not in search.space"),
        ("grid: {model.num_neurons: [8]}\nsearch:\n" + SPACE, "outside"),
        ("registry: {min_delta: -0.1}\n", "registry.min_delta"),
        ("registry: {model: x}\n", "registry.model_name"),
    ],
)
def test_bad_search_names_file_and_key(tmp_path, text, needle):
    path = _write(tmp_path, "name: t\n" + text)
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_search_and_registry_keys_are_settable(tmp_path):
    path = _write(tmp_path, "name: t\nsearch:\n" + SPACE)
    plan = load_plan(path, ["search.trials=30", "search.space.model.dropout={float: [0, 0.5]}",
                            "registry.min_delta=0.01", "registry.model_name=sentiment"])
    assert plan.search.trials == 30 and set(plan.search.space) == {
        "model.num_neurons", "model.cell", "model.dropout"}
    assert (plan.registry.min_delta, plan.registry.model_name) == (0.01, "sentiment")
    assert load_plan(path, {"search": None}).search is None
    with pytest.raises(ConfigError, match="Did you mean 'search.trials'"):
        load_plan(path, ["search.trails=3"])
    with pytest.raises(ConfigError, match="unknown key 'search.trials.x'"):
        load_plan(path, ["search.trials.x=3"])


def test_a_grid_beside_a_search_seeds_it(tmp_path):
    plan = load_plan(_write(tmp_path, "name: t\ngrid: {model.cell: [gru, lstm]}\nsearch:\n"
                                      + SPACE))
    assert [p.model.cell for p in plan.points] == ["gru", "lstm"]


def test_suggest_draws_every_key_within_its_space(tmp_path):
    import optuna

    plan = load_plan(_write(tmp_path, "name: t\nsearch:\n" + SPACE
                            + "    train.learning_rate: {float: [0.0001, 0.01], log: true}\n"))
    dims = parse_space(plan.search.space, "t")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(5):
        values = suggest(study.ask(), dims)
        assert 16 <= values["model.num_neurons"] <= 128
        assert values["model.cell"] in ("simple_rnn", "gru", "lstm")
        p = with_values(plan.base, values, "t")
        assert p.model.num_neurons == values["model.num_neurons"]


@pytest.fixture
def no_flow(monkeypatch):
    calls = []
    monkeypatch.setattr(flows.train_rnn, "train_rnn",
                        lambda *a, **k: calls.append(a) or [])
    monkeypatch.setattr("rnnflow.cli._quiet_environment", lambda debug=False: None)
    return calls


def test_cli_exits_2_on_a_bad_search(tmp_path, no_flow):
    path = _write(tmp_path, "name: t\nsearch:\n  space:\n    model.cel: [gru]\n")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "Did you mean 'model.cell'" in result.output
    assert "Traceback" not in result.output and no_flow == []
    result = CliRunner().invoke(app, ["run", str(path), "--set", "search.space={}"])
    assert result.exit_code == 2 and "space is empty" in result.output
