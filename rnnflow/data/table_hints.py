"""The fix for a csv that pandas reads wrongly with the params file's `read_options`: which
separator and quote char parse it, and whether its first row is data rather than a header.

A corpus is often published as a table without a header row, or with `;` or tabs between its
fields, and pandas then either fails ("Expected 2 fields in line 5, saw 3") or reads one
column, or takes the first text for a column name. `options_hint` tries the usual separators
and quote chars on the file's first rows and says, as a line to paste into the params file,
the read_options that give the text and label columns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from rnnflow.config import DatasetConfig

# Tried in this order; the first that parses the first rows into two or more columns wins.
SEPARATORS = (",", ";", "\t", "|")
QUOTECHARS = ('"', "'")
# Rows read to judge a candidate: enough to meet a line with a stray separator, few enough to
# stay quick on a large file.
_ROWS = 2000


def _parses(path: Path, options: dict[str, Any]) -> pd.DataFrame | None:
    try:
        table = pd.read_csv(path, **{**options, "header": None, "names": None}, nrows=_ROWS)
    except Exception:  # any failure rules the candidate out
        return None
    return table if table.shape[1] >= 2 else None


def sniff(path: Path, options: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame] | None:
    """`options` with the separator and quote char that parse the file's first rows into two or
    more columns (those of `options` first), and those rows read without a header; None if no
    candidate does."""
    given_sep = options.get("sep", options.get("delimiter"))
    seps = [given_sep] if given_sep else []
    quotes = [options["quotechar"]] if options.get("quotechar") else []
    base = {k: v for k, v in options.items() if k not in ("sep", "delimiter", "quotechar",
                                                          "header", "names")}
    for sep in dict.fromkeys([*seps, *SEPARATORS]):
        for quote in dict.fromkeys([*quotes, *QUOTECHARS]):
            rows = _parses(path, {**base, "sep": sep, "quotechar": quote})
            if rows is not None:
                found = {**base, "sep": sep}
                if quote != '"':  # pandas' default needs no line
                    found["quotechar"] = quote
                return found, rows
    return None


def _looks_like_data(names: list[Any]) -> bool:
    """Whether a row taken as the header is a row of data: a header names columns in a word or
    two; a text of many words, or a number, is data."""
    def datum(name: Any) -> bool:
        text = str(name).strip()
        try:
            float(text)
            return True
        except ValueError:
            return len(text) > 40 or text.count(" ") >= 4
    return any(datum(n) for n in names)


def _column_names(rows: pd.DataFrame, cfg: DatasetConfig) -> list[str]:
    """Names for a headerless table's columns: the text column is the one with the longest
    texts, the label column the one with the fewest distinct values among the rest; others
    are `col<i>`."""
    lengths = {c: rows[c].astype(str).str.len().mean() for c in rows.columns}
    text = max(lengths, key=lengths.get)
    label = min((c for c in rows.columns if c != text), key=lambda c: rows[c].nunique())
    return [cfg.text_column if c == text else cfg.label_column if c == label else f"col{i + 1}"
            for i, c in enumerate(rows.columns)]


# Strings YAML reads as themselves unquoted (column names such as label, text_1).
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_YAML_WORDS = {"null", "true", "false", "yes", "no", "on", "off", "y", "n", "nan", "inf"}


def _yaml(value: Any) -> str:
    """A read_options value as YAML flow text: a name plain, other strings double-quoted (a
    tab as \\t)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if _PLAIN.fullmatch(str(value)) and str(value).lower() not in _YAML_WORDS:
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return f'"{escaped}"'


def as_yaml(options: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{key}: {_yaml(value)}" for key, value in options.items()) + "}"


def suggest(path: Path, cfg: DatasetConfig) -> tuple[dict[str, Any], list[str]] | None:
    """The read_options that read `path` with the text and label columns, and what changed
    (separator, quote char, no header), or None when no usual form fits."""
    options = dict(cfg.read_options)
    sniffed = sniff(path, options)
    if sniffed is None:
        return None
    found, rows = sniffed
    changes = []
    if found.get("sep") != options.get("sep", options.get("delimiter", ",")):
        changes.append(f"its separator is {_yaml(found['sep'])}")
    if found.get("quotechar", '"') != options.get("quotechar", '"'):
        changes.append(f"its quote char is {_yaml(found['quotechar'])}")
    found.pop("delimiter", None)
    try:
        header = pd.read_csv(path, **{**found, "nrows": 0}).columns.tolist()
    except Exception:
        header = []
    wanted = {cfg.text_column, cfg.label_column}
    if "names" in options and wanted <= set(map(str, options["names"])):
        found["names"] = options["names"]
        found["header"] = options.get("header", "infer")
        if found["header"] == "infer":
            found.pop("header")
    elif not wanted <= set(map(str, header)):
        if not _looks_like_data(header) and len(header) == rows.shape[1]:
            return None  # a real header without the columns: dataset.*_column is the fix
        found["header"] = None
        found["names"] = _column_names(rows, cfg)
        changes.append("its first row looks like data, not a header")
    return (found, changes) if changes else None


def options_hint(path: Path, cfg: DatasetConfig, table: pd.DataFrame | None = None) -> str:
    """The sentence to append to the error about `path`: what is wrong with how it was read
    and the exact `read_options` that read it ('' when there is nothing better to say)."""
    found = suggest(path, cfg)
    if found is None:
        if table is not None and table.shape[1] == 1:
            return (". It was read as one column: set dataset.read_options.sep to the file's "
                    "separator")
        return ""
    options, changes = found
    return (f". The file reads with other options: {'; '.join(changes)}. Set "
            f"dataset.read_options: {as_yaml(options)}")
