import shutil

import pytest

from rnnflow.data.download import ChecksumError, DownloadError, download_dataset, folder_fingerprint
from rnnflow.data.storage import sha256_file


def test_http_download_is_cached_in_data_raw(project, tiny_archive, http_server):
    base, root = http_server
    shutil.copy(tiny_archive, root / "a.tar.gz")
    path, digest = download_dataset(f"{base}/a.tar.gz", sha256_file(tiny_archive))
    assert path.parent == project / "data" / "raw"
    assert path.read_bytes() == tiny_archive.read_bytes()
    assert digest == sha256_file(tiny_archive)
    (root / "a.tar.gz").unlink()  # a second call must not need the server
    assert download_dataset(f"{base}/a.tar.gz")[0] == path


def test_file_url_and_plain_path_are_read_in_place(project, tiny_archive):
    assert download_dataset(f"file://{tiny_archive}")[0] == tiny_archive
    assert download_dataset(str(tiny_archive))[0] == tiny_archive
    assert not (project / "data").exists()


def test_checksum_mismatch_removes_the_download(project, tiny_archive, http_server):
    base, root = http_server
    shutil.copy(tiny_archive, root / "a.tar.gz")
    with pytest.raises(ChecksumError, match="expected"):
        download_dataset(f"{base}/a.tar.gz", "0" * 64)
    assert list((project / "data" / "raw").glob("*a.tar.gz")) == []


def test_http_404_is_a_download_error(project, http_server):
    base, _ = http_server
    with pytest.raises(DownloadError, match="404"):
        download_dataset(f"{base}/missing.tar.gz")


def test_missing_local_file(project, tmp_path):
    with pytest.raises(FileNotFoundError):
        download_dataset(str(tmp_path / "absent.tar.gz"))


def test_unreachable_host_is_a_download_error(project):
    with pytest.raises(DownloadError, match="could not download") as err:
        download_dataset("http://127.0.0.1:9/a.tar.gz")  # nothing listens: refused
    assert err.value.transient and err.value.unreachable  # a server may be restarting
    assert "Connection refused" in str(err.value)


def test_a_host_name_that_does_not_resolve_is_not_transient(project):
    # `.invalid` resolves nowhere (RFC 2606): what a machine without a network meets.
    url = "https://nowhere.invalid/aclImdb_v1.tar.gz"
    with pytest.raises(DownloadError) as err:
        download_dataset(url)
    assert str(err.value) == (f"could not download {url}: the host name nowhere.invalid does "
                              "not resolve (no network, or a mistyped host)")
    assert err.value.unreachable and not err.value.transient and err.value.url == url


def test_an_http_status_says_whether_a_retry_may_help(project, http_server):
    base, _ = http_server
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download_dataset(f"{base}/missing.tar.gz")
    assert not err.value.transient and not err.value.unreachable


@pytest.mark.parametrize("form", ["aclImdb", "parent", "file-url"])
def test_a_folder_is_read_in_place(project, tiny_folder, form):
    folder = tiny_folder.parent if form == "parent" else tiny_folder
    url = f"file://{folder}" if form == "file-url" else str(folder)
    path, digest = download_dataset(url)
    assert path == folder and digest == folder_fingerprint(folder)
    assert not (project / "data").exists()


def test_a_sha256_for_a_folder_is_refused(project, tiny_folder):
    with pytest.raises(ChecksumError, match="is a folder: dataset.sha256 applies only"):
        download_dataset(str(tiny_folder), "0" * 64)
