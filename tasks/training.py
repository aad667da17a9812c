"""Training and evaluation as Prefect tasks. Never cached: their inputs are models, and every
run is a new MLflow run (the flow decides reuse, by training key: flows/train_rnn.py)."""

from prefect import task
from prefect.cache_policies import NONE

from rnnflow.network import evaluate, train

train_model = task(train.train_model, name="train_model", cache_policy=NONE)
evaluate_model = task(evaluate.evaluate_model, name="evaluate_model", cache_policy=NONE)
