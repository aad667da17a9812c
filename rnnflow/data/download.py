"""download_dataset: fetch a file by http(s) URL, file:// URL or path, checksummed and cached.

A local path or file:// URL may also name a folder (an extracted aclImdb folder or the one
that holds it): it is read where it is and identified by `folder_fingerprint`."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pooch

from rnnflow.data.locations import local_path
from rnnflow.data.storage import data_dir, sha256_file, sweep_abandoned
from rnnflow.faults import maybe_fail

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """The file could not be fetched (network, HTTP status).

    `transient`: whether trying again may help (a reset or refused connection, a timeout, an
    HTTP 5xx, 408 or 429). A host name that does not resolve (no network, or a mistyped host)
    and any other HTTP 4xx stay as they are for the next minute, so the task does not retry
    them. `unreachable`: no network route to the file at all (name resolution or connection
    failure), where a local copy is the way on."""

    def __init__(self, message: str, url: str = "", transient: bool = True,
                 unreachable: bool = False) -> None:
        super().__init__(message)
        self.url, self.transient, self.unreachable = url, transient, unreachable


# Exceptions whose class name says the host name did not resolve: urllib3's, and socket's
# gaierror (what urllib and gensim-data's urlopen raise, wrapped in URLError).
_NAME_ERRORS = ("NameResolutionError", "gaierror")
_TRANSIENT_STATUS = {408, 429}


def _chain(exc: BaseException):
    """`exc`, its causes and contexts, and the exceptions they hold as arguments (requests
    wraps urllib3's errors as an argument, not as a cause)."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [e for e in (current.__cause__, current.__context__,
                                getattr(current, "reason", None), *current.args)
                    if isinstance(e, BaseException)]


def name_unresolved(exc: BaseException) -> bool:
    """Whether a failed fetch failed because a host name did not resolve: no network."""
    return any(type(e).__name__ in _NAME_ERRORS for e in _chain(exc))


def classify(exc: BaseException, url: str) -> DownloadError:
    """A DownloadError for a failed fetch of `url`, whose message gives the reason in a few
    words (not urllib3's nested repr) and whose flags say whether to retry."""
    host = urlparse(url).hostname or url
    if name_unresolved(exc):
        return DownloadError(f"could not download {url}: the host name {host} does not "
                                 "resolve (no network, or a mistyped host)", url,
                                 transient=False, unreachable=True)
    for e in _chain(exc):
        response = getattr(e, "response", None)
        status = getattr(response, "status_code", None) or getattr(e, "code", None)
        if isinstance(status, int) and 400 <= status < 600:
            reason = getattr(response, "reason", None) or getattr(e, "reason", "") or ""
            return DownloadError(f"could not download {url}: HTTP {status} {reason}".rstrip(),
                                 url, transient=status >= 500 or status in _TRANSIENT_STATUS)
    if any(isinstance(e, (ConnectionError, TimeoutError)) or type(e).__name__ in (
            "ConnectionError", "ConnectTimeout", "ReadTimeout", "NewConnectionError")
           for e in _chain(exc)):
        why = next((e.strerror for e in _chain(exc)
                    if isinstance(e, OSError) and e.strerror), type(exc).__name__)
        return DownloadError(f"could not download {url}: cannot connect to {host} ({why})",
                             url, transient=True, unreachable=True)
    return DownloadError(f"could not download {url}: {exc}", url)


class ChecksumError(ValueError):
    """The file's sha256 is not the expected one; retrying would not help."""


def _raw_path(url: str) -> Path:
    name = hashlib.sha256(url.encode()).hexdigest()[:12] + "-" + Path(urlparse(url).path).name
    return data_dir() / "raw" / name


def present_file(url: str) -> Path | None:
    """The local file or folder `url` refers to, if it is already here (no download, no
    hashing)."""
    local = local_path(url)
    if local is not None and local.is_dir():
        return local
    path = local if local is not None else _raw_path(url)
    return path if path.is_file() else None


