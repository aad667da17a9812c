"""Everything rnnflow tells MLflow, by concern. The only package of rnnflow that imports mlflow.

- `store`: which tracking store, checking that it answers, the experiment;
- `runs`: a run's lifecycle (`RunContext`, `start_run`), its params, metrics and artifacts;
- `resume`: continued training, the "furthest run short of its epochs" policy;
- `text_model`: the raw-text pyfunc, and finding the run `rnnflow predict` means;
- `lookup`: runs by id or experiment, with what `rnnflow compare` needs;
- `registry`: the winner as a registered model, `challenger` and `champion` aliases;
- `system`: system metrics and the peak RSS of each training run.
"""

import warnings

from rnnflow.tracking.lookup import RunRecord, load_runs
from rnnflow.tracking.registry import (
    Registered,
    load_registered_model,
    model_uri,
    register_winner,
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
    log_keras_model,
    log_metrics,
    log_params,
    log_report,
    log_search,
    set_tags,
    start_run,
)
from rnnflow.tracking.store import (
    TrackingError,
    git_commit,
    tracking_uri,
    use_experiment,
    use_tracking_uri,
)
from rnnflow.tracking.text_model import (
    load_text_model,
    local_model_dir,
    log_text_model,
    resolve_run,
)

# A local Parquet path matches two of MLflow's dataset-source kinds, which resolve the same.
warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
# The datasets' integer columns (label, rating) never hold missing values.
warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")

__all__ = [
    "EPOCHS_DONE_TAG", "TRAIN_KEY_TAG", "Finished", "Resume", "RunContext", "RunRecord",
    "TrackingError", "active_run_id", "find_finished", "find_resume", "git_commit",
    "group_run", "kill_stale_runs", "load_registered_model", "load_runs", "load_test_predictions",
    "load_text_model", "local_model_dir", "log_checkpoint", "log_epoch", "log_frame",
    "log_grid", "log_group", "log_inputs", "log_keras_model", "log_metrics", "log_params",
    "log_report", "log_search", "log_text_model", "model_uri", "Registered", "register_winner",
    "resolve_run", "set_tags", "start_run", "tracking_uri", "use_experiment", "use_tracking_uri",
]
