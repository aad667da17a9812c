"""The Prefect tasks of rnnflow's flows, thin wrappers around the library's steps: their names,
retries and caching.

- `stages`: the six preprocessing steps, each cached under the key of the stage it writes;
- `training`: training and evaluation, never cached;
- `workers`: a whole point or search trial as one task on a Dask worker.
"""
