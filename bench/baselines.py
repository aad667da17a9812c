"""What the bag-of-words baseline costs on a dataset, against the way it was fitted before, in
one sitting.

    (a) before  scikit-learn's TfidfVectorizer on the raw text, word uni- and bigrams and
                character 2-5-grams, each with the same logistic regression (baseline stage
                version 1), the better val accuracy kept
    (b) now     `fit_baseline` (rnnflow/network/baselines.py): words counted from the tokens
                stage, characters only on a train split of at most CHAR_MAX_TRAIN reviews

Both read the reviews stage of the params file's dataset; (b) also reads its tokens stage of
the baseline's tokenize settings, which the lesson's chain writes anyway. Its tokenization is
timed apart (`tokenize`), as the chain's step, not the baseline's. Prints each one's seconds
and accuracies and the ratio (b)/(a).

    python -m bench.baselines --data ../shared/data/aclImdb_labeled.tar.gz   # minutes
    python -m bench.baselines --data ../shared/data/aclImdb_labeled.tar.gz --before word
    python -m bench.baselines                                                # the sample
    python -m bench.baselines --params params/gnad10k.yaml --data ../shared/data/gnad10k_test.csv
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from bench import REPO, SAMPLE


def _before(reviews, candidates: list[str]) -> dict[str, float]:
    """Version 1 of the bag-of-words baseline: scikit-learn on the raw text, the candidates
    `candidates` of word and char_wb."""
    import numpy as np
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    frame = pd.read_parquet(reviews.file("reviews.parquet"), columns=["split", "label", "text"])
    splits = {s: frame[frame.split == s] for s in ("train", "val", "test")}
    out: dict[str, float] = {}
    for analyzer, ngrams in (("word", (1, 2)), ("char_wb", (2, 5))):
        if analyzer not in candidates:
            continue
        started = time.perf_counter()
        vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams,
                                     max_features=200_000, sublinear_tf=True, dtype=np.float32)
        model = LogisticRegression(C=4.0, max_iter=1000).fit(
            vectorizer.fit_transform(splits["train"].text.fillna("")), splits["train"].label)
        for s in ("val", "test"):
            guess = model.predict(vectorizer.transform(splits[s].text.fillna("")))
            out[f"{analyzer}_{s}_accuracy"] = float((guess == splits[s].label).mean())
        out[f"{analyzer}_seconds"] = time.perf_counter() - started
    out["seconds"] = sum(out[f"{c}_seconds"] for c in candidates)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(REPO / "params" / "lesson16.yaml"))
    parser.add_argument("--data", default=str(SAMPLE))
    parser.add_argument("--before", default="word,char_wb",
                        help="the candidates of (a) to measure, comma-separated; '' for none "
                             "(on the full archive, char_wb alone takes minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rnnflow-bench-baselines-") as tmp:
        os.environ["RNNFLOW_DATA_DIR"] = tmp  # a cold cache: every stage is written here
        from rnnflow.comparisons.plan import load_plan
        from rnnflow.data.reviews import read_reviews
        from rnnflow.data.tokens import tokenize_reviews
        from rnnflow.network import baselines

        point = load_plan(Path(args.params), {"dataset.url": args.data}).points[0]
        path = Path(args.data)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        started = time.perf_counter()
        reviews = read_reviews(path, digest, point.dataset)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        tokens = tokenize_reviews(reviews, baselines.TOKENIZE)
        tokenize_s = time.perf_counter() - started
        candidates = [c for c in args.before.split(",") if c]
        before = _before(reviews, candidates) if candidates else {}
        started = time.perf_counter()
        out = baselines.fit_baseline(reviews, "bag_of_words", tokens)
        now_s = time.perf_counter() - started
        fitted = baselines.load_baseline(out, reviews)
    result = {
        "data": path.name, "read_s": round(read_s, 1), "tokenize_s": round(tokenize_s, 1),
        "before": {k: round(v, 4) for k, v in before.items()},
        "now": {"seconds": round(now_s, 1), "analyzer": fitted.params["analyzer"],
                "val_accuracy": round(fitted.evaluation.metrics["val_accuracy"], 4),
                "test_accuracy": round(fitted.evaluation.metrics["test_accuracy"], 4),
                "seconds_by_analyzer": {k: round(v, 1)
                                        for k, v in fitted.info["seconds_by_analyzer"].items()}},
    }
    if before:
        result["now_over_before"] = round(now_s / before["seconds"], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
