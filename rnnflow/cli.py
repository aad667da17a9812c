"""The `rnnflow` command: the composition root, the one module of rnnflow that starts the flows
(flows/), inside its commands."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from rnnflow.comparisons.plan import data_overrides, load_plan, parse_override
from rnnflow.config import ConfigError
from rnnflow.memory import freeze_long_lived

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run the NLP-in-Action RNN sentiment experiment as tracked Prefect flows.")

# The options `predict` and `explain` share: which run, and texts from a file.
RunRef = Annotated[str, typer.Option(help="A run id, `latest` or `best` (val_accuracy).")]
ExperimentName = Annotated[str | None, typer.Option(
    help="Look for latest/best in this experiment only.")]
TextsFile = Annotated[Path | None, typer.Option(help="Read one text per line from this file.")]

# Errors a user can fix: one clear line and exit code 2, the traceback only with --debug.
EXIT_BAD_INPUT = 2


class _NoTraceback(logging.Filter):
    """Prefect logs a failed task's traceback; without --debug the user gets one line.

    An error the user can fix (`_user_errors`) is the command's own last line, which says what
    to do; Prefect's lines that repeat it (the task's and the flow's failed states, the flow's
    "Encountered exception") are dropped, so the way on is not buried under three copies."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], _user_errors()):
            return False
        message = record.getMessage()
        if any(f"{name}:" in message or f"{name}(" in message for name in _user_error_names()):
            return False
        record.exc_info, record.exc_text = None, None
        return True


