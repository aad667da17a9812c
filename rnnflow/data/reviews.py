"""read_reviews: the aclImdb layout (.tar.gz or folder) becomes one reviews.parquet, split."""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rnnflow.config import DatasetConfig
from rnnflow.data.storage import Stage, stage, stream_parquet, write_parquet, writing
from rnnflow.data.table_hints import options_hint

log = logging.getLogger(__name__)

VERSION = 3  # 2: reviews that are not UTF-8 are decoded as cp1252; 3: classes, labels.json
LABELS_FILE = "labels.json"
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


def _load(path: Path, cfg: DatasetConfig) -> tuple[pd.DataFrame, list[str], list[str]]:
    bad: list[str] = []
    members = _iter_folder(path, bad) if path.is_dir() else _iter_tar(path, bad)
    rows = []
    for name, text in members:
        split, cls, num, rating = _MEMBER.search(name).groups()  # type: ignore[union-attr]
        rows.append((f"{split}/{cls}/{num}_{rating}", split, int(cls == "pos"), int(rating), text))
    frame = pd.DataFrame(rows, columns=["id", "split", "label", "rating", "text"])
    if cfg.label == "rating":  # each star rating found a class, in numeric order
        ratings = sorted(frame.rating.unique().tolist())
        frame["label"] = frame.rating.map({r: i for i, r in enumerate(ratings)}).astype(int)
        return frame, [str(r) for r in ratings], bad
    return frame, list(SENTIMENT), bad


# The class names of the two sentiment labels, label 0 and 1.
SENTIMENT = ("neg", "pos")
_LABELS = {"0": 0, "1": 1, "false": 0, "true": 1, "neg": 0, "pos": 1, "negative": 0,
           "positive": 1}
# Labels are stored as int8 by the tokens and vectors stages.
MAX_CLASSES = 127
_SPLITS = {"train": "train", "val": "val", "dev": "val", "test": "test"}


def _classes(names: pd.Series, path: str, column: str) -> tuple[pd.Series, list[str]]:
    """Class indices of non-empty label strings, and the class names they index: the two
    sentiment classes when every label is a binary form (0/1, true/false, pos/neg,
    positive/negative), else each distinct label, sorted (numerically where all are
    integers)."""
    binary = names.str.lower().map(_LABELS)
    if not binary.isna().any():
        return binary.astype(int), list(SENTIMENT)
    distinct = names.unique().tolist()
    try:
        classes = sorted(distinct, key=int)
    except ValueError:
        classes = sorted(distinct)
    if len(classes) < 2:
        raise DatasetError(f"{path}: column '{column}' holds one class only "
                           f"({classes[0]!r}); a classifier needs at least two")
    if len(classes) > MAX_CLASSES:
        raise DatasetError(f"{path}: column '{column}' holds {len(classes)} classes; at most "
                           f"{MAX_CLASSES} are supported")
    return names.map({c: i for i, c in enumerate(classes)}).astype(int), classes


def describe(source: Path | dict[str, Path]) -> str:
    """A dataset's file (folder), or its files by role, as error messages name them."""
    if isinstance(source, dict):
        return "dataset.url's files (" + ", ".join(f"{role}: {path}" for role, path
                                                   in source.items()) + ")"
    return str(source)


def _read_table(path: Path, cfg: DatasetConfig, where: str) -> pd.DataFrame:
    """One csv/parquet file with its text and label columns. A file that does not parse, or
    parses without those columns, gets an error that says which read_options would read it
    (rnnflow/data/table_hints.py): its separator and quote char, or that it has no header."""
    try:
        if cfg.source == "csv":
            table = pd.read_csv(path, **cfg.read_options)
        else:
            table = pd.read_parquet(path, **cfg.read_options)
    except Exception as exc:  # pandas/pyarrow raise many kinds for an unreadable file
        why = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        hint = options_hint(path, cfg) if cfg.source == "csv" else ""
        raise DatasetError(f"{where}: not a readable {cfg.source} file ({why}){hint}") from exc
    for key in ("text_column", "label_column"):
        column = getattr(cfg, key)
        if column not in table.columns:
            names = ", ".join(str(c) if len(str(c)) <= 40 else f"{str(c)[:37]}..."
                              for c in table.columns)
            hint = options_hint(path, cfg, table) if cfg.source == "csv" else ""
            raise DatasetError(f"{where}: no column '{column}' (dataset.{key}); the table has "
                               f"{names}{hint}")
    labels = table[cfg.label_column]
    if not (labels.notna() & labels.astype(str).str.strip().ne("")).any():
        raise DatasetError(f"{where}: column '{cfg.label_column}' is empty in every row")
    return table


