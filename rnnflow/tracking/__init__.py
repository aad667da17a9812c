"""Everything rnnflow tells MLflow, by concern. The only package of rnnflow that imports mlflow,
and it imports nothing else of rnnflow's: what it logs is handed to it as plain values.

- `store`: which tracking store, checking that it answers, the experiment (per user on a
  server with users, and refused before any work where the user may not write);
- `users`: a class's users on a server run with MLflow's authentication app;
- `runs`: a run's lifecycle (`RunContext`, `start_run`, `group_run`), its params, metrics,
  report and tables;
- `resume`: reuse of finished runs and continued training (`find_finished`, `find_resume`);
- `models`: the Keras model and the raw-text model from code (`text_pyfunc.py`), logged and
  loaded;
- `lookup`: runs by id, experiment, `latest` or `best`, with what `rnnflow compare` needs;
- `registry`: versions of a registered model, the `challenger` and `champion` aliases;
- `system`: system metrics and the peak RSS of each training run;
- `baselines`: the baseline runs beside the points, their tags, found again by their key;
- `view`: what `mlflow ui` opens on: the saved comparison view, the best point's metrics on
  a parent run, the link that opens them.
"""

from rnnflow.tracking.baselines import (
    BASELINE,
    KIND_TAG,
    WARNING_TAG,
    BaselineRun,
    baseline_tags,
    find_baseline,
)
from rnnflow.tracking.lookup import RunRecord, load_baseline_runs, load_runs, resolve_run
from rnnflow.tracking.models import (
    load_text_model,
    load_text_model_object,
    local_model_dir,
    log_keras_model,
    log_text_model,
)
from rnnflow.tracking.registry import (
    Version,
    champion_of,
    load_registered_model,
    model_uri,
    promote,
    record_decision,
    register_version,
)
from rnnflow.tracking.resume import (
    EPOCHS_DONE_TAG,
    TRAIN_KEY_TAG,
    Finished,
    Resume,
    find_finished,
    find_resume,
    log_checkpoint,
)
from rnnflow.tracking.runs import (
    RunContext,
    active_run_id,
    group_run,
    kill_stale_runs,
    load_test_predictions,
    log_epoch,
    log_frame,
    log_grid,
    log_group,
    log_inputs,
    log_labels,
    log_metrics,
    log_params,
    log_report,
    log_search,
    set_tags,
    start_run,
)
from rnnflow.tracking.store import (
    TrackingError,
    check_access,
    experiment_name,
    git_commit,
    model_name,
    tracking_uri,
    tracking_user,
    use_experiment,
    use_tracking_uri,
)
from rnnflow.tracking.users import create_users
from rnnflow.tracking.view import (
    MLFLOW_UI,
    comparison_command,
    link_for,
    log_best_on_parent,
    save_comparison_view,
)

__all__ = [
    "BASELINE", "KIND_TAG", "WARNING_TAG", "BaselineRun", "baseline_tags", "find_baseline",
    "EPOCHS_DONE_TAG", "MLFLOW_UI", "TRAIN_KEY_TAG", "Finished", "Resume", "RunContext",
    "RunRecord", "TrackingError", "Version", "active_run_id", "champion_of", "check_access",
    "comparison_command", "find_finished", "find_resume", "git_commit", "group_run",
    "kill_stale_runs", "link_for",
    "load_baseline_runs", "load_registered_model", "load_runs", "load_test_predictions",
    "load_text_model", "load_text_model_object", "local_model_dir", "log_best_on_parent",
    "log_checkpoint", "log_epoch", "log_frame", "log_grid", "log_group", "log_inputs",
    "log_keras_model", "log_labels", "log_metrics", "log_params", "log_report", "log_search",
    "log_text_model",
    "model_uri", "promote", "record_decision", "register_version", "resolve_run",
    "save_comparison_view", "set_tags", "start_run", "tracking_uri", "use_experiment",
    "use_tracking_uri", "experiment_name", "model_name", "tracking_user", "create_users",
]
