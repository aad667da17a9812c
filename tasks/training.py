"""The chain's last three steps as Prefect tasks: train, evaluate, and log what the point
logs to its MLflow run (tasks/results.py). Never cached: their inputs are models, and every run
is a new MLflow run (the chain decides reuse, by training key: flows/point_run.py). Each call is
timed under its step's name on the point's clock (tasks/timing.py)."""

from prefect import task
from prefect.cache_policies import NONE

from rnnflow.network import evaluate, train
from tasks.timing import timed

train_model = timed("train", task(train.train_model, name="train_model", cache_policy=NONE))
evaluate_model = timed("evaluate", task(evaluate.evaluate_model, name="evaluate_model",
                                        cache_policy=NONE))