def _quiet_environment(debug: bool = False) -> None:
    """rnnflow's own progress at INFO; the libraries' chatter only when it is a warning."""
    _environment_defaults()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("rnnflow").setLevel(logging.INFO)
    for noisy in ("httpx", "gensim", "mlflow", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not debug:
        for name in ("prefect.task_runs", "prefect.flow_runs", "prefect.engine"):
            logging.getLogger(name).addFilter(_NoTraceback())


def _user_error_names() -> tuple[str, ...]:
    return tuple(cls.__name__ for cls in _user_errors())


def _environment_defaults() -> None:
    """The libraries' settings rnnflow's commands need, where the user did not choose."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "rnnflow")
    # That sends rnnflow's loggers to the Prefect API inside flow runs; outside one (`rnnflow
    # serve` announcing its deployments) there is no run to send to, which Prefect would
    # otherwise answer with a UserWarning per line.
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # The temporary Prefect server would otherwise phone home (and log failures offline).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # MLflow draws a progress bar for every artifact it fetches (test predictions, models).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow sets its own logger's level as it is imported (INFO: "Creating initial MLflow
    # database tables", "Validating input example"), over the one _quiet_environment sets.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _user_errors() -> tuple[type[BaseException], ...]:
    from rnnflow.comparisons.study import StudyError
    from rnnflow.data.download import ChecksumError, DownloadError
    from rnnflow.data.embeddings import EmbeddingError
    from rnnflow.data.reviews import DatasetError
    from rnnflow.tracking import TrackingError

    return (ConfigError, ChecksumError, DownloadError, DatasetError, EmbeddingError,
            StudyError, TrackingError, FileNotFoundError)


@app.command()
def run(
    params_file: Annotated[Path, typer.Argument(help="A params/*.yaml file.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a key: --set train.epochs=3 (repeatable).")] = None,
    fresh: Annotated[bool, typer.Option(
        help="Train from scratch even where a finished run could be reused or an earlier "
             "run continued.")] = False,
    runner: Annotated[str | None, typer.Option(
        help="Where the points train: local (one after another) or dask; overrides the "
             "params file's `runner`.")] = None,
    dask_address: Annotated[str | None, typer.Option(
        help="Join the Dask scheduler at this address (tcp://host:8786) instead of starting "
             "a LocalCluster; implies --runner dask.")] = None,
    dask_cluster: Annotated[str | None, typer.Option(
        help="Start a cluster of this class instead of a LocalCluster (dask_jobqueue."
             "SLURMCluster, PBSCluster, ...; its options: --set dask_cluster.options.cores=2, "
             "its size: --set dask_cluster.jobs=2); implies --runner dask.")] = None,
    data: Annotated[str | None, typer.Option(
        help="Train on this dataset: a path (an archive, a table or a folder) or a URL. Sets "
             "dataset.url, and trains the vectors on the corpus where the params file's are a "
             "pretrained download.")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Run one params file: every point of its grid becomes one MLflow run."""
    note = None
    try:
        overrides = dict(parse_override(s) for s in set_ or [])
        if data is not None:
            added, note = data_overrides(load_plan(params_file, overrides), data, overrides)
            overrides.update(added)
        if dask_address is not None:
            overrides.update(dask_address=dask_address, runner=runner or "dask")
        elif runner is not None:
            overrides["runner"] = runner
        if dask_cluster is not None:
            overrides.update({"dask_cluster.class": dask_cluster,
                              "runner": overrides.get("runner") or runner or "dask"})
        # Fail before Prefect or MLflow start (the flow, which deployments also call, reads
        # the file again). The Dask runner checks a cluster class; its check imports neither
        # Prefect nor Dask unless the file names a class.
        from flows.dask_cluster import check_cluster

        plan = load_plan(params_file, overrides)
        check_cluster(plan.dask_cluster, str(params_file))
    except ConfigError as exc:
        _fail(exc, debug)
    _quiet_environment(debug)
    if note:
        logging.getLogger("rnnflow.cli").info(note)
    # A tracking server that refuses this user says so before the flow's imports, not after.
    from rnnflow.tracking import TrackingError, check_access

    try:
        check_access(plan.name)
    except TrackingError as exc:
        _fail(exc, debug)
    from flows.local_server import prefect_api

    def load_flow():
        from flows.train_rnn import train_rnn

        return train_rnn

    # Without PREFECT_API_URL a temporary Prefect server boots while the flow is imported.
    with prefect_api(meanwhile=load_flow) as train_rnn:
        # The flow's modules and the temporary server's objects live as long as the process:
        # out of the collector's way before the run's first model (rnnflow/memory.py).
        freeze_long_lived()
        try:
            results = train_rnn(str(params_file), overrides, fresh=fresh)
        except _user_errors() as exc:
            _fail(exc, debug, _way_on(exc, params_file, overrides, _rerun_args(
                params_file, set_, fresh, runner, dask_address, dask_cluster)))
    for row in results:
        if row.get("state") == "PRUNED":  # a search trial the pruner stopped
            typer.echo(f"run {row['run_id']} (trial {row['trial']}, pruned at epoch "
                       f"{row['pruned_at_epoch']})")
            continue
        point = _point_of(row)
        typer.echo(f"run {row['run_id']}{f' [{point}]' if point else ''}"
                   f"{' (reused)' if row.get('reused') else ''}: "
                   f"val_accuracy={row['val_accuracy']:.4f} "
                   f"test_accuracy={row['test_accuracy']:.4f}{_versus(row)}")
    _print_comparison_link(plan.name)


def _print_comparison_link(experiment: str) -> None:
    """The runs compared in `mlflow ui`, as a command to type. A bare `mlflow ui` opens on
    the GenAI overview, whatever the store says (the browser keeps that choice); the link
    opens the model-training view on the experiment's saved view (rnnflow/tracking/view.py)."""
    from rnnflow import tracking

    try:
        link = tracking.link_for(experiment)
    except Exception:  # noqa: BLE001 - a closing hint, never the run's failure
        return
    if link:
        typer.echo(f"compare the runs: {link}")


def _versus(row: dict) -> str:
    """A closing line's framing against the baselines: the line of a run trained now, the
    logged difference of a reused one (its baselines' scores are in their own runs), and
    "LEARNED NOTHING" where the run did (rnnflow/comparisons/framing.py)."""
    from rnnflow.comparisons.framing import versus_of

    versus = versus_of(row)
    return (f"; {versus}" if versus else "") + (
        " - LEARNED NOTHING" if row.get("learned_nothing") else "")


def _point_of(row: dict) -> str:
    """What a closing line calls its run: its grid point (`num_neurons=2 maxlen=20`, `#2` for a
    repeat) or search trial; nothing for the one run of a single point."""
    if "trial" in row:
        return f"trial {row['trial']}"
    return str(row.get("point", ""))


@app.command()
def predict(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to score.")] = None,
    run: RunRef = "latest",
    experiment: ExperimentName = None,
    file: TextsFile = None,
    model_ref: Annotated[str | None, typer.Option(
        "--model", help="A registered model instead of a run: NAME@champion, NAME@challenger, "
                        "NAME/VERSION or models:/...")] = None,
    all_classes: Annotated[bool, typer.Option(
        "--all", help="Also print every class's probability (models of more than two "
                      "classes).")] = False,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Print, for each text, a probability and the predicted class: with two classes the
    probability of the second (of a positive review, for sentiment) and `positive`/`negative`
    for sentiment or the class name (`ham`/`spam`); with more, the predicted class's
    probability and name."""
    items = _texts(texts, file, "score", debug)
    _quiet_environment(debug)
    import pandas as pd

    from rnnflow import tracking
    from rnnflow.network.predict import import_for_prediction

    try:
        # A run that is not there fails here, before TensorFlow loads and writes its notes.
        run_id = tracking.resolve_run(run, experiment) if model_ref is None else ""
        with _stderr_held_back(unless=debug):
            import_for_prediction()
            if model_ref is not None:
                model, run_id = tracking.load_registered_model(model_ref)
            else:
                model = tracking.load_text_model(run_id, quiet=not debug)
            result = model.predict(pd.DataFrame({"text": items}))
    except tracking.TrackingError as exc:
        _fail(exc, debug)
    per_class = [c for c in result.columns if str(c).startswith("prob_")]
    typer.echo(f"# {'model' if model_ref is not None else 'run'} {run_id}", err=True)
    if per_class and all_classes:
        typer.echo("\t".join(["probability", "label", *(c[5:] for c in per_class), "text"]))
    # The model's own `class` column, so that this prints what a served model answers.
    for i, (text, prob, name) in enumerate(zip(items, result.probability, result["class"],
                                               strict=True)):
        short = text if len(text) <= 70 else text[:67] + "..."
        extra = [f"{result[c].iloc[i]:.3f}" for c in per_class] if all_classes else []
        typer.echo("\t".join([f"{prob:.3f}", str(name), *extra, short]))


@app.command()
def promote(
    model: Annotated[str, typer.Option(
        "--model", help="The registered model: registry.model_name, by default the params "
                        "file's name.")],
    run: Annotated[str | None, typer.Option(
        help="A run id, `latest` or `best` (val_accuracy): its model becomes the champion, "
             "registered as a new version first if it is not one.")] = None,
    experiment: ExperimentName = None,
    version: Annotated[int | None, typer.Option(
        min=1, help="A version of the model instead of a run.")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Make a run's model, or a version, the champion (`--model NAME@champion`) by hand,
    whatever the gate decided; prints the version it replaced."""
    if (run is None) == (version is None):
        _fail(ConfigError("give --run (a run id, latest or best) or --version, not both"), debug)
    if experiment is not None and run is None:
        _fail(ConfigError("--experiment narrows --run latest/best; it needs --run"), debug)
    _quiet_environment(debug)
    from rnnflow import tracking
    from rnnflow.comparisons.champion import promote_command

    try:
        run_id = tracking.resolve_run(run, experiment) if run is not None else None
        champion, before = tracking.promote(
            model, version=None if version is None else str(version), run_id=run_id)
    except tracking.TrackingError as exc:
        _fail(exc, debug)
    now = f"v{champion.version} (run {champion.run_id})"
    if before is not None and before.version == champion.version:
        typer.echo(f"model {model}: {now} is already the champion; nothing changed")
    elif before is None:
        typer.echo(f"model {model}: champion is now {now}; there was no champion before")
    else:
        typer.echo(f"model {model}: champion is now {now}, replacing v{before.version} "
                   f"(run {before.run_id}); to undo: "
                   f"{promote_command(model, before.version)}")


@app.command()
def compare(
    refs: Annotated[list[str], typer.Argument(
        help="Run ids or experiment names (an experiment stands for its finished training "
             "runs); the first run is the baseline.")],
    out: Annotated[Path | None, typer.Option(
        help="Where to write the overlaid learning curves (default: data/compare/<run "
             "ids>.png under the stage folder, $RNNFLOW_DATA_DIR or ./data, which git "
             "ignores).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Print the params that differ, metric deltas with a paired 95% interval on the shared
    test reviews, and the first stage that differs; write the learning curves overlaid."""
    _quiet_environment(debug)
    from rnnflow import tracking
    from rnnflow.comparisons import compare as comparing

    try:
        records = tracking.load_runs(refs)
        baselines = tracking.load_baseline_runs(records) if len(records) > 1 else {}
    except tracking.TrackingError as exc:
        _fail(exc, debug)
    if len(records) < 2:
        _fail(ConfigError(f"{' '.join(refs)}: {len(records)} run found; compare needs two or "
                          "more"), debug)
    typer.echo(comparing.render(records, baselines))
    if out is None:  # not the checkout itself, where a stray image would wait to be committed
        from rnnflow.data.storage import data_dir

        out = comparing.curves_path(records, data_dir())
        out.parent.mkdir(parents=True, exist_ok=True)
    fig = comparing.plot_curves(records)
    fig.savefig(out, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)  # else pyplot keeps it as long as a process that calls the command lives
    typer.echo(f"learning curves: {out}")


@app.command()
def serve(
    params_dir: Annotated[Path, typer.Argument(help="Folder of params files.")] = Path("params"),
    port: Annotated[int, typer.Option(
        help="Port of the local Prefect server started when PREFECT_API_URL is unset.")] = 4200,
) -> None:
    """Serve one `train-rnn` deployment per params file (trigger with `prefect deployment run
    train-rnn/<file stem>`)."""
    if not params_dir.is_dir():
        _fail(ConfigError(f"{params_dir}: no such folder of params files"), False)
    _quiet_environment()
    from flows.serve import serve_params

    try:
        serve_params(params_dir, port)
    except ConfigError as exc:
        _fail(exc, False)


@app.command()
def explain(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to explain.")] = None,
    run: RunRef = "latest",
    experiment: ExperimentName = None,
    file: TextsFile = None,
    html: Annotated[Path | None, typer.Option(
        help="Also write the explanations as one self-contained HTML page.")] = None,
    steps: Annotated[int, typer.Option(
        min=1, help="Integrated-gradients steps (trapezoid rule).")] = 32,
    target: Annotated[str | None, typer.Option(
        "--class", help="The class whose probability is attributed (models of more than two "
                        "classes; default: each text's predicted class).")] = None,
    unrolled: Annotated[bool, typer.Option(
        help="Also show the network unrolled: its probability after each token it read, as a "
             "table (and a line over the tokens in --html).")] = False,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Show what the network saw of each text and which words drove its prediction: tokens in
    order, OOV and truncated ones marked, padding, integrated-gradients attribution per token;
    with --unrolled, how its opinion moved token by token."""
    items = _texts(texts, file, "explain", debug)
    _quiet_environment(debug)
    from rnnflow import tracking
    from rnnflow.insight.explain import explain as explain_texts
    from rnnflow.insight.render import explain_page, terminal
    try:
        run_id = tracking.resolve_run(run, experiment)
        with _stderr_held_back(unless=debug):  # TensorFlow's notes as it loads
            text_model = tracking.load_text_model_object(run_id)
        # Runs from before the setting trained the vanilla way.
        loss_steps = (tracking.load_runs([run_id])[0].params.get("train.loss_steps", "last")
                      if unrolled else None)
    except tracking.TrackingError as exc:
        _fail(exc, debug)
    if target is not None and getattr(text_model, "classes", None) is None:
        names = getattr(text_model, "class_names", ["neg", "pos"])
        _fail(ConfigError(f"--class needs a model of more than two classes; this one has two "
                          f"({', '.join(names)}), and its attribution is always the "
                          f"probability of {names[1]!r}"), debug)
    try:
        with _stderr_held_back(unless=debug):  # and as it runs its first operations
            explanations = explain_texts(text_model, items, steps=steps, target=target,
                                         unrolled=unrolled, loss_steps=loss_steps)
    except ValueError as exc:
        _fail(ConfigError(str(exc)), debug)
    color = sys.stdout.isatty()
    typer.echo(f"# run {run_id}", err=True)
    for i, explanation in enumerate(explanations):
        typer.echo(f"text {i + 1}: {terminal(explanation, color)}")
    if html is not None:
        html.write_text(explain_page(explanations, "rnnflow explain", f"run {run_id}"),
                        encoding="utf-8")
        typer.echo(f"# wrote {html}", err=True)


@app.command()
def users(
    class_list: Annotated[Path, typer.Argument(
        help="One user per line: a name, or a name and a password (space or comma between); "
             "`#` starts a comment.")],
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """For a teacher: create a class's users on the tracking server (MLFLOW_TRACKING_URI, run
    with `--app-name basic-auth`), as its admin (MLFLOW_TRACKING_USERNAME/PASSWORD). Prints
    `name,password` for each user created (a random password where the list gives none) to
    hand out; users the server has already are left as they are."""
    if not class_list.is_file():
        _fail(ConfigError(f"{class_list}: not found"), debug)
    from rnnflow import tracking
    from rnnflow.tracking.users import parse_users

    try:
        entries = parse_users(class_list.read_text(encoding="utf-8"))
    except ValueError as exc:
        _fail(ConfigError(f"{class_list}: {exc}"), debug)
    _quiet_environment(debug)
    try:
        made = tracking.create_users(entries)
    except tracking.TrackingError as exc:
        _fail(exc, debug)
    typer.echo("name,password")
    for user in made:
        if user.created:
            typer.echo(f"{user.name},{user.password}")
        else:
            typer.echo(f"# {user.name}: already a user, password unchanged", err=True)
    created = sum(u.created for u in made)
    typer.echo(f"# {created} user(s) created, {len(made) - created} already there", err=True)


@contextlib.contextmanager
def _stderr_held_back(unless: bool) -> Iterator[None]:
    """Hold back what the block writes to file descriptor 2 and let it out only if the block
    fails. TensorFlow's C++ runtime writes its oneDNN notes there as it loads, whatever
    TF_CPP_MIN_LOG_LEVEL says."""
    if unless:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            except BaseException:
                sys.stderr.flush()
                os.dup2(saved, 2)
                held.seek(0)
                sys.stderr.buffer.write(_without_tf_notes(held.read()))
                sys.stderr.flush()
                raise
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


# What TensorFlow's C++ runtime writes as it loads, before absl's logging starts (so whatever
# TF_CPP_MIN_LOG_LEVEL says): notes, never the cause of a failure.
_TF_NOTES = (b"All log messages before absl::InitializeLog() is called",
             b"oneDNN custom operations are on")


def _without_tf_notes(held: bytes) -> bytes:
    """What a failed block wrote to stderr, TensorFlow's loading notes left out."""
    return b"".join(line for line in held.splitlines(keepends=True)
                    if not any(note in line for note in _TF_NOTES))


def _texts(texts: list[str] | None, file: Path | None, verb: str, debug: bool) -> list[str]:
    """The texts given as arguments, then the non-empty lines of `file`."""
    items = list(texts or [])
    if file is not None:
        if not file.is_file():
            _fail(ConfigError(f"--file {file}: not found"), debug)
        items += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not items:
        _fail(ConfigError(f"give texts to {verb}, or --file with one text per line"), debug)
    return items


def _fail(exc: BaseException, debug: bool, way_on: str = "") -> None:
    if debug:
        raise exc
    typer.echo(f"error: {exc}{way_on}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


# The Makefile's PARAMS default: `make run` without PARAMS runs it.
MAKE_DEFAULT_PARAMS = Path("params/lesson16.yaml")


def _rerun_args(params_file: Path, set_: list[str] | None, fresh: bool, runner: str | None,
                dask_address: str | None, dask_cluster: str | None) -> list[str]:
    """The arguments after `rnnflow run` that gave this run, --data left out: what the way-on
    line repeats, so its command is this one with a local copy."""
    args = [str(params_file)]
    for s in set_ or []:
        if s.split("=", 1)[0].strip() != "dataset.url":  # --data replaces it
            args += ["--set", s]
    for flag, value in (("--runner", runner), ("--dask-address", dask_address),
                        ("--dask-cluster", dask_cluster)):
        if value is not None:
            args += [flag, value]
    return args + (["--fresh"] if fresh else [])


def _rerun(args: list[str], data: str) -> str:
    """The command that runs `rnnflow run ARGS` again on `data`: `make run ... DATA=...` where
    this run was started by `make run` (the Makefile sets RNNFLOW_MAKE_RUN), else `rnnflow run`."""
    if os.environ.get("RNNFLOW_MAKE_RUN"):
        params, rest = Path(args[0]), args[1:]
        words = ["make", "run"]
        if params != MAKE_DEFAULT_PARAMS:
            words.append(f"PARAMS={params}")
        if rest:
            words.append(f"ARGS={shlex.join(rest)}")
        return shlex.join([*words, f"DATA={data}"])
    return shlex.join(["rnnflow", "run", *args, "--data", data])


def _way_on(exc: BaseException, params_file: Path, overrides: dict, args: list[str]) -> str:
    """For a dataset download that failed (no network, a wrong URL) or vectors that could not be
    downloaded: how to go on with a local copy, as a command that runs as printed once its
    path is filled in ('' for other errors)."""
    from rnnflow.data.download import DownloadError, present_file
    from rnnflow.data.embeddings import EmbeddingError

    if isinstance(exc, DownloadError):
        name = Path(exc.url.rstrip("/").rsplit("/", 1)[-1] or "dataset").name
        return (f". To go on with a local copy of the dataset (the vectors are then trained on "
                f"it): {_rerun(args, f'/path/to/{name}')}")
    if isinstance(exc, EmbeddingError) and exc.unreachable:
        try:
            url = load_plan(params_file, overrides).base.dataset.url
        except ConfigError:
            url = None
        here = present_file(url) if isinstance(url, str) else None
        if here is not None:  # the dataset is here (local, or downloaded): --data names it
            with contextlib.suppress(ValueError):
                here = here.relative_to(Path.cwd())
            return (f". To train the vectors on the corpus instead: "
                    f"{_rerun(args, str(here))}")
        return (". To train the vectors on the corpus instead: "
                + shlex.join(["rnnflow", "run", *args, "--set", "embedding.source=train"]))
    return ""


def main() -> None:
    app(prog_name="rnnflow")


if __name__ == "__main__":
    sys.exit(main())
