"""Baseline runs: the reference models fitted beside a params file's points, logged as runs of
the same experiment, tagged so that `mlflow ui` can filter them in or out
(`tags.rnnflow.kind = 'baseline'`), and found again instead of logged twice.

They carry no training key, and their text model (rnnflow/network/baseline_model.py, loaded
by the same public loader as a network's) is logged without the tag `--run latest`/`best`
look for, so nothing that picks a trained run (reuse and continuation, `--run best`/`latest`,
`rnnflow compare` of an experiment) ever picks a baseline; the registry refuses one
(rnnflow/tracking/registry.py): a baseline never becomes the champion. `rnnflow predict --run
<baseline run id>` works on it."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

KIND_TAG = "rnnflow.kind"
BASELINE = "baseline"
BASELINE_TAG = "rnnflow.baseline"  # which baseline: majority, bag_of_words
BASELINE_KEY_TAG = "rnnflow.baseline_key"  # the baseline's stage key: same key, same run
# The reviews stage's key, the tag a point's run carries too: a run is framed against the
# baseline runs of its experiment with its own (`rnnflow compare`).
REVIEWS_TAG = "stage.reviews"
# On a point's run that learned nothing (rnnflow/comparisons/framing.py): why, in words, so
# that `mlflow ui` can filter on it (`tags.rnnflow.warning LIKE 'learned nothing%'`).
WARNING_TAG = "rnnflow.warning"


@dataclass(frozen=True)
class BaselineRun:
    run_id: str
    metrics: dict[str, float]
    params: dict[str, str]


def baseline_tags(name: str, key: str, reviews: str) -> dict[str, str]:
    """The tags of a baseline run of baseline `name` fitted as stage `key` on the reviews
    stage `reviews`."""
    return {KIND_TAG: BASELINE, BASELINE_TAG: name, BASELINE_KEY_TAG: key, REVIEWS_TAG: reviews}


def find_baseline(experiment_id: str, key: str) -> BaselineRun | None:
    """The newest FINISHED baseline run of the experiment logged from the stage `key`."""
    runs = MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.`{BASELINE_KEY_TAG}` = '{key}' and "
        "attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"],
        max_results=1)
    if not runs:
        return None
    run = runs[0]
    return BaselineRun(run.info.run_id, dict(run.data.metrics), dict(run.data.params))