def folder_fingerprint(folder: Path) -> str:
    """A sha256 over the relative path, size and mtime_ns of every file under `folder`: what
    changes when a review is edited, added, removed or renamed, at the cost of one stat per
    file (os.scandir) instead of reading them all. Symlinked folders are not followed, as
    read_reviews does not follow them."""
    root = os.fspath(folder)
    skip = len(os.path.join(root, ""))  # the relative path is what follows "<root>/"
    entries: list[str] = []
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file():
                    st = entry.stat()
                    entries.append(f"{entry.path[skip:]}\0{st.st_size}\0{st.st_mtime_ns}")
    entries.sort()
    return hashlib.sha256("\n".join(entries).encode("utf-8", "surrogateescape")).hexdigest()


def local_stamp(path: Path) -> str:
    """Cheap identity of a local dataset's content: a file's size and mtime, a folder's
    fingerprint. Part of the download step's cache key, so editing either is noticed."""
    if path.is_dir():
        return folder_fingerprint(path)
    st = path.stat()
    return f"{st.st_size}|{st.st_mtime_ns}"


def _fetch(url: str, target: Path) -> Path:
    """Download into a folder of this process's own, then rename into data/raw: a killed
    download leaves only that folder, which the next download removes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_abandoned(target.parent)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-download-{os.getpid()}-", dir=target.parent))

    def downloader(url: str, output_file: str, pup: object) -> None:
        pooch.HTTPDownloader(progressbar=True)(url, output_file, pup)
        maybe_fail("download")

    try:
        path = pooch.retrieve(url, known_hash=None, fname=target.name, path=work,
                              downloader=downloader)
        os.replace(path, target)
    except Exception as exc:  # requests/HTTP errors: the task retries the transient ones
        raise classify(exc, url) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def download_dataset(url: str | dict[str, str], sha256: str | dict[str, str] | None = None
                     ) -> tuple[Path | dict[str, Path], str]:
    """Return a local copy of `url` and its sha256 (a folder: its `folder_fingerprint`).

    `url` may be a mapping of role (train, val, test) to file, with `sha256` a mapping by the
    same roles: then each file is fetched as one would be, and the result is the mapping of
    role to local copy and one digest over every role's (`files_digest`)."""
    if isinstance(url, dict):
        sums = sha256 if isinstance(sha256, dict) else {}
        copies, digests = {}, {}
        for role, each in url.items():
            try:
                copies[role], digests[role] = download_file(each, sums.get(role))
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"{exc} (dataset.url.{role})") from exc
        return copies, files_digest(digests)
    return download_file(url, sha256 if isinstance(sha256, str) else None)


def files_digest(digests: dict[str, str]) -> str:
    """One digest for several files by role: it changes when any file or its role does."""
    text = "\n".join(f"{role}\0{digest}" for role, digest in sorted(digests.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def download_file(url: str, sha256: str | None = None) -> tuple[Path, str]:
    """One file or folder of `download_dataset`: its local copy and sha256 (fingerprint).

    http(s) files go to data/raw/ through pooch (atomic, with a progress bar) and are fetched
    once; local files and folders are read where they are. A given sha256 is checked for a
    file either way, and a downloaded file that fails it is deleted so the next try fetches it
    again; a folder has no sha256, so one given for it is an error.
    """
    local = local_path(url)
    if local is not None and local.is_dir():
        if sha256:
            raise ChecksumError(
                f"{url} is a folder: dataset.sha256 applies only to an archive file; remove "
                "it (a folder is identified by its files' names, sizes and modification times)")
        path = local.resolve()
        digest = folder_fingerprint(path)
        log.info("dataset folder %s (fingerprint %s…)", path, digest[:12])
        return path, digest
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"dataset file not found: {local}")
        path = local.resolve()
    else:
        path = _raw_path(url)
        if not path.is_file():  # fetched once, then reused
            _fetch(url, path)

    digest = sha256_file(path)
    if sha256 and digest.lower() != sha256.lower():
        if local is None:
            path.unlink(missing_ok=True)
        raise ChecksumError(
            f"{url}: sha256 is {digest}, expected {sha256}. "
            + ("The bad download was removed; run again to refetch, " if local is None else "")
            + "or correct dataset.sha256."
        )
    log.info("dataset %s (sha256 %s…)", path, digest[:12])
    return path, digest
