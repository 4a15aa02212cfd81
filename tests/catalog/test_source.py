"""Fetching catalogs over HTTP with a cache, against a server on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
import time
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from styx.catalog import source
from styx.catalog.loader import clear_cache, get_catalog
from styx.errors import ResourcesUnavailable

CSV = "InstanceType,vCPUs,MemoryGiB,Price,SpotPrice,Region\nm1,4,16,0.1,0.05,r1\n"


class Server:
    """A static file server on 127.0.0.1 that counts requests and can be slowed down."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits = 0
        self.delay = 0.0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                time.sleep(outer.delay)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v8"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    root = tmp_path / "www"
    (root / "v8" / "fake").mkdir(parents=True)
    (root / "v8" / "fake" / "vms.csv").write_text(CSV)
    srv = Server(root)
    monkeypatch.delenv("STYX_CATALOG_DIR", raising=False)
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STYX_CATALOG_URL", srv.url)
    monkeypatch.setenv("STYX_CATALOG_TIMEOUT", "2")
    clear_cache()
    yield srv
    srv.stop()
    clear_cache()


def test_fetch_then_cache_within_refresh_age(server: Server) -> None:
    path = source.catalog_file("fake")
    assert path == source.cache_dir() / "fake" / "vms.csv" and path.read_text() == CSV
    assert server.hits == 1
    assert set(get_catalog("fake").by_type) == {"m1"}
    source.catalog_file("fake")
    assert server.hits == 1  # fresh: no second request
    assert source.available_clouds() == ["fake"]


def test_stale_copy_is_refreshed(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    source.catalog_file("fake")
    (server.root / "v8" / "fake" / "vms.csv").write_text(CSV.replace("m1", "m2"))
    monkeypatch.setenv("STYX_CATALOG_REFRESH_HOURS", "0")
    assert "m2" in source.catalog_file("fake").read_text()
    assert server.hits == 2


def test_offline_uses_cached_copy_with_warning(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    source.catalog_file("fake")
    server.stop()
    monkeypatch.setenv("STYX_CATALOG_REFRESH_HOURS", "0")
    with pytest.warns(source.CatalogWarning, match="using the cached copy"):
        path = source.catalog_file("fake")
    assert path.read_text() == CSV


def test_offline_without_cache_is_an_error(server: Server) -> None:
    server.stop()
    with pytest.raises(ResourcesUnavailable) as err:
        source.catalog_file("fake")
    assert err.value.code == "catalog-unavailable" and "no cached copy" in err.value.message


def test_download_times_out(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYX_CATALOG_TIMEOUT", "0.3")
    server.delay = 2.0
    started = time.monotonic()
    with pytest.raises(ResourcesUnavailable):
        source.catalog_file("fake")
    assert time.monotonic() - started < 1.9
    assert not (source.cache_dir() / "fake" / "vms.csv").exists()


def test_missing_file_on_server_is_reported(server: Server) -> None:
    with pytest.raises(ResourcesUnavailable, match="404"):
        source.catalog_file("nope")


def test_built_catalogs_are_never_replaced(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    target = source.cache_dir() / "fake" / "vms.csv"
    target.parent.mkdir(parents=True)
    target.write_text(CSV.replace("m1", "built"))
    source.mark_built("fake", "test")
    monkeypatch.setenv("STYX_CATALOG_REFRESH_HOURS", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "built" in source.catalog_file("fake").read_text()
    assert server.hits == 0


def test_local_dir_wins_and_never_fetches(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local"
    (local / "fake").mkdir(parents=True)
    (local / "fake" / "vms.csv").write_text(CSV)
    monkeypatch.setenv("STYX_CATALOG_DIR", str(local))
    assert source.catalog_file("fake") == local / "fake" / "vms.csv"
    with pytest.raises(ResourcesUnavailable, match="STYX_CATALOG_DIR"):
        source.catalog_file("gcp")
    assert server.hits == 0
