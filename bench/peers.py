"""What both peer scripts share: the lesson's protocol, reading and splitting aclImdb the way
rnnflow does (so all three train and test on the same reviews), stage timing and the memory meter.

The peers are deliberately plain: no rnnflow imports, no Prefect, no MLflow.
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil

MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def protocol_args(description: str) -> argparse.ArgumentParser:
    """The knobs `bench/run.py` passes to every contender, with the lesson's values."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="aclImdb .tar.gz")
    parser.add_argument("--limit", type=int, default=None,
                        help="reviews per split (train and test), balanced; default all")
    add_lesson_args(parser)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="write stage times and figures here")
    return parser


def add_lesson_args(parser: argparse.ArgumentParser) -> None:
    """The lesson's sizes, which every contender and bench script takes alike."""
    parser.add_argument("--maxlen", type=int, default=400)
    parser.add_argument("--dim", type=int, default=300, help="word2vec vector size")
    parser.add_argument("--neurons", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=2)


def read_archive(path: str) -> dict[str, list[tuple[str, int, str]]]:
    """{'train': [(id, label, text)], 'test': [...]} with rnnflow's ids, sorted by id."""
    out: dict[str, list[tuple[str, int, str]]] = {"train": [], "test": []}
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            found = MEMBER.search(member.name)
            if not member.isfile() or not found:
                continue
            split, cls, num, rating = found.groups()
            text = tar.extractfile(member).read().decode("utf-8", errors="replace")
            out[split].append((f"{split}/{cls}/{num}_{rating}", int(cls == "pos"), text))
    for rows in out.values():
        rows.sort()
    return out


def _balanced(rows: list, limit: int, rng: np.random.Generator) -> list:
    picked = []
    for label in (0, 1):
        group = [r for r in rows if r[1] == label]
        picked += [group[i] for i in rng.permutation(len(group))[: limit // 2]]
    return sorted(picked)


def split(reviews: dict, seed: int, limit: int | None, validation: float = 0.2
          ) -> tuple[list, list, list]:
    """The lesson's protocol as rnnflow applies it: train shuffled with the seed, its last 20%
    is validation; `limit` takes a balanced sample of each split first."""
    rng = np.random.default_rng(seed)
    train, test = reviews["train"], reviews["test"]
    if limit:
        train, test = _balanced(train, limit, rng), _balanced(test, limit, rng)
    train = [train[i] for i in rng.permutation(len(train))]
    n_val = int(round(len(train) * validation))
    return train[: len(train) - n_val], train[len(train) - n_val:], test


class Meter:
    """Stage wall times and this process's peak RSS, sampled every 20 ms."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self.figures: dict[str, float] = {}
        self._proc = psutil.Process()
        self._peak = self._proc.memory_info().rss
        self._stop = False
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self._stop:
            self._peak = max(self._peak, self._proc.memory_info().rss)
            time.sleep(0.02)

    def rss_mb(self) -> float:
        return self._proc.memory_info().rss / 2**20

    def reset_peak(self) -> None:
        self._peak = self._proc.memory_info().rss

    def peak_mb(self) -> float:
        return max(self._peak, self._proc.memory_info().rss) / 2**20

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        yield
        self.stages[name] = time.perf_counter() - started
        print(f"{name}: {self.stages[name]:.1f} s, rss {self.rss_mb():.0f} MB", flush=True)

    def write(self, path: str | None) -> None:
        self._stop = True
        result = {"stages": self.stages, "figures": self.figures, "peak_rss_mb": self.peak_mb()}
        if path:
            Path(path).write_text(json.dumps(result, indent=2))


def word2vec(token_lists: list[list[str]], dim: int, seed: int):
    """gensim word2vec with the settings rnnflow's `embedding.source: train` uses."""
    import os

    from gensim.models import Word2Vec

    return Word2Vec(token_lists, vector_size=dim, window=5, min_count=5, epochs=5, seed=seed,
                    workers=max(1, os.cpu_count() or 1)).wv


def fit_and_test(meter: Meter, model, x: dict, y: dict, epochs: int, test_batch: int) -> dict:
    """The measured part both peers share: `model.fit` on the in-memory arrays, then the test
    split; returns the figures `bench/run.py` reads."""
    with meter.stage("train"):
        history = model.fit(x["train"], y["train"], validation_data=(x["val"], y["val"]),
                            batch_size=32, epochs=epochs, verbose=2)
    with meter.stage("test"):
        test_loss, test_acc = model.evaluate(x["test"], y["test"], batch_size=test_batch,
                                             verbose=0)
    return {"train_docs": len(y["train"]),
            "train_samples_per_s": epochs * len(y["train"]) / meter.stages["train"],
            "val_accuracy": float(history.history["val_accuracy"][-1]),
            "test_accuracy": float(test_acc), "test_loss": float(test_loss)}
