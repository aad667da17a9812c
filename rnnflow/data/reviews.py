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
from rnnflow.data.storage import Stage, stage, write_parquet, writing

log = logging.getLogger(__name__)

VERSION = 2  # 2: reviews that are not UTF-8 are decoded as cp1252
# <anything>/{train,test}/{pos,neg}/<id>_<rating>.txt ; unsup/ and other files are skipped.
_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


class DatasetError(ValueError):
    """The dataset is unusable as given (layout, missing split or class, unsafe archive)."""


def _decode(raw: bytes, name: str, bad: list[str]) -> str:
    """UTF-8, else cp1252: a review that is not UTF-8 is almost always Windows Latin-1
    (byte 0xE9 for é). The five bytes cp1252 leaves undefined become U+FFFD."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        bad.append(name)
        return raw.decode("cp1252", errors="replace")


def _needs_filter(member: tarfile.TarInfo) -> bool:
    """Whether tarfile's extraction filter has to judge this member. A regular file or folder
    with a plain relative name cannot land outside its folder, and the filter's realpath calls
    were a quarter of reading 50k reviews; links, devices, absolute names and '..' go to it."""
    name = member.name
    return (not (member.isfile() or member.isdir()) or name.startswith(("/", "\\"))
            or "\\" in name or ".." in name.split("/") or ":" in name)


def _iter_tar(path: Path, bad: list[str]) -> Iterator[tuple[str, str]]:
    # Members are streamed, never extracted; still, a member that extraction would place
    # outside its folder (absolute, '..', links out) means a hostile archive: refuse it whole.
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if _needs_filter(member):
                    try:
                        tarfile.data_filter(member, "/nonexistent-target")
                    except tarfile.FilterError as exc:
                        raise DatasetError(
                            f"{path}: refusing unsafe archive member: {exc}") from exc
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


_LABELS = {"0": 0, "1": 1, "false": 0, "true": 1, "neg": 0, "pos": 1, "negative": 0,
           "positive": 1}


def _load_table(path: Path, cfg: DatasetConfig) -> pd.DataFrame:
    """A csv/parquet table of text and label (any column names) as the reviews frame."""
    try:
        if cfg.source == "csv":
            table = pd.read_csv(path, **cfg.read_options)
        else:
            table = pd.read_parquet(path, **cfg.read_options)
    except Exception as exc:  # pandas/pyarrow raise many kinds for an unreadable file
        raise DatasetError(f"{path}: not a readable {cfg.source} file ({exc})") from exc
    for key in ("text_column", "label_column"):
        column = getattr(cfg, key)
        if column not in table.columns:
            raise DatasetError(f"{path}: no column '{column}' (dataset.{key}); the table has "
                               f"{', '.join(map(str, table.columns))}")
    raw = table[cfg.label_column]
    labels = raw.astype(str).str.strip().str.lower().map(_LABELS)
    if labels.isna().any():
        found = sorted(map(str, raw[labels.isna()].unique()))[:10]
        raise DatasetError(
            f"{path}: column '{cfg.label_column}' must be binary (0/1, true/false, pos/neg or "
            f"positive/negative); found {', '.join(found)}"
        )
    if "split" in table.columns:
        split = table["split"].astype(str).str.lower()
        if not split.isin(["train", "test"]).all():
            raise DatasetError(f"{path}: column 'split' may hold only train and test")
    else:
        order = np.random.default_rng(cfg.seed).permutation(len(table))
        split = pd.Series("train", index=table.index)
        split.iloc[order[len(table) - int(round(len(table) * cfg.test_split)):]] = "test"
    ids = table["id"].astype(str) if "id" in table.columns else pd.Series(
        [f"row-{i}" for i in range(len(table))], index=table.index)
    rating = table["rating"] if "rating" in table.columns else -1
    frame = pd.DataFrame({"id": ids, "split": split, "label": labels.astype(int),
                          "rating": rating, "text": table[cfg.text_column].fillna("").astype(str)})
    return frame.reset_index(drop=True)


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


def _check_found(frame: pd.DataFrame, source: Path) -> None:
    if frame.empty:
        raise DatasetError(
            f"{source}: no reviews found. Expected the aclImdb layout: "
            "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt (or set dataset.source to csv "
            "or parquet for a table)"
        )


def _check(frame: pd.DataFrame, source: Path) -> None:
    for split in ("train", "val", "test"):
        for label, cls in ((0, "neg"), (1, "pos")):
            if not ((frame.split == split) & (frame.label == label)).any():
                raise DatasetError(
                    f"{source}: the '{split}' split has no '{cls}' reviews; each of train and "
                    "test needs both classes (raise dataset.limit or check the archive)"
                )


def reviews_stage(digest: str, cfg: DatasetConfig) -> Stage:
    """Where read_reviews writes: the file's sha256 (a folder's fingerprint) and the settings
    that shape the split."""
    return stage("reviews", cfg.model_dump(exclude={"url", "sha256"}), digest, VERSION)


def read_reviews(archive: Path, digest: str, cfg: DatasetConfig) -> Stage:
    """Write data/reviews/<key>/reviews.parquet: id, split (train|val|test), label, rating, text."""
    out = reviews_stage(digest, cfg)
    if out.done():
        log.info("reviews: reusing %s", out.path)
        return out
    if cfg.source == "aclimdb":
        frame, bad = _load(archive)
    else:
        frame, bad = _load_table(archive, cfg), []
    if bad:
        log.warning("%d reviews were not valid UTF-8 and were decoded as cp1252 (Windows "
                    "Latin-1), e.g. %s", len(bad), bad[0])
    _check_found(frame, archive)
    frame = split_reviews(frame, cfg)
    _check(frame, archive)
    empty = frame.text.str.strip() == ""
    if empty.any():
        log.warning("%d reviews are empty (e.g. %s); they are kept and become all padding",
                    int(empty.sum()), frame.id[empty].iloc[0])
    with writing(out) as tmp:
        write_parquet(pa.Table.from_pandas(frame, preserve_index=False), tmp / "reviews.parquet")
    counts = frame.groupby(["split", "label"]).size().to_dict()
    log.info("reviews: %s -> %s", {f"{s}/{lab}": n for (s, lab), n in counts.items()}, out.path)
    return out
