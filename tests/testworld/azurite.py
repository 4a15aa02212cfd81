"""Azure Blob Storage's stand-in for the test world: the real Azurite (its blob service only).

Installed with ``npm install --prefix /var/cache/styx-testworld/azurite azurite`` (measured with
Azurite 3.35.0 on node 20); ``$STYX_AZURITE`` or ``azurite-blob`` on ``PATH`` also do. It runs
as::

    azurite-blob --disableTelemetry --skipApiVersionCheck --loose --silent
                 --disableProductStyleUrl --location ROOT/data --blobHost H --blobPort P

``--disableTelemetry`` always (without it Azurite phones home); ``--skipApiVersionCheck``
because the SDK is newer than the API versions Azurite knows; ``--disableProductStyleUrl`` so
the account is always the path's first segment (``http://H:P/devstoreaccount1/CONTAINER``).
It answers about 1.3 s after it starts.

Clients get the well-known development account through ``AZURE_STORAGE_CONNECTION_STRING``
with ``BlobEndpoint=http://H:P/devstoreaccount1``; bucket URLs name that account
(``https://devstoreaccount1.blob.core.windows.net/CONTAINER``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ACCOUNT = "devstoreaccount1"
#: Azurite's fixed development key, published by Microsoft (nothing real accepts it).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
NPM_PREFIX = Path("/var/cache/styx-testworld/azurite")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def binary() -> Path:
    """Azurite's blob service executable; FileNotFoundError when there is none here."""
    given = os.environ.get("STYX_AZURITE")
    if given:
        return Path(given)
    for name in ("azurite-blob", "azurite"):
        candidate = NPM_PREFIX / "node_modules" / ".bin" / name
        if candidate.exists():
            return candidate
    found = shutil.which("azurite-blob")
    if found:
        return Path(found)
    raise FileNotFoundError(f"no Azurite (npm install --prefix {NPM_PREFIX} azurite)")


class Azurite:
    """Azurite's blob service on ``host`` (a free port), its data under ``root/data``."""

    store = "azure"

    def __init__(self, host: str, root: Path) -> None:
        self.host, self.root = host, root
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Azurite:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def up(self) -> Azurite:
        exe = binary()
        if shutil.which("node") is None:
            raise FileNotFoundError("no node on PATH (Azurite runs on Node.js)")
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        argv = [str(exe), "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent",
                "--disableProductStyleUrl", "--location", str(self.data),
                "--blobHost", self.host, "--blobPort", str(self.port)]  # fmt: skip
        log = self.root / "azurite.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.data,
                start_new_session=True,
            )  # fmt: skip
        try:
            self._wait_ready(log)
        except BaseException:
            self.down()
            raise
        return self

    def _wait_ready(self, log: Path, timeout: float = 60.0) -> None:
        """Until the blob service answers HTTP (an unsigned request gets its 403)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Azurite exited ({self._proc.returncode}): {tail}")
            try:
                urllib.request.urlopen(f"{self.endpoint}?comp=list", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Azurite did not answer on {self.endpoint} in {timeout:.0f} s")

    def down(self) -> None:
        if self._proc is not None:
            # Its whole session: node may have started helpers of its own.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 9)
            self._proc.wait(10)
            self._proc = None
        shutil.rmtree(self.data, ignore_errors=True)

    # --- what clients use ------------------------------------------------------------------------

    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string()}

    def url(self, bucket: str, prefix: str = "") -> str:
        base = f"https://{ACCOUNT}.blob.core.windows.net/{bucket}"
        return f"{base}/{prefix}" if prefix else base

    # --- the test's own access (the SDK, straight to Azurite) ------------------------------------

    def _service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            self.connection_string(), connection_timeout=5, read_timeout=30
        )

    def create(self, bucket: str) -> None:
        self._service().create_container(bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self._service().get_container_client(bucket).upload_blob(key, data, overwrite=True)

    def get(self, bucket: str, key: str) -> bytes:
        blob = self._service().get_blob_client(bucket, key)
        return bytes(blob.download_blob().readall())

    def keys(self, bucket: str) -> list[str]:
        return sorted(b.name for b in self._service().get_container_client(bucket).list_blobs())

    def buckets(self) -> list[str]:
        return sorted(c.name for c in self._service().list_containers())

    def exists(self, bucket: str) -> bool:
        return bool(self._service().get_container_client(bucket).exists())

    # --- for a fault proxy in front ------------------------------------------------------------------

    def bucket_of(self, path: str) -> str | None:
        """The container a request path (``/devstoreaccount1/CONTAINER[/BLOB]``) addresses;
        None for account-level requests (listing containers)."""
        parts = path.split("?", 1)[0].lstrip("/").split("/")
        if len(parts) >= 2 and parts[0] == ACCOUNT and parts[1]:
            return urllib.parse.unquote(parts[1])
        return None

    def denied(self, bucket: str) -> tuple[int, dict[str, str], bytes]:
        """Azure's answer to a request its credentials may not make (as for a SAS or
        firewall that refuses it)."""
        rid = str(uuid.uuid4())
        message = (
            "This request is not authorized to perform this operation.\n"
            f"RequestId:{rid}\nTime:{time.strftime('%Y-%m-%dT%H:%M:%S.0000000Z', time.gmtime())}"
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationFailure</Code>'
            f"<Message>{message}</Message></Error>"
        )
        headers = {
            "Content-Type": "application/xml",
            "x-ms-error-code": "AuthorizationFailure",
            "x-ms-request-id": rid,
            "x-ms-version": "2025-11-05",
        }
        return 403, headers, body.encode()