def _load_table(source: Path | dict[str, Path], cfg: DatasetConfig
                ) -> tuple[pd.DataFrame, list[str], int]:
    """A csv/parquet table of text and label (any column names) as the reviews frame, its
    class names, and how many rows were dropped for an empty label or text. `source` may map
    roles (train, val, test) to files: each file's rows take its role as their split."""
    if isinstance(source, dict):
        parts = []
        for role, path in source.items():
            part = _read_table(path, cfg, f"{path} (dataset.url.{role})")
            if "id" not in part.columns:  # row numbers restart in each file
                part["id"] = [f"{role}-row-{i}" for i in range(len(part))]
            parts.append(part.assign(split=role))
        table = pd.concat(parts, ignore_index=True)
    else:
        table = _read_table(source, cfg, str(source))
    path = describe(source)  # what errors about all the rows name
    raw = table[cfg.label_column]
    names = raw.astype(str).str.strip().where(raw.notna(), "")
    text = table[cfg.text_column].fillna("").astype(str)
    keep = (names != "") & (text.str.strip() != "")
    dropped = int((~keep).sum())
    if dropped:
        log.warning("reviews: dropped %d rows whose label or text is empty (of %d)", dropped,
                    len(table))
    table, names, text = table[keep], names[keep], text[keep]
    labels, classes = _classes(names, path, cfg.label_column)
    if "split" in table.columns:
        split = table["split"].astype(str).str.strip().str.lower().map(_SPLITS)
        if split.isna().any():
            raise DatasetError(f"{path}: column 'split' may hold only train, val (or dev) and "
                               "test")
        if not (split == "test").any():
            raise DatasetError(f"{path}: " + ("no test row has both a label and a text"
                                              if isinstance(source, dict)
                                              else "column 'split' has no test rows"))
    else:
        order = np.random.default_rng(cfg.seed).permutation(len(table))
        split = pd.Series("train", index=table.index)
        split.iloc[order[len(table) - int(round(len(table) * cfg.test_split)):]] = "test"
    ids = table["id"].astype(str) if "id" in table.columns else pd.Series(
        [f"row-{i}" for i in range(len(table))], index=table.index)
    rating = table["rating"] if "rating" in table.columns else -1
    frame = pd.DataFrame({"id": ids, "split": split, "label": labels,
                          "rating": rating, "text": text})
    return frame.reset_index(drop=True), classes, dropped


