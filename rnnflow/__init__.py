"""rnnflow, the library: the steps of the lesson's experiment and what they report, without
Prefect. The flows (flows/) and tasks (tasks/) beside it compose it; `rnnflow.cli` starts them.

- `api`: the public names, which users and logged models rely on (docs/compatibility.md);
  every other module is internal;
- `config`: the sections of a params file that shape one point (`Point`);
- `data/`: download, read, tokenize, word vectors, ids, padding; each writes one stage;
- `network/`: the model and its fast recurrent layers, training, evaluation, prediction;
- `insight/`: what a finished run reports: metrics, figures, explanations, checks, pages;
- `comparisons/`: many runs: params files as plans, search spaces and studies, paired
  statistics, results tables, comparisons, the champion decision;
- `tracking/`: MLflow, and nothing else of rnnflow's;
- `_compat/`: the old module names that models logged by earlier versions import.
"""

from rnnflow import _compat

_compat.install()
