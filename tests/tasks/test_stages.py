"""The preprocessing tasks: download retries, the cache key each stage task is keyed by."""

import http.server
import os
import threading

import pytest
from prefect import flow

from rnnflow.data.download import ChecksumError, DownloadError, download_dataset
from tasks import stages


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first request, then serves a small file."""

    calls = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).calls += 1
        if type(self).calls == 1:
            self.send_error(503)
            return
        body = b"payload"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _MissingHandler(http.server.BaseHTTPRequestHandler):
    """Answers 404 to every request, counting them."""

    calls = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).calls += 1
        self.send_error(404)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def flaky_url():
    _FlakyHandler.calls = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/file.bin"
    server.shutdown()
    server.server_close()


def test_download_is_retried_after_a_network_error(project, flaky_url):
    @flow
    def fetch(url: str):
        return stages.download_dataset.with_options(retry_delay_seconds=0)(url)

    path, _ = fetch(flaky_url)
    assert path.read_bytes() == b"payload" and _FlakyHandler.calls == 2


def test_a_missing_download_is_not_retried(project):
    """What a user whose URL is wrong sees: the download's own error at once (an HTTP 404
    stays a 404), which the command reports with exit 2. The 503 above is retried."""
    @flow
    def fetch(url: str):
        return stages.download_dataset.with_options(retry_delay_seconds=0)(url)

    _MissingHandler.calls = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MissingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DownloadError, match="could not download.*404"):
            fetch(f"http://127.0.0.1:{server.server_address[1]}/missing.tar.gz")
    finally:
        server.shutdown()
        server.server_close()
    assert _MissingHandler.calls == 1 and stages._retry_delays()  # retries were allowed


def test_a_host_name_that_does_not_resolve_is_not_retried(project, monkeypatch):
    """Offline, each retry would fail the same way after its delay: the run ends at once."""
    import pooch

    attempts = []

    class Counted(pooch.HTTPDownloader):
        def __call__(self, *args, **kwargs):
            attempts.append(args[0])
            return super().__call__(*args, **kwargs)

    monkeypatch.setattr(pooch, "HTTPDownloader", Counted)

    @flow
    def fetch(url: str):
        return stages.download_dataset.with_options(retry_delay_seconds=0)(url)

    with pytest.raises(DownloadError, match="does not resolve"):
        fetch("https://nowhere.invalid/aclImdb_v1.tar.gz")
    assert attempts == ["https://nowhere.invalid/aclImdb_v1.tar.gz"]


def test_files_by_role_are_keyed_by_every_file(project, tmp_path):
    files = {"train": tmp_path / "a.csv", "test": tmp_path / "b.csv"}
    files["train"].write_text("text,label\nx,1\n")
    url = {role: str(path) for role, path in files.items()}
    key, present = stages._raw_file(url)
    assert not present  # the test file is not there yet
    files["test"].write_text("text,label\ny,0\n")
    key_now, present = stages._raw_file(url)
    assert present and key_now != key
    assert stages._raw_file(url)[0] == key_now  # stable while nothing changes
    os.utime(files["test"], ns=(1, 1))
    assert stages._raw_file(url)[0] != key_now
    assert stages._raw_file({"train": url["test"], "test": url["train"]})[0] != key_now


def test_a_checksum_error_is_not_retried(project, flaky_url):
    @flow
    def fetch(url: str):
        return stages.download_dataset.with_options(retry_delay_seconds=0)(url, "0" * 64)

    _FlakyHandler.calls = 1  # the server now answers at once
    with pytest.raises(ChecksumError, match="sha256"):
        fetch(flaky_url)
    assert _FlakyHandler.calls == 2  # one request: no retry


def test_a_locator_may_only_take_its_steps_arguments():
    def step(tokens, cfg):
        return tokens

    def locate(tokens, cfg, archive):
        return "key", True

    with pytest.raises(TypeError, match="archive"):
        stages.StageTask("step", step, locate)


def test_the_cache_key_is_the_same_for_positional_and_keyword_calls(project, tiny_archive):
    from rnnflow.config import DatasetConfig
    from rnnflow.data.reviews import reviews_stage

    cfg = DatasetConfig()
    by_position = stages.read_reviews.where(tiny_archive, "abc", cfg)
    by_name = stages.read_reviews.where(cfg=cfg, digest="abc", archive=tiny_archive)
    assert by_position == by_name == (f"rnnflow-reviews-{reviews_stage('abc', cfg).key}", False)
    assert stages.read_reviews.where(tiny_archive, "abd", cfg) != by_position


@pytest.mark.parametrize(("text", "expected"), [
    (None, [1.0, 5.0, 15.0]), ("0,0", [0.0, 0.0]), (" 2 , 30 ", [2.0, 30.0]), ("", [])])
def test_download_retry_delays_come_from_the_environment(monkeypatch, text, expected):
    if text is None:
        monkeypatch.delenv("RNNFLOW_DOWNLOAD_RETRY_DELAYS", raising=False)
    else:
        monkeypatch.setenv("RNNFLOW_DOWNLOAD_RETRY_DELAYS", text)
    assert stages._retry_delays() == expected


@pytest.mark.parametrize("text", ["1;5", "-1", "soon"])
def test_bad_download_retry_delays_say_what_is_expected(monkeypatch, text):
    monkeypatch.setenv("RNNFLOW_DOWNLOAD_RETRY_DELAYS", text)
    with pytest.raises(ValueError, match="RNNFLOW_DOWNLOAD_RETRY_DELAYS"):
        stages._retry_delays()


def test_editing_a_review_changes_the_folder_key(project, tiny_folder):
    url = str(tiny_folder)
    key, present = stages._raw_file(url)
    digest = download_dataset(url)[1]
    assert present and stages._raw_file(url)[0] == key  # stable while nothing changes
    review = sorted((tiny_folder / "train" / "pos").iterdir())[0]
    st = review.stat()
    review.write_text(review.read_text().replace(" ", "  ", 1))
    os.utime(review, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert stages._raw_file(url)[0] != key
    assert download_dataset(url)[1] != digest


@pytest.mark.parametrize("form", ["aclImdb", "parent", "file-url"])
def test_a_folder_in_any_spelling_is_found_in_place(project, tiny_folder, form):
    """The download step of an extracted folder is done at once, whichever way it is named
    (the folder, the one above it, a file:// URL), under a key that holds while nothing
    changes."""
    folder = tiny_folder.parent if form == "parent" else tiny_folder
    url = f"file://{folder}" if form == "file-url" else str(folder)
    key, present = stages._raw_file(url)
    assert present and stages._raw_file(url) == (key, True)
    assert not (project / "data").exists()
