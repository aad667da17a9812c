"""Where a dataset or vectors location points: a local path (plain, `~`, a file:// URL, a
Windows drive) or a remote URL. Standard library only, so that reading a params file
(`rnnflow run --data`) can ask it without importing the download machinery."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse


def local_path(url: str) -> Path | None:
    """The local file or folder `url` names, or None where it is fetched over a network."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if len(parsed.scheme) <= 1:  # a plain path, or a Windows drive letter
        return Path(url).expanduser()
    return None


def is_local(url: str) -> bool:
    return local_path(url) is not None