def _sample(frame: pd.DataFrame, limit: int, rng: np.random.Generator) -> pd.DataFrame:
    # Balanced by label so a small limit still holds every class.
    parts = []
    groups = frame.groupby("label", sort=True)
    for _label, group in groups:
        n = min(len(group), limit // max(2, groups.ngroups))
        parts.append(group.iloc[rng.permutation(len(group))[:n]])
    return pd.concat(parts).sort_values("id")


def split_reviews(frame: pd.DataFrame, cfg: DatasetConfig) -> pd.DataFrame:
    """The book's protocol: shuffle train with the seed, the last `validation_split` is val.
    A val split given with the data is used as it is instead."""
    rng = np.random.default_rng(cfg.seed)
    train = frame[frame.split == "train"].sort_values("id")
    test = frame[frame.split == "test"].sort_values("id")
    given = frame[frame.split == "val"].sort_values("id")
    if cfg.limit:
        train, test = _sample(train, cfg.limit, rng), _sample(test, cfg.limit, rng)
        if len(given):
            given = _sample(given, cfg.limit, rng)
    train = train.iloc[rng.permutation(len(train))].copy()
    if len(given):
        return pd.concat([train, given, test], ignore_index=True)
    n_val = int(round(len(train) * cfg.validation_split))
    train.iloc[len(train) - n_val :, train.columns.get_loc("split")] = "val"
    return pd.concat([train, test], ignore_index=True)


def _check_found(frame: pd.DataFrame, source: str) -> None:
    if frame.empty:
        raise DatasetError(
            f"{source}: no reviews found. Expected the aclImdb layout: "
            "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt (or set dataset.source to csv "
            "or parquet for a table)"
        )


def _check(frame: pd.DataFrame, source: str, classes: list[str]) -> None:
    if len(classes) == 2:  # both classes in every split
        for split in ("train", "val", "test"):
            for label, cls in enumerate(classes):
                if not ((frame.split == split) & (frame.label == label)).any():
                    raise DatasetError(
                        f"{source}: the '{split}' split has no '{cls}' reviews; each of train "
                        "and test needs both classes (raise dataset.limit or check the archive)"
                    )
        return
    for split in ("train", "val", "test"):
        if not (frame.split == split).any():
            raise DatasetError(f"{source}: the '{split}' split is empty")
    train = frame[frame.split == "train"].label.value_counts()
    for label, cls in enumerate(classes):
        n = int(train.get(label, 0))
        elsewhere = sorted(set(frame.split[frame.label == label]) - {"train"})
        if n == 0:
            raise DatasetError(f"{source}: class '{cls}' is in the {' and '.join(elsewhere)} "
                               "split but not in train; the model cannot learn it")
        if n < 2:
            raise DatasetError(f"{source}: class '{cls}' has {n} train review; each class "
                               "needs at least 2 (raise dataset.limit or merge rare classes)")


def reviews_stage(digest: str, cfg: DatasetConfig) -> Stage:
    """Where read_reviews writes: the file's sha256 (a folder's fingerprint) and the settings
    that shape the split."""
    return stage("reviews", cfg.model_dump(exclude={"url", "sha256"}), digest, VERSION)


def read_reviews(archive: Path | dict[str, Path], digest: str, cfg: DatasetConfig) -> Stage:
    """Write data/reviews/<key>/reviews.parquet: id, split (train|val|test), label (the class's
    index), rating, text; and labels.json: the class names and the rows dropped. `archive`
    may map roles to the files of a csv/parquet corpus (dataset.url as a mapping)."""
    out = reviews_stage(digest, cfg)
    if out.done():
        log.info("reviews: reusing %s", out.path)
        return out
    dropped = 0
    if cfg.source == "aclimdb":
        frame, classes, bad = _load(archive, cfg)
    else:
        (frame, classes, dropped), bad = _load_table(archive, cfg), []
    if bad:
        log.warning("%d reviews were not valid UTF-8 and were decoded as cp1252 (Windows "
                    "Latin-1), e.g. %s", len(bad), bad[0])
    _check_found(frame, describe(archive))
    frame = split_reviews(frame, cfg)
    _check(frame, describe(archive), classes)
    empty = frame.text.str.strip() == ""
    if empty.any():
        log.warning("%d reviews are empty (e.g. %s); they are kept and become all padding",
                    int(empty.sum()), frame.id[empty].iloc[0])
    with writing(out) as tmp:
        write_parquet(pa.Table.from_pandas(frame, preserve_index=False), tmp / "reviews.parquet")
        (tmp / LABELS_FILE).write_text(json.dumps({"classes": classes, "dropped_rows": dropped},
                                                  ensure_ascii=False))
    counts = frame.groupby(["split", "label"]).size().to_dict()
    log.info("reviews: %s -> %s", {f"{s}/{classes[lab]}": n for (s, lab), n in counts.items()},
             out.path)
    return out


@dataclass(frozen=True)
class Labels:
    """What the reviews stage says of its labels: the class names (label i is classes[i]) and
    the rows dropped for an empty label or text."""

    classes: list[str]
    dropped_rows: int = 0

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    @property
    def sentiment(self) -> bool:
        """Binary sentiment: the labels of today's IMDB task and its built-in checks."""
        return tuple(self.classes) == SENTIMENT

    @property
    def binary_names(self) -> list[str] | None:
        """The two class names a two-class raw-text model answers with, where they are not
        the sentiment pair (which it answers in words); None otherwise."""
        return self.classes if self.binary and not self.sentiment else None


def read_labels(reviews: Stage) -> Labels:
    """The reviews stage's labels (a stage written before there were classes is sentiment)."""
    path = reviews.file(LABELS_FILE)
    if not path.is_file():
        return Labels(list(SENTIMENT))
    data = json.loads(path.read_text(encoding="utf-8"))
    return Labels(list(data["classes"]), int(data.get("dropped_rows", 0)))


def texts_by_id(reviews_parquet: Path, ids, excerpt: int | None = None,
                batch_size: int = 1024) -> dict:
    """{id: text} of the reviews `ids` (the first `excerpt` characters of each, if given), read
    from reviews.parquet a batch at a time.

    The file is one row group; a filtered `pq.read_table` decodes its whole text column first
    (+179 MB of peak RSS and 1.3 s for 20 of the full archive's 50k reviews, measured), where
    streaming 1,024 rows at a time held 24 MB more and took 0.09 s. This runs after training,
    at the run's memory peak. An id not in the file is left out."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    found: dict = {}
    value_set = pa.array(wanted, type=pq.read_schema(reviews_parquet).field("id").type)
    for batch in stream_parquet(reviews_parquet, ["id", "text"], batch_size):
        chosen = batch.filter(pc.is_in(batch.column(0), value_set=value_set))
        if chosen.num_rows:
            text = chosen.column(1)
            if excerpt is not None:
                text = pc.utf8_slice_codeunits(text, 0, excerpt)
            found.update(zip(chosen.column(0).to_pylist(), text.to_pylist(), strict=True))
        if len(found) == len(wanted):
            break
    return found
