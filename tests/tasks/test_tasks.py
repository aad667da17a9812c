import http.server
import threading

import pytest
from prefect import flow

import tasks


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
        return tasks.download_dataset.with_options(retry_delay_seconds=0)(url)

    path, _ = fetch(flaky_url)
    assert path.read_bytes() == b"payload" and _FlakyHandler.calls == 2


def test_a_checksum_error_is_not_retried(project, flaky_url):
    @flow
    def fetch(url: str):
        return tasks.download_dataset.with_options(retry_delay_seconds=0)(url, "0" * 64)

    _FlakyHandler.calls = 1  # the server now answers at once
    with pytest.raises(Exception, match="sha256"):
        fetch(flaky_url)
    assert _FlakyHandler.calls == 2  # one request: no retry
