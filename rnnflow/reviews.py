"""read_reviews: the aclImdb layout (.tar.gz or folder) becomes one reviews.parquet, split."""

from __future__ import annotations

import logging
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from rnnflow.config import DatasetConfig
from rnnflow.storage import Stage, stage, write_parquet, writing

log = logging.getLogger(__name__)

VERSION = 1
# <anything>/{train,test}/{pos,neg}/<id>_<rating>.txt ; unsup/ and other files are skipped.
_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


class DatasetError(ValueError):
    """The dataset is unusable as given (layout, missing split or class, unsafe archive)."""


def _decode(raw: bytes, name: str, bad: list[str]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        bad.append(name)
        return raw.decode("utf-8", errors="replace")


def _iter_tar(path: Path, bad: list[str]) -> Iterator[tuple[str, str]]:
    # Members are streamed, never extracted; still, a member that extraction would place
    # outside its folder (absolute, '..', links out) means a hostile archive: refuse it whole.
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                try:
                    tarfile.data_filter(member, "/nonexistent-target")
                except tarfile.FilterError as exc:
                    raise DatasetError(f"{path}: refusing unsafe archive member: {exc}") from exc
                if not member.isfile() or not _MEMBER.search(member.name):
                    continue
                fh = tar.extractfile(member)
                if fh is not None:
                    yield member.name, _decode(fh.read(), member.name, bad)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable .tar.gz archive ({exc})") from exc


def _iter_folder(path: Path, bad: list[str]) -> Iterator[tuple[str, str]]:
    for file in sorted(path.rglob("*.txt")):
        name = file.relative_to(path).as_posix()
        if _MEMBER.search(name):
            yield name, _decode(file.read_bytes(), name, bad)


def _load(path: Path) -> tuple[pd.DataFrame, list[str]]:
    bad: list[str] = []
    members = _iter_folder(path, bad) if path.is_dir() else _iter_tar(path, bad)
    rows = []
    for name, text in members:
        split, cls, num, rating = _MEMBER.search(name).groups()  # type: ignore[union-attr]
        rows.append((f"{split}/{cls}/{num}_{rating}", split, int(cls == "pos"), int(rating), text))
    frame = pd.DataFrame(rows, columns=["id", "split", "label", "rating", "text"])
    return frame, bad


def _sample(frame: pd.DataFrame, limit: int, rng: np.random.Generator) -> pd.DataFrame:
    # Balanced by label so a small limit still holds both classes.
    parts = []
    for _label, group in frame.groupby("label", sort=True):
        n = min(len(group), limit // 2)
        parts.append(group.iloc[rng.permutation(len(group))[:n]])
    return pd.concat(parts).sort_values("id")


def split_reviews(frame: pd.DataFrame, cfg: DatasetConfig) -> pd.DataFrame:
    """The book's protocol: shuffle train with the seed, the last `validation_split` is val."""
    rng = np.random.default_rng(cfg.seed)
    train = frame[frame.split == "train"].sort_values("id")
    test = frame[frame.split == "test"].sort_values("id")
    if cfg.limit:
        train, test = _sample(train, cfg.limit, rng), _sample(test, cfg.limit, rng)
    train = train.iloc[rng.permutation(len(train))].copy()
    n_val = int(round(len(train) * cfg.validation_split))
    train.iloc[len(train) - n_val :, train.columns.get_loc("split")] = "val"
    return pd.concat([train, test], ignore_index=True)


def _check(frame: pd.DataFrame, source: Path) -> None:
    if frame.empty:
        raise DatasetError(
            f"{source}: no reviews found. Expected the aclImdb layout: "
            "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"
        )
    for split in ("train", "val", "test"):
        for label, cls in ((0, "neg"), (1, "pos")):
            if not ((frame.split == split) & (frame.label == label)).any():
                raise DatasetError(
                    f"{source}: the '{split}' split has no '{cls}' reviews; each of train and "
                    "test needs both classes (raise dataset.limit or check the archive)"
                )


def reviews_stage(archive: Path, digest: str, cfg: DatasetConfig) -> Stage:
    """Where read_reviews writes: the file's sha256 and the settings that shape the split."""
    return stage("reviews", cfg.model_dump(exclude={"url", "sha256"}), digest, VERSION)


def read_reviews(archive: Path, digest: str, cfg: DatasetConfig) -> Stage:
    """Write data/reviews/<key>/reviews.parquet: id, split (train|val|test), label, rating, text."""
    out = reviews_stage(archive, digest, cfg)
    if out.done():
        log.info("reviews: reusing %s", out.path)
        return out
    frame, bad = _load(archive)
    if bad:
        log.warning("%d reviews were not valid UTF-8 and were decoded with replacement "
                    "characters, e.g. %s", len(bad), bad[0])
    frame = split_reviews(frame, cfg)
    _check(frame, archive)
    with writing(out) as tmp:
        write_parquet(pa.Table.from_pandas(frame, preserve_index=False), tmp / "reviews.parquet")
    counts = frame.groupby(["split", "label"]).size().to_dict()
    log.info("reviews: %s -> %s", {f"{s}/{lab}": n for (s, lab), n in counts.items()}, out.path)
    return out
